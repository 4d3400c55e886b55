#!/usr/bin/env bash
# Install the mail and file servers the sources' tests start for themselves: Dovecot (IMAP,
# Debian `dovecot-imapd`) and Samba (SMB, Debian `samba`). The tests run them unprivileged, on
# free loopback ports, with their configuration in a temporary folder
# (tests/support/mailshare.py); the system services the packages install are never started
# (policy-rc.d denies them in containers; elsewhere they are stopped and disabled here, since
# gedrag needs none of them). Installs with apt when missing and we are root; never fails the
# build: the tests skip and say why (CI sets GEDRAG_TEST_REQUIRE_SERVICES=1 to fail instead).
set -u
missing=()
[ -x /usr/sbin/dovecot ] || missing+=(dovecot-imapd)
{ [ -x /usr/sbin/smbd ] && command -v pdbedit >/dev/null; } || missing+=(samba)
if [ "${#missing[@]}" -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    for unit in dovecot smbd nmbd samba-ad-dc; do
      systemctl disable --now "$unit" >/dev/null 2>&1 || true
    done
  fi
fi
if [ -x /usr/sbin/dovecot ]; then
  echo "mailshare: $(/usr/sbin/dovecot --version 2>/dev/null | head -n1 | sed 's/^/Dovecot /')"
else
  echo "mailshare: Dovecot is not installed (apt-get install dovecot-imapd); the IMAP tests will skip"
fi
if [ -x /usr/sbin/smbd ]; then
  echo "mailshare: $(/usr/sbin/smbd --version 2>/dev/null | head -n1)"
else
  echo "mailshare: Samba is not installed (apt-get install samba); the SMB tests will skip"
fi
exit 0

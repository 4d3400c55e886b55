#!/usr/bin/env bash
# Make sure Debian's Chromium (and its chromedriver) is installed for the web console's browser
# tests (tests/e2e/test_console.py, marker `browser`). Idempotent: nothing to do when
# /usr/bin/chromium exists. Installs with apt when we are root; never fails the build: the browser
# tests skip and say why when Chromium is absent (CI sets GEDRAG_TEST_REQUIRE_SERVICES=1 to fail).
# Playwright drives this Chromium through `executable_path`; `playwright install` is never run.
set -u
if [ -x /usr/bin/chromium ]; then
  echo "browser: $(/usr/bin/chromium --version 2>/dev/null | head -n1)"
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi
if [ -x /usr/bin/chromium ]; then
  echo "browser: $(/usr/bin/chromium --version 2>/dev/null | head -n1)"
else
  echo "browser: Chromium is not installed (apt-get install chromium); the browser tests will skip"
fi
exit 0

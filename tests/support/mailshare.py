"""Real mail and file servers for the sources' tests, started once per test session.

* **Dovecot** (Debian ``dovecot-imapd``) serves IMAP on a free loopback port, one user with a
  password, mail in a temporary folder.
* **Samba** (Debian ``samba``) serves one share (a temporary folder the tests write into) over
  SMB on a free loopback port, one user with a password.

Both run unprivileged: as the current user, or as ``nobody`` when the tests run as root
(Dovecot refuses to run its login processes as root), with their whole configuration, state
and logs in a temporary folder that is removed afterwards. A server that is not installed
skips its tests with the install command (``make mailshare`` or ``apt-get install
dovecot-imapd samba``); under ``GEDRAG_TEST_REQUIRE_SERVICES=1`` (CI) they fail instead. Each
server's process group is stopped at the end of the session, and the kernel stops it if pytest
itself dies (parent-death signal).
"""

from __future__ import annotations

import ctypes
import grp
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from tests.support.net import free_port

START_TIMEOUT_S = 60  # ~1 s idle; a loaded 2-core machine was seen 10x slower
INSTALL = "make mailshare (or: apt-get install dovecot-imapd samba)"
PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class RunAs:
    user: str
    group: str
    uid: int
    gid: int


def run_as() -> RunAs:
    """The current user, or ``nobody`` for root (the servers never run privileged)."""
    uid = os.geteuid()
    pw = pwd.getpwnam("nobody") if uid == 0 else pwd.getpwuid(uid)
    return RunAs(pw.pw_name, grp.getgrgid(pw.pw_gid).gr_name, pw.pw_uid, pw.pw_gid)


def _die_with_parent() -> None:
    """In the child: SIGTERM when pytest dies, so no server outlives a killed session."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _workdir(prefix: str, who: RunAs) -> Path:
    # Directly under the system temp folder: pytest's own folders are 0700, which the
    # unprivileged server could not enter.
    root = Path(tempfile.mkdtemp(prefix=prefix))
    root.chmod(0o755)
    return root


def _chown_tree(root: Path, who: RunAs) -> None:
    if os.geteuid() != 0:
        return
    for path in [root, *root.rglob("*")]:
        os.chown(path, who.uid, who.gid, follow_symlinks=False)


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _start(
    command: list[str], root: Path, who: RunAs, port: int, log: Path, what: str
) -> subprocess.Popen[bytes]:
    with (root / "stdout.log").open("wb") as out:
        child = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=root,
            user=who.uid if os.geteuid() == 0 else None,
            group=who.gid if os.geteuid() == 0 else None,
            extra_groups=[] if os.geteuid() == 0 else None,
            start_new_session=True,  # its own process group: stopped whole at the end
            preexec_fn=_die_with_parent,  # runs in the child before exec
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if _listening(port):
            return child
        if child.poll() is not None:
            break
        time.sleep(0.1)
    _stop(child)
    tail = ""
    for path in (root / "stdout.log", log):
        if path.exists():
            tail += "\n".join(path.read_text(errors="replace").splitlines()[-20:]) + "\n"
    raise RuntimeError(f"{what} did not start on 127.0.0.1:{port}:\n{tail}")


def _stop(child: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's process group (only the processes this session started)."""
    try:
        os.killpg(child.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        child.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait(15)


# -- Dovecot ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImapServer:
    host: str
    port: int
    user: str
    password: str

    def client(self) -> Any:
        from imapclient import IMAPClient

        c = IMAPClient(self.host, port=self.port, ssl=False, timeout=30)
        c.login(self.user, self.password)
        return c

    def append(self, raw: bytes, folder: str = "INBOX") -> None:
        c = self.client()
        try:
            c.append(folder, raw)
        finally:
            c.logout()

    def uids(self, folder: str = "INBOX", criteria: str = "ALL") -> list[int]:
        c = self.client()
        try:
            if not c.folder_exists(folder):
                return []
            c.select_folder(folder)
            return sorted(c.search(criteria))
        finally:
            c.logout()

    def flags(self, folder: str = "INBOX") -> dict[int, set[bytes]]:
        c = self.client()
        try:
            c.select_folder(folder)
            found = c.get_flags(c.search("ALL"))
            return {uid: set(f) for uid, f in found.items()}
        finally:
            c.logout()

    def clear(self) -> None:
        """An empty INBOX and no other folder."""
        c = self.client()
        try:
            for _, _, name in c.list_folders():
                if name != "INBOX":
                    c.delete_folder(name)
            c.select_folder("INBOX")
            uids = c.search("ALL")
            if uids:
                c.delete_messages(uids)
                c.expunge()
        finally:
            c.logout()


DOVECOT_CONF = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = {user}
default_internal_group = {group}
default_login_user = {user}
first_valid_uid = 1
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/home/%u
}}
mail_location = maildir:~/Maildir
namespace inbox {{
  inbox = yes
  separator = /
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
  chroot =
}}
service anvil {{
  chroot =
}}
"""


@contextmanager
def dovecot() -> Iterator[ImapServer]:
    """A Dovecot IMAP server on a free loopback port; everything gone on exit."""
    binary = shutil.which("dovecot") or "/usr/sbin/dovecot"
    if not Path(binary).exists():
        raise FileNotFoundError(f"Dovecot is not installed ({INSTALL})")
    who = run_as()
    root = _workdir("gedrag-dovecot-", who)
    port = free_port()
    password = f"pw-{uuid.uuid4().hex[:12]}"
    try:
        for sub in ("run", "state", "home"):
            (root / sub).mkdir()
        (root / "passwd").write_text(f"gedrag:{{PLAIN}}{password}\n")
        (root / "dovecot.conf").write_text(
            DOVECOT_CONF.format(
                root=root, user=who.user, group=who.group, uid=who.uid, gid=who.gid, port=port
            )
        )
        _chown_tree(root, who)
        command = [binary, "-F", "-c", str(root / "dovecot.conf")]
        child = _start(command, root, who, port, root / "dovecot.log", "Dovecot")
        try:
            yield ImapServer("127.0.0.1", port, "gedrag", password)
        finally:
            _stop(child)
    finally:
        shutil.rmtree(root, ignore_errors=True)


# -- Samba -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SmbServer:
    host: str
    port: int
    share: str
    user: str
    password: str
    folder: Path  # the share's folder on this machine: tests write files there

    def clear(self) -> None:
        for child in self.folder.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()


SMB_CONF = """\
[global]
  workgroup = WORKGROUP
  server role = standalone server
  smb ports = {port}
  interfaces = lo
  bind interfaces only = yes
  private dir = {root}/private
  lock directory = {root}/lock
  state directory = {root}/state
  cache directory = {root}/cache
  pid directory = {root}/pid
  ncalrpc dir = {root}/ncalrpc
  log file = {root}/log/smbd.log
  passdb backend = tdbsam:{root}/private/passdb.tdb
  disable spoolss = yes
  load printers = no
  printing = bsd
  printcap name = /dev/null
  server min protocol = SMB2_10
  map to guest = never
  server services = -nbt
  disable netbios = yes
[docs]
  path = {root}/share
  read only = yes
  valid users = {user}
"""


@contextmanager
def samba() -> Iterator[SmbServer]:
    """A Samba server sharing a temporary folder as ``docs`` on a free loopback port."""
    smbd = shutil.which("smbd") or "/usr/sbin/smbd"
    pdbedit = shutil.which("pdbedit") or "/usr/bin/pdbedit"
    if not (Path(smbd).exists() and Path(pdbedit).exists()):
        raise FileNotFoundError(f"Samba is not installed ({INSTALL})")
    who = run_as()
    root = _workdir("gedrag-samba-", who)
    port = free_port()
    password = f"pw-{uuid.uuid4().hex[:12]}"
    try:
        for sub in ("private", "lock", "state", "cache", "pid", "ncalrpc", "log", "share"):
            (root / sub).mkdir()
        conf = root / "smb.conf"
        conf.write_text(SMB_CONF.format(root=root, port=port, user=who.user))
        _chown_tree(root, who)
        (root / "share").chmod(0o777)  # the tests write here as themselves
        drop = os.geteuid() == 0
        subprocess.run(
            [pdbedit, "-s", str(conf), "-a", "-u", who.user, "-t"],
            input=f"{password}\n{password}\n".encode(),
            check=True,
            capture_output=True,
            user=who.uid if drop else None,
            group=who.gid if drop else None,
            extra_groups=[] if drop else None,
            timeout=60,
        )
        command = [smbd, "--foreground", "--no-process-group", "--debug-stdout", "-s", str(conf)]
        child = _start(command, root, who, port, root / "log" / "smbd.log", "Samba")
        try:
            yield SmbServer("127.0.0.1", port, "docs", who.user, password, root / "share")
        finally:
            _stop(child)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def mail_with(name: str, data: bytes, subject: str | None = None) -> bytes:
    """A mail holding one attachment ``name``, about ``name`` unless told."""
    msg = EmailMessage()
    msg["From"] = "Scanner <scanner@acme.example>"
    msg["To"] = "invoices@acme.example"
    msg["Subject"] = subject or name
    msg["Date"] = "Tue, 02 Dec 2026 09:30:00 +0100"
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@acme.example>"
    msg.set_content("See the attached document.\n")
    msg.add_attachment(data, maintype="application", subtype="octet-stream", filename=name)
    return bytes(msg)


# -- fixtures --------------------------------------------------------------------------------


def _session_server(factory: Callable[[], Any], what: str) -> Iterator[Any]:
    from tests.conftest import REQUIRE_SERVICES

    try:
        manager = factory()
        server = manager.__enter__()
    except (FileNotFoundError, RuntimeError, subprocess.CalledProcessError) as exc:
        message = f"no {what} server for the sources' tests: {exc}"
        if REQUIRE_SERVICES:
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield server
    finally:
        manager.__exit__(None, None, None)


@pytest.fixture(scope="session")
def imap_server() -> Iterator[ImapServer]:
    """The session's Dovecot (IMAP), started once."""
    yield from _session_server(dovecot, "Dovecot (IMAP)")


@pytest.fixture(scope="session")
def smb_server() -> Iterator[SmbServer]:
    """The session's Samba (SMB), started once."""
    yield from _session_server(samba, "Samba (SMB)")


@pytest.fixture
def imap(imap_server: ImapServer) -> ImapServer:
    """The session's mailbox, emptied."""
    imap_server.clear()
    return imap_server


@pytest.fixture
def smb(smb_server: SmbServer) -> SmbServer:
    """The session's share, emptied."""
    smb_server.clear()
    return smb_server

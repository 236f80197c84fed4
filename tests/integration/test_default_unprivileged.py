"""The embedded default configuration run by a user who is not root.

pyxim is started inside a user namespace (`unshare --user --map-user=65534`), so
it really runs with an effective uid other than 0, as an ordinary user would run
it. It must then keep spool, logs and mailboxes under its data directory
($XDG_DATA_HOME/pyxim), listen on 127.0.0.1 port 2525, run the queue every
5 minutes, deliver local users' mail into maildirs there, and refuse to relay
for clients other than the local host.
"""

from __future__ import annotations

import mailbox
import os
import shutil
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.dnsserver import free_port

UNSHARE = shutil.which("unshare")


def _namespace_works() -> bool:
    if UNSHARE is None or os.geteuid() != 0:
        return False
    probe = subprocess.run([UNSHARE, "--user", "--map-user=65534", "--map-group=65534", "id", "-u"],
                           capture_output=True, text=True)
    return probe.returncode == 0 and probe.stdout.strip() == "65534"


pytestmark = pytest.mark.skipif(not _namespace_works(), reason="needs root and unshare --map-user")


def as_nobody(args: list[str], data_home: Path) -> list[str]:
    env = ["env", f"XDG_DATA_HOME={data_home}", f"HOME={data_home}"]
    return [UNSHARE or "unshare", "--user", "--map-user=65534", "--map-group=65534", *env,
            sys.executable, "-m", "pyxim", *args]


@pytest.fixture
def data_home() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="pyxim-user-"))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_settings_for_an_ordinary_user(data_home: Path) -> None:
    names = ["spool_directory", "log_file_path", "pid_file_path", "daemon_smtp_ports", "local_interfaces",
             "queue_run_interval"]
    out = subprocess.run(as_nobody(["-bP", *names], data_home), capture_output=True, text=True, check=True)
    base = data_home / "pyxim"
    assert out.stdout.splitlines() == [
        f"spool_directory = {base}/spool",
        f"log_file_path = {base}/log/%slog",
        f"pid_file_path = {base}/pyxim.pid",
        "daemon_smtp_ports = 2525",
        "local_interfaces = 127.0.0.1",
        "queue_run_interval = 5m",
    ]


def test_root_keeps_the_system_settings() -> None:
    out = subprocess.run([sys.executable, "-m", "pyxim", "-bP", "spool_directory", "daemon_smtp_ports",
                          "local_interfaces"], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == [
        "spool_directory = /var/spool/pyxim",
        "daemon_smtp_ports = smtp",
        "local_interfaces = <; ::0 ; 0.0.0.0",
    ]


def test_local_mail_lands_in_a_maildir_under_the_data_directory(data_home: Path) -> None:
    port = free_port()
    daemon = subprocess.Popen(as_nobody(["-bdf", "-oX", str(port)], data_home),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert daemon.poll() is None, daemon.stderr.read().decode() if daemon.stderr else ""
                assert time.time() < deadline, "the daemon did not start listening"
                time.sleep(0.1)
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            client.ehlo("client.example")
            # "daemon" is a system user that Debian's /etc/aliases does not redirect
            client.sendmail("daemon@localhost", ["daemon@localhost"],
                            b"Subject: hello\r\n\r\nfirst message\r\n")
        maildir = data_home / "pyxim" / "mail" / "daemon"
        deadline = time.time() + 15
        while not (maildir / "new").is_dir() or not any((maildir / "new").iterdir()):
            assert time.time() < deadline, "nothing delivered"
            time.sleep(0.1)
        log_path = data_home / "pyxim" / "log" / "mainlog"
        while "Completed" not in (log_path.read_text() if log_path.exists() else ""):
            assert time.time() < deadline, "no Completed line"  # the file lands before its log line
            time.sleep(0.1)
        messages = list(mailbox.Maildir(str(maildir), create=False))
        assert len(messages) == 1
        assert messages[0]["Subject"] == "hello"
        assert messages[0]["Envelope-to"] == "daemon@localhost"
        assert messages[0].get_payload() == "first message\n"
        # written by the user running pyxim, not by root
        log = log_path.read_text()
        assert f", -q5m, listening for SMTP on [127.0.0.1]:{port}" in log
        assert "=> daemon <daemon@localhost> R=localuser T=local_maildir" in log
    finally:
        daemon.terminate()
        try:
            daemon.wait(15)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()


def test_no_relaying_for_other_hosts(data_home: Path) -> None:
    session = (b"EHLO client.example\r\nMAIL FROM:<daemon@localhost>\r\n"
               b"RCPT TO:<someone@elsewhere.example>\r\nQUIT\r\n")
    out = subprocess.run(as_nobody(["-bh", "192.0.2.7"], data_home), input=session, capture_output=True)
    replies = out.stdout.decode().splitlines()
    assert "550 relay not permitted" in replies
    # from the local host the same recipient is accepted (relay_from_hosts)
    out = subprocess.run(as_nobody(["-bh", "127.0.0.1"], data_home), input=session, capture_output=True)
    assert "250 Accepted" in out.stdout.decode().splitlines()

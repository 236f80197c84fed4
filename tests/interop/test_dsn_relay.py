"""NOTIFY=SUCCESS for a remote delivery: a server that takes DSN options gets them passed on and no report
is made here; one that does not makes Exim (and pyxim) report success itself, naming that server."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.integration.test_daemon import stop_daemon
from tests.interop import oracle
from tests.support.dnsserver import free_port
from tests.support.servers import start_pyxim_daemon

pytestmark = pytest.mark.skipif(oracle.EXIM is None, reason="exim4 not installed")

RECEIVER = """\
primary_hostname = recv.example
spool_directory = ROOT/rspool
log_file_path = ROOT/r%slog
queue_only
acl_smtp_rcpt = accept
DSN
"""

SENDER = """\
primary_hostname = send.example
qualify_domain = send.example
spool_directory = ROOT/KIND-spool
log_file_path = ROOT/KIND-%slog
acl_smtp_rcpt = accept
dsn_advertise_hosts = *
begin routers
local:
  driver = accept
  domains = send.example
  local_parts = s
  transport = mbox
out:
  driver = manualroute
  route_list = * 127.0.0.1::PORT
  self = send
  transport = smtp
begin transports
mbox:
  driver = appendfile
  file = ROOT/KIND-mailbox
  user = Debian-exim
smtp:
  driver = smtp
  allow_localhost
"""

SESSION = ("EHLO x\r\nMAIL FROM:<s@send.example>\r\nRCPT TO:<a@r.example> NOTIFY=SUCCESS\r\nDATA\r\n"
           "Subject: d\r\n\r\nb\r\n.\r\nQUIT\r\n")


def mask(data: bytes) -> bytes:
    data = re.sub(rb"[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}", b"ID", data)
    data = re.sub(rb"\d+-eximdsn-\d+", b"BOUNDARY", data)
    data = re.sub(rb"\w{3}, \d\d \w{3} \d{4} [\d:]+ [+-]\d{4}", b"DATE", data)
    data = re.sub(rb"^From MAILER-DAEMON .*$", b"From MAILER-DAEMON DATE", data, flags=re.M)
    return re.sub(rb"Received: from \S+ by", b"Received: from USER by", data)


@pytest.mark.parametrize(("receiver_dsn", "lasthop"), [(False, False), (True, False), (True, True)])
def test_success_report_for_relayed_mail_matches_exim(receiver_dsn: bool, lasthop: bool) -> None:
    root = Path(tempfile.mkdtemp(prefix="pyxim-dsnrelay-"))
    root.chmod(0o777)
    port = free_port()
    (root / "recv.conf").write_text(RECEIVER.replace("ROOT", str(root)).replace(
        "DSN", "dsn_advertise_hosts = *" if receiver_dsn else ""))
    (root / "recv.conf").chmod(0o644)
    receiver = start_pyxim_daemon(root / "recv.conf", port)
    try:
        reports = {}
        for kind, command in (("exim", [oracle.EXIM]), ("pyxim", [sys.executable, "-m", "pyxim"])):
            conf = root / f"{kind}.conf"
            text = SENDER.replace("ROOT", str(root)).replace("KIND", kind).replace("PORT", str(port))
            if lasthop:  # dsn_lasthop on the router: nothing passed on, the report made here
                text = text.replace("  transport = smtp\n", "  transport = smtp\n  dsn_lasthop\n")
            conf.write_text(text)
            conf.chmod(0o644)
            subprocess.run(command + ["-C", str(conf), "-bs", "-odi"], input=SESSION.encode(), capture_output=True,
                           timeout=60)
            mailbox = root / f"{kind}-mailbox"
            reports[kind] = mask(mailbox.read_bytes()) if mailbox.exists() else b""
        passed_on = (root / "rmainlog").read_text()
        spooled = b"".join(p.read_bytes() for p in (root / "rspool" / "input").rglob("*-H"))
    finally:
        stop_daemon(receiver)
        shutil.rmtree(root, ignore_errors=True)
    if lasthop:
        assert b"(relayed via non DSN router)" in reports["exim"]
        assert not re.findall(rb"^a@r\.example .*?\d+,4 .*#3$", spooled, re.M)
    elif receiver_dsn:
        assert reports["exim"] == b""  # the next hop reports; nothing here
        # both senders passed NOTIFY=SUCCESS on: the receiver's spool holds the flag (Exim's bit 4)
        assert len(re.findall(rb"^a@r\.example .*?\d+,4 .*#3$", spooled, re.M)) == 2, spooled
    else:
        assert b"(relayed to non-DSN-aware mailer)" in reports["exim"]
    assert reports["pyxim"] == reports["exim"]
    assert passed_on.count(" <= s@send.example ") == 2

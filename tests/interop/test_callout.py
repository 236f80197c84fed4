"""verify = recipient/callout: pyxim and exim4 (-bhc) ask the same receiving server (a pyxim daemon on
loopback) and answer the client the same way; plain -bh makes no callout in either."""

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
acl_smtp_rcpt = r
begin acl
r:
  deny   local_parts = nosuch
         message = No such user here
  defer  local_parts = later
         message = try later
  accept
"""

SENDER = """\
primary_hostname = send.example
spool_directory = ROOT/sspool
log_file_path = ROOT/s%slog
acl_smtp_rcpt = r
begin acl
r:
  require verify = recipient/callout=10s
  accept
begin routers
out:
  driver = manualroute
  route_list = * 127.0.0.1::PORT
  self = send
  transport = smtp
begin transports
smtp:
  driver = smtp
  allow_localhost
"""

SESSION = ("HELO c\r\nMAIL FROM:<s@x.example>\r\nRCPT TO:<ok@r.example>\r\nRCPT TO:<nosuch@r.example>\r\n"
           "RCPT TO:<later@r.example>\r\nQUIT\r\n")


@pytest.mark.parametrize("mode", ["-bhc", "-bh"])
def test_callout_replies_match_exim(mode: str) -> None:
    root = Path(tempfile.mkdtemp(prefix="pyxim-callout-"))
    root.chmod(0o755)
    port = free_port()
    (root / "recv.conf").write_text(RECEIVER.replace("ROOT", str(root)))
    (root / "send.conf").write_text(SENDER.replace("ROOT", str(root)).replace("PORT", str(port)))
    for f in ("recv.conf", "send.conf"):
        (root / f).chmod(0o644)
    receiver = start_pyxim_daemon(root / "recv.conf", port)
    try:

        def run(command: list[str]) -> list[str]:
            proc = subprocess.run(command + ["-C", str(root / "send.conf"), mode, "192.0.2.7"], input=SESSION,
                                  capture_output=True, text=True, timeout=60)
            return [line.rstrip("\r") for line in (proc.stdout + proc.stderr).split("\n")
                    if re.match(r"(LOG: |[2-5]\d\d[ -])", line) and not line.startswith("220 ")]

        exim = run([oracle.EXIM])
        pyxim = run([sys.executable, "-m", "pyxim"])
    finally:
        stop_daemon(receiver)
        shutil.rmtree(root, ignore_errors=True)
    if mode == "-bhc":
        assert "550-Callout verification failed:" in exim and "451 Could not complete recipient verify callout" in exim
    else:
        assert exim.count("250 Accepted") == 3
    assert pyxim == exim


RELAY = """\
primary_hostname = send.example
qualify_domain = send.example
spool_directory = ROOT/KIND-spool
log_file_path = ROOT/KIND-%slog
begin routers
out:
  driver = manualroute
  route_list = * 127.0.0.1::PORT
  self = send
  transport = smtp
begin transports
smtp:
  driver = smtp
  allow_localhost
"""


def test_recipients_share_one_transaction_as_in_exim() -> None:
    """Several recipients for the same host go in one SMTP transaction: => for the first, -> for the others."""
    root = Path(tempfile.mkdtemp(prefix="pyxim-batch-"))
    root.chmod(0o777)
    port = free_port()
    (root / "recv.conf").write_text(RECEIVER.replace("ROOT", str(root)))
    (root / "recv.conf").chmod(0o644)
    receiver = start_pyxim_daemon(root / "recv.conf", port)
    try:
        logs = {}
        for kind, command in (("exim", [oracle.EXIM]), ("pyxim", [sys.executable, "-m", "pyxim"])):
            conf = root / f"{kind}.conf"
            conf.write_text(RELAY.replace("ROOT", str(root)).replace("KIND", kind).replace("PORT", str(port)))
            conf.chmod(0o644)
            subprocess.run(command + ["-C", str(conf), "-odi", "-f", "s@send.example", "one@r.example",
                                      "two@r.example", "nosuch@r.example"],
                           input=b"Subject: batch\n\nbody\n", capture_output=True, timeout=60)
            text = (root / f"{kind}-mainlog").read_text()
            # the bounce's size differs by nature (names in it): mask the BDAT chunk sizes
            logs[kind] = sorted(
                re.sub(r"\d+ byte chunk, total \d+", "N byte chunk, total N",
                       re.sub(r"[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}", "ID", line[20:]))
                for line in text.splitlines() if re.search(r" (=>|->|\*\*|==)", line))
        received = (root / "rmainlog").read_text()
        reports = []  # the two bounces for nosuch@, one from each sender, as the receiver spooled them
        for data_file in sorted((root / "rspool" / "input").rglob("*-D")):
            data = data_file.read_bytes()
            if b"message/delivery-status" in data:
                data = data.split(b"\n", 1)[1]  # the -D file's own name
                data = re.sub(rb"[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}", b"ID", data)
                data = re.sub(rb"\d+-eximdsn-\d+", b"BOUNDARY", data)
                data = re.sub(rb"\w{3}, \d\d \w{3} \d{4} [\d:]+ [+-]\d{4}", b"DATE", data)
                reports.append(re.sub(rb"Received: from \S+ by", b"Received: from USER by", data))
    finally:
        stop_daemon(receiver)
        shutil.rmtree(root, ignore_errors=True)
    # pyxim adds the experimental DSN extra information (Exim's EXPERIMENTAL_DSN_INFO, which Debian's
    # build lacks); check it, then compare the rest with Exim's report
    extra = [r for r in reports if b"X-Remote-MTA-smtp-greeting" in r]
    assert len(extra) == 1
    assert re.search(rb"Remote-MTA: dns; 127.0.0.1\nRemote-MTA: X-ip; \[127.0.0.1\]:\d+\n"
                     rb"X-Remote-MTA-smtp-greeting: X-str; 220 recv.example ESMTP Exim 4.96 DATE\n"
                     rb"X-Remote-MTA-helo-response: X-str; 250-recv.example Hello send.example \[127.0.0.1\]\n"
                     rb"X-Exim-Diagnostic: X-str; SMTP error from remote mail server after RCPT TO:<nosuch@r.example>: "
                     rb"550 No such user here\nDiagnostic-Code: smtp; 550 No such user here\n", extra[0]), extra[0]
    reports = [re.sub(rb"(Remote-MTA: X-ip;|X-Remote-MTA-[a-z-]+:|X-Exim-Diagnostic:) [^\n]*\n", b"", r)
               for r in reports]
    assert len(reports) == 2 and b"Remote-MTA: dns; 127.0.0.1" in reports[0]
    assert reports[0] == reports[1]  # pyxim's bounce is otherwise Exim's, Remote-MTA and Diagnostic-Code included
    assert any(line.startswith("ID -> ") for line in logs["exim"]), logs["exim"]
    assert logs["pyxim"] == logs["exim"]
    # each sender made one transaction carrying both accepted recipients
    assert received.count(" <= s@send.example ") == 2

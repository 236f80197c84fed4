"""-oMa, -oMaa, -oMai, -oMas, -oMi, -oMr, -oMs, -oMt: a trusted caller (root here) says where a message came
from, for -bs and for a message on standard input. Compared with exim4 on the same configuration: the
greeting, the <= line, the -H file's reception lines and the Received: header; then a queue run delivers
the message and a transport header shows what the delivery knows of the reception ($sender_host_address,
$sender_host_name, $sender_helo_name, $received_protocol, $authenticated_id, $sender_host_authenticated,
$sender_ident) — read back from the spool, as Exim does."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.interop import oracle

pytestmark = pytest.mark.skipif(oracle.EXIM is None or os.geteuid() != 0, reason="needs exim4 and root")

PYXIM = [sys.executable, "-m", "pyxim"]
IDS = re.compile(r"[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}")
DATE = re.compile(r"\w{3}, \d\d \w{3} \d{4} [\d:]+ [+-]\d{4}")

CONFIG = """\
primary_hostname = t.example
qualify_domain = t.example
spool_directory = ROOT/spool
log_file_path = ROOT/%slog
acl_smtp_rcpt = accept
queue_only
begin routers
r:
  driver = accept
  transport = t
begin transports
t:
  driver = appendfile
  file = ROOT/box
  user = Debian-exim
  headers_add = X-Origin: host=$sender_host_address port=$sender_host_port name=$sender_host_name \\
    helo=$sender_helo_name proto=$received_protocol auth=$sender_host_authenticated id=$authenticated_id \\
    ident=$sender_ident
"""
ORIGIN = ["-oMa", "10.1.2.3.4567", "-oMs", "client.example", "-oMt", "idt", "-oMaa", "plain", "-oMai", "joe"]
KEPT = ("helo_name", "host_address", "host_name", "host_auth", "interface_address", "ident", "received_protocol",
        "auth_id")


def run(command: list[str], smtp: bool) -> tuple[list[str], list[str], str, str]:
    root = Path(tempfile.mkdtemp(prefix="pyxim-origin-"))
    try:
        root.chmod(0o777)
        conf = root / "c.conf"
        conf.write_text(CONFIG.replace("ROOT", str(root)))
        conf.chmod(0o644)
        if smtp:
            session = (b"HELO x\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<r@t.example>\r\nDATA\r\nSubject: om\r\n\r\nb\r\n.\r\n"
                       b"QUIT\r\n")
            proc = subprocess.run(command + ["-C", str(conf), "-bs", *ORIGIN, "-oMi", "10.9.9.9.25"],
                                  input=session, capture_output=True, timeout=60)
            replies = [IDS.sub("ID", DATE.sub("DATE", line)) for line in proc.stdout.decode().splitlines()]
        else:
            subprocess.run(command + ["-C", str(conf), *ORIGIN, "-oMr", "spam-scanned", "-f", "a@b.c",
                                      "r@t.example"], input=b"Subject: om\n\nb\n", capture_output=True, timeout=60)
            replies = []
        (header,) = (root / "spool" / "input").glob("*-H")
        kept = [line for line in header.read_text().splitlines() if line.lstrip("-").split(" ")[0] in KEPT]
        received = DATE.sub("DATE", IDS.sub("ID", header.read_text().split("P Received: ", 1)[1].split("\n0", 1)[0]))
        subprocess.run(command + ["-C", str(conf), "-q"], capture_output=True, timeout=60)
        log = [IDS.sub("ID", line[20:]) for line in (root / "mainlog").read_text().splitlines()
               if " <= " in line or " => " in line]
        origin = next(line for line in (root / "box").read_text().splitlines() if line.startswith("X-Origin:"))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return replies + log, kept, received, origin


@pytest.mark.parametrize("smtp", [True, False])
def test_origin_options_as_exim(smtp: bool) -> None:
    mine = run(PYXIM, smtp)
    assert "--host_name client.example" in mine[1]
    assert "name=client.example" in mine[3] and "id=joe" in mine[3] and "ident=idt" in mine[3]
    if smtp:
        assert "250 t.example Hello idt at client.example [10.1.2.3]" in mine[0]
    assert mine == run([oracle.EXIM], smtp)

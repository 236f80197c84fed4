"""The real Exim delivers to pyxim: a manualroute router sends everything to the pyxim daemon."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.integration.test_daemon import CONF, start_daemon, stop_daemon
from tests.interop import oracle
from tests.support.dnsserver import free_port

pytestmark = pytest.mark.skipif(oracle.EXIM is None, reason="exim4 not installed")

EXIM_CONF = """\
primary_hostname = sender.example.net
qualify_domain = sender.example.net
spool_directory = {root}/exim-spool
log_file_path = {root}/exim-log/%slog
exim_user = Debian-exim
exim_group = Debian-exim
begin routers
to_pyxim:
  driver = manualroute
  route_list = * 127.0.0.1
  self = send
  transport = to_pyxim
begin transports
to_pyxim:
  driver = smtp
  port = {port}
  hosts_avoid_tls = *
  allow_localhost
begin retry
*  *  F,1m,1m
"""


def test_exim_sends_to_pyxim() -> None:
    root = Path(tempfile.mkdtemp(prefix="pyxim-eximclient-"))
    os.chmod(root, 0o755)
    for sub in ("exim-spool", "exim-log"):
        (root / sub).mkdir()
        os.chmod(root / sub, 0o777)
    port = free_port()
    (root / "exim.conf").write_text(CONF.replace("{root}", str(root)))
    (root / "sender.conf").write_text(EXIM_CONF.replace("{root}", str(root)).replace("{port}", str(port)))
    os.chmod(root / "sender.conf", 0o644)
    proc = start_daemon(root, port)
    try:
        message = b"Subject: from exim\nTo: bob@example.org\n\nhello from the real Exim\n"
        sent = subprocess.run([oracle.EXIM, "-C", str(root / "sender.conf"), "-odi", "bob@example.org"],
                              input=message, capture_output=True, timeout=60)
        assert sent.returncode == 0, sent.stderr
        deadline = time.time() + 20
        while time.time() < deadline and not list((root / "spool" / "input").glob("*-H")):
            time.sleep(0.2)
        headers = [p.read_text() for p in (root / "spool" / "input").glob("*-H")]
        assert len(headers) == 1
        assert "<root@sender.example.net>" in headers[0] and "bob@example.org" in headers[0]
        assert "Received: from [127.0.0.1] (helo=sender.example.net)" in headers[0]
        exim_log = (root / "exim-log" / "mainlog").read_text()
        assert "=> bob@example.org R=to_pyxim T=to_pyxim H=127.0.0.1 [127.0.0.1]" in exim_log
        assert "Completed" in exim_log
    finally:
        stop_daemon(proc)
        shutil.rmtree(root, ignore_errors=True)

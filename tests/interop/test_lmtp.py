"""LMTP: the lmtp transport (Unix socket) and the smtp transport with protocol = lmtp, against Postfix's
smtp-sink in LMTP mode; the => / -> lines agree with what exim4 writes for the same delivery."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.interop import oracle
from tests.support import postfix
from tests.support.dnsserver import free_port

pytestmark = pytest.mark.skipif(oracle.EXIM is None or not postfix.available(),
                                reason="needs exim4, root and smtp-sink (scripts/install-test-deps)")

CONFIG = """\
primary_hostname = send.example
qualify_domain = send.example
spool_directory = ROOT/KIND-spool
log_file_path = ROOT/KIND-%slog
begin routers
viasocket:
  driver = accept
  domains = sock.example
  transport = lmtp_socket
viatcp:
  driver = manualroute
  domains = tcp.example
  route_list = * 127.0.0.1
  self = send
  transport = lmtp_tcp
begin transports
lmtp_socket:
  driver = lmtp
  socket = ROOT/lmtp.sock
  user = Debian-exim
lmtp_tcp:
  driver = smtp
  protocol = lmtp
  port = PORT
  allow_localhost
"""


@pytest.mark.parametrize("recipients", [["a@sock.example"], ["a@tcp.example", "b@tcp.example"]])
def test_lmtp_matches_exim(recipients: list[str]) -> None:
    root = Path(tempfile.mkdtemp(prefix="pyxim-lmtp-"))
    root.chmod(0o777)
    port = free_port()
    sinks = [postfix.start_sink(f"unix:{root}/lmtp.sock", lmtp=True),
             postfix.start_sink(f"127.0.0.1:{port}", lmtp=True)]
    try:
        logs = {}
        for kind, command in (("exim", [oracle.EXIM]), ("pyxim", [sys.executable, "-m", "pyxim"])):
            conf = root / f"{kind}.conf"
            conf.write_text(CONFIG.replace("ROOT", str(root)).replace("KIND", kind).replace("PORT", str(port)))
            conf.chmod(0o644)
            subprocess.run(command + ["-C", str(conf), "-odi", "-f", "s@send.example", *recipients],
                           input=b"Subject: lmtp\n\nbody\n", capture_output=True, timeout=60)
            text = (root / f"{kind}-mainlog").read_text()
            logs[kind] = [re.sub(r"[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}", "ID", line[20:])
                          for line in text.splitlines() if re.search(r" (=>|->|\*\*|==)", line)]
    finally:
        for sink in sinks:
            postfix.stop_sink(sink)
        shutil.rmtree(root, ignore_errors=True)
    assert logs["exim"] and all("C=\"250 " in line for line in logs["exim"]), logs["exim"]
    assert logs["pyxim"] == logs["exim"]

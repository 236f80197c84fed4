"""The ACL udpsend modifier: the datagrams and the replies agree with exim4 -bh."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.interop import oracle

pytestmark = pytest.mark.skipif(oracle.EXIM is None, reason="exim4 not installed")

SPECS = [
    "<; 127.0.0.1 ; {port} ; hello $sender_address ; more",  # the payload is the rest, as written
    "127.0.0.1 : {port}",  # an empty payload
    "localhost : {port} : by name",
    "127.0.0.1",  # no port: an error (451 and a log line)
    "127.0.0.1 : x{port} : data",
    "<; 127.0.0.1 ; {port} ; a::b",
]


def session(command: list[str], conf: Path, listener: socket.socket) -> tuple[list[str], list[bytes]]:
    proc = subprocess.run(command + ["-C", str(conf), "-bh", "127.0.0.1"],
                          input=b"HELO x\r\nMAIL FROM:<a@b.example>\r\nQUIT\r\n", capture_output=True, timeout=60)
    text = (proc.stdout + proc.stderr).decode()
    lines = [line.rstrip("\r") for line in text.split("\n") if line.startswith(("LOG:", "250 OK", "451", "550"))]
    got = []
    listener.settimeout(0.5)
    while True:
        try:
            got.append(listener.recv(2000))
        except TimeoutError:
            return lines, got


@pytest.mark.parametrize("spec", SPECS)
def test_udpsend_matches_exim(tmp_path: Path, spec: str) -> None:
    tmp_path.chmod(0o755)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as listener:
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        conf = tmp_path / "udp.conf"
        conf.write_text("primary_hostname = t.example\nacl_smtp_mail = m\nbegin acl\nm:\n"
                        f"  warn udpsend = {spec.format(port=port)}\n  accept\n")
        conf.chmod(0o644)
        exim = session([oracle.EXIM], conf, listener)
        pyxim = session([sys.executable, "-m", "pyxim"], conf, listener)
    assert pyxim == exim
    assert exim[1] or any(line.startswith("451") for line in exim[0])

"""Postfix's smtp-sink, unpacked by scripts/install-test-deps into a private folder (the postfix
package conflicts with an installed Exim): a real SMTP and LMTP server for tests, on loopback."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

POSTFIX_DIR = Path(os.environ.get("PYXIM_POSTFIX_DIR", "/var/cache/pyxim-test/postfix"))
SMTP_SINK = POSTFIX_DIR / "usr" / "sbin" / "smtp-sink"


def available() -> bool:
    return SMTP_SINK.exists() and os.geteuid() == 0


def start_sink(address: str, lmtp: bool = False) -> subprocess.Popen:
    """smtp-sink on `address` ("127.0.0.1:PORT" or "unix:/path"); stop it with stop_sink()."""
    env = dict(os.environ, LD_LIBRARY_PATH=str(POSTFIX_DIR / "usr" / "lib" / "postfix"))
    args = [str(SMTP_SINK), "-u", "nobody"] + (["-L"] if lmtp else []) + [address, "50"]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if address.startswith("unix:"):
        path = Path(address[5:])
        deadline = time.time() + 10
        while not path.exists() and time.time() < deadline:
            time.sleep(0.05)
        path.chmod(0o777)
    else:
        import socket

        host, port = address.rsplit(":", 1)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection((host, int(port)), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
    return proc


def stop_sink(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()

"""Starting a pyxim daemon on a loopback port for a test, and waiting until it answers."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path


def wait_for_port(port: int, proc: subprocess.Popen | None = None, timeout: float = 20) -> None:
    """Return once something accepts connections on 127.0.0.1:port (RuntimeError if `proc` dies first)."""
    deadline = time.time() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"the server exited with status {proc.returncode}") from None
            if time.time() > deadline:
                raise RuntimeError(f"nothing listening on port {port}") from None
            time.sleep(0.1)


def start_pyxim_daemon(conf: Path, port: int) -> subprocess.Popen:
    """`pyxim -C conf -bdf` on 127.0.0.1:port, returned once it answers; stop it with stop_daemon()."""
    proc = subprocess.Popen([sys.executable, "-m", "pyxim", "-C", str(conf), "-bdf", "-oX", f"127.0.0.1.{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port, proc)
    return proc

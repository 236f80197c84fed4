"""The generic transport option max_parallel, compared with exim4: two messages delivered at the same
time through a slow pipe transport limited to one delivery at once; one goes, the other is deferred
with Exim's "concurrency limit reached for transport" (no retry record: it stays queued)."""

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

CONFIG = """\
primary_hostname = t.example
qualify_domain = t.example
spool_directory = ROOT/spool
log_file_path = ROOT/%slog
begin routers
r:
  driver = accept
  transport = slow
begin transports
slow:
  driver = pipe
  command = /bin/sleep 3
  user = Debian-exim
  # expanded before the address is known, as Exim does: $domain is empty here
  max_parallel = ${if eq{$domain}{}{1}{0}}
"""


def outcome(command: list[str]) -> tuple[list[str], str]:
    root = Path(tempfile.mkdtemp(prefix="pyxim-maxpar-"))
    try:
        root.chmod(0o777)
        conf = root / "c.conf"
        conf.write_text(CONFIG.replace("ROOT", str(root)))
        conf.chmod(0o644)
        senders = [subprocess.Popen(command + ["-C", str(conf), "-odi", "-f", "s@x.example", f"a{n}@t.example"],
                                    stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                   for n in (1, 2)]
        for proc in senders:  # both messages in before either delivery ends
            assert proc.stdin is not None
            proc.stdin.write(b"Subject: parallel\n\nbody\n")
            proc.stdin.close()
        for proc in senders:
            proc.wait(60)
        log = (root / "mainlog").read_text()
        queue = subprocess.run(command + ["-C", str(conf), "-bpc"], capture_output=True, text=True).stdout
    finally:
        shutil.rmtree(root, ignore_errors=True)
    lines = []
    for line in log.splitlines():
        if " == " in line or " => " in line:
            line = re.sub(r"[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}", "ID", line[20:])
            lines.append(re.sub(r"\ba[12]\b", "aN", line))
    return sorted(lines), queue.strip()


def test_max_parallel_as_exim() -> None:
    pyxim = outcome([sys.executable, "-m", "pyxim"])
    assert pyxim == (
        ["ID == aN@t.example R=r T=slow defer (-57): concurrency limit reached for transport",
         "ID => aN <aN@t.example> R=r T=slow"],
        "1",
    )
    assert pyxim == outcome([oracle.EXIM])

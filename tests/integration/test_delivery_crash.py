"""Crash safety of delivery: kill -9 in the middle of an attempt, then a queue run. Nothing is lost and
what was delivered before the crash (noted in the -J journal) is not delivered again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

CONF = """\
primary_hostname = t.example
qualify_domain = t.example
spool_directory = ROOT/spool
log_file_path = ROOT/%slog
begin routers
all:
  driver = accept
  transport = ${if eq{$local_part}{slow}{slow}{box}}
begin transports
box:
  driver = appendfile
  file = ROOT/mail/$local_part_data
slow:
  driver = pipe
  command = /bin/sh -c "test -e ROOT/go || sleep 60; cat > ROOT/mail/slow"
"""


def test_kill_during_delivery_then_queue_run(tmp_path: Path) -> None:
    (tmp_path / "mail").mkdir()
    conf = tmp_path / "c.conf"
    # local_part_data comes from the list of known local parts, so file names are not tainted
    conf.write_text(CONF.replace("ROOT", str(tmp_path)).replace(
        "  driver = accept\n", "  driver = accept\n  local_parts = first : slow\n"))
    pyxim = [sys.executable, "-m", "pyxim", "-C", str(conf)]
    proc = subprocess.Popen(pyxim + ["-odi", "-f", "s@x.example", "first@t.example", "slow@t.example"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    proc.stdin.write(b"Subject: crash\n\nbody\n")
    proc.stdin.close()
    first = tmp_path / "mail" / "first"
    deadline = time.time() + 30
    while not first.exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # the slow pipe is running now
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert first.read_bytes().count(b"Subject: crash") == 1
    journals = list((tmp_path / "spool" / "input").glob("*-J"))
    assert len(journals) == 1 and journals[0].read_text() == "first@t.example\n"
    (tmp_path / "go").touch()
    subprocess.run(pyxim + ["-qf"], check=True, timeout=60)
    assert first.read_bytes().count(b"Subject: crash") == 1  # not delivered twice
    assert b"Subject: crash" in (tmp_path / "mail" / "slow").read_bytes()  # and nothing lost
    assert list((tmp_path / "spool" / "input").iterdir()) == []
    log = (tmp_path / "mainlog").read_text()
    assert log.count("=> first <first@t.example>") == 1 and log.count("=> slow <slow@t.example>") == 1
    assert log.rstrip().endswith("Completed") or "Completed" in log.splitlines()[-2]

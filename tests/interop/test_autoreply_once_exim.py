"""The autoreply transport's once, once_repeat, once_file_size and log options, and a filter's vacation
with once/once_repeat/log, compared with exim4 on the same configuration: the main log lines (ids
masked), the autoreply's log file (time stamps masked) and the mailboxes (ids and dates masked).

A second message to the same sender gets no reply while the once record is fresh, and a reply again
when once_repeat has passed. The once file's own format is not compared: Exim keeps a Berkeley DB,
pyxim a hints-style file at the same path."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
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
vac:
  driver = accept
  local_parts = vac
  transport = rt
  unseen
filt:
  driver = redirect
  local_parts = fv
  file = ROOT/filter
  allow_filter
  user = Debian-exim
  reply_transport = rt2
local:
  driver = accept
  local_parts = bob : s : vac : fv
  transport = t
begin transports
t:
  driver = appendfile
  file = ROOT/box-$local_part_data
  user = Debian-exim
rt:
  driver = autoreply
  user = Debian-exim
  from = vac@t.example
  to = $sender_address
  cc = bob@t.example
  subject = away: $h_subject:
  headers = X-Auto: yes
  text = I am away
  once = ROOT/once.db
  ONCE_OPTIONS
  log = ROOT/ar.log
rt2:
  driver = autoreply
  user = Debian-exim
"""
FILTER = """\
# Exim filter
mail to $reply_address subject "gone away" once ROOT/fonce once_repeat 3s log ROOT/far.log text "gone"
"""
IDS = re.compile(r"[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}")
STAMP = re.compile(r"(?m)^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")


def _mask(data: str) -> str:
    data = IDS.sub("ID", data)
    data = re.sub(r"\w{3}, \d\d \w{3} \d{4} [\d:]+ [+-]\d{4}", "DATE", data)
    return re.sub(r"(?m)^(From \S+) .*$", r"\1 DATE", data)


def replies(command: list[str], once_options: str, to: str, pause: float = 0.0) -> tuple[list[str], str, str, str]:
    """Three messages to `to` (the third after `pause` seconds): main log, autoreply log, sender's and
    cc's mailboxes."""
    root = Path(tempfile.mkdtemp(prefix="pyxim-once-"))
    try:
        root.chmod(0o777)
        (root / "c.conf").write_text(CONFIG.replace("ROOT", str(root)).replace("ONCE_OPTIONS", once_options))
        (root / "filter").write_text(FILTER.replace("ROOT", str(root)))
        for name in ("c.conf", "filter"):
            (root / name).chmod(0o644)
        for n in range(3):
            if n == 2 and pause:
                time.sleep(pause)
            subprocess.run(command + ["-C", str(root / "c.conf"), "-odi", "-f", "s@t.example", to],
                           input=f"From: s@t.example\nSubject: m{n}\n\nbody\n".encode(), capture_output=True,
                           timeout=60)
        lines = sorted(IDS.sub("ID", line[20:]) for line in (root / "mainlog").read_text().splitlines()
                       if re.search(r" (<=|=>|->|\*\*|==|Completed)", line))
        logs = "".join(STAMP.sub("STAMP", (root / name).read_text()) for name in ("ar.log", "far.log")
                       if (root / name).exists())
        boxes = [_mask((root / f"box-{who}").read_text()) if (root / f"box-{who}").exists() else ""
                 for who in ("s", "bob")]
        for name in ("ar.log", "far.log", "once.db", "fonce"):
            if (root / name).exists():
                # written as the transport's user, never as root
                assert (root / name).stat().st_uid != 0, name
        return lines, logs, boxes[0], boxes[1]
    finally:
        shutil.rmtree(root, ignore_errors=True)


MINE = [sys.executable, "-m", "pyxim"]


def test_once_sends_one_reply_only() -> None:
    mine = replies(MINE, "", "vac@t.example")
    assert mine[2].count("I am away") == 1
    assert mine[1].count("previously sent to s@t.example") == 2
    assert mine == replies([oracle.EXIM], "", "vac@t.example")


def test_once_repeat_sends_again_later() -> None:
    mine = replies(MINE, "once_repeat = 3s", "vac@t.example", pause=3.5)
    assert mine[2].count("I am away") == 2
    assert mine == replies([oracle.EXIM], "once_repeat = 3s", "vac@t.example", pause=3.5)


def test_once_file_size_cache() -> None:
    mine = replies(MINE, "once_file_size = 100", "vac@t.example")
    assert mine[2].count("I am away") == 1
    assert mine == replies([oracle.EXIM], "once_file_size = 100", "vac@t.example")


def test_filter_mail_once_repeat_and_log() -> None:
    mine = replies(MINE, "", "fv@t.example", pause=3.5)
    assert mine[2].count("Subject: gone away") == 2
    assert mine == replies([oracle.EXIM], "", "fv@t.example", pause=3.5)

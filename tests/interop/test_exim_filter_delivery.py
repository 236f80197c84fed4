"""An Exim filter at delivery time, compared with exim4 on the same configuration: a redirect router with
allow_filter runs a user's filter that writes to its own log file (logfile/logwrite), sends a reply with
`mail` through the router's reply_transport (an autoreply transport run as the user) and delivers a copy
elsewhere. The main log lines (sorted: the reply is delivered by a process of its own, whose lines
interleave as they happen), the filter's log file, and both mailboxes' bytes must be the same."""

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
filt:
  driver = redirect
  local_parts = vac
  file = ROOT/filter
  allow_filter
  user = Debian-exim
  reply_transport = rt
local:
  driver = accept
  local_parts = bob : s
  transport = t
begin transports
t:
  driver = appendfile
  file = ROOT/box-$local_part_data
  user = Debian-exim
rt:
  driver = autoreply
  user = Debian-exim
"""
FILTER = """\
# Exim filter
logfile ROOT/filter.log
logwrite "saw $h_subject: from $reply_address"
if $h_subject: contains "hello" then
  mail to "$reply_address" subject "Re: $h_subject:" text "I am away until Monday."
endif
deliver bob@t.example
"""
IDS = re.compile(r"[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}")


def _mask(data: str) -> str:
    data = IDS.sub("ID", data)
    data = re.sub(r"\w{3}, \d\d \w{3} \d{4} [\d:]+ [+-]\d{4}", "DATE", data)
    return re.sub(r"(?m)^(From \S+) .*$", r"\1 DATE", data)


def filtered(command: list[str]) -> tuple[list[str], str, str, str]:
    root = Path(tempfile.mkdtemp(prefix="pyxim-filterdel-"))
    try:
        root.chmod(0o777)
        (root / "c.conf").write_text(CONFIG.replace("ROOT", str(root)))
        (root / "filter").write_text(FILTER.replace("ROOT", str(root)))
        for name in ("c.conf", "filter"):
            (root / name).chmod(0o644)
        subprocess.run(command + ["-C", str(root / "c.conf"), "-odi", "-f", "s@x.example", "vac@t.example"],
                       input=b"From: Sam <s@x.example>\nSubject: hello there\n\nbody\n", capture_output=True,
                       timeout=60)
        lines = sorted(IDS.sub("ID", line[20:]) for line in (root / "mainlog").read_text().splitlines()
                       if re.search(r" (<=|=>|->|\*\*|==|Completed)", line))
        return (lines, (root / "filter.log").read_text(), _mask((root / "box-s").read_text()),
                _mask((root / "box-bob").read_text()))
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_filter_reply_and_logwrite_as_exim() -> None:
    mine = filtered([sys.executable, "-m", "pyxim"])
    assert "ID => >s@x.example <vac@t.example> R=filt T=rt" in mine[0]
    assert mine[1] == "saw hello there from Sam <s@x.example>\n"
    assert "Subject: Re: hello there\n" in mine[2] and "\nI am away until Monday.\n" in mine[2]
    assert mine == filtered([oracle.EXIM])

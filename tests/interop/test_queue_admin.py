"""Exim's message commands (-Mf -Mt -Mar -Mmd -Mvh -Mvb -Mvl -Mrm -Mg): what pyxim prints and logs is what exim4 does."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.interop import oracle
from tests.interop.test_spool_exim import normalise

pytestmark = pytest.mark.skipif(oracle.EXIM is None, reason="exim4 not installed")

SEQUENCE = [
    ("-Mf",), ("-Mf",), ("-Mt",), ("-Mt",), ("-Mar", "c@t.example"), ("-Mmd", "b@t.example"),
    ("-Mmd", "nobody@t.example"), ("-Mvh",), ("-Mvb",), ("-Mvl",), ("-Mrm",), ("-Mrm",), ("-Mf",), ("-Mvl",),
]


def session(command: list[str]) -> tuple[list[str], list[str]]:
    root = Path(tempfile.mkdtemp(prefix="pyxim-madmin-"))
    try:
        root.chmod(0o777)
        conf = root / "c.conf"
        conf.write_text(f"primary_hostname = t.example\nspool_directory = {root}/spool\nlog_file_path = {root}/%slog\n")
        conf.chmod(0o644)
        base = command + ["-C", str(conf)]
        printed = []
        for first in (True, False):
            subprocess.run(base + ["-odq", "-f", "s@x.example", "a@t.example", "b@t.example"],
                           input=b"Subject: q\n\nbody\n", capture_output=True, timeout=60, check=True)
            ids = subprocess.run(base + ["-bp"], capture_output=True, text=True, timeout=60).stdout
            message_id = re.findall(r"[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}", ids)[-1]
            steps = SEQUENCE if first else [("-Mg",)]
            for step in steps:
                proc = subprocess.run(base + [step[0], message_id, *step[1:]], capture_output=True, text=True,
                                      timeout=60)
                out = "\n".join(line for line in (proc.stdout + proc.stderr).split("\n")
                                if not any(w in line for w in ("purging the environment", "keep_environment", "lost privilege")))
                printed.append(f"{' '.join(step)} rc={proc.returncode}\n{normalise(out)}")
        log = (root / "mainlog").read_text()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    lines = []
    for line in log.splitlines():
        line = re.sub(r"[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}", "ID", line[20:])
        # (Exim delivers the bounce -Mg makes in the background: its own later lines come and go)
        if re.search(r" by root$|Completed|<= <>", line):
            lines.append(re.sub(r" U=\S+| S=\d+", "", line))
    return printed, lines


def test_message_commands_match_exim() -> None:
    exim_printed, exim_log = session([oracle.EXIM])
    pyxim_printed, pyxim_log = session([sys.executable, "-m", "pyxim"])
    assert any("is now frozen" in p for p in exim_printed)
    assert pyxim_printed == exim_printed
    assert pyxim_log == exim_log

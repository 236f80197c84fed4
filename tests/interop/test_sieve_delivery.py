"""A Sieve filter at delivery time, compared with exim4 on the same configuration: a redirect router
with allow_filter reads a .forward-style file holding a Sieve script that files the message into a
folder (fileinto), redirects a copy, and keeps it. The folders reach the file_transport as Exim names
them ("inbox", "lists.hello"), for the transport to place. The main log lines (sorted) and the
bytes of every mailbox must be the same."""

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
sieve:
  driver = redirect
  local_parts = alice
  file = ROOT/forward
  allow_filter
  user = Debian-exim
  file_transport = folder
local:
  driver = accept
  local_parts = bob
  transport = t
begin transports
t:
  driver = appendfile
  file = ROOT/box-$local_part_data
  user = Debian-exim
folder:
  driver = appendfile
  file = ${if eq{$address_file}{inbox}{ROOT/inbox-$local_part_data}{ROOT/mail/$address_file}}
  create_directory
  user = Debian-exim
"""
SCRIPT = """\
# Sieve filter
require ["fileinto", "copy"];
if header :contains "subject" "hello" {
  fileinto "lists.hello";
}
redirect :copy "bob@t.example";
keep;
"""
IDS = re.compile(r"[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}")


def _mask(data: str) -> str:
    data = IDS.sub("ID", data)
    data = re.sub(r"\w{3}, \d\d \w{3} \d{4} [\d:]+ [+-]\d{4}", "DATE", data)
    return re.sub(r"(?m)^(From \S+) .*$", r"\1 DATE", data)


def delivered(command: list[str]) -> tuple[list[str], dict[str, str]]:
    root = Path(tempfile.mkdtemp(prefix="pyxim-sievedel-"))
    try:
        root.chmod(0o777)
        (root / "c.conf").write_text(CONFIG.replace("ROOT", str(root)))
        (root / "forward").write_text(SCRIPT)
        for name in ("c.conf", "forward"):
            (root / name).chmod(0o644)
        (root / "mail").mkdir()
        (root / "mail").chmod(0o777)
        subprocess.run(command + ["-C", str(root / "c.conf"), "-odi", "-f", "s@x.example", "alice@t.example"],
                       input=b"From: Sam <s@x.example>\nSubject: hello there\n\nbody\n", capture_output=True,
                       timeout=60)
        lines = sorted(IDS.sub("ID", line[20:]).replace(str(root), "ROOT") for line in (root / "mainlog").read_text().splitlines()
                       if re.search(r" (<=|=>|->|\*\*|==|Completed)", line))
        boxes = {str(p.relative_to(root)): _mask(p.read_text()) for p in sorted(root.rglob("*"))
                 if p.is_file() and (p.name.startswith(("box-", "inbox-")) or p.parent.name == "mail")}
        return lines, boxes
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_sieve_fileinto_redirect_keep_as_exim() -> None:
    mine = delivered([sys.executable, "-m", "pyxim"])
    assert "ID => ROOT/mail/lists.hello <alice@t.example> R=sieve T=folder" in mine[0]
    assert set(mine[1]) == {"box-bob", "inbox-alice", "mail/lists.hello"}
    assert mine == delivered([oracle.EXIM])

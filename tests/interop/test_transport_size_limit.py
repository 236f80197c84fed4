"""The generic transport option message_size_limit, compared with exim4: a message bigger than the
(expanded, per address) limit fails that address with Exim's "message is too big" line; the other
recipient is delivered."""

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
  transport = t
begin transports
t:
  driver = appendfile
  file = ROOT/mail/box
  user = Debian-exim
  message_size_limit = ${if eq{$local_part}{big}{100}{2K}}
"""


def delivery_lines(command: list[str]) -> list[str]:
    root = Path(tempfile.mkdtemp(prefix="pyxim-msl-"))
    try:
        root.chmod(0o777)
        (root / "mail").mkdir()
        (root / "mail").chmod(0o777)
        conf = root / "c.conf"
        conf.write_text(CONFIG.replace("ROOT", str(root)))
        conf.chmod(0o644)
        message = b"Subject: size\n\n" + b"0" * 200 + b"\n"
        subprocess.run(command + ["-C", str(conf), "-odi", "-f", "s@x.example", "big@t.example",
                                  "small@t.example"], input=message, capture_output=True, timeout=60)
        log = (root / "mainlog").read_text()
        assert b"0" * 200 in (root / "mail" / "box").read_bytes()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    ids = re.compile(r"[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}")
    return [ids.sub("ID", line[20:]) for line in log.splitlines() if " ** " in line or " => " in line]


def test_transport_message_size_limit_as_exim() -> None:
    lines = delivery_lines([sys.executable, "-m", "pyxim"])
    assert "ID ** big@t.example R=r T=t: message is too big (transport limit = 100)" in lines
    assert "ID => small <small@t.example> R=r T=t" in lines
    assert lines == delivery_lines([oracle.EXIM])

"""The queuefile transport (experimental in Exim; Debian's build lacks it, so pyxim alone is run):
the -H and -D spool files land unchanged in the transport's directory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pyxim.spool.format import SpoolMessage

CONF = """\
primary_hostname = t.example
qualify_domain = t.example
spool_directory = ROOT/spool
log_file_path = ROOT/%slog
begin routers
copy:
  driver = accept
  transport = qf
begin transports
qf:
  driver = queuefile
  directory = ${if eq{$local_part}{bad}{relative/dir}{ROOT/copies}}
begin retry
*  *  F,1h,10m
"""


def test_spool_files_are_copied(tmp_path: Path) -> None:
    (tmp_path / "copies").mkdir()
    conf = tmp_path / "c.conf"
    conf.write_text(CONF.replace("ROOT", str(tmp_path)))
    subprocess.run([sys.executable, "-m", "pyxim", "-C", str(conf), "-odi", "-f", "s@x.example", "bob@t.example",
                    "bad@t.example"], input=b"Subject: copy me\n\nbody line\n", check=True, timeout=60)
    copies = sorted(p.name for p in (tmp_path / "copies").iterdir())
    assert len(copies) == 2 and copies[0].endswith("-D") and copies[1].endswith("-H")
    message_id = copies[0][:-2]
    header = SpoolMessage.parse_header_file((tmp_path / "copies" / f"{message_id}-H").read_bytes())
    assert header.sender == "s@x.example" and [r.address for r in header.recipients] == [
        "bob@t.example", "bad@t.example"]
    data = (tmp_path / "copies" / f"{message_id}-D").read_bytes()
    assert data == f"{message_id}-D\nbody line\n".encode()
    log = (tmp_path / "mainlog").read_text()
    assert f"{message_id} => bob <bob@t.example> R=copy T=qf" in log
    assert "== bad@t.example R=copy T=qf defer (-1): qf transport directory: 'relative/dir' is not absolute" in log

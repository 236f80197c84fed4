"""-N: a delivery goes through routing up to the transport, which is not run; each address is logged with
"*>" (a remote one with the host it would have tried and C="delivery bypassed by -N option") and the
message is completed. Compared with exim4's main log on the same configuration, in Exim's order (local
deliveries first, a redirection's last address first, then the remote ones); nothing reaches the mailbox
or the pipe."""

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
rem:
  driver = manualroute
  domains = r.example
  route_list = * 192.0.2.1
  transport = smtp
al:
  driver = redirect
  local_parts = al
  data = b@t.example, |/bin/touch ROOT/piped, c@t.example, ROOT/named-file, d@t.example
  pipe_transport = p
  file_transport = t
loc:
  driver = accept
  transport = t
begin transports
t:
  driver = appendfile
  file = ROOT/box
  user = Debian-exim
p:
  driver = pipe
  user = Debian-exim
smtp:
  driver = smtp
"""


def dont_deliver(command: list[str], flag: str = "-N",
                 recipients: tuple[str, ...] = ("a@t.example", "x@r.example", "al@t.example"),
                 ) -> tuple[list[str], bool, bool, str]:
    root = Path(tempfile.mkdtemp(prefix="pyxim-N-"))
    try:
        root.chmod(0o777)
        conf = root / "c.conf"
        conf.write_text(CONFIG.replace("ROOT", str(root)))
        conf.chmod(0o644)
        subprocess.run(command + ["-C", str(conf), flag, "-odi", "-f", "s@x.example", *recipients],
                       input=b"Subject: n\n\nb\n", capture_output=True, timeout=60)
        lines = list(re.sub(r"^\S+ ", "ID ", line[20:]).replace(str(root), "ROOT") for line in (root / "mainlog").read_text().splitlines()
                       if re.search(r" (\*>|=>|==|\*\*|Completed)", line))
        queue = subprocess.run(command + ["-C", str(conf), "-bpc"], capture_output=True, text=True).stdout.strip()
        return lines, (root / "box").exists(), (root / "piped").exists(), queue
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_dont_deliver_as_exim() -> None:
    mine = dont_deliver([sys.executable, "-m", "pyxim"])
    assert 'ID *> x@r.example R=rem T=smtp H=192.0.2.1 [192.0.2.1] C="delivery bypassed by -N option"' in mine[0]
    assert "ID Completed" in mine[0] and mine[1:] == (False, False, "0")
    assert mine == dont_deliver([oracle.EXIM])


def test_the_same_delivered_as_exim() -> None:
    """Without -N: "=>" lines; a file item goes where the transport's `file` says, and the line names that."""
    recipients = ("z@t.example", "al@t.example", "a@t.example")
    mine = dont_deliver([sys.executable, "-m", "pyxim"], "-odi", recipients)
    assert "ID => ROOT/box <al@t.example> R=al T=t" in mine[0] and mine[1:3] == (True, True)
    assert mine == dont_deliver([oracle.EXIM], "-odi", recipients)

"""Where headers go, compared with exim4's spool -H files: add_header's position prefixes
(:at_start:, :at_start_rfc:, :after_received:, :at_end:) and the local-submission fixups of a
resent message (Resent-Message-Id and Resent-Date at the top; Resent-* headers typed like their
originals; the original Message-ID no longer the id)."""

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
queue_only
acl_smtp_rcpt = accept
acl_smtp_data = data
begin acl
data:
  warn add_header = :at_start:X-A: 1
  warn add_header = :after_received:X-B: 2\\nX-B2: 2b
  warn add_header = :at_start_rfc:X-C: 3
  warn add_header = X-D: 4
  warn add_header = :AT_END:X-E: 5
  warn add_header = :at_start:no colon here
  accept
"""

RESENT_BLOCK = (b"Resent-From: a@b.example\r\nReceived: from a by b; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
                b"Received: from c by d; Mon, 1 Jan 2024 00:00:00 +0000\r\nSubject: hi\r\nReceived: late\r\n")
RESENT_LATER = (b"From: f@x.example\r\nTo: t@x.example\r\nResent-To: rt@x.example\r\nResent-From: a@b.example\r\n"
                b"Message-ID: <m@x>\r\nResent-Sender: rs@x.example\r\nSubject: hi\r\n")
PLAIN = b"Received: from a by b; Mon, 1 Jan 2024 00:00:00 +0000\r\nSubject: plain\r\n"


def spooled_headers(command: list[str], headers: bytes) -> list[str]:
    root = Path(tempfile.mkdtemp(prefix="pyxim-hdrpos-"))
    try:
        root.chmod(0o777)
        conf = root / "c.conf"
        conf.write_text(CONFIG.replace("ROOT", str(root)))
        conf.chmod(0o644)
        session = (b"HELO x\r\nMAIL FROM:<s@x.example>\r\nRCPT TO:<r@t.example>\r\nDATA\r\n" + headers
                   + b"\r\nbody\r\n.\r\nQUIT\r\n")
        subprocess.run(command + ["-C", str(conf), "-bs"], input=session, capture_output=True, timeout=60)
        [spool_file] = list((root / "spool" / "input").glob("*-H"))
        text = spool_file.read_text()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    lines = text.split("\n\n", 1)[1].splitlines()
    first_lines = [line for line in lines if line and not line[0].isspace()]
    masked = [re.sub(r"[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}", "ID", line) for line in first_lines]
    return [re.sub(r"^\d{3}(.)(\s*Resent-Date|\s*Date): .*", r"NNN\1\2: D", line) for line in masked]


@pytest.mark.parametrize("headers", [RESENT_BLOCK, RESENT_LATER, PLAIN], ids=["resent-first", "resent-later", "plain"])
def test_header_placement_as_exim(headers: bytes) -> None:
    pyxim = spooled_headers([sys.executable, "-m", "pyxim"], headers)
    assert pyxim[0] == "026  X-ACL-Warn: no colon here" and pyxim[1] == "007  X-A: 1"
    assert pyxim == spooled_headers([oracle.EXIM], headers)

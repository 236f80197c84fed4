"""What pyxim writes is what mail software reads: mailboxes through Python's mailbox module, reports
through the email package (RFC 3464 multipart/report)."""

from __future__ import annotations

import email
import mailbox
import subprocess
import sys
from email import policy
from pathlib import Path

CONF = """\
primary_hostname = t.example
qualify_domain = t.example
spool_directory = ROOT/spool
log_file_path = ROOT/%slog
begin routers
gone:
  driver = redirect
  local_parts = gone
  allow_fail
  data = :fail: no such user
local:
  driver = accept
  local_parts = mboxuser : mdiruser : sender
  transport = ${if eq{$local_part}{mdiruser}{maildir}{mbox}}
begin transports
mbox:
  driver = appendfile
  file = ROOT/mail/$local_part_data
maildir:
  driver = appendfile
  directory = ROOT/mail/$local_part_data
  maildir_format
"""


def send(tmp_path: Path, *recipients: str, body: bytes) -> None:
    conf = tmp_path / "c.conf"
    if not conf.exists():
        (tmp_path / "mail").mkdir()
        conf.write_text(CONF.replace("ROOT", str(tmp_path)))
    subprocess.run([sys.executable, "-m", "pyxim", "-C", str(conf), "-odi", "-f", "sender@t.example", *recipients],
                   input=body, check=True, timeout=60)


def test_mbox_and_maildir_read_back(tmp_path: Path) -> None:
    for n in range(3):
        send(tmp_path, "mboxuser@t.example", "mdiruser@t.example",
             body=f"Subject: number {n}\n\nFrom the start of a line\n.leading dot\nend {n}\n".encode())
    box = mailbox.mbox(str(tmp_path / "mail" / "mboxuser"))
    subjects = [m["Subject"] for m in box]
    assert subjects == ["number 0", "number 1", "number 2"]
    first = box[0].get_payload()
    assert "From the start of a line" in first and ".leading dot" in first  # From-escaping undone by the reader
    mdir = mailbox.Maildir(str(tmp_path / "mail" / "mdiruser"), create=False)
    assert sorted(m["Subject"] for m in mdir) == ["number 0", "number 1", "number 2"]
    assert all(m["Return-path"] is None for m in mdir)  # not asked for on this transport


def test_bounce_is_a_valid_multipart_report(tmp_path: Path) -> None:
    send(tmp_path, "gone@t.example", body=b"Subject: lost\nMessage-Id: <lost@t.example>\n\nbody\n")
    box = mailbox.mbox(str(tmp_path / "mail" / "sender"))
    assert len(box) == 1
    report = email.message_from_bytes(box[0].as_bytes(), policy=policy.default)
    assert report.get_content_type() == "multipart/report"
    assert report.get_param("report-type") == "delivery-status"
    parts = list(report.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "message/delivery-status", "message/rfc822"]
    status = parts[1].get_payload()  # per-message fields, then one block per recipient
    fields = [dict(block.items()) for block in status]
    assert fields[0]["Reporting-MTA"] == "dns; t.example"
    assert fields[1]["Action"] == "failed" and fields[1]["Final-Recipient"] == "rfc822;gone@t.example"
    assert fields[1]["Status"] == "5.0.0"
    returned = parts[2].get_payload()[0]
    assert returned["Subject"] == "lost" and returned["Message-Id"] == "<lost@t.example>"
    assert "no such user" in parts[0].get_content()

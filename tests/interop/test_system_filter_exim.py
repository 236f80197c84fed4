"""The system filter at delivery time, compared with exim4 on the same configuration: a filter that adds
and removes header lines, one that saves a copy through system_filter_file_transport, one that fails the
message, one that freezes it, one whose `seen deliver` replaces the recipients, one that pipes and one
that mails through the system_filter_*_transport options, and $n0 carried to a user's filter as $sn0.
The main log lines (sorted, ids masked), the mailboxes and the files the filters wrote (ids and dates
masked) must be the same."""

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
system_filter = ROOT/sfilter
system_filter_user = Debian-exim
system_filter_file_transport = sft
system_filter_pipe_transport = pt
system_filter_reply_transport = rt
begin routers
uf:
  driver = redirect
  local_parts = uf
  file = ROOT/ufilter
  allow_filter
  user = Debian-exim
local:
  driver = accept
  local_parts = bob : s : al : sn7
  transport = t
begin transports
t:
  driver = appendfile
  file = ROOT/box-$local_part_data
  user = Debian-exim
sft:
  driver = appendfile
  user = Debian-exim
pt:
  driver = pipe
  user = Debian-exim
rt:
  driver = autoreply
  user = Debian-exim
"""
IDS = re.compile(r"[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}")
WANTED = re.compile(r" (<=|=>|->|\*\*|==|Completed|cancelled by|Frozen|original recipients|Delivery deferred|"
                    r"Error in system filter)")


def _mask(data: str) -> str:
    data = IDS.sub("ID", data)
    data = re.sub(r"\w{3}, \d\d \w{3} \d{4} [\d:]+ [+-]\d{4}", "DATE", data)
    data = re.sub(r"boundary=\S+|--\d+-eximdsn-\d+(--)?", "BOUNDARY", data)
    # exim4 run with -C gives up root, so its bounces are made as Debian-exim: the user is not compared
    data = re.sub(r"(?m)^(Received: from) (root|Debian-exim) by", r"\1 USER by", data)
    return re.sub(r"(?m)^(From \S+) .*$", r"\1 DATE", data)


def _line(line: str, root: Path) -> str:
    line = IDS.sub("ID", line[20:]).replace(str(root), "ROOT")
    return re.sub(r" U=\S+ P=local S=\d+", " U=USER P=local S=SIZE", line) if "<= <>" in line else line


def system_filtered(command: list[str], sfilter: str, subjects: list[str], to: str = "bob@t.example",
                    then: list[str] | None = None) -> tuple[list[str], dict[str, str], list[str]]:
    """Messages with these subjects through the filter; `then` is a command line to run afterwards on
    the first message (its id appended). Returns the log lines, the files made and the queue listing."""
    root = Path(tempfile.mkdtemp(prefix="pyxim-sysfilter-"))
    try:
        root.chmod(0o777)
        (root / "c.conf").write_text(CONFIG.replace("ROOT", str(root)))
        (root / "sfilter").write_text(sfilter.replace("ROOT", str(root)))
        (root / "ufilter").write_text("# Exim filter\ndeliver sn$sn0@t.example\n")
        for name in ("c.conf", "sfilter", "ufilter"):
            (root / name).chmod(0o644)
        for subject in subjects:
            subprocess.run(command + ["-C", str(root / "c.conf"), "-odi", "-f", "s@x.example", to],
                           input=f"From: s@x.example\nSubject: {subject}\n\nbody\n".encode(), capture_output=True,
                           timeout=60)
        if then is not None:
            first = IDS.search((root / "mainlog").read_text())
            assert first is not None
            subprocess.run(command + ["-C", str(root / "c.conf"), *then, first.group(0)], capture_output=True,
                           timeout=60)
        lines = sorted(_line(line, root) for line in (root / "mainlog").read_text().splitlines()
                       if WANTED.search(line))
        files = {p.name: _mask(p.read_text()) for p in root.iterdir()
                 if p.is_file() and p.name not in ("c.conf", "sfilter", "ufilter", "mainlog", "paniclog")}
        for name in files:
            assert (root / name).stat().st_uid != 0, name  # written as Debian-exim, never as root
        queue = subprocess.run(command + ["-C", str(root / "c.conf"), "-bp"], capture_output=True, timeout=60)
        listing = [re.sub(r"^\s*\S+\s+\S+ ", "", IDS.sub("ID", line)) for line in queue.stdout.decode().splitlines()]
        return lines, files, listing
    finally:
        shutil.rmtree(root, ignore_errors=True)


MINE = [sys.executable, "-m", "pyxim"]


def compare(sfilter: str, subjects: list[str], **kw: object) -> tuple[list[str], dict[str, str], list[str]]:
    mine = system_filtered(MINE, sfilter, subjects, **kw)  # type: ignore[arg-type]
    assert mine == system_filtered([oracle.EXIM], sfilter, subjects, **kw)  # type: ignore[arg-type]
    return mine


def test_headers_added_and_removed() -> None:
    mine = compare('# Exim filter\nheaders add "X-Filtered: yes\\nX-Two: 2"\nheaders add "  "\n'
                   'if $h_subject: contains "drop" then headers remove "subject:x-two" endif\n'
                   'headers add "X-Subject: <$h_subject:>"\n', ["hello", "drop it"])
    assert "X-Filtered: yes\nX-Two: 2\nX-Subject: <hello>\n" in mine[1]["box-bob"]
    assert "X-Subject: <>\n" in mine[1]["box-bob"]


def test_unseen_save_through_system_filter_file_transport() -> None:
    mine = compare("# Exim filter\nunseen save ROOT/copy\n", ["one"])
    assert "ID => ROOT/copy <system-filter> T=sft" in mine[0]
    assert "Subject: one" in mine[1]["copy"] and "Subject: one" in mine[1]["box-bob"]


def test_fail() -> None:
    mine = compare('# Exim filter\nif $h_subject: is "bad" then fail text "<<short>>not wanted: $h_subject:" endif\n',
                   ["bad"])
    assert "ID cancelled by system filter: short" in mine[0]
    assert "not wanted: bad" in mine[1]["box-s"] and "box-bob" not in mine[1]


def test_freeze_and_manual_thaw() -> None:
    sfilter = ('# Exim filter\nunseen save ROOT/copy\nheaders add "X-Seen: $h_subject:"\n'
               'if $h_subject: contains "cold" then freeze text "too cold" endif\n')
    mine = compare(sfilter, ["cold"])
    assert "ID Frozen by the system filter: too cold" in mine[0]
    assert any("*** frozen ***" in line for line in mine[2])
    # a forced delivery thaws it by hand: the filter's freeze is ignored, its header is added again
    mine = compare(sfilter, ["cold"], then=["-M"])
    assert mine[1]["box-bob"].count("X-Seen: cold") == 2 and mine[2] == []


def test_seen_deliver_replaces_recipients() -> None:
    mine = compare('# Exim filter\nif $h_subject: contains "divert" then seen deliver al@t.example endif\n',
                   ["divert", "keep"])
    assert "ID original recipients ignored (system filter)" in mine[0]
    assert "ID => al <system-filter> R=local T=t" in mine[0]


def test_pipe_mail_defer_and_sn_variables() -> None:
    sfilter = ('# Exim filter\nadd 7 to n0\n'
               'if $h_subject: is "pipe" then pipe "/bin/sh -c \'cat >ROOT/piped\'" endif\n'
               'if $h_subject: is "mail" then mail to "s@t.example" subject "sys: $h_subject:" text "hi" endif\n'
               'if $h_subject: is "later" then defer text "not now" endif\n')
    mine = compare(sfilter, ["pipe", "mail", "later", "sn"], to="uf@t.example")
    assert "Subject: pipe" in mine[1]["piped"] and "Subject: sys: mail" in mine[1]["box-s"]
    assert "ID Delivery deferred by system filter" in mine[0]
    assert "Subject: sn" in mine[1]["box-sn7"]


def test_filter_error_leaves_message() -> None:
    mine = compare('# Exim filter\nlogwrite "no logfile"\n', ["x"])
    assert any("Error in system filter" in line for line in mine[0]) and mine[2]


def test_errors_to_and_noerror() -> None:
    # an unrouteable copy: its bounce goes to errors_to, and noerror keeps another one from bouncing.
    # Only the log lines are compared: a bounce sent to someone other than the sender has wording of
    # its own in Exim ("A message sent by …") that pyxim's bounces do not have yet
    sfilter = ('# Exim filter\nif not error_message then\n'
               'unseen deliver nobody@t.example errors_to al@t.example\n'
               'unseen noerror deliver nobody2@t.example\nendif\n')
    mine = system_filtered(MINE, sfilter, ["copy"])
    assert mine[0] == system_filtered([oracle.EXIM], sfilter, ["copy"])[0]
    assert "nobody@t.example" in mine[1]["box-al"] and "box-s" not in mine[1]

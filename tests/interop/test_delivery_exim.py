"""Delivery outcomes and their log lines, pyxim against exim4 on the same configuration and message.

Both programs receive a message on standard input (-odi: delivery in the
foreground) for addresses that a redirect router discards, fails or cannot
route; the main log lines of the attempt — =>, **, the bounce's <= <> R=,
the bounce's own failure, Frozen, Completed — must agree.
"""

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

pytestmark = pytest.mark.skipif(oracle.EXIM is None, reason="exim4 not installed")

CONFIG = """\
primary_hostname = t.example
qualify_domain = t.example
spool_directory = ROOT/spool
log_file_path = ROOT/%slog
domainlist local_domains = t.example
begin routers
aliases:
  driver = redirect
  domains = +local_domains
  data = ${lookup{$local_part}lsearch{ROOT/aliases}}
  allow_fail
bad:
  driver = redirect
  domains = +local_domains
  local_parts = gone
  allow_fail
  data = :fail: this user has left
"""

ALIASES = "hole: :blackhole:\nalias: gone@t.example, hole@t.example\nleft: :fail: moved away\n"


def run(command: list[str], recipients: list[str]) -> list[str]:
    root = Path(tempfile.mkdtemp(prefix="pyxim-deliver-"))
    try:
        root.chmod(0o777)  # Exim drops to its own user with -C
        (root / "aliases").write_text(ALIASES)
        (root / "aliases").chmod(0o644)
        conf = root / "c.conf"
        conf.write_text(CONFIG.replace("ROOT", str(root)))
        conf.chmod(0o644)
        subprocess.run(command + ["-C", str(conf), "-odi", "-f", "sender@x.example", *recipients],
                       input=b"Subject: hi\n\nbody\n", capture_output=True, timeout=60)
        text = (root / "mainlog").read_text()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    lines = []
    for line in text.splitlines():
        line = line[20:]  # the time stamp
        line = re.sub(r"[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}", "ID", line)
        line = re.sub(r" U=\S+", " U=USER", line)
        line = re.sub(r" S=\d+", " S=SIZE", line)
        if re.match(r"ID (=>|\*\*|==|<=|Completed|Frozen)", line):
            lines.append(line)
    return sorted(lines)


@pytest.mark.parametrize("recipients", [
    ["hole@t.example"],
    ["gone@t.example", "nosuch@t.example"],
    ["alias@t.example", "left@t.example"],
])
def test_log_lines_match_exim(recipients: list[str]) -> None:
    exim = run([oracle.EXIM], recipients)
    assert any("<= sender@x.example" in line for line in exim)
    assert run([sys.executable, "-m", "pyxim"], recipients) == exim


def test_queue_run_delivers_what_was_queued(tmp_path: Path) -> None:
    """-odq leaves the message on the queue; -q delivers it and logs the run."""
    tmp_path.chmod(0o755)
    (tmp_path / "aliases").write_text(ALIASES)
    conf = tmp_path / "c.conf"
    conf.write_text(CONFIG.replace("ROOT", str(tmp_path)))
    pyxim = [sys.executable, "-m", "pyxim", "-C", str(conf)]
    subprocess.run(pyxim + ["-odq", "-f", "s@x.example", "hole@t.example"], input=b"Subject: q\n\nx\n",
                   check=True, timeout=60)
    assert subprocess.run(pyxim + ["-bpc"], capture_output=True, text=True).stdout == "1\n"
    subprocess.run(pyxim + ["-q"], check=True, timeout=60)
    assert subprocess.run(pyxim + ["-bpc"], capture_output=True, text=True).stdout == "0\n"
    log = (tmp_path / "mainlog").read_text()
    assert "Start queue run: pid=" in log and "End queue run: pid=" in log
    assert re.search(r"=> :blackhole: <hole@t.example> R=aliases\n.*Completed", log)
    assert os.listdir(tmp_path / "spool" / "input") == []


RETRY_CONFIG = """\
primary_hostname = t.example
qualify_domain = t.example
spool_directory = ROOT/spool
log_file_path = ROOT/%slog
begin routers
aliases:
  driver = redirect
  allow_defer
  allow_fail
  data = ${if eq{$local_part}{later}{:defer: try again later}{:fail: gone}}
begin retry
*   *   F,1h,10m
"""


def retry_session(command: list[str]) -> tuple[list[str], str]:
    root = Path(tempfile.mkdtemp(prefix="pyxim-retry-"))
    try:
        root.chmod(0o777)
        conf = root / "c.conf"
        conf.write_text(RETRY_CONFIG.replace("ROOT", str(root)))
        conf.chmod(0o644)
        base = command + ["-C", str(conf)]
        subprocess.run(base + ["-odi", "-f", "s@x.example", "later@t.example"], input=b"Subject: r\n\nx\n",
                       capture_output=True, timeout=60)
        subprocess.run(base + ["-q"], capture_output=True, timeout=60)  # retry time not reached
        subprocess.run(base + ["-qf"], capture_output=True, timeout=60)  # forced: tried again
        listing = subprocess.run(base + ["-bp"], capture_output=True, text=True, timeout=60).stdout
        message_id = re.findall(r"[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}", listing)[0]
        subprocess.run(base + ["-M", message_id], capture_output=True, timeout=60)
        log = (root / "mainlog").read_text()
        listing = subprocess.run(base + ["-bpc"], capture_output=True, text=True, timeout=60).stdout
    finally:
        shutil.rmtree(root, ignore_errors=True)
    lines = []
    for line in log.splitlines():
        line = re.sub(r"[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}", "ID", line[20:])
        line = re.sub(r"pid=\d+", "pid=PID", line)
        if re.match(r"(ID (==|\*\*|=>|Completed))|Start queue run|End queue run", line):
            lines.append(line)
    return lines, listing


def test_retry_times_are_honoured_as_exim_does() -> None:
    exim = retry_session([oracle.EXIM])
    assert "ID == later@t.example routing defer (-52): retry time not reached" in exim[0]
    assert retry_session([sys.executable, "-m", "pyxim"]) == exim


def frozen_queue_run(command: list[str]) -> list[str]:
    """A queue holding a frozen message 8 days old and a frozen bounce 3 days old: what one -q does."""
    from pyxim.expand.taint import Tainted
    from pyxim.spool.format import Recipient, SpoolHeader, SpoolMessage
    from pyxim.spool.ids import MessageIdGenerator
    from pyxim.spool.store import Spool

    root = Path(tempfile.mkdtemp(prefix="pyxim-frozen-"))
    try:
        spool = Spool(root / "spool")
        gen = MessageIdGenerator()
        now = time.time()
        for sender, age in (("old@x.example", 8 * 86400), ("", 3 * 86400)):
            mid = gen.new_id()
            spool.write(SpoolMessage(
                mid, sender, [Recipient("someone@elsewhere.example")],
                [SpoolHeader.of(f"Received: from x by t.example\n\tid {mid}\n"), SpoolHeader.of("Subject: old\n")],
                now - age, options={"helo_name": Tainted("x"), "received_protocol": "esmtp",
                                    "body_linecount": "1", "frozen": str(int(now - age + 60))},
            ), b"old\n")
        conf = root / "c.conf"
        conf.write_text(f"primary_hostname = t.example\nspool_directory = {root}/spool\nlog_file_path = {root}/%slog\n"
                        "timeout_frozen_after = 7d\nignore_bounce_errors_after = 2d\n")
        for dirpath, _dirs, files in os.walk(root):
            os.chmod(dirpath, 0o777)
            for f in files:
                os.chmod(os.path.join(dirpath, f), 0o666)
        conf.chmod(0o644)
        subprocess.run(command + ["-C", str(conf), "-q"], capture_output=True, timeout=60)
        log = (root / "mainlog").read_text()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    lines = []
    for line in log.splitlines():
        line = re.sub(r"[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}", "ID", line[20:])
        line = re.sub(r"pid=\d+| U=\S+| S=\d+", "", line)
        if line.startswith("ID ") and "lost privilege" not in line:
            lines.append(line)
    return sorted(lines)


def test_frozen_messages_time_out_as_in_exim() -> None:
    exim = frozen_queue_run([oracle.EXIM])
    assert "ID cancelled by timeout_frozen_after" in exim
    assert frozen_queue_run([sys.executable, "-m", "pyxim"]) == exim


def test_mail_loop_is_refused_at_delivery() -> None:
    """received_headers_max: more Received: headers than allowed fail every recipient, as in Exim."""
    def attempt(command: list[str]) -> list[str]:
        root = Path(tempfile.mkdtemp(prefix="pyxim-loop-"))
        try:
            root.chmod(0o777)
            conf = root / "c.conf"
            conf.write_text(f"primary_hostname = t.example\nqualify_domain = t.example\nspool_directory = {root}/spool\n"
                            f"log_file_path = {root}/%slog\nreceived_headers_max = 3\n"
                            "begin routers\nr:\n  driver = redirect\n  data = :blackhole:\n")
            conf.chmod(0o644)
            subprocess.run(command + ["-C", str(conf), "-odi", "-f", "s@x.example", "u@t.example", "v@t.example"],
                           input=b"Received: a\nReceived: b\nReceived: c\nSubject: x\n\nbody\n",
                           capture_output=True, timeout=60)
            log = (root / "mainlog").read_text()
        finally:
            shutil.rmtree(root, ignore_errors=True)
        return sorted(re.sub(r" U=\S+| S=\d+", "", re.sub(r"[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}", "ID", ln[20:]))
                      for ln in log.splitlines() if re.search(r" (=>|\*\*|==|<=|Completed)", ln))

    exim = attempt([oracle.EXIM])
    assert 'ID ** u@t.example: Too many "Received" headers - suspected mail loop' in exim
    assert attempt([sys.executable, "-m", "pyxim"]) == exim


ERRORS_TO_CONFIG = """\
primary_hostname = t.example
qualify_domain = t.example
spool_directory = ROOT/spool
log_file_path = ROOT/%slog
begin routers
admins:
  driver = redirect
  local_parts = postmaster
  data = :blackhole:
quiet:
  driver = redirect
  local_parts = quiet
  errors_to =
  allow_fail
  data = :fail: nobody here
gone:
  driver = redirect
  errors_to = postmaster@t.example
  allow_fail
  data = :fail: gone away
"""


def test_errors_to_matches_exim() -> None:
    """A router's errors_to sends the bounce to that address; an empty one discards it."""
    def attempt(command: list[str]) -> list[str]:
        root = Path(tempfile.mkdtemp(prefix="pyxim-errorsto-"))
        try:
            root.chmod(0o777)
            conf = root / "c.conf"
            conf.write_text(ERRORS_TO_CONFIG.replace("ROOT", str(root)))
            conf.chmod(0o644)
            subprocess.run(command + ["-C", str(conf), "-odi", "-f", "s@x.example", "a@t.example", "quiet@t.example"],
                           input=b"Subject: x\n\nbody\n", capture_output=True, timeout=60)
            log = (root / "mainlog").read_text()
        finally:
            shutil.rmtree(root, ignore_errors=True)
        return sorted(re.sub(r" U=\S+| S=\d+", "", re.sub(r"[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}", "ID", ln[20:]))
                      for ln in log.splitlines() if re.search(r" (=>|\*\*|==|<=|Completed)", ln))

    exim = attempt([oracle.EXIM])
    assert "ID => :blackhole: <postmaster@t.example> R=admins" in exim, exim
    assert attempt([sys.executable, "-m", "pyxim"]) == exim


def test_queue_run_selections_match_exim() -> None:
    """-R (a recipient contains the text) and -S (the sender does) pick messages for a queue run."""
    def session(command: list[str]) -> list[str]:
        root = Path(tempfile.mkdtemp(prefix="pyxim-select-"))
        try:
            root.chmod(0o777)
            conf = root / "c.conf"
            conf.write_text(f"primary_hostname = t.example\nqualify_domain = t.example\nspool_directory = {root}/spool\n"
                            f"log_file_path = {root}/%slog\nbegin routers\nr:\n  driver = redirect\n"
                            "  data = :blackhole:\n")
            conf.chmod(0o644)
            base = command + ["-C", str(conf)]
            for sender, rcpt in (("a@one.example", "x@t.example"), ("b@two.example", "Yes@t.example")):
                subprocess.run(base + ["-odq", "-f", sender, rcpt], input=b"S: x\n\nb\n", capture_output=True,
                               timeout=60)
            for args in (["-R", "yes"], ["-S", "TWO"], ["-S", "one"]):
                subprocess.run(base + args, capture_output=True, timeout=60)
            log = (root / "mainlog").read_text()
        finally:
            shutil.rmtree(root, ignore_errors=True)
        return [re.sub(r"pid=\d+", "pid=PID", re.sub(r"[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}", "ID", ln[20:]))
                for ln in log.splitlines() if re.search(r"queue run|=>|Completed", ln)]

    exim = session([oracle.EXIM])
    assert "Start queue run: pid=PID -R yes" in exim
    assert session([sys.executable, "-m", "pyxim"]) == exim

"""RFC 3461 DSN: a success notification for NOTIFY=SUCCESS, RET=HDRS bounces and NOTIFY=NEVER,
compared with what exim4 writes to the sender's mailbox for the same SMTP session."""

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
domainlist local_domains = t.example
acl_smtp_rcpt = accept
dsn_advertise_hosts = *
begin routers
gone:
  driver = redirect
  local_parts = gone : never
  allow_fail
  data = :fail: no such user here
local:
  driver = accept
  domains = +local_domains
  local_parts = bob : sender
  transport = mbox
begin transports
mbox:
  driver = appendfile
  file = ROOT/mail/$local_part_data
  user = Debian-exim
"""

SESSIONS = {
    "success": "MAIL FROM:<sender@t.example> RET=HDRS ENVID=abc123\r\n"
               "RCPT TO:<bob@t.example> NOTIFY=SUCCESS ORCPT=rfc822;Bob@T.example\r\n",
    "success-full": "MAIL FROM:<sender@t.example> RET=FULL\r\nRCPT TO:<bob@t.example> NOTIFY=SUCCESS,FAILURE\r\n",
    "failure-headers": "MAIL FROM:<sender@t.example> RET=HDRS\r\nRCPT TO:<gone@t.example>\r\n",
    "never": "MAIL FROM:<sender@t.example>\r\nRCPT TO:<never@t.example> NOTIFY=NEVER\r\n"
             "RCPT TO:<bob@t.example>\r\n",
}


def run(command: list[str], envelope: str, config: str = CONFIG, files: dict[str, str] | None = None,
        ) -> tuple[bytes, list[str]]:
    root = Path(tempfile.mkdtemp(prefix="pyxim-dsn-"))
    try:
        root.chmod(0o777)
        (root / "mail").mkdir()
        (root / "mail").chmod(0o777)
        for name, text in (files or {}).items():
            (root / name).write_text(text)
            (root / name).chmod(0o644)
        conf = root / "c.conf"
        conf.write_text(config.replace("ROOT", str(root)))
        conf.chmod(0o644)
        script = f"EHLO x\r\n{envelope}DATA\r\nSubject: dsn test\r\n\r\nbody\r\n.\r\nQUIT\r\n"
        subprocess.run(command + ["-C", str(conf), "-bs", "-odi"], input=script.encode(), capture_output=True,
                       timeout=60)
        mailbox = root / "mail" / "sender"
        report = mailbox.read_bytes() if mailbox.exists() else b""
        log = (root / "mainlog").read_text()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    report = re.sub(rb"[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}", b"ID", report)
    report = re.sub(rb"\d+-eximdsn-\d+", b"BOUNDARY", report)
    report = re.sub(rb"\w{3}, \d\d \w{3} \d{4} [\d:]+ [+-]\d{4}", b"DATE", report)
    report = re.sub(rb"^From MAILER-DAEMON .*$", b"From MAILER-DAEMON DATE", report, flags=re.M)
    report = re.sub(rb"Received: from \S+ by", b"Received: from USER by", report)
    lines = []
    for line in log.splitlines():
        line = re.sub(r"[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}", "ID", line[20:])
        line = re.sub(r" U=\S+| S=\d+", "", line)
        if re.match(r"ID (=>|\*\*|==|<=|Completed)", line):
            lines.append(line)
    return report, sorted(lines)


@pytest.mark.parametrize("name", list(SESSIONS))
def test_reports_match_exim(name: str) -> None:
    exim = run([oracle.EXIM], SESSIONS[name])
    assert exim[1], "exim logged nothing"
    assert run([sys.executable, "-m", "pyxim"], SESSIONS[name]) == exim


WARN_CONFIG = """\
primary_hostname = t.example
qualify_domain = t.example
spool_directory = ROOT/spool
log_file_path = ROOT/%slog
domainlist local_domains = t.example
begin routers
later:
  driver = redirect
  local_parts = later : soon
  allow_defer
  data = :defer: not now
local:
  driver = accept
  domains = +local_domains
  local_parts = sender
  transport = mbox
begin transports
mbox:
  driver = appendfile
  file = ROOT/mail/$local_part_data
  user = Debian-exim
begin retry
*  *  F,10d,10m
"""


def delayed_queue_run(command: list[str], hours: int, extra_header: str = "", config: str = WARN_CONFIG,
                      files: dict[str, str] | None = None) -> tuple[bytes, list[str], str]:
    """A message on the queue for `hours` with two deferred recipients; one -q."""
    import time

    from pyxim.expand.taint import Tainted
    from pyxim.spool.format import Recipient, SpoolHeader, SpoolMessage
    from pyxim.spool.ids import MessageIdGenerator
    from pyxim.spool.store import Spool

    root = Path(tempfile.mkdtemp(prefix="pyxim-warn-"))
    try:
        (root / "mail").mkdir()
        spool = Spool(root / "spool")
        mid = MessageIdGenerator().new_id()
        headers = [SpoolHeader.of(f"Received: from x by t.example\n\tid {mid}\n"), SpoolHeader.of("Subject: old one\n"),
                   SpoolHeader.of(f"Message-Id: <E{mid}@t.example>\n")]
        if extra_header:
            headers.append(SpoolHeader.of(extra_header))
        spool.write(SpoolMessage(mid, "sender@t.example", [Recipient("later@t.example"), Recipient("soon@t.example")],
                                 headers, time.time() - hours * 3600,
                                 options={"helo_name": Tainted("x"), "received_protocol": "esmtp",
                                          "body_linecount": "1"}), b"old\n")
        for name, text in (files or {}).items():
            (root / name).write_text(text)
        conf = root / "c.conf"
        conf.write_text(config.replace("ROOT", str(root)))
        for dirpath, _dirs, files in os.walk(root):
            os.chmod(dirpath, 0o777)
            for f in files:
                os.chmod(os.path.join(dirpath, f), 0o666)
        conf.chmod(0o644)
        subprocess.run(command + ["-C", str(conf), "-q"], capture_output=True, timeout=60)
        mailbox = root / "mail" / "sender"
        report = mailbox.read_bytes() if mailbox.exists() else b""
        log = (root / "mainlog").read_text()
        header = spool.paths(mid)[0].read_text().split("\n")[3]  # "<time> <warning count>"
    finally:
        shutil.rmtree(root, ignore_errors=True)
    report = re.sub(rb"[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}", b"ID", report)
    report = re.sub(rb"\d+-eximdsn-\d+", b"BOUNDARY", report)
    report = re.sub(rb"\w{3}, \d\d \w{3} \d{4} [\d:]+ [+-]\d{4}", b"DATE", report)
    report = re.sub(rb"^From MAILER-DAEMON .*$", b"From MAILER-DAEMON DATE", report, flags=re.M)
    report = re.sub(rb"Received: from \S+ by", b"Received: from USER by", report)
    lines = []
    for line in log.splitlines():
        line = re.sub(r"[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}", "ID", line[20:])
        line = re.sub(r" U=\S+| S=\d+|pid=\d+", "", line)
        if re.match(r"ID (=>|\*\*|==|<=|Completed)", line):
            lines.append(line)
    return report, sorted(lines), header.split(" ")[1]


@pytest.mark.parametrize(("hours", "header"), [(25, ""), (5, ""), (30, "Precedence: bulk\n")])
def test_delay_warning_matches_exim(hours: int, header: str) -> None:
    exim = delayed_queue_run([oracle.EXIM], hours, header)
    pyxim = delayed_queue_run([sys.executable, "-m", "pyxim"], hours, header)
    assert pyxim == exim
    if hours == 25 and not header:
        assert b"Subject: Warning: message ID delayed 24 hours" in exim[0] and exim[2] == "1"


def test_redirected_recipient_is_reported_once_as_received() -> None:
    """NOTIFY=SUCCESS on an alias: one report line, naming the alias (Exim's redirect router reports)."""
    config = CONFIG.replace("gone:\n", "team:\n  driver = redirect\n  local_parts = team\n"
                            "  data = bob@t.example, sender@t.example\ngone:\n")
    session = "MAIL FROM:<sender@t.example>\r\nRCPT TO:<team@t.example> NOTIFY=SUCCESS\r\n"
    results = []
    for command in ([oracle.EXIM], [sys.executable, "-m", "pyxim"]):
        root = Path(tempfile.mkdtemp(prefix="pyxim-dsn-alias-"))
        try:
            root.chmod(0o777)
            (root / "mail").mkdir()
            (root / "mail").chmod(0o777)
            conf = root / "c.conf"
            conf.write_text(config.replace("ROOT", str(root)))
            conf.chmod(0o644)
            script = f"EHLO x\r\n{session}DATA\r\nSubject: dsn test\r\n\r\nbody\r\n.\r\nQUIT\r\n"
            subprocess.run(command + ["-C", str(conf), "-bs", "-odi"], input=script.encode(), capture_output=True,
                           timeout=60)
            report = (root / "mail" / "sender").read_bytes()
        finally:
            shutil.rmtree(root, ignore_errors=True)
        report = re.sub(rb"[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}", b"ID", report)
        report = re.sub(rb"\d+-eximdsn-\d+", b"BOUNDARY", report)
        report = re.sub(rb"\w{3}, \d\d \w{3} \d{4} [\d:]+ [+-]\d{4}", b"DATE", report)
        report = re.sub(rb"^From (\S+) .*$", rb"From \1 DATE", report, flags=re.M)
        results.append(re.sub(rb"Received: from \S+ by", b"Received: from USER by", report))
    assert results[0].count(b"<team@t.example> (relayed via non") == 1
    assert results[1] == results[0]


BOUNCE_TEMPLATE = """\
Subject: Bounced for $bounce_recipient
X-Limit: $bounce_return_size_limit
****
Sorry, your mail to these could not go:
****
Pipe said:
****
Here is your message back (limit $bounce_return_size_limit):
****
"""

WARN_TEMPLATE = """\
Subject: Still waiting after $warn_message_delay
X-Who: $warn_message_recipients
****
Your message to the addresses below has waited $warn_message_delay:
****
We keep trying.
****
"""


@pytest.mark.parametrize("extra", [
    "bounce_message_file = ROOT/bounce.tmpl",
    "bounce_message_file = ROOT/missing.tmpl",
    "bounce_message_text = Hello from the postmaster.\nerrors_reply_to = pm@t.example",
])
def test_bounce_templates_match_exim(extra: str) -> None:
    """bounce_message_file's items (headers, intro; Exim 4.96 uses no others), bounce_message_text
    and errors_reply_to: the bounce is byte for byte exim4's."""
    config = CONFIG.replace("dsn_advertise_hosts = *\n", f"dsn_advertise_hosts = *\n{extra}\n")
    session = "MAIL FROM:<sender@t.example>\r\nRCPT TO:<gone@t.example>\r\n"
    files = {"bounce.tmpl": BOUNCE_TEMPLATE}
    exim = run([oracle.EXIM], session, config, files)
    assert exim[1], "exim logged nothing"
    assert run([sys.executable, "-m", "pyxim"], session, config, files) == exim
    if "bounce.tmpl" in extra:
        assert b"Subject: Bounced for sender@t.example\nX-Limit: 102400\n" in exim[0]


@pytest.mark.parametrize("extra", ["warn_message_file = ROOT/warn.tmpl", "errors_reply_to = pm@t.example"])
def test_warning_templates_match_exim(extra: str) -> None:
    """warn_message_file (headers, intro, the text after the list) and the original's Date: line."""
    config = WARN_CONFIG.replace("qualify_domain = t.example\n", f"qualify_domain = t.example\n{extra}\n")
    files = {"warn.tmpl": WARN_TEMPLATE}
    date = "Date: Tue, 01 Dec 2026 10:00:00 +0000\n"
    exim = delayed_queue_run([oracle.EXIM], 25, date, config, files)
    assert delayed_queue_run([sys.executable, "-m", "pyxim"], 25, date, config, files) == exim
    if "warn.tmpl" in extra:
        assert b"Subject: Still waiting after 24 hours\n" in exim[0] and b"\nWe keep trying.\n" in exim[0]

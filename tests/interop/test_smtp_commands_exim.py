"""SMTP commands around the mail transaction, compared with exim4 under -bh on the same configuration:
the replies (stdout) and the log lines (stderr) must be the same.

- smtp_accept_max_nonmail: which commands count (the first HELO/EHLO and the first RSET are free),
  the 554 and the "dropped: too many nonmail commands" line, with the last message's id.
- HELO/EHLO syntax: address literals, helo_allow_chars, helo_accept_junk_hosts.
- VRFY (routes the address: 250 is deliverable / 550 / 451, "VRFY failed" logged), EXPN (one level of
  redirection, pipes included), ETRN ("#" form without smtp_etrn_command, 501 otherwise), HELP (the
  command list follows the ACLs that are set), and the refusals when their ACLs are unset.
"""

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

pytestmark = pytest.mark.skipif(oracle.EXIM is None, reason="needs exim4")

PYXIM = [sys.executable, "-m", "pyxim"]
IDS = re.compile(r"[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}")

NONMAIL = """\
primary_hostname = t.example
acl_smtp_rcpt = accept
smtp_accept_max_nonmail = 3
"""
NONMAIL_SESSIONS = [
    "RSET\r\nRSET\r\nRSET\r\nRSET\r\nRSET\r\nQUIT\r\n",
    "NOOP\r\nNOOP\r\nNOOP\r\nNOOP\r\nQUIT\r\n",
    "HELO x\r\nHELO x\r\nHELO x\r\nHELO x\r\nHELO x\r\nQUIT\r\n",
    "NOOP\r\nHELO x\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<x@t.example>\r\nDATA\r\nx\r\n.\r\nNOOP\r\nNOOP\r\nNOOP\r\n"
    "QUIT\r\n",
    "HELO x\r\nMAIL FROM:<a@b.c>\r\nRSET\r\nRSET\r\nRSET\r\nMAIL FROM:<a@b.c>\r\nRSET\r\nQUIT\r\n",
    "HELP\r\nhelp\r\nVRFY a@t.example\r\nEXPN a\r\nQUIT\r\n",
    # after each message the next RSET is free again
    "HELO x\r\n" + "MAIL FROM:<a@b.c>\r\nRCPT TO:<x@t.example>\r\nDATA\r\nx\r\n.\r\nRSET\r\n" * 5 + "RSET\r\nRSET\r\n"
    "RSET\r\nRSET\r\nQUIT\r\n",
]

# (no literal of this machine's own addresses: helo_lookup_domains would send Exim to the system resolver)
HELO_NAMES = ["a_b", "[1.2.3.4]", "[IPv6:2001:db8::1]", "[2001:db8::1]", "[1.2.3]", "a..b", "-a", "a+b", "a/b", "[1.2.3.4",
              "[IPv6:1.2.3.4]", "xn--a.example"]
HELO_CONFIGS = [
    "primary_hostname = t.example\nsmtp_max_synprot_errors = 100\nsmtp_accept_max_nonmail = 100\n",
    "primary_hostname = t.example\nsmtp_max_synprot_errors = 100\nsmtp_accept_max_nonmail = 100\n"
    "helo_allow_chars = _+\n",
    "primary_hostname = t.example\nsmtp_max_synprot_errors = 100\nsmtp_accept_max_nonmail = 100\n"
    "helo_accept_junk_hosts = 10.0.0.0/8\n",
]

COMMANDS = """\
primary_hostname = t.example
acl_smtp_vrfy = accept
acl_smtp_expn = accept
acl_smtp_etrn = accept
smtp_accept_max_nonmail = 100
begin routers
al:
  driver = redirect
  local_parts = list
  data = a@t.example, b@t.example, "|/bin/cat"
  pipe_transport = t
ok:
  driver = accept
  local_parts = a : b
  transport = t
dfr:
  driver = redirect
  local_parts = d
  data = :defer: try later
refuse:
  driver = redirect
  local_parts = gone
  allow_fail
  data = :fail: moved away
begin transports
t:
  driver = appendfile
  file = /dev/null
"""
COMMANDS_SESSION = (
    "VRFY a@t.example\r\nVRFY a\r\nVRFY <a@t.example>\r\nVRFY nobody@t.example\r\nVRFY d@t.example\r\n"
    "VRFY gone@t.example\r\nVRFY list\r\nVRFY\r\nEXPN list\r\nEXPN a\r\nEXPN nobody\r\nEXPN d\r\nEXPN\r\n"
    "ETRN #x\r\nETRN\r\nETRN x.example\r\nHELP\r\nHELO x\r\nMAIL FROM:<s@x.example>\r\nETRN #y\r\nRSET\r\n"
    "VRFY a@t.example\r\nQUIT\r\n"
)
REFUSED_SESSION = "VRFY a@b.c\r\nEXPN a\r\nETRN #a\r\nHELO x\r\nVRFY b@b.c\r\nHELP\r\nQUIT\r\n"


def _session(command: list[str], conf: Path, script: str) -> tuple[list[str], list[str]]:
    proc = subprocess.run(command + ["-C", str(conf), "-bh", "10.0.0.1"], input=script.encode(),
                          capture_output=True, timeout=60)
    replies = [IDS.sub("ID", line) for line in proc.stdout.decode(errors="replace").splitlines()
               if re.match(r"\d{3}[ -]", line) and not line.startswith("220 ")]
    logs = [IDS.sub("ID", line) for line in proc.stderr.decode(errors="replace").splitlines()
            if line.startswith("LOG: ")]
    return replies, logs


def _all(command: list[str], work: Path) -> list[tuple[str, list[str], list[str]]]:
    runs = []

    def run(name: str, config: str, script: str) -> None:
        conf = work / f"{name}.conf"
        conf.write_text(config)
        os.chmod(conf, 0o644)
        runs.append((f"{name}: {script!r}", *_session(command, conf, script)))

    for script in NONMAIL_SESSIONS:
        run("nonmail", NONMAIL, script)
    for n, config in enumerate(HELO_CONFIGS):
        run(f"helo{n}", config, "".join(f"HELO {name}\r\n" for name in HELO_NAMES) + "QUIT\r\n")
    run("commands", COMMANDS, COMMANDS_SESSION)
    run("refused", "primary_hostname = t.example\n", REFUSED_SESSION)
    return runs


def test_smtp_commands_as_exim() -> None:
    work = Path(tempfile.mkdtemp(prefix="pyxim-smtpcmds-"))
    os.chmod(work, 0o755)
    try:
        mine = _all(PYXIM, work)
        theirs = _all([oracle.EXIM], work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = "\n".join(line for _, replies, logs in mine for line in replies + logs)
    # the cases say something
    assert "554 Too many nonmail commands" in text
    assert 'LOG: ID SMTP call from (x) [10.0.0.1] dropped: too many nonmail commands (last was "NOOP")' in text
    assert "250 <a@t.example> is deliverable" in text and "550 <gone@t.example> moved away" in text
    assert "250 <|/bin/cat>" in text and "501 argument must begin with #" in text
    assert "501 Syntactically invalid HELO argument(s)" in text and "250 t.example Hello a_b [10.0.0.1]" in text
    for (name, replies, logs), (_, exim_replies, exim_logs) in zip(mine, theirs, strict=True):
        assert replies == exim_replies, name
        assert logs == exim_logs, name


@pytest.mark.parametrize("config", ["", "pipelining_connect_advertise_hosts = 10.0.0.0/8\n",
                                    "pipelining_connect_advertise_hosts = :\n", "pipelining_advertise_hosts = :\n"])
@pytest.mark.parametrize("client", ["10.0.0.1", "192.0.2.1"])
def test_ehlo_keywords_as_exim(config: str, client: str) -> None:
    """The EHLO keywords, PIPECONNECT included (offered with PIPELINING to pipelining_connect_advertise_hosts).
    STARTTLS is left out: Exim offers it with a certificate it makes itself when tls_certificate is unset,
    pyxim only with a configured certificate."""
    work = Path(tempfile.mkdtemp(prefix="pyxim-ehlo-"))
    os.chmod(work, 0o755)
    try:
        conf = work / "c.conf"
        conf.write_text("primary_hostname = t.example\n" + config)
        os.chmod(conf, 0o644)
        outputs = []
        for command in (PYXIM, [oracle.EXIM]):
            proc = subprocess.run(command + ["-C", str(conf), "-bh", client], input=b"EHLO x\r\nQUIT\r\n",
                                  capture_output=True, timeout=60)
            outputs.append([line for line in proc.stdout.decode().splitlines()
                            if line.startswith("250") and "STARTTLS" not in line])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    assert outputs[0] == outputs[1]
    assert ("250-PIPECONNECT" in outputs[0]) == (config == "" or (config.startswith("pipelining_connect_advertise_hosts"
                                                                                    " = 10") and client == "10.0.0.1"))

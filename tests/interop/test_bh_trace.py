"""The ACL trace of `-bh`: pyxim prints Exim's ">>> " debugging lines for the ACLs it runs.

`exim4 -bh IP` shows on standard error which ACL it uses, each statement it
processes (with file and line), each condition checked (and its expansion),
message / log_message, how each statement's test came out and how the ACL
ended; and, for hosts / domains / local_parts conditions, how each list
matched. The same sessions go through both programs and the lines of those
kinds must be the same, byte for byte, in the same order.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.interop import oracle

pytestmark = pytest.mark.skipif(shutil.which("exim4") is None, reason="exim4 not installed")

ROOT = Path(__file__).resolve().parents[2]

# The lines of the ACL structure: using / processing / check (and its expansion) / message /
# outcome of a statement / end of an ACL; nested ACLs are indented one space per level.
STRUCTURE = re.compile(
    r'^>>> +(?:using ACL "|processing "|check |= |message: |l_message: '
    r"|(?:accept|defer|deny|discard|drop|require|warn): |end of )"
)
# List matches: 'SUBJECT in "LIST"? yes (matched "ITEM")' / 'no (end of list)'.
LISTS = re.compile(r'^>>> +\S* in ".*"\? (?:yes|no) \((?:matched ".*"(?: - cached)?|end of list)\)$')

MAIN = """\
primary_hostname = test.example
domainlist local_domains = test.example : !bad.example : *.example
hostlist relays = !9.9.9.9 : 1.2.3.0/24
"""

CONFIGS = {
    # the example of the task: warn, accept with a host list, deny with message, require
    "basic": MAIN + """\
acl_smtp_mail = mail
acl_smtp_rcpt = rcpt
begin acl
mail:
  warn  set acl_m1 = x
  accept hosts = 1.2.3.4 : 5.6.7.8
rcpt:
  deny   local_parts = bad
         message = go away
  require domains = +local_domains
  accept
""",
    # expansions shown under "check", logwrite/control/log_message, defer, drop, endpass
    "verbs": MAIN + """\
acl_smtp_helo = accept
acl_smtp_mail = mail
acl_smtp_rcpt = rcpt
begin acl
mail:
  warn  set acl_m_a = $sender_address
        logwrite = hello $sender_address
        message = warned
        log_message = wlog
  warn  control = no_pipelining
  defer condition = ${if eq{$sender_address}{later@x.y}}
        message = try later
  drop  condition = ${if eq{$sender_address}{drop@x.y}}
  accept endpass
         condition = ${if eq{$sender_address_domain}{b.c}}
  accept
rcpt:
  discard local_parts = disc
  deny    local_parts = \\N^x.*\\N
          message = no x
  require domains = +local_domains
          message = relay not permitted
  accept  local_parts = q
          set acl_m_averyveryverylongvariablename = $local_part
          set acl_c9 = \\N$x\\N
          set acl_m2 = ${if eq{1}{2}{yes}fail}
  deny    local_parts = implicit
          message = boo
""",
    # nested acl conditions (indented), negated, ${acl} in an expansion, and an ACL given in line
    "nested": MAIN + """\
acl_smtp_mail = accept hosts = +relays
acl_smtp_rcpt = rcpt
begin acl
sub:
  accept local_parts = sub : nest
         log_message = sublog $local_part
  deny   message = sub denied $local_part
rcpt:
  warn   set acl_m1 = ${acl{sub}{z}}
  deny   !acl = sub
         local_parts = nest
  accept local_parts = sub
         acl = sub
  accept local_parts = q
""",
    # conditions that cannot be decided: an expansion error, a list lookup that defers (in
    # warn, skipped; in deny, a temporary error), a forced failure
    "defer": MAIN + """\
acl_smtp_rcpt = rcpt
begin acl
rcpt:
  warn   local_parts = w
         domains = ${lookup{$domain}lsearch{/nonexistent/file}}
  deny   local_parts = d
         domains = ${lookup{$domain}lsearch{/nonexistent/file}}
  deny   local_parts = e
         condition = ${lookup{x}lsearch{/nonexistent/file}}
  deny   local_parts = f
         condition = ${if eq{1}{1}{yes}fail}
         condition = ${if eq{1}{2}{yes}fail}
  accept
""",
    # list matching: named lists (and their remembered results), negation, hosts
    "lists": MAIN + """\
acl_smtp_rcpt = rcpt
begin acl
rcpt:
  warn   domains = +local_domains
  warn   domains = +local_domains : other
  warn   domains = !x.example : !y.example
  warn   hosts = +relays
  warn   hosts = +relays
  warn   hosts = !1.2.3.4
  warn   local_parts = ^a.* : !b
  warn   local_parts = !b
  accept
""",
}

SESSION = {
    "basic": ["EHLO x", "MAIL FROM:<a@b.c>", "RCPT TO:<bad@test.example>", "RCPT TO:<ok@test.example>",
              "RCPT TO:<ok@else.org>", "QUIT"],
    "verbs": ["HELO x", "MAIL FROM:<a@b.c>", "RSET", "MAIL FROM:<later@x.y>", "MAIL FROM:<a@q.r>",
              "MAIL FROM:<z@b.c>", "RCPT TO:<disc@test.example>", "RCPT TO:<xy@test.example>",
              "RCPT TO:<q@elsewhere.org>", "RCPT TO:<q@test.example>", "RCPT TO:<implicit@test.example>",
              "RSET", "MAIL FROM:<drop@x.y>", "QUIT"],  # drop ends the session
    "nested": ["HELO x", "MAIL FROM:<a@b.c>", "RCPT TO:<sub@test.example>", "RCPT TO:<nest@test.example>",
               "RCPT TO:<q@test.example>", "RCPT TO:<z@test.example>", "QUIT"],
    "defer": ["HELO x", "MAIL FROM:<a@b.c>", "RCPT TO:<w@test.example>", "RCPT TO:<d@test.example>",
              "RCPT TO:<e@test.example>", "RCPT TO:<f@test.example>", "QUIT"],
    "lists": ["HELO x", "MAIL FROM:<a@b.c>", "RCPT TO:<ok@test.example>", "RCPT TO:<b@x.example>",
              "RCPT TO:<a@bad.example>", "QUIT"],
}


def run(command: list[str], conf: Path, lines: list[str], host: str = "1.2.3.4") -> tuple[list[str], list[str]]:
    feed = "".join(line + "\r\n" for line in lines).encode()
    proc = subprocess.run(command + ["-C", str(conf), "-bh", host], input=feed, capture_output=True,
                          timeout=60, cwd=ROOT)
    out = proc.stdout.decode("utf-8", "replace").replace("\r\n", "\n").split("\n")
    return out, proc.stderr.decode("utf-8", "replace").split("\n")


@pytest.fixture(scope="module")
def work() -> Path:
    path = Path(tempfile.mkdtemp(prefix="pyxim-bh-trace-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _conf(work: Path, name: str) -> Path:
    path = work / f"{name}.conf"
    path.write_text(CONFIGS[name])
    path.chmod(0o644)
    return path


def _both(work: Path, name: str, host: str = "1.2.3.4") -> tuple[tuple[list[str], list[str]], ...]:
    conf = _conf(work, name)
    exim = run([oracle.EXIM or "exim4"], conf, SESSION[name], host)
    pyxim = run([sys.executable, "-m", "pyxim"], conf, SESSION[name], host)
    return exim, pyxim


@pytest.mark.parametrize("name", list(CONFIGS))
def test_acl_structure_lines_match_exim(work: Path, name: str) -> None:
    exim, pyxim = _both(work, name)
    want = [line for line in exim[1] if STRUCTURE.match(line)]
    assert len(want) > 5
    assert [line for line in pyxim[1] if STRUCTURE.match(line)] == want


@pytest.mark.parametrize("name", ["basic", "nested", "defer", "lists"])
def test_list_match_lines_match_exim(work: Path, name: str) -> None:
    """The configurations without address lists (senders, recipients), whose lines pyxim lacks."""
    exim, pyxim = _both(work, name)
    want = [line for line in exim[1] if LISTS.match(line) or STRUCTURE.match(line)]
    assert any(LISTS.match(line) for line in want)
    assert [line for line in pyxim[1] if LISTS.match(line) or STRUCTURE.match(line)] == want


def test_other_host_and_banner(work: Path) -> None:
    """A host the lists do not match; the banner lines on standard output are Exim's."""
    exim, pyxim = _both(work, "nested", host="9.9.9.9")
    assert [line for line in pyxim[1] if STRUCTURE.match(line) or LISTS.match(line)] == [
        line for line in exim[1] if STRUCTURE.match(line) or LISTS.match(line)
    ]
    banner = [line for line in exim[0] if line.startswith("****")]
    assert "**** but without any ident (RFC 1413) callback." in banner
    assert [line for line in pyxim[0] if line.startswith("****")] == banner


def test_no_trace_outside_bh(work: Path) -> None:
    """-bs runs the same ACLs without a word of trace."""
    conf = _conf(work, "basic")
    feed = "".join(line + "\r\n" for line in SESSION["basic"]).encode()
    # a real session logs: keep its log in the test's directory, not /var/log/pyxim
    logs = f"-DLOGS=log_file_path = {work}/%slog"
    conf.write_text("LOGS\n" + conf.read_text())
    proc = subprocess.run([sys.executable, "-m", "pyxim", "-C", str(conf), logs, "-bs"], input=feed,
                          capture_output=True, timeout=60, cwd=ROOT)
    assert b">>>" not in proc.stderr and b">>>" not in proc.stdout

"""SMTP replies: `pyxim -bh` and `exim4 -bh` answer the same command scripts the same way.

-bh runs a whole SMTP session on standard input and output, ACLs included,
without spooling anything. Message ids and the banner's date differ by
nature and are masked; everything else must be byte-identical.
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

pytestmark = pytest.mark.skipif(oracle.EXIM is None, reason="exim4 not installed")

CONFIG = """\
primary_hostname = mail.example.org
qualify_domain = example.org
domainlist local_domains = @ : example.org
hostlist trusted = 127.0.0.2
acl_smtp_helo = acl_check_helo
acl_smtp_mail = acl_check_mail
acl_smtp_rcpt = acl_check_rcpt
acl_smtp_data = acl_check_data
prdr_enable = true
tls_advertise_hosts =
pipelining_connect_advertise_hosts =
message_size_limit = 10M
begin acl
acl_check_helo:
  deny    condition = ${if eq{$sender_helo_name}{evil.example}}
          message = go away $sender_helo_name
  accept
acl_check_mail:
  deny    senders = *@spam.example
          message = sender $sender_address refused
  defer   senders = later@example.net
  accept
acl_check_rcpt:
  deny    local_parts = bad
          message = no bad people
  deny    local_parts = twolines
          message = first line\\nsecond line
  deny    local_parts = oneline
          control = no_multiline_responses
          message = first line\\nsecond line
  warn    local_parts = queued
          control = queue_only
          control = queue
          control = debug
  warn    set acl_m_seen = yes
  require domains = +local_domains : friend.example
          message = relay not permitted
  deny    local_parts = ^.*[@%!/|]
  accept  hosts = +trusted
  accept  condition = ${if eq{$acl_m_seen}{yes}}
acl_check_data:
  deny    condition = ${if match{$h_subject:}{spam}}
          message = spam subject
  deny    condition = ${if def:h_x-verify:}
          !verify = header_syntax
          message = header syntax
  deny    condition = ${if def:h_x-verify:}
          !verify = not_blind
          message = blind recipients
  deny    regex = \\N^X-Forbidden:: (\\w+)\\N
          message = forbidden $regex1
  accept
begin authenticators
plain:
  driver = plaintext
  public_name = PLAIN
  server_prompts = :
  server_condition = ${if and{{eq{$auth2}{user}}{eq{$auth3}{secret}}}}
  server_set_id = $auth2
login:
  driver = plaintext
  public_name = LOGIN
  server_prompts = Username:: : Password::
  server_condition = ${if and{{eq{$auth1}{user}}{eq{$auth2}{secret}}}}
  server_set_id = $auth1
cram:
  driver = cram_md5
  public_name = CRAM-MD5
  server_secret = ${if eq{$auth1}{user}{secret}fail}
begin routers
r:
  driver = accept
  transport = t
begin transports
t:
  driver = appendfile
  file = /dev/null
"""

SCRIPTS = {
    "basic": [
        "EHLO client.example", "MAIL FROM:<a@b.example>", "RCPT TO:<x@example.org>", "RCPT TO:<bad@example.org>",
        "RCPT TO:<x@other.net>", "DATA", "Subject: hi", "", "body", ".", "RSET",
        "MAIL FROM:<a@b.example> SIZE=100 BODY=8BITMIME", "RCPT TO:<x@example.org>", "NOOP", "XYZZY",
        "MAIL FROM:<c@d>", "HELO again", "QUIT",
    ],
    "case": ["EHLO c", "MAIL FROM:<a@b>", "RCPT TO:<BAD@example.org>", "RCPT TO:<Bad@Example.ORG>",
             "RCPT TO:<Good@EXAMPLE.org>", "QUIT"],
    "multiline": ["EHLO c", "MAIL FROM:<a@b>", "RCPT TO:<twolines@example.org>", "RCPT TO:<queued@example.org>",
                  "RCPT TO:<oneline@example.org>", "RCPT TO:<twolines@example.org>", "QUIT"],
    "order": ["DATA", "MAIL FROM:<a@b.example>", "RCPT TO:<x@example.org>", "QUIT"],
    "helo_refused": ["EHLO evil.example", "EHLO good.example", "QUIT"],
    "sender_acl": [
        "HELO c", "MAIL FROM:<x@spam.example>", "MAIL FROM:<later@example.net>", "MAIL FROM:<>",
        "RCPT TO:<friend@friend.example>", "QUIT",
    ],
    "data_acl": ["EHLO c", "MAIL FROM:<a@b>", "RCPT TO:<x@example.org>", "DATA", "Subject: buy spam", "", "x", ".", "QUIT"],
    "syntax": ["EHLO", "EHLO a b", "HELO c", "MAIL FROM:bad address", "MAIL FROM:<a@b>", "RCPT TO:<>", "QUIT"],
    "too_many_errors": ["FOO", "BAR", "BAZ", "QUX", "QUIT"],
    "params": ["EHLO c", "MAIL FROM:<a@b> FOO=bar", "MAIL FROM:<a@b> SIZE=99999999999", "QUIT"],
    "unqualified": ["EHLO c", "MAIL FROM:<a@b>", "RCPT TO:postmaster", "RCPT TO:x@example.org", "QUIT"],
    "bdat_after_helo": ["HELO c", "MAIL FROM:<a@b>", "RCPT TO:<x@example.org>", "BDAT 3 LAST", "abcQUIT"],
    "bdat": ["EHLO c", "MAIL FROM:<a@b>", "RCPT TO:<x@example.org>", "BDAT 9", "Subj: x", "BDAT 0 LAST", "QUIT"],
    "auth_plain": ["EHLO c", "AUTH PLAIN AHVzZXIAd3Jvbmc=", "AUTH PLAIN AHVzZXIAc2VjcmV0", "AUTH PLAIN AHVzZXIAc2VjcmV0", "MAIL FROM:<a@b> AUTH=<>",
                   "RCPT TO:<x@other.example>", "QUIT"],
    "auth_login": ["EHLO c", "AUTH LOGIN", "dXNlcg==", "c2VjcmV0", "QUIT"],
    "auth_errors": ["EHLO c", "AUTH PLAIN", "*", "AUTH PLAIN !!!", "AUTH NOSUCH", "QUIT"],
    "auth_not_advertised": ["HELO x", "AUTH PLAIN AHVzZXIAc2VjcmV0", "QUIT"],
    "verify_headers": [
        "EHLO c", "MAIL FROM:<a@b>", "RCPT TO:<x@example.org>", "DATA", "X-Verify: 1", "To: x@example.org, bad address here",
        "", "x", ".", "MAIL FROM:<a@b>", "RCPT TO:<x@example.org>", "DATA", "X-Verify: 1", "To: y@example.org", "", "x", ".",
        "MAIL FROM:<a@b>", "RCPT TO:<x@example.org>", "DATA", "X-Verify: 1", "To: Someone <X@Example.ORG>", "", "x", ".",
        "MAIL FROM:<a@b>", "RCPT TO:<x@example.org>", "DATA", "X-Verify: 1", "To: Someone <x@Example.ORG>", "", "x", ".",
        "MAIL FROM:<a@b>", "RCPT TO:<x@example.org>", "DATA", "X-Forbidden: thing", "", "x", ".", "QUIT",
    ],
    "dot_stuffing": ["EHLO c", "MAIL FROM:<a@b>", "RCPT TO:<x@example.org>", "DATA", "Subject: s", "", "..leading", "x.", ".", "QUIT"],
}


def transcript(command: list[str], conf: Path, lines: list[str]) -> list[str]:
    feed = "".join(line + "\r\n" for line in lines).encode()
    # scripts that end in raw BDAT data have no final CRLF of their own
    proc = subprocess.run(command + ["-C", str(conf), "-bh", "127.0.0.1"], input=feed, capture_output=True, timeout=60)
    out = proc.stdout.decode("utf-8", "replace").replace("\r\n", "\n")
    replies = [line for line in out.split("\n") if re.match(r"^\d{3}[ -]", line)]
    # the rejection log lines ("LOG: …") go to stderr in both
    logs = [line for line in proc.stderr.decode("utf-8", "replace").split("\n") if " rejected " in line]
    replies += [re.sub(r"^(\d{4}-\d\d-\d\d [\d:]+ )?(LOG: )?", "LOG: ", line) for line in logs]
    masked = []
    for line in replies:
        line = re.sub(r"id=\S+", "id=MASKED", line)
        line = re.sub(r"[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}", "ID", line)
        if line.startswith("220 "):
            line = re.sub(r"\w{3}, \d\d \w{3} \d{4} [\d:]+ [+-]\d{4}$", "DATE", line)
        masked.append(line)
    return masked


@pytest.fixture(scope="module")
def conf() -> Path:
    work = Path(tempfile.mkdtemp(prefix="pyxim-bh-"))
    work.chmod(0o755)
    path = work / "exim.conf"
    path.write_text(CONFIG)
    path.chmod(0o644)
    yield path
    shutil.rmtree(work, ignore_errors=True)


@pytest.mark.parametrize("name", list(SCRIPTS))
def test_same_replies_as_exim(conf: Path, name: str) -> None:
    lines = SCRIPTS[name]
    exim = transcript([oracle.EXIM], conf, lines)
    pyxim = transcript([sys.executable, "-m", "pyxim"], conf, lines)
    assert pyxim == exim


def test_log_selector_lines_match_exim(conf: Path) -> None:
    """+subject +received_recipients +incoming_port +smtp_connection: the LOG lines agree with Exim's."""
    selector_conf = conf.parent / "selector.conf"
    selector_conf.write_text(
        CONFIG.replace("prdr_enable = true", "prdr_enable = true\n"
                       "log_selector = +subject +received_recipients +incoming_port +smtp_connection")
    )
    selector_conf.chmod(0o644)
    script = [
        "EHLO c", "MAIL FROM:<a@b>", "RCPT TO:<x@example.org>", "RCPT TO:<y@example.org>", "DATA",
        'Subject: Hello =?utf-8?Q?w=C3=B6rld?= "q"', "To: x@example.org, y@example.org", "", "x", ".", "QUIT",
    ]

    def log_lines(command: list[str]) -> list[str]:
        feed = "".join(line + "\r\n" for line in script).encode()
        proc = subprocess.run(command + ["-C", str(selector_conf), "-bh", "127.0.0.1"], input=feed,
                              capture_output=True, timeout=60)
        text = (proc.stdout + proc.stderr).decode("utf-8", "replace")
        lines = [line for line in text.split("\n") if line.startswith("LOG: ")]
        return [re.sub(r"[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}", "ID", line) for line in lines]

    exim = log_lines([oracle.EXIM])
    assert any("T=" in line for line in exim)
    assert log_lines([sys.executable, "-m", "pyxim"]) == exim


WARN_DEFER_CONFIG = """\
primary_hostname = t.example
acl_smtp_mail = m
acl_smtp_rcpt = r
begin acl
m:
  warn  log_message = wlog $sender_address
  logwrite = plain line
  defer senders = later@x.example
        message = try later
  accept
r:
  defer local_parts = later
        message = rcpt later
  defer local_parts = bare
  accept
"""


def test_warn_log_message_and_defer_replies_match_exim(tmp_path: Path) -> None:
    """warn's log_message is a "Warning:" about the client; defer with a message answers 451 and logs it."""
    tmp_path.chmod(0o755)
    conf = tmp_path / "w.conf"
    conf.write_text(WARN_DEFER_CONFIG)
    conf.chmod(0o644)
    script = "HELO x\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<later@t.example>\r\nRCPT TO:<bare@t.example>\r\n" \
             "RSET\r\nMAIL FROM:<later@x.example>\r\nQUIT\r\n"

    def run(command: list[str]) -> list[str]:
        proc = subprocess.run(command + ["-C", str(conf), "-bh", "1.2.3.4"], input=script.encode(),
                              capture_output=True, timeout=60)
        text = (proc.stdout + proc.stderr).decode()
        return [line.rstrip("\r") for line in text.split("\n") if re.match(r"(LOG: |[2-5]\d\d )", line)
                and not line.startswith("220 ")]

    exim = run([oracle.EXIM])
    assert "451 try later" in exim
    assert run([sys.executable, "-m", "pyxim"]) == exim


MIME_MESSAGE = [
    "Subject: mime", "MIME-Version: 1.0", 'Content-Type: multipart/mixed; boundary="BOUND"', "", "preamble",
    "--BOUND", "Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: quoted-printable", "",
    "hello =C3=A9", "--BOUND", 'Content-Type: application/octet-stream; name="doc.pdf"',
    'Content-Disposition: attachment; filename="{name}"', "Content-Transfer-Encoding: base64",
    "Content-Description: a document", "Content-ID: <part2@x>", "", "{payload}", "--BOUND--",
]


@pytest.mark.parametrize(
    ("name", "payload"),
    [("doc.pdf", "aGVsbG8gc2VjcmV0ICAgd29yZA=="), ("run.exe", "aGVsbG8="), ("doc.pdf", "aGVsbG8=")],
    ids=["mime_regex", "filename", "clean"],
)
def test_mime_acl_matches_exim(conf: Path, name: str, payload: str) -> None:
    mime_conf = conf.parent / "mime.conf"
    mime_conf.write_text(
        "primary_hostname = mail.example.org\ntls_advertise_hosts =\npipelining_connect_advertise_hosts =\n"
        "acl_smtp_rcpt = accept\nacl_smtp_mime = mime\nbegin acl\nmime:\n"
        "  warn    logwrite = part $mime_part_count type=$mime_content_type charset=$mime_charset "
        "name=$mime_filename disp=$mime_content_disposition enc=$mime_content_transfer_encoding "
        "multi=$mime_is_multipart cover=$mime_is_coverletter boundary=$mime_boundary "
        "desc=$mime_content_description id=$mime_content_id\n"
        "  deny    condition = ${if match{$mime_filename}{\\N\\.exe$\\N}}\n"
        "          message = no executables: $mime_filename\n"
        "  deny    mime_regex = secret\\\\s+word\n"
        "          message = found in part $mime_part_count\n"
        "  accept\n"
    )
    mime_conf.chmod(0o644)
    lines = ["EHLO c", "MAIL FROM:<a@b>", "RCPT TO:<x@example.org>", "DATA"]
    lines += [line.replace("{name}", name).replace("{payload}", payload) for line in MIME_MESSAGE] + [".", "QUIT"]

    def run(command: list[str]) -> list[str]:
        feed = "".join(line + "\r\n" for line in lines).encode()
        proc = subprocess.run(command + ["-C", str(mime_conf), "-bh", "127.0.0.1"], input=feed,
                              capture_output=True, timeout=60)
        text = (proc.stdout + proc.stderr).decode("utf-8", "replace").replace("\r\n", "\n")
        out = [line for line in text.split("\n") if line.startswith("LOG: ") or re.match(r"^\d{3} ", line)]
        out = [re.sub(r"[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}", "ID", line) for line in out]
        return sorted(re.sub(r"(Exim 4.96) .*", r"\1", line) for line in out)

    assert run([sys.executable, "-m", "pyxim"]) == run([oracle.EXIM])


PRDR_CONFIG = """\
primary_hostname = mail.example.org
tls_advertise_hosts =
pipelining_connect_advertise_hosts =
prdr_enable = true
acl_smtp_rcpt = accept
acl_smtp_data_prdr = prdr
begin acl
prdr:
  deny    local_parts = bad
          message = no thanks for $local_part
  defer   local_parts = later
          message = later for $local_part
  accept
"""


@pytest.mark.parametrize("recipients", [["x", "y"], ["x", "bad"], ["bad", "later"], ["bad"], ["x"]],
                         ids=["all", "some", "none", "single-bad", "single"])
def test_prdr_matches_exim(conf: Path, recipients: list[str]) -> None:
    prdr_conf = conf.parent / "prdr.conf"
    prdr_conf.write_text(PRDR_CONFIG)
    prdr_conf.chmod(0o644)
    lines = ["EHLO c", "MAIL FROM:<a@b> PRDR"] + [f"RCPT TO:<{r}@example.org>" for r in recipients]
    lines += ["DATA", "Subject: s", "", "b", ".", "QUIT"]

    def run(command: list[str]) -> list[str]:
        feed = "".join(line + "\r\n" for line in lines).encode()
        proc = subprocess.run(command + ["-C", str(prdr_conf), "-bh", "127.0.0.1"], input=feed,
                              capture_output=True, timeout=60)
        text = (proc.stdout + proc.stderr).decode("utf-8", "replace").replace("\r\n", "\n")
        out = [line for line in text.split("\n") if line.startswith("LOG: ") or re.match(r"^\d{3}[ -]", line)]
        out = [re.sub(r"[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}", "ID", line) for line in out]
        return sorted(re.sub(r"(Exim 4.96) .*", r"\1", line) for line in out)

    assert run([sys.executable, "-m", "pyxim"]) == run([oracle.EXIM])

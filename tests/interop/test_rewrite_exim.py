"""Address rewriting against exim4 on the same configuration: `-brw` output byte for byte,
the spool after reception (-bm, -t, -bs: envelope, rewritten headers, X-rewrote records),
and a transport's headers_rewrite in the delivered mailbox."""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.interop import oracle

pytestmark = pytest.mark.skipif(oracle.EXIM is None, reason="exim4 not installed")

PYXIM = [sys.executable, "-m", "pyxim"]

CONFIG = """\
primary_hostname = mail.example.org
qualify_domain = example.org
qualify_recipient = rcpt.example
spool_directory = ROOT/spool
log_file_path = ROOT/log/%slog
log_selector = +address_rewrite
queue_only
domainlist local_domains = example.org : local.example
addresslist vips = boss@example.org : *@vip.example
acl_smtp_rcpt = accept_all
begin acl
accept_all:
  accept
begin rewrite
\\N^<smtp-(.*)>$\\N <$1> S
\\N^<null@(.*)>$\\N <> S
\\N^(.+)\\.(.+)@dots\\.example$\\N $1-$2@dots.example R
*@old.example $local_part@new.example
*@hdr.example $local_part@hdr-new.example h
*@env.example $local_part@env-new.example E
*@from.example "Changed <$local_part@from-new.example>" fw
*@*.sub.example $2-$1@sub.example T
jj@* jj-$1@jj.example F
*@partial-lsearch;ROOT/domains ${1}_$2_$3@p.example sc
*@+local_domains $1@local.rewritten br
+vips vip-$local_part@vip.example s
*@quit.example $local_part@quitted.example q
*@quit.example never@never.example
*@unq.example $local_part Q
*@unq2.example $local_part
*@fail.example "${if !eq{$local_part}{f}{ok-$local_part}fail}@failed.example"
*@err.example ${lookup{x}lsearch{/nonexistent/file}}@x.example
*@stop.example *
*@stop.example never@never.example
lsearch;ROOT/whole ${lookup{$0}lsearch{ROOT/whole}}@lk.example
*@loop.example $local_part@loop.example R
"^q\\\\.(.*)@quoted\\\\.example\\\\N$\\\\N" $1@unquoted.example
!*@*.example not-neg@neg.example t
begin routers
local:
  driver = accept
  transport = mbox
begin transports
mbox:
  driver = appendfile
  file = ROOT/mail/box
  user = Debian-exim
  headers_rewrite = *@tr.example $local_part@t.example : \\
                    *@trw.example "Whole <$local_part@tw.example>" tw : \\
                    *@example.org $local_part@org.example fc
"""

ADDRESSES = [
    "a.b.c@dots.example",
    "x@old.example",
    "x@hdr.example",
    "x@env.example",
    "Joe <x@from.example>",
    "x@a.sub.example",
    "jj@zz.example",
    "u@x.example",
    "u@a.b.x.example",
    "z@local.example",
    "Name <z@local.example>",
    "boss@example.org",
    "a@vip.example",
    "x@quit.example",
    "x@unq.example",
    "x@unq2.example",
    "f@fail.example",
    "g@fail.example",
    "x@err.example",
    "x@stop.example",
    "whole@addr.example",
    "a@loop.example",
    "q.me@quoted.example",
    "x@neg.test",
    "<smtp-a@old.example>",
    "<null@x>",
    "unqualified",
    "<>",
    "",
    "bad address <",
    "a@b, c@d",
    '"quoted lp"@old.example',
    "X@OLD.EXAMPLE",
    "<a@old.example>",
]


@pytest.fixture(scope="module")
def conf() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="pyxim-rewrite-"))
    root.chmod(0o777)
    (root / "domains").write_text("x.example: yes\n*.wild.example: yes\n")
    (root / "whole").write_text("whole@addr.example: from-file\n")
    for sub in ("spool", "log", "mail"):
        (root / sub).mkdir(mode=0o777)
        (root / sub).chmod(0o777)
    path = root / "rewrite.conf"
    path.write_text(CONFIG.replace("ROOT", str(root)))
    for p in (path, root / "domains", root / "whole"):
        p.chmod(0o644)
    yield path
    shutil.rmtree(root, ignore_errors=True)


def _unstamp(text: str) -> str:
    return re.sub(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ", "", text, flags=re.M)


def exim_brw(conf: Path, address: str) -> tuple[str, str, int]:
    proc = subprocess.run(
        [oracle.EXIM, "-C", str(conf), "-brw", address], capture_output=True, text=True, timeout=30
    )
    return proc.stdout, _unstamp(proc.stderr), proc.returncode


def pyxim_brw(conf: Path, address: str) -> tuple[str, str, int]:
    """The real command-line entry point, run in this process (a process per address is slow)."""
    from pyxim.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(["-C", str(conf), "-brw", address])
    return out.getvalue(), _unstamp(err.getvalue()), rc


@pytest.mark.parametrize("address", ADDRESSES)
def test_brw_matches_exim(conf: Path, address: str) -> None:
    assert pyxim_brw(conf, address) == exim_brw(conf, address)


def test_brw_command_line(conf: Path, tmp_path: Path) -> None:
    """The installed command itself, and its two special answers."""
    proc = subprocess.run(
        PYXIM + ["-C", str(conf), "-brw", "a.b@dots.example"], capture_output=True, text=True, timeout=30
    )
    assert (proc.stdout, _unstamp(proc.stderr), proc.returncode) == exim_brw(conf, "a.b@dots.example")
    bare = tmp_path / "bare.conf"
    bare.write_text("primary_hostname = a.example\n")
    bare.chmod(0o644)
    tmp_path.chmod(0o755)
    assert pyxim_brw(bare, "x@y") == exim_brw(bare, "x@y") == ("No rewrite rules are defined\n", "", 0)
    proc = subprocess.run([oracle.EXIM, "-C", str(conf), "-brw"], capture_output=True, text=True, timeout=30)
    mine = subprocess.run(PYXIM + ["-C", str(conf), "-brw"], capture_output=True, text=True, timeout=30)
    assert (mine.stdout, mine.returncode) == (proc.stdout, proc.returncode)


# -- reception ------------------------------------------------------------------------------

MESSAGE = (
    "From: Joe <j@from.example>\n"
    'To: a@old.example, b@other.example,\n  c@hdr.example, "A rather long name" <d@hdr.example>, e@old.example\n'
    'Cc: bob, "Q" <q@old.example> (comment), broken <, jj@zz.example\n'
    "Reply-To: r@hdr.example\n"
    "Sender: boss\n"
    "Subject: rewriting\n"
    "X-Other: a@old.example\n"
    "\n"
    "body\n"
)

TO_EXTRACT = "To: a@old.example, bob\nBcc: c@hdr.example\nSubject: extracted\n\nbody\n"

SMTP_SCRIPT = (
    "EHLO client.example\r\n"
    "MAIL FROM:<smtp-s@env.example> SIZE=100\r\n"
    "RCPT TO:<smtp-x@old.example>\r\n"
    "RCPT TO:<z@a.sub.example>\r\n"
    "RCPT TO:<null@x>\r\n"
    "DATA\r\n"
    "From: f@old.example\r\nSender: s\r\nTo: t@hdr.example\r\n\r\nbody\r\n.\r\n"
    "QUIT\r\n"
)


def _mask(text: str) -> str:
    text = re.sub(r"[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}", "ID", text)
    text = re.sub(r"\w{3}, \d\d \w{3} \d{4} [\d:]+ [+-]\d{4}", "DATE", text)
    text = re.sub(r"^\d{9,} 0$", "TIME 0", text, flags=re.M)
    text = re.sub(r"^ *\d+[smhd] ", "AGE ", text, flags=re.M)
    # spool details that are not about rewriting (receive timing, TLS resumption)
    return "\n".join(
        line for line in text.splitlines() if not line.startswith(("-received_time", "-tls_resumption"))
    )


def receive(command: list[str], conf: Path, args: list[str], stdin: str) -> tuple[str, str, list[str], str]:
    """Submit one message; return the masked -H file, -bp listing, rewrite log lines, stderr."""
    root = conf.parent
    for sub in ("spool", "log"):
        shutil.rmtree(root / sub, ignore_errors=True)
        (root / sub).mkdir(mode=0o777)
        (root / sub).chmod(0o777)
    proc = subprocess.run(
        command + ["-C", str(conf), *args], input=stdin, capture_output=True, text=True, timeout=30
    )
    spool = sorted((root / "spool" / "input").glob("*-H"))
    assert len(spool) == 1, proc.stdout + proc.stderr
    listing = subprocess.run(command + ["-C", str(conf), "-bp"], capture_output=True, text=True, timeout=30)
    log = (root / "log" / "mainlog").read_text() if (root / "log" / "mainlog").exists() else ""
    lines = [_mask(_unstamp(line)) for line in log.splitlines() if "rewrit" in line or "Rewrite" in line]
    return _mask(spool[0].read_text()), _mask(listing.stdout), lines, _mask(_unstamp(proc.stderr))


@pytest.mark.parametrize(
    ("args", "stdin"),
    [
        (
            ["-f", "s@env.example", "x@old.example", "y@env.example", "jj@zz.example", "a.b@dots.example"],
            MESSAGE,
        ),
        (["-t"], TO_EXTRACT),
        (["-bs"], SMTP_SCRIPT),
    ],
    ids=["bm", "t", "bs"],
)
def test_reception_spool_matches_exim(conf: Path, args: list[str], stdin: str) -> None:
    exim = receive([oracle.EXIM], conf, args, stdin)
    assert "X-rewrote-" in exim[0]
    assert receive(PYXIM, conf, args, stdin) == exim


# -- a transport's headers_rewrite ------------------------------------------------------------


@pytest.mark.skipif(os.geteuid() != 0, reason="delivers as Debian-exim: needs root")
def test_headers_rewrite_in_delivered_mailbox(conf: Path) -> None:
    message = (
        "From: root@example.org\nTo: a@tr.example, b@trw.example\nCc: c@example.org, bob, d@old.example\n"
        "Subject: transport\n\nbody\n"
    )

    root = conf.parent
    delivering = root / "deliver.conf"  # the same rules, without queue_only
    delivering.write_text(conf.read_text().replace("queue_only\n", ""))
    delivering.chmod(0o644)

    def deliver(command: list[str]) -> str:
        for sub in ("spool", "log", "mail"):
            shutil.rmtree(root / sub, ignore_errors=True)
            (root / sub).mkdir(mode=0o777)
            (root / sub).chmod(0o777)
        subprocess.run(
            command + ["-C", str(delivering), "-odi", "-f", "s@other.example", "u@example.org"],
            input=message,
            capture_output=True,
            text=True,
            timeout=30,
        )
        mbox = root / "mail" / "box"
        data = mbox.read_text() if mbox.exists() else ""
        data = re.sub(r"^From (\S+) .*$", r"From \1 DATE", data, flags=re.M)
        return re.sub(r"\(Exim 4\.96\)|\(pyxim[^)]*\)", "(MTA)", _mask(data))

    exim = deliver([oracle.EXIM])
    assert "Whole <b@tw.example>" in exim
    assert deliver(PYXIM) == exim

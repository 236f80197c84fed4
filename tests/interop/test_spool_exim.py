"""Exim's own queue listing reads the spool pyxim writes, and both list it alike."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from pyxim.expand.taint import Tainted
from pyxim.spool.format import Recipient, SpoolHeader, SpoolMessage
from pyxim.spool.ids import MessageIdGenerator
from pyxim.spool.store import Spool
from tests.interop import oracle

pytestmark = pytest.mark.skipif(oracle.EXIM is None, reason="exim4 not installed")


def normalise(text: str) -> str:
    """Mask what differs by nature (ids, dates, times) and drop Exim-only lines (sub-second times, GnuTLS)."""
    import re

    text = re.sub(r"[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}", "ID", text)
    text = re.sub(r"\w{3}, \d\d \w{3} \d{4} [\d:]+ [+-]\d{4}", "DATE", text)
    text = re.sub(r"^\d{10} 0$", "TIME 0", text, flags=re.M)
    text = re.sub(r"^-frozen \d{10}$", "-frozen TIME", text, flags=re.M)
    text = re.sub(r"^\d{4}-\d\d-\d\d [\d:]+ ", "STAMP ", text, flags=re.M)
    return "\n".join(
        line for line in text.split("\n")
        if not line.startswith(("-received_time_usec", "-received_time_complete", "-tls_resumption"))
    )


@pytest.mark.parametrize("split", [False, True])
def test_exim_lists_pyxims_queue(split: bool) -> None:
    # Exim drops to its own user with -C, so the tree must be reachable by it:
    # pytest's tmp_path sits under a directory only root may enter.
    tmp_path = Path(tempfile.mkdtemp(prefix="pyxim-spool-"))
    root = tmp_path / "q"
    root.mkdir()
    spool = Spool(root / "spool", split=split)
    gen = MessageIdGenerator()
    ids = []
    for n, rcpts in enumerate((["bob@example.org"], ["carol@example.net", "dave@example.net"])):
        mid = gen.new_id()
        ids.append(mid)
        message = SpoolMessage(
            mid,
            f"sender{n}@example.com",
            [Recipient(a) for a in rcpts],
            [SpoolHeader.of(f"Received: from client by mail.example.org\n\tid {mid}\n"), SpoolHeader.of("Subject: test\n")],
            time.time() - 180,
            options={"helo_name": Tainted("client.example"), "received_protocol": "esmtp", "body_linecount": "1"},
            non_recipients=["dave@example.net"] if n else [],
        )
        spool.write(message, b"hello\n" * (n + 1) * 5000)
    conf = root / "exim.conf"
    conf.write_text(
        f"primary_hostname = mail.example.org\nspool_directory = {root / 'spool'}\n"
        f"log_file_path = {root}/%slog\n" + ("split_spool_directory\n" if split else "")
    )
    # Exim drops to its own user when given -C: let it read the spool.
    for dirpath, _dirnames, filenames in os.walk(root):
        os.chmod(dirpath, 0o777)
        for f in filenames:
            os.chmod(os.path.join(dirpath, f), 0o666)
    os.chmod(conf, 0o644)  # Exim refuses a configuration file others may write
    os.chmod(tmp_path, 0o755)
    for mode in ("-bp", "-bpu", "-bpc"):
        exim = subprocess.run([oracle.EXIM, "-C", str(conf), mode], capture_output=True, text=True, timeout=60)
        pyxim = subprocess.run([sys.executable, "-m", "pyxim", "-C", str(conf), mode], capture_output=True, text=True, timeout=60)
        assert exim.returncode == 0, exim.stderr
        assert pyxim.stdout == exim.stdout
    listing = subprocess.run([oracle.EXIM, "-C", str(conf), "-bp"], capture_output=True, text=True).stdout
    assert all(mid in listing for mid in ids)
    assert "D dave@example.net" in listing
    shutil.rmtree(tmp_path)


@pytest.mark.parametrize("dsn", [False, True, "acl"], ids=["plain", "dsn", "acl"])
def test_bs_writes_what_exim_writes(dsn: object) -> None:
    """The same local SMTP session through exim -bs and pyxim -bs: the -H files agree but for ids and times."""

    work = Path(tempfile.mkdtemp(prefix="pyxim-bs-"))
    os.chmod(work, 0o777)
    conf = work / "c.conf"
    conf.write_text(
        f"primary_hostname = mail.example.org\nqualify_domain = example.org\nspool_directory = {work}/spool\n"
        f"log_file_path = {work}/%slog\nqueue_only = true\nacl_smtp_rcpt = accept\ntls_advertise_hosts =\n"
        + ("dsn_advertise_hosts = *\n" if dsn is True else "")
        + (
            "acl_smtp_data = data\nbegin acl\ndata:\n  accept control = freeze/no_tell\n"
            "         remove_header = x-remove-me\n         add_header = X-Added: yes\n"
            if dsn == "acl" else ""
        )
    )
    os.chmod(conf, 0o644)
    session = b"EHLO client.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<x@example.org>\r\nDATA\r\nSubject: hi\r\n\r\nbody\r\n.\r\nQUIT\r\n"
    if dsn == "acl":
        session = (
            b"EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<x@example.org>\r\nDATA\r\n"
            b"Subject: s\r\nX-Remove-Me: gone\r\n\r\nb\r\n.\r\nQUIT\r\n"
        )
    elif dsn:
        session = (
            b"EHLO c\r\nMAIL FROM:<a@b.example> RET=HDRS ENVID=abc+2Bdef\r\n"
            b"RCPT TO:<x@example.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;X@Example.org\r\n"
            b"RCPT TO:<y@example.org> NOTIFY=NEVER\r\nRCPT TO:<z@example.org> NOTIFY=DELAY\r\n"
            b"RCPT TO:<w@example.org> NOTIFY=BOGUS\r\nRCPT TO:<v@example.org> NOTIFY=NEVER,DELAY\r\n"
            b"MAIL FROM:<a@b> RET=XX\r\nDATA\r\nSubject: s\r\n\r\nb\r\n.\r\nQUIT\r\n"
        )

    def run(command: list[str]) -> tuple[str, str]:
        shutil.rmtree(work / "spool", ignore_errors=True)
        replies = subprocess.run(command + ["-C", str(conf), "-bs"], input=session, capture_output=True, timeout=60)
        header = next((work / "spool" / "input").glob("*-H")).read_text()
        listing = subprocess.run(command + ["-C", str(conf), "-bp"], capture_output=True, timeout=60).stdout.decode()
        log = [line.split(" ", 3)[3] for line in (work / "mainlog").read_text().splitlines()
               if " <= " in line or "frozen" in line]
        (work / "mainlog").unlink()
        return replies.stdout.decode(), header + listing + "\n".join(log)

    try:
        exim_replies, exim_header = run([oracle.EXIM])
        pyxim_replies, pyxim_header = run([sys.executable, "-m", "pyxim"])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    assert normalise(pyxim_replies) == normalise(exim_replies)
    assert normalise(pyxim_header) == normalise(exim_header)


@pytest.mark.parametrize(
    "options",
    [["-t"], ["-oi", "-f", "sender@example.net", "-F", "Joe Bloggs", "y@example.org"], ["y@example.org", "z"]],
    ids=["extract", "sender-and-name", "plain"],
)
def test_local_submission_writes_what_exim_writes(options: list[str]) -> None:
    """sendmail-style submission (-bm, -t, -oi, -f, -F): same -D and -H as Exim's, same log line."""

    work = Path(tempfile.mkdtemp(prefix="pyxim-bm-"))
    os.chmod(work, 0o777)
    conf = work / "c.conf"
    conf.write_text(
        f"primary_hostname = mail.example.org\nqualify_domain = example.org\nspool_directory = {work}/spool\n"
        f"log_file_path = {work}/%slog\nqueue_only = true\n"
    )
    os.chmod(conf, 0o644)
    message = b"Subject: local test\nTo: x@example.org\nBcc: hidden@example.org\n\nbody\n.\nafter dot\n"

    def run(command: list[str]) -> tuple[str, str, str]:
        shutil.rmtree(work / "spool", ignore_errors=True)
        (work / "mainlog").unlink(missing_ok=True)
        proc = subprocess.run(command + ["-C", str(conf), "-odq", *options], input=message, capture_output=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        header = next((work / "spool" / "input").glob("*-H")).read_text()
        data = next((work / "spool" / "input").glob("*-D")).read_text()
        log = [line.split(" ", 3)[3] for line in (work / "mainlog").read_text().splitlines() if " <= " in line]
        return header, data, "\n".join(log)

    try:
        exim = run([oracle.EXIM])
        pyxim = run([sys.executable, "-m", "pyxim"])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    assert [normalise(x) for x in pyxim] == [normalise(x) for x in exim]

"""End to end: a message submitted with -odi is routed and written to an mbox and a maildir;
the mailbox bytes and the log lines agree with what exim4 does with the same configuration."""

from __future__ import annotations

import os
import pwd
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
begin routers
aliases:
  driver = redirect
  domains = +local_domains
  data = ${lookup{$local_part}lsearch{ROOT/aliases}}
local:
  driver = accept
  domains = +local_domains
  local_parts = lsearch;ROOT/mailboxes
  transport = ${if eq{$local_part}{maildirs}{maildir}{mbox}}
  headers_add = X-Routed-By: local for $local_part_data
  headers_remove = X-Test
begin transports
mbox:
  driver = appendfile
  file = ROOT/mail/$local_part_data
  user = Debian-exim
  return_path_add
  envelope_to_add
  delivery_date_add
maildir:
  driver = appendfile
  directory = ROOT/mail/$local_part_data.d
  maildir_format
  user = Debian-exim
"""

MESSAGE = b"Subject: delivered\nX-Test: yes\n\nFrom the body\nsecond line\n"


def deliver(command: list[str]) -> tuple[list[str], bytes, list[bytes]]:
    root = Path(tempfile.mkdtemp(prefix="pyxim-local-"))
    try:
        root.chmod(0o777)
        (root / "mail").mkdir(mode=0o777)
        (root / "mail").chmod(0o777)
        (root / "aliases").write_text("team: bob@t.example, maildirs@t.example\n")
        (root / "mailboxes").write_text("bob: bob\nmaildirs: maildirs\n")
        conf = root / "c.conf"
        conf.write_text(CONFIG.replace("ROOT", str(root)))
        for p in (conf, root / "aliases", root / "mailboxes"):
            p.chmod(0o644)
        subprocess.run(command + ["-C", str(conf), "-odi", "-f", "s@x.example", "bob@t.example", "team@t.example"],
                       input=MESSAGE, capture_output=True, timeout=60)
        mbox = (root / "mail" / "bob").read_bytes()
        uid = pwd.getpwnam("Debian-exim").pw_uid
        assert (root / "mail" / "bob").stat().st_uid == uid  # written as the transport's user
        maildir = [p.read_bytes() for p in sorted((root / "mail" / "maildirs.d" / "new").iterdir())]
        log = (root / "mainlog").read_text()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    lines = []
    for line in log.splitlines():
        line = re.sub(r"[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}", "ID", line[20:])
        if re.match(r"ID (=>|\*\*|==|Completed)", line):
            lines.append(line)
    return sorted(lines), mask(mbox), [mask(m) for m in maildir]


def mask(data: bytes) -> bytes:
    data = re.sub(rb"[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}", b"ID", data)
    data = re.sub(rb"\w{3}, \d\d \w{3} \d{4} [\d:]+ [+-]\d{4}", b"DATE", data)
    data = re.sub(rb"^From (\S+) .*$", rb"From \1 DATE", data, flags=re.M)
    # the Received line names the program; everything else must be the same bytes
    return re.sub(rb"\(Exim 4\.96\)|\(pyxim[^)]*\)", b"(MTA)", data)


def test_mbox_and_maildir_match_exim() -> None:
    exim = deliver([oracle.EXIM])
    assert "ID => bob <team@t.example> R=local T=mbox" in exim[0]  # one copy for bob, reached twice
    assert b"\n>From the body\n" in exim[1]
    assert deliver([sys.executable, "-m", "pyxim"]) == exim


PIPE_CONFIG = """\
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
  file_transport = address_file
  pipe_transport = address_pipe
begin transports
address_pipe:
  driver = pipe
  user = Debian-exim
address_file:
  driver = appendfile
  user = Debian-exim
"""


def pipe_and_file(command: list[str]) -> tuple[list[str], bytes, bytes]:
    root = Path(tempfile.mkdtemp(prefix="pyxim-pipefile-"))
    try:
        root.chmod(0o777)
        (root / "mail").mkdir(mode=0o777)
        (root / "mail").chmod(0o777)
        (root / "aliases").write_text(
            f"piped: |/usr/bin/tee {root}/mail/piped\nsaved: {root}/mail/saved\nboth: piped, saved\n")
        conf = root / "c.conf"
        conf.write_text(PIPE_CONFIG.replace("ROOT", str(root)))
        for p in (conf, root / "aliases"):
            p.chmod(0o644)
        subprocess.run(command + ["-C", str(conf), "-odi", "-f", "s@x.example", "both@t.example"],
                       input=MESSAGE, capture_output=True, timeout=60)
        piped = (root / "mail" / "piped").read_bytes() if (root / "mail" / "piped").exists() else b""
        saved = (root / "mail" / "saved").read_bytes() if (root / "mail" / "saved").exists() else b""
        log = (root / "mainlog").read_text().replace(str(root), "ROOT")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    lines = sorted(re.sub(r"[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}", "ID", line[20:])
                   for line in log.splitlines() if re.search(r" (=>|\*\*|==|Completed)", line))
    return lines, mask(piped), mask(saved)


def test_pipe_and_file_from_aliases_match_exim() -> None:
    exim = pipe_and_file([oracle.EXIM])
    assert ("ID => |/usr/bin/tee ROOT/mail/piped (piped@t.example) <both@t.example> R=aliases T=address_pipe"
            in exim[0]), exim[0]
    assert exim[1] and exim[2]
    assert pipe_and_file([sys.executable, "-m", "pyxim"]) == exim


AUTOREPLY_CONFIG = """\
primary_hostname = t.example
qualify_domain = t.example
spool_directory = ROOT/spool
log_file_path = ROOT/%slog
domainlist local_domains = t.example
begin routers
vacation:
  driver = accept
  local_parts = away
  transport = reply
  unseen
local:
  driver = accept
  domains = +local_domains
  local_parts = sender : away : boss
  transport = mbox
begin transports
reply:
  driver = autoreply
  to = $sender_address
  cc = boss@t.example
  from = away@t.example
  subject = Away: $h_subject:
  headers = X-Auto: yes
  text = I am away until ${substr_0_4:2027}.\\nRegards
  return_message
  user = Debian-exim
mbox:
  driver = appendfile
  file = ROOT/mail/$local_part_data
  user = Debian-exim
"""


def autoreply(command: list[str]) -> tuple[list[str], bytes]:
    root = Path(tempfile.mkdtemp(prefix="pyxim-autoreply-"))
    try:
        root.chmod(0o777)
        (root / "mail").mkdir(mode=0o777)
        (root / "mail").chmod(0o777)
        conf = root / "c.conf"
        conf.write_text(AUTOREPLY_CONFIG.replace("ROOT", str(root)))
        conf.chmod(0o644)
        subprocess.run(command + ["-C", str(conf), "-odi", "-f", "sender@t.example", "away@t.example"],
                       input=b"Subject: hello there\nFrom: sender@t.example\n\nbody\n", capture_output=True,
                       timeout=60)
        reply = (root / "mail" / "sender").read_bytes()
        log = (root / "mainlog").read_text()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    lines = sorted(re.sub(r" U=\S+| S=\d+", "", re.sub(r"[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}", "ID",
                                                        line[20:]))
                   for line in log.splitlines() if re.search(r" (=>|\*\*|==|<=|Completed)", line))
    return lines, re.sub(rb"Received: from \S+ by", b"Received: from USER by", mask(reply))


def test_autoreply_matches_exim() -> None:
    exim = autoreply([oracle.EXIM])
    assert "ID => away <away@t.example> R=vacation T=reply" in exim[0] and b"Subject: Away: hello there" in exim[1]
    assert autoreply([sys.executable, "-m", "pyxim"]) == exim


SHADOW_CONFIG = """\
primary_hostname = t.example
qualify_domain = t.example
spool_directory = ROOT/spool
log_file_path = ROOT/%slog
begin routers
local:
  driver = accept
  local_parts = bob : carol
  transport = mbox
begin transports
mbox:
  driver = appendfile
  file = ROOT/mail/$local_part_data
  user = Debian-exim
  shadow_transport = copy
  shadow_condition = ${if eq{$local_part}{bob}}
copy:
  driver = appendfile
  file = ROOT/mail/shadow
  user = Debian-exim
"""


def shadowed(command: list[str]) -> tuple[list[str], bytes]:
    root = Path(tempfile.mkdtemp(prefix="pyxim-shadow-"))
    try:
        root.chmod(0o777)
        (root / "mail").mkdir(mode=0o777)
        (root / "mail").chmod(0o777)
        conf = root / "c.conf"
        conf.write_text(SHADOW_CONFIG.replace("ROOT", str(root)))
        conf.chmod(0o644)
        subprocess.run(command + ["-C", str(conf), "-odi", "-f", "s@x.example", "bob@t.example", "carol@t.example"],
                       input=b"Subject: s\n\nbody\n", capture_output=True, timeout=60)
        shadow = (root / "mail" / "shadow").read_bytes()
        log = (root / "mainlog").read_text()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    lines = sorted(re.sub(r"[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}", "ID", line[20:])
                   for line in log.splitlines() if re.search(r" (=>|\*\*|==|Completed)", line))
    return lines, mask(shadow)


def test_shadow_transport_matches_exim() -> None:
    exim = shadowed([oracle.EXIM])
    assert "ID => bob <bob@t.example> R=local T=mbox ST=copy" in exim[0]
    assert shadowed([sys.executable, "-m", "pyxim"]) == exim


def test_transport_filter_matches_exim() -> None:
    """transport_filter: the written message is what the filter command made of it."""
    def filtered(command: list[str]) -> bytes:
        root = Path(tempfile.mkdtemp(prefix="pyxim-filter-"))
        try:
            root.chmod(0o777)
            (root / "mail").mkdir(mode=0o777)
            (root / "mail").chmod(0o777)
            conf = root / "c.conf"
            conf.write_text(SHADOW_CONFIG.replace("ROOT", str(root)).replace(
                "  shadow_transport = copy\n", "  transport_filter = /usr/bin/tr a-z A-Z\n"))
            conf.chmod(0o644)
            subprocess.run(command + ["-C", str(conf), "-odi", "-f", "s@x.example", "bob@t.example"],
                           input=b"Subject: s\n\nbody text\nFrom here\n", capture_output=True, timeout=60)
            return mask((root / "mail" / "bob").read_bytes())
        finally:
            shutil.rmtree(root, ignore_errors=True)

    exim = filtered([oracle.EXIM])
    assert b"BODY TEXT" in exim
    assert filtered([sys.executable, "-m", "pyxim"]) == exim


MAILSTORE_CONFIG = """\
primary_hostname = t.example
qualify_domain = t.example
spool_directory = ROOT/spool
log_file_path = ROOT/%slog
begin routers
r:
  driver = accept
  transport = t
begin transports
t:
  driver = appendfile
  directory = ROOT/box
  create_directory
  mailstore_format
  mailstore_prefix = PRE $local_part
  mailstore_suffix = SUF
  user = Debian-exim
"""


def mailstore(command: list[str]) -> tuple[list[str], list[tuple[str, bytes]]]:
    root = Path(tempfile.mkdtemp(prefix="pyxim-mailstore-"))
    try:
        root.chmod(0o777)
        conf = root / "c.conf"
        conf.write_text(MAILSTORE_CONFIG.replace("ROOT", str(root)))
        conf.chmod(0o644)
        subprocess.run(command + ["-C", str(conf), "-odi", "-f", "s@x.example", "a@t.example", "b@t.example"],
                       input=MESSAGE, capture_output=True, timeout=60)
        # <message id>-<delivery process in base 62>.env/.msg; the .tmp envelope is gone
        files = sorted((re.sub(r"^[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}-[0-9A-Za-z]{6}", "ID-N", p.name),
                        mask(p.read_bytes())) for p in (root / "box").iterdir())
        lines = [re.sub(r"[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}", "ID", line[20:])
                 for line in (root / "mainlog").read_text().splitlines() if " => " in line]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return sorted(lines), sorted(files, key=lambda f: (f[0], f[1]))


def test_mailstore_matches_exim() -> None:
    """mailstore_format: a .msg and a .env (prefix, sender, recipient, suffix) per delivery."""
    mine = mailstore([sys.executable, "-m", "pyxim"])
    assert ("ID-N.env", b"PRE a\ns@x.example\na@t.example\nSUF\n") in mine[1]
    assert [name for name, _ in mine[1]] == ["ID-N.env", "ID-N.env", "ID-N.msg", "ID-N.msg"]
    assert mine == mailstore([oracle.EXIM])


QUOTA_WARN_CONFIG = """\
primary_hostname = t.example
qualify_domain = t.example
spool_directory = ROOT/spool
log_file_path = ROOT/%slog
begin routers
r:
  driver = accept
  local_parts = a : b
  transport = ${if eq{$local_part}{a}{t}{md}}
begin transports
t:
  driver = appendfile
  file = ROOT/box-$local_part_data
  quota_warn_threshold = 300
  user = Debian-exim
md:
  driver = appendfile
  directory = ROOT/md-$local_part_data
  maildir_format
  create_directory
  quota = 2K
  quota_warn_threshold = 25%
  quota_warn_message = To: $local_part@$domain, postmaster@t.example\\nSubject: Mailbox of $local_part\\n\\nnearly full\\n
  user = Debian-exim
"""


def quota_warning(command: list[str]) -> tuple[list[str], bytes, int]:
    """Two messages queued for each user, then a queue run: the first delivery takes each mailbox over its
    quota_warn_threshold, so one warning is sent (and delivered) per mailbox, the second stays quiet."""
    root = Path(tempfile.mkdtemp(prefix="pyxim-quotawarn-"))
    try:
        root.chmod(0o777)
        conf = root / "c.conf"
        conf.write_text(QUOTA_WARN_CONFIG.replace("ROOT", str(root)))
        conf.chmod(0o644)
        for rcpt in ("a@t.example", "a@t.example", "b@t.example", "b@t.example"):
            subprocess.run(command + ["-C", str(conf), "-odq", "-f", "s@x.example", rcpt],
                           input=b"Subject: qw\n\nbody\n", capture_output=True, timeout=60)
        subprocess.run(command + ["-C", str(conf), "-q"], capture_output=True, timeout=60)
        lines = [re.sub(r"[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}", "ID", line[20:])
                 for line in (root / "mainlog").read_text().splitlines() if " <= <> " in line or " => " in line]
        mbox = mask((root / "box-a").read_bytes())
        maildir = len(list((root / "md-b" / "new").iterdir()))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return sorted(lines), mbox, maildir  # (Exim's queue runs take messages in no fixed order)


def test_quota_warning_matches_exim() -> None:
    mine = quota_warning([sys.executable, "-m", "pyxim"])
    assert mine[0].count("ID <= <> R=ID U=root P=local S=501") == 1
    assert b"Subject: Your mailbox\n" in mine[1] and mine[1].count(b"From MAILER-DAEMON") == 1
    assert mine[2] == 3  # two messages and the warning (the other copy went to postmaster@, unrouteable)
    assert mine == quota_warning([oracle.EXIM])


BSMTP_CONFIG = """\
primary_hostname = t.example
qualify_domain = t.example
spool_directory = ROOT/spool
log_file_path = ROOT/%slog
begin routers
r:
  driver = accept
  transport = p
begin transports
p:
  driver = pipe
  command = /usr/bin/tee -a ROOT/out
  use_bsmtp
  user = Debian-exim
"""


def bsmtp(command: list[str], driver: str) -> str:
    root = Path(tempfile.mkdtemp(prefix="pyxim-bsmtp-"))
    try:
        root.chmod(0o777)
        conf = root / "c.conf"
        config = BSMTP_CONFIG if driver == "pipe" else BSMTP_CONFIG.replace("driver = pipe", "driver = appendfile") \
            .replace("command = /usr/bin/tee -a ROOT/out", "file = ROOT/out")
        conf.write_text(config.replace("ROOT", str(root)))
        conf.chmod(0o644)
        subprocess.run(command + ["-C", str(conf), "-odi", "-f", "s@x.example", "a@t.example", "b@t.example"],
                       input=b"Subject: bs\n\n.leading dot\nbody\n", capture_output=True, timeout=60)
        return mask((root / "out").read_bytes()).decode()
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize("driver", ["pipe", "appendfile"])
def test_use_bsmtp_matches_exim(driver: str) -> None:
    """use_bsmtp: each address's envelope as MAIL/RCPT/DATA around the dot-stuffed message, then "."."""
    mine = bsmtp([sys.executable, "-m", "pyxim"], driver)
    assert mine.startswith("MAIL FROM:<s@x.example>\nRCPT TO:<a@t.example>\nDATA\n") and "\n..leading dot\n" in mine
    assert mine == bsmtp([oracle.EXIM], driver)

"""Routing (first part): `pyxim -bt`/`-bv` against `exim4 -bt`/`-bv`, and verify = recipient in an SMTP session."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.interop import oracle

pytestmark = pytest.mark.skipif(oracle.EXIM is None, reason="exim4 not installed")

CONFIG = """\
primary_hostname = mail.example.org
qualify_domain = example.org
tls_advertise_hosts =
pipelining_connect_advertise_hosts =
domainlist local_domains = example.org
acl_smtp_rcpt = rcpt
begin acl
rcpt:
  require verify = recipient
  accept
begin routers
smart:
  driver = manualroute
  domains = smart.example
  route_list = * 10.0.0.1:10.0.0.2
  transport = remote_smtp
missing:
  driver = accept
  domains = missing.example
  transport = no_such_transport
chosen:
  driver = accept
  domains = chosen.example
  transport = ${if eq{$local_part}{r}{remote_smtp}{local_delivery}}
aliases:
  driver = redirect
  domains = +local_domains
  data = ${lookup{$local_part}lsearch{ROOT/aliases}}
  allow_fail
  allow_defer
localuser:
  driver = accept
  domains = +local_domains
  local_parts = root : second : x
  transport = local_delivery
begin transports
remote_smtp:
  driver = smtp
local_delivery:
  driver = appendfile
  file = /dev/null
"""

ALIASES = """\
postmaster: root@example.org
abuse: root@example.org, second@example.org
gone: :fail: This user has left
hole: :blackhole:
later: :defer: try again
"""

ADDRESSES = [
    "x@example.org", "postmaster@example.org", "abuse@example.org", "gone@example.org", "hole@example.org",
    "later@example.org", "nobody@example.org", "u@smart.example", "u@other.example", "X", "<bad",
    "u@missing.example", "r@chosen.example", "l@chosen.example",
]


@pytest.fixture(scope="module")
def conf() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="pyxim-routing-"))
    os.chmod(root, 0o755)
    (root / "aliases").write_text(ALIASES)
    (root / "aliases").chmod(0o644)
    path = root / "exim.conf"
    path.write_text(CONFIG.replace("ROOT", str(root)))
    path.chmod(0o644)
    yield path
    shutil.rmtree(root, ignore_errors=True)


def run(command: list[str], conf: Path, *args: str, stdin: str = "") -> tuple[str, int]:
    proc = subprocess.run(command + ["-C", str(conf), *args], input=stdin, capture_output=True, text=True, timeout=60)
    return proc.stdout + proc.stderr, proc.returncode


PYXIM = [sys.executable, "-m", "pyxim"]


@pytest.mark.parametrize("address", ADDRESSES)
def test_bt_matches_exim(conf: Path, address: str) -> None:
    assert run(PYXIM, conf, "-bt", address) == run([oracle.EXIM], conf, "-bt", address)


def test_bv_and_stdin_forms_match_exim(conf: Path) -> None:
    assert run(PYXIM, conf, "-bv", "x@example.org", "nobody@example.org") == run(
        [oracle.EXIM], conf, "-bv", "x@example.org", "nobody@example.org"
    )
    stdin = "x@example.org\nnobody@example.org\n"
    assert run(PYXIM, conf, "-bt", stdin=stdin) == run([oracle.EXIM], conf, "-bt", stdin=stdin)


def test_verify_recipient_in_an_smtp_session(conf: Path) -> None:
    script = "EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<x@example.org>\r\nRCPT TO:<nobody@example.org>\r\n" \
             "RCPT TO:<postmaster@example.org>\r\nRCPT TO:<gone@example.org>\r\nQUIT\r\n"

    def replies(command: list[str]) -> list[str]:
        out, _ = run(command, conf, "-bh", "127.0.0.1", stdin=script)
        lines = out.replace("\r\n", "\n").split("\n")
        return [line for line in lines if line[:3].isdigit() and not line.startswith("220")] + [
            line for line in lines if " rejected " in line
        ]

    assert replies(PYXIM) == replies([oracle.EXIM])


@pytest.mark.parametrize(
    "headers",
    ["From: root@example.org", "From: nobody@example.org", "Sender: nobody@example.org\r\nFrom: x@example.org",
     "Subject: none"],
    ids=["valid", "invalid", "one-valid", "none"],
)
def test_verify_header_sender(conf: Path, headers: str) -> None:
    hs_conf = conf.parent / "hs.conf"
    hs_conf.write_text(conf.read_text().replace("acl_smtp_rcpt = rcpt", "acl_smtp_rcpt = rcpt\nacl_smtp_data = data")
                       .replace("begin acl\n", "begin acl\ndata:\n  require verify = header_sender\n  accept\n"))
    hs_conf.chmod(0o644)
    script = f"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<x@example.org>\r\nDATA\r\n{headers}\r\n\r\nb\r\n.\r\nQUIT\r\n"

    def replies(command: list[str]) -> list[str]:
        import re

        out, _ = run(command, hs_conf, "-bh", "127.0.0.1", stdin=script)
        lines = [line for line in out.replace("\r\n", "\n").split("\n")
                 if (line[:3].isdigit() and not line.startswith("220")) or " rejected " in line]
        return sorted(re.sub(r"[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}", "ID", line) for line in lines)

    assert replies(PYXIM) == replies([oracle.EXIM])


@pytest.mark.parametrize("address", ["nosuchuser@localhost", "postmaster@localhost", "nobody@localhost", "bin@localhost"])
def test_default_configuration_routes_as_exim(address: str) -> None:
    """The embedded default: aliases when /etc/aliases exists, then system users (check_local_user)."""
    from pyxim.config import default_config_path

    conf = Path(tempfile.mkdtemp(prefix="pyxim-default-")) / "default.conf"
    try:
        conf.parent.chmod(0o755)
        shutil.copy(default_config_path(), conf)
        conf.chmod(0o644)
        assert run(PYXIM, conf, "-bt", address) == run([oracle.EXIM], conf, "-bt", address)
    finally:
        shutil.rmtree(conf.parent, ignore_errors=True)


REDIRECT_CONFIG = """\
primary_hostname = t.example
qualify_domain = t.example
domainlist local_domains = t.example
begin routers
aliases:
  driver = redirect
  domains = +local_domains
  data = ${lookup{$local_part}lsearch{ROOT/aliases}}
  file_transport = address_file
  pipe_transport = address_pipe
  allow_fail
suffixed:
  driver = redirect
  domains = +local_domains
  local_part_suffix = -* : +*
  local_part_prefix = *=
  local_part_suffix_optional
  local_part_prefix_optional
  local_parts = ! bob : ! carol
  data = ${local_part}_S${local_part_suffix}_P${local_part_prefix}_V${local_part_suffix_v}@other.example
users:
  driver = accept
  local_part_suffix = +*
  local_part_suffix_optional
  local_parts = bob : carol
  transport = t
begin transports
t:
  driver = appendfile
  file = /dev/null
address_pipe:
  driver = pipe
address_file:
  driver = appendfile
"""

REDIRECT_ALIASES = """\
pipe: |/usr/bin/logger -t mail
file: /var/tmp/savefile
both: bob, |/bin/cat, /var/tmp/f2
inc: :include:ROOT/inclist
# a comment line
quoted: "carol"
"""


@pytest.mark.parametrize("address", ["pipe", "file", "both", "inc", "quoted", "a-b-c", "a+b-c", "p=q=x-y",
                                     "bob+tag", "Bob+Tag", "carol", "x"])
def test_redirect_items_and_affixes_match_exim(address: str) -> None:
    root = Path(tempfile.mkdtemp(prefix="pyxim-redirect-"))
    try:
        root.chmod(0o755)
        (root / "aliases").write_text(REDIRECT_ALIASES.replace("ROOT", str(root)))
        (root / "inclist").write_text("carol\ndave@x.example\n")
        conf = root / "c.conf"
        conf.write_text(REDIRECT_CONFIG.replace("ROOT", str(root)))
        for p in root.iterdir():
            p.chmod(0o644)
        target = f"{address}@t.example"
        assert run(PYXIM, conf, "-bt", target) == run([oracle.EXIM], conf, "-bt", target)
    finally:
        shutil.rmtree(root, ignore_errors=True)


UNSEEN_CONFIG = """\
primary_hostname = t.example
begin routers
copy:
  driver = accept
  local_parts = bob
  unseen
  transport = t1
main:
  driver = accept
  transport = t2
begin transports
t1:
  driver = appendfile
  file = /dev/null
t2:
  driver = appendfile
  file = /dev/null
"""


@pytest.mark.parametrize("address", ["bob@t.example", "carol@t.example"])
def test_unseen_matches_exim(address: str) -> None:
    root = Path(tempfile.mkdtemp(prefix="pyxim-unseen-"))
    try:
        root.chmod(0o755)
        conf = root / "c.conf"
        conf.write_text(UNSEEN_CONFIG)
        conf.chmod(0o644)
        assert run(PYXIM, conf, "-bt", address) == run([oracle.EXIM], conf, "-bt", address)
    finally:
        shutil.rmtree(root, ignore_errors=True)


MANUALROUTE_CONFIG = """\
primary_hostname = t.example
begin routers
ports:
  driver = manualroute
  domains = ports.example
  route_list = * "127.0.0.1::2525 : 10.0.0.1"
  self = send
  transport = remote
local:
  driver = manualroute
  domains = local.example
  route_list = * 127.0.0.1
  transport = remote
one:
  driver = manualroute
  domains = one.example
  route_list = *.example 10.9.9.9 remote2 ; one.example 10.0.0.7 bydns
  transport = remote
bogus:
  driver = manualroute
  domains = bogus.example
  route_list = * 10.0.0.8 nosuchopt
  transport = remote
data:
  driver = manualroute
  domains = data.example
  route_data = ${if eq{$local_part}{x}{10.1.1.1:10.1.1.22}{}}
  transport = remote
begin transports
remote:
  driver = smtp
remote2:
  driver = smtp
"""


@pytest.mark.parametrize("address", ["u@ports.example", "u@local.example", "u@one.example", "u@bogus.example",
                                     "x@data.example", "y@data.example"])
def test_manualroute_matches_exim(address: str) -> None:
    """route_list/route_data with quoted host lists, ports, options and transports; self; -bt's host lines."""
    root = Path(tempfile.mkdtemp(prefix="pyxim-manualroute-"))
    try:
        root.chmod(0o755)
        conf = root / "c.conf"
        conf.write_text(MANUALROUTE_CONFIG)
        conf.chmod(0o644)
        pyxim, exim = run(PYXIM, conf, "-bt", address), run([oracle.EXIM], conf, "-bt", address)
        # the router's error also goes to the log (LOG: lines on stderr here), from both
        assert "LOG: MAIN" in pyxim[0] if address == "u@local.example" else True

        def routing(out: tuple[str, int]) -> tuple[str, int]:
            return ("\n".join(line for line in out[0].split("\n")
                              if not line.startswith(("LOG:", "  Error in", "  remote host address"))), out[1])

        assert routing(pyxim) == routing(exim)
    finally:
        shutil.rmtree(root, ignore_errors=True)


STRICT_REDIRECT = """\
primary_hostname = t.example
begin routers
r:
  driver = redirect
  data = ${if eq{$local_part}{f}{:fail: nope}{${if eq{$local_part}{d}{:defer: later}\\
         {${if eq{$local_part}{s}{bad address here, good@x.example}{:unknown:}}}}}}
lenient:
  driver = redirect
  local_parts = k
  skip_syntax_errors
  data = bad address here, good@x.example
next:
  driver = accept
  transport = t
begin transports
t:
  driver = appendfile
  file = /dev/null
"""


@pytest.mark.parametrize("local_part", ["f", "d", "s", "u"])
def test_redirect_permissions_and_syntax_errors_match_exim(local_part: str) -> None:
    """:fail:/:defer: need allow_fail/allow_defer; a bad item defers with Exim's parse error."""
    root = Path(tempfile.mkdtemp(prefix="pyxim-strict-"))
    try:
        root.chmod(0o755)
        conf = root / "c.conf"
        conf.write_text(STRICT_REDIRECT)
        conf.chmod(0o644)
        address = f"{local_part}@t.example"
        pyxim, exim = run(PYXIM, conf, "-bt", address), run([oracle.EXIM], conf, "-bt", address)
        exim = ("\n".join(line for line in exim[0].split("\n") if not line.startswith(("LOG:", "  "))
                          or line.startswith(("  router", "    <--"))), exim[1])
        pyxim = ("\n".join(line for line in pyxim[0].split("\n") if not line.startswith("  ")
                           or line.startswith(("  router", "    <--"))), pyxim[1])
        assert pyxim == exim
    finally:
        shutil.rmtree(root, ignore_errors=True)

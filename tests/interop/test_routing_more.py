"""The redirect router's further options, pyxim against exim4 on the same configuration:
filters refused without allow_filter, qualify_preserve_domain, check_ancestor and the router
loop check, `rewrite` (generated addresses through the rewrite section's T rules), one_time
(pipes forbidden; a deferred child becomes a recipient; not with unseen), skip_syntax_errors
with syntax_errors_to (the log line and the message sent)."""

from __future__ import annotations

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
primary_hostname = t.example
qualify_domain = t.example
spool_directory = ROOT/spool
log_file_path = ROOT/%slog
domainlist local_domains = t.example : other.example
begin routers
filt:
  driver = redirect
  local_parts = filt : sieve
  data = ${if eq{$local_part}{sieve}{# Sieve filter\\nkeep;}{#Exim filter\\ndeliver x@t.example}}
efilt:
  driver = redirect
  local_parts = efilt
  data = # Exim filter\\ndeliver x@t.example
  allow_filter
  forbid_exim_filter
  user = nobody
qpd:
  driver = redirect
  local_parts = qpd
  qualify_preserve_domain
  data = bob, carol@t.example
anc:
  driver = redirect
  local_parts = anc : anc2
  check_ancestor
  data = ${if eq{$local_part}{anc}{anc2}{anc, bob}}
skip:
  driver = redirect
  local_parts = skip
  skip_syntax_errors
  syntax_errors_to = postmaster@t.example
  data = bad address here, later
loop:
  driver = redirect
  local_parts = loop
  data = loop
ot:
  driver = redirect
  local_parts = ot
  one_time
  data = later, |/bin/true, later2
  pipe_transport = p
rw:
  driver = redirect
  local_parts = rw
  data = old@t.example
norw:
  driver = redirect
  local_parts = norw
  data = old@t.example
  rewrite = false
users:
  driver = accept
  domains = +local_domains
  local_parts = bob : carol : old : new
  transport = t
deferring:
  driver = redirect
  local_parts = later : later2 : postmaster
  allow_defer
  data = :defer: not now
rr:
  driver = redirect
  local_parts = rr
  data = bob@t.example, "|/bin/echo a, b"
  pipe_transport = p
  redirect_router = late
nosend:
  driver = accept
  domains = vs.example
  no_verify_sender
  transport = t
late:
  driver = accept
  local_parts = bob
  transport = p
begin transports
t:
  driver = appendfile
  file = /dev/null
p:
  driver = pipe
begin retry
* * F,1h,10m
begin rewrite
old@t.example new@t.example T
"""


@pytest.fixture()
def homes() -> Iterator[dict[str, Path]]:
    root = Path(tempfile.mkdtemp(prefix="pyxim-redirect-more-"))
    root.chmod(0o777)  # Exim drops to its own user for deliveries with -C
    out = {}
    for who in ("exim", "pyxim"):
        home = root / who
        home.mkdir()
        home.chmod(0o777)
        (home / "c.conf").write_text(CONFIG.replace("ROOT", str(home)))
        (home / "c.conf").chmod(0o644)
        out[who] = home
    yield out
    shutil.rmtree(root, ignore_errors=True)


def _command(who: str) -> list[str]:
    return [oracle.EXIM] if who == "exim" else PYXIM  # type: ignore[list-item]


def _run(who: str, home: Path, *args: str, stdin: str = "") -> tuple[str, int]:
    proc = subprocess.run(
        _command(who) + ["-C", str(home / "c.conf"), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )
    # Exim's LOG: lines (its main log echoed under -bt) are not what -bt prints
    out = re.sub(r"LOG: MAIN\n  [^\n]*\n", "", proc.stdout + proc.stderr)
    return re.sub(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ", "", out, flags=re.M), proc.returncode


ADDRESSES = [
    "filt@t.example",
    "sieve@t.example",
    "efilt@t.example",
    "qpd@other.example",
    "anc@t.example",
    "loop@t.example",
    "ot@t.example",
    "rw@t.example",
    "norw@t.example",
    "rr@t.example",
]


def test_bt_matches_exim(homes: dict[str, Path]) -> None:
    """All the addresses in one -bt run each (addresses on standard input)."""
    stdin = "".join(f"{a}\n" for a in ADDRESSES)
    exim = _run("exim", homes["exim"], "-bt", stdin=stdin)
    assert "*** forbidden ***" in exim[0] and "filtering not enabled" in exim[0]
    assert _run("pyxim", homes["pyxim"], "-bt", stdin=stdin) == exim


def test_bt_marks_duplicates_as_exim(homes: dict[str, Path]) -> None:
    """One -bt run remembers what it routed: a later routing of the same address is a duplicate."""
    for stdin in ("bob@t.example\nbob@t.example\n", "rr@t.example\nbob@t.example\nrr@t.example\n"):
        exim = _run("exim", homes["exim"], "-bt", stdin=stdin)
        assert "[duplicate, would not be delivered]" in exim[0]
        assert _run("pyxim", homes["pyxim"], "-bt", stdin=stdin) == exim


def test_verify_sender_and_recipient_as_exim(homes: dict[str, Path]) -> None:
    """-bv and -bvs: a router with no_verify_sender is skipped when a sender is verified."""
    for mode in ("-bv", "-bvs"):
        exim = _run("exim", homes["exim"], mode, "x@vs.example", "rr@t.example")
        assert _run("pyxim", homes["pyxim"], mode, "x@vs.example", "rr@t.example") == exim
    assert "x@vs.example verified" in exim[0] if mode == "-bv" else "x@vs.example failed to verify" in exim[0]


def test_one_time_with_unseen_is_a_configuration_error(homes: dict[str, Path]) -> None:
    for home in homes.values():
        conf = home / "c.conf"
        conf.write_text(conf.read_text().replace("  one_time\n", "  one_time\n  unseen\n"))
    exim = _run("exim", homes["exim"], "-bt", "ot@t.example")
    assert exim[0].startswith(
        'Exim configuration error for ot router:\n  "unseen" may not be used with "one_time"'
    )
    assert _run("pyxim", homes["pyxim"], "-bt", "ot@t.example") == exim


def _deliver(who: str, home: Path, recipient: str, subject: str = "urgent things") -> tuple[list[str], str]:
    subprocess.run(
        _command(who) + ["-C", str(home / "c.conf"), "-odi", "-f", "s@x.example", recipient],
        input=f"Subject: {subject}\n\nbody\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = []
    for line in (home / "mainlog").read_text().splitlines():
        line = re.sub(r"[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}", "ID", line[20:])
        line = re.sub(r" U=\S+", " U=USER", re.sub(r" S=\d+", " S=SIZE", line))
        if line.startswith("ID ") and "lost privilege" not in line:
            lines.append(line)
    lines.sort()  # Exim delivers the message it generates at once, in a process of its own
    queue, _ = _run(who, home, "-bp")
    queue = re.sub(r"[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}", "ID", queue)
    return lines, re.sub(r"^ *\d+[smhd] +\S+ ", "AGE SIZE ", queue, flags=re.M)


def test_one_time_deferred_children_become_recipients(homes: dict[str, Path]) -> None:
    exim = _deliver("exim", homes["exim"], "ot@t.example")
    assert "        D ot@t.example" in exim[1]
    assert _deliver("pyxim", homes["pyxim"], "ot@t.example") == exim


def test_skip_syntax_errors_logs_and_tells_syntax_errors_to(homes: dict[str, Path]) -> None:
    def notice(home: Path) -> str:
        """The body of the message sent to syntax_errors_to (its -D file, after the id line)."""
        for path in sorted((home / "spool" / "input").rglob("*-D")):
            text = path.read_text()
            if "encountered the following error" in text:
                return re.sub(r"[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}", "ID", text.split("\n", 1)[1])
        return ""

    exim = _deliver("exim", homes["exim"], "skip@t.example")
    assert any("skip router: skipped error:" in line for line in exim[0])
    assert _deliver("pyxim", homes["pyxim"], "skip@t.example") == exim
    assert notice(homes["pyxim"]) == notice(homes["exim"]) != ""


FILTER_CONFIG = """\
primary_hostname = t.example
qualify_domain = t.example
spool_directory = ROOT/spool
log_file_path = ROOT/%slog
begin routers
filt:
  driver = redirect
  local_parts = f1 : f2 : f3 : f4 : f5 : f6 : f7
  file = ROOT/$local_part_data
  allow_filter
  allow_fail
  user = EXIM_USER
  file_transport = af
  pipe_transport = ap
deferring:
  driver = redirect
  local_parts = later : urgent
  allow_defer
  data = :defer: not now
users:
  driver = accept
  transport = t
begin transports
t:
  driver = appendfile
  file = /dev/null
af:
  driver = appendfile
ap:
  driver = pipe
begin retry
* * F,1h,10m
"""

FILTERS = {
    "f1": "# Exim filter\ndeliver bob@t.example\nsave /tmp/box\n",
    "f2": '# Exim filter\nif $local_part is "f2" then\n  unseen deliver carol@t.example\nendif\n',
    "f3": '#Exim Filter\nif $local_part contains "zz" or $local_part begins F then\n pipe "/bin/cat"\nelse\n'
    " deliver x@t.example\nendif\nfinish\ndeliver y@t.example\n",
    "f4": '# Exim filter\nfail text "go away"\n',
    "f5": "# Exim filter\n# nothing at all\n",
    "f6": '# Exim filter\nif $local_part does not match "^f[0-9]\\\\$" then deliver a@t.example\n'
    'elif $local_part Is "F6" then deliver b@t.example else deliver c@t.example endif\n',
    "f7": '# Exim filter\nif $h_subject: contains "urgent" then deliver urgent@t.example else deliver later@t.example '
    "endif\n",
}


def _exim_user() -> str:
    """Exim run with -C delivers as its own user, so the filter runs as that user (Debian's name
    first)."""
    import pwd

    for name in ("Debian-exim", "exim", "mail"):
        try:
            return pwd.getpwnam(name).pw_name
        except KeyError:
            continue
    return "nobody"


@pytest.fixture()
def filter_homes(homes: dict[str, Path]) -> dict[str, Path]:
    for home in homes.values():
        (home / "c.conf").write_text(
            FILTER_CONFIG.replace("ROOT", str(home)).replace("EXIM_USER", _exim_user())
        )
        for name, text in FILTERS.items():
            (home / name).write_text(text)
            (home / name).chmod(0o644)
    return homes


def test_exim_filters_route_as_exim(filter_homes: dict[str, Path]) -> None:
    """deliver, save, pipe, unseen, if/elif/else, the string conditions, finish, fail text."""
    stdin = "".join(f"{name}@t.example\n" for name in sorted(FILTERS))
    exim = _run("exim", filter_homes["exim"], "-bt", stdin=stdin)
    assert "is undeliverable: go away" in exim[0]
    assert _run("pyxim", filter_homes["pyxim"], "-bt", stdin=stdin) == exim


def test_exim_filter_sees_the_message_headers(filter_homes: dict[str, Path]) -> None:
    """At delivery the filter's $h_subject: is the message's (here: the "urgent" branch)."""
    exim = _deliver("exim", filter_homes["exim"], "f7@t.example")
    assert "ID == urgent@t.example <f7@t.example> R=deferring defer (-1): not now" in exim[0]
    assert _deliver("pyxim", filter_homes["pyxim"], "f7@t.example") == exim

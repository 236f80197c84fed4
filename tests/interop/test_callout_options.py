"""Callout options and the callout cache: pyxim -bhc and exim4 -bhc ask the same receiving server
(a pyxim daemon on loopback that logs every MAIL FROM/RCPT TO pair it is asked) and must answer
the client, log, and ask the server the same things — random, postmaster, fullpostmaster,
postmaster_mailfrom, use_sender, use_postmaster, no_cache, defer_ok, connect/maxwait/hold,
the refusal of 4.97's "pipelining" and of mailfrom outside header_sender, sender and
header_sender callouts; a
second session over the same spool answers from the cache ("Previous (cached) callout
verification failure", "(result of earlier verification reused).", a domain that accepts
random local parts)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_daemon import stop_daemon
from tests.interop import oracle
from tests.support.dnsserver import free_port
from tests.support.servers import start_pyxim_daemon

pytestmark = pytest.mark.skipif(oracle.EXIM is None, reason="exim4 not installed")

RECEIVER = """\
primary_hostname = recv.example
spool_directory = ROOT/rspool
log_file_path = ROOT/r%slog
queue_only
acl_smtp_rcpt = r
begin acl
r:
  warn   logwrite = CALLOUT from=<$sender_address> rcpt=<$local_part@$domain>
  accept domains = all.example
  deny   local_parts = nosuch : ^.*-testing\\$
         message = No such user here
  deny   domains = nopm.example
         local_parts = postmaster
         message = no postmaster
  defer  local_parts = later
         message = try later
  accept
"""

SENDER = """\
primary_hostname = send.example
spool_directory = ROOT/WHO-spool
log_file_path = ROOT/WHO-%slog
callout_random_local_part = fixed-testing
acl_smtp_rcpt = r
acl_smtp_data = d
begin acl
r:
  RCPT_CONDITION
  accept
d:
  DATA_CONDITION
  accept
begin routers
out:
  driver = manualroute
  route_list = * 127.0.0.1::PORT
  self = send
  transport = smtp
begin transports
smtp:
  driver = smtp
  allow_localhost
"""

ADDRESSES = [
    "ok@nopm.example",
    "ok@all.example",
    "x@all.example",
    "later@r.example",
    "nosuch@r.example",
    "nosuch@r.example",
    "ok@r.example",
]

CASES = [  # (verify kind, callout options, addresses, sessions over one spool)
    ("recipient", "10s,postmaster,random", ADDRESSES, 2),
    ("recipient", "10s,fullpostmaster", ["nosuch@nopm.example", "ok@nopm.example", "nosuch@r.example"], 1),
    ("recipient", "10s,postmaster_mailfrom=pm@y.example", ["ok@nopm.example", "ok@r.example"], 1),
    ("recipient", "10s,use_sender,defer_ok", ["later@r.example", "nosuch@r.example", "nosuch@r.example"], 1),
    ("recipient", "10s,use_postmaster,no_cache", ["nosuch@r.example", "nosuch@r.example", "ok@r.example"], 1),
    ("recipient", "10s,connect=5s,maxwait=20s,hold", ["ok@r.example", "nosuch@r.example"], 1),
    ("recipient", "10s,pipelining", ["ok@r.example"], 1),
    ("recipient", "10s,mailfrom=m@y.example", ["ok@r.example"], 1),
    ("header_sender", "10s,mailfrom=m@y.example", ["ok@r.example", "nosuch@r.example", "later@r.example"], 1),
    (
        "sender",
        "10s,postmaster,random",
        ["ok@nopm.example", "nosuch@r.example", "ok@all.example", "later@r.example"],
        2,
    ),
]


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[Path, int]]:
    root = Path(tempfile.mkdtemp(prefix="pyxim-callout-opts-"))
    root.chmod(0o777)  # Exim runs -bhc as its own user under -C
    port = free_port()
    (root / "recv.conf").write_text(RECEIVER.replace("ROOT", str(root)))
    (root / "recv.conf").chmod(0o644)
    daemon = start_pyxim_daemon(root / "recv.conf", port)
    try:
        yield root, port
    finally:
        stop_daemon(daemon)
        shutil.rmtree(root, ignore_errors=True)


def _asked(root: Path) -> list[str]:
    """What the receiving server was asked so far (its logwrite lines)."""
    log = root / "rmainlog"
    return (
        [line.split("CALLOUT ", 1)[1] for line in log.read_text().splitlines() if "CALLOUT " in line]
        if log.exists()
        else []
    )


def _session(
    who: str, root: Path, port: int, kind: str, options: str, addresses: list[str], runs: int
) -> list[object]:
    conf = root / f"{who}-{abs(hash((kind, options)))}.conf"
    spool_tag = conf.stem
    conf.write_text(
        SENDER.replace("ROOT", str(root))
        .replace("WHO", spool_tag)
        .replace("PORT", str(port))
        .replace(
            "RCPT_CONDITION" if kind != "header_sender" else "DATA_CONDITION",
            f"require verify = {kind}/callout={options}",
        )
        .replace("RCPT_CONDITION", "accept hosts = :")
        .replace("DATA_CONDITION", "accept hosts = :")
    )
    conf.chmod(0o644)
    if kind == "recipient":
        script = "HELO c\r\nMAIL FROM:<s@x.example>\r\n" + "".join(f"RCPT TO:<{a}>\r\n" for a in addresses)
    elif kind == "header_sender":
        script = "HELO c\r\n" + "".join(
            f"MAIL FROM:<s@x.example>\r\nRCPT TO:<r@r.example>\r\nDATA\r\nFrom: {a}\r\n\r\nbody\r\n.\r\n"
            for a in addresses
        )
    else:
        script = "HELO c\r\n" + "".join(
            f"MAIL FROM:<{a}>\r\nRCPT TO:<r@r.example>\r\nRSET\r\n" for a in addresses
        )
    command = [oracle.EXIM] if who == "exim" else [sys.executable, "-m", "pyxim"]
    seen: list[object] = []
    for _ in range(runs):
        before = len(_asked(root))
        proc = subprocess.run(
            command + ["-C", str(conf), "-bhc", "192.0.2.7"],
            input=script + "QUIT\r\n",
            capture_output=True,
            text=True,
            timeout=60,
        )
        lines = [
            re.sub(r"[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}", "ID", line.rstrip("\r"))
            for line in proc.stdout.split("\n") + proc.stderr.split("\n")
        ]
        # stdout (replies) and stderr (log) interleave differently: compare each in its own order
        replies = [line for line in lines if re.match(r"[2-5]\d\d[ -]", line) and not line.startswith("220 ")]
        logs = [line for line in lines if line.startswith("LOG: ")]
        seen.append((replies, logs, _asked(root)[before:]))
    shutil.rmtree(root / f"{spool_tag}-spool", ignore_errors=True)
    return seen


@pytest.mark.parametrize(
    ("kind", "options", "addresses", "runs"), CASES, ids=[f"{k}-{o}" for k, o, _, _ in CASES]
)
def test_callout_options_match_exim(
    receiver: tuple[Path, int], kind: str, options: str, addresses: list[str], runs: int
) -> None:
    root, port = receiver
    exim = _session("exim", root, port, kind, options, addresses, runs)
    assert _session("pyxim", root, port, kind, options, addresses, runs) == exim


def test_the_cases_say_something(receiver: tuple[Path, int]) -> None:
    """The second session answers from the cache without asking the server again."""
    root, port = receiver
    first, second = _session("pyxim", root, port, "recipient", "10s,postmaster,random", ADDRESSES, 2)
    assert "550 Previous (cached) callout verification failure" in second[0]  # type: ignore[index]
    assert "550 (result of earlier verification reused)." in second[0]  # type: ignore[index]
    assert "from=<> rcpt=<fixed-testing@all.example>" in first[2]  # type: ignore[index]
    assert second[2] == ["from=<> rcpt=<later@r.example>"]  # type: ignore[index]

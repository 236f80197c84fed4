"""Per-host retry state: a loopback address that refuses connections gets a host retry record, so
other messages for it are deferred with "retry time not reached for any host" without a connection,
while a live host is still used; -qf tries the dead host again. The log and -bp are compared with
exim4 on the same configuration."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_daemon import stop_daemon
from tests.interop import oracle
from tests.interop.test_smtp_transport import RECEIVER
from tests.support.dnsserver import free_port

PYXIM = [sys.executable, "-m", "pyxim"]

# 127.0.0.3 listens nowhere (refused); the receiver listens on 127.0.0.2. Neither is an address of
# an interface (Exim does not treat them as the local host; pyxim's routers do, hence `self = send`).
SENDER = """\
primary_hostname = send.example
qualify_domain = x.example
spool_directory = {root}/spool
log_file_path = {root}/log/%slog
begin routers
dead:
  driver = manualroute
  local_parts = ^dead
  route_list = * 127.0.0.3
  self = send
  transport = remote_smtp
both:
  driver = manualroute
  local_parts = ^both
  route_list = * 127.0.0.3:127.0.0.2
  self = send
  transport = remote_smtp
live:
  driver = manualroute
  route_list = * 127.0.0.2
  self = send
  transport = remote_smtp
begin transports
remote_smtp:
  driver = smtp
  port = {port}
  hosts_avoid_tls = *
begin retry
* * F,1h,10m
"""


@pytest.fixture(scope="module")
def live_port() -> Iterator[int]:
    root = Path(tempfile.mkdtemp(prefix="pyxim-hretry-recv-"))
    root.chmod(0o755)
    (root / "exim.conf").write_text(RECEIVER.format(root=root))
    port = free_port()
    proc = subprocess.Popen(
        PYXIM + ["-C", str(root / "exim.conf"), "-bdf", "-oX", f"127.0.0.2.{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.2", port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    raise RuntimeError("the receiver did not start") from None
                time.sleep(0.1)
        yield port
    finally:
        stop_daemon(proc)
        shutil.rmtree(root, ignore_errors=True)


def scenario(command: list[str], port: int) -> tuple[list[list[str]], str]:
    """Three messages (dead host; dead and live hosts; dead host then a live one), then -q and -qf.
    Returns each step's delivery lines (sorted within a queue run, whose order Exim does not fix)
    and -bp with ids and sizes masked."""
    root = Path(tempfile.mkdtemp(prefix="pyxim-hretry-"))
    try:
        root.chmod(0o777)
        for sub in ("spool", "log"):
            (root / sub).mkdir(mode=0o777)
            (root / sub).chmod(0o777)
        conf = root / "c.conf"
        conf.write_text(SENDER.format(root=root, port=port))
        conf.chmod(0o644)
        log = root / "log" / "mainlog"
        steps: list[list[str]] = []

        def step(args: list[str], data: bytes | None = None) -> None:
            seen = log.read_text() if log.exists() else ""
            subprocess.run(
                command + ["-C", str(conf), *args], input=data or b"", capture_output=True, timeout=60
            )
            new = (log.read_text() if log.exists() else "")[len(seen) :]
            lines = []
            for line in new.splitlines():
                line = re.sub(r"[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}", "ID", line[20:])
                line = re.sub(r"pid=\d+|S=\d+|\d+ byte chunk, total \d+|U=\S+ ", "", line)
                if re.match(r"ID (=>|==|\*\*|Completed)|ID H=|Start|End", line):
                    lines.append(line)
            steps.append(sorted(lines) if args[0].startswith("-q") else lines)

        message = b"Subject: host retry\n\nbody\n"
        step(["-odi", "-f", "s@x.example", "dead1@remote.example"], message)
        step(["-odi", "-f", "s@x.example", "dead2@remote.example", "live@remote.example"], message)
        step(["-odi", "-f", "s@x.example", "both@remote.example"], message)
        step(["-q"])
        step(["-qf"])
        listing = subprocess.run(
            command + ["-C", str(conf), "-bp"], capture_output=True, text=True, timeout=60
        ).stdout
    finally:
        shutil.rmtree(root, ignore_errors=True)
    listing = re.sub(r"\S+-\S+-\S+ <", "ID <", re.sub(r"^ *\d+m +\S+ ", "AGE SIZE ", listing, flags=re.M))
    return steps, listing


def test_dead_host_is_skipped_until_its_retry_time(live_port: int) -> None:
    steps, listing = scenario(PYXIM, live_port)
    skipped = (
        "ID == {} R={} T=remote_smtp defer (-54): retry time not reached for any host for 'remote.example'"
    )
    refused = [
        "ID H=127.0.0.3 [127.0.0.3] Connection refused",
        "ID == {} R=dead T=remote_smtp defer (111): Connection refused",
    ]
    assert steps[0] == [refused[0], refused[1].format("dead1@remote.example")]
    assert steps[1][0] == skipped.format("dead2@remote.example", "dead")
    assert steps[1][1].startswith("ID => live@remote.example R=live T=remote_smtp H=127.0.0.2 [127.0.0.2] K")
    # the dead host is skipped without a connection, the live one after it delivers
    assert steps[2][0].startswith("ID => both@remote.example R=both T=remote_smtp H=127.0.0.2 [127.0.0.2] K")
    assert sorted(steps[3]) == sorted(
        [
            "Start queue run: ",
            "End queue run: ",
            skipped.format("dead1@remote.example", "dead"),
            skipped.format("dead2@remote.example", "dead"),
        ]
    )
    assert steps[4].count(refused[0]) == 2  # -qf: the host is tried again
    assert "dead1@remote.example" in listing and "D live@remote.example" in listing
    if oracle.EXIM is not None and os.geteuid() == 0:  # the same, line for line, as exim4
        assert (steps, listing) == scenario([oracle.EXIM], live_port)


ADDRESS_ROUTERS = """\
later:
  driver = redirect
  local_parts = defer
  allow_defer
  data = :defer: not now
busy:
  driver = accept
  local_parts = busy
  transport = fails
"""


def _local_user() -> str:
    """Who local deliveries run as: Exim's user where exim4 is installed, else nobody."""
    import pwd

    try:
        return pwd.getpwnam("Debian-exim").pw_name
    except KeyError:
        return "nobody"


def test_address_retry_times_count_in_queue_runs_only(live_port: int) -> None:
    """Retry records of addresses (a routing deferral, a local delivery's failure, a remote server's
    451 to RCPT) are disregarded by the delivery right after reception and respected by queue runs,
    each with Exim's wording: "routing defer (-52)" before routing, "defer (-53): Retry time not yet
    reached" for a local transport."""

    def lines(command: list[str]) -> list[str]:
        root = Path(tempfile.mkdtemp(prefix="pyxim-aretry-"))
        try:
            root.chmod(0o777)
            for sub in ("spool", "log"):
                (root / sub).mkdir(mode=0o777)
                (root / sub).chmod(0o777)
            conf = root / "c.conf"
            text = SENDER.format(root=root, port=live_port)
            text = text.replace("begin routers\n", "begin routers\n" + ADDRESS_ROUTERS)
            text = text.replace(
                "begin transports\n",
                "begin transports\nfails:\n  driver = appendfile\n"
                f"  file = /nonexistent/pyxim-test/$local_part_data\n  user = {_local_user()}\n",
            )
            conf.write_text(text)
            conf.chmod(0o644)
            rcpts = ["defer@x.example", "busy@x.example", "later@remote.example"]
            for extra in (["a@remote.example"], []):
                subprocess.run(
                    command + ["-C", str(conf), "-odi", "-f", "s@x.example", *rcpts, *extra],
                    input=b"Subject: address retry\n\nbody\n",
                    capture_output=True,
                    timeout=60,
                )
            subprocess.run(command + ["-C", str(conf), "-q"], capture_output=True, timeout=60)
            log = (root / "log" / "mainlog").read_text()
        finally:
            shutil.rmtree(root, ignore_errors=True)
        out = []
        for line in log.splitlines():
            line = re.sub(r"[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}", "ID", line[20:])
            line = re.sub(r"pid=\d+|\d+ byte chunk, total \d+", "", line)
            line = re.sub(r"defer \((13|2)\): .*", "defer (ERRNO): appendfile's reason", line)
            if re.match(r"ID (=>|->|==|\*\*)|Start|End", line):
                out.append(line)
        return out

    ours = lines(PYXIM)
    assert ours.count("ID == defer@x.example R=later defer (-1): not now") == 2
    assert ours.count("ID == defer@x.example routing defer (-52): retry time not reached") == 2
    assert ours.count("ID == busy@x.example R=busy T=fails defer (-53): Retry time not yet reached") == 2
    assert ours.count("ID == later@remote.example routing defer (-52): retry time not reached") == 2
    assert any(line.startswith("ID => a@remote.example R=live T=remote_smtp") for line in ours)  # =>, not ->
    if oracle.EXIM is not None and os.geteuid() == 0:
        assert ours == lines([oracle.EXIM])

"""Queue runs with Exim's flags, compared with exim4 on the same configuration and queue:
-qq (a first pass that routes and makes local deliveries only, then deliveries with messages for
one host going down one connection, "*" after the host), -qi (only messages never tried) and
-qqf; their "Start queue run" / "End queue run" lines."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.interop import oracle
from tests.interop.test_host_retry import PYXIM, SENDER, live_port  # noqa: F401 — the receiver fixture

LOCAL = """\
local:
  driver = accept
  local_parts = ^loc
  transport = mbox
"""
MBOX = """\
mbox:
  driver = appendfile
  file = {root}/mail/$local_part_data
  user = Debian-exim
"""


def run(command: list[str], port: int, steps: list[tuple[list[str], str]]) -> list[str]:
    """Submit or run the queue as `steps` say ((argv, envelope recipients)); the delivery lines."""
    root = Path(tempfile.mkdtemp(prefix="pyxim-qruns-"))
    try:
        root.chmod(0o777)
        for sub in ("spool", "log", "mail"):
            (root / sub).mkdir(mode=0o777)
            (root / sub).chmod(0o777)
        conf = root / "c.conf"
        # in order of arrival, so that Exim's order is not left to chance
        text = SENDER.format(root=root, port=port).replace(
            "begin routers\n", "queue_run_in_order\nbegin routers\n"
        )
        text = text.replace("begin routers\n", "begin routers\n" + LOCAL)
        text = text.replace("begin transports\n", "begin transports\n" + MBOX.format(root=root))
        conf.write_text(text)
        conf.chmod(0o644)
        for argv, rcpts in steps:
            data = b"Subject: queue runs\n\nbody\n" if rcpts else b""
            sender, _, rcpts = rcpts.rpartition("|")  # "sender|recipients", the sender s@x.example by default
            extra = ["-f", sender or "s@x.example", *rcpts.split()] if rcpts else []
            subprocess.run(
                command + ["-C", str(conf), *argv, *extra], input=data, capture_output=True, timeout=60
            )
            if rcpts:
                time.sleep(0.05)  # distinct arrival times, so "oldest first" is one order
        log = (root / "log" / "mainlog").read_text()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    out = []
    for line in log.splitlines():
        line = re.sub(r"[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}", "ID", line[20:])
        line = re.sub(r"pid=\d+|\d+ byte chunk, total \d+", "", line)
        if re.match(r"ID (=>|==|\*\*|Completed|Message is|Frozen)|ID H=|Start|End", line):
            out.append(line)
    return out


TWO_STAGE = [
    (["-odq"], "a@remote.example loc1@x.example"),
    (["-odq"], "dead@remote.example"),
    (["-odq"], "b@remote.example"),
    (["-qq"], ""),
]


def _two_stage(lines: list[str]) -> None:
    assert lines[0] == "Start queue run:  -qq" and lines[-1] == "End queue run:  -qq"
    # the local delivery is made in the first pass, before any remote one
    assert lines[1] == "ID => loc1 <loc1@x.example> R=local T=mbox"
    delivered = [line for line in lines if " => " in line and "remote.example" in line]
    assert delivered[0].startswith("ID => a@remote.example R=live T=remote_smtp H=127.0.0.2 [127.0.0.2] K")
    # b's message, younger than dead's, comes next and reuses a's connection
    assert delivered[1].startswith("ID => b@remote.example R=live T=remote_smtp H=127.0.0.2 [127.0.0.2]* K")


def _initial_only(lines: list[str]) -> None:
    # the message tried before is left alone; the new one is delivered
    assert lines.count("ID == dead@remote.example R=dead T=remote_smtp defer (111): Connection refused") == 1
    assert any(line.startswith("ID => a@remote.example") for line in lines)


def _frozen(lines: list[str]) -> None:
    assert lines[-3:] == ["Start queue run: ", "ID Message is frozen", "End queue run: "]


@pytest.mark.parametrize(
    ("steps", "check"),
    [
        (TWO_STAGE, _two_stage),
        ([(["-odi"], "dead@remote.example"), (["-odq"], "a@remote.example"), (["-qi"], "")], _initial_only),
        (
            [
                (["-odi"], "dead@remote.example"),
                (["-odq"], "a@remote.example b@remote.example"),
                (["-qqf"], ""),
            ],
            None,
        ),
        # a bounce refused by its host is frozen; a queue run passes it by, saying so
        ([(["-odi"], "<>|bad@remote.example"), (["-q"], "")], _frozen),
    ],
    ids=["qq", "qi", "qqf", "frozen"],
)
def test_queue_runs(live_port: int, steps: list[tuple[list[str], str]], check) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    lines = run(PYXIM, live_port, steps)
    if check is not None:
        check(lines)
    if oracle.EXIM is not None and os.geteuid() == 0:  # the same, line for line, as exim4
        assert lines == run([oracle.EXIM], live_port, steps)


@pytest.mark.parametrize("limit", [1, 2])
def test_daemon_queue_run_max(tmp_path: Path, limit: int) -> None:
    """-bdf -qf1s: a queue run every second; a run held up by a stalling server blocks new ones
    only when queue_run_max (here 1) runs are going."""
    import socket

    from tests.integration.test_daemon import stop_daemon
    from tests.support.dnsserver import free_port
    from tests.support.hostile import scripted_server
    from tests.support.servers import wait_for_port

    tmp_path.chmod(0o755)
    with scripted_server(
        [("send", b"220 slow.example ESMTP\r\n"), ("read",), ("sleep", 10)], "127.0.0.2"
    ) as slow:
        conf = tmp_path / "c.conf"
        text = (
            SENDER.format(root=tmp_path, port=slow.port)
            .replace("begin routers\n", f"queue_run_max = {limit}\nbegin routers\n")
            .replace("  hosts_avoid_tls = *\n", "  hosts_avoid_tls = *\n  command_timeout = 2s\n")
        )
        conf.write_text(text)
        subprocess.run(
            PYXIM + ["-C", str(conf), "-odq", "-f", "s@x.example", "a@remote.example"],
            input=b"Subject: slow\n\nx\n",
            capture_output=True,
            timeout=60,
        )
        port = free_port()
        proc = subprocess.Popen(
            PYXIM + ["-C", str(conf), "-bdf", "-qf1s", "-oX", f"127.0.0.1.{port}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_port(port, proc)
            time.sleep(3.2)
            socket.create_connection(("127.0.0.1", port), timeout=5).close()  # still serving
        finally:
            stop_daemon(proc)
    lines = [
        line for line in (tmp_path / "log" / "mainlog").read_text().splitlines() if "queue run: pid=" in line
    ]
    assert lines and all(line.endswith(" -qf") for line in lines)
    marks = ["Start" if " Start queue run:" in line else "End" for line in lines]
    running = most = 0
    for mark in marks:
        running += 1 if mark == "Start" else -1
        most = max(most, running)
    assert most == limit


def test_remote_max_parallel(tmp_path: Path) -> None:
    """Two recipients on two slow hosts: with remote_max_parallel = 2 the two transactions overlap;
    the log lines still come in the recipients' order."""
    from tests.support.hostile import SERVE_TABLE, scripted_server

    tmp_path.chmod(0o755)
    slow = [("sleep", 1.5), ("send", b"220 slow.example ESMTP\r\n"), ("serve", SERVE_TABLE)]
    with scripted_server(slow) as one, scripted_server(slow) as two:
        transports = "".join(
            f"t{n}:\n  driver = smtp\n  port = {s.port}\n  hosts_avoid_tls = *\n"
            for n, s in ((1, one), (2, two))
        )
        routers = "".join(
            f"r{n}:\n  driver = manualroute\n  local_parts = {lp}\n  route_list = * 127.0.0.1\n"
            f"  self = send\n  transport = t{n}\n"
            for n, lp in ((1, "a"), (2, "b"))
        )
        conf = tmp_path / "c.conf"
        conf.write_text(
            f"primary_hostname = send.example\nspool_directory = {tmp_path}/spool\n"
            f"log_file_path = {tmp_path}/%slog\nremote_max_parallel = 2\n"
            f"begin routers\n{routers}begin transports\n{transports}"
        )
        started = time.time()
        subprocess.run(
            PYXIM + ["-C", str(conf), "-odi", "-f", "s@x.example", "a@remote.example", "b@remote.example"],
            input=b"Subject: p\n\nx\n",
            capture_output=True,
            timeout=60,
        )
        elapsed = time.time() - started
    lines = [line[20:].split(" ", 1)[1] for line in (tmp_path / "mainlog").read_text().splitlines()]
    assert lines[1].startswith("=> a@remote.example R=r1 T=t1 H=127.0.0.1 [127.0.0.1]")
    assert lines[2].startswith("=> b@remote.example R=r2 T=t2 H=127.0.0.1 [127.0.0.1]")
    assert elapsed < 2.9, elapsed  # one after the other would take more than 3 s

"""The smtp transport against servers that misbehave (tests/support/hostile.py): garbage and
endless replies, 4xx/5xx at each stage, stalls past the transport's (short) timeouts, dropped
connections and a STARTTLS that leads nowhere. Each ends in a deferral (== line, the message stays
on the queue) or a bounce (** line, a bounce to the sender) with Exim's diagnostic; the lines are
compared with exim4's for the same server. A pyxim daemon relaying to such a server keeps serving."""

from __future__ import annotations

import os
import re
import shutil
import smtplib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.interop import oracle
from tests.support.hostile import SERVE_TABLE, ehlo_reply, scripted_server

PYXIM = [sys.executable, "-m", "pyxim"]

SENDER = """\
primary_hostname = send.example
qualify_domain = x.example
spool_directory = {root}/spool
log_file_path = {root}/log/%slog
{main_extra}
begin routers
bounces:
  driver = redirect
  domains = x.example
  data = :blackhole:
smarthost:
  driver = manualroute
  route_list = * 127.0.0.1
  self = send
  transport = remote_smtp
begin transports
remote_smtp:
  driver = smtp
  port = {port}
  allow_localhost
  connect_timeout = 2s
  command_timeout = 1s
  data_timeout = 1s
  final_timeout = 1s
  {transport_extra}
begin retry
* * F,1h,10m
"""

SERVE = SERVE_TABLE
GREET = ("send", b"220 hostile.example ESMTP\r\n")


def serving(**changes: bytes | list) -> list:  # type: ignore[type-arg]
    table = dict(SERVE)
    table.update({k.replace("_", " ").replace("END", "."): v for k, v in changes.items()})
    return [GREET, ("serve", table)]


STALL = [("sleep", 3)]
TLS_GARBAGE = [
    ("send", b"220 go ahead\r\n"),
    ("send", b"\x15\x03\x03 this is not a TLS handshake\r\n"),
    ("close",),
]
SCENARIOS: dict[str, tuple[list, str, str]] = {  # type: ignore[type-arg]
    # name: (script, transport_extra, expected: "defer" or "fail")
    "garbage greeting": ([("send", b"hello, this is not SMTP\r\n")], "", "defer"),
    "endless multi-line greeting": ([("send", b"220-hostile.example\r\n" * 3), ("sleep", 3)], "", "defer"),
    "greeting 421": ([("send", b"421 hostile.example busy\r\n")], "", "defer"),
    "greeting 554": ([("send", b"554 hostile.example go away\r\n")], "", "fail"),
    "stall after EHLO": ([GREET, ("read",), ("sleep", 3)], "", "defer"),
    "EHLO and HELO 550": (serving(EHLO=b"550 not here\r\n", HELO=b"550 nor here\r\n"), "", "fail"),
    "MAIL 451": (serving(MAIL=b"451 4.3.0 later\r\n"), "", "defer"),
    "MAIL 550": (serving(MAIL=b"550 5.7.1 not you\r\n"), "", "fail"),
    "RCPT 451": (serving(RCPT=b"451 4.2.0 greylisted\r\n"), "", "defer"),
    "RCPT 550": (serving(RCPT=b"550 5.1.1 no such user\r\n"), "", "fail"),
    "DATA 554": (serving(DATA=b"554 5.0.0 no data\r\n"), "", "fail"),
    "end of data 451": (serving(END=b"451 4.3.0 try again\r\n"), "", "defer"),
    "end of data 550": (serving(END=b"550 5.7.0 content rejected\r\n"), "", "fail"),
    "stall after the data": (serving(END=STALL), "", "defer"),
    "garbage after RCPT": (serving(RCPT=b"2x0 what\r\n"), "", "defer"),
    "dropped after MAIL": (serving(MAIL=[("close",)]), "", "defer"),
    "STARTTLS garbage, TLS required": (
        serving(EHLO=ehlo_reply("STARTTLS"), STARTTLS=TLS_GARBAGE),
        "hosts_require_tls = *",
        "defer",
    ),
}


def deliver(command: list[str], port: int, transport_extra: str) -> tuple[list[str], bool, bool]:
    """One message with -odi; (its lines after "<=", masked; still queued; a bounce was made)."""
    root = Path(tempfile.mkdtemp(prefix="pyxim-hostile-"))
    try:
        root.chmod(0o777)
        for sub in ("spool", "log"):
            (root / sub).mkdir(mode=0o777)
            (root / sub).chmod(0o777)
        conf = root / "c.conf"
        conf.write_text(SENDER.format(root=root, port=port, transport_extra=transport_extra, main_extra=""))
        conf.chmod(0o644)
        subprocess.run(
            command + ["-C", str(conf), "-odi", "-f", "s@x.example", "a@remote.example"],
            input=b"Subject: hostile\n\nbody\n",
            capture_output=True,
            timeout=60,
        )
        log = (root / "log" / "mainlog").read_text()
        queued = bool(
            subprocess.run(
                command + ["-C", str(conf), "-bpc"], capture_output=True, text=True, timeout=60
            ).stdout.strip()
            not in ("", "0")
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    first = next(line.split()[2] for line in log.splitlines() if " <= s@x.example" in line)
    # the TLS library's own words differ (Exim here is built with GnuTLS, pyxim uses OpenSSL)
    lines = [
        re.sub(
            r"TLS session: \(\w+\): .*?(?=: delivering unencrypted|$)",
            "TLS session: (LIBRARY): REASON",
            re.sub(r"[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}", "ID", line[20:]),
        )
        for line in log.splitlines()
        if line[20:].startswith(first + " ") and " <= " not in line and not line.endswith("Completed")
    ]
    bounced = any(" <= <> R=" in line for line in log.splitlines())
    return lines, queued, bounced


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_hostile_server(name: str) -> None:
    script, extra, expected = SCENARIOS[name]
    with scripted_server(script) as server:
        lines, queued, bounced = deliver(PYXIM, server.port, extra)
        assert server.connections >= 1
        if oracle.EXIM is not None and os.geteuid() == 0:
            exim = deliver([oracle.EXIM], server.port, extra)
        else:
            exim = None
    outcome = [line for line in lines if re.match(r"ID (==|\*\*) ", line)]
    assert len(outcome) == 1, lines
    if expected == "defer":
        assert outcome[0].startswith("ID == a@remote.example R=smarthost T=remote_smtp defer (")
        assert queued and not bounced  # never lost: still on the queue
    else:
        assert outcome[0].startswith("ID ** a@remote.example R=smarthost T=remote_smtp")
        assert bounced and not queued
    if exim is not None:
        assert (lines, queued, bounced) == exim


def test_bad_tls_falls_back_to_clear() -> None:
    """A STARTTLS that leads to garbage: Exim (tls_tempfail_tryclear) delivers in clear on a new connection."""
    script = serving(EHLO=ehlo_reply("STARTTLS"), STARTTLS=TLS_GARBAGE)
    with scripted_server(script) as server:
        lines, queued, _ = deliver(PYXIM, server.port, "")
        assert server.connections == 2 and not queued
    assert lines[0] == (
        "ID TLS session: (LIBRARY): REASON: delivering unencrypted to H=127.0.0.1 [127.0.0.1] "
        "(not in hosts_require_tls)"
    )
    assert lines[1].startswith("ID => a@remote.example R=smarthost T=remote_smtp H=127.0.0.1 [127.0.0.1]")


def test_daemon_keeps_serving_while_delivering_to_a_stalling_server(tmp_path: Path) -> None:
    """A pyxim daemon whose deliveries hang on a stalling server still takes mail; each message
    ends deferred on its queue."""
    from tests.integration.test_daemon import stop_daemon
    from tests.support.dnsserver import free_port
    from tests.support.servers import wait_for_port

    tmp_path.chmod(0o755)
    with scripted_server([GREET, ("read",), ("sleep", 3)]) as server:
        conf = tmp_path / "c.conf"
        conf.write_text(
            SENDER.format(
                root=tmp_path,
                port=server.port,
                transport_extra="",
                main_extra="acl_smtp_rcpt = accept\nremote_max_parallel = 1",
            )
        )
        port = free_port()
        proc = subprocess.Popen(
            PYXIM + ["-C", str(conf), "-bdf", "-oX", f"127.0.0.1.{port}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_port(port, proc)
            started = time.time()
            for n in range(3):
                with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
                    assert (
                        smtp.sendmail("s@x.example", [f"a{n}@remote.example"], b"Subject: x\r\n\r\nx\r\n")
                        == {}
                    )
            assert time.time() - started < 3  # accepted while the deliveries hang
            log = tmp_path / "log" / "mainlog"
            deadline = time.time() + 20
            while time.time() < deadline and log.read_text().count(" == a") < 3:
                time.sleep(0.2)
        finally:
            stop_daemon(proc)
    text = log.read_text()
    assert (
        text.count("defer (110): Connection timed out H=127.0.0.1 [127.0.0.1]: SMTP timeout after EHLO")
        + text.count("retry time not reached for any host")
        == 3
    )
    listing = subprocess.run(
        PYXIM + ["-C", str(conf), "-bp"], capture_output=True, text=True, timeout=60
    ).stdout
    assert all(f"a{n}@remote.example" in listing for n in range(3))

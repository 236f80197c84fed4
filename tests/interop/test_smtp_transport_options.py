"""smtp transport options compared with exim4 on the same configuration, against a small recording
SMTP receiver on loopback (tests/support/smtpsink.py): multi_domain (false: one transaction per
domain), serialize_hosts (one connection at a time to a host, across processes; the other delivery
is deferred with "connection limit reached for all hosts"), and the wording of a few deferrals
(no hosts for the smtp transport, never_users, appendfile's create_directory failure)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.interop import oracle
from tests.support.smtpsink import smtp_sink

pytestmark = pytest.mark.skipif(oracle.EXIM is None or os.geteuid() != 0, reason="needs exim4 and root")

PYXIM = [sys.executable, "-m", "pyxim"]
IDS = re.compile(r"[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}")

CONFIG = """\
primary_hostname = t.example
qualify_domain = t.example
spool_directory = ROOT/spool
log_file_path = ROOT/%slog
remote_max_parallel = 1
never_users = daemon
begin routers
nohost:
  driver = accept
  local_parts = nohost
  transport = nohosts
rootuser:
  driver = accept
  local_parts = rootuser
  transport = rootbox
daemonuser:
  driver = accept
  local_parts = daemonuser
  transport = daemonbox
nodir:
  driver = accept
  local_parts = nodir
  transport = nodir
r:
  driver = accept
  transport = remote
begin transports
remote:
  driver = smtp
  hosts = 127.0.0.1
  allow_localhost
  port = PORT
  hosts_avoid_tls = *
EXTRA
nohosts:
  driver = smtp
rootbox:
  driver = appendfile
  file = ROOT/box
  user = root
daemonbox:
  driver = appendfile
  file = ROOT/box
  user = daemon
nodir:
  driver = appendfile
  file = /nonexistent/dir/busy
  user = Debian-exim
"""


def _setup(port: int, extra: str) -> tuple[Path, Path]:
    root = Path(tempfile.mkdtemp(prefix="pyxim-smtpopts-"))
    root.chmod(0o777)
    conf = root / "c.conf"
    conf.write_text(CONFIG.replace("ROOT", str(root)).replace("PORT", str(port)).replace("EXTRA", extra))
    conf.chmod(0o644)
    return root, conf


def _lines(root: Path) -> list[str]:
    keep = (" => ", " -> ", " == ", " ** ", " set for ")
    return [IDS.sub("ID", line[20:]) for line in (root / "mainlog").read_text().splitlines()
            if any(k in line for k in keep)]


def batching(command: list[str], extra: str) -> tuple[list[str], list[list[list[str]]], list[bytes]]:
    with smtp_sink() as sink:
        root, conf = _setup(sink.port, extra)
        try:
            subprocess.run(command + ["-C", str(conf), "-odi", "-f", "s@x.example", "a@d1.example",
                                      "b@d2.example", "c@d1.example", "d@d2.example"],
                           input=b"Subject: batch\n\nbody\n", capture_output=True, timeout=60)
            lines = _lines(root)
        finally:
            shutil.rmtree(root, ignore_errors=True)
    transactions = [[t.recipients for t in conn] for conn in sink.connections]
    # what was delivered, less what names the sending MTA, the message or the time
    bodies = [t.data.split(b"\r\n\r\n", 1)[1] for conn in sink.connections for t in conn]
    return lines, transactions, bodies


@pytest.mark.parametrize("extra", ["", "  multi_domain = false", "  multi_domain = ${if eq{1}{0}{yes}{no}}"])
def test_multi_domain_as_exim(extra: str) -> None:
    result = batching(PYXIM, extra)
    lines, transactions, bodies = result
    if extra:
        assert transactions == [[["a@d1.example", "c@d1.example"]], [["b@d2.example", "d@d2.example"]]]
        assert [line[:10] for line in lines] == ["ID => a@d1", "ID -> c@d1", "ID => b@d2", "ID -> d@d2"]
    else:
        assert transactions == [[["a@d1.example", "b@d2.example", "c@d1.example", "d@d2.example"]]]
    assert bodies and all(b == b"body\r\n" for b in bodies)
    assert result == batching([oracle.EXIM], extra)


def serialized(command: list[str]) -> tuple[list[str], str, int]:
    # connection_max_messages = 1: Exim would otherwise pass its connection on to the waiting message
    with smtp_sink(delay=2) as sink:
        root, conf = _setup(sink.port, "  serialize_hosts = 127.0.0.1\n  connection_max_messages = 1")
        try:
            senders = [subprocess.Popen(command + ["-C", str(conf), "-odi", "-f", "s@x.example", f"a{n}@d.example"],
                                        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                       for n in (1, 2)]
            for proc in senders:  # both messages in before either delivery ends
                assert proc.stdin is not None
                proc.stdin.write(b"Subject: serialized\n\nbody\n")
                proc.stdin.close()
            for proc in senders:
                proc.wait(60)
            queued = subprocess.run(command + ["-C", str(conf), "-bpc"], capture_output=True, text=True).stdout
            subprocess.run(command + ["-C", str(conf), "-q"], capture_output=True, timeout=60)
            queued += subprocess.run(command + ["-C", str(conf), "-bpc"], capture_output=True, text=True).stdout
            time.sleep(0.2)
            lines = [re.sub(r"\ba[12]\b", "aN", line) for line in _lines(root)]
        finally:
            shutil.rmtree(root, ignore_errors=True)
    return lines, queued.strip(), sink.most_active


def test_serialize_hosts_as_exim() -> None:
    result = serialized(PYXIM)
    assert result == (
        ["ID == aN@d.example R=r T=remote defer (-54): connection limit reached for all hosts for 'd.example'",
         'ID => aN@d.example R=r T=remote H=127.0.0.1 [127.0.0.1] C="250 OK id=sunk"',
         'ID => aN@d.example R=r T=remote H=127.0.0.1 [127.0.0.1] C="250 OK id=sunk"'],
        "1\n0",
        1,
    )
    assert result == serialized([oracle.EXIM])


def wording(command: list[str]) -> tuple[list[str], str]:
    root, conf = _setup(25, "")
    try:
        subprocess.run(command + ["-C", str(conf), "-odi", "-f", "s@x.example", "nohost@t.example",
                                  "rootuser@t.example", "daemonuser@t.example", "nodir@t.example"],
                       input=b"Subject: words\n\nbody\n", capture_output=True, timeout=60)
        lines = _lines(root)
        queue = subprocess.run(command + ["-C", str(conf), "-bp"], capture_output=True, text=True).stdout
    finally:
        shutil.rmtree(root, ignore_errors=True)
    # the order of the lines is another matter (Exim delivers local addresses first)
    queue = "\n".join(line for line in queue.splitlines() if line.startswith(" " * 8))
    return sorted(lines), queue


def test_deferral_wording_as_exim() -> None:
    result = wording(PYXIM)
    assert "ID == nohost@t.example R=nohost T=nohosts defer (-1): nohosts transport called with no hosts set" \
        in result[0]
    assert ("ID == nodir@t.example R=nodir T=nodir defer (13): Permission denied: failed to create directories "
            "for /nonexistent/dir/busy: Permission denied") in result[0]
    assert result == wording([oracle.EXIM])


WAITING = """\
primary_hostname = t.example
qualify_domain = t.example
spool_directory = ROOT/spool
log_file_path = ROOT/%slog
queue_only
begin routers
r:
  driver = accept
  transport = remote
begin transports
remote:
  driver = smtp
  hosts = 127.0.0.1
  allow_localhost
  port = PORT
  hosts_avoid_tls = *
EXTRA
begin retry
* * F,1d,1m
"""


def waiting(command: list[str], extra: str) -> tuple[list[str], list[int]]:
    """Three messages queued while their host is down: a queue run defers each; once the host is back,
    a forced run sends every one of them (the second and later down the first one's connection,
    "*" after the host, as long as connection_max_messages allows)."""
    from tests.support.dnsserver import free_port

    port = free_port()
    root = Path(tempfile.mkdtemp(prefix="pyxim-waiting-"))
    root.chmod(0o777)
    conf = root / "c.conf"
    conf.write_text(WAITING.replace("ROOT", str(root)).replace("PORT", str(port)).replace("EXTRA", extra))
    conf.chmod(0o644)
    try:
        for n in (1, 2, 3):
            subprocess.run(command + ["-C", str(conf), "-f", "s@x.example", f"r{n}@d.example"],
                           input=b"Subject: waiting\n\nbody\n", capture_output=True, timeout=60)
        subprocess.run(command + ["-C", str(conf), "-q"], capture_output=True, timeout=60)
        with smtp_sink(port=port) as sink:
            subprocess.run(command + ["-C", str(conf), "-qf"], capture_output=True, timeout=60)
            time.sleep(0.2)
        lines = [re.sub(r"\br\d@", "rN@", line) for line in _lines(root) if " => " in line]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return lines, [len(conn) for conn in sink.connections]


@pytest.mark.parametrize("extra", ["", "  connection_max_messages = 2"])
def test_waiting_messages_share_a_connection_as_exim(extra: str) -> None:
    result = waiting(PYXIM, extra)
    first = 'ID => rN@d.example R=r T=remote H=127.0.0.1 [127.0.0.1] C="250 OK id=sunk"'
    more = first.replace("[127.0.0.1] ", "[127.0.0.1]* ")
    if extra:
        assert result == ([first, more, first], [2, 1])
    else:
        assert result == ([first, more, more], [3])
    assert result == waiting([oracle.EXIM], extra)


FALLBACK = """\
primary_hostname = t.example
qualify_domain = t.example
spool_directory = ROOT/spool
log_file_path = ROOT/%slog
begin routers
viarouter:
  driver = manualroute
  domains = r.example
  route_list = * 127.0.0.1::CLOSED
  self = send
  fallback_hosts = 127.0.0.1
  transport = remote
viatransport:
  driver = manualroute
  route_list = * 127.0.0.1::CLOSED
  self = send
  transport = remote
begin transports
remote:
  driver = smtp
  allow_localhost
  port = PORT
  hosts_avoid_tls = *
  fallback_hosts = FALLBACK
begin retry
* * F,1d,1m
"""


def fallback(command: list[str], transport_fallback: str) -> tuple[list[str], list[list[str]]]:
    from tests.support.dnsserver import free_port

    with smtp_sink() as sink:
        root = Path(tempfile.mkdtemp(prefix="pyxim-fallback-"))
        root.chmod(0o777)
        conf = root / "c.conf"
        conf.write_text(FALLBACK.replace("ROOT", str(root)).replace("PORT", str(sink.port))
                        .replace("CLOSED", str(free_port())).replace("FALLBACK", transport_fallback))
        conf.chmod(0o644)
        try:
            for rcpt in ("a@r.example", "b@t.example"):
                subprocess.run(command + ["-C", str(conf), "-odi", "-f", "s@x.example", rcpt],
                               input=b"Subject: fallback\n\nbody\n", capture_output=True, timeout=60)
            lines = [re.sub(r"\[127\.0\.0\.1\]:\d+", "[127.0.0.1]:PORT", line) for line in _lines_all(root)]
        finally:
            shutil.rmtree(root, ignore_errors=True)
    return lines, [t.recipients for conn in sink.connections for t in conn]


def _lines_all(root: Path) -> list[str]:
    return [IDS.sub("ID", line[20:]) for line in (root / "mainlog").read_text().splitlines()
            if " <= " not in line and "purging the environment" not in line and "lost privilege" not in line
            and not line.startswith(" ")]


@pytest.mark.parametrize("transport_fallback", ["127.0.0.1", "127.0.0.2"])
def test_fallback_hosts_as_exim(transport_fallback: str) -> None:
    """The router's fallback_hosts, else the transport's, take a message every regular host deferred."""
    result = fallback(PYXIM, transport_fallback)
    delivered = [line for line in result[0] if " => " in line]
    assert delivered[0].startswith("ID => a@r.example R=viarouter T=remote H=127.0.0.1 [127.0.0.1] ")
    if transport_fallback == "127.0.0.1":
        assert len(delivered) == 2 and result[1] == [["a@r.example"], ["b@t.example"]]
    else:
        assert len(delivered) == 1 and result[1] == [["a@r.example"]]
    assert result == fallback([oracle.EXIM], transport_fallback)

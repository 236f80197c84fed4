"""The smtp transport end to end: `pyxim -odi` (and `exim4 -odi`, to compare) sends through a
manualroute to a real pyxim daemon on loopback whose ACL refuses (550) and defers (451)
some recipients; the receiver's spool and the senders' log lines are checked."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_daemon import start_daemon, stop_daemon
from tests.interop import oracle
from tests.support.dnsserver import free_port

RECEIVER = """\
primary_hostname = recv.example
qualify_domain = remote.example
spool_directory = {root}/spool
log_file_path = {root}/log/%slog
pid_file_path = {root}/pyxim.pid
smtp_receive_timeout = 30s
queue_only
domainlist local_domains = remote.example
acl_smtp_rcpt = acl_check_rcpt
tls_advertise_hosts =
begin acl
acl_check_rcpt:
  deny   local_parts = bad
         message = 5.1.1 unknown user
  defer  local_parts = later
         message = 4.2.0 try later
  accept domains = +local_domains
  deny   message = relay not permitted
begin authenticators
cram:
  driver = cram_md5
  public_name = CRAM-MD5
  server_secret = ${{if eq{{$auth1}}{{user}}{{secret}}fail}}
  server_set_id = $auth1
plain:
  driver = plaintext
  public_name = PLAIN
  server_prompts = :
  server_condition = ${{if and{{{{eq{{$auth2}}{{user}}}}{{eq{{$auth3}}{{secret}}}}}}}}
  server_set_id = $auth2
"""

SENDER = """\
primary_hostname = send.example
qualify_domain = x.example
spool_directory = {root}/spool
log_file_path = {root}/log/%slog
begin routers
smarthost:
  driver = manualroute
  route_list = * {hosts}
  self = send
  transport = remote_smtp
begin transports
remote_smtp:
  driver = smtp
  port = {port}
  allow_localhost
  {transport_extra}
begin retry
* * F,1h,10m
begin authenticators
{authenticators}
"""

MESSAGE = b"Subject: over smtp\n\n.a line starting with a dot\nbody\n"
ID = re.compile(r"[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2,4}")


@pytest.fixture
def receiver() -> Iterator[tuple[int, Path]]:
    yield from _receiver("")


@pytest.fixture
def tls_receiver() -> Iterator[tuple[int, Path]]:
    import trustme

    ca = trustme.CA()
    certs = Path(tempfile.mkdtemp(prefix="pyxim-smtp-certs-"))
    certs.chmod(0o755)
    ca.issue_cert("recv.example", "127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(certs / "a.pem"))
    ca.cert_pem.write_to_path(str(certs / "ca.pem"))
    for p in certs.iterdir():
        p.chmod(0o644)
    server = _receiver(f"tls_advertise_hosts = *\ntls_certificate = {certs}/a.pem\n")
    port, _ = next(server)
    try:
        yield port, certs
    finally:
        server.close()  # stops the daemon
        shutil.rmtree(certs, ignore_errors=True)


def _receiver(tls: str) -> Iterator[tuple[int, Path]]:
    root = Path(tempfile.mkdtemp(prefix="pyxim-smtp-recv-"))
    os.chmod(root, 0o755)
    (root / "exim.conf").write_text(RECEIVER.format(root=root).replace("tls_advertise_hosts =\n", tls))
    port = free_port()
    proc = start_daemon(root, port)
    try:
        yield port, root
    finally:
        stop_daemon(proc)
        shutil.rmtree(root, ignore_errors=True)


def send(command: list[str], port: int, rcpts: list[str], hosts: str = "127.0.0.1",
         transport_extra: str = "hosts_avoid_tls = *", authenticators: str = "") -> list[str]:
    """Submit with -odi; the sender's mainlog lines (times cut off)."""
    root = Path(tempfile.mkdtemp(prefix="pyxim-smtp-send-"))
    try:
        root.chmod(0o777)
        for sub in ("spool", "log"):
            (root / sub).mkdir(mode=0o777)
            (root / sub).chmod(0o777)
        conf = root / "send.conf"
        conf.write_text(SENDER.format(root=root, port=port, hosts=hosts, transport_extra=transport_extra,
                                     authenticators=authenticators))
        conf.chmod(0o644)
        subprocess.run(command + ["-C", str(conf), "-odi", "-f", "s@x.example", *rcpts],
                       input=MESSAGE, capture_output=True, timeout=120)
        log = (root / "log" / "mainlog").read_text()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return [line[20:] for line in log.splitlines()]


def deliveries(lines: list[str]) -> list[str]:
    """The first message's =>, ** and == lines, ids and chunk sizes masked."""
    first = next(line.split()[0] for line in lines if " <= " in line)
    out = []
    for line in lines:
        if line.startswith(first + " ") and re.match(r"\S+ (=>|\*\*|==) ", line):
            line = ID.sub("ID", line)
            out.append(re.sub(r"\d+ byte chunk, total \d+", "N byte chunk, total N", line))
    return out


PYXIM = [sys.executable, "-m", "pyxim"]


def _engine_writes_host() -> bool:
    """Whether the delivery engine puts the transport's log_text (H=…) into ** and == lines."""
    import pyxim.delivery.engine as engine

    return "log_text" in Path(engine.__file__).read_text()


def _without_host(line: str) -> str:
    # what the engine writes until it honours log_text: "T=t: msg" and "defer (n): msg"
    line = re.sub(r"(T=\S+) H=\S+ \[[^]]+\]: ", r"\1: ", line)
    return re.sub(r"(defer \(-?\d+\)) H=\S+ \[[^]]+\]: ", r"\1: ", line)


def test_pyxim_delivers_refuses_and_defers(receiver) -> None:  # type: ignore[no-untyped-def]
    port, root = receiver
    lines = send(PYXIM, port, ["a@remote.example", "bad@remote.example", "later@remote.example"])
    got = deliveries(lines)
    assert got[0] == ('ID => a@remote.example R=smarthost T=remote_smtp H=127.0.0.1 [127.0.0.1] K '
                      'C="250- N byte chunk, total N\\\\n250 OK id=ID"')
    failed = ("ID ** bad@remote.example R=smarthost T=remote_smtp H=127.0.0.1 [127.0.0.1]: SMTP error from remote "
              "mail server after RCPT TO:<bad@remote.example>: 550 5.1.1 unknown user")
    deferred = ("ID == later@remote.example R=smarthost T=remote_smtp defer (-44) H=127.0.0.1 [127.0.0.1]: SMTP "
                "error from remote mail server after RCPT TO:<later@remote.example>: 451 4.2.0 try later")
    if not _engine_writes_host():
        failed, deferred = _without_host(failed), _without_host(deferred)
    assert got[1:] == [failed, deferred]
    # the receiver has the message for a@remote.example, dot-stuffing undone
    listing = subprocess.run(PYXIM + ["-C", str(root / "exim.conf"), "-bp"], capture_output=True, text=True,
                             timeout=60).stdout
    assert "a@remote.example" in listing and "<s@x.example>" in listing
    data = [p.read_bytes() for p in (root / "spool" / "input").glob("*-D")]
    assert len(data) == 1 and data[0].endswith(b"-D\n.a line starting with a dot\nbody\n")
    header = next((root / "spool" / "input").glob("*-H")).read_text()
    assert "Subject: over smtp" in header and "with esmtp" in header.lower().replace("with esmtps", "with esmtp")


@pytest.mark.skipif(oracle.EXIM is None or os.geteuid() != 0, reason="needs exim4 and root")
def test_log_lines_match_exim(receiver) -> None:  # type: ignore[no-untyped-def]
    port, _ = receiver
    rcpts = ["a@remote.example", "bad@remote.example", "later@remote.example"]
    exim = deliveries(send([oracle.EXIM], port, rcpts))
    ours = deliveries(send(PYXIM, port, rcpts))
    if not _engine_writes_host():
        exim = [_without_host(line) for line in exim]
    assert ours == exim


def test_connection_refused_then_next_host(receiver) -> None:  # type: ignore[no-untyped-def]
    port, _ = receiver
    lines = send(PYXIM, free_port(), ["a@remote.example"])
    assert any(re.fullmatch(r"\S+ H=127\.0\.0\.1 \[127\.0\.0\.1\] Connection refused", line) for line in lines)
    assert deliveries(lines) == ["ID == a@remote.example R=smarthost T=remote_smtp defer (111): Connection refused"]
    # a port nothing listens on: refused there, delivered through the next host
    lines = send(PYXIM, port, ["a@remote.example"], hosts=f'"127.0.0.1::{free_port()} : 127.0.0.1"')
    assert any(line.endswith("H=127.0.0.1 [127.0.0.1] Connection refused") for line in lines)
    assert deliveries(lines)[0].startswith("ID => a@remote.example R=smarthost T=remote_smtp H=127.0.0.1 [127.0.0.1] K")
    # the local host after another host ends the list (Exim's rf_lookup_hostlist): 127.0.0.2 only
    lines = send(PYXIM, port, ["a@remote.example"], hosts="127.0.0.2:127.0.0.1")
    assert any(line.endswith("H=127.0.0.2 [127.0.0.2] Connection refused") for line in lines)
    assert deliveries(lines) == ["ID == a@remote.example R=smarthost T=remote_smtp defer (111): Connection refused"]


def _tls_lines(command: list[str], port: int, extra: str) -> list[str]:
    lines = send(command, port, ["a@remote.example"], transport_extra=extra)
    first = next(line.split()[0] for line in lines if " <= " in line)
    out = []
    for line in lines:
        if line.startswith(first + " ") and " <= " not in line and "Completed" not in line:
            line = re.sub(r"\d+ byte chunk, total \d+", "N byte chunk, total N", ID.sub("ID", line))
            out.append(re.sub(r" X=TLS1\.3:\S+:256 ", " X=TLS1.3:CIPHER:256 ", line))
    return out


def test_starttls_verified_and_fallback_in_clear(tls_receiver) -> None:  # type: ignore[no-untyped-def]
    port, certs = tls_receiver
    verified = _tls_lines(PYXIM, port, f"tls_verify_certificates = {certs}/ca.pem")
    assert verified == ['ID => a@remote.example R=smarthost T=remote_smtp H=127.0.0.1 [127.0.0.1] '
                        'X=TLS1.3:CIPHER:256 CV=yes K C="250- N byte chunk, total N\\\\n250 OK id=ID"']
    # a certificate that cannot be verified (tls_verify_hosts): Exim delivers in clear instead
    clear = _tls_lines(PYXIM, port, "tls_verify_hosts = *")
    assert clear == [
        "ID TLS session: (certificate verification failed): certificate invalid: delivering unencrypted to "
        "H=127.0.0.1 [127.0.0.1] (not in hosts_require_tls)",
        'ID => a@remote.example R=smarthost T=remote_smtp H=127.0.0.1 [127.0.0.1] K '
        'C="250- N byte chunk, total N\\\\n250 OK id=ID"',
    ]
    if oracle.EXIM is not None and os.geteuid() == 0:
        # Exim (built with GnuTLS here) names the cipher its own way: masked above
        exim = [line for line in _tls_lines([oracle.EXIM], port, f"tls_verify_certificates = {certs}/ca.pem")
                if "TLS error on connection (recv)" not in line]  # our receiver sends no close_notify
        assert exim == verified
        assert _tls_lines([oracle.EXIM], port, "tls_verify_hosts = *") == clear


def test_command_timeout() -> None:
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    held: list[socket.socket] = []

    def serve() -> None:
        conn, _ = listener.accept()
        held.append(conn)
        conn.sendall(b"220 silent.example ESMTP\r\n")  # then never answers EHLO

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        lines = send(PYXIM, port, ["a@remote.example"], transport_extra="command_timeout = 1s")
    finally:
        thread.join(5)
        for conn in held:
            conn.close()
        listener.close()
    assert any(line.endswith("H=127.0.0.1 [127.0.0.1]: SMTP timeout after EHLO send.example: Connection timed out")
               for line in lines)
    (deferred,) = deliveries(lines)
    assert deferred.startswith("ID == a@remote.example R=smarthost T=remote_smtp defer (110): ")
    if _engine_writes_host():
        assert deferred.endswith(": Connection timed out H=127.0.0.1 [127.0.0.1]: SMTP timeout after EHLO send.example")


CLIENT_AUTH = """\
pl:
  driver = plaintext
  public_name = PLAIN
  client_send = ^user^{password}
cr:
  driver = cram_md5
  public_name = CRAM-MD5
  client_name = user
  client_secret = {password}
"""


@pytest.mark.parametrize("command", ["pyxim", "exim"])
def test_client_authentication(receiver, command: str) -> None:  # type: ignore[no-untyped-def]
    if command == "exim" and (oracle.EXIM is None or os.geteuid() != 0):
        pytest.skip("needs exim4 and root")
    port, _ = receiver
    argv = [oracle.EXIM or "exim4"] if command == "exim" else PYXIM

    def run(extra: str, auth: str) -> list[str]:
        lines = send(argv, port, ["a@remote.example"], transport_extra=extra, authenticators=auth)
        first = next(line.split()[0] for line in lines if " <= " in line)
        return [ID.sub("ID", re.sub(r"\d+ byte chunk, total \d+", "N", line[len(first) + 1:]))
                for line in lines if line.startswith(first + " ") and " <= " not in line and "Completed" not in line]

    ok = 'a@remote.example R=smarthost T=remote_smtp H=127.0.0.1 [127.0.0.1] A={} K C="250- N\\\\n250 OK id=ID"'
    assert run("hosts_try_auth = *", CLIENT_AUTH.format(password="secret")) == ["=> " + ok.format("pl")]
    only_cram = CLIENT_AUTH.format(password="secret").split("cr:")[1]
    assert run("hosts_try_auth = *", "cr:" + only_cram) == ["=> " + ok.format("cr")]
    failed = "pl authenticator failed H=127.0.0.1 [127.0.0.1] 535 Incorrect authentication data"
    wrong = CLIENT_AUTH.format(password="wrong").split("cr:")[0]
    assert run("hosts_try_auth = *", wrong) == [failed, "=> " + ok.replace(" A={}", "")]
    assert run("hosts_require_auth = *", wrong) == [failed, "== a@remote.example R=smarthost T=remote_smtp defer (-42): "
                                                    "authentication required but authentication attempt(s) failed"]


def test_route_list_port(receiver) -> None:  # type: ignore[no-untyped-def]
    port, _ = receiver
    from pyxim.routers.engine import Host

    if "port" not in Host.__dataclass_fields__:
        pytest.skip("the router gives no per-host port yet")
    lines = send(PYXIM, free_port(), ["a@remote.example"], hosts=f"127.0.0.1::{port}")
    assert deliveries(lines)[0].startswith("ID => a@remote.example R=smarthost T=remote_smtp H=127.0.0.1 [127.0.0.1] K")

"""A real daemon on an ephemeral loopback port, real clients (smtplib, swaks), Exim's -bp and eximstats."""

from __future__ import annotations

import os
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.dnsserver import free_port

CONF = """\
primary_hostname = mail.example.org
qualify_domain = example.org
spool_directory = {root}/spool
log_file_path = {root}/log/%slog
pid_file_path = {root}/pyxim.pid
smtp_receive_timeout = 30s
smtp_accept_max = 100
queue_only
domainlist local_domains = example.org
acl_smtp_rcpt = acl_check_rcpt
tls_advertise_hosts =
begin acl
acl_check_rcpt:
  accept domains = +local_domains
  accept authenticated = *
  deny   message = relay not permitted
begin authenticators
cram:
  driver = cram_md5
  public_name = CRAM-MD5
  server_secret = ${if eq{$auth1}{user}{secret}fail}
  server_set_id = $auth1
plain:
  driver = plaintext
  public_name = PLAIN
  server_prompts = :
  server_condition = ${if and{{eq{$auth2}{user}}{eq{$auth3}{secret}}}}
  server_set_id = $auth2
"""


def start_daemon(root: Path, port: int) -> subprocess.Popen:
    """`pyxim -bdf` on a loopback port, returned once it answers."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "pyxim", "-C", str(root / "exim.conf"), "-bdf", "-oX", f"127.0.0.1.{port}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(proc.stderr.read().decode()) from None
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the daemon did not start listening")


def stop_daemon(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def daemon() -> Iterator[tuple[int, Path, subprocess.Popen]]:
    root = Path(tempfile.mkdtemp(prefix="pyxim-daemon-"))
    os.chmod(root, 0o755)
    (root / "exim.conf").write_text(CONF.replace("{root}", str(root)))
    port = free_port()
    proc = start_daemon(root, port)
    yield port, root, proc
    stop_daemon(proc)
    shutil.rmtree(root, ignore_errors=True)


def test_message_is_spooled_logged_and_listed(daemon) -> None:  # type: ignore[no-untyped-def]
    port, root, _ = daemon
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as smtp:
        code, banner = smtp.ehlo("client.example")
        assert code == 250 and b"PIPELINING" in banner
        refused = smtp.sendmail("alice@sender.example", ["bob@example.org", "eve@elsewhere.example"],
                                b"Subject: hello\r\nMessage-ID: <m1@sender.example>\r\n\r\nbody\r\n")
        assert refused == {"eve@elsewhere.example": (550, b"relay not permitted")}
        reply = smtp.noop()
        assert reply[0] == 250
    files = list((root / "spool" / "input").iterdir())
    assert sorted(f.name[-2:] for f in files) == ["-D", "-H"]
    header = next(f for f in files if f.name.endswith("-H")).read_text()
    assert "<alice@sender.example>" in header and "bob@example.org" in header
    assert "--helo_name client.example" in header
    mainlog = (root / "log" / "mainlog").read_text()
    assert " <= alice@sender.example H=(client.example) [127.0.0.1] P=esmtp S=" in mainlog
    assert "id=m1@sender.example" in mainlog
    listing = subprocess.run([sys.executable, "-m", "pyxim", "-C", str(root / "exim.conf"), "-bp"],
                             capture_output=True, text=True).stdout
    assert "<alice@sender.example>" in listing and "bob@example.org" in listing


def test_many_concurrent_sessions(daemon) -> None:  # type: ignore[no-untyped-def]
    port, root, _ = daemon
    clients = [smtplib.SMTP("127.0.0.1", port, timeout=30) for _ in range(30)]
    try:
        for n, c in enumerate(clients):
            c.ehlo("c")
            c.mail(f"s{n}@x.example")
        for c in clients:
            assert c.rcpt("r@example.org")[0] == 250
        for n, c in enumerate(clients):
            assert c.data(f"Subject: {n}\r\n\r\nx\r\n".encode())[0] == 250
    finally:
        for c in clients:
            c.quit()
    assert len(list((root / "spool" / "input").glob("*-H"))) == 30


def test_hostile_input_does_not_hurt_other_sessions(daemon) -> None:  # type: ignore[no-untyped-def]
    port, root, _ = daemon
    good = smtplib.SMTP("127.0.0.1", port, timeout=20)
    good.ehlo("good")
    for junk in (b"\x00\xff" * 5000 + b"\r\n", b"A" * 100_000 + b"\r\n", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.recv(1000)
            s.sendall(junk)
            s.settimeout(2)
            try:
                s.recv(1000)
            except (TimeoutError, ConnectionError):
                pass
    assert good.noop()[0] == 250
    good.quit()


@pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks not installed")
def test_swaks(daemon) -> None:  # type: ignore[no-untyped-def]
    port, root, _ = daemon
    proc = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(port), "--from", "a@x.example",
                           "--to", "b@example.org", "--helo", "swaks.example"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout
    assert "250 OK id=" in proc.stdout


def test_sigterm_stops_the_daemon(daemon) -> None:  # type: ignore[no-untyped-def]
    port, root, proc = daemon
    assert (root / "pyxim.pid").read_text().strip() == str(proc.pid)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0
    assert "daemon terminating" in (root / "log" / "mainlog").read_text()


@pytest.mark.skipif(shutil.which("eximstats") is None, reason="eximstats not installed")
def test_eximstats_reads_the_mainlog(daemon) -> None:  # type: ignore[no-untyped-def]
    port, root, _ = daemon
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as smtp:
        smtp.sendmail("a@x.example", ["b@example.org"], b"Subject: s\r\n\r\nbody\r\n")
    report = subprocess.run(["eximstats", "-txt", str(root / "log" / "mainlog")], capture_output=True, text=True, timeout=60)
    assert report.returncode == 0, report.stderr
    assert "Received" in report.stdout


@pytest.mark.parametrize("mechanism", ["CRAM-MD5", "PLAIN"])
def test_authenticated_clients_may_relay(daemon, mechanism: str) -> None:  # type: ignore[no-untyped-def]
    port, root, _ = daemon
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as smtp:
        smtp.ehlo("client.example")
        with pytest.raises(smtplib.SMTPAuthenticationError):
            smtp.login("user", "wrong")
        smtp.user, smtp.password = "user", "secret"
        code, _ = smtp.auth(mechanism, getattr(smtp, "auth_" + mechanism.lower().replace("-", "_")))
        assert code == 235
        assert smtp.sendmail("a@x.example", ["someone@elsewhere.example"], b"Subject: s\r\n\r\nx\r\n") == {}
    mainlog = (root / "log" / "mainlog").read_text()
    assert "authenticator failed for (client.example) [127.0.0.1]: 535 Incorrect authentication data" in mainlog
    assert " P=esmtpa A=" in mainlog and ":user S=" in mainlog


@pytest.fixture
def tls_daemon() -> Iterator[tuple[int, Path, object]]:
    import ssl

    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("mail.example.org", "127.0.0.1")
    root = Path(tempfile.mkdtemp(prefix="pyxim-tls-"))
    cert.private_key_and_cert_chain_pem.write_to_path(str(root / "server.pem"))
    (root / "exim.conf").write_text(
        CONF.replace("{root}", str(root)).replace(
            "tls_advertise_hosts =\n", f"tls_certificate = {root}/server.pem\ntls_advertise_hosts = *\n"
        )
    )
    port = free_port()
    proc = start_daemon(root, port)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    yield port, root, client_ctx
    stop_daemon(proc)
    shutil.rmtree(root, ignore_errors=True)


def test_starttls(tls_daemon) -> None:  # type: ignore[no-untyped-def]
    port, root, client_ctx = tls_daemon
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as smtp:
        smtp.ehlo("client.example")
        assert smtp.has_extn("starttls")
        code, text = smtp.starttls(context=client_ctx)
        assert (code, text) == (220, b"TLS go ahead")
        smtp.ehlo("client.example")
        assert not smtp.has_extn("starttls")  # not offered twice
        assert smtp.sendmail("a@x.example", ["b@example.org"], b"Subject: tls\r\n\r\nsecret\r\n") == {}
    mainlog = (root / "log" / "mainlog").read_text()
    assert " P=esmtps X=TLS" in mainlog
    header = next((root / "spool" / "input").glob("*-H")).read_text()
    assert "with esmtps" in header


def test_starttls_with_pipelined_commands_is_refused(tls_daemon) -> None:  # type: ignore[no-untyped-def]
    port, root, _ = tls_daemon
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.recv(1000)
        s.sendall(b"EHLO c\r\n")
        time.sleep(0.3)
        s.recv(1000)
        s.sendall(b"STARTTLS\r\nMAIL FROM:<injected@x>\r\n")
        reply = s.recv(1000)
    assert reply.startswith(b"554 SMTP synchronization error")


def test_garbage_instead_of_a_handshake(tls_daemon) -> None:  # type: ignore[no-untyped-def]
    port, root, client_ctx = tls_daemon
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.recv(1000)
        s.sendall(b"EHLO c\r\n")
        time.sleep(0.3)
        s.recv(1000)
        s.sendall(b"STARTTLS\r\n")
        assert s.recv(1000).startswith(b"220 TLS go ahead")
        s.sendall(b"this is not a TLS client hello\r\n" * 10)
        s.settimeout(5)
        try:
            rest = s.recv(1000)
        except (TimeoutError, ConnectionError):
            rest = b""
    assert b"250" not in rest
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as smtp:  # the daemon is still fine
        assert smtp.noop()[0] == 250


def test_kill_9_after_250_leaves_a_whole_message(daemon) -> None:  # type: ignore[no-untyped-def]
    from pyxim.spool.store import Spool

    port, root, proc = daemon
    smtp = smtplib.SMTP("127.0.0.1", port, timeout=20)
    smtp.ehlo("c")
    smtp.mail("a@x.example")
    smtp.rcpt("b@example.org")
    code, text = smtp.data(b"Subject: durable\r\n\r\n" + b"line\r\n" * 20000)
    assert code == 250
    proc.kill()  # SIGKILL straight after the 250
    proc.wait(10)
    message_id = text.decode().split("id=")[1]
    spool = Spool(root / "spool")
    assert list(spool.message_ids()) == [message_id]
    message, body = spool.read(message_id)
    assert message.recipients[0].address == "b@example.org"
    assert body == b"line\n" * 20000


def test_kill_9_during_data_leaves_nothing_in_the_queue(daemon) -> None:  # type: ignore[no-untyped-def]
    from pyxim.spool.store import Spool

    port, root, proc = daemon
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.recv(1000)
        for command in (b"EHLO c\r\n", b"MAIL FROM:<a@x.example>\r\n", b"RCPT TO:<b@example.org>\r\n", b"DATA\r\n"):
            s.sendall(command)
            s.recv(1000)
        s.sendall(b"Subject: never finished\r\n\r\n" + b"partial\r\n" * 1000)
        time.sleep(0.3)
        proc.kill()
        proc.wait(10)
    assert list(Spool(root / "spool").message_ids()) == []
    # a restarted daemon starts with an empty queue and takes mail again
    restarted = subprocess.Popen(
        [sys.executable, "-m", "pyxim", "-C", str(root / "exim.conf"), "-bdf", "-oX", f"127.0.0.1.{port}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                with smtplib.SMTP("127.0.0.1", port, timeout=5) as smtp:
                    assert smtp.sendmail("a@x.example", ["b@example.org"], b"Subject: s\r\n\r\nx\r\n") == {}
                break
            except OSError:
                time.sleep(0.2)
        assert len(list(Spool(root / "spool").message_ids())) == 1
    finally:
        restarted.send_signal(signal.SIGTERM)
        restarted.wait(15)


def test_rejections_go_to_the_reject_log(daemon) -> None:  # type: ignore[no-untyped-def]
    port, root, _ = daemon
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as smtp:
        smtp.ehlo("client.example")
        smtp.mail("a@x.example")
        assert smtp.rcpt("eve@elsewhere.example")[0] == 550
    line = "H=(client.example) [127.0.0.1] F=<a@x.example> rejected RCPT <eve@elsewhere.example>: relay not permitted"
    assert line in (root / "log" / "rejectlog").read_text()
    assert line in (root / "log" / "mainlog").read_text()


@pytest.fixture
def limited_daemon() -> Iterator[tuple[int, Path]]:
    root = Path(tempfile.mkdtemp(prefix="pyxim-limits-"))
    os.chmod(root, 0o755)
    (root / "exim.conf").write_text(
        CONF.replace("{root}", str(root)).replace(
            "smtp_accept_max = 100", "smtp_accept_max = 4\nsmtp_accept_max_per_host = 2\nsmtp_accept_reserve = 1"
        )
    )
    port = free_port()
    proc = start_daemon(root, port)
    yield port, root
    stop_daemon(proc)
    shutil.rmtree(root, ignore_errors=True)


def test_connection_limits(limited_daemon) -> None:  # type: ignore[no-untyped-def]
    port, root = limited_daemon

    def banner(source: str) -> bytes:
        s = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
        held.append(s)
        return s.recv(1000)

    held: list[socket.socket] = []
    try:
        assert banner("127.0.0.1").startswith(b"220 ")
        assert banner("127.0.0.1").startswith(b"220 ")
        assert banner("127.0.0.1") == (
            b"421 Too many concurrent SMTP connections from this IP address; please try again later.\r\n"
        )
        assert banner("127.0.0.2").startswith(b"220 ")
        # four in use of smtp_accept_max = 4 with one reserved: others are refused
        assert banner("127.0.0.3") == b"421 Too many concurrent SMTP connections; please try again later.\r\n"
    finally:
        for s in held:
            s.close()
    assert "refused: Too many concurrent SMTP connections from this IP address" in (root / "log" / "mainlog").read_text()


def test_sighup_rereads_the_configuration(daemon) -> None:  # type: ignore[no-untyped-def]
    port, root, proc = daemon
    held = smtplib.SMTP("127.0.0.1", port, timeout=20)  # a session in progress survives the reload
    held.ehlo("c")
    conf = root / "exim.conf"
    conf.write_text("smtp_banner = reloaded banner\n" + conf.read_text())
    proc.send_signal(signal.SIGHUP)
    deadline = time.time() + 10
    banner = b""
    while time.time() < deadline:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            banner = s.recv(1000)
        if b"reloaded" in banner:
            break
        time.sleep(0.2)
    assert banner == b"220 reloaded banner\r\n"
    assert held.noop()[0] == 250
    held.quit()
    assert "SIGHUP received: re-reading configuration" in (root / "log" / "mainlog").read_text()


def test_broken_configuration_on_sighup_keeps_the_old_one(daemon) -> None:  # type: ignore[no-untyped-def]
    port, root, proc = daemon
    conf = root / "exim.conf"
    conf.write_text("no_such_option = 1\n" + conf.read_text())
    proc.send_signal(signal.SIGHUP)
    deadline = time.time() + 10
    while time.time() < deadline and not (root / "log" / "paniclog").exists():
        time.sleep(0.1)
    assert 'main option "no_such_option" unknown' in (root / "log" / "paniclog").read_text()
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as smtp:
        assert smtp.noop()[0] == 250


@pytest.fixture
def tls_setup() -> Iterator[tuple[Path, object]]:
    import trustme

    ca = trustme.CA()
    root = Path(tempfile.mkdtemp(prefix="pyxim-tls2-"))
    ca.issue_cert("mail.example.org", "127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(root / "a.pem"))
    ca.issue_cert("other.example", "127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(root / "b.pem"))
    ca.cert_pem.write_to_path(str(root / "ca.pem"))
    client = ca.issue_cert("client.example")
    client.private_key_and_cert_chain_pem.write_to_path(str(root / "client.pem"))
    yield root, ca
    shutil.rmtree(root, ignore_errors=True)


def _tls_daemon(root: Path, extra: str, port: int) -> subprocess.Popen:
    conf = CONF.replace("{root}", str(root)).replace("tls_advertise_hosts =\n", "tls_advertise_hosts = *\n" + extra)
    (root / "exim.conf").write_text(conf)
    return start_daemon(root, port)


def test_sni_chooses_the_certificate_and_client_certificates_are_verified(tls_setup) -> None:  # type: ignore[no-untyped-def]
    import ssl

    root, ca = tls_setup
    port = free_port()
    proc = _tls_daemon(
        root,
        f"tls_certificate = ${{if eq{{$tls_in_sni}}{{other.example}}{{{root}/b.pem}}{{{root}/a.pem}}}}\n"
        f"tls_try_verify_hosts = *\ntls_verify_certificates = {root}/ca.pem\n",
        port,
    )
    try:
        for sni, expected_cn in (("other.example", "other.example"), ("mail.example.org", "mail.example.org")):
            ctx = ssl.create_default_context()
            ca.configure_trust(ctx)
            ctx.load_cert_chain(str(root / "client.pem"))
            raw = socket.create_connection(("127.0.0.1", port), timeout=10)
            raw.recv(1000)
            raw.sendall(b"EHLO c\r\n")
            time.sleep(0.2)
            raw.recv(1000)
            raw.sendall(b"STARTTLS\r\n")
            assert raw.recv(1000).startswith(b"220")
            with ctx.wrap_socket(raw, server_hostname=sni) as tls:
                cert = tls.getpeercert()
                assert ("DNS", expected_cn) in cert["subjectAltName"]  # the certificate SNI chose
                for line in (b"EHLO c\r\n", b"MAIL FROM:<a@x.example>\r\n", b"RCPT TO:<b@example.org>\r\n", b"DATA\r\n"):
                    tls.sendall(line)
                    time.sleep(0.1)
                    tls.recv(4000)
                tls.sendall(b"Subject: sni\r\n\r\nx\r\n.\r\n")
                assert tls.recv(1000).startswith(b"250 OK id=")
                tls.sendall(b"QUIT\r\n")
        mainlog = (root / "log" / "mainlog").read_text()
        assert mainlog.count(" CV=yes") == 2
    finally:
        stop_daemon(proc)


def test_tls_on_connect(tls_setup) -> None:  # type: ignore[no-untyped-def]
    import ssl

    root, ca = tls_setup
    port = free_port()
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    (root / "exim.conf").write_text(
        CONF.replace("{root}", str(root)).replace(
            "tls_advertise_hosts =\n", f"tls_advertise_hosts = *\ntls_certificate = {root}/a.pem\ntls_on_connect_ports = {port}\n"
        )
    )
    daemon_proc = subprocess.Popen(
        [sys.executable, "-m", "pyxim", "-C", str(root / "exim.conf"), "-bdf", "-oX", f"127.0.0.1.{port}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                with smtplib.SMTP_SSL("127.0.0.1", port, context=ctx, timeout=5) as smtp:
                    code, text = smtp.ehlo("c")
                    assert code == 250 and b"STARTTLS" not in text
                    assert smtp.sendmail("a@x.example", ["b@example.org"], b"Subject: smtps\r\n\r\nx\r\n") == {}
                break
            except (ConnectionRefusedError, ssl.SSLError):
                time.sleep(0.2)
        assert " X=TLS" in (root / "log" / "mainlog").read_text()
    finally:
        stop_daemon(daemon_proc)


def test_control_submission_adds_the_missing_headers(tmp_path: Path) -> None:
    root = Path(tempfile.mkdtemp(prefix="pyxim-submission-"))
    conf = CONF.replace("{root}", str(root)).replace(
        "  accept domains = +local_domains\n", "  accept domains = +local_domains\n         control = submission\n"
    )
    (root / "exim.conf").write_text(conf)
    port = free_port()
    proc = start_daemon(root, port)
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=20) as smtp:
            smtp.sendmail("a@b.example", ["x@example.org"], b"Subject: s\r\nTo: x@example.org\r\n\r\nb\r\n")
        header = next((root / "spool" / "input").glob("*-H")).read_text()
        assert "I Message-Id: <E" in header and "@mail.example.org>" in header
        assert "F From: a@b.example\n" in header
        assert "  Date: " in header
    finally:
        stop_daemon(proc)
        shutil.rmtree(root, ignore_errors=True)


def test_slow_clients_time_out() -> None:
    root = Path(tempfile.mkdtemp(prefix="pyxim-timeout-"))
    (root / "exim.conf").write_text(CONF.replace("{root}", str(root)).replace("smtp_receive_timeout = 30s",
                                                                             "smtp_receive_timeout = 1s"))
    port = free_port()
    proc = start_daemon(root, port)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            assert s.recv(1000).startswith(b"220 ")
            s.sendall(b"EHLO slow")  # never finished: a slowloris client
            time.sleep(2.5)
            reply = s.recv(1000)
        assert reply == b"421 mail.example.org: SMTP command timeout - closing connection\r\n"
        assert "SMTP command timeout on connection from [127.0.0.1]" in (root / "log" / "mainlog").read_text()
    finally:
        stop_daemon(proc)
        shutil.rmtree(root, ignore_errors=True)


def test_ipv6_and_ipv4_listeners(tmp_path: Path) -> None:
    """-oX with an IPv6 and an IPv4 interface: both listen, the log says where, the <= line names [::1]."""
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    tmp_path.chmod(0o755)
    (tmp_path / "exim.conf").write_text(CONF.replace("{root}", str(tmp_path)))
    port6, port4 = free_port(), free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pyxim", "-C", str(tmp_path / "exim.conf"), "-bdf",
         "-oX", f"<; ::1.{port6} ; 127.0.0.1.{port4}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.time() + 20
        while True:
            try:
                socket.create_connection(("::1", port6), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError(proc.stderr.read().decode()) from None
                time.sleep(0.1)
        with smtplib.SMTP("::1", port6, timeout=20) as smtp:
            smtp.ehlo("v6.example")
            assert smtp.sendmail("a@v6.example", ["bob@example.org"], b"Subject: six\r\n\r\nx\r\n") == {}
        with smtplib.SMTP("127.0.0.1", port4, timeout=20) as smtp:
            smtp.ehlo("v4.example")
            assert smtp.sendmail("a@v4.example", ["bob@example.org"], b"Subject: four\r\n\r\nx\r\n") == {}
    finally:
        stop_daemon(proc)
    mainlog = (tmp_path / "log" / "mainlog").read_text()
    assert f"no queue runs, listening for SMTP on [::1]:{port6} [127.0.0.1]:{port4}" in mainlog
    assert " <= a@v6.example H=(v6.example) [::1] P=esmtp S=" in mainlog
    assert " <= a@v4.example H=(v4.example) [127.0.0.1] P=esmtp S=" in mainlog


def test_daemon_queue_runner_and_immediate_delivery(tmp_path: Path) -> None:
    """-bdf -q1s: a message queued with -odq is delivered by the daemon's queue runner; one received
    over SMTP is delivered at once (no queue_only here)."""
    tmp_path.chmod(0o755)
    conf = tmp_path / "exim.conf"
    conf.write_text(
        f"primary_hostname = mail.example.org\nqualify_domain = example.org\nspool_directory = {tmp_path}/spool\n"
        f"log_file_path = {tmp_path}/log/%slog\nacl_smtp_rcpt = accept\n"
        "begin routers\nhole:\n  driver = redirect\n  data = :blackhole:\n"
    )
    pyxim = [sys.executable, "-m", "pyxim", "-C", str(conf)]
    subprocess.run(pyxim + ["-odq", "-f", "a@x.example", "queued@example.org"], input=b"Subject: q\n\nx\n",
                   check=True, timeout=60)
    port = free_port()
    proc = subprocess.Popen(pyxim + ["-bdf", "-q1s", "-oX", f"127.0.0.1.{port}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError(proc.stderr.read().decode()) from None
                time.sleep(0.1)
        with smtplib.SMTP("127.0.0.1", port, timeout=20) as smtp:
            assert smtp.sendmail("b@x.example", ["direct@example.org"], b"Subject: now\r\n\r\nx\r\n") == {}
        log = tmp_path / "log" / "mainlog"
        while time.time() < deadline:
            text = log.read_text() if log.exists() else ""
            if "<queued@example.org>" in text and "<direct@example.org>" in text:
                break
            time.sleep(0.2)
    finally:
        stop_daemon(proc)
    text = log.read_text()
    assert "daemon started: pid=" in text and ", -q1s, listening for SMTP on [127.0.0.1]:" in text
    assert "Start queue run: pid=" in text
    assert "=> :blackhole: <queued@example.org> R=hole" in text
    assert "=> :blackhole: <direct@example.org> R=hole" in text
    assert os.listdir(tmp_path / "spool" / "input") == []

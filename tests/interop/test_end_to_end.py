"""Whole paths over loopback:

- pyxim's smtp transport delivering to a real Exim 4.96 daemon (`exim4 -bdf`), whose spool and
  log show the message and the DSN parameters passed on (RET, ENVID, NOTIFY, ORCPT);
- pyxim to pyxim: a dnslookup router finding the receiver by MX through the tests' own DNS server,
  STARTTLS with a verified certificate (hosts_require_tls, tls_verify_certificates), AUTH PLAIN
  (hosts_require_auth and a client authenticator), the message landing in the receiver's maildir
  with a Received: header that shows TLS and AUTH."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.integration.test_daemon import stop_daemon
from tests.interop import oracle
from tests.support.dnsserver import DnsServer, free_port

PYXIM = [sys.executable, "-m", "pyxim"]

SENDER = """\
primary_hostname = send.example
qualify_domain = x.example
spool_directory = {root}/spool
log_file_path = {root}/log/%slog
acl_smtp_rcpt = accept
dsn_advertise_hosts = *
{main}
begin routers
{router}
begin transports
remote_smtp:
  driver = smtp
  port = {port}
  command_timeout = 10s
{transport}
begin retry
* * F,1h,10m
begin authenticators
{authenticators}
"""


def _wait(host: str, port: int, proc: subprocess.Popen) -> None:  # type: ignore[type-arg]
    deadline = time.time() + 20
    while True:
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("the receiver did not start") from None
            time.sleep(0.1)


def _mkroot(prefix: str) -> Path:
    root = Path(tempfile.mkdtemp(prefix=prefix))
    root.chmod(0o777)
    for sub in ("spool", "log"):
        (root / sub).mkdir(mode=0o777)
        (root / sub).chmod(0o777)
    return root


def _send_bs(root: Path, conf_text: str, session: str) -> str:
    """Submit over -bs with -odi; the sender's mainlog."""
    conf = root / "send.conf"
    conf.write_text(conf_text)
    conf.chmod(0o644)
    script = f"EHLO client.example\r\n{session}DATA\r\nSubject: end to end\r\n\r\nbody\r\n.\r\nQUIT\r\n"
    subprocess.run(
        PYXIM + ["-C", str(conf), "-bs", "-odi"], input=script.encode(), capture_output=True, timeout=60
    )
    return (root / "log" / "mainlog").read_text()


EXIM_RECEIVER = """\
primary_hostname = exim-recv.example
local_interfaces = 127.0.0.1
spool_directory = {root}/spool
log_file_path = {root}/log/%slog
acl_smtp_rcpt = accept
dsn_advertise_hosts = *
tls_advertise_hosts =
queue_only
"""


@pytest.mark.skipif(oracle.EXIM is None or os.geteuid() != 0, reason="needs exim4 and root")
def test_pyxim_delivers_to_exim() -> None:
    recv, send = _mkroot("pyxim-e2e-exim-"), _mkroot("pyxim-e2e-send-")
    try:
        conf = recv / "exim.conf"
        conf.write_text(EXIM_RECEIVER.format(root=recv))
        conf.chmod(0o644)
        port = free_port()
        proc = subprocess.Popen(
            [oracle.EXIM, "-C", str(conf), "-bdf", "-oX", str(port), "-oP", str(recv / "pid")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait("127.0.0.1", port, proc)
            router = (
                "smarthost:\n  driver = manualroute\n  route_list = * 127.0.0.1\n  self = send\n"
                "  transport = remote_smtp\n"
            )
            log = _send_bs(
                send,
                SENDER.format(
                    root=send,
                    port=port,
                    router=router,
                    main="",
                    transport="  allow_localhost",
                    authenticators="",
                ),
                "MAIL FROM:<s@x.example> RET=HDRS ENVID=env123\r\n"
                "RCPT TO:<a@remote.example> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;A@Remote.example\r\n",
            )
            exim_log = (recv / "log" / "mainlog").read_text()
            headers = [p.read_text() for p in (recv / "spool" / "input").glob("*-H")]
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(20)
    finally:
        shutil.rmtree(recv, ignore_errors=True)
        shutil.rmtree(send, ignore_errors=True)
    delivered = re.search(
        r"=> a@remote\.example R=smarthost T=remote_smtp H=127\.0\.0\.1 \[127\.0\.0\.1\] K "
        r'C="250- \d+ byte chunk, total \d+\\\\n250 OK id=(\S+)"',
        log,
    )
    assert delivered, log
    exim_id = delivered.group(1)
    assert re.search(
        rf"{exim_id} <= s@x\.example H=\(send\.example\) \[127\.0\.0\.1\] P=esmtp K S=\d+ "
        r"id=E\S+@send\.example",
        exim_log,
    )
    assert len(headers) == 1
    header = headers[0]
    # the DSN options came through: envelope id, RET=HDRS, the original recipient and NOTIFY
    assert "\n-dsn_envid env123\n" in header and "\n-dsn_ret 2\n" in header
    rcpt = next(line for line in header.splitlines() if line.startswith("a@remote.example "))
    assert "rfc822;A@Remote.example" in rcpt, rcpt
    # "<address> <orcpt> <orcpt length>,<dsn flags> <errors_to length>,<parent>#3": NOTIFY=SUCCESS,DELAY
    # is Exim's rf_notify_success (0x04) and rf_notify_delay (0x10)
    layout = re.search(r" \d+,(\d+) +\d+,-?\d+#3$", rcpt)
    assert layout, rcpt
    flags = int(layout.group(1))
    assert flags & 0x04 and flags & 0x10 and not flags & 0x08


ZONE = """\
$TTL 300
@       IN SOA ns.relay.test. hostmaster.relay.test. 1 3600 600 86400 300
@       IN NS  ns.relay.test.
@       IN MX  10 mx.relay.test.
ns      IN A   127.0.0.1
mx      IN A   127.0.0.2
"""

RECEIVER = """\
primary_hostname = mx.relay.test
spool_directory = {root}/spool
log_file_path = {root}/log/%slog
tls_certificate = {root}/server.pem
tls_advertise_hosts = *
auth_advertise_hosts = ${{if eq{{$tls_in_cipher}}{{}}{{}}{{*}}}}
acl_smtp_rcpt = acl_rcpt
begin acl
acl_rcpt:
  accept authenticated = *
  deny   message = authentication required
begin routers
local:
  driver = accept
  domains = relay.test
  transport = maildir
begin transports
maildir:
  driver = appendfile
  directory = {root}/Maildir
  maildir_format
  {user}
begin authenticators
plain:
  driver = plaintext
  public_name = PLAIN
  server_prompts = :
  server_condition = ${{if and{{{{eq{{$auth2}}{{relayuser}}}}{{eq{{$auth3}}{{s3cret}}}}}}}}
  server_set_id = $auth2
"""


def test_pyxim_to_pyxim_by_mx_with_tls_and_auth() -> None:
    import trustme

    recv, send = _mkroot("pyxim-e2e-recv-"), _mkroot("pyxim-e2e-send-")
    zone = recv / "relay.test.zone"
    zone.write_text(ZONE)
    try:
        ca = trustme.CA()
        ca.issue_cert("mx.relay.test").private_key_and_cert_chain_pem.write_to_path(str(recv / "server.pem"))
        ca.cert_pem.write_to_path(str(send / "ca.pem"))
        (recv / "Maildir").mkdir(mode=0o777)
        (recv / "Maildir").chmod(0o777)
        user = "user = nobody" if os.geteuid() == 0 else ""
        (recv / "exim.conf").write_text(RECEIVER.format(root=recv, user=user))
        port = free_port("127.0.0.2")
        proc = subprocess.Popen(
            PYXIM + ["-C", str(recv / "exim.conf"), "-bdf", "-oX", f"127.0.0.2.{port}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait("127.0.0.2", port, proc)
            with DnsServer([zone]) as dns:
                router = (
                    "mx:\n  driver = dnslookup\n  domains = relay.test\n  self = send\n"
                    "  transport = remote_smtp\n"
                )
                transport = (
                    f"  hosts_require_tls = *\n  tls_verify_certificates = {send}/ca.pem\n"
                    "  tls_verify_cert_hostnames = *\n  hosts_require_auth = *\n"
                )
                auth = "pl:\n  driver = plaintext\n  public_name = PLAIN\n  client_send = ^relayuser^s3cret\n"
                log = _send_bs(
                    send,
                    SENDER.format(
                        root=send,
                        port=port,
                        router=router,
                        transport=transport,
                        main=f"dns_nameservers = {dns.option}",
                        authenticators=auth,
                    ),
                    "MAIL FROM:<s@x.example>\r\nRCPT TO:<u@relay.test>\r\n",
                )
            deadline = time.time() + 20
            maildir = recv / "Maildir" / "new"
            while time.time() < deadline and not (maildir.exists() and any(maildir.iterdir())):
                time.sleep(0.1)
            files = list(maildir.iterdir()) if maildir.exists() else []
            recv_log = (recv / "log" / "mainlog").read_text()
        finally:
            stop_daemon(proc)
        assert re.search(
            r"=> u@relay\.test R=mx T=remote_smtp H=mx\.relay\.test \[127\.0\.0\.2\] "
            r"X=TLS1\.[23]:\S+ CV=yes A=pl ",
            log,
        ), log
        assert len(files) == 1, recv_log
        text = files[0].read_text()
        received = text.split("\nReceived:", 1)[0] if text.startswith("Received:") else text
        # the receiver's own Received: header, first: TLS and AUTH (esmtpsa), the TLS cipher
        assert "with esmtpsa" in received and re.search(r"\(TLSv?1\.[23]\) tls ", received), received
        assert re.search(
            r" <= s@x\.example H=\(send\.example\) \[127\.0\.0\.1\] P=esmtpsa X=TLSv?1\.[23]:\S+ "
            r"(CV=\S+ )?A=plain:relayuser ",
            recv_log,
        ), recv_log
        assert text.rstrip("\n").endswith("body")
    finally:
        shutil.rmtree(recv, ignore_errors=True)
        shutil.rmtree(send, ignore_errors=True)

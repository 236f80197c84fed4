"""PROXY protocol v1/v2 in front of the daemon: raw headers, and the real HAProxy (send-proxy, send-proxy-v2)."""

from __future__ import annotations

import shutil
import smtplib
import socket
import struct
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyxim.smtp.proxy import V2_SIGNATURE, ProxyError, parse
from tests.integration.test_daemon import CONF, start_daemon, stop_daemon
from tests.support.dnsserver import free_port

PROXY_CONF = CONF.replace("smtp_accept_max = 100",
                          "smtp_accept_max = 100\nhosts_proxy = 127.0.0.1\nlog_selector = +proxy\n")


@pytest.fixture
def proxied_daemon() -> Iterator[tuple[int, Path]]:
    root = Path(tempfile.mkdtemp(prefix="pyxim-proxy-"))
    conf = PROXY_CONF.replace("{root}", str(root)).replace(
        "acl_check_rcpt:\n",
        "acl_check_rcpt:\n  deny message = client $sender_host_address:$sender_host_port via "
        "$proxy_local_address to $proxy_external_address:$proxy_external_port ($proxy_session)\n"
        "       local_parts = whoami\n",
    )
    (root / "exim.conf").write_text(conf)
    port = free_port()
    # start_daemon's readiness probe sends no PROXY header: it is logged and dropped, as it should be
    proc = start_daemon(root, port)
    yield port, root
    stop_daemon(proc)
    shutil.rmtree(root, ignore_errors=True)


def ask_whoami(sock: socket.socket) -> bytes:
    sock.recv(1000)
    out = b""
    for line in (b"EHLO c\r\n", b"MAIL FROM:<a@x.example>\r\n", b"RCPT TO:<whoami@example.org>\r\n"):
        sock.sendall(line)
        time.sleep(0.15)
        out = sock.recv(2000)
    return out


def test_v1_header(proxied_daemon) -> None:  # type: ignore[no-untyped-def]
    port, root = proxied_daemon
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"PROXY TCP4 192.0.2.7 198.51.100.1 40123 25\r\n")
        reply = ask_whoami(s)
    assert reply == b"550 client 192.0.2.7:40123 via 127.0.0.1 to 198.51.100.1:25 (yes)\r\n"


def test_v2_header(proxied_daemon) -> None:  # type: ignore[no-untyped-def]
    port, root = proxied_daemon
    body = socket.inet_aton("203.0.113.9") + socket.inet_aton("198.51.100.2") + struct.pack("!HH", 5555, 587)
    header = V2_SIGNATURE + bytes([0x21, 0x11]) + struct.pack("!H", len(body)) + body
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(header)
        reply = ask_whoami(s)
    assert reply == b"550 client 203.0.113.9:5555 via 127.0.0.1 to 198.51.100.2:587 (yes)\r\n"


def test_proxied_message_is_logged_with_prx(proxied_daemon) -> None:  # type: ignore[no-untyped-def]
    port, root = proxied_daemon
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"PROXY TCP4 192.0.2.7 198.51.100.1 40123 25\r\n")
        s.recv(1000)
        replies = b""
        for line in (b"HELO c\r\n", b"MAIL FROM:<a@x.example>\r\n", b"RCPT TO:<bob@example.org>\r\n",
                     b"DATA\r\n", b"Subject: via proxy\r\n\r\nbody\r\n.\r\n", b"QUIT\r\n"):
            s.sendall(line)
            time.sleep(0.1)
            replies += s.recv(2000)
    assert b"250 OK id=" in replies
    mainlog = (root / "log" / "mainlog").read_text()
    # +proxy: PRX= names the proxy (here the test itself, on loopback), after P= as in Exim's test 4030
    assert " <= a@x.example H=(c) [192.0.2.7] P=smtp PRX=127.0.0.1 S=" in mainlog


def test_missing_or_broken_header_is_dropped(proxied_daemon) -> None:  # type: ignore[no-untyped-def]
    port, root = proxied_daemon
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"EHLO no-proxy-header\r\n")
        s.settimeout(10)
        assert s.recv(1000) == b""  # closed without a banner
    assert "proxy protocol error from [127.0.0.1]: no PROXY header" in (root / "log" / "mainlog").read_text()


@pytest.mark.parametrize("bad", [b"PROXY TCP4 1.2.3.4 5.6.7.8 99999 25\r\n", b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n",
                                 b"PROXY " + b"x" * 200, V2_SIGNATURE + b"\x31\x11\x00\x00"])
def test_parser_refuses_malformed_headers(bad: bytes) -> None:
    with pytest.raises(ProxyError):
        parse(bad)


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy not installed")
@pytest.mark.parametrize("mode", ["send-proxy", "send-proxy-v2"])
def test_behind_haproxy(proxied_daemon, mode: str) -> None:  # type: ignore[no-untyped-def]
    port, root = proxied_daemon
    front = free_port()
    cfg = root / "haproxy.cfg"
    cfg.write_text(
        "global\n  maxconn 100\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 30s\n"
        f"  timeout server 30s\nlisten smtp\n  bind 127.0.0.1:{front}\n  server pyxim 127.0.0.1:{port} {mode}\n"
    )
    haproxy = subprocess.Popen(["haproxy", "-db", "-f", str(cfg)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 15
        while time.time() < deadline:
            try:
                with smtplib.SMTP("127.0.0.1", front, timeout=5) as smtp:
                    smtp.ehlo("c")
                    smtp.mail("a@x.example")
                    code, text = smtp.rcpt("whoami@example.org")
                break
            except (OSError, smtplib.SMTPException):
                time.sleep(0.2)
        assert code == 550
        assert text.startswith(b"client 127.0.0.1:") and text.endswith(f"to 127.0.0.1:{front} (yes)".encode())
    finally:
        haproxy.terminate()
        haproxy.wait(10)

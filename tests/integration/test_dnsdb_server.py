"""The tests' own DNS server: what it answers, over UDP and TCP, and that it stops cleanly."""

from __future__ import annotations

import socket
import threading

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from tests.support.dnsserver import ZONES, DnsServer


def ask(server: DnsServer, name: str, rdtype: str, *, tcp: bool = False, **kw) -> dns.message.Message:  # type: ignore[no-untyped-def]
    query = dns.message.make_query(name, rdtype, **kw)
    send = dns.query.tcp if tcp else dns.query.udp
    return send(query, server.host, port=server.port, timeout=3)


def test_authoritative_answers(dns_server: DnsServer) -> None:
    r = ask(dns_server, "example.test", "MX")
    assert r.flags & dns.flags.AA and r.rcode() == dns.rcode.NOERROR
    assert [x.to_text() for x in r.answer[0]] == ["10 mx1.example.test.", "20 mx2.example.test."]
    nx = ask(dns_server, "nope.example.test", "A")
    assert nx.rcode() == dns.rcode.NXDOMAIN and nx.authority[0].rdtype == dns.rdatatype.SOA
    nodata = ask(dns_server, "mx2.example.test", "AAAA")
    assert nodata.rcode() == dns.rcode.NOERROR and not nodata.answer and nodata.authority
    assert ask(dns_server, "deep.example.test", "A").rcode() == dns.rcode.NOERROR  # empty non-terminal
    assert ask(dns_server, "example.invalid", "A").rcode() == dns.rcode.REFUSED  # not ours
    wild = ask(dns_server, "anything.wild.example.test", "A")
    assert wild.answer[0].name.to_text() == "anything.wild.example.test."
    chain = ask(dns_server, "alias.example.test", "A")
    assert [rr.rdtype for rr in chain.answer] == [dns.rdatatype.CNAME, dns.rdatatype.CNAME, dns.rdatatype.A]
    assert ask(dns_server, "dangling.example.test", "A").rcode() == dns.rcode.NXDOMAIN  # RFC 6604


def test_truncation_over_udp_and_the_full_answer_over_tcp(dns_server: DnsServer) -> None:
    udp = ask(dns_server, "many.example.test", "A")
    assert udp.flags & dns.flags.TC and not udp.answer
    assert len(ask(dns_server, "many.example.test", "A", tcp=True).answer[0]) == 100
    # a client with a big EDNS buffer gets it all over UDP
    big = ask(dns_server, "many.example.test", "A", use_edns=0, payload=4096)
    assert not big.flags & dns.flags.TC and len(big.answer[0]) == 100


def test_dnssec_signed_zone_and_the_ad_bit(dns_server: DnsServer) -> None:
    plain = ask(dns_server, "secure.test", "MX")
    assert not plain.flags & dns.flags.AD and len(plain.answer) == 1
    signed = ask(dns_server, "secure.test", "MX", want_dnssec=True)
    assert signed.flags & dns.flags.AD
    assert {rr.rdtype for rr in signed.answer} == {dns.rdatatype.MX, dns.rdatatype.RRSIG}
    assert not ask(dns_server, "example.test", "MX", want_dnssec=True).flags & dns.flags.AD


def test_behaviours_apply_inside_the_block_only(dns_server: DnsServer) -> None:
    with dns_server.behaviour(servfail=["mx1.example.test"], authenticated=["mx2.example.test/A"]):
        assert ask(dns_server, "mx1.example.test", "A").rcode() == dns.rcode.SERVFAIL
        assert ask(dns_server, "mx2.example.test", "A", want_dnssec=True).flags & dns.flags.AD
        assert not ask(dns_server, "mx2.example.test", "AAAA", want_dnssec=True).flags & dns.flags.AD
    assert ask(dns_server, "mx1.example.test", "A").rcode() == dns.rcode.NOERROR
    with dns_server.behaviour(silent=["mx1.example.test"]):
        with pytest.raises(dns.exception.Timeout):
            dns.query.udp(
                dns.message.make_query("mx1.example.test", "A"),
                "127.0.0.1",
                port=dns_server.port,
                timeout=0.3,
            )
    assert not dns_server.servfail and not dns_server.silent and not dns_server.authenticated


def test_garbage_gets_formerr_or_silence_and_the_server_lives_on(dns_server: DnsServer) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        s.sendto(b"\xab\xcd" + b"\xff" * 20, ("127.0.0.1", dns_server.port))
        reply, _ = s.recvfrom(512)
        assert reply[:2] == b"\xab\xcd" and reply[3] & 0x0F == dns.rcode.FORMERR
        s.sendto(b"\x01", ("127.0.0.1", dns_server.port))  # too short to answer
    with socket.create_connection(("127.0.0.1", dns_server.port), timeout=2) as c:
        c.sendall(b"\x00\x05hello")  # a TCP frame of garbage
    assert ask(dns_server, "mx2.example.test", "A").answer
    assert ask(dns_server, "mx2.example.test", "A", tcp=True).answer


def test_stop_joins_the_thread_and_frees_the_port() -> None:
    threads = threading.active_count()
    server = DnsServer([ZONES / "example.test.zone"]).start()
    port = server.port
    with socket.create_connection(("127.0.0.1", port), timeout=2):  # an open TCP client must not block stop()
        assert ask(server, "mx1.example.test", "A").answer
        server.stop()
    assert not server.running and threading.active_count() == threads
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", port))  # the UDP port is free again
    with pytest.raises(ConnectionRefusedError):  # and nobody listens on the TCP one
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_ipv6_loopback_server() -> None:
    try:
        server = DnsServer([ZONES / "example.test.zone"], host="::1")
    except OSError:
        pytest.skip("no IPv6 loopback here")
    with server:
        assert server.option == f"<; ::1.{server.port}"
        from pyxim.dns import Resolver

        assert Resolver.from_option(server.option, retrans=1, retry=1).mx_hosts("example.test")[0] == (
            10,
            "mx1.example.test",
        )

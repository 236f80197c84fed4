"""The DNS facade (pyxim.dns.Resolver) against the tests' own DNS server: sync and async twins,
the cache they share, the AD bit, Exim's CNAME and special lookups, and hostile answers."""

from __future__ import annotations

import asyncio
import struct

import dns.flags
import dns.message
import dns.rdatatype
import dns.rrset
import pytest

from pyxim import lookups
from pyxim.dns import Resolver
from pyxim.errors import LookupDefer
from pyxim.expand import ExpansionContext


def test_answers_and_their_kinds(resolver: Resolver) -> None:
    answer = resolver.query("example.test", "MX")
    assert [r.to_text() for r in answer.records] == ["10 mx1.example.test.", "20 mx2.example.test."]
    assert (answer.rcode, answer.found, answer.authenticated) == ("NOERROR", True, False)
    assert resolver.query("nope.example.test", "A").rcode == "NXDOMAIN"
    nodata = resolver.query("deep.example.test", "A")
    assert nodata.nodata and nodata.rcode == "NOERROR"
    cname = resolver.query("alias.example.test", "A")
    assert [r.address for r in cname.records] == ["192.0.2.10"]
    assert cname.cname_target == "mx1.example.test"


def test_helpers_for_lists_and_routers(resolver: Resolver) -> None:
    assert resolver.mx_hosts("example.test") == [(10, "mx1.example.test"), (20, "mx2.example.test")]
    assert resolver.mx_hosts("prefs.example.test") == [
        (5, "a.prefs.example.test"),
        (10, "b.prefs.example.test"),
        (10, "c.prefs.example.test"),
        (20, "d.prefs.example.test"),
    ]
    assert resolver.mx_hosts("nope.example.test") == []
    assert resolver.host_names_for_ip("192.0.2.10") == ["mx1.example.test"]
    assert resolver.host_names_for_ip("192.0.2.41") == ["one.example.test", "two.example.test"]
    assert resolver.host_names_for_ip("2001:db8::40") == ["dual.example.test"]
    assert resolver.host_names_for_ip("192.0.2.7") == []
    assert resolver.addresses_for_name("dual.example.test") == ["192.0.2.40", "2001:db8::40", "2001:db8::41"]
    assert resolver.addresses_for_name("v6only.example.test") == ["2001:db8::60"]
    assert resolver.addresses_for_name("nope.example.test") == []


def test_async_twins_give_the_same_answers(resolver: Resolver) -> None:
    async def main() -> tuple:  # type: ignore[type-arg]
        return (
            [r.address for r in (await resolver.aquery("mx1.example.test", "AAAA")).records],
            await resolver.amx_hosts("example.test"),
            await resolver.ahost_names_for_ip("192.0.2.20"),
            await resolver.aaddresses_for_name("mx1.example.test"),
            (await resolver.aquery_special("sub.deep.example.test", "zns")).found_name,
        )

    assert asyncio.run(main()) == (
        ["2001:db8::10"],
        [(10, "mx1.example.test"), (20, "mx2.example.test")],
        ["mx2.example.test"],
        ["192.0.2.10", "2001:db8::10"],
        "example.test",
    )


def test_sync_and_async_share_one_cache(dns_server, resolver: Resolver) -> None:  # type: ignore[no-untyped-def]
    resolver.query("mx2.example.test", "A")
    before = len(dns_server.queries)
    assert [r.address for r in asyncio.run(resolver.aquery("mx2.example.test", "A")).records] == [
        "192.0.2.20"
    ]
    assert resolver.addresses_for_name("mx2.example.test") == ["192.0.2.20"]  # AAAA is asked, A is not
    assert dns_server.queries[before:] == [("mx2.example.test", "AAAA", "udp")]


def test_special_lookups(resolver: Resolver) -> None:
    zns = resolver.query_special("a.b.sub.deep.example.test", "zns")
    assert (zns.found_name, [r.to_text() for r in zns.records]) == (
        "example.test",
        ["ns1.example.test.", "ns2.example.test."],
    )
    assert resolver.query_special("x.y.nowhere.test", "soa").found_name == "test"
    csa = resolver.query_special("nodata.strict.example.test", "csa")
    assert csa.found_name == "strict.example.test" and csa.records[0].port == 1
    assert resolver.query_special("csa-yes.example.test", "csa").found_name == "csa-yes.example.test"
    assert not resolver.query_special("host.strict.example.test", "csa").found


def test_the_ad_bit_is_asked_for_only_when_wanted(dns_server, resolver: Resolver) -> None:  # type: ignore[no-untyped-def]
    # The server, like a validating resolver (RFC 6840), sets AD only when the query asked (DO or AD).
    assert not resolver.query("mx.secure.test", "A").authenticated
    assert resolver.query("mx.secure.test", "A", dnssec=True).authenticated
    assert not resolver.query("mx1.example.test", "A", dnssec=True).authenticated
    with dns_server.behaviour(authenticated=["mx2.example.test"]):
        assert resolver.query("mx2.example.test", "A", dnssec=True).authenticated
    # the signed zone's RRSIGs come along with DO, but the records asked for are what is returned
    answer = resolver.query("secure.test", "MX", dnssec=True)
    assert [r.to_text() for r in answer.records] == ["10 mx.secure.test."]


def test_dns_trust_aa_counts_authoritative_answers_as_authenticated(dns_server) -> None:  # type: ignore[no-untyped-def]
    trusting = Resolver.from_option(dns_server.option, trust_aa="example.test", retrans=1, retry=1)
    assert trusting.query("mx1.example.test", "A").authenticated
    assert trusting.query("nope.example.test", "A").authenticated  # the SOA names the zone
    assert not trusting.query("host.other.test", "A").authenticated


def test_failures_defer(dns_server, resolver: Resolver) -> None:  # type: ignore[no-untyped-def]
    with dns_server.behaviour(servfail=["servfail.example.test"], silent=["timeout.example.test"]):
        with pytest.raises(LookupDefer, match="server failure"):
            resolver.query("servfail.example.test", "A")
        with pytest.raises(LookupDefer, match="timed out"):
            resolver.query("timeout.example.test", "A")
        with pytest.raises(LookupDefer):
            asyncio.run(resolver.aquery("servfail.example.test", "A"))
        with pytest.raises(LookupDefer):
            resolver.mx_hosts("servfail.example.test")
        # names outside the server's zones are REFUSED: a temporary error too
        with pytest.raises(LookupDefer):
            resolver.query("example.invalid", "A")
    with dns_server.behaviour(servfail=["dual.example.test/AAAA"]):
        assert resolver.addresses_for_name("dual.example.test") == ["192.0.2.40"]  # what could be found
    with dns_server.behaviour(servfail=["v6only.example.test"]):
        with pytest.raises(LookupDefer):
            resolver.addresses_for_name("v6only.example.test")


def test_retrans_and_retry_bound_the_wait(dns_server) -> None:  # type: ignore[no-untyped-def]
    import time

    res = Resolver.from_option(dns_server.option, retrans=5, retry=2)
    with dns_server.behaviour(silent=["timeout.example.test"]):
        start = time.monotonic()
        with pytest.raises(LookupDefer):
            res.query("timeout.example.test", "A", retrans=0.3, retry=1)
        assert time.monotonic() - start < 2


# -- hostile answers: a not-found or a defer, never a traceback ---------------------------


def _response(query: dns.message.Message) -> dns.message.Message:
    return dns.message.make_response(query)


def _garbage(query: dns.message.Message, tcp: bool) -> bytes:
    return b"\x12\x34" + b"\xff" * 40


def _wrong_id(query: dns.message.Message, tcp: bool) -> bytes:
    r = _response(query)
    r.id = (query.id + 1) % 65536
    return r.to_wire()


def _cut_short(query: dns.message.Message, tcp: bool) -> bytes:
    r = _response(query)
    r.answer.append(dns.rrset.from_text(query.question[0].name, 300, "IN", "MX", "10 mx.example.test."))
    return r.to_wire()[:-5]


def _wrong_type(query: dns.message.Message, tcp: bool) -> bytes:
    r = _response(query)
    if query.question[0].rdtype == dns.rdatatype.A:
        r.answer.append(dns.rrset.from_text(query.question[0].name, 300, "IN", "TXT", '"not an address"'))
    else:
        r.answer.append(dns.rrset.from_text(query.question[0].name, 300, "IN", "A", "192.0.2.1"))
    return r.to_wire()


def _other_owner(query: dns.message.Message, tcp: bool) -> bytes:
    r = _response(query)
    r.answer.append(dns.rrset.from_text("evil.example.", 300, "IN", "MX", "10 evil.example."))
    r.answer.append(dns.rrset.from_text("evil.example.", 300, "IN", "TXT", '"evil"'))
    return r.to_wire()


def _lying_counts(query: dns.message.Message, tcp: bool) -> bytes:
    wire = bytearray(_response(query).to_wire())
    wire[6:8] = struct.pack("!H", 5)  # claims five answers, has none
    return bytes(wire)


def _truncated_everywhere(query: dns.message.Message, tcp: bool) -> bytes:
    r = _response(query)
    r.flags |= dns.flags.TC
    return r.to_wire()


def _cname_loop(query: dns.message.Message, tcp: bool) -> bytes:
    r = _response(query)
    name = query.question[0].name
    r.answer.append(dns.rrset.from_text(name, 300, "IN", "CNAME", name.to_text()))
    return r.to_wire()


def _huge_over_tcp(query: dns.message.Message, tcp: bool) -> bytes:
    r = _response(query)
    if tcp:
        strings = ['"' + "x" * 250 + '"'] * 200
        r.answer.append(dns.rrset.from_text(query.question[0].name, 300, "IN", "TXT", " ".join(strings)))
    else:
        r.flags |= dns.flags.TC
    return r.to_wire(max_size=65535)  # not the client's EDNS size: this goes over TCP


def _binary_txt(query: dns.message.Message, tcp: bool) -> bytes:
    r = _response(query)
    r.answer.append(dns.rrset.from_text(query.question[0].name, 300, "IN", "TXT", r'"\255\000x" "y"'))
    return r.to_wire()


def _a_query_echoed(query: dns.message.Message, tcp: bool) -> bytes:
    return query.to_wire()  # QR clear: not a response at all


@pytest.mark.parametrize(
    ("behaviour", "outcome"),
    [
        (_garbage, "defer"),
        (_wrong_id, "defer"),
        (_cut_short, "defer"),
        (_lying_counts, "defer"),
        (_a_query_echoed, "defer"),
        (_cname_loop, "defer"),  # Exim too: a CNAME loop is a DNS failure
        (_wrong_type, "not found"),
        (_other_owner, "not found"),
        (_truncated_everywhere, "not found"),
    ],
)
def test_hostile_answers(dns_server, resolver: Resolver, behaviour, outcome: str) -> None:  # type: ignore[no-untyped-def]
    ctx = ExpansionContext(resolver=Resolver.from_option(dns_server.option, retrans=0.1, retry=1))
    name = f"{behaviour.__name__.strip('_').replace('_', '-')}.hostile.example.test"
    with dns_server.behaviour(raw={name: behaviour}):
        for query in (f"mx={name}", f"txt={name}", f"a+={name}", f"zns={name}"):
            try:
                got = "found" if lookups.lookup(ctx, "dnsdb", None, query) is not None else "not found"
            except LookupDefer:
                got = "defer"
            if query.startswith("zns=") and outcome == "not found":
                assert got == "found"  # the walk goes on to the parent zone
            else:
                assert got == outcome, query
        assert dns_server.running


def test_hostile_but_well_formed_data_is_returned_as_text(dns_server, resolver: Resolver) -> None:  # type: ignore[no-untyped-def]
    ctx = ExpansionContext(resolver=resolver)
    with dns_server.behaviour(raw={"bin.example.test": _binary_txt, "huge.example.test": _huge_over_tcp}):
        assert lookups.lookup(ctx, "dnsdb", None, ">\n; txt=bin.example.test") == "\udcff\x00xy"
        value = lookups.lookup(ctx, "dnsdb", None, ">\n; txt=huge.example.test")
        assert value is not None and len(value) == 50000

"""The dnsdb lookup end to end: expansion strings against the tests' own DNS server.

Formats are the ones section 9.10 ("More about dnsdb") of the Exim 4.96 spec
documents — MX "preference host", SRV "priority weight port target", TLSA
"usage selector matching-type hexdata", SOA only the primary nameserver unless
a field separator is given, TXT only the first string unless told — and the
ones the real Exim printed for these very zones (test_dnsdb_exim.py).
"""

from __future__ import annotations

import pytest

from pyxim import lookups
from pyxim.config import load_config
from pyxim.dns import Resolver
from pyxim.errors import ExpansionError, LookupDefer
from pyxim.expand import ExpansionContext, expand_string, is_tainted


@pytest.fixture
def ctx(resolver: Resolver) -> ExpansionContext:
    return ExpansionContext(resolver=resolver)


def lookup(ctx: ExpansionContext, query: str) -> str:
    return expand_string("${lookup dnsdb{" + query + "}}", ctx)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # several records: newline between them, in the order the server sent them
        ("mx=example.test", "10 mx1.example.test\n20 mx2.example.test"),
        (
            "mx=prefs.example.test",
            "10 b.prefs.example.test\n5 a.prefs.example.test\n"
            "10 c.prefs.example.test\n20 d.prefs.example.test",
        ),
        (
            ">: mx=prefs.example.test",
            "10 b.prefs.example.test:5 a.prefs.example.test:10 c.prefs.example.test:20 d.prefs.example.test",
        ),
        (">:,/ mx=example.test", "10/mx1.example.test:20/mx2.example.test"),
        ("mxh=example.test", "mx1.example.test\nmx2.example.test"),
        ("mx=nullmx.example.test", "0 "),
        ("a=mx1.example.test", "192.0.2.10"),
        (">, a=mx1.example.test:mx2.example.test", "192.0.2.10,192.0.2.20"),
        ("a = mx1.example.test : mx2.example.test ", "192.0.2.10\n192.0.2.20"),
        ("a=<; mx1.example.test; mx2.example.test", "192.0.2.10\n192.0.2.20"),
        (">  a=mx1.example.test:mx2.example.test", "192.0.2.10 192.0.2.20"),
        ("aaaa=dual.example.test", "2001:db8::40\n2001:db8::41"),
        ("aaaa=mapped.example.test", "::ffff:192.0.2.70"),
        ("a+=dual.example.test", "2001:db8::40\n2001:db8::41\n192.0.2.40"),  # AAAA first, then A
        ("MX = example.test", "10 mx1.example.test\n20 mx2.example.test"),
        ("cname=www.example.test", "mx1.example.test"),
        ("cname=alias.example.test", "www.example.test"),
        ("a=alias.example.test", "192.0.2.10"),  # a chain of two CNAMEs
        ("a=outside.example.test", "198.51.100.7"),  # into another zone
        ("ns=example.test", "ns1.example.test\nns2.example.test"),
        ("zns=sub.deep.example.test", "ns1.example.test\nns2.example.test"),
        ("zns=x.y.nowhere.test", "a.nic.test\nb.nic.test"),
        ("ptr=192.0.2.10", "mx1.example.test"),
        ("ptr=192.0.2.41", "one.example.test\ntwo.example.test"),
        ("ptr=192.0.2.50", "MiXed.Example.Test"),
        ("ptr=192.0.2.51", r"weird\.label.example.test"),
        ("ptr=2001:db8::10", "mx1.example.test"),  # one IPv6 address is not a list
        ("ptr=<;2001:db8::10;192.0.2.20", "mx1.example.test\nmx2.example.test"),
        ("ptr=10.2.0.192.in-addr.arpa", "mx1.example.test"),  # not an IP: used as it is
        ("srv=_smtp._tcp.example.test", "10 5 25 mx1.example.test\n20 0 587 mx2.example.test"),
        (">;,: srv=_smtp._tcp.example.test", "10:5:25:mx1.example.test;20:0:587:mx2.example.test"),
        (
            "tlsa=_25._tcp.mx1.example.test",
            "3 1 1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n"
            "2 0 1 abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789",
        ),
        ("soa=example.test", "ns1.example.test"),
        (">:,; soa=example.test", "ns1.example.test;hostmaster.example.test;2026112401;3600;600;86400;300"),
        ("soa=nothing.here.example.test", "ns1.example.test"),  # up the tree until an SOA
        ("soa=x.y.nowhere.test", "a.nic.test"),
        ("txt=multi.example.test", "part one"),  # the first string only
        ("multi.example.test", "part one"),  # txt is the default type
        (">\n,: txt=multi.example.test", "part one:part two"),
        (">\n; txt=multi.example.test", "part onepart two"),
        (">|; txt=twotxt.example.test", "first record|secondrecord"),
        (">\n, txt=punct.example.test", "semi;colon colon:here comma,there"),
        ("spf=spfonly.example.test", "v=spf1 -all"),  # SPF strings join with nothing
        (">:,| spf=spfonly.example.test", "v=spf1| -all"),
        ("x.wild.example.test", "wildcard"),
        ("csa=csa-yes.example.test", "Y csa-yes.example.test"),
        ("csa=csa-no.example.test", "N csa-no.example.test"),
        ("csa=csa-unknown.example.test", "? csa-unknown.example.test"),
        ("csa=nodata.strict.example.test", "X strict.example.test"),  # a parent's subdomain assertion
        # a skipped record (not version 1) still leaves its separator behind, as in Exim
        (">: csa=csa-mixed.example.test", "Y csa-mixed.example.test:"),
    ],
)
def test_results(ctx: ExpansionContext, query: str, expected: str) -> None:
    assert lookup(ctx, query) == expected


@pytest.mark.parametrize(
    "query",
    [
        "a=nope.example.test",  # NXDOMAIN
        "a=deep.example.test",  # the name exists (sub.deep is below it), no data
        "a=dangling.example.test",  # a CNAME to nowhere
        "aaaa=mx2.example.test",
        "txt=empty.example.test",  # an empty result counts as not found
        "mxh=nullmx.example.test",
        "csa=csa-v2.example.test",  # not CSA version 1
        "csa=host.strict.example.test",  # Exim 4.96: no own record at all, no parent search
        "csa=192.0.2.10",
        "a=192.0.2.1",  # no A-for-A
        "a=bad_name..example.test",  # refused by dns_check_names_pattern
        "mx=-bad.example.test",
        "a=mx1.example.test::mx2.example.test",  # one name with a colon in it
        "a=",
        "",
    ],
)
def test_not_found(ctx: ExpansionContext, query: str) -> None:
    assert expand_string("${lookup dnsdb{" + query + "}{y:$value}{n}}", ctx) == "n"


def test_the_lookup_api_and_forced_failure(ctx: ExpansionContext) -> None:
    assert lookups.lookup(ctx, "dnsdb", None, "mx=example.test") == "10 mx1.example.test\n20 mx2.example.test"
    assert lookups.lookup(ctx, "dnsdb", None, "a=nope.example.test") is None
    assert expand_string("${lookup dnsdb{a=mx1.example.test}{$value}fail}", ctx) == "192.0.2.10"
    with pytest.raises(ExpansionError):
        expand_string("${lookup dnsdb{a=nope.example.test}{$value}fail}", ctx)


def test_nested_lookups_build_lists(ctx: ExpansionContext) -> None:
    # the spec's dnslists example: the addresses of a domain's MX hosts
    assert lookup(ctx, ">| a=<|${lookup dnsdb{>|mxh=prefs.example.test}}") == (
        "192.0.2.102|192.0.2.101|192.0.2.103|192.0.2.104"
    )
    assert (
        expand_string(
            "${sort{${lookup dnsdb{>:,,mx=prefs.example.test}}}{<}{${listextract{1}{<,$item}}}}", ctx
        )
        == "5,a.prefs.example.test:10,b.prefs.example.test:10,c.prefs.example.test:20,d.prefs.example.test"
    )


def test_results_are_tainted(ctx: ExpansionContext) -> None:
    assert is_tainted(lookups.lookup(ctx, "dnsdb", None, "a=mx1.example.test"))
    assert is_tainted(expand_string("${lookup dnsdb{txt=multi.example.test}}", ctx))


def test_large_answers_come_over_tcp(dns_server, ctx: ExpansionContext) -> None:  # type: ignore[no-untyped-def]
    before = len(dns_server.queries)
    value = lookup(ctx, "a=many.example.test")
    assert value.split("\n") == [f"198.51.100.{i}" for i in range(1, 101)]
    asked = dns_server.queries[before:]
    assert ("many.example.test", "A", "udp") in asked and ("many.example.test", "A", "tcp") in asked
    assert expand_string("${strlen:${lookup dnsdb{>:; txt=big.example.test}}}", ctx) == "600"


# -- temporary errors: defer_strict / defer_lax / defer_never ----------------------


def test_servfail_defers_with_exims_message(dns_server, ctx: ExpansionContext) -> None:  # type: ignore[no-untyped-def]
    with dns_server.behaviour(servfail=["servfail.example.test"]):
        with pytest.raises(LookupDefer) as info:
            expand_string("${lookup dnsdb{a=servfail.example.test}{y}{n}}", ctx)
        assert info.value.message == 'lookup of "a=servfail.example.test" gave DEFER: '
        with pytest.raises(LookupDefer):
            lookups.lookup(ctx, "dnsdb", None, "a=servfail.example.test")


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("defer_never,a=servfail.example.test", "n"),
        ("a=servfail.example.test:mx2.example.test", "y:192.0.2.20"),  # lax: one answered
        ("defer_lax,a=mx2.example.test:servfail.example.test", "y:192.0.2.20"),
        ("defer_strict,a=servfail.example.test:mx2.example.test", "DEFER"),
        ("a=servfail.example.test:nope.example.test", "DEFER"),  # lax: nothing found
        ("defer_never,a=servfail.example.test:nope.example.test", "n"),
        ("a+=servfail.example.test", "DEFER"),
        ("zns=x.servfail.example.test", "DEFER"),  # the walk up stops at the failure
        ("defer_never,a=servfail.example.test:timeout.example.test:mx1.example.test", "y:192.0.2.10"),
    ],
)
def test_defer_modes(dns_server, ctx: ExpansionContext, query: str, expected: str) -> None:  # type: ignore[no-untyped-def]
    with dns_server.behaviour(servfail=["servfail.example.test"], silent=["timeout.example.test"]):
        try:
            got = expand_string("${lookup dnsdb{" + query + "}{y:$value}{n}}", ctx)
        except LookupDefer:
            got = "DEFER"
    assert got == expected


def test_timeouts_defer_and_retrans_shortens_them(dns_server, ctx: ExpansionContext) -> None:  # type: ignore[no-untyped-def]
    import time

    with dns_server.behaviour(silent=["timeout.example.test"]):
        start = time.monotonic()
        with pytest.raises(LookupDefer):
            lookup(ctx, "retrans_1s,retry_1,a=timeout.example.test")
        assert time.monotonic() - start < 5


# -- DNSSEC -----------------------------------------------------------------------


def test_dnssec_modes_and_lookup_dnssec_authenticated(ctx: ExpansionContext) -> None:
    def run(query: str) -> str:
        try:
            value = expand_string("${lookup dnsdb{" + query + "}{$value}{n}}", ctx)
        except LookupDefer:
            value = "DEFER"
        return f"{value}[{ctx.variables.get('lookup_dnssec_authenticated', '')}]"

    assert run("mx=secure.test") == "10 mx.secure.test[yes]"  # lax is the default
    assert run("a=mx1.example.test") == "192.0.2.10[no]"
    assert run("dnssec_strict,mx=secure.test") == "10 mx.secure.test[yes]"
    assert run("dnssec_never,mx=secure.test") == "10 mx.secure.test[]"
    # strict: an answer without AD is a temporary error…
    assert run("dnssec_strict,mx=example.test") == "DEFER[no]"
    assert run("dnssec_strict,defer_never,a=mx1.example.test") == "n[no]"
    # …so with several names the authenticated ones win (lax defer), and the variable is the last answer's
    assert run("dnssec_strict,a=mx1.example.test:mx.secure.test") == "203.0.113.25[yes]"
    assert run("dnssec_strict,a=mx.secure.test:mx1.example.test") == "203.0.113.25[no]"
    assert run("a=nope.secure.test") == "n[yes]"  # an authenticated "no such name"
    assert run("tlsa=_25._tcp.mx.secure.test") == (
        "3 1 1 aabbccddeeff00112233445566778899aabbccddeeff00112233445566778899[yes]"
    )


def test_dns_nameservers_option_reaches_dnsdb(tmp_path, dns_server) -> None:  # type: ignore[no-untyped-def]
    conf = tmp_path / "c.conf"
    conf.write_text(f"primary_hostname = mail.example.test\ndns_nameservers = {dns_server.option}\n")
    ctx = ExpansionContext(config=load_config(str(conf)))
    assert lookup(ctx, "a=mx2.example.test") == "192.0.2.20"


def test_query_errors_defer_with_exims_message(ctx: ExpansionContext) -> None:
    with pytest.raises(LookupDefer) as info:
        lookup(ctx, "foo=example.test")
    assert info.value.message == 'lookup of "foo=example.test" gave DEFER: unsupported DNS record type'
    with pytest.raises(LookupDefer) as info:
        lookup(ctx, "retry_x,a=example.test")
    assert info.value.message == 'lookup of "retry_x,a=example.test" gave DEFER: dnsdb modifier syntax error'

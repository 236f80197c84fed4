"""The DNS facade and the dnsdb lookup against the tests' own DNS server."""

from __future__ import annotations

import pytest

from pyxim.config import load_config
from pyxim.dns import Resolver, parse_nameservers
from pyxim.errors import ConfigError, LookupDefer
from pyxim.expand import ExpansionContext, expand_string, is_tainted


@pytest.fixture
def ctx(resolver: Resolver) -> ExpansionContext:
    return ExpansionContext(resolver=resolver)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("${lookup dnsdb{>, a=mx1.example.test:mx2.example.test}}", "192.0.2.10,192.0.2.20"),
        ("${lookup dnsdb{aaaa=mx1.example.test}}", "2001:db8::10"),
        ("${lookup dnsdb{txt=multi.example.test}}", "part onepart two"),
        ("${lookup dnsdb{>\n,; txt=multi.example.test}}", "part one;part two"),
        ("${lookup dnsdb{multi.example.test}}", "part onepart two"),
        ("${lookup dnsdb{ptr=192.0.2.10}}", "mx1.example.test"),
        ("${lookup dnsdb{ptr=<;2001:db8::10}}", "mx1.example.test"),
        ("${lookup dnsdb{srv=_smtp._tcp.example.test}}", "10 5 25 mx1.example.test"),
        (
            "${lookup dnsdb{tlsa=_25._tcp.mx1.example.test}}",
            "3 1 1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ),
        ("${lookup dnsdb{soa=example.test}}", "ns1.example.test hostmaster.example.test 2026112401 3600 600 86400 300"),
        ("${lookup dnsdb{cname=www.example.test}}", "mx1.example.test"),
        ("${lookup dnsdb{a=www.example.test}}", "192.0.2.10"),
        ("${lookup dnsdb{spf=spfonly.example.test}}", "v=spf1 -all"),
        ("${lookup dnsdb{a=nope.example.test}{found}{not found}}", "not found"),
        ("${strlen:${lookup dnsdb{txt=big.example.test}}}", "613"),  # > 512 bytes: answered over TCP
    ],
)
def test_dnsdb_results(ctx: ExpansionContext, query: str, expected: str) -> None:
    assert expand_string(query, ctx) == expected


def test_mx_and_zns_lists(ctx: ExpansionContext) -> None:
    mx = expand_string("${lookup dnsdb{mx=example.test}}", ctx).split("\n")
    assert sorted(mx) == ["10 mx1.example.test", "20 mx2.example.test"]
    assert sorted(expand_string("${lookup dnsdb{>: mxh=example.test}}", ctx).split(":")) == [
        "mx1.example.test",
        "mx2.example.test",
    ]
    zns = expand_string("${lookup dnsdb{zns=sub.deep.example.test}}", ctx).split("\n")
    assert sorted(zns) == ["ns1.example.test", "ns2.example.test"]


def test_dnsdb_results_are_tainted(ctx: ExpansionContext) -> None:
    assert is_tainted(expand_string("${lookup dnsdb{a=mx1.example.test}}", ctx))


def test_servfail_defers_unless_told_not_to(dns_server, ctx: ExpansionContext) -> None:  # type: ignore[no-untyped-def]
    dns_server.servfail.add("broken.example.test")
    try:
        with pytest.raises(LookupDefer, match='lookup of "a=broken.example.test" gave DEFER'):
            expand_string("${lookup dnsdb{a=broken.example.test}{y}{n}}", ctx)
        assert expand_string("${lookup dnsdb{defer_never,a=broken.example.test}{y}{n}}", ctx) == "n"
        # lax (the default): one name answered, so no defer
        assert expand_string("${lookup dnsdb{a=broken.example.test:mx2.example.test}}", ctx) == "192.0.2.20"
        with pytest.raises(LookupDefer):
            expand_string("${lookup dnsdb{defer_strict,a=broken.example.test:mx2.example.test}}", ctx)
    finally:
        dns_server.servfail.discard("broken.example.test")


def test_timeout_is_a_defer(dns_server) -> None:  # type: ignore[no-untyped-def]
    dns_server.silent.add("slow.example.test")
    try:
        resolver = Resolver(parse_nameservers(dns_server.option), timeout=0.3, retries=1)
        with pytest.raises(LookupDefer):
            resolver.query("slow.example.test", "A")
    finally:
        dns_server.silent.discard("slow.example.test")


def test_ad_bit_is_surfaced(dns_server, resolver: Resolver) -> None:  # type: ignore[no-untyped-def]
    dns_server.authenticated.add("secure.example.test")
    try:
        assert resolver.query("secure.example.test", "A").authenticated
        assert not resolver.query("mx1.example.test", "A").authenticated
        ctx = ExpansionContext(resolver=resolver)
        expand_string("${lookup dnsdb{dnssec_lax,a=secure.example.test}}", ctx)
        assert ctx.variables["lookup_dnssec_authenticated"] == "yes"
        assert expand_string("${lookup dnsdb{dnssec_strict,a=mx2.example.test}{y}{n}}", ctx) == "n"
    finally:
        dns_server.authenticated.discard("secure.example.test")


def test_resolver_helpers(resolver: Resolver) -> None:
    assert resolver.mx_hosts("example.test") == [(10, "mx1.example.test"), (20, "mx2.example.test")]
    assert resolver.host_names_for_ip("192.0.2.10") == ["mx1.example.test"]
    assert sorted(resolver.addresses_for_name("mx1.example.test")) == ["192.0.2.10", "2001:db8::10"]
    assert resolver.query("nothing.example.test", "A").rcode == "NXDOMAIN"


def test_dns_nameservers_option(tmp_path, dns_server) -> None:  # type: ignore[no-untyped-def]
    conf = tmp_path / "c.conf"
    conf.write_text(f"primary_hostname = mail.example.test\ndns_nameservers = {dns_server.option}\n")
    ctx = ExpansionContext(config=load_config(str(conf)))
    assert expand_string("${lookup dnsdb{a=mx2.example.test}}", ctx) == "192.0.2.20"


def test_nameserver_parsing() -> None:
    assert parse_nameservers("127.0.0.1.5353 : 127.0.0.2") == [("127.0.0.1", 5353), ("127.0.0.2", 53)]
    assert parse_nameservers("<; ::1.5353 ; 127.0.0.1") == [("::1", 5353), ("127.0.0.1", 53)]
    with pytest.raises(ConfigError, match="not an IP address"):
        parse_nameservers("ns.example.test")
    with pytest.raises(ConfigError, match="bad port"):
        parse_nameservers("127.0.0.1.99999")


def test_host_lists_use_dns(resolver: Resolver, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from pyxim.lists import match_domain_list, match_host_list

    ctx = ExpansionContext(resolver=resolver)
    assert match_host_list(ctx, "192.0.2.10", "*.example.test")
    assert match_host_list(ctx, "192.0.2.10", "mx1.example.test")
    assert not match_host_list(ctx, "192.0.2.20", "mx1.example.test")
    # 192.0.2.200 claims to be liar.example.test, which has no address: not trusted
    assert not match_host_list(ctx, "192.0.2.200", "*.example.test")
    assert match_host_list(ctx, "192.0.2.99", "^sub\\.deep\\.")
    (tmp_path / "c.conf").write_text("primary_hostname = mx2.example.test\n")
    ctx.config = load_config(str(tmp_path / "c.conf"))
    assert match_domain_list(ctx, "example.test", "@mx_any")
    assert match_domain_list(ctx, "example.test", "@mx_secondary")
    assert not match_domain_list(ctx, "example.test", "@mx_primary")


def test_hostile_answers_do_not_crash(dns_server, resolver: Resolver) -> None:  # type: ignore[no-untyped-def]
    # garbage sent to the server gets no answer and does not kill it
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"\x00\x01garbage", ("127.0.0.1", dns_server.port))
    assert resolver.query("mx2.example.test", "A").found

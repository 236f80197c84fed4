"""The DNS facade's pure parts: the dns_nameservers option, name rules, building from the configuration.

Nothing here talks to a DNS server: the resolvers point at a closed port, so a
test that asked the network would defer instead of giving the answer checked.
"""

from __future__ import annotations

import asyncio

import pytest

from pyxim.dns import DnsAnswer, Resolver, name_text, parse_nameservers, reverse_name
from pyxim.errors import ConfigError, LookupDefer

NOWHERE = "127.0.0.1.9"  # discard port: nothing answers DNS there


@pytest.mark.parametrize(
    ("option", "servers"),
    [
        ("127.0.0.1.5353 : 127.0.0.2", [("127.0.0.1", 5353), ("127.0.0.2", 53)]),
        ("<; ::1.5353 ; ::1", [("::1", 5353), ("::1", 53)]),
        ("<; 2001:db8::53 ; 127.0.0.1.53", [("2001:db8::53", 53), ("127.0.0.1", 53)]),
        ("192.0.2.53", [("192.0.2.53", 53)]),
        ("  10.0.0.1.1053  ", [("10.0.0.1", 1053)]),
        (
            "<; [192.0.2.53]:5353 ; [2001:db8::53]:53 ; [::1]",
            [("192.0.2.53", 5353), ("2001:db8::53", 53), ("::1", 53)],
        ),
    ],
)
def test_dns_nameservers_is_written_like_local_interfaces(
    option: str, servers: list[tuple[str, int]]
) -> None:
    assert parse_nameservers(option) == servers


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (
            "ns.example.test",
            '"ns.example.test" in dns_nameservers is not an IP address (with optional .port)',
        ),
        ("127.0.0.1.99999", 'bad port in dns_nameservers item "127.0.0.1.99999"'),
        ("127.0.0.1.0", 'bad port in dns_nameservers item "127.0.0.1.0"'),
        ("127.0.0.1.x53", 'bad port in dns_nameservers item "127.0.0.1.x53"'),
        ("<; ::1.5353 ; ns", '"ns" in dns_nameservers is not an IP address (with optional .port)'),
        (" : ", "dns_nameservers is set but lists no servers"),
        ("<; [::1]:x", 'bad port in dns_nameservers item "[::1]:x"'),
        ("<; [::1].53", '"[::1].53" in dns_nameservers is not an IP address (with optional .port)'),
        (
            "<; [ns.example]:53",
            '"[ns.example]:53" in dns_nameservers is not an IP address (with optional .port)',
        ),
    ],
)
def test_bad_dns_nameservers_is_a_config_error(option: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        Resolver.from_option(option)
    assert info.value.message == message


def test_from_config_with_a_real_configuration(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from pyxim.config import load_config

    conf = tmp_path / "c.conf"
    conf.write_text("dns_nameservers = <; ::1.5353\ndns_retrans = 3s\ndns_retry = 4\n")
    res = Resolver.from_config(load_config(str(conf)).main)
    assert (res.nameservers, res.retrans, res.retry, res.trust_aa) == ([("::1", 5353)], 3.0, 4, None)


def test_from_option_without_value_uses_the_system_resolver() -> None:
    assert Resolver.from_option(None).nameservers is None
    assert Resolver.from_option("").nameservers is None


def test_from_config_reads_the_main_dns_options() -> None:
    res = Resolver.from_config(
        {
            "dns_nameservers": "127.0.0.1.5353",
            "dns_retrans": 3,
            "dns_retry": 4,
            "dns_trust_aa": "example.test",
            "dns_csa_search_limit": 2,
        }
    )
    assert res.nameservers == [("127.0.0.1", 5353)]
    assert (res.retrans, res.retry) == (3.0, 4)
    assert res.trust_aa == "example.test"
    assert res.csa_search_limit == 2
    # 0 means "the resolver's default", as in Exim (glibc: 5 seconds, 2 tries)
    assert (Resolver(retrans=0, retry=0).retrans, Resolver(retrans=0, retry=0).retry) == (5.0, 2)


def test_reverse_names_and_printed_names() -> None:
    import dns.name

    assert reverse_name("192.0.2.10") == "10.2.0.192.in-addr.arpa"
    assert reverse_name("2001:db8::10") == (
        "0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"
    )
    assert name_text(dns.name.from_text("mx1.example.test.")) == "mx1.example.test"
    # Exim (dn_expand) prints the root as nothing: a null MX is "0 "
    assert name_text(dns.name.root) == ""
    assert name_text(dns.name.from_text(r"weird\.label.example.test.")) == r"weird\.label.example.test"


def test_answer_kinds() -> None:
    assert not DnsAnswer("x.test", "A").found
    assert DnsAnswer("x.test", "A").nodata
    assert not DnsAnswer("x.test", "A", rcode="NXDOMAIN").nodata


@pytest.mark.parametrize(
    ("name", "rdtype"),
    [
        ("-bad.example.test", "A"),  # a label may not start with '-'
        ("bad_name..example.test", "MX"),  # empty label
        ("a b.example.test", "A"),
        ("192.0.2.1", "A"),  # no A-for-A lookups
        ("2001:db8::1", "AAAA"),
        ("_smtp._tcp.-bad.example.test", "SRV"),  # checked after the first two labels
    ],
)
def test_names_exim_refuses_are_not_found_without_asking(name: str, rdtype: str) -> None:
    answer = Resolver.from_option(NOWHERE, retrans=1, retry=1).query(name, rdtype)
    assert answer.rcode == "NXDOMAIN" and not answer.found


def test_txt_and_ptr_names_are_not_checked_but_must_be_names() -> None:
    res = Resolver.from_option(NOWHERE, retrans=1, retry=1)
    # Exim cannot even build the query: a resolver failure, so a defer
    with pytest.raises(LookupDefer):
        res.query("bad..example.test", "TXT")


def test_no_answer_is_a_defer_with_the_name_in_the_message() -> None:
    res = Resolver.from_option(NOWHERE, retrans=0.2, retry=1)
    with pytest.raises(LookupDefer, match=r"mx1\.example\.test \(A\)"):
        res.query("mx1.example.test", "A")
    with pytest.raises(LookupDefer):
        asyncio.run(res.aquery("mx1.example.test", "A"))
    # dns_again_means_nonexist turns that temporary error into "no such name"
    res = Resolver.from_option(NOWHERE, retrans=0.2, retry=1, again_means_nonexist="*.example.test")
    assert res.query("mx1.example.test", "A").rcode == "NXDOMAIN"


def test_helpers_on_impossible_input() -> None:
    res = Resolver.from_option(NOWHERE, retrans=0.2, retry=1)
    assert res.host_names_for_ip("not-an-ip") == []
    assert res.addresses_for_name("-bad.example.test") == []
    assert res.mx_hosts("bad..example.test") == []

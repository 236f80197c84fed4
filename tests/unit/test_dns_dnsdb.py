"""dnsdb's query syntax and record formats, without a DNS server.

The expected texts are Exim 4.96's: the errors as `exim4 -be` reports them
(`lookup of "…" gave DEFER: <message>`), the formats as section 9.10 of the
spec describes them and as the real Exim printed them for the same records
(tests/integration/test_dnsdb_exim.py checks that against the binary).
"""

from __future__ import annotations

import dns.rdata
import pytest

from pyxim.errors import LookupDefer
from pyxim.lookups.dnsdb import format_record, parse_query


def rdata(rdtype: str, text: str):  # type: ignore[no-untyped-def]
    return dns.rdata.from_text("IN", rdtype, text)


def test_plain_query_defaults() -> None:
    q = parse_query("example.test")
    assert (q.rtype, q.outsep, q.outsep2, q.defer, q.dnssec) == ("txt", "\n", None, "lax", "lax")
    assert q.names == ("example.test",)


@pytest.mark.parametrize(
    ("key", "outsep", "outsep2"),
    [
        (">: a=h.test", ":", None),
        (">  a=h.test", " ", None),  # a space may be the separator
        (">\n,: txt=h.test", "\n", ":"),
        (">\n; txt=h.test", "\n", ""),  # ';': join TXT strings with nothing
        (">:,; soa=h.test", ":", ";"),
        ("  >|, mx=h.test", "|", " "),
        ("mx=h.test", "\n", " "),  # mx, srv, tlsa: fields split by a space unless told
        ("spf=h.test", "\n", ""),  # spf: strings joined with nothing
    ],
)
def test_separators(key: str, outsep: str, outsep2: str | None) -> None:
    q = parse_query(key)
    assert (q.outsep, q.outsep2) == (outsep, outsep2)


def test_modifiers_any_order_any_case_with_spaces() -> None:
    q = parse_query(" DEFER_NEVER , Dnssec_Strict,retrans_1m30s, retry_0x3 , A = h1.test : h2.test ")
    assert (q.defer, q.dnssec, q.retrans, q.retry, q.rtype) == ("never", "strict", 90, 3, "a")
    assert q.names == ("h1.test", "h2.test")


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("foo=example.test", "unsupported DNS record type"),
        ("a6=example.test", "unsupported DNS record type"),
        ("defer_foo,a=example.test", "unsupported dnsdb defer behaviour"),
        ("dnssec_foo,a=example.test", "unsupported dnsdb dnssec behaviour"),
        ("retrans_x,a=example.test", "unsupported dnsdb timeout value"),
        ("retrans_0s,a=example.test", "unsupported dnsdb timeout value"),
        ("retrans_5,a=example.test", "unsupported dnsdb timeout value"),  # a time needs its unit
        ("retry_-1,a=example.test", "unsupported dnsdb retry count"),
        ("retry_x,a=example.test", "dnsdb modifier syntax error"),
        ("retry_3 x,a=example.test", "dnsdb modifier syntax error"),
        ("defer_never", "dnsdb modifier syntax error"),
        ("defer_neverx,a=example.test", "dnsdb modifier syntax error"),
    ],
)
def test_query_errors_are_defers_with_exims_words(key: str, message: str) -> None:
    with pytest.raises(LookupDefer) as info:
        parse_query(key)
    assert info.value.message == message


def test_the_first_equals_sign_ends_the_type() -> None:
    assert parse_query("txt=a=b.test").names == ("a=b.test",)
    with pytest.raises(LookupDefer, match="unsupported DNS record type"):
        parse_query("h1.test:a=h2.test")


def test_names_are_an_exim_list() -> None:
    assert parse_query("a=h1.test:h2.test").names == ("h1.test", "h2.test")
    assert parse_query("a=<, h1.test, h2.test").names == ("h1.test", "h2.test")
    assert parse_query("a=h1::h2").names == ("h1:h2",)  # a doubled separator is a literal one
    assert parse_query("ptr = <; 192.0.2.1 ; 2001:db8::1").names == ("192.0.2.1", "2001:db8::1")
    # one IPv6 address for ptr is not a colon-separated list
    assert parse_query("ptr=2001:db8::10").names == ("2001:db8::10",)
    assert parse_query("a=").names == ()


@pytest.mark.parametrize(
    ("rtype", "rdtype", "text", "outsep2", "expected"),
    [
        ("mx", "MX", "10 mx1.example.test.", " ", "10 mx1.example.test"),
        ("mx", "MX", "10 mx1.example.test.", "/", "10/mx1.example.test"),
        ("mx", "MX", "0 .", " ", "0 "),  # null MX: the root prints as nothing
        ("mxh", "MX", "10 mx1.example.test.", None, "mx1.example.test"),
        ("srv", "SRV", "10 5 25 mx1.example.test.", " ", "10 5 25 mx1.example.test"),
        ("srv", "SRV", "10 5 25 mx1.example.test.", ":", "10:5:25:mx1.example.test"),
        ("tlsa", "TLSA", "3 1 0 ABCDEF01", " ", "3 1 0 abcdef01"),
        ("soa", "SOA", "ns1.example.test. hm.example.test. 7 3600 600 86400 300", None, "ns1.example.test"),
        (
            "soa",
            "SOA",
            "ns1.example.test. hm.example.test. 7 3600 600 86400 300",
            ";",
            "ns1.example.test;hm.example.test;7;3600;600;86400;300",
        ),
        ("txt", "TXT", '"part one" "part two"', None, "part one"),  # first string only by default
        ("txt", "TXT", '"part one" "part two"', ":", "part one:part two"),
        ("txt", "TXT", '"part one" "part two"', "", "part onepart two"),
        ("spf", "SPF", '"v=spf1" " -all"', "", "v=spf1 -all"),
        ("ptr", "PTR", "MiXed.Example.Test.", None, "MiXed.Example.Test"),
        ("ptr", "PTR", r"weird\.label.example.test.", None, r"weird\.label.example.test"),
        ("cname", "CNAME", "mx1.example.test.", None, "mx1.example.test"),
        ("ns", "NS", "ns1.example.test.", None, "ns1.example.test"),
    ],
)
def test_record_formats(rtype: str, rdtype: str, text: str, outsep2: str | None, expected: str) -> None:
    assert format_record(rtype, rdata(rdtype, text), outsep2) == expected


def test_an_empty_field_separator_is_a_nul_as_in_exim() -> None:
    # Exim writes the field separator with %c; ';' makes it a NUL, which ends the C string.
    assert format_record("mx", rdata("MX", "10 b.example.test."), "") == "10b.example.test"
    assert format_record("srv", rdata("SRV", "10 5 25 mx1.example.test."), "") == "10mx1.example.test"
    assert format_record("tlsa", rdata("TLSA", "3 1 0 ab"), "") == "3"
    soa = rdata("SOA", "ns1.example.test. hm.example.test. 7 3600 600 86400 300")
    assert format_record("soa", soa, "") == "ns1.example.test\0hm.example.test"


@pytest.mark.parametrize(
    ("text", "found", "expected"),
    [
        ("1 2 0 host.example.test.", "host.example.test", "Y host.example.test"),
        ("1 1 0 host.example.test.", "host.example.test", "N host.example.test"),
        ("1 0 0 host.example.test.", "host.example.test", "N host.example.test"),
        ("1 3 0 host.example.test.", "host.example.test", "? host.example.test"),
        ("1 4 0 host.example.test.", "host.example.test", None),  # invalid weight: skipped
        ("2 2 0 host.example.test.", "host.example.test", None),  # not CSA version 1
        ("1 0 1 strict.example.test.", "strict.example.test", "X strict.example.test"),  # parent's assertion
        ("1 0 0 strict.example.test.", "strict.example.test", "? strict.example.test"),
    ],
)
def test_csa_verdicts(text: str, found: str, expected: str | None) -> None:
    assert format_record("csa", rdata("SRV", text), None, found, "host.example.test") == expected

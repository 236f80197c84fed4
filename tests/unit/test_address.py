"""Address parsing as Exim's parse.c does it; the error texts are what exim4 -bt prints after "syntax error: "."""

from __future__ import annotations

import pytest

from pyxim.address import (
    AddressError,
    GroupState,
    ParsedAddress,
    ParseOptions,
    extract_address,
    extract_addresses,
    find_address_end,
    find_at,
    parse_address,
    split_address_list,
)


@pytest.mark.parametrize(
    ("text", "address", "local_part", "domain"),
    [
        ("joe@example.org", "joe@example.org", "joe", "example.org"),
        ("Joe Bloggs <joe@example.org> (work)", "joe@example.org", "joe", "example.org"),
        ("J. R. Hacker <jrh@x.y>", "jrh@x.y", "jrh", "x.y"),  # dots in the phrase are tolerated
        ("postmaster", "postmaster", "postmaster", ""),
        ('"a b" @ c . d', '"a b"@c.d', '"a b"', "c.d"),
        ("a(x)@(y)b", "a@b", "a", "b"),
        ("a..b.@c", "a..b.@c", "a..b.", "c"),
        ("<@r1,@r2:a@b>", "a@b", "a", "b"),  # source routes are dropped
        ("@r1:a@b", "a@b", "a", "b"),
        ("a@[1.2.3.4]", "a@[1.2.3.4]", "a", "[1.2.3.4]"),
        ("a@[a(b)c]", "a@[a(b)c]", "a", "[a(b)c]"),
        ("a\\@b@c", "a\\@b@c", "a\\@b", "c"),
        ("é@b", "é@b", "é", "b"),
    ],
)
def test_parse_address(text: str, address: str, local_part: str, domain: str) -> None:
    parsed = parse_address(text)
    assert isinstance(parsed, ParsedAddress)
    assert (parsed.address, parsed.local_part, parsed.domain) == (address, local_part, domain)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a b@c", 'missing or malformed local part (expected word or "<")'),
        ("Joe <a@b", "'>' missing at end of address"),
        ("a@b.", "domain missing or malformed"),
        ('"abc', "unmatched doublequote in local part"),
        ("<@a>", "no local part"),
        ("<@a,@b>", "colon expected after route list"),
        ("a@[1.2", "malformed domain literal"),
        ("a@[1 2]", "malformed domain literal"),
        ("Joe <a@b> x", "malformed address: x may not follow Joe <a@b> "),
        ("<a@b>>", "malformed address: > may not follow <a@b>"),
        ("a@b@c", "malformed address: @c may not follow a@b"),
        ("a;", "malformed address: ; may not follow a"),
        ("<>", "missing or malformed local part"),
        ("x <>", "missing or malformed local part"),
        ("", "empty address"),
        ("a@", "domain missing or malformed"),
        ("<a b>", '"@" or "." expected after "a"'),
        ("<@a:b>", "domain missing in source-routed address"),
        ("a@bücher.example", "malformed address: ücher.example may not follow a@b"),
        ("a" * 255 + "@b", "address is ridiculously long: " + "a" * 64 + "..."),
    ],
)
def test_parse_errors(text: str, message: str) -> None:
    parsed = parse_address(text)
    assert isinstance(parsed, AddressError) and not parsed
    assert parsed.message == message


def test_null_address_when_allowed() -> None:
    assert parse_address("<>", allow_null=True) == ParsedAddress("", "", "", 1, 1)
    assert extract_address("<>") is not None and extract_address("<>").address == ""  # type: ignore[union-attr]
    assert extract_address("a b@c") is None


def test_start_and_end_delimit_the_address() -> None:
    text = "Joe <joe@example.org> (x)"
    parsed = parse_address(text)
    assert isinstance(parsed, ParsedAddress)
    assert text[parsed.start : parsed.end] == "joe@example.org"
    text = "  joe@example.org (comment)"
    parsed = parse_address(text)
    assert isinstance(parsed, ParsedAddress)
    assert text[parsed.start : parsed.end] == "joe@example.org"


def test_options() -> None:
    assert parse_address("a@b.", options=ParseOptions(strip_trailing_dot=True)).address == "a@b"  # type: ignore[union-attr]
    assert parse_address("<<a@b>>", options=ParseOptions(strip_excess_angle_brackets=True)).address == "a@b"  # type: ignore[union-attr]
    utf8 = ParseOptions(allow_utf8_domains=True)
    assert parse_address("a@bücher.example", options=utf8).domain == "bücher.example"  # type: ignore[union-attr]
    bad = parse_address("a@b\udcff", options=utf8)
    assert isinstance(bad, AddressError) and bad.message == "invalid UTF-8 byte sequence"


def test_groups_in_header_lists() -> None:
    assert [p.address for p in extract_addresses("team: a@b, Joe <c@d>; e@f")] == ["a@b", "c@d"]
    assert [p.address for p in extract_addresses("g1: a@b; g2: c@d;")] == ["a@b"]
    assert extract_addresses("undisclosed-recipients:;") == []
    assert [p.address for p in extract_addresses("a@b, bad address, c@d")] == ["a@b", "c@d"]
    # without group state, the group syntax is an error
    assert isinstance(parse_address("team: a@b"), AddressError)
    state = GroupState(allow_group=True)
    assert parse_address("team: a@b", group=state).address == "a@b"  # type: ignore[union-attr]
    assert state.found_group and not state.allow_group


def test_finding_the_end_of_an_address() -> None:
    text = '"x, y" <a@b>, (c, d) e@f, <@r1,@r2:g@h>, i@j'
    assert split_address_list(text) == ['"x, y" <a@b>', " (c, d) e@f", " <@r1,@r2:g@h>", " i@j"]
    assert find_address_end("@r1,@r2:a@b, c@d") == 11
    assert find_address_end("a@b\nc@d", nl_ends=True) == 3
    assert split_address_list(",, a@b ,,") == [" a@b "]


def test_find_at() -> None:
    assert find_at("a@b@c") == 3
    assert find_at('"a@b"') == -1
    assert find_at("a\\@b") == -1
    assert find_at("a\\\\@b") == 3

"""Typed option values: how each Exim option type is read, refused and printed (checked against exim4 -bP)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from pyxim.config.options import (
    OptionDef,
    format_option,
    parse_bool,
    parse_fixed,
    parse_int,
    parse_kint,
    parse_time,
    parse_timelist,
    parse_value,
    print_time,
    read_size,
    read_string,
    read_time,
    split_list,
    string_printing,
)
from pyxim.errors import ConfigError


@contextmanager
def refused(message: str) -> Iterator[None]:
    """The block raises ConfigError with exactly Exim's message."""
    with pytest.raises(ConfigError) as info:
        yield
    assert info.value.message == message


@pytest.mark.parametrize(
    ("text", "value"),
    [("true", True), ("yes", True), ("TRUE", True), ("false", False), ("No", False)],
)
def test_booleans(text: str, value: bool) -> None:
    assert parse_bool("b", text) is value


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("maybe", '"maybe" is not a valid value for the "b" option'),
        ("1", '"" is not a valid value for the "b" option'),
        ("true false", 'extra characters follow "true" for boolean option b'),
        ("true #c", 'extra characters follow "true" for boolean option b (# is comment only at line start)'),
    ],
)
def test_boolean_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_bool("b", text)
    assert info.value.message == message


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", 0),
        ("42", 42),
        ("-5", -5),
        ("2K", 2048),
        ("3k", 3072),
        ("1M", 1048576),
        ("1G", 1 << 30),
        ("0x1F", 31),
        ("010", 8),
        ("  7  ", 7),
    ],
)
def test_integers(text: str, value: int) -> None:
    assert parse_int("i", text) == value


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("abc", "integer expected for i"),
        ("12x", "extra characters follow integer value for i"),
        ("09", "extra characters follow integer value for i"),  # 0 starts octal, as in C
        ("1 2", "extra characters follow integer value for i"),
        ("99999999999", 'absolute value of integer "99999999999" is too large (overflow)'),
        ("4G", 'absolute value of integer "4G" is too large (overflow)'),
    ],
)
def test_integer_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_int("i", text)
    assert info.value.message == message


def test_octal_integers() -> None:
    assert parse_int("mode", "0600", octal=True) == 0o600
    assert parse_int("mode", "600", octal=True) == 0o600
    with refused("octal integer expected for mode"):
        parse_int("mode", "rw", octal=True)


def test_kilobyte_integers() -> None:
    # check_spool_space and friends count in K: a plain number is already K (Exim 4.96)
    assert parse_kint("k", "100") == 100
    assert parse_kint("k", "100K") == 100
    assert parse_kint("k", "10M") == 10240
    assert parse_kint("k", "1G") == 1 << 20
    with refused("extra characters follow integer value for k"):
        parse_kint("k", "10X")


def test_fixed_point() -> None:
    assert parse_fixed("f", "2.5") == 2500
    assert parse_fixed("f", "3") == 3000
    assert parse_fixed("f", "0.0625") == 62  # digits past the third are dropped
    with refused("fixed-point number expected for f"):
        parse_fixed("f", "abc")
    with refused("extra characters follow fixed-point value for f"):
        parse_fixed("f", "1.5x")


def test_times() -> None:
    assert parse_time("t", "1d2h30m10s") == 86400 + 2 * 3600 + 30 * 60 + 10
    assert parse_time("t", "1w") == 604800
    assert parse_time("t", "90s") == 90
    assert read_time("90") is None  # every number needs its unit
    assert read_time("1h 2m") is None
    for bad in ("nonsense", "90", "", "h"):
        with refused("invalid time value for t"):
            parse_time("t", bad)
    assert [print_time(s) for s in (0, 59, 3600, 93784, 700000)] == [
        "0s",
        "59s",
        "1h",
        "1d2h3m4s",
        "1w1d2h26m40s",
    ]


def test_time_lists() -> None:
    assert parse_timelist("d", "1h:2h:1d") == (3600, 7200, 86400)
    assert parse_timelist("d", "1h : 2h") == (3600, 7200)
    assert parse_timelist("d", "0s") == ()  # a leading zero turns the warnings off
    with refused("time value out of order for d"):
        parse_timelist("d", "2h:1h")
    with refused("invalid time value for d"):
        parse_timelist("d", "1h:x")
    with refused("too many time values for d"):
        parse_timelist("d", ":".join(f"{n}h" for n in range(1, 13)))


def test_strings_in_quotes() -> None:
    assert read_string("s", "plain text \\t stays") == "plain text \\t stays"
    assert read_string("s", '"a\\tb\\x41\\101\\\\ \\"q\\"\\n"') == 'a\tbAA\\ "q"\n'
    with refused("missing quote at end of string value for s"):
        read_string("s", '"abc')
    with refused("extra characters follow string value for s"):
        read_string("s", '"abc" def')


def test_users_and_groups() -> None:
    assert parse_value(OptionDef("u", "uid"), "root") == 0
    assert parse_value(OptionDef("u", "uid"), "12345") == 12345  # numbers need not exist
    assert parse_value(OptionDef("u", "expand_uid"), "${lookup{x}lsearch{/f}}") == "${lookup{x}lsearch{/f}}"
    assert parse_value(OptionDef("g", "gid"), "root") == 0
    assert parse_value(OptionDef("l", "uidlist"), "root : 0") == (0, 0)
    assert parse_value(OptionDef("l", "gidlist"), "<; root ; 0") == (0, 0)
    with refused("user nosuchuser-pyxim was not found"):
        parse_value(OptionDef("u", "uid"), "nosuchuser-pyxim")
    with refused("group nosuchgroup-pyxim was not found"):
        parse_value(OptionDef("l", "gidlist"), "root:nosuchgroup-pyxim")


def test_expanded_booleans_and_timeouts() -> None:
    assert parse_value(OptionDef("more", "expand_bool"), "${if eq{a}{a}}") == "${if eq{a}{a}}"
    assert parse_value(OptionDef("more", "expand_bool"), "no") is False
    assert parse_value(OptionDef("smtp_receive_timeout", "stime"), "5m") == 300
    assert parse_value(OptionDef("smtp_receive_timeout", "stime"), "$acl_c_t") == "$acl_c_t"


def test_values_without_data_and_negation() -> None:
    assert parse_value(OptionDef("b", "bool"), None) is True
    assert parse_value(OptionDef("b", "bool"), None, negated=True) is False
    with refused("negation prefix applied to a non-boolean option"):
        parse_value(OptionDef("i", "int"), "1", negated=True)
    with refused("unexpected end of line (data missing) after i"):
        parse_value(OptionDef("i", "int"), None)


def test_sizes_as_the_users_of_expanded_options_read_them() -> None:
    assert read_size("50M") == 50 * 1024 * 1024
    assert read_size("0") == 0
    assert read_size("fifty") is None


def test_lists_for_ids() -> None:
    assert split_list("a : b::c : ") == ["a", "b:c"]
    assert split_list("<; a ; b") == ["a", "b"]


@pytest.mark.parametrize(
    ("kind", "value", "line"),
    [
        ("bool", True, "o"),
        ("bool", False, "no_o"),
        ("string", None, "o = "),
        ("string", "a\tb\nc\x01é", "o = a\\tb\\nc\\001\\303\\251"),
        ("int", 2048, "o = 2048"),
        ("mkint", 2048, "o = 2K"),
        ("mkint", 1048576, "o = 1M"),
        ("mkint", 1000, "o = 1000"),
        ("Kint", 100, "o = 100K"),
        ("Kint", 10240, "o = 10M"),
        ("Kint", 0, "o = 0"),
        ("octint", 0o600, "o = 0600"),
        ("octint", 0, "o = 0"),
        ("fixed", 2500, "o = 2.5"),
        ("fixed", 3000, "o = 3.0"),
        ("fixed", 62, "o = 0.062"),
        ("fixed", None, "o ="),
        ("time", 93784, "o = 1d2h3m4s"),
        ("timelist", (3600, 86400), "o = 1h:1d"),
        ("uid", 0, "o = root"),
        ("uid", None, "o = "),
        ("expand_uid", "$x", "o = $x"),
        ("uidlist", (0, 0), "o = root:root"),
        ("uidlist", None, "o ="),
        ("expand_bool", "${if true}", "o = ${if true}"),
    ],
)
def test_bp_lines(kind: str, value: object, line: str) -> None:
    assert format_option(OptionDef("o", kind), value) == line


def test_string_printing_leaves_backslashes_alone() -> None:
    # Exim shows a regex's backslashes as they are and only escapes control characters
    assert string_printing("^(?:cur|new|\\..*)$") == "^(?:cur|new|\\..*)$"

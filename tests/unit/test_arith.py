"""${eval}/${eval10} arithmetic and Exim's integer reading, values checked against Exim 4.96."""

from __future__ import annotations

import pytest

from pyxim.errors import ExpansionError
from pyxim.expand.arith import evaluate, string_integer, strtol, strtoul, wrap_int

MAX = (1 << 63) - 1
MIN = -(1 << 63)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1+2*3", 7),
        ("(1+2)*3", 9),
        ("1 & 2 | 4 ^ 7", 3),  # | is loosest, then ^, then &
        ("1 << 2 + 1", 8),  # + binds tighter than <<
        ("5 % 3 * 2", 4),
        ("7/-2", -3),  # C division truncates towards zero
        ("-7%3", -1),
        ("7%-3", 1),
        ("--3", 3),
        ("~-3", 2),
        ("-1>>1", -1),  # arithmetic shift
        ("1<<63", MIN),
        ("2k", 2048),
        ("1M*1K", 1 << 30),
        ("8g", 8 << 30),
        ("0x1fk", 31 * 1024),
        (" ( 3 + 4 ) * 2 ", 14),
        ("\t3", 3),
        ("1\n+1", 2),
        ("0777", 511),
        ("0x", 0),  # sscanf swallows "0x" and gives 0
        ("0x+1", 1),
        ("9223372036854775808", MAX),  # numbers saturate
        ("-9223372036854775808", -MAX),
        ("0xFFFFFFFFFFFFFFFF", MAX),
        ("-9223372036854775807-1", MIN),
        ("-4611686018427387904-4611686018427387905", MAX),  # wraps: Exim's check misses it
        ("(-9223372036854775807-1) / -1", MAX),  # Exim's dodge of the SIGFPE
        ("(-9223372036854775807-1) % -1", MAX),
        # undefined behaviour in C, as Exim on x86-64 shows it
        ("9223372036854775807*2", -2),
        ("8589934592G", MIN),
        ("1<<64", 1),
        ("1<<65", 2),
        ("1<<-1", MIN),
        ("-8>>65", -4),
    ],
)
def test_eval(text: str, value: int) -> None:
    assert evaluate(text) == value


def test_eval10_reads_decimal_only() -> None:
    assert evaluate("010", decimal=True) == 10
    assert evaluate("08", decimal=True) == 8
    with pytest.raises(ExpansionError, match='expecting operator \\(after processing "0"\\)'):
        evaluate("0x10", decimal=True)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", 'expecting number or opening parenthesis (after processing "")'),
        (" ", 'expecting number or opening parenthesis (after processing " ")'),
        ("1+", 'expecting number or opening parenthesis (after processing "1+")'),
        ("(1+2", 'expecting closing parenthesis (after processing "(1+2")'),
        ("1 2", 'expecting operator (after processing "1 ")'),
        ("08", 'expecting operator (after processing "0")'),
        ("5\x1c", 'expecting operator (after processing "5")'),  # only C white space is skipped
        ("1/0", 'divide by zero (after processing "1/0")'),
        ("5 % 0", 'modulo by zero (after processing "5 % 0")'),
        ("2 ** 3", 'expecting number or opening parenthesis (after processing "2 *")'),
        ("9223372036854775807+1", 'overflow in sum (after processing "9223372036854775807+1")'),
        ("4611686018427387903 - 1", 'overflow in difference (after processing "4611686018427387903 - 1")'),
        ("-4611686018427387904 + -4611686018427387904", "overflow in sum"),
        ("1²", 'expecting operator (after processing "1")'),
    ],
)
def test_eval_errors(text: str, message: str) -> None:
    with pytest.raises(ExpansionError) as info:
        evaluate(text)
    assert info.value.message.startswith("error in expression evaluation: " + message)


@pytest.mark.parametrize(
    ("text", "value"),
    [("42", 42), ("  42  ", 42), ("", None), ("   ", 0), ("-3", -3), ("2k", 2048), ("1G", 1 << 30)],
)
def test_string_integer(text: str, value: int | None) -> None:
    if value is None:
        with pytest.raises(ExpansionError, match='integer expected but "" found'):
            string_integer(text)
    else:
        assert string_integer(text) == value


@pytest.mark.parametrize(
    ("text", "isplus", "message"),
    [
        ("x", False, 'integer expected but "x" found'),
        ("1x", False, 'invalid integer "1x"'),
        ("  1+1", False, 'invalid integer "1+1"'),  # the message shows the text after the white space
        ("-1", True, 'non-negative integer expected but "-1" found'),
        (
            "99999999999999999999",
            False,
            'absolute value of integer "99999999999999999999" is too large (overflow)',
        ),
        ("9007199254740992K", False, "too large (overflow)"),
    ],
)
def test_string_integer_errors(text: str, isplus: bool, message: str) -> None:
    with pytest.raises(ExpansionError) as info:
        string_integer(text, isplus)
    assert message in info.value.message


def test_c_helpers() -> None:
    assert strtol(" -12x") == (-12, 4, False)
    assert strtol("x") == (0, 0, False)
    assert strtol("99999999999999999999") == (MAX, 20, True)
    assert strtol("4294967296", bits=32) == ((1 << 31) - 1, 10, True)
    assert strtoul("-1") == ((1 << 64) - 1, 2)
    assert strtoul("18446744073709551616") == ((1 << 64) - 1, 20)
    assert wrap_int(1 << 63) == MIN
    assert wrap_int(3_000_000_000, 32) == -1_294_967_296

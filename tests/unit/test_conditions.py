"""Expansion conditions (${if NAME …}) as a user of pyxim sees them.

Byte-for-byte agreement with Exim is checked by tests/interop/expansions/
conditions.txt; these tests pin the behaviour per condition, including what
the differential test cannot see: taint, exception types, the context's
delivery state, file tests in a locked-down context, the boolean readings
other subsystems share, and results that depend on the machine.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest

from pyxim.errors import ExpansionError, LookupDefer
from pyxim.expand import ExpansionContext, expand_condition, expand_string
from pyxim.expand.conditions import (
    acl_condition_value,
    bool_value,
    check_when_skipped,
    ip_version,
    router_condition_value,
)
from pyxim.expand.crypteq import crypt16, crypteq, system_crypt
from pyxim.expand.taint import Tainted, is_tainted


def x(text: str, ctx: ExpansionContext | None = None) -> str:
    return expand_string(text, ctx or ExpansionContext())


def fails(text: str, ctx: ExpansionContext | None = None) -> str:
    with pytest.raises(ExpansionError) as info:
        x(text, ctx)
    return info.value.message


# -- numeric comparisons -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "result"),
    [
        ("${if <{1}{2}}", "true"),
        ("${if <{2}{1}}", ""),
        ("${if <={2}{2}}", "true"),
        ("${if >{3}{2}}", "true"),
        ("${if >={2}{3}}", ""),
        ("${if ={1k}{1024}}", "true"),
        ("${if =={1M}{1048576}}", "true"),
        ("${if ={1g}{1073741824}}", "true"),
        ("${if ={}{0}}", "true"),  # empty is zero
        ("${if ={ }{0}}", "true"),  # so is white space
        ("${if ={ 7 }{7}}", "true"),
        ("${if ={010}{10}}", "true"),  # decimal, not octal
        ("${if <{-5}{-4}}", "true"),
        ("${if ={1\\x002}{1}}", "true"),  # the argument ends at a NUL, as in C
    ],
)
def test_numeric_comparisons(text: str, result: str) -> None:
    assert x(text) == result


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("${if <{abc}{1}}", 'integer expected but "abc" found'),
        ("${if <{1}{ x}}", 'integer expected but "x" found'),  # quoted after the leading space
        ("${if <{1x}{1}}", 'invalid integer "1x"'),
        ("${if <{0x10}{1}}", 'invalid integer "0x10"'),
        (
            "${if <{99999999999999999999}{1}}",
            'absolute value of integer "99999999999999999999" is too large (overflow)',
        ),
        ("${if <{8796093022208G}{1}}", 'absolute value of integer "8796093022208G" is too large (overflow)'),
    ],
)
def test_numeric_comparison_errors(text: str, message: str) -> None:
    assert fails(text) == message


# -- string comparisons ----------------------------------------------------------------------


def test_string_comparisons_are_bytewise_and_caseless_only_in_ascii() -> None:
    assert x("${if eq{a}{a}}") == "true"
    assert x("${if eq{a}{A}}") == ""
    assert x("${if eqi{AbC}{aBc}}") == "true"
    assert x("${if eqi{É}{é}}") == ""  # strcmpic() folds ASCII only
    assert x("${if lt{Z}{a}}") == "true"  # 'Z' < 'a' in bytes
    assert x("${if lti{Z}{a}}") == ""
    assert x("${if lt{é}{z}}") == ""  # UTF-8 bytes sort after ASCII
    assert x("${if lti{_}{A}}") == "true"  # compared as lower case: '_' < 'a'
    assert x("${if le{b}{b}}${if ge{ab}{a}}${if gt{ab}{abc}}${if gei{a}{B}}") == "truetrue"
    assert x("${if eq{a\\x00b}{a}}") == "true"


# -- bool, bool_lax and the other readings of a boolean --------------------------------------


@pytest.mark.parametrize(
    ("value", "strict", "lax"),
    [
        ("yes", True, True),
        (" TRUE\t", True, True),
        ("no", False, False),
        ("False", False, False),
        ("", False, False),
        ("  ", False, False),
        ("0", False, False),
        ("00", False, True),  # bool_lax: only the single character "0" is false
        ("-0", False, True),
        ("-", False, False),  # a lone minus reads as the number 0
        ("1", True, True),
        ("-1", True, True),
        ("4294967296", False, True),  # C's atoi() keeps the low 32 bits
        ("99999999999999999999", True, True),  # saturates, then -1
        ("maybe", None, True),
    ],
)
def test_bool_and_bool_lax(value: str, strict: bool | None, lax: bool) -> None:
    if strict is None:
        with pytest.raises(ExpansionError, match=f'unrecognised boolean value "{value.strip()}"'):
            bool_value(value)
    else:
        assert bool_value(value) is strict
    assert bool_value(value, lax=True) is lax


def test_bool_error_text_quotes_the_trimmed_value() -> None:
    assert fails("${if bool{ maybe \t}}") == 'unrecognised boolean value "maybe"'
    assert fails("${if bool{١}}") == 'unrecognised boolean value "١"'  # only ASCII digits are numbers


def test_bool_is_checked_in_a_skipped_branch() -> None:
    # Exim rejects an unrecognised literal value even where it is not evaluating;
    # check_when_skipped() is that check, for the evaluator's skipping walk.
    with pytest.raises(ExpansionError, match='unrecognised boolean value "maybe"'):
        check_when_skipped("bool", ["maybe"])
    check_when_skipped("bool", [""])  # variables contribute nothing when skipping
    check_when_skipped("bool_lax", ["maybe"])
    check_when_skipped("eq", ["a", "b"])


def test_acl_condition_value() -> None:
    assert acl_condition_value("yes") is True
    assert acl_condition_value("0") is False
    assert acl_condition_value("") is False
    assert acl_condition_value("-3") is True
    assert acl_condition_value(" yes") is None  # no trimming in the ACL modifier
    assert acl_condition_value("maybe") is None


def test_router_condition_value() -> None:
    assert router_condition_value("") is False
    assert router_condition_value("0") is False
    assert router_condition_value("No") is False
    assert router_condition_value("FALSE") is False
    assert router_condition_value("00") is True
    assert router_condition_value(" 0") is True
    assert router_condition_value("anything") is True


# -- isip ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ("1.2.3.4", 4),
        ("255.255.255.255", 4),
        ("::1", 6),
        ("::ffff:1.2.3.4", 6),
        ("fe80::1%eth0", 6),
        ("::1%", 6),
        ("1.2.3.4/24", 0),  # no mask here
        ("01.2.3.4", 0),  # inet_pton() refuses leading zeros
        ("1.2.3", 0),
        ("1.2.3.4%x", 0),
        ("1::2::3", 0),
        (" 1.2.3.4", 0),
        ("", 0),
    ],
)
def test_ip_version(text: str, version: int) -> None:
    assert ip_version(text) == version
    assert x(f"${{if isip{{{text}}}}}") == ("true" if version else "")
    assert x(f"${{if isip4{{{text}}}}}") == ("true" if version == 4 else "")
    assert x(f"${{if isip6{{{text}}}}}") == ("true" if version == 6 else "")


# -- exists ----------------------------------------------------------------------------------


def test_exists(tmp_path: Path) -> None:
    present = tmp_path / "here"
    present.write_text("x")
    assert x(f"${{if exists{{{present}}}}}") == "true"
    assert x(f"${{if exists{{{tmp_path / 'gone'}}}}}") == ""
    assert x(f"${{if exists{{{tmp_path}}}}}") == "true"  # directories count
    assert x("${if exists{}}") == ""


def test_exists_accepts_a_tainted_name(tmp_path: Path) -> None:
    # Exim 4.96 stat()s tainted names (`${if exists{$h_subject:}}` under exim4 -bem
    # answers true for an existing file), unlike ${readfile}.
    present = tmp_path / "here"
    present.write_text("x")
    ctx = ExpansionContext(variables={"sender_address": Tainted(str(present))})
    assert x("${if exists{$sender_address}}", ctx) == "true"


def test_exists_can_be_locked_out() -> None:
    ctx = ExpansionContext(forbidden=frozenset({"exists"}))
    assert fails("${if exists{/}}", ctx) == "File existence tests are not permitted"
    assert x("${if eq{a}{b}{${if exists{/}}}{skipped}}", ctx) == "skipped"


# -- first_delivery, queue_running -----------------------------------------------------------


def test_delivery_state_comes_from_the_context() -> None:
    assert x("${if first_delivery{y}{n}}${if queue_running{y}{n}}") == "nn"
    ctx = ExpansionContext(first_delivery=True, queue_running=True)
    assert x("${if first_delivery{y}{n}}${if queue_running{y}{n}}", ctx) == "yy"
    assert x("${if !first_delivery{y}{n}}", ctx) == "n"


# -- inlist ----------------------------------------------------------------------------------


def test_inlist_and_value() -> None:
    assert x("${if inlist{b}{a:b:c}{$value}{no}}") == "b"
    assert x("${if inlisti{B}{a:b:c}{$value}{no}}") == "b"  # the item as the list has it
    assert x("${if inlist{B}{a:b:c}{$value}{no}}") == "no"
    assert x("${if inlist{a:b}{a::b:c}}") == "true"  # doubled separator
    assert x("${if inlist{b}{<; a;b}}") == "true"
    assert x("${if inlist{}{a::b}}") == ""


def test_inlist_value_keeps_taint() -> None:
    ctx = ExpansionContext(variables={"sender_address": Tainted("x:y")})
    assert x("${if inlist{y}{$sender_address}{${if eq{$value}{y}{ok}}}}", ctx) == "ok"


def test_inlist_leaves_value_alone_when_nothing_matches() -> None:
    ctx = ExpansionContext()
    ctx.variables["domain"] = "x"
    assert x("${if inlist{z}{a:b}{[$value]}{<$value>}}", ctx) == "<>"


# -- match -------------------------------------------------------------------------------------


def test_match_sets_numeric_variables() -> None:
    assert x("${if match{foo.bar}{\\N^(\\w+)\\.(\\w+)$\\N}{$2-$1-$0}}") == "bar-foo-foo.bar"
    assert x("${if match{b}{(a)?(b)}{[$1][$2]}}") == "[][b]"
    # a failed match keeps the outer ones; the inner if restores them afterwards
    assert x("${if match{ab}{(a)}{${if match{y}{z}{}{n$1}}${if match{y}{(y)}{$1}}$1}}") == "naya"


def test_match_regex_error() -> None:
    assert (
        fails("${if match{abc}{(}}")
        == 'regular expression error in "(": missing closing parenthesis at offset 1'
    )


def test_match_captures_are_tainted_with_the_subject() -> None:
    ctx = ExpansionContext(variables={"sender_address": Tainted("user@example.org")})
    result = x("${if match{$sender_address}{^(.*)@}{$1}}", ctx)
    assert result == "user"
    assert is_tainted(result)


# -- match_ip, match_domain, match_local_part, match_address --------------------------------


def test_match_ip() -> None:
    assert x("${if match_ip{1.2.3.4}{1.2.3.0/24}}") == "true"
    assert x("${if match_ip{1.2.3.4}{1.2.4.0/24}}") == ""
    assert x("${if match_ip{::ffff:1.2.3.4}{1.2.3.4}}") == "true"
    assert x("${if match_ip{10.9.9.9}{!10.9.9.9 : *}}") == ""


@pytest.mark.parametrize("subject", ["abc", "1.2.3.4/24", "1.2.3", " 1.2.3.4"])
def test_match_ip_wants_an_ip_address(subject: str) -> None:
    assert fails(f"${{if match_ip{{{subject}}}{{1.2.3.4}}}}") == f'"{subject}" is not an IP address'


def test_match_domain_and_local_part_and_address() -> None:
    assert x("${if match_domain{a.example.net}{*.example.net}}") == "true"
    assert x("${if match_domain{other.org}{!x.org : *}}") == "true"
    assert x("${if match_local_part{ABUSE}{abuse}}") == "true"  # caseless in this condition
    assert x("${if match_address{a@b.example}{*@b.example}}") == "true"
    assert x("${if match_address{good@fine.example}{bad@fine.example}}") == ""


def test_match_domain_clears_value() -> None:
    ctx = ExpansionContext()
    assert x("${if inlist{v}{v}{${if match_domain{z}{y}{[$value]}{<$value>}}}}", ctx) == "<>"


def test_unknown_named_list() -> None:
    with pytest.raises(LookupDefer) as info:
        x("${if match_domain{x}{+nosuch}}")
    # Exim quotes the search error the last lookup left: none yet, so NULL.
    assert info.value.message == 'unable to complete match against "+nosuch": NULL'


def test_list_matching_leaves_domain_data_alone() -> None:
    ctx = ExpansionContext()
    ctx.variables["domain_data"] = "kept"
    x("${if match_domain{a.example}{a.example}}", ctx)
    assert ctx.variables["domain_data"] == "kept"


# -- crypteq -------------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_crypteq_md5_and_sha1() -> None:
    md5 = hashlib.md5(b"secret").digest()
    sha1 = hashlib.sha1(b"secret").digest()
    assert crypteq("secret", "{md5}" + _b64(md5))
    assert crypteq("secret", "{MD5}" + md5.hex().upper())
    assert not crypteq("secret", "{md5}" + _b64(md5).lower())  # base64 compares exactly
    assert not crypteq("secret", "{md5}" + md5.hex()[:-1])  # other lengths never match
    assert crypteq("secret", "{sha1}" + _b64(sha1))
    assert crypteq("secret", "{Sha1}" + sha1.hex())
    assert not crypteq("Secret", "{sha1}" + sha1.hex())


def test_crypteq_crypt_forms() -> None:
    des = system_crypt(b"secret", b"ab")
    md5crypt = system_crypt(b"secret", b"$1$saltsalt$")
    assert des is not None and md5crypt is not None
    assert crypteq("secret", des.decode())
    assert crypteq("secret", "{crypt}" + md5crypt.decode())
    assert not crypteq("secreT", des.decode())
    assert not crypteq("secret", "a")  # under two characters never match
    assert not crypteq("", "")
    assert not crypteq("x", "*0")  # libcrypt's failure token


def test_crypt16() -> None:
    short = crypt16(b"short", b"ab")
    assert short == system_crypt(b"short", b"ab")  # up to 8 characters it is DES crypt
    long = crypt16(b"longpassword123", b"ab")
    assert long is not None and len(long) == 24
    first = system_crypt(b"longpass", b"ab")
    second = system_crypt(b"word123", first[2:4])  # type: ignore[index]
    assert long == first[:13] + second[2:13]  # type: ignore[index,operator]
    assert crypteq("longpassword123", "{crypt16}" + long.decode())
    assert not crypteq("longpassword124", "{crypt16}" + long.decode())


@pytest.mark.parametrize("prefix", ["{sha256}", "{des}", "{", "{}", "{md5 }"])
def test_crypteq_unknown_mechanism(prefix: str) -> None:
    with pytest.raises(ExpansionError) as info:
        crypteq("a", prefix + "x")
    assert info.value.message == f'unknown encryption mechanism in "{prefix}x"'
    assert fails("${if crypteq{a}{\\{sha256\\}x}}") == 'unknown encryption mechanism in "{sha256}x"'


# -- backends pyxim does not have ----------------------------------------------------------


@pytest.mark.parametrize("name", ["pam", "radius", "ldapauth", "pwcheck", "saslauthd"])
def test_authentication_backends_are_not_compiled(name: str) -> None:
    assert fails(f"${{if {name}{{user:pass}}}}") == f'support for "{name}" not compiled'
    assert x(f"${{if eq{{a}}{{b}}{{${{if {name}{{x}}}}}}{{skipped}}}}") == "skipped"


# -- the conditions through expand_condition (ACLs, ${filter}) -----------------------------------


def test_expand_condition() -> None:
    assert expand_condition("inlist{b}{a:b}") is True
    assert expand_condition("!isip{x}") is True
    assert expand_condition("and{{<{1}{2}}{eqi{A}{a}}}") is True

"""Expansion operators, through expand_string as a user's configuration would use them.

The expected values were taken from Exim 4.96 (exim4 -be); most of them are
also in the differential corpus (tests/interop/expansions/operators.txt).
The cases here that are not in the corpus are the ones Exim 4.96 cannot
answer reproducibly: random numbers, operators it does not have yet, C
undefined behaviour, configuration options the shared test configuration
does not set, and taint.
"""

from __future__ import annotations

import os
import stat

import pytest

from pyxim.config.model import Config, NamedList
from pyxim.errors import ExpansionError
from pyxim.expand import ExpansionContext, Tainted, expand_string, is_tainted
from pyxim.expand.operators import op_expand, op_lc


def x(text: str, config: Config | None = None) -> str:
    return expand_string(text, ExpansionContext(config=config))


def fails(text: str, config: Config | None = None) -> str:
    with pytest.raises(ExpansionError) as info:
        x(text, config)
    return info.value.message


def config(**main: object) -> Config:
    lists = {
        "dom": NamedList("domain", "dom", "a.example : *.b.example"),
        "semi": NamedList("domain", "semi", "<; a.example ; x:y ; c;;d ; +dom"),
        "hosts": NamedList("host", "hosts", "127.0.0.1 : ::::1"),
    }
    return Config(main={"headers_charset": "UTF-8", **main}, named_lists=lists)


@pytest.mark.parametrize(
    ("text", "result"),
    [
        ("${lc:ÀBC}", "Àbc"),
        ("${uc:àbc}", "àBC"),
        ("${lc_anything:AB}", "ab"),  # parameters an operator does not take are ignored
        ("${strlen:é}", "2"),  # bytes, not characters
        ("${length_1:é}", "\udcc3"),
        ("${utf8clean:${length_1:é}}", "?"),
        ("${l_2:abcd}", "ab"),
        ("${length_:abc}", ""),
        ("${substr_-2:abcd}", "ab"),
        ("${substr_1:abcd}", "bcd"),
        ("${s_-2_1:abcd}", "c"),
        ("${substr_-10_3:abcd}", ""),
        ("${substr_:abc}", "abc"),
        ("${substr_5:abc}", ""),
        ("${hash_3:abcdef}", "fmc"),
        ("${hash_3_62:abcdefghij}", "YGg"),
        ("${hash_10:abc}", "abc"),
        ("${nhash_8:abc}", "4"),
        ("${nhash_8_4:abc}", "3/0"),
        ("${nh_100:hello world}", "50"),
        ("${md5:abc}", "900150983cd24fb0d6963f7d28e17f72"),
        ("${sha1:abc}", "A9993E364706816ABA3E25717850C26C9CD0D89D"),
        ("${sha256_256:abc}", "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"),
        ("${sha3_224:abc}", "E642824C3F8CF24AD09234EE7D3C766FC9A3A5168D0C94AD73B46FDF"),
        ("${base32:12345}", "mbz"),
        ("${base32:-1}", "p777777777777"),
        ("${base32:}", ""),
        ("${base32d:zzzzzzzzzzzzzz}", "-7140675125306923207"),
        ("${base62:12345}", "0003D7"),
        ("${base62:-1}", "16AHYF"),
        ("${base62d:0003D7}", "12345"),
        ("${base64:é}", "w6k="),
        ("${base64d:YW Jj}", "abc"),
        ("${base64d:YQBi}", "a"),  # the decoded text ends at its zero byte
        ("${hex2b64:AbCd}", "q80="),
        ("${hexquote:a b\\x80}", "a\\x20b\\x80"),
        ("${escape:a\\tb\\x80\\b}", "a\tb\\200\\b"),
        ("${escape8bit:a\\\\b\\x7f}", "a\\134b\\177"),
        ("${quote:a\\nb}", '"a\\nb"'),
        ("${quote:a.b-c_d}", "a.b-c_d"),
        ("${quote_local_part:a..b}", "a..b"),
        ("${quote_local_part:.ab}", '".ab"'),
        ("${rxquote:a.b é}", "a\\.b\\ \\\udcc3\\\udca9"),
        ("${time_eval:1w2d3h4m5s}", "788645"),
        ("${time_eval:2147483648s}", None),
        ("${time_interval:90061}", "1d1h1m1s"),
        ("${time_interval:}", "0s"),
        ("${time_interval:3000000000}", "-2141w1d1h8m16s"),  # the number is a C int
        ("${listcount:a:b::c}", "2"),
        ("${listcount:<;a;b}", "2"),
        ("${from_utf8:é€}", "\udce9_"),
        ("${from_utf8:\\xc3a}", "\udce1"),
        ("${utf8clean:\\xe2\\x82\\xe2\\x82\\xac}", "???"),
        ("${utf8clean:\\xe0\\x80\\x80}", "\udce0\udc80\udc80"),  # overlong forms pass, as in Exim
        ("${utf8clean:\\xed\\xa0\\x80}", "?"),  # surrogates do not
        ("${mask:192.168.1.99/24}", "192.168.1.0/24"),
        ("${mask:2001:db8::1/32}", "2001.0db8.0000.0000.0000.0000.0000.0000/32"),
        ("${mask_n:2001:db8::1/32}", "2001:db8::/32"),
        ("${mask:1.2.3.4/4294967320}", "1.2.3.0/24"),  # the mask is read into a C int
        ("${ipv6norm:0:0:0:0:0:0:0:0}", ":"),
        ("${ipv6norm:0:0:1:0:0:1:0:0}", "::1:0:0:1:0:0"),
        ("${ipv6norm:::ffff:1.2.3.4}", "::ffff:102:304"),
        ("${ipv6denorm:1.2.3.4}", "0000:0000:0000:0000:0000:ffff:0102:0304"),
        ("${reverse_ip:::ffff:1.2.3.4}", "4.3.2.1"),
        ("${reverse_ip:2001:db8::1}", "1." + "0." * 23 + "8.b.d.0.1.0.0.2"),
        ("${rfc2047:a b}", "a b"),
        ("${rfc2047:a.b}", "=?UTF-8?Q?a=2Eb?="),
        ("${rfc2047d:=?iso-8859-1?Q?caf=E9?=}", "café"),
        ("${rfc2047d:=?utf-8?Q?a?=  =?utf-8?Q?b?=}", "ab"),
        ("${rfc2047d:=?us-ascii?Q?a=E9b?=}", "a\udce9b"),  # what cannot be converted is copied
        ("${utf8_domain_to_alabel:Bücher.example}", "xn--bcher-kva.example"),
        ("${utf8_domain_to_alabel:ABC.example}", "ABC.example"),
        ("${utf8_domain_from_alabel:xn--bcher-kva.example}", "bücher.example"),
        ("${utf8_localpart_to_alabel:ÁBC}", "xn--BC-ufa"),
        ("${utf8_localpart_from_alabel:xn--bc-lia}", "ábc"),
        ("${utf8_localpart_from_alabel:xn--}", ""),
        ("${xtextd:a+2Bb+3D}", "a+b="),
        ("${xtextd:a+2}", ""),
        ("${xtextd:a=b}", ""),
    ],
)
def test_operator_results(text: str, result: str | None) -> None:
    if result is None:
        fails(text)
    else:
        assert x(text) == result


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("${l:abc}", "missing values after l"),
        ("${nh:abc}", "missing values after nh"),
        ("${length_x:abc}", 'non-digit after underscore in "length_x"'),
        ("${s_1__2:abc}", 'non-digit after underscore in "s_1__2"'),
        ("${hash_-1:abc}", 'non-digit after underscore in "hash_-1"'),
        ("${hash_3_63:abcdefghij}", 'hash count "63" too big'),
        ("${sha2_123:x}", "unrecognised sha2 variant"),
        ("${sha3_1:x}", "unrecognised sha3 variant"),
        ("${base32:12 }", 'argument for base32 operator is "12 ", which is not a decimal number'),
        ("${base62d:\\$}", 'argument for base62d operator is "$", which is not a base 62 number'),
        ("${base64d:YWJj=}", 'string "YWJj=" is not well-formed for "base64d" operator'),
        ("${hex2b64:0a0}", '"0a0" contains an odd number of characters'),
        ("${hex2b64: 00}", '" 00" is not a hex string'),
        ("${time_eval:1h2}", 'string "1h2" is not an Exim time interval in "time_eval" operator'),
        ("${time_interval:-5}", 'string "-5" is not a positive number in "time_interval" operator'),
        ("${mask:1.2.3.4}", 'missing mask value in "1.2.3.4"'),
        ("${mask:1.2.3.4/33}", 'mask value too big in "1.2.3.4/33"'),
        ("${mask:1.2.3.4/-1}", '"1.2.3.4/-1" is not an IP address'),
        ("${ipv6norm:1::2::3}", '"1::2::3" is not an IP address'),
        ("${reverse_ip:x}", "reverse_ip() not given an IP address [x]"),
        ("${listnamed_x:dom}", 'bad suffix on "list" operator'),
        ("${addresses:>}", "output separator missing in expanding ${addresses:>}"),
        ("${randint:-5}", 'non-negative integer expected but "-5" found'),
        ("${randint:1x}", 'invalid integer "1x"'),
        (
            "${randint:99999999999999999999}",
            'absolute value of integer "99999999999999999999" is too large (overflow)',
        ),
        ("${quote_nosuch:x}", 'unknown lookup type "nosuch"'),
        ("${quote_lsearch_x:a}", '"x" unrecognized after "${quote_lsearch"'),
        (
            "${rfc2047d:=?nosuch?Q?a?=}",
            'iconv_open("UTF-8", "nosuch") failed: Invalid argument (maybe unsupported conversion)',
        ),
        (
            "${utf8_domain_to_alabel:☃.net}",
            "error converting utf8 (\\342\\230\\203.net) to alabel: string contains a disallowed character",
        ),
        ("${utf8_localpart_from_alabel:abc}", "error converting alabel (abc) to utf8: bad alabel prefix"),
        ("${utf8_localpart_from_alabel:xn--zz}", "error converting alabel (xn--zz) to utf8: Invalid input"),
        (
            "${expand:\\${nosuch}}",
            'internal expansion of "${nosuch" failed: "${nosuch" is not a known operator (or a } is missing in a variable reference)',
        ),
        ("${stat:/nonexistent/x}", "stat(/nonexistent/x) failed: No such file or directory"),
    ],
)
def test_operator_errors(text: str, message: str) -> None:
    assert fails(text) == message


def test_nhash_and_hash_with_zero_do_not_crash() -> None:
    # Exim divides by zero here and dies; pyxim refuses with an error.
    assert "zero" in fails("${nhash_0:abc}")
    assert "zero" in fails("${nhash_3_0:abc}")
    assert "too small" in fails("${hash_2_0:abc}")


def test_arguments_end_at_a_zero_byte() -> None:
    assert x("${strlen:a\\x00b}") == "1"
    assert x("${lc:A\\x00B}") == "a"
    assert x("${escape:a\\x00b}") == "a"


def test_randint_stays_in_range() -> None:
    values = {int(x("${randint:10}")) for _ in range(300)}
    assert values <= set(range(10)) and len(values) > 5
    assert {x("${randint:0}"), x("${randint:1}"), x("${randint: }")} == {"0"}
    assert x("${randint:4294967296}") == "0"  # the maximum is passed on as a C int


def test_newer_operators() -> None:
    wrapped = x("${headerwrap_20:one two three four five six seven}")
    lines = wrapped.split("\n")
    assert len(lines) > 1 and all(len(line.expandtabs(8)) <= 20 for line in lines)
    assert all(line.startswith("\t") for line in lines[1:])
    assert wrapped.replace("\n\t", " ") == "one two three four five six seven"
    assert x("${headerwrap_80_7:one two three}") == "one two"


def test_time_interval_of_int_min() -> None:
    # 2147483648 becomes INT_MIN; negating that overflows, and gcc's code prints this.
    assert x("${time_interval:2147483648}") == "-5d3h14m8s"


def test_listnamed_requotes_other_separators() -> None:
    cfg = config()
    assert x("${listnamed:dom}", cfg) == "a.example : *.b.example"
    assert x("${listnamed_d:semi}", cfg) == "a.example : x::y : c;d : a.example : *.b.example"
    assert x("${listnamed:hosts}", cfg) == "127.0.0.1 : ::1"
    assert fails("${listnamed_h:dom}", cfg) == '"dom" is not a host named list'
    assert fails("${listnamed:nosuch}", cfg) == '"nosuch" is not a named list'


def test_print_topbitchars_changes_escape() -> None:
    assert x("${escape:é\\n}") == "\\303\\251\\n"
    assert x("${escape:é\\n}", config(print_topbitchars=True)) == "é\\n"


def test_address_options_from_the_configuration() -> None:
    assert x("${address:a@b.}") == ""
    assert x("${address:a@b.}", config(strip_trailing_dot=True)) == "a@b"
    assert x("${address:<<a@b>>}") == ""
    assert x("${address:<<a@b>>}", config(strip_excess_angle_brackets=True)) == "a@b"
    assert x("${domain:a@bücher.example}") == ""
    assert x("${domain:a@bücher.example}", config(allow_utf8_domains=True)) == "bücher.example"


def test_rfc2047_charset_from_the_configuration() -> None:
    latin = config(headers_charset="ISO-8859-1")
    assert x("${rfc2047:é}", latin) == "=?ISO-8859-1?Q?=C3=A9?="  # the bytes are not converted
    assert x("${rfc2047d:=?utf-8?Q?=C3=A9?=}", latin) == "\udce9"
    long_word = "=?utf-8?Q?" + "a" * 64 + "?="
    assert x("${rfc2047d:" + long_word + "}") == long_word
    assert x("${rfc2047d:" + long_word + "}", config(check_rfc2047_length=False)) == "a" * 64


def test_stat_of_special_files(tmp_path) -> None:  # type: ignore[no-untyped-def]
    target = tmp_path / "f"
    target.write_text("hello")
    os.chmod(target, 0o4750)
    os.chmod(tmp_path, 0o1777)
    fields = dict(item.split("=", 1) for item in x(f"${{stat:{target}}}").split(" "))
    assert fields["mode"] == "4750" and fields["smode"] == "-rwsr-x---" and fields["size"] == "5"
    st = os.stat(target)
    assert fields["inode"] == str(st.st_ino) and fields["mtime"] == str(int(st.st_mtime))
    fields = dict(item.split("=", 1) for item in x(f"${{stat:{tmp_path}}}").split(" "))
    assert fields["mode"] == "41777" and fields["smode"] == "drwxrwxrwt"
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    assert " smode=crw-rw-rw- " in x("${stat:/dev/null}")


def test_stat_respects_the_exists_lock_out() -> None:
    ctx = ExpansionContext(forbidden=frozenset({"exists"}))
    with pytest.raises(ExpansionError, match="Use of the stat"):
        expand_string("${stat:/}", ctx)


def test_results_from_tainted_arguments_stay_tainted() -> None:
    ctx = ExpansionContext(variables={"local_part": Tainted("Fred")})
    for text in (
        "${lc:$local_part}",
        "${md5:$local_part}",
        "${length_2:$local_part}",
        "${quote:$local_part}",
    ):
        assert is_tainted(expand_string(text, ctx)), text
    assert not is_tainted(expand_string("${lc:FRED}", ctx))


def test_expand_refuses_tainted_text() -> None:
    from pyxim.expand.evaluate import Evaluation

    ev = Evaluation(ExpansionContext())
    with pytest.raises(ExpansionError, match="attempt to expand tainted string"):
        op_expand(ev, Tainted("$primary_hostname"), None)
    assert op_lc(ev, "AB", None) == "ab"

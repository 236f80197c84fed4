"""The expansion engine itself: parsing, skipping, forced failure, taint, caching.

Byte-for-byte behaviour against Exim is covered by tests/interop; these tests
cover what the differential test cannot see (exception types, taint, what is
*not* done in a skipped branch, the command line's -be reader).
"""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest

from pyxim.cli import main
from pyxim.errors import ExpansionError, ForcedFail, LookupDefer
from pyxim.expand import ExpansionContext, expand_condition, expand_string
from pyxim.expand.parser import parse
from pyxim.expand.registry import item
from pyxim.expand.taint import Tainted, is_tainted


def x(text: str, **variables: str) -> str:
    return expand_string(text, ExpansionContext(variables=dict(variables)))


def test_plain_text_is_returned_unchanged() -> None:
    assert x("no dollars here") == "no dollars here"


def test_escapes_and_protected_text() -> None:
    assert x(r"a\tb\x41\101\q") == "a\tbAAq"
    assert x(r"\N${not expanded}\N!") == "${not expanded}!"


def test_forced_failure_is_distinguishable() -> None:
    with pytest.raises(ForcedFail) as info:
        x("${if eq{a}{b}{yes}fail}")
    assert info.value.message == '"if" failed and "fail" requested'
    with pytest.raises(ExpansionError) as info2:
        x("${if eq{a}{b}{yes}")
    assert not isinstance(info2.value, ForcedFail)


def test_unknown_variable_in_skipped_branch_is_still_an_error() -> None:
    with pytest.raises(ExpansionError, match='unknown variable name "nosuch"'):
        x("${if eq{a}{b}{$nosuch}{no}}")


_calls: list[str] = []


@item("pyxim_test_counter", 1, 1)
def _counter(ev, args):  # type: ignore[no-untyped-def]
    _calls.append(args[0])
    return args[0]


def test_skipped_branch_does_no_work() -> None:
    _calls.clear()
    assert x("${if eq{a}{b}{${pyxim_test_counter{yes}}}{${pyxim_test_counter{no}}}}") == "no"
    assert _calls == ["no"]
    _calls.clear()
    assert x("${if or{{eq{a}{a}}{eq{${pyxim_test_counter{x}}}{x}}}{y}{n}}") == "y"
    assert _calls == []  # or{} stops at the first true subcondition


def test_tainted_string_is_never_expanded() -> None:
    with pytest.raises(ExpansionError, match="attempt to expand tainted string"):
        expand_string(Tainted("${lc:A}"), ExpansionContext())


def test_taint_flows_through_operators_and_concatenation() -> None:
    ctx = ExpansionContext(variables={"sender_address": Tainted("User@Example.COM")})
    result = expand_string("<${lc:$sender_address}>", ctx)
    assert result == "<user@example.com>"
    assert is_tainted(result)
    assert not is_tainted(expand_string("${lc:ABC}", ctx))


def test_parse_is_cached() -> None:
    assert parse("${lc:$domain}") is parse("${lc:$domain}")


def test_captures_are_restored_after_if() -> None:
    assert x("${if match{abc}{(b)}{$1}}-$1") == "b-"


def test_map_filter_reduce_sort() -> None:
    assert x("${map{a:b}{<$item>}}") == "<a>:<b>"
    assert x("${filter{1:2:3:4}{>{$item}{2}}}") == "3:4"
    assert x("${reduce{1:2:3}{0}{${eval:$value+$item}}}") == "6"
    assert x("${sort{10:9:100}{<}{$item}}") == "9:10:100"


def test_expand_condition() -> None:
    assert expand_condition("eq{$domain}{example.org}", ExpansionContext(variables={"domain": "example.org"}))
    assert not expand_condition("!eq{a}{a}")


def test_lookup_defer_names_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    from pyxim import lookups

    def deferring(ctx, spec, filename, key, use_partial=True):  # type: ignore[no-untyped-def]
        raise LookupDefer("server down")

    monkeypatch.setattr(lookups, "search", deferring)
    with pytest.raises(LookupDefer, match='lookup of "k" gave DEFER: server down'):
        x("${lookup{k}lsearch{/etc/hosts}}")


def run_cli(args: list[str], stdin: str = "") -> tuple[int, str]:
    old_in, old_out = sys.stdin, sys.stdout
    sys.stdin, sys.stdout = io.StringIO(stdin), io.StringIO()
    try:
        status = main(args)
        return status, sys.stdout.getvalue()
    finally:
        sys.stdin, sys.stdout = old_in, old_out


CONF = os.path.join(os.path.dirname(__file__), "..", "interop", "fixtures", "expand.conf")
MACROS = ["-DFIXTURES=/tmp", "-DSPOOL=/tmp", "-DLOGDIR=/tmp"]


def test_be_arguments_print_one_result_per_line() -> None:
    status, out = run_cli(["-C", CONF, *MACROS, "-be", "${uc:a}", "$nosuch"])
    assert status == 0
    assert out == 'A\nFailed: unknown variable name "nosuch"\n'


def test_be_stdin_prompts_macros_and_continuation() -> None:
    stdin = "${lc:MACRO_ONE}\nNEWMAC = defined\nNEWMAC\nab\\\n   cd\n"
    status, out = run_cli(["-C", CONF, *MACROS, "-be"], stdin)
    assert status == 0
    assert out == "> one\n> Defined macro 'NEWMAC'\n> defined\n> abcd\n> \n"


def test_be_never_shows_a_traceback() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pyxim", "-C", CONF, *MACROS, "-be"],
        input="${if\n${lc:\x00\xff}\n${sg{a}{(}{b}}\n}}}}\n${extract json{x}{[[[}}\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "Traceback" not in proc.stderr + proc.stdout
    assert proc.returncode == 0


def test_missing_config_file_is_a_clear_error() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pyxim", "-C", "/nonexistent/pyxim.conf", "-bV"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert "/nonexistent/pyxim.conf" in proc.stderr
    assert "Traceback" not in proc.stderr

"""Expansion items (items.py) and Exim-style regexes (regex.py).

tests/interop/expansions/items.txt compares these items with exim4 byte for
byte; the tests here cover what that corpus cannot: a controlled clock for
prvs/prvscheck, servers for ${readsocket}, timeouts and signals for ${run},
taint, locked-out items, configuration options, and the helpers themselves.
"""

from __future__ import annotations

import os
import re
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyxim.config import load_config
from pyxim.errors import ExpansionError, ForcedFail, TaintError
from pyxim.expand import ExpansionContext, expand_string
from pyxim.expand import items as I
from pyxim.expand import regex as R
from pyxim.expand.taint import Tainted, is_tainted

# The parse/skip hooks (run's raw command, yes/no strings after env and
# listextract, prvscheck's arguments, per-item "not permitted" messages) need
# the engine side of the item registry; without it these tests cannot pass.
HOOKS = I._HOOKS
needs_hooks = pytest.mark.skipif(not HOOKS, reason="the engine has no item parse/skip hooks yet")

DAY = 86400.0
# A fixed "now": day 20000 since the epoch (2024-10-04), so daystamps are "000"-based and predictable.
NOW = 20_000 * DAY + 3600


def x(text: str, ctx: ExpansionContext | None = None, **variables: str) -> str:
    if ctx is None:
        ctx = ExpansionContext(variables=dict(variables))
    return expand_string(text, ctx)


def error(text: str, ctx: ExpansionContext | None = None) -> str:
    with pytest.raises(ExpansionError) as info:
        x(text, ctx)
    return info.value.message


def config_with(tmp_path: Path, main: str) -> ExpansionContext:
    path = tmp_path / "exim.conf"
    path.write_text(f"spool_directory = {tmp_path}\n{main}\n")
    return ExpansionContext(config=load_config(str(path)))


# -- length, substr, hash, nhash, hmac, tr ------------------------------------------------


def test_sized_items_count_bytes_and_read_numbers_like_strtol() -> None:
    assert x("${length{2}{abc}}") == "ab"
    assert x("${length{+2}{abc}}") == "ab"
    assert x("${length{ 2}{abc}}") == "ab"
    assert x("${length{}{abc}}") == ""
    assert x("${length{1}{é}}").encode("utf-8", "surrogateescape") == b"\xc3"
    assert x("${substr{-2}{1}{abcdef}}") == "e"
    assert x("${substr{4294967297}{abc}}") == "bc"  # a C int: 2**32 + 1 is 1
    assert x("${hash{3}{5}{abcdef}}") == "dda"
    assert x("${nhash{8}{4}{abc}}") == "3/0"


@pytest.mark.parametrize(
    "text, message",
    [
        ("${length{2 }{abc}}", '"2 " is not a positive number (in "length" expansion)'),
        ("${length{-1}{abc}}", '"-1" is not a positive number (in "length" expansion)'),
        ("${substr{x}{1}{abc}}", '"x" is not a number (in "substr" expansion)'),
        ("${substr{1}{x}{abc}}", '"x" is not a positive number (in "substr" expansion)'),
        ("${hash{3}{100}{abc}}", 'hash count "100" too big'),
        ("${hmac{sha256}{k}{d}}", 'hmac algorithm "sha256" is not recognised'),
        ("${length{1}}", "Not enough arguments for 'length' (min is 2)"),
    ],
)
def test_item_errors_use_exims_words(text: str, message: str) -> None:
    assert error(text) == message


def test_values_exim_would_crash_on_are_errors_here() -> None:
    # Exim 4.96 dies on these (division by zero, negative length); we refuse them.
    for text in ("${hash{-1}{abc}}", "${nhash{0}{abc}}", "${nhash{8}{0}{abc}}"):
        with pytest.raises(ExpansionError):
            x(text)


def test_hmac_and_tr() -> None:
    assert x("${hmac{md5}{key}{data}}") == "9d5c73ef85594d34ec4438b7c97e51d8"
    assert x("${hmac{sha1}{key}{data}}") == "104152c5bfdca07bc633eebd46199f0255c9f49d"
    assert x("${tr{aaa}{aa}{xy}}") == "yyy"  # the last occurrence of a character wins
    assert x("${tr{abcde}{abcde}{xy}}") == "xyyyy"


def test_arguments_are_c_strings() -> None:
    assert x(r"${length{3}{a\x00bcd}}") == "a"
    assert x(r"${listextract{1}{a\x00:b}}") == "a"


def test_taint_is_carried() -> None:
    ctx = ExpansionContext(variables={"t": Tainted("abcdef")})
    assert is_tainted(x("${length{2}{$t}}", ctx))
    assert is_tainted(x("${substr{1}{2}{$t}}", ctx))
    assert is_tainted(x("${tr{$t}{a}{b}}", ctx))
    assert is_tainted(x("${sg{$t}{b}{X}}", ctx))
    assert is_tainted(x("${listextract{1}{$t}}", ctx))
    assert not is_tainted(x("${nhash{8}{$t}}", ctx))
    assert not is_tainted(x("${hmac{md5}{k}{$t}}", ctx))


# -- sg and regex.py ----------------------------------------------------------------------------


def test_sg_works_on_bytes_with_perl_rules_for_empty_matches() -> None:
    assert x("${sg{abc}{x*}{-}}") == "-a-b-c-"
    assert x("${sg{aaa}{a|}{-}}") == "----"
    assert x("${sg{äbc}{.}{-}}") == "----"
    assert x(r"${sg{hello world}{\N(\w+) (\w+)\N}{\$2 \$1}}") == "world hello"


def test_sg_restores_the_numeric_variables() -> None:
    assert x(r"${if match{xyz}{(y)}{${sg{abc}{(b)}{[\$1]}}$1}}") == "a[b]cy"


def test_sg_refuses_to_expand_a_tainted_replacement() -> None:
    ctx = ExpansionContext(variables={"t": Tainted("X")})
    assert error("${sg{abc}{b}{$t}}", ctx) == "attempt to expand tainted string 'X'"


@pytest.mark.parametrize(
    "pattern, message",
    [
        ("(", 'regular expression error in "(": missing closing parenthesis at offset 1'),
        ("a[bc", 'regular expression error in "a[bc": missing terminating ] for character class at offset 4'),
        (
            "a**",
            'regular expression error in "a**": quantifier does not follow a repeatable item at offset 2',
        ),
    ],
)
def test_regex_errors_are_pcre2s(pattern: str, message: str) -> None:
    with pytest.raises(ExpansionError) as info:
        R.compile_pcre(pattern)
    assert info.value.message == message


def test_regex_match_api_and_flags() -> None:
    m = R.compile_pcre("(a)(x)?b").search("zzab")
    assert m is not None
    assert (m.group(0), m.groups(), m.captures()) == ("ab", ("a", None), ["ab", "a", ""])
    assert (m.start(), m.end()) == (2, 4)
    assert R.compile_pcre("AB", re.IGNORECASE).search("xab") is not None
    assert R.compile_pcre("^b", re.MULTILINE).search("a\nb") is not None
    assert R.compile_pcre("a.b", re.DOTALL).search("a\nb") is not None
    assert R.compile_pcre("^b").search("a\nb") is None
    assert R.compile_pcre("x") is R.compile_pcre("x")  # compiled once


@pytest.mark.skipif(not R.using_pcre2(), reason="libpcre2-8 is not installed")
def test_pcre_only_syntax_with_the_real_library() -> None:
    assert x(r"${sg{abc}{\N\Kb\N}{X}}") == "aXc"
    assert x(r"${sg{abc}{\N(?|(a)|(b))\N}{[\$1]}}") == "[a][b]c"
    assert x(r"${sg{abc}{\N[[:alpha:]]\N}{X}}") == "XXX"


def test_python_fallback_translates_what_it_can() -> None:
    code = R._PyReCode(r"\Qa.b\E(?<n>c)\z", 0)
    spans = code.match(b"xa.bc", 0, 0)
    assert spans == ((1, 5), (4, 5))
    assert R._PyReCode("[[:digit:]]+", 0).match(b"ab12", 0, 0) == ((2, 4),)
    with pytest.raises(ExpansionError) as info:
        R._PyReCode("a(b", 0)
    assert info.value.message == 'regular expression error in "a(b": missing closing parenthesis at offset 3'


# -- listextract, listquote ---------------------------------------------------------------------


def test_listextract() -> None:
    assert x("${listextract{-1}{a:b:c}}") == "c"
    assert x("${listextract{2}{<, a,b,c}}") == "b"
    assert x("${listextract{2}{a:b:c}{<$value>}{no}}") == "<b>"
    assert x("${listextract{9}{a:b:c}{<$value>}{no}}") == "no"
    assert error("${listextract{x}{a}}") == 'first argument of "listextract" must be numeric'
    assert error("${listextract{ }{a}}") == 'first argument of "listextract" must not be empty'


@needs_hooks
def test_listextract_yes_no_and_fail() -> None:
    with pytest.raises(ForcedFail) as info:
        x("${listextract{9}{a:b}{y}fail}")
    assert info.value.message == '"listextract" failed and "fail" requested'
    assert error("${listextract{1}}") == "missing '{' for arg 2 of listextract"


def test_listquote() -> None:
    assert x("${listquote{:}{a:b}}") == "a::b"
    assert x("${listquote{:}{}}") == " "
    assert x("${listquote{}{a:b}}") == "a:b"


# -- readfile -------------------------------------------------------------------------------------


def test_readfile_reads_bytes_as_fgets_does(tmp_path: Path) -> None:
    f = tmp_path / "data"
    f.write_bytes(b"one\ntwo\x00hidden\nthree")
    assert x(f"${{readfile{{{f}}}}}") == "one\ntwothree"
    assert x(f"${{readfile{{{f}}}{{|}}}}") == "one|two" + "three"
    assert x(f"${{readfile{{{tmp_path}}}}}") == ""  # a directory opens and reads as nothing


def test_readfile_errors(tmp_path: Path) -> None:
    assert error(f"${{readfile{{{tmp_path}/nonexist}}}}") == (
        f"failed to open {tmp_path}/nonexist: No such file or directory"
    )
    ctx = ExpansionContext(variables={"name": Tainted(str(tmp_path / "x"))})
    # Exim 4.96's open wrapper refuses a tainted name as if permission were denied.
    with pytest.raises(TaintError) as info:
        x("${readfile{$name}}", ctx)
    assert info.value.message == (
        f"failed to open {tmp_path}/x: Permission denied (euid={os.geteuid()} egid={os.getegid()})"
    )


def test_cat_file_line_pieces() -> None:
    long = b"x" * 1100 + b"\n"
    # fgets() hands out 1023 bytes, then the rest of the line: only the piece
    # with the newline gets the replacement.
    assert I.cat_file(long, "|") == "x" * 1100 + "|"
    assert I.cat_file(b"a\x00b\nc\n") == "ac\n"
    assert I.cat_file(b"a\nb", "<>") == "a<>b"


# -- run ---------------------------------------------------------------------------------------------


def test_split_command() -> None:
    assert I.split_command(r"""/bin/echo 'a  b' "c\tc" d"e f""") == ["/bin/echo", "a  b", "c\tc", 'd"e', "f"]
    assert I.split_command('"ab"cd') == ["ab", "cd"]
    assert I.split_command("  ") == []
    with pytest.raises(ExpansionError) as info:
        I.split_command("x " * 61)
    assert info.value.message.startswith('Too many arguments in command "x x')


def test_run_sets_value_and_runrc() -> None:
    ctx = ExpansionContext()
    assert x("${run{/bin/echo hi}}", ctx) == "hi\n"
    assert x("${run{/bin/sh -c 'exit 3'}{y}{n$runrc}}", ctx) == "n3"
    assert ctx.variables["runrc"] == "3"
    assert x("${run{/bin/sh -c 'echo out; echo err >&2; exit 2'}{y}{[$value]}}") == "[out\nerr\n]"
    assert x("${run{/nonexistent/program}{y}{n$runrc}}") == "n127"
    assert x("${run{/bin/sh -c umask}}") == "0077\n"


@needs_hooks
def test_run_splits_before_expanding() -> None:
    assert error("${run{/bin/echo ${lc:A B}}}") == (
        'Expansion of "${lc:A" from command "/bin/echo ${lc:A B}" in ${run} expansion failed: missing } at end of string'
    )
    assert error("${run{/bin/echo ${length{2}{a b c}}}}") == (
        'Expansion of "${length{2}{a" from command "/bin/echo ${length{2}{a b c}}" in ${run} expansion'
        " failed: missing } at end of string"
    )
    assert x("${run,preexpand{/bin/echo ${lc:A B}}}") == "a b\n"
    assert x("${run{/bin/echo $v}}", v="one two") == "one two\n"


@needs_hooks
def test_run_fail_keyword_and_skipped_run() -> None:
    with pytest.raises(ForcedFail):
        x("${run{/bin/false}{y}fail}")
    ctx = ExpansionContext()
    x("${run{/bin/false}}", ctx)
    assert ctx.variables["runrc"] == "1"
    # Exim pretends a skipped command succeeded.
    assert x("${if eq{1}{2}{${run{/bin/false}}}{$runrc}}", ctx) == "0"


@needs_hooks
def test_run_refuses_a_tainted_program_but_not_tainted_arguments() -> None:
    ctx = ExpansionContext(variables={"prog": Tainted("/bin/echo"), "arg": Tainted("hi")})
    with pytest.raises(TaintError) as info:
        x("${run{$prog x}}", ctx)
    assert info.value.message == "couldn't create child process: Operation not permitted"
    assert x("${run{/bin/echo $arg}}", ctx) == "hi\n"


def test_run_timeout_kills_the_process_group(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(I, "RUN_READ_TIMEOUT", 0.5)
    started = time.monotonic()
    assert error("${run{/bin/sh -c 'sleep 30 & sleep 30'}}") == "command timed out"
    assert time.monotonic() - started < 10


@needs_hooks
def test_run_killed_by_a_signal() -> None:
    assert error("${run,preexpand{/bin/sh -c 'kill -TERM \\$\\$'}}") == "command killed by signal 15"


def test_run_environment_follows_keep_and_add_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYXIM_KEEP_ME", "kept")
    monkeypatch.setenv("PYXIM_DROP_ME", "dropped")
    ctx = config_with(tmp_path, "keep_environment = ^PYXIM_KEEP\nadd_environment = EXTRA=1")
    out = x("${run{/usr/bin/env}}", ctx)
    assert "PYXIM_KEEP_ME=kept" in out
    assert "EXTRA=1" in out
    assert "PYXIM_DROP_ME" not in out
    assert x("${env{PYXIM_KEEP_ME}}", ctx) == "kept"
    assert x("${env{PYXIM_DROP_ME}{y}{n}}", ctx) == "n"
    assert x("${env{PYXIM_DROP_ME}}") == ""  # nothing is kept by default


# -- locked out (expand_forbid) ---------------------------------------------------------------------


@needs_hooks
@pytest.mark.parametrize(
    "text, name, message",
    [
        ("${readfile{/etc/hostname}}", "readfile", "file insertions are not permitted"),
        ("${readsocket{/x}{y}}", "readsocket", "socket insertions are not permitted"),
        ("${run{/bin/true}}", "run", "running a command is not permitted"),
        ("${perl{f}}", "perl", "Perl calls are not permitted"),
        ("${dlfunc{/x.so}{f}}", "dlfunc", "dynamically-loaded functions are not permitted"),
    ],
)
def test_forbidden_items_even_in_a_skipped_branch(text: str, name: str, message: str) -> None:
    ctx = ExpansionContext(forbidden=frozenset({name}))
    assert error(text, ctx) == message
    assert error("${if eq{a}{b}{" + text + "}}", ctx) == message


# -- readsocket --------------------------------------------------------------------------------------


class Server:
    """A loopback server answering "got:<request>" then "line2", on a Unix socket and on TCP."""

    def __init__(self, path: Path, tls: ssl.SSLContext | None = None) -> None:
        self.unix = socket.socket(socket.AF_UNIX)
        self.unix.bind(str(path))
        self.unix.listen(5)
        self.tcp = socket.socket()
        self.tcp.bind(("127.0.0.1", 0))
        self.tcp.listen(5)
        self.port = self.tcp.getsockname()[1]
        self.tls = tls
        self.requests: list[bytes] = []
        self.stopping = False
        self.threads = [
            threading.Thread(target=self.serve, args=(s,), daemon=True) for s in (self.unix, self.tcp)
        ]
        for t in self.threads:
            t.start()

    def serve(self, listener: socket.socket) -> None:
        while not self.stopping:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=self.answer, args=(conn,), daemon=True).start()

    def answer(self, conn: socket.socket) -> None:
        try:
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
            conn.settimeout(2)
            data = b""
            try:
                while not data.endswith(b"\n") and (chunk := conn.recv(4096)):
                    data += chunk
            except (TimeoutError, OSError):
                pass
            self.requests.append(data)
            if data.startswith(b"SLOW"):
                time.sleep(2)
            conn.sendall(b"got:" + data.rstrip(b"\n") + b"\nline2\n")
        except OSError:
            pass  # the client gave up first (timeout tests)
        finally:
            conn.close()

    def stop(self) -> None:
        self.stopping = True
        for listener in (self.unix, self.tcp):
            try:
                listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
            except OSError:
                pass
            listener.close()
        for t in self.threads:
            t.join(timeout=2)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    s = Server(tmp_path / "sock")
    yield s
    s.stop()


def test_readsocket_unix_and_inet(server: Server, tmp_path: Path) -> None:
    assert x(f"${{readsocket{{{tmp_path}/sock}}{{hello\n}}}}") == "got:hello\nline2\n"
    assert x(f"${{readsocket{{inet:127.0.0.1:{server.port}}}{{hi\n}}}}") == "got:hi\nline2\n"
    assert x(f"${{readsocket{{inet:[127.0.0.1]:{server.port}}}{{hi\n}}{{5s}}{{|}}}}") == "got:hi|line2|"
    assert x(f"${{readsocket{{inet:localhost:{server.port}}}{{x\n}}}}") == "got:x\nline2\n"
    assert not is_tainted(x(f"${{readsocket{{{tmp_path}/sock}}{{x\n}}}}"))  # Exim 4.96 does not taint it


def test_readsocket_empty_request_sends_nothing(server: Server, tmp_path: Path) -> None:
    assert x(f"${{readsocket{{{tmp_path}/sock}}{{}}}}") == "got:\nline2\n"
    assert server.requests[-1] == b""


def test_readsocket_timeout_and_failure_string(server: Server, tmp_path: Path) -> None:
    sock = tmp_path / "sock"
    assert error(f"${{readsocket{{{sock}}}{{SLOW\n}}{{1s}}}}") == "socket read timed out"
    assert x(f"${{readsocket{{{sock}}}{{SLOW\n}}{{1s}}{{}}{{timed out}}}}") == "timed out"


def test_readsocket_cache_option(server: Server, tmp_path: Path) -> None:
    ctx = ExpansionContext()
    text = f"${{readsocket{{{tmp_path}/sock}}{{same\n}}{{5s:cache=yes}}}}"
    assert x(text, ctx) == x(text, ctx) == "got:same\nline2\n"
    assert server.requests.count(b"same\n") == 1
    x(f"${{readsocket{{{tmp_path}/sock}}{{same\n}}}}", ctx)
    assert server.requests.count(b"same\n") == 2


def test_readsocket_tls(tmp_path: Path) -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(context)
    s = Server(tmp_path / "sock", tls=context)
    try:
        assert x(f"${{readsocket{{inet:127.0.0.1:{s.port}}}{{hi\n}}{{5s:tls=yes}}{{|}}}}") == "got:hi|line2|"
    finally:
        s.stop()


def test_readsocket_failures(tmp_path: Path) -> None:
    assert error(f"${{readsocket{{{tmp_path}/none}}{{x}}}}") == (
        f"failed to connect to socket {tmp_path}/none: No such file or directory"
    )
    assert error("${readsocket{inet:127.0.0.1}{x}}") == ""  # Exim loses this message
    assert x("${readsocket{inet:127.0.0.1:nosuchservice}{x}{1s}{}{no port}}") == "no port"
    ctx = ExpansionContext(variables={"s": Tainted("/x")})
    assert error("${readsocket{$s}{x}}", ctx) == "(null)"


def test_socket_options_as_exim_marshals_them() -> None:
    o = I._socket_options("", "2s:shutdown=no:cache=yes", "\n")
    assert (o.timeout, o.shutdown, o.cache, o.send, o.eol) == (2.0, False, True, False, "\n")
    # A comma inside one list item is doubled, so it never splits an option.
    o = I._socket_options("x", "2s,shutdown=no", None)
    assert (o.timeout, o.shutdown) == (None, True)
    assert I._socket_options("x", None, "|").eol is None  # eol needs the options argument


# -- prvs, prvscheck with a controlled clock -------------------------------------------------------


def at(when: float, **variables: str) -> ExpansionContext:
    return ExpansionContext(variables=dict(variables), now=lambda: when)


def test_prvs_uses_the_day_a_week_ahead() -> None:
    address = x("${prvs{user@example.com}{secret}}", at(NOW))
    day = "007"  # day 20007: last three digits
    assert address.startswith(f"prvs=0{day}") and address.endswith("=user@example.com")
    assert address[9:15] == I.prvs_hash("user@example.com", "secret", "0", day)


def test_prvscheck_accepts_until_the_day_it_expires() -> None:
    address = x("${prvs{user@example.com}{secret}{5}}", at(NOW))
    check = (
        "${prvscheck{" + address + "}{secret}{[$prvscheck_result][$prvscheck_keynum][$prvscheck_address]}}"
    )
    assert x(check, at(NOW)) == "[1][5][user@example.com]"
    assert x(check, at(NOW + 7 * DAY)) == "[1][5][user@example.com]"
    assert x(check, at(NOW + 8 * DAY)) == "[][5][user@example.com]"


def test_prvscheck_across_the_thousand_day_wrap() -> None:
    # Made on day 20995 ("995"), it expires on day 21002 ("002"): Exim's rule
    # counts "today" as 0 from day 993 on for such addresses.
    made = 20_995 * DAY
    address = x("${prvs{u@d.example}{k}}", at(made))
    assert address.startswith("prvs=0002")
    check = "${prvscheck{" + address + "}{k}{[$prvscheck_result]}}"
    assert x(check, at(made)) == "[1]"
    assert x(check, at(made + 7 * DAY)) == "[1]"
    assert x(check, at(made + 8 * DAY)) == "[]"


def test_prvscheck_results() -> None:
    assert x("${prvscheck{abc@def}{k}}") == ""
    good = x("${prvs{user@example.com}{secret}}", at(NOW))
    assert x("${prvscheck{" + good + "}{secret}}", at(NOW)) == "user@example.com"
    assert x("${prvscheck{" + good + "}{wrong}{r=$prvscheck_result}}", at(NOW)) == "r="
    # the hash is compared case-sensitively, as Exim's strcmp() does
    assert x("${prvscheck{" + good.upper() + "}{secret}{r=$prvscheck_result}}", at(NOW)) == "r="
    ctx = at(NOW)
    x("${prvscheck{" + good + "}{secret}}", ctx)
    assert ctx.variables["prvscheck_result"] == "1"  # left set, like Exim's global
    assert ctx.variables["prvscheck_address"] == ""


@needs_hooks
def test_prvscheck_argument_count_depends_on_the_address() -> None:
    assert (
        error("${prvscheck{prvs=0123abcdef=u@d}{k}{c}{d}}") == "Too many arguments for 'prvscheck' (max is 1)"
    )
    assert error("${prvscheck{abc@def}{k}{c}{d}}") == "Too many arguments for 'prvscheck' (max is 2)"


# -- perl, dlfunc, env, imapfolder -----------------------------------------------------------------------


def test_perl_and_dlfunc_say_they_are_missing(tmp_path: Path) -> None:
    assert error("${perl{f}}") == "A setting of perl_startup is needed when using the Perl interpreter"
    ctx = config_with(tmp_path, "perl_startup = do '/etc/exim.pl'")
    assert (
        error("${perl{f}}", ctx) == '"${perl" encountered, but this facility is not included in this binary'
    )
    assert (
        error("${dlfunc{/x.so}{f}}")
        == '"${dlfunc" encountered, but this facility is not included in this binary'
    )


@needs_hooks
def test_env_syntax() -> None:
    assert error("${env}") == ""
    with pytest.raises(ForcedFail):
        x("${env{NOSUCH}{y}fail}")


def test_imapfolder() -> None:
    assert x("${imapfolder{~peter/mail/台北/日本語}}") == "~peter.mail.&U,BTFw-.&ZeVnLIqe-"
    assert x("${imapfolder{a&b}}") == "a&-b"
    assert x("${imapfolder{a/b.c}{/}{.}}") == "a.b&AC4-c"
    assert error("${imapfolder{a.b}}") == "imapfolder: illegal character '.'"
    assert error("${imapfolder{x}{ab}}") == 'IMAP folder separator must be one character, found "ab"'
    assert error(r"${imapfolder{\xc3\x28}}") == (
        "imapfolder: iconv() failed to convert from UTF-8: Invalid or incomplete multibyte or wide character"
    )


def test_imapfolder_converts_from_headers_charset(tmp_path: Path) -> None:
    ctx = config_with(tmp_path, "headers_charset = ISO-8859-1")
    # In ISO-8859-1, the two UTF-8 bytes of "ä" are two characters.
    assert x("${imapfolder{ä}}", ctx) == "&AMMApA-"
    assert x("${imapfolder{ä}}") == "&AOQ-"

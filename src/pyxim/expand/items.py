"""Expansion items with a name and brace arguments: ${name{arg}{arg}…}.

The items whose syntax the parser knows itself (if, lookup, extract, map,
filter, reduce, sort, acl, authresults, certextract) live in parser.py and
evaluate.py. The ones here follow Exim 4.96 as Debian builds it (the oracle):

* Exim works on bytes: ${length}, ${substr}, ${tr}, ${sg} count and match the
  UTF-8 bytes of their arguments (see operators._b), and every argument is a C
  string that ends at a zero byte.
* Items with yes/no strings (env, listextract, run) and items with a syntax of
  their own (run's `,preexpand` option and raw command, prvscheck, readsocket's
  failure string) parse themselves through the registry's `parse` hook, with
  Exim's error texts; the `skip` hook does what Exim does in a branch that is
  not taken.
* ${run} splits its command at white space before expanding each argument
  (Exim 4.97's order, which Debian's 4.96 has); ${run,preexpand{…}} expands
  first. Commands run without a shell, with Exim's cleaned environment, umask
  077, stderr joined to stdout, as a process group that a timeout kills.
* Items that touch the outside world can be locked out of a context through
  ExpansionContext.forbidden (Exim's expand_forbid), each with Exim's message.
* Tainted file names, socket names and programs are refused the way Exim 4.96
  refuses them: its low-level wrappers fail the call, so the messages are
  those of a failed open/connect/exec.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import hmac as _hmac
import inspect
import os
import re
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pyxim.errors import ExpansionError, TaintError
from pyxim.expand import nodes as N
from pyxim.expand.arith import C_SPACE, strtol, wrap_int
from pyxim.expand.operators import numeric_hash, substring, text_hash
from pyxim.expand.regex import EXPAND_MAXN, PCRE2_ANCHORED, PCRE2_NOTEMPTY, compile_pcre
from pyxim.expand.registry import ItemFunc, item
from pyxim.expand.taint import carry, check_untainted, is_tainted, join
from pyxim.lists import iterate_list, match_pattern

if TYPE_CHECKING:  # pragma: no cover
    from pyxim.expand.evaluate import Evaluation

# How long ${run} waits for its command (Exim reads for 60 s, then gives the
# child 30 s to exit; one limit for both is close enough).
RUN_READ_TIMEOUT = 60.0
# transport_set_up_command() allows 60 arguments when no addresses are involved.
RUN_MAX_ARGS = 60
# ${readsocket}'s default timeout.
READSOCKET_TIMEOUT = 5

# Messages for items locked out by expand_forbid.
FORBIDDEN = {
    "readfile": "file insertions are not permitted",
    "readsocket": "socket insertions are not permitted",
    "run": "running a command is not permitted",
    "perl": "Perl calls are not permitted",
    "dlfunc": "dynamically-loaded functions are not permitted",
}


def _b(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _s(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def _c(text: str) -> str:
    """The C string Exim sees: everything up to the first zero byte."""
    k = text.find("\x00")
    return text if k < 0 else carry(text[:k], text)


def _check_forbidden(ev: Evaluation, name: str) -> None:
    if name in ev.ctx.forbidden:
        raise ExpansionError(FORBIDDEN[name])


def _main_option(ev: Evaluation, name: str) -> str:
    config = ev.ctx.config
    if config is None:
        return ""
    value = config.main.get(name)
    return "" if value is None else str(value)


# The registry's parse/skip hooks arrived after the first items; register with
# them when they are there so this module also loads on an older engine.
_HOOKS = {"parse", "skip"} <= set(inspect.signature(item).parameters)


def _register(
    name: str, min_args: int, max_args: int, *, lazy: bool = False, parse: Any = None, skip: Any = None
) -> Callable[[ItemFunc], ItemFunc]:
    if _HOOKS:
        return item(name, min_args, max_args, lazy=lazy, parse=parse, skip=skip)
    return item(name, min_args, max_args, lazy=lazy)


def _yesno(kind: str, args: list[Any], ndata: int) -> N.YesNo:
    """The yes/no part of an item: parsed by our hook, or (older engine) plain brace arguments."""
    rest = args[ndata:]
    if rest and isinstance(rest[0], N.YesNo):
        return rest[0]
    yes = rest[0] if rest else None
    no = rest[1] if len(rest) > 1 and isinstance(rest[1], N.Seq) else None
    fail = len(rest) > 1 and not isinstance(rest[1], N.Seq)
    return N.YesNo(kind, yes, no, fail)


def _skip_all(ev: Evaluation, args: list[Any]) -> None:
    for a in args:
        if isinstance(a, N.Seq):
            ev.skip_seq(a)
        elif isinstance(a, N.YesNo):
            ev.skip_yesno(a)


# -- numbers as Exim reads them ------------------------------------------------------


def _c_int(text: str) -> int | None:
    """(int)strtol(text, &end, 10) with nothing left over; None when something is left."""
    value, end, _ = strtol(text)
    if end != len(text):
        return None
    return wrap_int(value, 32)


# -- length, substr, hash, nhash -----------------------------------------------------


def _sized(name: str, args: list[str]) -> str:
    """${length}, ${substr}, ${hash}, ${nhash} with expanded arguments (Exim's shared code)."""
    args = [_c(a) for a in args]
    subject = args[-1]
    numbers: list[str | None] = [None, None]
    if len(args) == 3:
        numbers = [args[0], args[1]]
    elif name == "length":
        numbers = [None, args[0]]
    else:
        numbers = [args[0], None]
    values = [0, -1]
    for k, text in enumerate(numbers):
        if text is None:
            continue
        value = _c_int(text)
        if value is None or (k != 0 and value < 0):
            what = " positive" if k != 0 else ""
            raise ExpansionError(f'"{text}" is not a{what} number (in "{name}" expansion)')
        values[k] = value
    data = _b(subject)
    if name == "hash":
        if values[0] < 0:
            # Exim dies here (a negative length reaches string_catn).
            raise ExpansionError(f'"{numbers[0]}" is not a positive number (in "hash" expansion)')
        result: bytes | str = text_hash(data, values[0], values[1] if values[1] >= 0 else 26)
    elif name == "nhash":
        result = numeric_hash(data, values[0], values[1] if values[1] >= 0 else None)
    else:
        result = substring(data, values[0], None if numbers[1] is None else values[1])
    text = _s(result) if isinstance(result, bytes) else result
    return carry(text, subject) if name != "nhash" else text


@item("length", 2, 2)
def item_length(ev: Evaluation, args: list[str]) -> str:
    return _sized("length", args)


@item("substr", 2, 3)
def item_substr(ev: Evaluation, args: list[str]) -> str:
    return _sized("substr", args)


@item("hash", 2, 3)
def item_hash(ev: Evaluation, args: list[str]) -> str:
    return _sized("hash", args)


@item("nhash", 2, 3)
def item_nhash(ev: Evaluation, args: list[str]) -> str:
    return _sized("nhash", args)


# -- hmac, tr, sg ----------------------------------------------------------------------


@item("hmac", 3, 3)
def item_hmac(ev: Evaluation, args: list[str]) -> str:
    algo, key, data = (_c(a) for a in args)
    if algo not in ("md5", "sha1"):
        raise ExpansionError(f'hmac algorithm "{algo}" is not recognised')
    return _hmac.new(_b(key), _b(data), getattr(hashlib, algo)).hexdigest()


@item("tr", 3, 3)
def item_tr(ev: Evaluation, args: list[str]) -> str:
    subject, chars, repl = (_b(_c(a)) for a in args)
    if not repl:
        return _c(args[0])
    last = len(repl) - 1
    table = {}
    for i, ch in enumerate(chars):
        # Exim looks each byte up with strrchr(): the last occurrence wins, and
        # positions past the end of the replacements take the last replacement.
        table[ch] = repl[min(i, last)]
    return carry(_s(bytes(table.get(ch, ch) for ch in subject)), args[0])


@item("sg", 3, 3)
def item_sg(ev: Evaluation, args: list[str]) -> str:
    subject_text, pattern, replacement = (_c(a) for a in args)
    regex = compile_pcre(pattern)
    if is_tainted(replacement):
        # Exim expands the replacement again for every match, and refuses to
        # expand tainted text.
        raise ExpansionError(f"attempt to expand tainted string '{replacement}'")
    subject = _b(subject_text)
    out: list[str] = []
    saved = ev.captures
    # Exim's loop, Perl's /g rule for empty matches: after an empty match try a
    # non-empty one at the same place, then move on one byte.
    offset = extra = 0
    options = 0
    try:
        while True:
            m = regex.search_bytes(subject, offset + extra, options)
            if m is None:
                if options:
                    extra, options = 1, 0
                    continue
                out.append(_s(subject[offset:]))
                break
            start, end = m.spans[0]
            ev.set_captures([carry(c, subject_text) for c in m.captures(EXPAND_MAXN + 1)])
            out.append(_s(subject[offset:start]))
            out.append(ev.expand(replacement))
            offset, extra, options = end, 0, 0
            if start == end:
                if start == len(subject):
                    break
                options = PCRE2_NOTEMPTY | PCRE2_ANCHORED
    finally:
        ev.captures = saved
    # A match may end inside a UTF-8 sequence: rejoin the bytes before decoding.
    return carry(_s(_b(join(out))), subject_text)


# -- lists -------------------------------------------------------------------------------


def _parse_listextract(p: Any, i: int, spec: Any) -> tuple[N.Item, int]:
    args: list[Any] = []
    for k in (1, 2):
        i = p.skip_ws(i)
        if p.peek(i) != "{":
            raise p.curly(f"missing '{{' for arg {k} of listextract")
        arg, i = p.parse_brace_arg(i)
        args.append(arg)
    yesno, i = p.parse_yesno(i, "listextract")
    return N.Item(spec, (*args, yesno)), i


def _field_number(text: str, skipping: bool) -> int:
    """listextract's first argument: an optionally negative number (a C int)."""
    t = text.strip(C_SPACE)
    if not t and not skipping:
        raise ExpansionError('first argument of "listextract" must not be empty')
    sign = 1
    if t.startswith("-"):
        sign, t = -1, t[1:]
    x = 0
    for ch in t:
        if ch not in "0123456789":
            raise ExpansionError('first argument of "listextract" must be numeric')
        x = wrap_int(x * 10 + ord(ch) - 48, 32)
    return wrap_int(sign * x, 32)


def list_element(field: int, source: str) -> str | None:
    """Exim's expand_getlistele(): item `field` of a list (1-based; negative counts from the end)."""
    items = list(iterate_list(source))
    if field < 0:
        field += len(items) + 1
    if field <= 0 or field > len(items):
        return None
    return items[field - 1]


def _literal(seq: N.Seq) -> str | None:
    """The text of an argument that is plain text, else None."""
    if all(isinstance(part, N.Text) for part in seq.parts):
        return "".join(part.value for part in seq.parts)
    return None


def _skip_listextract(ev: Evaluation, args: list[Any]) -> None:
    # Exim checks the number even in a branch it skips (for literal text we can too).
    literal = _literal(args[0])
    if literal is not None:
        _field_number(_c(literal), skipping=True)
    ev.skip_seq(args[0])
    ev.skip_seq(args[1])
    ev.skip_yesno(_yesno("listextract", args, 2))


@_register("listextract", 2, 4, lazy=True, parse=_parse_listextract, skip=_skip_listextract)
def item_listextract(ev: Evaluation, args: list[Any]) -> str:
    field = _field_number(_c(ev.eval(args[0])), skipping=False)
    source = _c(ev.eval(args[1]))
    value = list_element(field, source)
    saved_value = ev.bound.get("value")
    saved = ev.captures
    try:
        return ev.yesno(_yesno("listextract", args, 2), value is not None, value, saved_value)
    finally:
        ev.captures = saved


@item("listquote", 2, 2)
def item_listquote(ev: Evaluation, args: list[str]) -> str:
    sep = _b(_c(args[0]))[:1]
    data = _b(_c(args[1]))
    if not data:
        return " "  # an empty item must not vanish from the list
    if not sep:
        return _c(args[1])
    return carry(_s(data.replace(sep, sep + sep)), args[1])


# -- files, commands and sockets -----------------------------------------------------------


def cat_file(data: bytes, eol: str | None = None) -> str:
    """Exim's cat_file(): read as fgets() does, in lines of at most 1023 bytes.

    Each piece ends at a zero byte (C strings), and when `eol` is given the
    newline ending a piece is replaced by it.
    """
    out = bytearray()
    eol_bytes = _b(eol) if eol is not None else None
    pos, n = 0, len(data)
    while pos < n:
        nl = data.find(b"\n", pos, pos + 1023)
        end = nl + 1 if nl >= 0 else min(pos + 1023, n)
        piece = data[pos:end]
        pos = end
        zero = piece.find(b"\x00")
        if zero >= 0:
            piece = piece[:zero]
        if eol_bytes is not None and piece.endswith(b"\n"):
            out += piece[:-1]
            out += eol_bytes
        else:
            out += piece
    return _s(bytes(out))


def _open_failed(path: str, err: int) -> ExpansionError:
    """Exim's string_open_failed() text."""
    text = f"failed to open {path}: {os.strerror(err)}"
    if err == errno.EACCES:
        text += f" (euid={os.geteuid()} egid={os.getegid()})"
    return ExpansionError(text)


def _skip_forbidden_then(name: str) -> Any:
    def skip(ev: Evaluation, args: list[Any]) -> None:
        _check_forbidden(ev, name)
        _skip_all(ev, args)

    return skip


@_register("readfile", 1, 2, skip=_skip_forbidden_then("readfile"))
def item_readfile(ev: Evaluation, args: list[str]) -> str:
    _check_forbidden(ev, "readfile")
    path = _c(args[0])
    eol = _c(args[1]) if len(args) > 1 else None
    # Exim's open wrapper refuses tainted names as if permission were denied.
    check_untainted(path, _open_failed("%s", errno.EACCES).message)
    try:
        with open(_b(path), "rb") as f:
            data = f.read()
    except IsADirectoryError:
        return ""  # fopen() succeeds on a directory; reading it gives nothing
    except OSError as exc:
        raise _open_failed(path, exc.errno or errno.EIO) from None
    return cat_file(data, eol)


def exim_environment(ev: Evaluation) -> dict[str, str]:
    """The environment Exim keeps (keep_environment) plus add_environment."""
    env: dict[str, str] = {}
    keep = _main_option(ev, "keep_environment")
    if keep.strip() == "*":
        env.update(os.environ)
    elif keep:
        patterns = list(iterate_list(keep))
        for name, value in os.environ.items():
            # An Exim list: the first item that matches decides; when none
            # does, a list ending in a negated item matches.
            keep_it = bool(patterns) and patterns[-1].startswith("!")
            for pattern in patterns:
                negated = pattern.startswith("!")
                if match_pattern(name, pattern[1:] if negated else pattern, caseless=False):
                    keep_it = not negated
                    break
            if keep_it:
                env[name] = value
    for entry in iterate_list(_main_option(ev, "add_environment")):
        name, eq, value = entry.partition("=")
        if eq:
            env[name] = value
    return env


def _parse_env(p: Any, i: int, spec: Any) -> tuple[N.Item, int]:
    i = p.skip_ws(i)
    if p.peek(i) != "{":
        raise ExpansionError("")  # Exim fails here without setting a message
    name, i = p.parse_brace_arg(i)
    yesno, i = p.parse_yesno(i, "env")
    return N.Item(spec, (name, yesno)), i


@_register("env", 1, 3, lazy=True, parse=_parse_env, skip=_skip_all)
def item_env(ev: Evaluation, args: list[Any]) -> str:
    name = _c(ev.eval(args[0]))
    value = exim_environment(ev).get(name)
    if value is not None:
        value = _c(value)
    saved_value = ev.bound.get("value")
    return ev.yesno(_yesno("env", args, 1), value is not None, value, saved_value)


# ${run} ---------------------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class RunCommand:
    """${run}'s command: parsed, and (unless ,preexpand) the raw text split before expansion."""

    command: N.Seq
    raw: str | None


def _parse_run(p: Any, i: int, spec: Any) -> tuple[N.Item, int]:
    preexpand = False
    while p.peek(i) == ",":
        i += 1
        if p.s.startswith("preexpand", i):
            preexpand = True
            i += len("preexpand")
            continue
        j = i + 1
        while j < p.n and p.s[j].isascii() and p.s[j].isalpha():
            j += 1
        raise ExpansionError(f"bad option '{p.s[i:j]}' for run")
    i = p.skip_ws(i)
    if p.peek(i) != "{":
        raise p.curly("missing '{' for command arg of run")
    start = i + 1
    if preexpand:
        command, i = p.parse_brace_arg(i)
    else:
        # Exim only scans the raw command to find its end, ignoring what it
        # finds wrong there; what it cannot get past is a bracket problem.
        try:
            command, i = p.parse_brace_arg(i)
        except ExpansionError:
            raise p.curly("missing '}' closing command arg of run") from None
    raw = None if preexpand else p.s[start : i - 1]
    yesno, i = p.parse_yesno(i, "run")
    return N.Item(spec, (RunCommand(command, raw), yesno)), i


def _run_parts(args: list[Any]) -> tuple[RunCommand, N.YesNo]:
    if isinstance(args[0], RunCommand):
        return args[0], _yesno("run", args, 1)
    return RunCommand(args[0], None), _yesno("run", args, 1)  # older engine: expanded first


def split_command(command: str, etext: str = "${run} expansion") -> list[str]:
    """transport_set_up_command()'s split: white space separates, '…' is verbatim, "…" takes escapes."""
    from pyxim.expand.parser import interpret_escape

    argv: list[str] = []
    s, n = command, len(command)
    i = 0
    while i < n and s[i] in C_SPACE:
        i += 1
    while i < n:
        if len(argv) >= RUN_MAX_ARGS:
            raise ExpansionError(f'Too many arguments in command "{command}" in {etext}')
        if s[i] == "'":
            j = s.find("'", i + 1)
            j = n if j < 0 else j
            argv.append(carry(s[i + 1 : j], command))
            i = min(j + 1, n)
        elif s[i] == '"':
            buf: list[str] = []
            i += 1
            while i < n and s[i] != '"':
                if s[i] == "\\" and i + 1 < n:
                    ch, i = interpret_escape(s, i)
                    buf.append(ch)
                    continue
                buf.append(s[i])
                i += 1
            if i < n:
                i += 1
            argv.append(carry(_s(_b("".join(buf))), command))
        else:
            j = i
            while j < n and s[j] not in C_SPACE:
                j += 1
            argv.append(carry(s[i:j], command))
            i = j
        while i < n and s[i] in C_SPACE:
            i += 1
    return argv


def run_command(ev: Evaluation, argv: list[str]) -> tuple[str, int]:
    """Run argv as Exim's child_open() does; return (output, exit status)."""
    if argv and is_tainted(argv[0]):
        # Exim's exec wrapper refuses a tainted program before forking.
        raise TaintError("couldn't create child process: Operation not permitted")
    if not argv:
        return "", 127  # execv() of nothing fails in the child
    program = argv[0] if "/" in argv[0] else "./" + argv[0]  # execv() does no PATH search
    env = {_b(k): _b(v) for k, v in exim_environment(ev).items()}
    try:
        proc = subprocess.Popen(
            [_b(a) for a in argv],
            executable=_b(program),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            umask=0o077,
            process_group=0,
            close_fds=True,
        )
    except OSError:
        return "", 127  # the child could not exec: Exim's child exits with 127
    try:
        data, _ = proc.communicate(timeout=RUN_READ_TIMEOUT)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        proc.communicate()
        raise ExpansionError("command timed out") from None
    if proc.returncode < 0:
        raise ExpansionError(f"command killed by signal {-proc.returncode}")
    return cat_file(data), proc.returncode


def _skip_run(ev: Evaluation, args: list[Any]) -> None:
    _check_forbidden(ev, "run")
    cmd, yesno = _run_parts(args)
    if cmd.raw is None:
        ev.skip_seq(cmd.command)
    ev.ctx.variables["runrc"] = "0"  # Exim pretends a skipped command worked
    ev.skip_yesno(yesno)


@_register("run", 1, 3, lazy=True, parse=_parse_run, skip=_skip_run)
def item_run(ev: Evaluation, args: list[Any]) -> str:
    _check_forbidden(ev, "run")
    cmd, yesno = _run_parts(args)
    if cmd.raw is None:
        text = _c(ev.eval(cmd.command))
        argv = split_command(text)
    else:
        argv = []
        for arg in split_command(cmd.raw):
            try:
                argv.append(_c(ev.expand(arg)))
            except ExpansionError as exc:
                raise ExpansionError(
                    f'Expansion of "{arg}" from command "{cmd.raw}" in ${{run}} expansion failed: {exc.message}'
                ) from None
    output, runrc = run_command(ev, argv)
    ev.ctx.variables["runrc"] = str(runrc)
    saved = ev.captures
    try:
        return ev.yesno(yesno, runrc == 0, output, output)
    finally:
        ev.captures = saved


# ${readsocket} ---------------------------------------------------------------------------


# Exim refuses a tainted socket name and then prints a null message.
_TAINTED_SOCKET = "(null)"


class _SockFail(Exception):
    """A socket failure: the failure string is used when there is one (Exim's SOCK_FAIL)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _parse_readsocket(p: Any, i: int, spec: Any) -> tuple[N.Item, int]:
    args, i = p.read_subs(i, 4, 2, "readsocket", check_end=False)
    if p.peek(i) == "{":
        fail, i = p.parse_brace_arg(i)
        args.append(fail)
        i = p.skip_ws(i)
    if p.peek(i) != "}":
        raise p.curly("missing '}' closing readsocket")
    return N.Item(spec, tuple(args)), i + 1


def _append_listele(items: list[str], sep: str) -> str:
    """string_append_listele(): join, doubling the separator inside items."""
    return sep.join(x.replace(sep, sep + sep) for x in items)


_PRINTING_ESCAPES = {0x0A: "\\n", 0x0D: "\\r", 0x08: "\\b", 0x0B: "\\v", 0x0C: "\\f", 0x09: "\\t"}


def _printing_tab_space(text: str) -> str:
    """string_printing2(SP_TAB|SP_SPACE): what is not printable ASCII, tabs and spaces escaped."""
    out: list[str] = []
    for c in _b(text):
        if 0x21 <= c <= 0x7E:
            out.append(chr(c))
        else:
            out.append(_PRINTING_ESCAPES.get(c) or f"\\{c:03o}")
    return "".join(out)


def _unprinting(text: str) -> str:
    """string_unprinting(): backslash escapes interpreted."""
    from pyxim.expand.parser import interpret_escape

    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            ch, i = interpret_escape(text, i)
            out.append(ch)
        else:
            out.append(text[i])
            i += 1
    return _s(_b("".join(out)))  # escaped bytes that make UTF-8 become characters again


@dataclass(slots=True)
class _SockOptions:
    timeout: float | None = READSOCKET_TIMEOUT
    shutdown: bool = True
    tls: bool = False
    eol: str | None = None
    cache: bool = False
    send: bool = True


def _socket_options(request: str, options: str | None, eol: str | None) -> _SockOptions:
    """Marshal the options as Exim's readsocket does, then read them as its readsock lookup does."""
    from pyxim.expand.operators import readconf_time

    items: list[str] = []
    if not request:
        items.append("send=no")
    if options is not None:
        given = list(iterate_list(options))
        if given:
            items.append("timeout=" + given[0])
            items.extend(given[1:])
        if eol:
            # escaped so that it survives the list, and unescaped again below
            items.append("eol=" + _printing_tab_space(eol))
    opts = _SockOptions()
    for s in iterate_list(_append_listele(items, ","), ","):
        if s.startswith("timeout="):
            t = readconf_time(s[8:])
            opts.timeout = float(t) if t is not None and t > 0 else None  # 0 or bad: no alarm
        elif s.startswith("shutdown="):
            opts.shutdown = s[9:] != "no"
        elif s.startswith("tls=") and s[4:] != "no":
            opts.tls = True
        elif s.startswith("eol="):
            opts.eol = _unprinting(s[4:])
        elif s == "cache=yes":
            opts.cache = True
        elif s == "send=no":
            opts.send = False
    return opts


def _c_port(text: str) -> int | None:
    """strtol(text, &end, 0) that must use the whole text (decimal, 0x… hex, 0… octal)."""
    if text[:2].lower() == "0x" and len(text) > 2:
        digits, base = text[2:], 16
    elif text.startswith("0") and len(text) > 1:
        digits, base = text[1:], 8
    else:
        digits, base = text, 10
    try:
        return int(digits, base) if digits.isalnum() and digits.isascii() else None
    except ValueError:
        return None


def _is_ip(text: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _connect_inet(host: str, port: int, timeout: float | None) -> socket.socket:
    """ip_connectedsocket(): every address of the host in turn."""
    if host.startswith("[") and host.endswith("]") and len(host) > 1:
        inner = host[1:-1]
        if not _is_ip(inner):
            raise _SockFail(f'malformed IP address "{host}"')
        addresses = [inner]
    elif _is_ip(host):
        addresses = [host]
    else:
        try:
            infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            infos = []
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        if not addresses:
            raise _SockFail(f"no IP address found for host {host}")
    err = errno.ECONNREFUSED
    for address in addresses:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect((address, port & 0xFFFF))
            return sock
        except TimeoutError:
            err = errno.ETIMEDOUT
        except OSError as exc:
            err = exc.errno or errno.ECONNREFUSED
        sock.close()
    raise _SockFail(f"failed to connect to any address for {host}: {os.strerror(err)}")


def _connect(spec: str, timeout: float | None) -> socket.socket:
    if spec.startswith("inet:"):
        server = spec[5:]
        k = server.rfind(":")
        if k < 0:
            raise _SockFail("")  # Exim loses its message on the way ("missing port")
        host, port_name = server[:k], server[k + 1 :]
        if port_name[:1].isdigit():
            port = _c_port(port_name)
            if port is None:
                raise _SockFail("")  # "invalid port number", lost in the same way
        else:
            try:
                port = socket.getservbyname(port_name, "tcp")
            except OSError:
                raise _SockFail("") from None  # "unknown port", lost too
        return _connect_inet(host, port, timeout)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    # Exim copies at most 107 bytes of the name and always passes the whole
    # sockaddr_un, so an empty name is the abstract address of 108 zero bytes.
    path = _b(spec)[:107]
    try:
        sock.connect(path if path else b"\x00" * 108)
    except TimeoutError:
        sock.close()
        raise _SockFail("socket connect timed out") from None
    except OSError as exc:
        sock.close()
        raise _SockFail(
            f"failed to connect to socket {spec}: {os.strerror(exc.errno or errno.EIO)}"
        ) from None
    return sock


def _read_all(sock: Any, timeout: float | None) -> bytes:
    deadline = None if timeout is None else time.monotonic() + timeout
    chunks: list[bytes] = []
    while True:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise _SockFail("socket read timed out")
            sock.settimeout(left)
        try:
            data = sock.recv(65536)
        except TimeoutError:
            raise _SockFail("socket read timed out") from None
        except (ssl.SSLError, OSError):
            break  # Exim treats read errors as the end of the data
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


def read_socket(ev: Evaluation, spec: str, request: str, options: str | None, eol: str | None) -> str:
    """The work of ${readsocket}; raises _SockFail for what a failure string may replace."""
    if is_tainted(spec):
        raise _SockFail(_TAINTED_SOCKET)
    opts = _socket_options(request, options, eol)
    cache_key = ("readsocket", spec, request, options, eol)
    if opts.cache and cache_key in ev.ctx.lookup_cache:
        return ev.ctx.lookup_cache[cache_key]
    sock: Any = _connect(spec, opts.timeout)
    try:
        if opts.tls:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            try:
                sock = context.wrap_socket(sock)
            except (ssl.SSLError, OSError) as exc:
                raise _SockFail(f"TLS connect failed: {exc}") from None
        if opts.send and request:
            try:
                sock.sendall(_b(request))
            except OSError as exc:
                raise _SockFail(
                    f"request write to socket failed: {os.strerror(exc.errno or errno.EIO)}"
                ) from None
        if not opts.tls and opts.shutdown:
            try:
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        data = _read_all(sock, opts.timeout)
    finally:
        sock.close()
    if opts.tls:
        # Exim's TLS reader replaces every newline and keeps zero bytes.
        text = _s(data.replace(b"\n", _b(opts.eol)) if opts.eol is not None else data)
    else:
        text = cat_file(data, opts.eol)
    if opts.cache:
        ev.ctx.lookup_cache[cache_key] = text
    return text


def _skip_readsocket(ev: Evaluation, args: list[Any]) -> None:
    _check_forbidden(ev, "readsocket")
    _skip_all(ev, args)


@_register("readsocket", 2, 5, lazy=True, parse=_parse_readsocket, skip=_skip_readsocket)
def item_readsocket(ev: Evaluation, args: list[Any]) -> str:
    _check_forbidden(ev, "readsocket")
    values = [_c(ev.eval(a)) for a in args[:4]]
    spec, request = values[0], values[1]
    options = values[2] if len(values) > 2 else None
    eol = values[3] if len(values) > 3 else None
    try:
        result = read_socket(ev, spec, request, options, eol)
    except _SockFail as exc:
        if len(args) < 5:
            raise (TaintError if exc.message == _TAINTED_SOCKET else ExpansionError)(exc.message) from None
        return ev.eval(args[4])
    if len(args) > 4:
        ev.skip(args[4])
    return result


# -- BATV: prvs and prvscheck ----------------------------------------------------------------


def prvs_daystamp(now: float, offset_days: int = 0) -> str:
    """The last three digits of the day number (days since 1970), `offset_days` ahead."""
    days = str(int(now + offset_days * 86400) // 86400)
    return days[-3:] if len(days) >= 3 else "100"


def prvs_hash(address: str, key: str, keynum: str, daystamp: str) -> str | None:
    """The six hex digits of a prvs address; None for a key longer than 64 bytes."""
    key_bytes = _b(key)
    if len(key_bytes) > 64:
        return None
    source = _b(keynum[:1] + daystamp[:3] + address)
    return _hmac.new(key_bytes, source, hashlib.sha1).digest()[:3].hex()


@item("prvs", 2, 3)
def item_prvs(ev: Evaluation, args: list[str]) -> str:
    address, key = _c(args[0]), _c(args[1])
    keynum = _c(args[2]) if len(args) > 2 else None
    at = address.rfind("@")
    if at <= 0 or at == len(address) - 1:
        raise ExpansionError("prvs first argument must be a qualified email address")
    if keynum is not None and (len(keynum) != 1 or keynum not in "0123456789"):
        raise ExpansionError("prvs third argument must be a single digit")
    keynum = keynum or "0"
    day = prvs_daystamp(ev.ctx.now(), 7)
    digest = prvs_hash(address, key, keynum, day)
    if digest is None:
        raise ExpansionError("prvs hmac-sha1 conversion failed")
    return carry(f"prvs={keynum}{day}{digest}={address}", address)


@dataclass(slots=True, frozen=True)
class PrvscheckArgs:
    address: N.Seq
    key: N.Seq
    result: N.Seq | None


_PRVS_PATTERN = r"^prvs\=([0-9])([0-9]{3})([A-F0-9]{6})\=(.+)\@(.+)$"


def _parse_prvscheck(p: Any, i: int, spec: Any) -> tuple[N.Item, int]:
    first, i = p.read_subs(i, 1, 1, "prvscheck", check_end=False)
    key, i = p.read_subs(i, 1, 1, "prvscheck", check_end=False)
    third, i = p.read_subs(i, 1, 0, "prvscheck", check_end=False)
    ch = p.peek(i)
    if ch not in ("}", "{"):
        raise p.curly("missing '}' after 'prvscheck'")
    if ch == "{":
        # Too many: how many Exim allows depends on whether the address is a
        # prvs address, which it finds out while expanding; literal text we
        # can check now, anything else counts as not one.
        text = _literal(first[0])
        matches = text is not None and compile_pcre(_PRVS_PATTERN, re.IGNORECASE).search(text) is not None
        raise ExpansionError(f"Too many arguments for 'prvscheck' (max is {1 if matches else 2})")
    args = PrvscheckArgs(first[0], key[0], third[0] if third else None)
    return N.Item(spec, (args,)), i + 1


def _prvscheck_parts(args: list[Any]) -> PrvscheckArgs:
    if isinstance(args[0], PrvscheckArgs):
        return args[0]
    return PrvscheckArgs(args[0], args[1], args[2] if len(args) > 2 else None)


def _skip_prvscheck(ev: Evaluation, args: list[Any]) -> None:
    for name in ("prvscheck_result", "prvscheck_address", "prvscheck_keynum"):
        ev.ctx.variables[name] = ""  # Exim resets them before it looks at the arguments
    a = _prvscheck_parts(args)
    for node in (a.address, a.key, a.result):
        if node is not None:
            ev.skip_seq(node)


@_register("prvscheck", 2, 3, lazy=True, parse=_parse_prvscheck, skip=_skip_prvscheck)
def item_prvscheck(ev: Evaluation, args: list[Any]) -> str:
    a = _prvscheck_parts(args)
    variables = ev.ctx.variables
    for name in ("prvscheck_result", "prvscheck_address", "prvscheck_keynum"):
        variables[name] = ""
    address = _c(ev.eval(a.address))
    m = compile_pcre(_PRVS_PATTERN, re.IGNORECASE).search(address)
    if m is None:
        # Not a prvs address: the other arguments are expanded, the result is empty.
        ev.eval(a.key)
        if a.result is not None:
            ev.eval(a.result)
        return ""
    # Exim leaves $1…$5 set to the parts of the address.
    ev.set_captures([carry(c, address) for c in m.captures()])
    keynum, daystamp, digest, local, domain = (m.group(n) or "" for n in range(1, 6))
    plain = carry(f"{local}@{domain}", address)
    variables["prvscheck_address"] = plain
    variables["prvscheck_keynum"] = keynum
    try:
        key = _c(ev.eval(a.key))
        expected = prvs_hash(plain, key, keynum, daystamp)
        if expected is None:
            raise ExpansionError("hmac-sha1 conversion failed")
        if expected == digest:  # case matters: Exim compares with strcmp()
            today = int(prvs_daystamp(ev.ctx.now()))
            expires = int(daystamp)
            if expires < 7 and today >= 993:
                today = 0  # the day number has wrapped round since the address was made
            if expires >= today:
                variables["prvscheck_result"] = "1"
        result = _c(ev.eval(a.result)) if a.result is not None else ""
        return result or plain
    finally:
        variables["prvscheck_address"] = ""
        variables["prvscheck_keynum"] = ""


# -- perl and dlfunc ---------------------------------------------------------------------------


@_register("perl", 1, 9, skip=_skip_forbidden_then("perl"))
def item_perl(ev: Evaluation, args: list[str]) -> str:
    _check_forbidden(ev, "perl")
    if not _main_option(ev, "perl_startup"):
        # What Exim says in the same situation, Perl or not.
        raise ExpansionError("A setting of perl_startup is needed when using the Perl interpreter")
    raise ExpansionError('"${perl" encountered, but this facility is not included in this binary')


@_register("dlfunc", 2, 10, skip=_skip_forbidden_then("dlfunc"))
def item_dlfunc(ev: Evaluation, args: list[str]) -> str:
    _check_forbidden(ev, "dlfunc")
    # Exim's dlfunc modules are written against Exim's own C interface.
    raise ExpansionError('"${dlfunc" encountered, but this facility is not included in this binary')


# -- imapfolder ----------------------------------------------------------------------------------

_MB64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,"


def _iconv_error(charset: str, exc: UnicodeDecodeError) -> ExpansionError:
    reason = "Invalid argument" if "end of data" in str(exc.reason) else os.strerror(errno.EILSEQ)
    return ExpansionError(f"imapfolder: iconv() failed to convert from {charset}: {reason}")


def imap_utf7_encode(name: str, charset: str, sep: int, specials: bytes) -> str:
    """Exim's imap_utf7_encode(): a mailbox name in IMAP's modified UTF-7 (RFC 3501 5.1.3).

    `sep` (the hierarchy separator byte) becomes ".", "." and "/" that are not the
    separator are refused unless listed in `specials`, which are encoded.
    """
    raw = _b(name)
    start = 0
    for k, ch in enumerate(raw):
        if k == 0 and ch == sep:
            start = 1  # a leading separator is dropped
        if ch >= 0x7F or ch < 0x20 or ch in b"./&" or ch == sep or ch in specials:
            break
    else:
        return _s(raw[start:])
    try:
        units = raw[start:].decode(charset)
    except LookupError:
        raise ExpansionError(
            f'imapfolder: iconv_open("UTF-16BE", "{charset}") failed: Invalid argument (maybe unsupported conversion)'
        ) from None
    except UnicodeDecodeError as exc:
        raise _iconv_error(charset, exc) from None
    utf16 = units.encode("utf-16-be", "surrogatepass")
    out = bytearray()
    pending = bytearray()
    lastsep = False

    def flush() -> None:
        if pending:
            out.extend(b"&" + base64.b64encode(bytes(pending), _MB64[62:]).rstrip(b"=") + b"-")
            pending.clear()

    for k in range(0, len(utf16), 2):
        hi, lo = utf16[k], utf16[k + 1]
        if hi != 0 or lo >= 0x7F or lo < 0x20 or (lo in specials and lo != sep):
            pending.extend(utf16[k : k + 2])
            lastsep = False
        elif lo not in b"./" or lo == sep:
            flush()
            if lo == sep:
                if not lastsep:
                    out.extend(b".")
                    lastsep = True
            else:
                out.append(lo)
                if lo == 0x26:  # "&"
                    out.extend(b"-")
                lastsep = False
        else:
            raise ExpansionError(f"imapfolder: illegal character '{chr(lo)}'")
    flush()
    if out.endswith(b"."):
        del out[-1]
    return _s(bytes(out))


@item("imapfolder", 1, 3)
def item_imapfolder(ev: Evaluation, args: list[str]) -> str:
    name = _c(args[0])
    sep = _c(args[1]) if len(args) > 1 else "/"
    specials = _c(args[2]) if len(args) > 2 else ""
    if len(_b(sep)) != 1:
        raise ExpansionError(f'IMAP folder separator must be one character, found "{sep}"')
    charset = _main_option(ev, "headers_charset") or "UTF-8"
    return carry(imap_utf7_encode(name, charset, _b(sep)[0], _b(specials)), name)


__all__ = [
    "FORBIDDEN",
    "cat_file",
    "exim_environment",
    "imap_utf7_encode",
    "list_element",
    "prvs_daystamp",
    "prvs_hash",
    "read_socket",
    "run_command",
    "split_command",
]

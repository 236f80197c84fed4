"""Exim filter files (`# Exim filter`): the language of Exim's "interfaces to mail filtering".

A filter is read whole first (so a syntax error anywhere stops it before anything is done, as
in Exim) into a small command tree, then obeyed. Obeying it sets up deliveries without making
them: the result is a list of generated items (addresses, files, pipes, autoreplies) for the
redirect router, plus whether any was significant. In test mode (-bf/-bF) each action is
described on the output instead, in Exim's words.

Commands: add, deliver (errors_to), save (mode), pipe, mail and vacation (all their options),
logfile, logwrite, finish, testprint, fail, freeze, headers (charset; add/remove in system
filters), if/elif/else/endif, with the seen/unseen/noerror prefixes. Conditions: is, contains,
matches, begins, ends (lower case: caseless; upper case: caseful), their negations, is above /
is below, and, or, not, parentheses, delivered, error_message, first_delivery,
manually_thawed, personal (alias …), foranyaddress.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pyxim.errors import ExpansionError
from pyxim.expand import ExpansionContext
from pyxim.expand.taint import carry, is_tainted

# the string-testing conditions and the words of their "does not" forms
_TESTS = {
    "begins": ("begins", False), "BEGINS": ("begins", True), "ends": ("ends", False), "ENDS": ("ends", True),
    "matches": ("matches", False), "MATCHES": ("matches", True),
    "contains": ("contains", False), "CONTAINS": ("contains", True),
}
_DOES_NOT = {
    "begin": ("begins", False), "BEGIN": ("begins", True), "end": ("ends", False), "END": ("ends", True),
    "match": ("matches", False), "MATCH": ("matches", True),
    "contain": ("contains", False), "CONTAIN": ("contains", True),
}
# mail/vacation options, in the order -bf prints them (the label is right-aligned to 7 places)
_MAIL_OPTIONS = ("to", "cc", "bcc", "from", "reply_to", "subject", "extra_headers", "text", "file", "log",
                 "once", "once_repeat")
_VACATION_DEFAULTS = {"subject": "On vacation", "file": ".vacation.msg", "log": ".vacation.log",
                      "once": ".vacation", "once_repeat": "7d"}
_HEADER_FIELDS = ("to", "cc", "bcc", "from", "reply_to", "subject")
_PATH_FIELDS = ("file", "log", "once")


class FilterError(Exception):
    """A filter that cannot be read or run: "error in filter file: …" (routing), "Filter error: …" (-bf)."""


# -- options and results ---------------------------------------------------------------


@dataclass
class FilterOptions:
    """What the caller allows and wants (Exim's RDO_* bits and its filter test mode)."""

    system: bool = False  # a system filter: fail, freeze, headers add/remove, $sn0-$sn9 set at the end
    allow_fail: bool = False
    allow_freeze: bool = False
    allow_defer: bool = False
    forbid_logwrite: bool = False
    real_log: bool = False  # logwrite really writes (a delivery, not -bt/-bv)
    test_output: Callable[[str], None] | None = None  # -bf/-bF: each action described here
    qualify_domain: str = ""  # for unqualified deliver addresses
    caller_address: str = ""  # what errors_to may name in a user filter
    log_mode: int = 0o600
    # a system filter run as system_filter_user: the log files it makes belong to that user
    log_owner: tuple[int | None, int | None] | None = None


@dataclass
class Reply:
    """A mail or vacation command: the message the autoreply transport will build."""

    fields: dict[str, str]
    expand_file: bool = False
    return_message: bool = False
    vacation: bool = False


@dataclass
class Generated:
    """One delivery the filter set up."""

    kind: str  # "address", "file", "pipe", "reply"
    text: str  # the address, the file name, the command (no "|"), the reply's To:
    unseen: bool = False
    noerror: bool = False
    errors_to: str | None = None
    mode: int | None = None  # save's file mode
    reply: Reply | None = None


@dataclass
class FilterResult:
    items: list[Generated] = field(default_factory=list)
    significant: bool = False
    fail: str | None = None  # the text of fail (system filters, allow_fail)
    freeze: str | None = None
    defer: str | None = None  # the text of defer (system filters)
    headers_added: list[str] = field(default_factory=list)
    headers_removed: list[str] = field(default_factory=list)
    n_vars: list[int] = field(default_factory=lambda: [0] * 10)


# -- reading the filter -------------------------------------------------------------------


class _Reader:
    """Exim's filter lexer: words end at white space (and at parentheses inside conditions),
    quoted strings take C-like escapes, and "#" after a separator starts a comment."""

    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0
        self.line = 1

    def near(self, message: str) -> FilterError:
        return FilterError(f"{message} near line {self.line} of filter file")

    def sig(self) -> str:
        """Skip white space and comments; the next significant character ("" at the end)."""
        s, n = self.s, len(self.s)
        while self.i < n:
            c = s[self.i]
            if c == "\n":
                self.line += 1
            elif c == "#":
                while self.i < n and s[self.i] != "\n":
                    self.i += 1
                continue
            elif not c.isspace():
                return c
            self.i += 1
        return ""

    def word(self, bracket: bool = False) -> str:
        self.sig()
        start = self.i
        s, n = self.s, len(self.s)
        while self.i < n and not s[self.i].isspace() and not (bracket and s[self.i] in "()"):
            self.i += 1
        word = s[start : self.i]
        self.sig()
        return word

    def item(self, bracket: bool = False) -> str:
        if self.sig() != '"':
            return self.word(bracket)
        self.i += 1
        s, n = self.s, len(self.s)
        out: list[str] = []
        first_line = self.line
        while True:
            if self.i >= n:
                raise FilterError(f"quote missing at end of string in line {first_line}")
            c = s[self.i]
            self.i += 1
            if c == '"':
                self.sig()
                return "".join(out)
            if c == "\n":
                self.line += 1
            if c != "\\" or self.i >= n:
                out.append(c)
                continue
            c = s[self.i]
            self.i += 1
            if c == "\n":  # a continuation: the next line's leading white space goes
                self.line += 1
                while self.i < n and s[self.i] in " \t":
                    self.i += 1
            elif c in "bfnrtv":
                out.append({"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}[c])
            elif c in "01234567":
                digits = c
                while len(digits) < 3 and self.i < n and s[self.i] in "01234567":
                    digits += s[self.i]
                    self.i += 1
                out.append(chr(int(digits, 8) & 0xFF))
            elif c == "x":
                digits = ""
                while len(digits) < 2 and self.i < n and s[self.i] in "0123456789abcdefABCDEF":
                    digits += s[self.i]
                    self.i += 1
                out.append(chr(int(digits, 16)) if digits else "x")
            else:
                out.append(c)


# Command tree: tuples keep it small. Each command is (name, line, data…).
Cmd = tuple[Any, ...]


def parse(text: str, options: FilterOptions, first_line: bool = True) -> list[Cmd]:
    """The whole filter (its "# Exim filter" line included unless not `first_line`) as a command list."""
    r = _Reader(text)
    if first_line:
        # the first line names the kind of filter; the rest of it is a comment
        r.i = text.find("\n") if "\n" in text else len(text)
    commands, stop = _commands(r, options, inside_if=False)
    return commands


def _commands(r: _Reader, options: FilterOptions, inside_if: bool) -> tuple[list[Cmd], str]:
    out: list[Cmd] = []
    while True:
        word = r.word()
        if word == "":
            if inside_if:
                raise FilterError('"endif" missing at end of filter file')
            return out, ""
        if word in ("elif", "else", "endif"):
            if not inside_if:
                raise r.near(f'unexpected "{word}" command')
            return out, word
        out.append(_command(r, word, options, inside_if))


def _argument(r: _Reader, name: str) -> str:
    value = r.item()
    if value == "":
        raise r.near(f'"{name}" requires an argument')
    return value


def _peek_word(r: _Reader) -> tuple[str, tuple[int, int]]:
    saved = (r.i, r.line)
    return r.word(), saved


def _command(r: _Reader, word: str, options: FilterOptions, inside_if: bool) -> Cmd:
    seen: bool | None = None
    noerror = False
    prefix_line = r.line
    while word in ("seen", "unseen", "noerror"):
        if word == "noerror":
            noerror = True
        else:
            if seen is not None:
                raise FilterError(f'"seen" or "unseen" repeated near line {r.line}')
            seen = word == "seen"
        word = r.word()
        if word == "":
            what = '"noerror"' if seen is None else '"seen" or "unseen"'
            raise FilterError(f"{what} near line {prefix_line} is not followed by a command")
        if word in ("elif", "else", "endif"):
            if not inside_if:
                raise r.near(f'unexpected "{word}" command')
            raise FilterError(
                f'"seen", "unseen", or "noerror" near line {prefix_line} is not followed by a command'
            )
        if word == "if":
            raise FilterError(f'"seen", "unseen", or "noerror" found before an "if" command near line {r.line}')
    line = r.line
    if word == "add":
        value = r.item()
        if r.word() != "to":
            raise r.near('"to" expected in "add" command')
        return ("add", line, value, r.item())
    if word in ("deliver", "save", "pipe"):
        value = _argument(r, word)
        extra: str | None = None
        if word == "deliver":
            nxt, saved = _peek_word(r)
            if nxt == "errors_to":
                extra = r.item()
            else:
                r.i, r.line = saved
        elif word == "save":
            if r.sig().isdigit():
                extra = r.word()
        return (word, line, value, extra, seen, noerror)
    if word == "finish":
        return ("finish", line, seen)
    if word in ("fail", "freeze", "defer"):
        allowed = {"fail": options.allow_fail, "freeze": options.allow_freeze, "defer": options.allow_defer}[word]
        if not (allowed or options.system):
            raise r.near(f'filtering command "{word}" is disabled:')
        text: str | None = None
        nxt, saved = _peek_word(r)
        if nxt == "text":
            text = r.item()
        else:
            r.i, r.line = saved
        return (word, line, text)
    if word == "headers":
        sub = r.word()
        if sub not in ("add", "remove", "charset") or (sub != "charset" and not options.system):
            raise r.near("header addition and removal is available only in system filters:")
        value = r.item()
        if value == "":
            raise r.near('value missing after "add", "remove", or "charset"')
        return ("headers", line, sub, value)
    if word == "if":
        return _if(r, options)
    if word == "logfile":
        name = _argument(r, "logfile")
        mode = r.word() if r.sig().isdigit() else None
        return ("logfile", line, name, mode)
    if word == "logwrite":
        if options.forbid_logwrite:
            raise FilterError("logwrite command forbidden")
        return ("logwrite", line, _argument(r, "logwrite"))
    if word in ("mail", "vacation"):
        return _mail(r, word, seen, noerror)
    if word == "testprint":
        return ("testprint", line, _argument(r, "testprint"))
    raise r.near(f'unknown filtering command "{word}"')


def _mail(r: _Reader, word: str, seen: bool | None, noerror: bool) -> Cmd:
    fields: dict[str, str] = {}
    expand_file = return_message = False
    while True:
        key, saved = _peek_word(r)
        if key in _MAIL_OPTIONS:
            fields[key] = r.item()
        elif key == "expand" and _peek_word(r)[0] == "file":
            expand_file = True
            fields["file"] = r.item()
        elif key == "return" and _peek_word(r)[0] == "message":
            return_message = True
        else:
            r.i, r.line = saved
            break
    if word == "vacation":
        if "file" not in fields:
            expand_file = True  # only the default file is expanded without being asked
        for key, value in _VACATION_DEFAULTS.items():
            fields.setdefault(key, value)
    return ("mail", r.line, fields, expand_file, return_message, word == "vacation", seen, noerror)


def _if(r: _Reader, options: FilterOptions) -> Cmd:
    branches: list[tuple[Any, list[Cmd]]] = []
    while True:
        condition = _condition(r)
        body, stop = _commands(r, options, inside_if=True)
        branches.append((condition, body))
        if stop == "elif":
            continue
        other: list[Cmd] = []
        if stop == "else":
            other, stop = _commands(r, options, inside_if=True)
            if stop != "endif":
                raise r.near('"endif" missing')
        return ("if", r.line, branches, other)


def _condition(r: _Reader) -> Any:
    """A whole if/elif condition, up to and including "then"."""
    cond = _or(r, toplevel=True)
    word = r.word(bracket=True)
    if word != "then":
        raise FilterError(f'"and" or "or" or "then" expected near line {r.line} of filter file, '
                          f'but found "{word}"')
    return cond


def _or(r: _Reader, toplevel: bool) -> Any:
    left = _and(r)
    while True:
        saved = (r.i, r.line)
        if r.word(bracket=True) == "or":
            left = ("or", left, _and(r))
            continue
        r.i, r.line = saved
        return left


def _and(r: _Reader) -> Any:
    left = _simple(r)
    while True:
        saved = (r.i, r.line)
        if r.word(bracket=True) == "and":
            left = ("and", left, _simple(r))
            continue
        r.i, r.line = saved
        return left


def _simple(r: _Reader) -> Any:
    c = r.sig()
    if c == "(":
        r.i += 1
        inner = _or(r, toplevel=False)
        if r.sig() != ")":
            raise r.near(f'expected ")" but found "{r.word(bracket=True)}"')
        r.i += 1
        return inner
    saved = (r.i, r.line)
    word = r.word(bracket=True)
    if word == "then":
        raise r.near('unexpected "then"')
    if word == "not":
        return ("not", _simple(r))
    if word in ("delivered", "error_message", "first_delivery", "manually_thawed"):
        return (word,)
    if word == "personal":
        aliases: list[str] = []
        while True:
            nxt, after = _peek_word_b(r)
            if nxt != "alias":
                r.i, r.line = after
                return ("personal", aliases)
            aliases.append(r.item(bracket=True))
    if word == "foranyaddress":
        text = r.item(bracket=True)
        if r.sig() != "(":
            raise r.near('"(" expected after "foranyaddress"')
        r.i += 1
        inner = _or(r, toplevel=False)
        if r.sig() != ")":
            raise r.near(f'expected ")" but found "{r.word(bracket=True)}"')
        r.i += 1
        return ("foranyaddress", text, inner)
    r.i, r.line = saved
    left = r.item(bracket=True)
    op = r.word(bracket=True)
    negate = False
    if op.lower() == "is":
        caseful = op[0].isupper()
        nxt, after = _peek_word_b(r)
        if nxt.lower() == "not":
            negate = True
            nxt, after = _peek_word_b(r)
        if nxt in ("above", "below"):
            return ("number", left, nxt, r.item(bracket=True), negate)
        r.i, r.line = after
        return ("test", left, "is", caseful, r.item(bracket=True), negate)
    if op == "does":
        if r.word(bracket=True) != "not":
            raise r.near('"not" expected after "does"')
        verb = r.word(bracket=True)
        if verb not in _DOES_NOT:
            raise r.near(f'unrecognized condition word "{verb}"')
        kind, caseful = _DOES_NOT[verb]
        return ("test", left, kind, caseful, r.item(bracket=True), True)
    if op in _TESTS:
        kind, caseful = _TESTS[op]
        return ("test", left, kind, caseful, r.item(bracket=True), False)
    raise r.near(f'unrecognized condition word "{op}"')


def _peek_word_b(r: _Reader) -> tuple[str, tuple[int, int]]:
    """The next condition word, and where the reader was before it (to go back)."""
    saved = (r.i, r.line)
    return r.word(bracket=True), saved


# -- obeying the filter -----------------------------------------------------------------------


def printing(text: str) -> str:
    """Exim's string_printing(): newline, CR and friends as escapes, other controls in octal."""
    out: list[str] = []
    for c in text:
        o = ord(c)
        if c == "\t" or (32 <= o < 127):
            out.append(c)
        elif c in "\n\r\b\f\v":
            out.append({"\n": "\\n", "\r": "\\r", "\b": "\\b", "\f": "\\f", "\v": "\\v"}[c])
        elif 0xDC80 <= o <= 0xDCFF:
            out.append(f"\\{o - 0xDC00:03o}")
        else:
            out.append(f"\\{o & 0xFF:03o}" if o < 256 else c)
    return "".join(out)


class _Finish(Exception):
    pass


@dataclass
class _State:
    ctx: ExpansionContext
    options: FilterOptions
    result: FilterResult
    captures: list[str] = field(default_factory=list)
    log_name: str | None = None
    log_mode: int = 0o600
    depth: int = 0


def _out(state: _State, text: str) -> None:
    if state.options.test_output is not None:
        state.options.test_output(text)


def _expand(state: _State, text: str, where: str) -> str:
    from pyxim.expand.evaluate import Evaluation
    from pyxim.expand.parser import parse as parse_expansion

    if "$" not in text and "\\" not in text:
        return text
    try:
        ev = Evaluation(state.ctx)
        ev.set_captures(state.captures)
        return ev.eval_seq(parse_expansion(text))
    except ExpansionError as exc:
        raise FilterError(f'failed to expand "{text}" in {where}: {exc.message}') from None


def run(commands: list[Cmd], ctx: ExpansionContext, options: FilterOptions) -> FilterResult:
    result = FilterResult()
    state = _State(ctx, options, result)
    saved = {k: ctx.variables.get(k) for k in [f"n{i}" for i in range(10)]}
    for n in range(10):
        ctx.variables[f"n{n}"] = "0"
        ctx.variables.setdefault(f"sn{n}", "0")
    try:
        _obey(commands, state)
    except _Finish:
        pass
    finally:
        for key, value in saved.items():
            if value is None:
                ctx.variables.pop(key, None)
            else:
                ctx.variables[key] = value
    return result


def _obey(commands: list[Cmd], state: _State) -> None:
    for cmd in commands:
        _obey_one(cmd, state)


def _obey_one(cmd: Cmd, state: _State) -> None:
    name = cmd[0]
    result, options = state.result, state.options
    testing = options.test_output is not None
    if name == "add":
        value = _expand(state, cmd[2], "add command")
        var = _expand(state, cmd[3], "add command")
        m = re.fullmatch(r"\s*([-+]?\d+)\s*", value)
        if m is None:
            raise FilterError(f'malformed number "{value}" in "add" command')
        if not re.fullmatch(r"n[0-9]", var):
            raise FilterError(f'unknown variable "{var}" in "add" command')
        n = int(var[1])
        result.n_vars[n] += int(m.group(1))
        state.ctx.variables[var] = str(result.n_vars[n])
        _out(state, f"Add {int(m.group(1))} to {var}")
        return
    if name in ("deliver", "save", "pipe"):
        _delivery(cmd, state)
        return
    if name == "finish":
        if cmd[2]:
            result.significant = True
        _out(state, "Seen finish" if cmd[2] else "Finish")
        raise _Finish
    if name in ("fail", "freeze", "defer"):
        text = _expand(state, cmd[2], f"{name} command") if cmd[2] is not None else ""
        setattr(result, name, text)
        _out(state, f'{name.capitalize()} text "{printing(text)}"')
        raise _Finish
    if name == "headers":
        value = _expand(state, cmd[3], "headers command")
        _out(state, f'Headers {cmd[2]} "{printing(value)}"')
        if cmd[2] == "charset":
            return  # header decoding keeps its configured character set here
        _edit_headers(state, cmd[2], value)
        return
    if name == "if":
        _obey_if(cmd, state)
        return
    if name == "logfile":
        state.log_name = _expand(state, cmd[2], "logfile command")
        state.log_mode = _octal(cmd[3]) if cmd[3] is not None else 0o600
        _out(state, f"Logfile {state.log_name}")
        return
    if name == "logwrite":
        text = cmd[2] if cmd[2].endswith("\n") else cmd[2] + "\n"
        value = _expand(state, text, "logwrite command")
        _out(state, f'Logwrite "{printing(value)}"')
        if not testing and options.real_log:
            _write_log(state, value)
        return
    if name == "mail":
        _mail_command(cmd, state)
        return
    if name == "testprint":
        value = _expand(state, cmd[2], "testprint command")
        _out(state, f"Testprint: {printing(value)}")
        return
    raise FilterError(f"internal: unknown command {name}")  # pragma: no cover


def _octal(text: str) -> int:
    m = re.match(r"[0-7]*", text)
    return int(m.group(0) or "0", 8) if m else 0


def _delivery(cmd: Cmd, state: _State) -> None:
    from pyxim.address import AddressError, parse_address

    name, _line, raw, extra, seen, noerror = cmd
    result, options = state.result, state.options
    value = _expand(state, raw, f"{name} command") if name != "pipe" else raw
    item = Generated({"deliver": "address", "save": "file", "pipe": "pipe"}[name], value,
                     unseen=seen is False, noerror=noerror)
    tail = " (noerror)" if noerror else ""
    if name == "deliver":
        parsed = parse_address(value)
        if isinstance(parsed, AddressError):
            raise FilterError(f'malformed address "{printing(value)}" in filter file: {parsed.message}')
        address = parsed.address if parsed.domain else f"{parsed.address}@{options.qualify_domain}"
        item.text = carry(address, value)
        if extra is not None:
            errors_to = _expand(state, extra, "deliver command")
            parsed_to = parse_address(errors_to)
            if isinstance(parsed_to, AddressError):
                raise FilterError(f'malformed address "{printing(errors_to)}" in filter file: {parsed_to.message}')
            if not options.system and parsed_to.address.lower() != options.caller_address.lower():
                raise FilterError("errors_to must point to the caller's address")
            item.errors_to = parsed_to.address
            tail = f" errors_to {item.errors_to}" + tail
        label = "Deliver message to: "
    elif name == "save":
        if extra is not None:
            item.mode = _octal(extra)
            tail = f" {item.mode:04o}" + tail
        label = "Save message to: "
    else:
        label = "Pipe message to: "
    if seen is False:
        label = "Unseen " + label[0].lower() + label[1:]
    _out(state, f"{label}{printing(item.text)}{tail}")
    result.items.append(item)
    if seen is not False:
        result.significant = True


def _mail_command(cmd: Cmd, state: _State) -> None:
    _name, _line, raw_fields, expand_file, return_message, vacation, seen, noerror = cmd
    where = "vacation command" if vacation else "mail command"
    return_path = state.ctx.variables.get("return_path")
    if return_path is None:  # -bt and the like: the sender stands in for the return path
        return_path = _expand(state, "$sender_address", where)
    if str(return_path) == "":
        # no replies to a bounce: that is how message loops are avoided
        _out(state, f"{'vacation' if vacation else 'mail'} command ignored because return_path is empty")
        if seen:
            state.result.significant = True
        return
    fields: dict[str, str] = {}
    for key in _MAIL_OPTIONS:
        if key in raw_fields:
            value = _expand(state, raw_fields[key], where)
            _check_mail_field(key, value)
            fields[key] = value
    reply = Reply(fields, expand_file, return_message, vacation)
    to = fields.get("to")
    label = "Seen mail" if seen else "Mail"
    lines = [f"{label} to: {printing(to) if to is not None else '<default>'}"
             + (" (vacation)" if vacation else "") + (" (noerror)" if noerror else "")]
    for key in _MAIL_OPTIONS[1:]:
        if key in fields:
            value = printing(fields[key])
            if key == "file" and expand_file:
                value += " (expanded)"
            lines.append(f"{key:>7}: {value}")
    if return_message:
        lines.append("Return original message")
    for line in lines:
        _out(state, line)
    state.result.items.append(Generated("reply", to or "", unseen=not seen, noerror=noerror, reply=reply))
    if seen:
        state.result.significant = True


_HEADER_NAME = re.compile(r"[!-9;-~]+:")


def _check_mail_field(key: str, value: str) -> None:
    """Exim's checks on what a mail command puts into the new message's header lines and file names."""
    if key in _HEADER_FIELDS or key == "extra_headers":
        for pos in (m.start() for m in re.finditer("\n", value)):
            after = value[pos + 1 : pos + 2]
            if after in (" ", "\t"):
                continue
            if key == "extra_headers" and _HEADER_NAME.match(value, pos + 1):
                continue
            extra = " or valid header name" if key == "extra_headers" else ""
            raise FilterError(f'\\n not followed by space{extra} in "{printing(value)}" in mail command')
    elif key in _PATH_FIELDS and any(c != "\t" and not (32 <= ord(c) < 127) for c in value):
        raise FilterError(f'non-printing character in "{printing(value)}" in mail command')


def _edit_headers(state: _State, action: str, value: str) -> None:
    """headers add/remove in a system filter: the message's header lines change at once."""
    from pyxim.expand.message import HeaderLine, header_name

    message = state.ctx.message
    if action == "add":
        # leading white space goes and an empty string adds nothing; "\n" not followed by white space
        # starts another header line (Exim's rules for "headers add")
        text = value.lstrip()
        if not text:
            return
        for one in re.split(r"\n(?=[^ \t])", text.rstrip("\n")):
            one += "\n"
            state.result.headers_added.append(one)
            if message is not None:
                message.headers.append(HeaderLine(header_name(one), one))
        return
    names = [n.strip() for n in value.split(":") if n.strip()]
    state.result.headers_removed.extend(names)
    if message is not None:
        for h in message.headers:
            if any(h.is_named(n) for n in names):
                h.type = "*"


def _write_log(state: _State, text: str) -> None:
    """logwrite at delivery: appended to the logfile at once (not queued like deliveries)."""
    name = state.log_name
    if name is None:
        raise FilterError('attempt to obey "logwrite" command without a previous "logfile"')
    if is_tainted(name):
        raise FilterError(f"Tainted name '{name}' for logfile not permitted")
    if not name.startswith("/"):
        raise FilterError(f'logfile "{name}" is not an absolute path')
    try:
        created = not os.path.exists(name)
        fd = os.open(name, os.O_WRONLY | os.O_APPEND | os.O_CREAT, state.log_mode)
        try:
            owner = state.options.log_owner
            if created and owner is not None and os.geteuid() == 0:
                # Exim writes it from the filter's process, run as system_filter_user
                os.fchown(fd, owner[0] if owner[0] is not None else -1, owner[1] if owner[1] is not None else -1)
            os.write(fd, text.encode("utf-8", "surrogateescape"))
        finally:
            os.close(fd)
    except OSError as exc:
        raise FilterError(f"failed to open or write to log file {name}: {exc.strerror}") from None


def _obey_if(cmd: Cmd, state: _State) -> None:
    _name, _line, branches, other = cmd
    saved_this = state.ctx.variables.get("thisaddress")
    try:
        for condition, body in branches:
            if _test(condition, state):
                _obey(body, state)
                return
        _obey(other, state)
    finally:
        # $thisaddress (set by foranyaddress) is put back at the end of the if command
        if saved_this is None:
            state.ctx.variables.pop("thisaddress", None)
        else:
            state.ctx.variables["thisaddress"] = saved_this


def _number(text: str) -> int:
    m = re.fullmatch(r"\s*(\d+)([kKmM]?)\s*", text)
    if m is None:
        raise FilterError(f'malformed numerical string "{text}"')
    value = int(m.group(1))
    return value * {"": 1, "k": 1024, "m": 1024 * 1024}[m.group(2).lower()]


def _test(cond: Any, state: _State) -> bool:
    kind = cond[0]
    variables = state.ctx.variables
    if kind == "or":
        return _test(cond[1], state) or _test(cond[2], state)
    if kind == "and":
        return _test(cond[1], state) and _test(cond[2], state)
    if kind == "not":
        return not _test(cond[1], state)
    if kind == "delivered":
        return state.result.significant
    if kind == "error_message":
        return _expand(state, "$sender_address", "filter file") == ""
    if kind == "first_delivery":
        return state.options.test_output is not None or bool(state.ctx.first_delivery)
    if kind == "manually_thawed":
        return bool(variables.get("manually_thawed"))
    if kind == "personal":
        if state.options.system:
            return False  # a system filter works for no one user (as Exim's -bF shows)
        aliases = [_expand(state, a, "filter file") for a in cond[1]]
        return _personal(state, aliases)
    if kind == "foranyaddress":
        from pyxim.address import extract_addresses

        text = _expand(state, cond[1], "filter file")
        for parsed in extract_addresses(text):
            variables["thisaddress"] = carry(parsed.address, text)
            if _test(cond[2], state):
                return True
        return False
    if kind == "number":
        _k, left, which, right, negate = cond
        a = _number(_expand(state, left, "filter file"))
        b = _number(_expand(state, right, "filter file"))
        return (a > b if which == "above" else a < b) != negate
    _k, left_raw, test, caseful, right_raw, negate = cond
    left = _expand(state, left_raw, "filter file")
    right = _expand(state, right_raw, "filter file")
    if test == "matches":
        from pyxim.expand.regex import compile_pcre

        try:
            pattern = compile_pcre(right, 0 if caseful else re.IGNORECASE)
        except ExpansionError as exc:
            # Exim words it from the compiler's message and offset, without the -be prefix
            message = exc.message.split('": ', 1)[-1]
            raise FilterError(f'error while compiling regular expression "{right}": {message}') from None
        m = pattern.search(left)
        if m is not None:
            # only a successful match changes $1…; the values stay after the if command
            state.captures = [carry(m.group(0), left), *[carry(g or "", left) for g in m.groups()]]
        return (m is not None) != negate
    a, b = (left, right) if caseful else (left.lower(), right.lower())
    if test == "is":
        value = a == b
    elif test == "contains":
        value = b in a
    elif test == "begins":
        value = a.startswith(b)
    else:
        value = a.endswith(b)
    return value != negate


_DAEMONS = ("server@", "daemon@", "root@", "listserv@", "majordomo@", "-request@")
_LIST_HEADERS = ("list-id", "list-help", "list-subscribe", "list-unsubscribe", "list-post", "list-owner",
                 "list-archive")


def _personal(state: _State, aliases: list[str]) -> bool:
    """Exim's personal condition: not a bounce, not from a list or a robot, and addressed to this
    user (or one of the aliases) in To:."""
    from pyxim.address import extract_addresses

    variables = state.ctx.variables
    message = state.ctx.message
    if _expand(state, "$sender_address", "filter file") == "":
        return False
    if message is not None:
        for h in message.visible_headers:
            if h.name.lower() in _LIST_HEADERS:
                return False
    auto = _header(state, "auto-submitted")
    if auto is not None and auto.strip().lower() != "no":
        return False
    precedence = (_header(state, "precedence") or "").lower()
    if any(word in precedence for word in ("bulk", "list", "junk")):
        return False
    local_part = str(variables.get("local_part", ""))
    domain = str(variables.get("domain", ""))
    prefix = str(variables.get("local_part_prefix", "") or "")
    suffix = str(variables.get("local_part_suffix", "") or "")
    selves = {f"{local_part}@{domain}".lower()}
    if prefix or suffix:
        selves.add(f"{prefix}{local_part}{suffix}@{domain}".lower())
    selves.update(a.lower() for a in aliases if a)
    to = [p.address.lower() for p in extract_addresses(_header(state, "to") or "")]
    if not any(self in addr for addr in to for self in selves):
        return False
    for parsed in extract_addresses(_header(state, "from") or ""):
        addr = parsed.address.lower()
        # the robots' names are whole local parts ("mailer-daemon@" is not "daemon@")
        if any(self in addr for self in selves) or any(
            addr.startswith(d) if d[0] != "-" else d in addr for d in _DAEMONS
        ):
            return False
        if re.match(r"^owner-[^@]+@", addr):
            return False
    return True


def _header(state: _State, name: str) -> str | None:
    message = state.ctx.message
    if message is None or not message.has_header(name):
        return None
    return _expand(state, f"$h_{name}:", "filter file")


# -- the redirect router's entry point -----------------------------------------------------


def interpret(
    inst: Any, ctx: ExpansionContext, data: str, address: str, delivering: bool = False
) -> FilterResult:
    """Run a user's filter for the redirect router. Raises the router's deferral for errors."""
    from pyxim.routers.engine import RouterDefer

    where = "filter data" if inst.options.get("data") is not None else "filter file"
    forbidden = {
        name for name in ("run", "lookup", "readfile", "readsocket", "perl", "dlfunc", "existstest")
        if inst.options.get(f"forbid_filter_{name}")
    }
    options = FilterOptions(
        allow_fail=bool(inst.options.get("allow_fail")),
        allow_freeze=bool(inst.options.get("allow_freeze")),
        forbid_logwrite=bool(inst.options.get("forbid_filter_logwrite")),
        real_log=delivering,
        qualify_domain=_qualify_domain(ctx),
        caller_address=f"{ctx.variables.get('local_part', '')}@{ctx.variables.get('domain', '')}",
    )
    saved_forbidden = ctx.forbidden
    ctx.forbidden = frozenset(
        saved_forbidden | {"exists" if f == "existstest" else f for f in forbidden}
    )
    try:
        return run(parse(data, options), ctx, options)
    except FilterError as exc:
        raise RouterDefer(f"error in {where}: {exc}") from None
    finally:
        ctx.forbidden = saved_forbidden


def _qualify_domain(ctx: ExpansionContext) -> str:
    from pyxim.expand.evaluate import Evaluation
    from pyxim.expand.variables import resolve_variable

    return resolve_variable(Evaluation(ctx), "qualify_recipient")

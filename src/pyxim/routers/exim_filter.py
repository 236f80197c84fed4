"""Exim filter files (`# Exim filter`) for the redirect router with allow_filter — a first part.

Commands: deliver (with `errors_to`), save, pipe, finish, fail [text], freeze [text], testprint,
if/then/elif/else/endif, and the `seen`/`unseen` prefixes. Conditions: `is`, `contains`,
`matches`, `begins`, `ends` (caseless; the capitalised forms `Is`, `Contains` … respect case),
their `is not` / `does not …` negations, `and`, `or`, `not`, parentheses, `delivered`,
`error_message`, `true`/`false`. Strings, quoted or not, are expanded ($h_subject: …).

The filter's decisions become plain redirection data for the router: the addresses, "/file"
and "|command" items it delivered to, or ":fail: text" (allow_fail); `freeze` (allow_freeze)
defers and freezes the message. A filter that makes no significant delivery (none, or only
`unseen` ones) leaves the address to the routers after this one as well, as Exim does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pyxim.config.model import DriverInstance
from pyxim.errors import ExpansionError
from pyxim.expand import ExpansionContext, expand_string

_OPERATORS = ("is", "contains", "matches", "begins", "ends")


class FilterError(Exception):
    """A filter that cannot be read or run; the router defers with "error in filter file: …"."""


@dataclass
class _State:
    ctx: ExpansionContext
    inst: DriverInstance
    items: list[str] = field(default_factory=list)
    significant: bool = False
    finished: bool = False
    fail: str | None = None
    freeze: str | None = None


def interpret(
    inst: DriverInstance, ctx: ExpansionContext, data: str, address: str
) -> tuple[str | None, bool]:
    """(redirection data or None, whether a significant delivery was set up)."""
    from pyxim.routers.engine import RouterDefer

    state = _State(ctx, inst)
    try:
        tokens = _tokens(data.split("\n", 1)[1] if "\n" in data else "")
        _run_commands(tokens, 0, state, ("",))
    except FilterError as exc:
        raise RouterDefer(f"error in filter file: {exc}") from None
    if state.freeze is not None:
        if not inst.options.get("allow_freeze"):
            raise RouterDefer('error in filter file: "freeze" is not permitted')
        raise RouterDefer(state.freeze or "frozen by filter", freeze=True)
    if state.fail is not None:
        return (f":fail: {state.fail}" if state.fail else ":fail: Delivery failed by filter"), True
    # without a significant delivery the address also goes on to the next router (unseen)
    return ("\n".join(state.items) or None), state.significant


_TOKEN = re.compile(r'\s*(?:#[^\n]*|"((?:[^"\\]|\\.)*)"|([()])|([^\s()"]+))', re.S)


def _tokens(text: str) -> list[tuple[str, bool]]:
    """(text, quoted) pairs; comments dropped. Quoted strings keep their backslashes for the
    expander, which undoes them."""
    out: list[tuple[str, bool]] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            if text[pos:].strip():
                raise FilterError(f"unexpected text near {text[pos : pos + 20]!r}")
            break
        pos = m.end()
        if m.group(1) is not None:
            out.append((m.group(1), True))
        elif m.group(2) or m.group(3):
            out.append((m.group(2) or m.group(3), False))
    return out


def _word(tokens: list[tuple[str, bool]], i: int) -> str:
    return tokens[i][0] if i < len(tokens) and not tokens[i][1] else ""


def _string(tokens: list[tuple[str, bool]], i: int, state: _State) -> tuple[str, int]:
    if i >= len(tokens):
        raise FilterError("string expected at end of filter")
    text = tokens[i][0]
    if tokens[i][1]:
        # a quoted string's backslashes are read before the expansion (so "\\$" is a lone "$")
        text = re.sub(
            r"\\(.)",
            lambda m: {"n": "\n", "t": "\t", "r": "\r"}.get(m.group(1), m.group(1)),
            text,
            flags=re.S,
        )
    try:
        return expand_string(text, state.ctx), i + 1
    except ExpansionError as exc:
        raise FilterError(f'failed to expand "{text}" in filter file: {exc.message}') from None


def _run_commands(tokens: list[tuple[str, bool]], i: int, state: _State, stop: tuple[str, ...]) -> int:
    """Run commands from token i until one of the `stop` words (or the end); returns where it stopped."""
    while i < len(tokens) and _word(tokens, i) not in stop:
        i = _command(tokens, i, state, run=not state.finished)
    return i


def _skip_commands(tokens: list[tuple[str, bool]], i: int, state: _State, stop: tuple[str, ...]) -> int:
    while i < len(tokens) and _word(tokens, i) not in stop:
        i = _command(tokens, i, state, run=False)
    return i


def _command(tokens: list[tuple[str, bool]], i: int, state: _State, run: bool) -> int:
    seen: bool | None = None
    while _word(tokens, i) in ("seen", "unseen", "noerror"):
        seen = {"seen": True, "unseen": False}.get(_word(tokens, i), seen)
        i += 1
    word = _word(tokens, i)
    i += 1
    if word in ("deliver", "save", "pipe"):
        if run:
            value, i = _string(tokens, i, state)
        else:
            i += 1
        if word == "deliver" and _word(tokens, i) == "errors_to":
            i += 2
        if word == "save" and i < len(tokens) and tokens[i][0].isdigit() and not tokens[i][1]:
            i += 1  # a mode for the file
        if run:
            item = value if word == "deliver" else (value if word == "save" else f"|{value}")
            if word == "save" and not item.startswith("/"):
                raise FilterError(f'relative file name "{item}" in save command')
            state.items.append(item)
            if seen is not False:
                state.significant = True
        return i
    if word == "finish":
        if run:
            state.finished = True
        return i
    if word in ("fail", "freeze"):
        text = ""
        if _word(tokens, i) == "text":
            if run:
                text, i = _string(tokens, i + 1, state)
            else:
                i += 2
        if run:
            setattr(state, word, text)
            state.finished = True
        return i
    if word == "testprint":
        return i + 1
    if word == "if":
        return _if(tokens, i, state, run)
    raise FilterError(f'unknown filtering command "{tokens[i - 1][0] if i - 1 < len(tokens) else ""}"')


def _if(tokens: list[tuple[str, bool]], i: int, state: _State, run: bool) -> int:
    taken = False
    while True:
        value, i = _condition(tokens, i, state, run and not taken)
        if _word(tokens, i) != "then":
            raise FilterError('"then" missing after "if" condition')
        i += 1
        if run and not taken and value:
            taken = True
            i = _run_commands(tokens, i, state, ("elif", "else", "endif"))
        else:
            i = _skip_commands(tokens, i, state, ("elif", "else", "endif"))
        word = _word(tokens, i)
        if word == "elif":
            i += 1
            continue
        if word == "else":
            i += 1
            if run and not taken:
                i = _run_commands(tokens, i, state, ("endif",))
            else:
                i = _skip_commands(tokens, i, state, ("endif",))
            word = _word(tokens, i)
        if word != "endif":
            raise FilterError('"endif" missing at end of filter')
        return i + 1


def _condition(tokens: list[tuple[str, bool]], i: int, state: _State, run: bool) -> tuple[bool, int]:
    value, i = _and(tokens, i, state, run)
    while _word(tokens, i) == "or":
        other, i = _and(tokens, i + 1, state, run)
        value = value or other
    return value, i


def _and(tokens: list[tuple[str, bool]], i: int, state: _State, run: bool) -> tuple[bool, int]:
    value, i = _factor(tokens, i, state, run)
    while _word(tokens, i) == "and":
        other, i = _factor(tokens, i + 1, state, run)
        value = value and other
    return value, i


def _factor(tokens: list[tuple[str, bool]], i: int, state: _State, run: bool) -> tuple[bool, int]:
    word = _word(tokens, i)
    if word == "not":
        value, i = _factor(tokens, i + 1, state, run)
        return not value, i
    if word == "(":
        value, i = _condition(tokens, i + 1, state, run)
        if _word(tokens, i) != ")":
            raise FilterError('missing ")" in condition')
        return value, i + 1
    if word in ("delivered", "error_message", "true", "false", "first_delivery", "manually_thawed"):
        sender = str(state.ctx.variables.get("sender_address", ""))
        return {
            "delivered": state.significant,
            "error_message": sender == "",
            "true": True,
            "false": False,
            "first_delivery": True,
            "manually_thawed": False,
        }[word], i + 1
    left, i = _string(tokens, i, state) if run else ("", i + 1)
    negate = False
    op = _word(tokens, i)
    if op == "does" and _word(tokens, i + 1) == "not":
        negate, i = True, i + 2
        op = _word(tokens, i)
        op = {
            "contain": "contains",
            "match": "matches",
            "begin": "begins",
            "end": "ends",
            "Contain": "Contains",
            "Match": "Matches",
            "Begin": "Begins",
            "End": "Ends",
        }.get(op, op)
    elif op.lower() == "is" and _word(tokens, i + 1) == "not":
        negate, i = True, i + 1
    if op.lower() not in _OPERATORS:
        raise FilterError(f'condition operator expected, found "{op}"')
    i += 1
    right, i = _string(tokens, i, state) if run else ("", i + 1)
    if not run:
        return False, i
    caseless = op[0].islower()
    a, b = (left.lower(), right.lower()) if caseless and op.lower() != "matches" else (left, right)
    kind = op.lower()
    if kind == "is":
        result = a == b
    elif kind == "contains":
        result = b in a
    elif kind == "begins":
        result = a.startswith(b)
    elif kind == "ends":
        result = a.endswith(b)
    else:
        from pyxim.expand.regex import compile_pcre

        result = bool(compile_pcre(("(?i)" if caseless else "") + right).search(left))
    return result != negate, i

"""Expansion conditions: ${if NAME {arg}… {yes}{no}}.

Each registered function receives the already-expanded arguments. The
conditions with a syntax of their own (!, def:, and, or, forall…, acl) are in
the parser and evaluator.
"""

from __future__ import annotations

import ipaddress
import os
import re
from typing import TYPE_CHECKING

from pyxim.errors import ExpansionError
from pyxim.expand.registry import condition
from pyxim.expand.taint import check_untainted
from pyxim.lists import iterate_list

if TYPE_CHECKING:  # pragma: no cover
    from pyxim.expand.evaluate import Evaluation

_INT = re.compile(r"\s*([-+]?\d+)")


def expanded_string_integer(text: str) -> int:
    """Exim's expanded_string_integer(): decimal, optional K/M/G, trailing white space allowed."""
    m = _INT.match(text)
    if not m:
        raise ExpansionError(f'integer expected but "{text}" found')
    value = int(m.group(1))
    rest = text[m.end() :]
    if rest[:1].lower() in ("k", "m", "g") and rest[:1]:
        value *= {"k": 1024, "m": 1024**2, "g": 1024**3}[rest[0].lower()]
        rest = rest[1:]
    if value > (1 << 63) - 1 or value < -(1 << 63):
        raise ExpansionError(f'absolute value of integer "{text}" is too large (overflow)')
    if rest.strip(" \t\n\r\f\v"):
        raise ExpansionError(f'invalid integer "{text}"')
    return value


def _num(text: str) -> int:
    return 0 if text == "" else expanded_string_integer(text)


def _numeric(name: str, test):  # type: ignore[no-untyped-def]
    @condition(name, nargs=2)
    def check(ev: Evaluation, args: list[str]) -> bool:
        return bool(test(_num(args[0]), _num(args[1])))

    return check


_numeric("<", lambda a, b: a < b)
_numeric("<=", lambda a, b: a <= b)
_numeric(">", lambda a, b: a > b)
_numeric(">=", lambda a, b: a >= b)
_numeric("=", lambda a, b: a == b)
_numeric("==", lambda a, b: a == b)


def _bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _lower(text: str) -> bytes:
    return _bytes(text).lower()  # ASCII-only, like strcmpic()


def _string(name: str, test, caseless: bool):  # type: ignore[no-untyped-def]
    conv = _lower if caseless else _bytes

    @condition(name, nargs=2)
    def check(ev: Evaluation, args: list[str]) -> bool:
        return bool(test(conv(args[0]), conv(args[1])))

    return check


for _name, _test in (
    ("eq", lambda a, b: a == b),
    ("lt", lambda a, b: a < b),
    ("le", lambda a, b: a <= b),
    ("gt", lambda a, b: a > b),
    ("ge", lambda a, b: a >= b),
):
    _string(_name, _test, caseless=False)
    _string(_name + "i", _test, caseless=True)


@condition("bool", nargs=1)
def cond_bool(ev: Evaluation, args: list[str]) -> bool:
    text = args[0].strip()
    if text == "":
        return False
    if re.fullmatch(r"-?\d+", text):
        return int(text) != 0
    low = text.lower()
    if low in ("true", "yes"):
        return True
    if low in ("false", "no"):
        return False
    raise ExpansionError(f'unrecognised boolean value "{text}"')


@condition("bool_lax", nargs=1)
def cond_bool_lax(ev: Evaluation, args: list[str]) -> bool:
    text = args[0].strip()
    return not (text == "" or text.lower() in ("false", "no") or re.fullmatch(r"-?0+", text))


def _ip_version(text: str) -> int:
    try:
        return ipaddress.ip_address(text).version
    except ValueError:
        return 0


@condition("isip", nargs=1)
def cond_isip(ev: Evaluation, args: list[str]) -> bool:
    return _ip_version(args[0]) != 0


@condition("isip4", nargs=1)
def cond_isip4(ev: Evaluation, args: list[str]) -> bool:
    return _ip_version(args[0]) == 4


@condition("isip6", nargs=1)
def cond_isip6(ev: Evaluation, args: list[str]) -> bool:
    return _ip_version(args[0]) == 6


@condition("exists", nargs=1)
def cond_exists(ev: Evaluation, args: list[str]) -> bool:
    check_untainted(args[0], "Tainted name '%s' for exists not permitted")
    return os.path.exists(args[0])


@condition("first_delivery", nargs=0)
def cond_first_delivery(ev: Evaluation, args: list[str]) -> bool:
    return ev.ctx.first_delivery


@condition("queue_running", nargs=0)
def cond_queue_running(ev: Evaluation, args: list[str]) -> bool:
    return ev.ctx.queue_running


@condition("inlist", nargs=2)
def cond_inlist(ev: Evaluation, args: list[str]) -> bool:
    return any(item == args[0] for item in iterate_list(args[1]))


@condition("inlisti", nargs=2)
def cond_inlisti(ev: Evaluation, args: list[str]) -> bool:
    subject = _lower(args[0])
    return any(_lower(item) == subject for item in iterate_list(args[1]))


@condition("match", nargs=2)
def cond_match(ev: Evaluation, args: list[str]) -> bool:
    from pyxim.expand.regex import compile_pcre
    from pyxim.expand.taint import carry

    m = compile_pcre(args[1]).search(args[0])
    if m is None:
        return False
    groups = [m.group(0), *(g if g is not None else "" for g in m.groups())]
    ev.set_captures([carry(g, args[0]) for g in groups])
    return True


def _keeping_data(ev: Evaluation, run):  # type: ignore[no-untyped-def]
    """$domain_data/$local_part_data are set by ACL and router matches, not by these conditions."""
    saved = {k: ev.ctx.variables.get(k) for k in ("domain_data", "local_part_data")}
    try:
        return run()
    finally:
        for k, v in saved.items():
            if v is None:
                ev.ctx.variables.pop(k, None)
            else:
                ev.ctx.variables[k] = v


@condition("match_domain", nargs=2)
def cond_match_domain(ev: Evaluation, args: list[str]) -> bool:
    from pyxim.lists import match_domain_list

    return _keeping_data(ev, lambda: match_domain_list(ev.ctx, args[0], args[1]))


@condition("match_local_part", nargs=2)
def cond_match_local_part(ev: Evaluation, args: list[str]) -> bool:
    from pyxim.lists import match_localpart_list

    return _keeping_data(ev, lambda: match_localpart_list(ev.ctx, args[0], args[1]))


@condition("match_address", nargs=2)
def cond_match_address(ev: Evaluation, args: list[str]) -> bool:
    from pyxim.lists import match_address_list

    return match_address_list(ev.ctx, args[0], args[1])


@condition("match_ip", nargs=2)
def cond_match_ip(ev: Evaluation, args: list[str]) -> bool:
    from pyxim.lists import match_ip_list

    return match_ip_list(ev.ctx, args[0], args[1])


@condition("crypteq", nargs=2)
def cond_crypteq(ev: Evaluation, args: list[str]) -> bool:
    from pyxim.expand.crypteq import crypteq

    return crypteq(args[0], args[1])


def _no_backend(name: str) -> None:
    @condition(name, nargs=1)
    def check(ev: Evaluation, args: list[str]) -> bool:
        # pyxim has no such authentication backend: the condition is false,
        # as Exim's is when the backend refuses.
        return False


for _name in ("pam", "pwcheck", "radius", "saslauthd", "ldapauth"):
    _no_backend(_name)

"""Expansion conditions: ${if NAME {arg}… {yes}{no}}.

Each registered function receives the already-expanded arguments. The
conditions with a syntax of their own (!, def:, and, or, forall…, acl) are in
the parser and evaluator.

Exim hands its conditions C strings: an argument stops at its first NUL byte
(`eq{a\\x00b}{a}` is true), so every condition here reads its arguments
through `_c()`. Comparisons are on bytes, and "caseless" means ASCII only
(strcmpic() in the C locale).

Besides the conditions, this module holds Exim's other readings of a string
as a boolean, for the subsystems that need them: `bool_value()` (bool{} and
bool_lax{}), `acl_condition_value()` (the ACL `condition =` modifier) and
`router_condition_value()` (a router's `condition` option).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pyxim.errors import ExpansionError, LookupDefer
from pyxim.expand.arith import C_SPACE, string_integer, strtol, wrap_int
from pyxim.expand.registry import condition
from pyxim.expand.taint import carry

if TYPE_CHECKING:  # pragma: no cover
    from pyxim.expand.evaluate import Evaluation

_DIGITS = "0123456789"


def _c(text: str) -> str:
    """The argument as Exim's C code sees it: up to the first NUL."""
    if "\x00" not in text:
        return text
    return carry(text.partition("\x00")[0], text)


def _bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _set_value(ev: Evaluation, value: str | None) -> None:
    # Exim's lookup_value: the ${if} around the condition shows it to its
    # yes and no strings as $value, then puts the old value back.
    ev.bound["value"] = value


# -- numeric comparisons: < <= = == > >= ----------------------------------------


def _number(text: str) -> int:
    # An empty string counts as zero; anything else is read as Exim's
    # expanded_string_integer() reads it (K/M/G suffixes, white space around).
    text = _c(text)
    return 0 if text == "" else string_integer(text)


def _numeric(name: str, test: Callable[[int, int], bool]) -> None:
    @condition(name, nargs=2)
    def check(ev: Evaluation, args: list[str]) -> bool:
        return test(_number(args[0]), _number(args[1]))


_numeric("<", lambda a, b: a < b)
_numeric("<=", lambda a, b: a <= b)
_numeric(">", lambda a, b: a > b)
_numeric(">=", lambda a, b: a >= b)
_numeric("=", lambda a, b: a == b)
_numeric("==", lambda a, b: a == b)


# -- string comparisons: eq lt le gt ge and their caseless forms ---------------------


def _caseful(text: str) -> bytes:
    return _bytes(_c(text))


def _caseless(text: str) -> bytes:
    return _bytes(_c(text)).lower()  # bytes.lower() touches ASCII letters only, like tolower() in "C"


def _string(name: str, test: Callable[[bytes, bytes], bool]) -> None:
    @condition(name, nargs=2)
    def caseful(ev: Evaluation, args: list[str]) -> bool:
        return test(_caseful(args[0]), _caseful(args[1]))

    @condition(name + "i", nargs=2)
    def caseless(ev: Evaluation, args: list[str]) -> bool:
        return test(_caseless(args[0]), _caseless(args[1]))


_string("eq", lambda a, b: a == b)
_string("lt", lambda a, b: a < b)
_string("le", lambda a, b: a <= b)
_string("gt", lambda a, b: a > b)
_string("ge", lambda a, b: a >= b)


# -- booleans -------------------------------------------------------------------------


def _is_decimal(text: str) -> bool:
    """Digits only, after an optional leading minus (so "-" alone counts, as it does in Exim)."""
    digits = text[1:] if text.startswith("-") else text
    return all(ch in _DIGITS for ch in digits)


def _atoi(text: str) -> int:
    # C's atoi(): strtol() saturating at 64 bits, then cut to an int — so
    # "4294967296" reads as 0 and "99999999999999999999" as -1.
    value, _, _ = strtol(text)
    return wrap_int(value, 32)


def bool_value(text: str, lax: bool = False) -> bool:
    """What bool{text} (or bool_lax{text}) says about `text`.

    White space round the value is ignored. A decimal number is true unless
    it is zero (bool_lax: unless it is the single character "0"); true/yes and
    false/no in any case are what they say. Anything else is an error for
    bool and true for bool_lax.
    """
    value = _c(text).strip(C_SPACE)
    if value == "":
        return False
    if _is_decimal(value):
        if lax and len(value) > 1:
            return True
        return _atoi(value) != 0
    word = value.lower()
    if word in ("true", "yes"):
        return True
    if word in ("false", "no"):
        return False
    if lax:
        return True
    raise ExpansionError(f'unrecognised boolean value "{value}"')


@condition("bool", nargs=1)
def cond_bool(ev: Evaluation, args: list[str]) -> bool:
    return bool_value(args[0])


@condition("bool_lax", nargs=1)
def cond_bool_lax(ev: Evaluation | None, args: list[str]) -> bool:
    # Also called with ev=None by subsystems that want bool_lax's reading of a string.
    return bool_value(args[0], lax=True)


def acl_condition_value(text: str) -> bool | None:
    """The ACL `condition =` modifier's reading: None when the value is neither true nor false.

    Exim accepts a decimal number (true unless zero; an empty value is false),
    yes/true and no/false in any case, with no trimming of white space. For
    anything else the ACL defers with the message 'invalid "condition" value "<text>"'.
    """
    text = _c(text)
    if _is_decimal(text):
        return _atoi(text) != 0
    word = text.lower()
    if word in ("yes", "true"):
        return True
    if word in ("no", "false"):
        return False
    return None


def router_condition_value(text: str) -> bool:
    """A router's `condition` option (Exim's expand_check_condition): false only for "", "0", no, false."""
    text = _c(text)
    return not (text == "" or text == "0" or text.lower() in ("no", "false"))


def check_when_skipped(name: str, args: list[str]) -> None:
    """The checks Exim makes on a condition even in a branch it is skipping.

    In a skipped branch Exim still builds each argument from its literal text
    (escapes included; variables and items contribute nothing), and bool{}
    still rejects a value it does not recognise:
    `${if eq{a}{b}{${if bool{maybe}}}}` fails. `args` are those skip-mode texts.
    """
    if name == "bool":
        bool_value(args[0])


# -- IP addresses ---------------------------------------------------------------------


def ip_version(text: str) -> int:
    """4 or 6 when `text` is an IP address as Exim reads one (no mask; IPv6 may carry %interface), else 0."""
    from pyxim.expand.operators import string_is_ip_address

    return string_is_ip_address(_c(text), False)[0]


@condition("isip", nargs=1)
def cond_isip(ev: Evaluation, args: list[str]) -> bool:
    return ip_version(args[0]) != 0


@condition("isip4", nargs=1)
def cond_isip4(ev: Evaluation, args: list[str]) -> bool:
    return ip_version(args[0]) == 4


@condition("isip6", nargs=1)
def cond_isip6(ev: Evaluation, args: list[str]) -> bool:
    return ip_version(args[0]) == 6


# -- files and delivery state ------------------------------------------------------------


@condition("exists", nargs=1)
def cond_exists(ev: Evaluation, args: list[str]) -> bool:
    # Exim 4.96 stat()s tainted names too (checked with a message header as
    # the name under exim4 -bem); only a context that forbids file tests
    # (Exim's RDO_EXISTS, e.g. a filter run with it locked out) refuses.
    if "exists" in ev.ctx.forbidden:
        raise ExpansionError("File existence tests are not permitted")
    path = _c(args[0])
    try:
        os.stat(_bytes(path))
    except (OSError, ValueError):
        return False
    return True


@condition("first_delivery", nargs=0)
def cond_first_delivery(ev: Evaluation, args: list[str]) -> bool:
    return ev.ctx.first_delivery


@condition("queue_running", nargs=0)
def cond_queue_running(ev: Evaluation, args: list[str]) -> bool:
    return ev.ctx.queue_running


# -- lists ------------------------------------------------------------------------------


def _inlist(ev: Evaluation, args: list[str], caseless: bool) -> bool:
    from pyxim.lists import iterate_list  # imported here: pyxim.lists itself imports pyxim.expand

    subject = _c(args[0])
    want = _bytes(subject).lower() if caseless else _bytes(subject)
    for item in iterate_list(_c(args[1])):
        have = _bytes(item).lower() if caseless else _bytes(item)
        if have == want:
            # The item that matched (as written in the list) becomes $value.
            _set_value(ev, carry(item, args[1]))
            return True
    return False


@condition("inlist", nargs=2)
def cond_inlist(ev: Evaluation, args: list[str]) -> bool:
    return _inlist(ev, args, caseless=False)


@condition("inlisti", nargs=2)
def cond_inlisti(ev: Evaluation, args: list[str]) -> bool:
    return _inlist(ev, args, caseless=True)


# -- regular expressions --------------------------------------------------------------------


@condition("match", nargs=2)
def cond_match(ev: Evaluation, args: list[str]) -> bool:
    from pyxim.expand.regex import compile_pcre

    subject = _c(args[0])
    m = compile_pcre(_c(args[1])).search(subject)
    if m is None:
        return False  # $0… keep what they had
    ev.set_captures([carry(g, subject) for g in m.captures()])
    return True


# -- list matching: match_domain, match_local_part, match_address, match_ip ----------------
#
# The matching itself is pyxim.lists'. What the conditions add is Exim's side
# effects: the domain, local-part and address forms leave the lookup data or
# the list item that matched in $value (and clear it when nothing matched),
# match_ip sets $value only from a lookup's data (iplsearch, net24-lsearch…),
# and the domain and local-part forms set $0, $1… from a regex or wildcard item
# (in the no-branch too: Exim sets them while it scans the list).


def _run_matcher(
    ev: Evaluation, func: Callable[..., Any], subject: str, listtext: str, clears_value: bool, **options: Any
) -> bool:
    # The list matchers note lookup data in $domain_data/$local_part_data for
    # routers and ACLs; these conditions leave those alone in Exim.
    saved = {k: ev.ctx.variables.get(k) for k in ("domain_data", "local_part_data")}
    try:
        result = func(ev.ctx, subject, listtext, **options)
    except LookupDefer as exc:
        raise LookupDefer(f'unable to complete match against "{listtext}": {_search_error(exc)}') from None
    except ExpansionError as exc:
        if exc.message.startswith("unknown named "):
            # Exim finds no such list and reports a match that could not
            # complete, quoting whatever search error the last lookup left
            # behind ("NULL" when there has been none).
            from pyxim.lookups import last_search_error

            raise LookupDefer(
                f'unable to complete match against "{listtext}": {last_search_error(ev.ctx)}'
            ) from None
        raise
    finally:
        for k, v in saved.items():
            if v is None:
                ev.ctx.variables.pop(k, None)
            else:
                ev.ctx.variables[k] = v
    if clears_value or result.value is not None:
        _set_value(ev, result.value)
    if result.captures is not None:
        ev.set_captures(result.captures)
    return bool(result.matched)


def _search_error(exc: LookupDefer) -> str:
    """The lookup's own message, without the framing pyxim.lists may have added for ACLs."""
    inner = getattr(exc, "search_error", None)
    if inner is not None:
        return str(inner)
    text = exc.message
    prefix = "unable to complete match against "
    if text.startswith(prefix) and '": ' in text:
        return text.split('": ', 1)[1]
    return text


@condition("match_domain", nargs=2)
def cond_match_domain(ev: Evaluation, args: list[str]) -> bool:
    from pyxim.lists import check_domain_list

    return _run_matcher(ev, check_domain_list, _c(args[0]), _c(args[1]), clears_value=True)


@condition("match_local_part", nargs=2)
def cond_match_local_part(ev: Evaluation, args: list[str]) -> bool:
    from pyxim.lists import check_localpart_list

    # Exim matches local parts caselessly here (match_isinlist's caseless flag is TRUE).
    return _run_matcher(ev, check_localpart_list, _c(args[0]), _c(args[1]), clears_value=True, caseless=True)


@condition("match_address", nargs=2)
def cond_match_address(ev: Evaluation, args: list[str]) -> bool:
    from pyxim.lists import check_address_list

    return _run_matcher(ev, check_address_list, _c(args[0]), _c(args[1]), clears_value=False)


@condition("match_ip", nargs=2)
def cond_match_ip(ev: Evaluation, args: list[str]) -> bool:
    from pyxim.lists import check_ip_list

    address = _c(args[0])
    # An empty address is allowed (it stands for a local caller, matched by an
    # empty list item); anything else must be an IP address, without a mask.
    if address and ip_version(address) == 0:
        raise ExpansionError(f'"{address}" is not an IP address')
    return _run_matcher(ev, check_ip_list, address, _c(args[1]), clears_value=False)


# -- passwords --------------------------------------------------------------------------------


@condition("crypteq", nargs=2)
def cond_crypteq(ev: Evaluation, args: list[str]) -> bool:
    from pyxim.expand.crypteq import crypteq

    return crypteq(_c(args[0]), _c(args[1]))


# -- authentication backends pyxim does not have ------------------------------------------------
#
# Exim's answer when it was built without the backend a condition needs is
# 'support for "<name>" not compiled'; pyxim has none of these backends, so
# that is its answer too. (Debian's Exim has PAM, LDAP and saslauthd built in,
# so these are not in the differential corpus.) saslauthd takes its arguments
# as one braced group, {{user}{password}{service}{realm}}; the parser hands it
# over as a single argument.


def _not_compiled(name: str) -> None:
    @condition(name, nargs=1)
    def check(ev: Evaluation, args: list[str]) -> bool:
        raise ExpansionError(f'support for "{name}" not compiled')


for _name in ("pam", "radius", "ldapauth", "pwcheck", "saslauthd"):
    _not_compiled(_name)

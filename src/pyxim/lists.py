"""Exim lists: splitting, and matching domain, host, address and local-part lists.

Splitting follows Exim's string_nextinlist(): items are separated by `:`
unless the list starts with `<` and a punctuation or control character, which
then becomes the separator; a doubled separator stands for one literal
separator character inside an item (not for control-character separators);
white space around items is dropped; a trailing separator does not make an
empty last item.

Matching follows Exim's match_check_list(): items are tried in order and the
first that matches decides, a `!` item making that a "no"; when nothing
matches, the list matches only if its last item was negative (`!a : !b` means
"anything but a or b"). Items can be `+name` (a named list), a file name
(`/path`, whose lines are items), a lookup (`lsearch;/file`, `net24-iplsearch;
/file`), `^regex`, `*suffix`, and the `@` specials. A successful match also
yields a value (Exim's $value for the match_* conditions, $domain_data and
$local_part_data for routers and ACLs: the lookup data or the matching item)
and the numeric variables ($0, $1…) the match set.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import string
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from pyxim.errors import ExpansionError, ForcedFail, LookupDefer

if TYPE_CHECKING:  # pragma: no cover
    from pyxim.expand.context import ExpansionContext

_SPACE = " \t\n\v\f\r"  # C isspace()
_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def _carry(result: str, source: str) -> str:
    """The result, tainted when `source` is (pyxim.expand.taint.carry for one source)."""
    if type(source) is str:
        return result
    # Imported late: pyxim.expand imports this module while it initialises.
    from pyxim.expand.taint import carry

    return carry(result, source)


def _lc(text: str) -> str:
    """Lower case as C's tolower() does it: ASCII letters only."""
    return _carry(text.translate(_LOWER), text)


# -- splitting ----------------------------------------------------------------------


def _is_separator_char(ch: str) -> bool:
    # Exim accepts `<` followed by ispunct() or iscntrl() (even the string's end).
    return ch in string.punctuation or (len(ch) == 1 and (ord(ch) < 32 or ord(ch) == 127))


def list_separator(text: str, default: str = ":") -> tuple[str, int]:
    """Return the separator in force for `text` and where the items start."""
    i = 0
    n = len(text)
    while i < n and text[i] in _SPACE:
        i += 1
    if i < n and text[i] == "<":
        if i + 1 >= n:
            return "\x00", n  # `<` at the very end: a NUL separator and no items
        if _is_separator_char(text[i + 1]):
            return text[i + 1], i + 2
    return default, 0


def _iterate(text: str, sep: str, i: int) -> Iterator[str]:
    n = len(text)
    special = ord(sep) < 32 or ord(sep) == 127  # a control-character separator is never doubled
    while True:
        while i < n and text[i] in _SPACE and text[i] != sep:
            i += 1
        if i >= n:
            return
        if text[i] == sep:
            i += 1
            if i >= n or text[i] != sep or special:
                yield _carry("", text)
                continue
        # text[i] is a data character; collect up to the next single separator.
        buf: list[str] = []
        while True:
            j = text.find(sep, i + 1)
            if j < 0:
                buf.append(text[i:])
                i = n
                break
            buf.append(text[i:j])
            i = j + 1
            if i >= n or text[i] != sep or special:
                break
            # a doubled separator: the second one is data
        yield _carry("".join(buf).rstrip(_SPACE), text)


def leading_items(text: str, count: int, default_sep: str = ":") -> tuple[list[str], str | None]:
    """The first `count` items of a list and the unread rest of it, as Exim's
    string_nextinlist leaves its pointer (None when the list ran out first).
    The rest starts just after the separator that ended the last item."""
    sep, i = list_separator(text, default_sep)
    if sep == "\x00":
        return [], None
    items: list[str] = []
    n = len(text)
    special = ord(sep) < 32 or ord(sep) == 127
    while len(items) < count:
        while i < n and text[i] in _SPACE and text[i] != sep:
            i += 1
        if i >= n:
            return items, None
        buf: list[str] = []
        if text[i] == sep and (i + 1 >= n or text[i + 1] != sep or special):
            i += 1  # an empty item
        else:
            while True:
                j = text.find(sep, i + 1) if text[i] != sep else text.find(sep, i + 2)
                if j < 0:
                    buf.append(text[i:])
                    i = n
                    break
                buf.append(text[i:j])
                i = j + 1
                if i >= n or text[i] != sep or special:
                    break
        items.append(_carry("".join(buf).rstrip(_SPACE), text))
    return items, _carry(text[i:], text)


def iterate_list(text: str, default_sep: str = ":") -> Iterator[str]:
    """Yield the items of an Exim list, keeping the taint of `text`."""
    sep, i = list_separator(text, default_sep)
    if sep == "\x00":
        return iter(())
    return _iterate(text, sep, i)


def iterate_fixed(text: str, sep: str) -> Iterator[str]:
    """Items of a list whose separator is fixed (no `<` change), e.g. lookup options."""
    return _iterate(text, sep, 0)


@lru_cache(maxsize=4096)
def _items(text: str) -> tuple[str, ...]:
    return tuple(iterate_list(text))


def list_items(text: str) -> list[str]:
    """The items of a list to match: configuration lists are split once and remembered
    (only untainted text: the items of tainted text must stay tainted)."""
    return list(_items(text)) if type(text) is str else list(iterate_list(text))


def split_list(text: str, default_sep: str = ":") -> tuple[str, list[str]]:
    """Return (separator, items) of an Exim list."""
    sep, _ = list_separator(text, default_sep)
    return sep, list(iterate_list(text, default_sep))


def quote_list_item(item: str, sep: str = ":") -> str:
    """Double every separator in `item` so it survives as one list item."""
    return _carry(item.replace(sep, sep + sep), item)


# -- results ----------------------------------------------------------------------


@dataclass(slots=True)
class ListMatch:
    """The outcome of matching a list.

    `value` is what Exim puts in $value after a match_* condition (and in
    $domain_data / $local_part_data for routers and ACLs): the data of a
    matching lookup, otherwise the matching item. `captures` are $0, $1… as the
    matching item set them (None: leave them alone)."""

    matched: bool
    value: str | None = None
    captures: list[str] | None = None

    def __bool__(self) -> bool:
        return self.matched


class ListDefer(LookupDefer):
    """A list match could not complete. `detail` is Exim's search_error_message."""

    def __init__(self, listtext: str, detail: str) -> None:
        super().__init__(f'unable to complete match against "{listtext}": {detail}')
        self.listtext = listtext
        self.detail = detail


@dataclass(slots=True)
class _Hit:
    value: str | None
    captures: list[str] | None


class _Unknown(Exception):
    """Exim's ERROR from a host item: a name or address could not be found.

    The whole list then fails, unless +include_unknown / +ignore_unknown says otherwise."""


class _ItemDefer(Exception):
    def __init__(self, message: str | None) -> None:
        super().__init__(message)
        self.message = message


_KIND_NAMES = {"domain": "domain", "localpart": "local part", "address": "address", "host": "host"}


def _log(ctx: ExpansionContext, line: str) -> None:
    """Exim writes some list problems to its main log; we keep them with the context."""
    lines = ctx.lookup_cache.setdefault(("_state", "log"), [])
    lines.append(line)
    del lines[:-100]  # keep the latest only


def _named_lists(ctx: ExpansionContext) -> dict[str, object]:
    config = ctx.config
    return config.named_lists if config is not None else {}


def _primary_hostname(ctx: ExpansionContext) -> str:
    if ctx.config is not None and ctx.config.main.get("primary_hostname"):
        return str(ctx.config.main["primary_hostname"])
    from pyxim.expand.variables import system_hostname

    return system_hostname()


@dataclass(slots=True)
class _Slots:
    """What a list match leaves behind, as Exim's globals do.

    `value` is Exim's *valueptr (what becomes $value): string comparisons and
    lookups set it (None when they do not match); IP comparisons and regular
    expressions in address lists leave it alone (`value_set` says whether
    anything wrote it). A list that matches by running off its end after `!`
    items reports whatever the last check left. `captures` are $0, $1…: None
    while untouched; every string comparison clears them, a match sets them."""

    value: str | None = None
    value_set: bool = False
    captures: list[str] | None = None

    def set_value(self, value: str | None) -> None:
        self.value = value
        self.value_set = True


class _Matcher:
    """How one kind of list matches one item; subclasses mirror Exim's check_* functions."""

    kind = "string"
    named = True  # whether `+name` items refer to named lists
    hit_item: str | None = None  # the item that decided the list (for the -bh trace)
    from_cache = False  # whether the last named list's result was remembered

    def __init__(self, ctx: ExpansionContext, slots: _Slots | None = None) -> None:
        self.ctx = ctx
        self.slots = slots if slots is not None else _Slots()

    def cache_key(self) -> tuple[object, ...] | None:
        return None

    def control(self, item: str) -> bool:
        """Handle a control item such as +caseful; True when `item` was one."""
        return False

    def check(self, item: str) -> _Hit | None:  # pragma: no cover - abstract
        raise NotImplementedError


class _Final(Exception):
    """A decision for the whole list, whatever its remaining items say (+include_unknown…)."""

    def __init__(self, matched: bool) -> None:
        super().__init__(matched)
        self.matched = matched


def _fresh_flags() -> dict[str, bool]:
    return {"include_unknown": False, "ignore_unknown": False, "include_defer": False, "ignore_defer": False}


def _run_list(ctx: ExpansionContext, items: list[str], matcher: _Matcher) -> tuple[bool, _Hit | None]:
    """Exim's match_check_list() over items already split: (matched, the matching item's hit)."""
    flags = _fresh_flags()
    positive = True
    try:
        for raw in items:
            item = raw
            matcher.hit_item = raw  # what a -bh trace names as "matched" when this item decides
            if matcher.control(item):
                continue
            if matcher.kind == "host" and item in _HOST_CONTROLS:
                word = item[1:]
                flags[word] = True
                flags[_HOST_CONTROLS[item]] = False
                continue
            positive = True
            if item.startswith("!"):
                positive = False
                item = item[1:].lstrip(_SPACE)
            if item.startswith("/"):
                hit, positive = _run_file(ctx, item, positive, matcher, flags)
                if hit is not None:
                    return positive, (hit if positive else None)
                continue
            if item.startswith("+") and matcher.named:
                matched, hit = _named(ctx, item, matcher)
                if matched:
                    matcher.hit_item = raw
                    return positive, (hit if positive else None)
                continue
            hit = _one_item(ctx, item, matcher, flags)
            if hit is not None:
                return positive, (hit if positive else None)
    except _Final as final:
        matcher.hit_item = None
        return final.matched, None
    matcher.hit_item = None
    return (False, None) if positive else (True, _Hit(matcher.slots.value, None))


def _trace_list(ctx: ExpansionContext, listtext: str, matcher: _Matcher, matched: bool) -> None:
    """-bh: Exim's 'SUBJECT in "LIST"? yes (matched "ITEM")' line, while an ACL asks for it."""
    trace = ctx.acl_trace
    if trace is None or not trace.lists:
        return
    subject = "host" if matcher.kind == "host" else str(getattr(matcher, "original", ""))
    item = matcher.hit_item
    how = "end of list" if item is None else f'matched "{item}"'
    if item is not None and item.lstrip("!").startswith("+") and matcher.from_cache:
        how += " - cached"
    trace(f'{subject} in "{listtext}"? {"yes" if matched else "no"} ({how})')


_HOST_CONTROLS = {
    "+include_unknown": "ignore_unknown",
    "+ignore_unknown": "include_unknown",
    "+include_defer": "ignore_defer",
    "+ignore_defer": "include_defer",
}


def _one_item(ctx: ExpansionContext, item: str, matcher: _Matcher, flags: dict[str, bool]) -> _Hit | None:
    """Check one item: its hit, or None. Raises _Final, or _ListDeferSignal when it defers."""
    from pyxim.lookups import last_search_error, set_search_error

    try:
        return matcher.check(item)
    except _ItemDefer as exc:
        error = exc.message if exc.message is not None else f'DNS lookup of "{item}" deferred'
        if flags["ignore_defer"]:
            return None
        if flags["include_defer"]:
            _log(ctx, f"{error}: accepted by +include_defer")
            raise _Final(True) from None
        # Exim keeps the last lookup's message when there is one, even an empty one.
        detail = last_search_error(ctx)
        if detail == "NULL":
            detail = error
            set_search_error(ctx, error)
        raise _ListDeferSignal(detail) from None
    except _Unknown as exc:
        if flags["ignore_unknown"]:
            return None
        if flags["include_unknown"]:
            _log(ctx, f"{exc}: accepted by +include_unknown")
            raise _Final(True) from None
        raise _Final(False) from None


def _run_file(
    ctx: ExpansionContext, filename: str, positive: bool, matcher: _Matcher, flags: dict[str, bool]
) -> tuple[_Hit | None, bool]:
    """A file named in a list: each line is an item (comments after #, `!` allowed).

    Returns the hit of the line that matched (or None) and the polarity of that
    line (or of the last line, which decides at the end of the list)."""
    try:
        with open(filename, "rb") as f:
            raw = f.read().decode("utf-8", "surrogateescape")
    except OSError as exc:
        raise ExpansionError(
            f'failed to open {filename} when checking "{filename}": {exc.strerror}'
        ) from None
    file_positive = positive
    for line in raw.split("\n"):
        # In address and local part lists a # starts a comment only after white
        # space or at the line's start: # is a valid local part character.
        cut = line.find("#")
        while cut >= 0:
            if matcher.kind not in ("address", "localpart") or cut == 0 or line[cut - 1] in _SPACE:
                line = line[:cut]
                break
            cut = line.find("#", cut + 1)
        item = line.strip(_SPACE)
        if not item:
            continue
        file_positive = positive
        if item.startswith("!"):
            file_positive = not positive
            item = item[1:].lstrip(_SPACE)
        hit = _one_item(ctx, item, matcher, flags)
        if hit is not None:
            matcher.slots.set_value(item)  # Exim's value is the line, even for a lookup
            return _Hit(item, hit.captures), file_positive
    return None, file_positive


def _named(ctx: ExpansionContext, item: str, matcher: _Matcher) -> tuple[bool, _Hit | None]:
    name = item[1:]
    nl = _named_lists(ctx).get(name)
    if nl is None or getattr(nl, "kind", None) != matcher.kind:
        from pyxim.lookups import last_search_error

        _log(ctx, f'unknown named {_KIND_NAMES.get(matcher.kind, "")} list "{item}"')
        raise _ListDeferSignal(last_search_error(ctx))
    value = str(nl.value)  # type: ignore[attr-defined]
    dynamic = "$" in value or "\\" in value
    key = matcher.cache_key()
    cache_key = ("namedlist", matcher.kind, name, key)
    # Exim remembers the result for a named list, unless its text depends on
    # expansion (the domainlist_cache… forms ask for caching even then).
    use_cache = key is not None and (not dynamic or bool(getattr(nl, "cached", False)))
    matcher.from_cache = use_cache and cache_key in ctx.lookup_cache
    if matcher.from_cache:
        matched, hit, matcher.slots.value, matcher.slots.value_set = ctx.lookup_cache[cache_key]
        return matched, hit
    text = _expand_named(ctx, value, matcher) if dynamic else value
    matched, hit = (False, None) if text is None else _run_list(ctx, list_items(text), matcher)
    if ctx.acl_trace is not None and text is not None:
        _trace_list(ctx, text, matcher, matched)
    matcher.from_cache = False  # (a named list inside this one may have been remembered)
    if use_cache:
        ctx.lookup_cache[cache_key] = (matched, hit, matcher.slots.value, matcher.slots.value_set)
    return matched, hit


def _expand_named(ctx: ExpansionContext, text: str, matcher: _Matcher) -> str | None:
    """Expand a named list; a domain list sees the domain as $domain when none is set."""
    if matcher.kind != "domain" or ctx.variables.get("domain") is not None:
        return _expand_list(ctx, text)
    ctx.variables["domain"] = getattr(matcher, "subject", "")
    try:
        return _expand_list(ctx, text)
    finally:
        del ctx.variables["domain"]


class _ListDeferSignal(Exception):
    """The list cannot be completed; carries Exim's message for ListDefer."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def _expand_list(ctx: ExpansionContext, text: str) -> str | None:
    from pyxim.expand import expand_string
    from pyxim.lookups import last_search_error

    try:
        return expand_string(text, ctx)
    except ForcedFail:
        return None
    except ExpansionError as exc:
        _log(ctx, f'failed to expand "{text}" while checking a list: {exc.message}')
        raise _ListDeferSignal(last_search_error(ctx)) from None


def _match_list(ctx: ExpansionContext, listtext: str, matcher: _Matcher) -> ListMatch:
    """Run a whole (already expanded) list; ListDefer when it cannot complete."""
    try:
        matched, hit = _run_list(ctx, list_items(listtext), matcher)
    except _ListDeferSignal as exc:
        raise ListDefer(listtext, exc.detail) from None
    if ctx.acl_trace is not None:
        _trace_list(ctx, listtext, matcher, matched)
    slots = matcher.slots
    return ListMatch(matched, (slots.value or "") if slots.value_set else None, slots.captures)


# -- matching one string: domains, local parts, plain strings ------------------------------


def _regex_hit(pattern: str, subject: str, caseless: bool, setup: bool) -> _Hit | None:
    from pyxim.expand.regex import compile_pcre

    try:
        rx = compile_pcre(pattern, re.IGNORECASE if caseless else 0)
    except ExpansionError as exc:
        # Exim dies on a bad list regex; its panic-log line is our error.
        m = re.match(r'regular expression error in "(.*)": (.*)$', exc.message, re.S)
        raise ExpansionError(
            f"regular expression error: {m.group(2)} while compiling {pattern}" if m else exc.message
        ) from None
    m = rx.search(subject)
    if m is None:
        return None
    if not setup:
        return _Hit(pattern, None)
    # $0 is the whole subject here, not the matched part; $1… are the groups.
    return _Hit(pattern, [subject] + [_carry(g, subject) for g in m.captures()[1:]])


def _lookup_parts(pattern: str) -> tuple[str, str] | None:
    semi = pattern.find(";")
    if semi < 0:
        return None
    return pattern[:semi], pattern[semi + 1 :].lstrip(_SPACE)


def check_string(
    ctx: ExpansionContext,
    subject: str,
    pattern: str,
    *,
    caseless: bool,
    at_special: bool,
    use_partial: bool = True,
    setup: bool = True,
    original: str | None = None,
    slots: _Slots | None = None,
    value: bool = True,
) -> _Hit | None:
    """Exim's check_string(): one pattern against one string.

    `subject` is already lower-cased when `caseless`; `original` is its
    original form (regular expressions see that, with the caseless flag).
    With `value`, the check writes the slots' value as Exim's does its *valueptr."""
    if slots is not None:
        slots.captures = []
        if value:
            slots.set_value(None)
    hit = _check_string(ctx, subject, pattern, caseless, at_special, use_partial, setup, original)
    if hit is not None and slots is not None:
        if hit.captures is not None:
            slots.captures = hit.captures
        if value:
            slots.set_value(hit.value)
    return hit


def _check_string(
    ctx: ExpansionContext,
    subject: str,
    pattern: str,
    caseless: bool,
    at_special: bool,
    use_partial: bool,
    setup: bool,
    original: str | None,
) -> _Hit | None:
    orig = subject if original is None else original
    if pattern.startswith("^"):
        return _regex_hit(pattern, orig, caseless, setup)
    if pattern.startswith("*"):
        tail = pattern[1:]
        if len(tail) > len(subject):
            return None
        end = subject[len(subject) - len(tail) :]
        if (_lc(end) == _lc(tail)) if caseless else end == tail:
            return _Hit(
                pattern, [subject, _carry(subject[: len(subject) - len(tail)], subject)] if setup else None
            )
        return None
    if at_special and pattern.startswith("@"):
        if pattern == "@":
            pattern = _primary_hostname(ctx)
        elif pattern == "@[]":
            if (
                subject.startswith("[")
                and subject.endswith("]")
                and subject[1:-1] in _local_interface_ips(ctx)
            ):
                return _Hit(pattern, [subject] if setup else None)
            return None
        elif pattern[:4].lower() == "@mx_":
            mx = _mx_item(ctx, subject, pattern)
            if mx is not None:
                return _Hit(pattern, [subject] if setup else None) if mx else None
    parts = _lookup_parts(pattern)
    if parts is None:
        same = _lc(subject) == _lc(pattern) if caseless else subject == pattern
        return _Hit(pattern, [subject] if setup else None) if same else None
    from pyxim import lookups

    spec, rest = parts
    parsed = lookups.parse_spec(spec)
    try:
        if parsed.ltype.query_style:
            result = lookups.search(ctx, parsed, None, rest, use_partial)
        else:
            result = lookups.search(ctx, parsed, rest, subject, use_partial)
    except LookupDefer as exc:
        raise _ItemDefer(exc.message) from None
    if result.value is None:
        return None
    captures = [subject, *(result.captures or ())] if setup else None
    return _Hit(result.value, captures)


class _StringMatcher(_Matcher):
    """Domain lists, local part lists and plain string lists (Exim's check_string)."""

    def __init__(
        self,
        ctx: ExpansionContext,
        kind: str,
        subject: str,
        caseless: bool,
        slots: _Slots | None = None,
        setup: bool = True,
    ) -> None:
        super().__init__(ctx, slots)
        self.setup = setup  # whether a match sets $0, $1…
        self.kind = kind
        self.named = kind in ("domain", "localpart")
        self.original = subject
        self.caseless = caseless
        self.subject = _lc(subject) if caseless else subject
        self.at_special = kind == "domain"

    def cache_key(self) -> tuple[object, ...]:
        return (self.original, self.subject, self.caseless)

    def control(self, item: str) -> bool:
        if self.kind == "localpart" and item == "+caseful":
            self.subject = self.original
            self.caseless = False
            return True
        return False

    def check(self, item: str) -> _Hit | None:
        return check_string(
            self.ctx,
            self.subject,
            item,
            caseless=self.caseless,
            at_special=self.at_special,
            original=self.original,
            setup=self.setup,
            slots=self.slots,
        )


# -- the @ specials of domain lists --------------------------------------------------


def _interface_addresses() -> set[str]:
    """Every address of this host's interfaces (Linux: SIOCGIFCONF and /proc/net/if_inet6)."""
    import array
    import fcntl
    import struct

    found: set[str] = set()
    ifreq_size, count = 40, 64  # struct ifreq on 64-bit Linux
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            buf = array.array("B", bytes(ifreq_size * count))
            request = struct.pack("iL", len(buf), buf.buffer_info()[0])
            size = struct.unpack("iL", fcntl.ioctl(s.fileno(), 0x8912, request))[0]  # SIOCGIFCONF
            data = buf.tobytes()[:size]
            for off in range(0, size, ifreq_size):
                found.add(socket.inet_ntoa(data[off + 20 : off + 24]))
    except OSError:
        pass
    try:
        with open("/proc/net/if_inet6") as f:
            for line in f:
                found.add(str(ipaddress.IPv6Address(bytes.fromhex(line.split()[0]))))
    except (OSError, ValueError, IndexError):
        pass
    return found or {"127.0.0.1"}


def _interface_list(ctx: ExpansionContext, option: str, default: str | None) -> list[str]:
    value = ctx.config.main.get(option) if ctx.config is not None else None
    text = str(value) if value else default
    out: list[str] = []
    if not text:
        return out
    for item in iterate_list(text):
        address = item.strip("[]")
        if ip_address_kind(address, allow_mask=False) is None:
            # "address.port" or "[address]:port": drop the port
            for candidate in (item.rsplit(".", 1)[0], item.rsplit(":", 1)[0].strip("[]")):
                if ip_address_kind(candidate, allow_mask=False) is not None:
                    address = candidate
                    break
        out.append(address)
    return out


def _local_interface_ips(ctx: ExpansionContext) -> set[str]:
    """Exim's host_find_interfaces(): local_interfaces (default: all) and extra_local_interfaces."""
    cached = ctx.lookup_cache.get(("_state", "interfaces"))
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    wanted = _interface_list(ctx, "local_interfaces", "<; 0.0.0.0 ; ::0") + _interface_list(
        ctx, "extra_local_interfaces", None
    )
    ips: set[str] = set()
    actual: set[str] | None = None
    for address in wanted:
        if address in ("0.0.0.0", "::0", "::"):
            actual = _interface_addresses() if actual is None else actual
            v6 = ":" in address
            ips.update(a for a in actual if (":" in a) == v6)
        else:
            ips.add(_canonical_ip(address))
    ctx.lookup_cache[("_state", "interfaces")] = ips
    return ips


def _canonical_ip(address: str) -> str:
    try:
        return str(ipaddress.ip_address(address.split("%", 1)[0]))
    except ValueError:
        return address


def _is_local_host(ctx: ExpansionContext, name: str, addresses: list[str]) -> bool:
    local = _local_interface_ips(ctx)
    if any(_canonical_ip(a) in local for a in addresses):
        return True
    treat = ctx.config.main.get("hosts_treat_as_local") if ctx.config is not None else None
    if treat and match_domain_list(ctx, name, str(treat), record=False):
        return True
    # We cannot list every address a multi-homed host answers on, so the MX
    # host that carries our own primary_hostname counts as local too.
    return _lc(name.rstrip(".")) == _lc(_primary_hostname(ctx))


def _mx_item(ctx: ExpansionContext, domain: str, pattern: str) -> bool | None:
    """@mx_any, @mx_primary, @mx_secondary (optionally /ignore=<ip list>); None: not such an item."""
    rest = pattern[4:]
    which = None
    for word in ("any", "primary", "secondary"):
        if rest[: len(word)].lower() == word:
            which, rest = word, rest[len(word) :]
            break
    if which is None:
        return None
    ignore: list[str] = []
    if rest[:8].lower() == "/ignore=":
        ignore = [_canonical_ip(a) for a in iterate_list(rest[8:])]
    elif rest:
        return None
    resolver = ctx.get_resolver()
    try:
        hosts = resolver.mx_hosts(domain)
        local_prefs: list[int] = []
        for pref, host in hosts:
            found = resolver.addresses_for_name(host)
            addresses = [a for a in found if _canonical_ip(a) not in ignore]
            if found and not addresses:
                continue  # every address of this MX host is to be ignored
            if _is_local_host(ctx, host, addresses):
                local_prefs.append(pref)
    except LookupDefer:
        raise _ItemDefer(f'DNS lookup of "{domain}" deferred') from None
    if not local_prefs:
        return False
    best = min(pref for pref, _ in hosts)
    local_best = min(local_prefs)
    if which == "any":
        return True
    if which == "primary":
        return local_best == best
    return local_best > best


# -- addresses ----------------------------------------------------------------------


class _AddressMatcher(_Matcher):
    kind = "address"

    def __init__(self, ctx: ExpansionContext, address: str, caseless: bool) -> None:
        super().__init__(ctx)
        self.original = address
        self.caseless = caseless
        at = address.rfind("@")
        if caseless:
            self.address = _lc(address)
        elif at >= 0:
            self.address = address[: at + 1] + _lc(address[at + 1 :])
        else:
            self.address = address

    def cache_key(self) -> tuple[object, ...]:
        return (self.original, self.address, self.caseless)

    def control(self, item: str) -> bool:
        if item == "+caseful":
            at = self.original.rfind("@")
            if at >= 0:
                self.address = self.original[:at] + self.address[at:]
            self.caseless = False
            return True
        return False

    def check(self, item: str) -> _Hit | None:
        return check_address(self.ctx, self.address, item, self.caseless, self.slots)


_LOOKUP_NAME = re.compile(r"[A-Za-z0-9-]*\*?@?;")
_AT_DOMAINS = ("", "[]", "mx_any", "mx_primary", "mx_secondary")  # the domain parts of x@@, x@@[]…


def check_address(
    ctx: ExpansionContext, subject: str, pattern: str, caseless: bool, slots: _Slots | None = None
) -> _Hit | None:
    """Exim's check_address(): one address-list item against an address."""
    at = subject.rfind("@")
    if at < 0 and subject:
        _log(
            ctx,
            f'no @ found in the subject of an address list match: subject="{subject}" pattern="{pattern}"',
        )
        return None
    if pattern.startswith("^"):
        hit = check_string(
            ctx, subject, pattern, caseless=caseless, at_special=False, setup=False, slots=slots, value=False
        )
        return _Hit(None, None) if hit else None
    if _LOOKUP_NAME.match(pattern):
        # A lookup of the whole address: partial matching makes no sense here.
        return check_string(
            ctx,
            subject,
            pattern,
            caseless=caseless,
            at_special=False,
            use_partial=False,
            setup=False,
            slots=slots,
        )
    if not subject:
        return _Hit(pattern, None) if pattern == "" else None
    local, domain = subject[:at], subject[at + 1 :]
    if pattern.startswith("@@"):
        return _split_lookup(ctx, subject, local, domain, pattern, caseless, slots)
    pat_at = pattern.rfind("@")
    prefix = ""
    if pat_at >= 0:
        if pat_at > 0 and pattern[pat_at - 1] == "@" and pattern[pat_at + 1 :] in _AT_DOMAINS:
            pat_at -= 1  # local@@, local@@[], local@@mx_any: the domain part is an @ special
        lpat = pattern[:pat_at]
        if lpat.startswith("*"):
            tail = lpat[1:]
            if len(local) < len(tail):
                return None
            end = local[len(local) - len(tail) :]
            if not ((_lc(end) == _lc(tail)) if caseless else end == tail):
                return None
        elif not ((_lc(local) == _lc(lpat)) if caseless else local == lpat):
            return None
        prefix = lpat
        dpattern = pattern[pat_at + 1 :]
    else:
        dpattern = pattern
    matcher = _StringMatcher(ctx, "domain", domain, caseless, slots, setup=False)
    dpattern = dpattern.strip(_SPACE)
    if not dpattern:
        return None  # nothing to match the domain against
    matched, _ = _run_list(ctx, [dpattern], matcher)
    if not matched:
        return None
    # Exim 4.96 reports the item with the domain part replaced by what matched it.
    found = f"{prefix}@{matcher.slots.value or ''}"
    if slots is not None:
        slots.set_value(found)
    return _Hit(found, None)


def _split_lookup(
    ctx: ExpansionContext,
    subject: str,
    local: str,
    domain: str,
    pattern: str,
    caseless: bool,
    slots: _Slots | None,
) -> _Hit | None:
    """`@@lsearch;/file`: look the domain up to get a list of its local parts (">name" chains)."""
    if local == "*":
        return None
    key: str | None = domain
    watchdog = 50
    while key is not None and watchdog > 0:
        watchdog -= 1
        hit = check_string(ctx, key, pattern[2:], caseless=False, at_special=False, setup=False)
        if hit is None or hit.value is None:
            return None
        data = hit.value
        last = data.rfind(":")
        tail = data[last + 1 :].lstrip(_SPACE)
        key = None
        if tail.startswith(">"):
            key = tail[1:].lstrip(_SPACE)
            data = data[: len(data) - len(tail)]
        for item in iterate_list(data):
            positive = True
            if item.startswith("!"):
                positive = False
                item = item[1:].lstrip(_SPACE)
            lp = check_string(
                ctx,
                _lc(local) if caseless else local,
                item,
                caseless=caseless,
                at_special=False,
                setup=False,
                slots=slots,
            )
            if lp is not None:
                return _Hit(lp.value, None) if positive else None
    if watchdog <= 0:
        raise ExpansionError(f"Loop detected in lookup of local part of {subject} in {pattern}")
    return None


# -- IP addresses and hosts ----------------------------------------------------------


def _mask_bits(text: str) -> int | None:
    """A netmask length as Exim reads it with strtol(): "" is 0; None when not a number >= 0."""
    if text == "":
        return 0
    m = re.fullmatch(r"[ \t\n\v\f\r]*([+-]?[0-9]+)", text)
    if m is None or int(m.group(1)) < 0:
        return None
    return int(m.group(1))


def ip_address_kind(text: str, allow_mask: bool = False) -> int | None:
    """Exim's string_is_ip_address(): 4 or 6, or None when `text` is not an address.

    With `allow_mask`, a `/bits` suffix (digits only, any size) is accepted."""
    addr = text
    slash = text.find("/")
    if slash >= 0:
        if not allow_mask:
            return None
        if _mask_bits(text[slash + 1 :]) is None:
            return None
        addr = text[:slash]
    percent = text.find("%")
    if percent >= 0:
        if slash >= 0:
            return None
        if not all(c.isascii() and (c.isalnum() or c in string.punctuation) for c in text[percent + 1 :]):
            return None
        addr = text[:percent]
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    try:
        socket.inet_pton(family, addr)
    except (OSError, ValueError):
        return None
    if family == socket.AF_INET and percent >= 0:
        return None
    return 6 if family == socket.AF_INET6 else 4


def _aton(text: str) -> tuple[int, int]:
    """(bits, value) of an address whose syntax was checked; v4-mapped IPv6 stays IPv6."""
    addr = text.split("/", 1)[0].split("%", 1)[0]
    if ":" in addr:
        return 128, int.from_bytes(socket.inet_pton(socket.AF_INET6, addr), "big")
    return 32, int.from_bytes(socket.inet_pton(socket.AF_INET, addr), "big")


def host_is_in_net(host: str, net: str) -> bool:
    """Exim's host_is_in_net(): is address `host` inside `net` (an address with optional /bits)?

    A v4-mapped IPv6 host (::ffff:a.b.c.d) is compared as IPv4; a mask larger
    than the address compares every bit."""
    hbits, hval = _aton(host)
    if hbits == 128 and hval >> 32 == 0xFFFF:
        hbits, hval = 32, hval & 0xFFFFFFFF
    nbits, nval = _aton(net)
    if hbits != nbits:
        return False
    slash = net.find("/")
    mlen = min(_mask_bits(net[slash + 1 :]) or 0, nbits) if slash >= 0 else nbits
    shift = nbits - mlen
    return hval >> shift == nval >> shift


def _net_key(address: str, mlen: int, sep: str) -> str:
    """Exim's host_nmtoa() of a masked address: IPv6 as eight 4-digit groups joined by `sep`."""
    bits, value = _aton(address)
    if mlen >= 0:
        keep = min(mlen, bits)
        value = value >> (bits - keep) << (bits - keep) if keep else 0
    if bits == 32:
        text = socket.inet_ntoa(value.to_bytes(4, "big"))
    else:
        text = sep.join(f"{(value >> (112 - 16 * i)) & 0xFFFF:04x}" for i in range(8))
    return f"{text}/{mlen}" if mlen >= 0 else text


def _etc_hosts_addresses(name: str) -> list[str]:
    """Addresses /etc/hosts gives `name` (gethostbyname() reads it before the DNS)."""
    out: list[str] = []
    try:
        with open("/etc/hosts", encoding="utf-8", errors="replace") as f:
            for line in f:
                words = line.split("#", 1)[0].split()
                if len(words) >= 2 and any(_lc(w) == _lc(name) for w in words[1:]):
                    out.append(words[0])
    except OSError:
        pass
    return out


class _HostMatcher(_Matcher):
    """Host lists (Exim's check_host). host_name "" means IP-only matching (match_ip)."""

    kind = "host"

    def __init__(self, ctx: ExpansionContext, address: str, host_name: str | None) -> None:
        super().__init__(ctx)
        self.address = address
        self.host_name = host_name
        self.ip_only = host_name == ""

    def cache_key(self) -> tuple[object, ...]:
        return (self.address, self.host_name)

    def check(self, item: str) -> _Hit | None:
        address = self.address
        if item == "*":
            return _Hit(None, None)
        if address == "":
            return _Hit(None, None) if item == "" else None
        if item == "":
            return None
        if item.startswith("@"):
            if item == "@":
                if self.ip_only:
                    raise _Unknown("cannot match host name in match_ip list")
                item = _primary_hostname(self.ctx)
            elif item == "@[]":
                return _Hit(None, None) if _canonical_ip(address) in _local_interface_ips(self.ctx) else None
        if ip_address_kind(item, allow_mask=True) is not None:
            return _Hit(None, None) if host_is_in_net(address, item) else None
        m = re.match(r"[0-9.]*", item)
        end = m.end() if m else 0
        if end == len(item) or (item[end] == "/" and end > 0):
            raise _Unknown("malformed IPv4 address or address mask")
        semi = item.find(";")
        # net[N]-type;… looks up the (masked) address; with match_ip every lookup does.
        net = _net_item(item) if semi >= 0 else None
        if net is None and self.ip_only and semi >= 0 and not item.startswith("net"):
            net = (item[:semi], -1)
        if net is not None:
            return self._ip_lookup(net[0], net[1], item[semi + 1 :])
        if self.ip_only:
            raise _Unknown("cannot match host name in match_ip list")
        if re.fullmatch(r"[A-Za-z0-9._-]+", item):
            return self._forward_match(item)
        if self.host_name is not None:
            return check_string(
                self.ctx,
                _lc(self.host_name),
                item,
                caseless=True,
                at_special=True,
                setup=False,
                slots=self.slots,
            )
        if semi >= 0:
            from pyxim import lookups

            parsed = lookups.parse_spec(item[:semi])
            if parsed.ltype.query_style:
                return check_string(
                    self.ctx, "", item, caseless=True, at_special=True, setup=False, slots=self.slots
                )
        for name in self._sender_host_names():
            hit = check_string(
                self.ctx, _lc(name), item, caseless=True, at_special=True, setup=False, slots=self.slots
            )
            if hit is not None:
                return hit
        return None

    def _ip_lookup(self, spec_text: str, mlen: int, rest: str) -> _Hit | None:
        from pyxim import lookups

        ltype = lookups.find_lookup_type(spec_text)
        if ltype is None:
            raise ExpansionError(f'unknown lookup type "{spec_text}"')
        try:
            if ltype.query_style:
                value = lookups.lookup(self.ctx, spec_text, None, rest)
            else:
                sep = ":" if ltype.name == "iplsearch" else "."
                value = lookups.lookup(self.ctx, spec_text, rest, _net_key(self.address, mlen, sep))
        except LookupDefer as exc:
            self.slots.set_value(None)
            raise _ItemDefer(exc.message) from None
        self.slots.set_value(value)
        return None if value is None else _Hit(value, None)

    def _forward_match(self, name: str) -> _Hit | None:
        addresses = _etc_hosts_addresses(name)
        if not addresses:
            try:
                addresses = self.ctx.get_resolver().addresses_for_name(name)
            except LookupDefer:
                raise _ItemDefer(None) from None
        if not addresses:
            raise _Unknown(f"failed to find IP address for {name}")
        for a in addresses:
            if ip_address_kind(a) is not None and host_is_in_net(a, self.address):
                return _Hit(None, None)
        return None

    def _sender_host_names(self) -> list[str]:
        """The client's name and aliases from a reverse lookup, each confirmed forward."""
        cache_key = ("_state", "host_names", self.address)
        names = self.ctx.lookup_cache.get(cache_key)
        if names is None:
            names = []
            resolver = self.ctx.get_resolver()
            try:
                candidates = resolver.host_names_for_ip(self.address)
            except LookupDefer:
                candidates = []  # Exim: the name lookup failed, whatever the reason
            for name in (c.rstrip(".") for c in candidates):
                try:
                    addresses = {_canonical_ip(a) for a in resolver.addresses_for_name(name)}
                except LookupDefer:
                    continue
                if _canonical_ip(self.address) in addresses:
                    names.append(name)
            self.ctx.lookup_cache[cache_key] = names
            if names and self.ctx.variables.get("sender_host_address") == self.address:
                self.ctx.variables.setdefault("sender_host_name", names[0])
        if not names:
            raise _Unknown(f"failed to find host name for {self.address}")
        return list(names)


def _net_item(item: str) -> tuple[str, int] | None:
    """`net24-lsearch;…` → ("lsearch", 24); `net-lsearch;…` → ("lsearch", -1); else None."""
    m = re.match(r"net(\d*)-([^;]*);", item)
    if not m:
        return None
    return m.group(2), int(m.group(1)) if m.group(1) else -1


# -- the public matchers ---------------------------------------------------------------


def check_domain_list(ctx: ExpansionContext, domain: str, listtext: str) -> ListMatch:
    """Match a domain list (always caseless); ListDefer when a lookup defers."""
    return _match_list(
        ctx, listtext, _StringMatcher(ctx, "domain", domain, caseless=True, slots=_Slots(None, True))
    )


def check_localpart_list(
    ctx: ExpansionContext, local_part: str, listtext: str, caseless: bool = True
) -> ListMatch:
    """Match a local part list; `+caseful` in the list turns caseless matching off."""
    return _match_list(
        ctx, listtext, _StringMatcher(ctx, "localpart", local_part, caseless, _Slots(None, True))
    )


def check_address_list(
    ctx: ExpansionContext, address: str, listtext: str, caseless_localpart: bool = True
) -> ListMatch:
    """Match an address list; domains are always caseless, local parts unless `+caseful`."""
    return _match_list(ctx, listtext, _AddressMatcher(ctx, address, caseless_localpart))


def check_host_list(
    ctx: ExpansionContext, host_address: str, listtext: str, host_name: str | None = None
) -> ListMatch:
    """Match a host list. `host_name` None: look the client's name up (forward-confirmed)
    when an item needs it; "": IP addresses only (as match_ip)."""
    return _match_list(ctx, listtext, _HostMatcher(ctx, host_address, host_name))


def check_ip_list(ctx: ExpansionContext, address: str, listtext: str) -> ListMatch:
    """The match_ip condition: a host list matched on the address alone."""
    if address and ip_address_kind(address) is None:
        raise ExpansionError(f'"{address}" is not an IP address')
    return check_host_list(ctx, address, listtext, host_name="")


def check_string_list(ctx: ExpansionContext, subject: str, listtext: str, caseless: bool = True) -> ListMatch:
    """A plain string list (Exim's MCL_STRING: no named lists, no @ specials)."""
    return _match_list(ctx, listtext, _StringMatcher(ctx, "string", subject, caseless))


def match_domain_list(ctx: ExpansionContext, domain: str, listtext: str, record: bool = True) -> bool:
    """Does `domain` match? Sets $domain_data to the match's value, as Exim does."""
    result = check_domain_list(ctx, domain, listtext)
    if record:
        ctx.variables["domain_data"] = (result.value or "") if result.matched else ""
    return result.matched


def match_localpart_list(
    ctx: ExpansionContext, local_part: str, listtext: str, caseless: bool = True
) -> bool:
    """Does `local_part` match? Sets $local_part_data. Exim matches local parts
    caselessly everywhere (the router option caseful_local_part asks otherwise)."""
    result = check_localpart_list(ctx, local_part, listtext, caseless)
    ctx.variables["local_part_data"] = (result.value or "") if result.matched else ""
    return result.matched


def match_address_list(
    ctx: ExpansionContext, address: str, listtext: str, caseless_localpart: bool = True
) -> bool:
    return check_address_list(ctx, address, listtext, caseless_localpart).matched


def match_host_list(
    ctx: ExpansionContext, host_address: str, listtext: str, host_name: str | None = None
) -> bool:
    return check_host_list(ctx, host_address, listtext, host_name).matched


def match_ip_list(ctx: ExpansionContext, address: str, listtext: str) -> bool:
    return check_ip_list(ctx, address, listtext).matched


def match_wild_key(ctx: ExpansionContext, subject: str, key: str, expand: bool) -> bool:
    """A wildlsearch / nwildlsearch key: a one-item string list, expanded for wildlsearch.

    An expansion failure defers the lookup (Exim's message is empty); a forced
    failure skips the line."""
    text: str | None = key
    if expand and ("$" in key or "\\" in key):
        try:
            text = _expand_list(ctx, key)
        except _ListDeferSignal:
            raise LookupDefer("") from None
        if text is None:
            return False
    assert text is not None
    item = text.strip(_SPACE)
    if item and item[0] not in "^*!/" and ";" not in item:
        return _lc(item) == _lc(subject)  # the common case: a plain key
    try:
        matched, _ = _run_list(ctx, [item], _StringMatcher(ctx, "string", subject, caseless=True))
    except _ListDeferSignal as exc:
        raise LookupDefer(exc.detail) from None
    return matched


def match_pattern(subject: str, pattern: str, caseless: bool = True) -> bool:
    """One string pattern without lookups: `^regex`, `*suffix`, or a literal."""
    from pyxim.expand.context import ExpansionContext

    lowered = _lc(subject) if caseless else subject
    return (
        check_string(
            ExpansionContext(),
            lowered,
            pattern,
            caseless=caseless,
            at_special=False,
            setup=False,
            original=subject,
        )
        is not None
    )


def list_log(ctx: ExpansionContext) -> list[str]:
    """Lines Exim would have written to its main log while matching lists."""
    return list(ctx.lookup_cache.get(("_state", "log"), []))


__all__ = [
    "ListDefer",
    "ListMatch",
    "check_address_list",
    "check_domain_list",
    "check_host_list",
    "check_ip_list",
    "check_localpart_list",
    "check_string_list",
    "host_is_in_net",
    "ip_address_kind",
    "iterate_fixed",
    "iterate_list",
    "list_separator",
    "match_address_list",
    "match_domain_list",
    "match_host_list",
    "match_ip_list",
    "match_localpart_list",
    "match_pattern",
    "match_wild_key",
    "quote_list_item",
    "split_list",
]

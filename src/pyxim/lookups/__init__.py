"""Lookups: a registry of lookup types and the generic part of every lookup.

    ${lookup{key}partial2-lsearch*@{/etc/aliases}}   single-key (file) lookups
    ${lookup dnsdb{mx=example.org}}                  query-style lookups

`search()` does what is common to every type, as Exim's search_find() does:
partial matching (`partialN(affix)-`), the `*` and `*@` defaults, the
`ret=key` option, the key and file rules (an untainted file name, an empty key
finds nothing). Each module in this package registers its types with
register_lookup() when imported; every module is imported here, so adding
`redis.py` is enough.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import stat
import string
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Protocol

from pyxim.errors import ExpansionError, LookupDefer
from pyxim.expand.taint import check_untainted

if TYPE_CHECKING:  # pragma: no cover
    from pyxim.expand.context import ExpansionContext


class LookupType(Protocol):
    name: str
    query_style: bool

    def find(
        self, ctx: ExpansionContext, filename: str | None, key: str, options: dict[str, str]
    ) -> str | None: ...


_TYPES: dict[str, LookupType] = {}


def register_lookup(lookup: LookupType) -> None:
    _TYPES[lookup.name] = lookup
    parse_spec.cache_clear()


def find_lookup_type(name: str) -> LookupType | None:
    _load_all()
    return _TYPES.get(name)


_loaded = False


def _load_all() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for mod in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{mod.name}")


# -- the lookup type text: partialN(affix)-type*@,options ---------------------------


@dataclass(slots=True, frozen=True)
class LookupSpec:
    """A parsed lookup type such as `partial2(.)lsearch*@,ret=full`."""

    ltype: LookupType
    partial: int  # -1: no partial matching; else the minimum number of non-wild components
    affix: str
    star: bool  # `*`: fall back to the key "*"
    star_at: bool  # `*@`: fall back to "*@domain", then "*"
    options: tuple[tuple[str, str], ...]
    ret_key: bool  # `ret=key`: a hit returns the (untainted) key instead of the data


def _split_options(text: str) -> list[str]:
    # Options are a comma list (a doubled comma is a literal one), items trimmed.
    from pyxim.lists import iterate_fixed

    return list(iterate_fixed(text, ","))


@lru_cache(maxsize=512)
def parse_spec(spec: str) -> LookupSpec:
    """Exim's search_findtype_partial(); ExpansionError with Exim's wording for a bad type."""
    _load_all()
    rest = spec
    partial = -1
    affix = ""
    if spec.startswith("partial"):
        i = 7
        digits = ""
        while i < len(spec) and spec[i] in string.digits:
            digits += spec[i]
            i += 1
        partial = int(digits) if digits else 2
        if spec[i : i + 1] == "(":
            j = i + 1
            while j < len(spec) and spec[j] in string.punctuation and spec[j] != ")":
                j += 1
            if spec[j : j + 1] != ")":
                raise ExpansionError(f'format error in lookup type "{spec}"')
            affix = spec[i + 1 : j]
            rest = spec[j + 1 :]
        elif spec[i : i + 1] == "-":
            affix = "*."
            rest = spec[i + 1 :]
        else:
            raise ExpansionError(f'format error in lookup type "{spec}"')
    # The name ends at the first `*` (which sets a default) or at the first
    # comma after it (which starts the options), whichever comes first.
    star = star_at = False
    length = len(rest)
    search_from = 0
    t = rest.find("*")
    if t >= 0:
        length = t
        star_at = rest[t + 1 : t + 2] == "@"
        star = not star_at
        search_from = t
    opts = ""
    c = rest.find(",", search_from)
    if c >= 0:
        length = min(length, c)
        opts = rest[c + 1 :]
    name = rest[:length]
    ltype = _TYPES.get(name)
    if ltype is None:
        raise ExpansionError(f'unknown lookup type "{name}"')
    if ltype.query_style:
        if partial >= 0:
            raise ExpansionError(f'"partial" is not permitted for lookup type "{rest}"')
        if star or star_at:
            raise ExpansionError(f'defaults using "*" or "*@" are not permitted for lookup type "{rest}"')
    options: list[tuple[str, str]] = []
    ret_key = False
    for opt in _split_options(opts):
        name_, _, value = opt.partition("=")
        options.append((name_, value))
        ret_key = ret_key or opt == "ret=key"
    return LookupSpec(ltype, partial, affix, star, star_at, tuple(options), ret_key)


def lookup_type_for_spec(spec: str) -> LookupType:
    return parse_spec(spec).ltype


# -- searching ---------------------------------------------------------------------


@dataclass(slots=True)
class SearchResult:
    """What a search found: the data, and for partial or default matches the
    wild and fixed parts of the key (Exim puts them in $1 and $2)."""

    value: str | None
    wild: str | None = None
    fixed: str | None = None

    @property
    def captures(self) -> tuple[str, str] | None:
        if self.wild is None or self.fixed is None:
            return None
        return (self.wild, self.fixed)


_ERRMSG = ("_state", "search_error_message")


def last_search_error(ctx: ExpansionContext) -> str:
    """Exim's search_error_message as the last lookup left it ("NULL" before any lookup).

    Exim quotes this stale text when a list match defers for a reason that set
    no message of its own (an unknown named list, for example)."""
    value = ctx.lookup_cache.get(_ERRMSG)
    return "NULL" if value is None else value


def set_search_error(ctx: ExpansionContext, message: str) -> None:
    ctx.lookup_cache[_ERRMSG] = message


def search(
    ctx: ExpansionContext,
    spec: str | LookupSpec,
    filename: str | None,
    key: str,
    use_partial: bool = True,
) -> SearchResult:
    """Run a lookup with Exim's partial matching and defaults (`use_partial`
    False ignores a partial- prefix, as address lists do).

    Raises LookupDefer (temporary failure) or ExpansionError (hard error)."""
    try:
        parsed = spec if isinstance(spec, LookupSpec) else parse_spec(spec)
    except ExpansionError as exc:
        set_search_error(ctx, exc.message)
        raise
    ltype = parsed.ltype
    if ltype.query_style:
        filename = None
    elif filename is not None:
        check_untainted(filename, "Tainted filename for search: '%s'")
    options = dict(parsed.options)

    def find(k: str) -> str | None:
        set_search_error(ctx, "")
        if k == "":
            return None  # an empty key never matches anything
        try:
            return ltype.find(ctx, filename, k, options)
        except ExpansionError as exc:
            set_search_error(ctx, exc.message)
            raise

    result = _partial_search(find, key, parsed.partial if use_partial else -1, parsed.affix)
    if result.value is None and parsed.star_at:
        at = key.rfind("@")
        if at > 0:
            value = find("*" + key[at:])
            if value is not None:
                result = SearchResult(value, key[:at], "")
    if result.value is None and (parsed.star or parsed.star_at):
        value = find("*")
        if value is not None:
            result = SearchResult(value, key, "")
    if result.value is not None and parsed.ret_key:
        result.value = str(key)  # de-tainted: the lookup vouched for it
    return result


def _partial_search(find: Callable[[str], str | None], key: str, partial: int, affix: str) -> SearchResult:
    value = find(key)
    if partial < 0:
        return SearchResult(value)
    if value is not None:
        return SearchResult(value, "", key)
    if affix:
        value = find(affix + key)
        if value is not None:
            return SearchResult(value, "", key)
    # Chop leading components while at least `partial` of them remain; when
    # nothing is left, try the affix alone (without a trailing dot).
    dots = key.count(".")
    rest: str | None = key
    while dots >= partial and rest is not None:
        dots -= 1
        cut = rest.find(".")
        if cut < 0:
            if not affix:
                break
            probe = affix[:-1] if len(affix) > 1 and affix.endswith(".") else affix
            fixed = ""
            rest = None  # that was the last thing to try
        else:
            rest = rest[cut + 1 :]
            probe = affix + rest
            fixed = rest
        value = find(probe)
        if value is not None:
            wild_len = len(key) - len(fixed) - 1
            return SearchResult(value, key[: max(wild_len, 0)], fixed)
    return SearchResult(None)


def lookup(ctx: ExpansionContext, spec: str, filename: str | None, key: str) -> str | None:
    """Run a lookup; None when not found. Raises LookupDefer or ExpansionError."""
    return search(ctx, spec, filename, key).value


# -- helpers for the file-based types --------------------------------------------------


def read_lookup_file(filename: str, what: str, checker: str) -> tuple[os.stat_result, bytes]:
    """Open a lookup file as Exim does: its open error, then 'is not a regular file'."""
    try:
        fd = os.open(filename, os.O_RDONLY)  # as fopen(): a directory opens too
    except OSError as exc:
        raise ExpansionError(f"failed to open {filename} for {what}: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ExpansionError(f"{filename} is not a regular file ({checker} lookup)")
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return st, b"".join(chunks)
    finally:
        os.close(fd)


def cached_file(
    ctx: ExpansionContext, tag: str, filename: str, what: str, checker: str, parse: Callable[[bytes], object]
) -> object:
    """The parsed contents of a lookup file, read again only when the file changes."""
    try:
        st = os.stat(filename)
        stamp: tuple[int, int, int] | None = (st.st_mtime_ns, st.st_size, st.st_ino)
    except OSError:
        stamp = None
    cache_key = (tag, filename)
    cached = ctx.lookup_cache.get(cache_key)
    if stamp is not None and cached is not None and cached[0] == stamp:
        return cached[1]
    st, data = read_lookup_file(filename, what, checker)
    parsed = parse(data)
    ctx.lookup_cache[cache_key] = ((st.st_mtime_ns, st.st_size, st.st_ino), parsed)
    return parsed


__all__ = [
    "LookupDefer",
    "LookupSpec",
    "LookupType",
    "SearchResult",
    "cached_file",
    "find_lookup_type",
    "last_search_error",
    "lookup",
    "lookup_type_for_spec",
    "parse_spec",
    "read_lookup_file",
    "register_lookup",
    "search",
]

"""Lookups: a registry of lookup types and the generic part of every lookup.

    ${lookup{key}partial2-lsearch*@{/etc/aliases}}   single-key (file) lookups
    ${lookup dnsdb{mx=example.org}}                  query-style lookups

`lookup()` does what is common to every type, as Exim's search_find() does:
partial matching (`partialN(affix)-`), the `*` and `*@` defaults, `,opt=val`
options, the key and file rules (an absolute, untainted file name). Each
module in this package registers its types with register_lookup() when
imported; every module is imported here, so adding `redis.py` is enough.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
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

    def find(self, ctx: ExpansionContext, filename: str | None, key: str, options: dict[str, str]) -> str | None: ...


_TYPES: dict[str, LookupType] = {}


def register_lookup(lookup: LookupType) -> None:
    _TYPES[lookup.name] = lookup


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


@dataclass(slots=True, frozen=True)
class LookupSpec:
    """A parsed lookup type such as `partial2(.)lsearch*@,ret=full`."""

    ltype: LookupType
    partial: int  # -1: no partial matching; else the minimum number of components
    affix: str
    star: bool  # `*`: fall back to the key "*"
    star_at: bool  # `*@`: fall back to "*@domain", then "*"
    options: tuple[tuple[str, str], ...]


@lru_cache(maxsize=512)
def parse_spec(spec: str) -> LookupSpec:
    _load_all()
    text, _, opts = spec.partition(",")
    partial = -1
    affix = ""
    # partialN-type, or partialN(affix)type with no dash
    m = re.match(r"partial(\d*)(?:\(([^)]*)\)|-)", text)
    if text.startswith("partial"):
        if not m:
            raise ExpansionError(f'format error in lookup type "{text}"')
        partial = int(m.group(1)) if m.group(1) else 2
        affix = m.group(2) if m.group(2) is not None else "*."
        if m.group(2) is not None and not re.fullmatch(r"[*.]*", affix):
            raise ExpansionError(f'format error in lookup type "{text}"')
        text = text[m.end() :]
    star = star_at = False
    if text.endswith("*@"):
        star_at = True
        text = text[:-2]
    elif text.endswith("*"):
        star = True
        text = text[:-1]
    ltype = _TYPES.get(text)
    if ltype is None:
        raise ExpansionError(f'unknown lookup type "{text}"')
    options: list[tuple[str, str]] = []
    for opt in filter(None, (o.strip() for o in opts.split(","))):
        name, _, value = opt.partition("=")
        options.append((name, value))
    return LookupSpec(ltype, partial, affix, star, star_at, tuple(options))


def lookup_type_for_spec(spec: str) -> LookupType:
    return parse_spec(spec).ltype


def lookup(ctx: ExpansionContext, spec: str, filename: str | None, key: str) -> str | None:
    """Run a lookup; None when not found. Raises LookupDefer or ExpansionError."""
    parsed = parse_spec(spec)
    ltype = parsed.ltype
    options = dict(parsed.options)
    if not ltype.query_style:
        if filename is None or not filename.startswith("/"):
            pass  # the type reports its own open failure, as Exim does
        if filename is not None:
            check_untainted(filename, "Tainted filename for search: '%s'")
    value = ltype.find(ctx, filename, key, options)
    if value is not None or ltype.query_style:
        return value
    if parsed.partial >= 0:
        components = key.count(".") + 1
        if components >= parsed.partial and parsed.affix:
            value = ltype.find(ctx, filename, parsed.affix + key, options)
        rest = key
        while value is None and "." in rest:
            rest = rest.split(".", 1)[1]
            if rest.count(".") + 1 < parsed.partial:
                break
            value = ltype.find(ctx, filename, parsed.affix + rest, options)
        if value is not None:
            return value
    if parsed.star_at and "@" in key:
        value = ltype.find(ctx, filename, "*@" + key.rsplit("@", 1)[1], options)
        if value is not None:
            return value
    if parsed.star or parsed.star_at:
        return ltype.find(ctx, filename, "*", options)
    return None


__all__ = [
    "LookupDefer",
    "LookupSpec",
    "LookupType",
    "find_lookup_type",
    "lookup",
    "lookup_type_for_spec",
    "parse_spec",
    "register_lookup",
]

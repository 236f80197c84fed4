"""Linear-search file lookups: lsearch, wildlsearch, nwildlsearch, iplsearch.

The file is read once per modification time and kept in the context's cache
as (key, data, whole entry) records, in order; continuation lines (starting
with white space) join their entry with a single space, as Exim does.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyxim.errors import ExpansionError, LookupDefer
from pyxim.lookups import register_lookup

if TYPE_CHECKING:  # pragma: no cover
    from pyxim.expand.context import ExpansionContext


@dataclass(slots=True)
class Entry:
    key: str
    data: str
    line: str  # the whole (joined) entry, for ret=full


def _parse_key(line: str) -> tuple[str, str]:
    """Split an entry into key and data: a quoted key may hold spaces and colons."""
    if line.startswith('"'):
        buf = []
        i = 1
        while i < len(line) and line[i] != '"':
            if line[i] == "\\" and i + 1 < len(line):
                i += 1
            buf.append(line[i])
            i += 1
        key = "".join(buf)
        rest = line[i + 1 :]
    else:
        i = 0
        while i < len(line) and not line[i].isspace() and line[i] != ":":
            i += 1
        key, rest = line[:i], line[i:]
    rest = rest.lstrip()
    if rest.startswith(":"):
        rest = rest[1:].lstrip()
    return key, rest


def read_entries(ctx: ExpansionContext, filename: str, what: str) -> list[Entry]:
    try:
        st = os.stat(filename)
        cache_key = ("lsearch", filename)
        cached = ctx.lookup_cache.get(cache_key)
        if cached is not None and cached[0] == (st.st_mtime_ns, st.st_size):
            return cached[1]
        with open(filename, encoding="utf-8", errors="surrogateescape") as f:
            text = f.read()
    except OSError as exc:
        raise ExpansionError(f"failed to open {filename} for {what}: {exc.strerror}") from None
    entries: list[Entry] = []
    current: list[str] | None = None
    for raw in text.split("\n"):
        if raw[:1] in (" ", "\t") and current is not None:
            if raw.strip():
                current.append(raw.strip())
            continue
        if current is not None:
            joined = " ".join(current)
            key, data = _parse_key(joined)
            entries.append(Entry(key, data, joined))
            current = None
        if not raw.strip() or raw.startswith("#") or raw[:1] in (" ", "\t"):
            continue
        current = [raw.rstrip()]
    if current is not None:
        joined = " ".join(current)
        key, data = _parse_key(joined)
        entries.append(Entry(key, data, joined))
    ctx.lookup_cache[cache_key] = ((st.st_mtime_ns, st.st_size), entries)
    return entries


def _result(entry: Entry, options: dict[str, str]) -> str:
    return entry.line if options.get("ret") == "full" else entry.data


class LinearSearch:
    name = "lsearch"
    query_style = False

    def find(self, ctx: ExpansionContext, filename: str | None, key: str, options: dict[str, str]) -> str | None:
        lkey = key.lower()
        for entry in read_entries(ctx, filename or "", "linear search"):
            if entry.key.lower() == lkey:
                return _result(entry, options)
        return None


class WildLinearSearch:
    """Keys may be wildcards (`*.example`) or regular expressions (`^…`)."""

    query_style = False

    def __init__(self, name: str, expand_keys: bool) -> None:
        self.name = name
        self.expand_keys = expand_keys

    def find(self, ctx: ExpansionContext, filename: str | None, key: str, options: dict[str, str]) -> str | None:
        from pyxim.lists import match_pattern

        for entry in read_entries(ctx, filename or "", "linear search"):
            pattern = entry.key
            if self.expand_keys and ("$" in pattern or "\\" in pattern):
                from pyxim.expand import ExpansionContext as _Ctx
                from pyxim.expand import expand_string

                try:
                    pattern = expand_string(pattern, _Ctx(config=ctx.config))
                except ExpansionError:
                    raise LookupDefer("") from None
            if match_pattern(key, pattern, caseless=True):
                return _result(entry, options)
        return None


class IpLinearSearch:
    name = "iplsearch"
    query_style = False

    def find(self, ctx: ExpansionContext, filename: str | None, key: str, options: dict[str, str]) -> str | None:
        try:
            address = ipaddress.ip_network(ipaddress.ip_address(key))
        except ValueError:
            raise LookupDefer(
                f'"{key}" is not a valid iplsearch key (an IP address, with optional CIDR mask, is wanted): '
                "in a host list, use net-iplsearch as the search type"
            ) from None
        for entry in read_entries(ctx, filename or "", "linear search"):
            if entry.key == "*":
                if key == "*":
                    return _result(entry, options)
                continue
            try:
                net = ipaddress.ip_network(entry.key, strict=False)
            except ValueError:
                continue
            if net.version == address.version and address.subnet_of(net):  # type: ignore[arg-type]
                return _result(entry, options)
        return None


register_lookup(LinearSearch())
register_lookup(WildLinearSearch("wildlsearch", expand_keys=True))
register_lookup(WildLinearSearch("nwildlsearch", expand_keys=False))
register_lookup(IpLinearSearch())

"""Linear-search file lookups: lsearch, wildlsearch, nwildlsearch, iplsearch.

The file format (Exim's "lsearch"):

    key: data            the colon is optional; white space may surround it
    "key with spaces"    a quoted key may hold spaces and colons, and \\ escapes
      continued data     a line starting with white space continues the entry
    # comment            comment and blank lines end an entry and are skipped

The file is parsed once per modification and kept in the context's cache as a
list of entries in file order. lsearch compares keys caselessly (ASCII);
wildlsearch and nwildlsearch treat each key as a one-item string list
(wildcards, regular expressions, lookups, `!`), wildlsearch expanding it
first; iplsearch keys are IP addresses or networks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyxim.errors import LookupDefer
from pyxim.lookups import cached_file, register_lookup

if TYPE_CHECKING:  # pragma: no cover
    from pyxim.expand.context import ExpansionContext

_SPACE = " \t\n\v\f\r"  # C isspace()
_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


@dataclass(slots=True)
class Entry:
    key: str
    data: str
    full: str  # the key (dequoted) and everything after it, for ret=full


@dataclass(slots=True)
class LsearchFile:
    entries: list[Entry]
    index: dict[str, Entry]  # ASCII-lowercased key -> first entry with that key


def _dequote_key(line: str) -> tuple[str, int]:
    """A quoted key: (the key with escapes interpreted, index after the closing quote)."""
    from pyxim.expand.parser import interpret_escape

    out: list[str] = []
    i = 1
    n = len(line)
    while i < n and line[i] != '"':
        if line[i] == "\\" and i + 1 < n:
            ch, i = interpret_escape(line, i)
            out.append(ch)
            continue
        out.append(line[i])
        i += 1
    if i < n:
        i += 1  # past the closing quote
    return "".join(out), i


def _split_entry(line: str) -> tuple[str, int]:
    """The key of a key line and where the text after it starts."""
    if line.startswith('"'):
        return _dequote_key(line)
    i = 0
    while i < len(line) and line[i] != ":" and line[i] not in _SPACE:
        i += 1
    return line[:i], i


def _data_after_key(rest: str) -> str:
    # Skip white space, one optional colon, and white space again.
    rest = rest.lstrip(_SPACE)
    if rest.startswith(":"):
        rest = rest[1:].lstrip(_SPACE)
    return rest


def parse_lsearch(raw: bytes) -> LsearchFile:
    text = raw.decode("utf-8", "surrogateescape")
    lines = text.split("\n")
    # A final line without a newline keeps its trailing white space, as in Exim.
    physical = [(line.rstrip(_SPACE) if i < len(lines) - 1 else line) for i, line in enumerate(lines)]
    entries: list[Entry] = []
    index: dict[str, Entry] = {}
    i = 0
    n = len(physical)
    while i < n:
        line = physical[i]
        i += 1
        if not line or line[0] == "#" or line[0] in _SPACE:
            continue
        key, end = _split_entry(line)
        rest = line[end:]
        data = _data_after_key(rest)
        full = key + rest
        # Continuation lines: leading white space becomes one space.
        while i < n and physical[i][:1] and physical[i][0] in _SPACE:
            cont = " " + physical[i].lstrip(_SPACE)
            data += cont
            full += cont
            i += 1
        entry = Entry(key, data, full)
        entries.append(entry)
        index.setdefault(key.translate(_LOWER), entry)
    return LsearchFile(entries, index)


def read_entries(ctx: ExpansionContext, filename: str) -> LsearchFile:
    parsed = cached_file(ctx, "lsearch", filename, "linear search", "lsearch", parse_lsearch)
    assert isinstance(parsed, LsearchFile)
    return parsed


def _result(entry: Entry, options: dict[str, str]) -> str:
    return entry.full if options.get("ret") == "full" else entry.data


class LinearSearch:
    name = "lsearch"
    query_style = False

    def find(
        self, ctx: ExpansionContext, filename: str | None, key: str, options: dict[str, str]
    ) -> str | None:
        entry = read_entries(ctx, filename or "").index.get(key.translate(_LOWER))
        return None if entry is None else _result(entry, options)


class WildLinearSearch:
    """Keys may be wildcards (`*.example`), regular expressions (`^…`), lookups or `!` items."""

    query_style = False

    def __init__(self, name: str, expand_keys: bool) -> None:
        self.name = name
        self.expand_keys = expand_keys

    def find(
        self, ctx: ExpansionContext, filename: str | None, key: str, options: dict[str, str]
    ) -> str | None:
        from pyxim.lists import match_wild_key

        for entry in read_entries(ctx, filename or "").entries:
            if match_wild_key(ctx, key, entry.key, self.expand_keys):
                return _result(entry, options)
        return None


class IpLinearSearch:
    """Keys are IP addresses or networks (`192.168.0.0/16`, `"2001:db8::/32"`), or `*`."""

    name = "iplsearch"
    query_style = False

    def find(
        self, ctx: ExpansionContext, filename: str | None, key: str, options: dict[str, str]
    ) -> str | None:
        from pyxim.lists import host_is_in_net, ip_address_kind

        entries = read_entries(ctx, filename or "").entries  # the file is opened before the key is checked
        if key != "*" and ip_address_kind(key, allow_mask=False) is None:
            raise LookupDefer(
                f'"{key}" is not a valid iplsearch key (an IP address, with optional CIDR mask, is wanted): '
                "in a host list, use net-iplsearch as the search type"
            )
        for entry in entries:
            if entry.key == "*" or key == "*":
                if entry.key == key:
                    return _result(entry, options)
                continue
            if ip_address_kind(entry.key, allow_mask=True) is not None and host_is_in_net(key, entry.key):
                return _result(entry, options)
        return None


register_lookup(LinearSearch())
register_lookup(WildLinearSearch("wildlsearch", expand_keys=True))
register_lookup(WildLinearSearch("nwildlsearch", expand_keys=False))
register_lookup(IpLinearSearch())

"""Exim lists: splitting, and matching domain, host, address and local-part lists.

Splitting follows Exim's string_nextinlist(): items are separated by `:`
unless the list starts with `<` and a punctuation character, which then
becomes the separator; a doubled separator stands for one literal separator
character inside an item; white space around items is dropped; a trailing
separator does not make an empty last item.
"""

from __future__ import annotations

from collections.abc import Iterator

from pyxim.expand.taint import carry


def _is_separator_char(ch: str) -> bool:
    # Exim accepts `<` followed by punctuation (or a control character such as
    # newline) as a change of separator.
    return bool(ch) and not ch.isalnum() and not ch.isspace() or ch == "\n"


def list_separator(text: str, default: str = ":") -> tuple[str, int]:
    """Return the separator in force for `text` and where the items start."""
    i = 0
    n = len(text)
    while i < n and text[i].isspace():
        i += 1
    if i + 1 < n and text[i] == "<" and _is_separator_char(text[i + 1]):
        return text[i + 1], i + 2
    return default, 0


def iterate_list(text: str, default_sep: str = ":") -> Iterator[str]:
    """Yield the items of an Exim list, keeping the taint of `text`."""
    sep, i = list_separator(text, default_sep)
    n = len(text)
    while True:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            return
        buf: list[str] = []
        while i < n:
            ch = text[i]
            if ch == sep:
                if i + 1 < n and text[i + 1] == sep:
                    buf.append(sep)
                    i += 2
                    continue
                i += 1
                break
            buf.append(ch)
            i += 1
        yield carry("".join(buf).rstrip(), text)


def split_list(text: str, default_sep: str = ":") -> tuple[str, list[str]]:
    """Return (separator, items) of an Exim list."""
    sep, _ = list_separator(text, default_sep)
    return sep, list(iterate_list(text, default_sep))


def quote_list_item(item: str, sep: str = ":") -> str:
    """Double every separator in `item` so it survives as one list item."""
    return carry(item.replace(sep, sep + sep), item)

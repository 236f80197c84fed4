"""Taint tracking.

Data from outside (SMTP peer, message, DNS answers) is *tainted*. A tainted
value is an instance of `Tainted`, a `str` subclass, so it flows through
ordinary code unchanged; operations that build new strings must carry the
taint forward explicitly with `carry()` — plain `str` methods return `str`.

Exim refuses tainted values as file names (${readfile}, lookup files,
transport paths) and as commands; `check_untainted()` gives its error.
"""

from __future__ import annotations

from collections.abc import Iterable

from pyxim.errors import TaintError


class Tainted(str):
    """A string that came from outside and must not name files or commands."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Tainted({str.__repr__(self)})"


def taint(value: str) -> Tainted:
    return value if isinstance(value, Tainted) else Tainted(value)


def is_tainted(value: object) -> bool:
    return isinstance(value, Tainted)


def carry(result: str, *sources: object) -> str:
    """Return `result`, tainted when any of `sources` is tainted."""
    for src in sources:
        if isinstance(src, Tainted):
            return Tainted(result)
    return result


def join(parts: Iterable[str], sep: str = "") -> str:
    """Join strings, tainting the result if any part (or the separator) is tainted."""
    parts = list(parts)
    text = sep.join(parts)
    if isinstance(sep, Tainted) or any(isinstance(p, Tainted) for p in parts):
        return Tainted(text)
    return text


def check_untainted(value: str, template: str = "Tainted name '%s' for file read not permitted") -> None:
    """Refuse a tainted value with Exim's wording; `template` has one %s for the value."""
    if isinstance(value, Tainted):
        raise TaintError(template % value)

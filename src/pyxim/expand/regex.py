"""PCRE-style regular expressions on top of Python's `re`.

Exim uses PCRE2. Python's `re` agrees on nearly everything an admin writes;
the differences we translate are `\\Q…\\E` quoting, `(?<name>…)` groups,
`\\z`/`\\Z`, and `\\h`. Patterns are compiled once (lru_cache). Errors come back
in Exim's shape: `regular expression error in "<pattern>": <text> at offset N`.
"""

from __future__ import annotations

import re
from functools import lru_cache

from pyxim.errors import ExpansionError


def _translate(pattern: str) -> str:
    out: list[str] = []
    i = 0
    n = len(pattern)
    in_class = False
    while i < n:
        ch = pattern[i]
        if ch == "\\" and i + 1 < n:
            nxt = pattern[i + 1]
            if nxt == "Q" and not in_class:
                end = pattern.find("\\E", i + 2)
                literal = pattern[i + 2 :] if end < 0 else pattern[i + 2 : end]
                out.append(re.escape(literal))
                i = n if end < 0 else end + 2
                continue
            if nxt == "E":
                i += 2
                continue
            if nxt == "z" and not in_class:
                out.append(r"\Z")
            elif nxt == "Z" and not in_class:
                out.append(r"(?=\n?\Z)")
            elif nxt == "h":
                out.append(r"[ \t]")
            else:
                out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            if ch == "]":
                in_class = False
            out.append(ch)
            i += 1
            continue
        if ch == "[":
            in_class = True
            out.append(ch)
            i += 1
            if i < n and pattern[i] == "^":
                out.append("^")
                i += 1
            if i < n and pattern[i] == "]":
                out.append("\\]")
                i += 1
            continue
        if pattern.startswith("(?<", i) and i + 3 < n and pattern[i + 3] not in "=!":
            out.append("(?P<")
            i += 3
            continue
        out.append(ch)
        i += 1
    return "".join(out)


_MESSAGES = {
    "missing ), unterminated subpattern": "missing closing parenthesis",
    "unbalanced parenthesis": "unmatched closing parenthesis",
    "nothing to repeat": "quantifier does not follow a repeatable item",
    "unterminated character set": "missing terminating ] for character class",
}


@lru_cache(maxsize=1024)
def compile_pcre(pattern: str, flags: int = 0) -> re.Pattern[str]:
    try:
        return re.compile(_translate(pattern), flags)
    except re.error as exc:
        text = _MESSAGES.get(exc.msg, exc.msg)
        offset = len(pattern) if text == "missing closing parenthesis" else (exc.pos or 0)
        raise ExpansionError(f'regular expression error in "{pattern}": {text} at offset {offset}') from None

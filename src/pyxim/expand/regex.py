"""Regular expressions as Exim has them: PCRE2, on bytes.

Exim compiles every regex (${sg}, the match condition, ^patterns in lists,
the regex ACL conditions) with PCRE2 and no options: not in UTF mode, so a
pattern works on the bytes of its subject (`.` is one byte of "é"), and `\\w`,
`(?i)` and friends know only ASCII. Its error message is
`regular expression error in "<pattern>": <PCRE2's text> at offset <N>`.

We use the system's PCRE2 library (libpcre2-8, which Exim itself links) through
ctypes, so patterns, matches and error texts are PCRE2's own. Where that library
is missing we fall back to Python's `re` on bytes, translating the PCRE-only
syntax we can (\\Q…\\E, (?<name>…), \\z, \\Z, \\h, POSIX classes) and giving
PCRE2's wording for the common errors; that fallback is an approximation.

`compile_pcre(pattern, flags)` returns a compiled `Regex` (cached): `search()`
on text gives a `Match` whose groups are text again; `search_bytes()` is the
lower-level form ${sg} uses to step through the subject as Exim does.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pyxim.errors import ExpansionError

# Exim's $0..$n: it sets up at most EXPAND_MAXN + 1 numeric variables.
EXPAND_MAXN = 20

# PCRE2 option bits (pcre2.h, stable across 10.x).
PCRE2_CASELESS = 0x00000008
PCRE2_DOTALL = 0x00000020
PCRE2_EXTENDED = 0x00000080
PCRE2_MULTILINE = 0x00000400
PCRE2_ANCHORED = 0x80000000
PCRE2_NOTEMPTY = 0x00000004
PCRE2_NOTEMPTY_ATSTART = 0x00000008
_PCRE2_ERROR_NOMATCH = -1
_UNSET = (1 << (8 * ctypes.sizeof(ctypes.c_size_t))) - 1

# Python re flags callers may pass, and their PCRE2 equivalents.
_FLAG_MAP = ((re.IGNORECASE, PCRE2_CASELESS), (re.MULTILINE, PCRE2_MULTILINE), (re.DOTALL, PCRE2_DOTALL))


def _b(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _s(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def error_message(pattern: str, text: str, offset: int) -> str:
    """Exim's wording for a pattern that does not compile."""
    return f'regular expression error in "{pattern}": {text} at offset {offset}'


@dataclass(slots=True, frozen=True)
class Match:
    """A successful match: byte spans into the subject, (-1, -1) for a group that did not take part."""

    subject: bytes
    spans: tuple[tuple[int, int], ...]

    def group(self, n: int = 0) -> str | None:
        start, end = self.spans[n] if n < len(self.spans) else (-1, -1)
        return None if start < 0 else _s(self.subject[start:end])

    def groups(self) -> tuple[str | None, ...]:
        return tuple(self.group(n) for n in range(1, len(self.spans)))

    def start(self, n: int = 0) -> int:
        return self.spans[n][0]

    def end(self, n: int = 0) -> int:
        return self.spans[n][1]

    def captures(self, limit: int = EXPAND_MAXN + 1) -> list[str]:
        """$0, $1, … as Exim sets them: at most `limit` of them, unset groups empty."""
        return [self.group(n) or "" for n in range(min(len(self.spans), limit))]


# -- the PCRE2 library -------------------------------------------------------------


def _load_pcre2() -> Any:
    name = ctypes.util.find_library("pcre2-8") or "libpcre2-8.so.0"
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        return None
    size_p = ctypes.POINTER(ctypes.c_size_t)
    lib.pcre2_compile_8.restype = ctypes.c_void_p
    lib.pcre2_compile_8.argtypes = [
        ctypes.c_char_p,
        ctypes.c_size_t,
        ctypes.c_uint32,
        ctypes.POINTER(ctypes.c_int),
        size_p,
        ctypes.c_void_p,
    ]
    lib.pcre2_get_error_message_8.restype = ctypes.c_int
    lib.pcre2_get_error_message_8.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t]
    lib.pcre2_code_free_8.restype = None
    lib.pcre2_code_free_8.argtypes = [ctypes.c_void_p]
    lib.pcre2_match_data_create_from_pattern_8.restype = ctypes.c_void_p
    lib.pcre2_match_data_create_from_pattern_8.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.pcre2_match_data_free_8.restype = None
    lib.pcre2_match_data_free_8.argtypes = [ctypes.c_void_p]
    lib.pcre2_match_8.restype = ctypes.c_int
    lib.pcre2_match_8.argtypes = [
        ctypes.c_void_p,
        ctypes.c_char_p,
        ctypes.c_size_t,
        ctypes.c_size_t,
        ctypes.c_uint32,
        ctypes.c_void_p,
        ctypes.c_void_p,
    ]
    lib.pcre2_get_ovector_pointer_8.restype = size_p
    lib.pcre2_get_ovector_pointer_8.argtypes = [ctypes.c_void_p]
    lib.pcre2_get_ovector_count_8.restype = ctypes.c_uint32
    lib.pcre2_get_ovector_count_8.argtypes = [ctypes.c_void_p]
    return lib


_LIB = _load_pcre2()


class _Pcre2Code:
    """A pattern compiled by libpcre2-8; freed with the object."""

    __slots__ = ("_code", "_lib")

    def __init__(self, pattern: str, options: int) -> None:
        self._lib = _LIB
        self._code = None
        raw = _b(pattern)
        err = ctypes.c_int(0)
        offset = ctypes.c_size_t(0)
        code = _LIB.pcre2_compile_8(raw, len(raw), options, ctypes.byref(err), ctypes.byref(offset), None)
        if not code:
            buf = ctypes.create_string_buffer(256)
            _LIB.pcre2_get_error_message_8(err.value, buf, len(buf))
            raise ExpansionError(error_message(pattern, _s(buf.value), offset.value))
        self._code = code

    def __del__(self) -> None:
        if self._code:
            self._lib.pcre2_code_free_8(self._code)
            self._code = None

    def match(self, subject: bytes, start: int, options: int) -> tuple[tuple[int, int], ...] | None:
        lib = self._lib
        md = lib.pcre2_match_data_create_from_pattern_8(self._code, None)
        if not md:
            raise MemoryError("pcre2_match_data_create_from_pattern failed")
        try:
            rc = lib.pcre2_match_8(self._code, subject, len(subject), start, options, md, None)
            if rc == _PCRE2_ERROR_NOMATCH:
                return None
            if rc < 0:
                # Resource limits and the like: Exim treats every negative
                # return as "no match".
                return None
            count = lib.pcre2_get_ovector_count_8(md)
            ovec = lib.pcre2_get_ovector_pointer_8(md)
            spans = []
            for n in range(count):
                s, e = ovec[2 * n], ovec[2 * n + 1]
                spans.append((-1, -1) if s == _UNSET else (s, e))
            return tuple(spans)
        finally:
            lib.pcre2_match_data_free_8(md)


# -- the fallback: Python's re on bytes ---------------------------------------------

_POSIX_CLASSES = {
    "alnum": "a-zA-Z0-9",
    "alpha": "a-zA-Z",
    "ascii": "\\x00-\\x7f",
    "blank": " \\t",
    "cntrl": "\\x00-\\x1f\\x7f",
    "digit": "0-9",
    "graph": "!-~",
    "lower": "a-z",
    "print": " -~",
    "punct": "!-/:-@\\[-`{-~",
    "space": " \\t\\n\\r\\f\\v",
    "upper": "A-Z",
    "word": "a-zA-Z0-9_",
    "xdigit": "0-9A-Fa-f",
}


def _translate(pattern: str) -> str:
    """PCRE-only syntax rewritten for Python's re (the fallback only)."""
    out: list[str] = []
    i = 0
    n = len(pattern)
    in_class = False
    while i < n:
        ch = pattern[i]
        if ch == "\\" and i + 1 < n:
            nxt = pattern[i + 1]
            if nxt == "Q":
                end = pattern.find("\\E", i + 2)
                literal = pattern[i + 2 :] if end < 0 else pattern[i + 2 : end]
                out.append("".join("\\" + c if not c.isalnum() else c for c in literal))
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
                out.append(r"[ \t]" if not in_class else r" \t")
            else:
                out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            if ch == "[" and pattern.startswith("[:", i):
                end = pattern.find(":]", i + 2)
                name = pattern[i + 2 : end] if end > 0 else ""
                if name in _POSIX_CLASSES:
                    out.append(_POSIX_CLASSES[name])
                    i = end + 2
                    continue
            if ch == "]":
                in_class = False
            elif ch == "[":
                ch = "\\["  # a literal [ inside a class (Python warns about nested sets)
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


# Python's texts for the errors an admin is likely to make, in PCRE2's words.
_PY_MESSAGES = {
    "missing ), unterminated subpattern": "missing closing parenthesis",
    "unbalanced parenthesis": "unmatched closing parenthesis",
    "nothing to repeat": "quantifier does not follow a repeatable item",
    "multiple repeat": "quantifier does not follow a repeatable item",
    "unterminated character set": "missing terminating ] for character class",
    "bad escape (end of pattern)": "\\ at end of pattern",
    "look-behind requires fixed-width pattern": "lookbehind assertion is not fixed length",
}


class _PyReCode:
    __slots__ = ("_re",)

    def __init__(self, pattern: str, options: int) -> None:
        flags = 0
        for py_flag, pcre_flag in _FLAG_MAP:
            if options & pcre_flag:
                flags |= py_flag
        try:
            self._re = re.compile(_b(_translate(pattern)), flags)
        except re.error as exc:
            text = _PY_MESSAGES.get(exc.msg, exc.msg)
            if text in ("missing closing parenthesis", "missing terminating ] for character class"):
                offset = len(_b(pattern))  # PCRE2 notices these at the end
            elif text == "\\ at end of pattern":
                offset = len(_b(pattern))
            else:
                offset = exc.pos or 0
            raise ExpansionError(error_message(pattern, text, offset)) from None

    def match(self, subject: bytes, start: int, options: int) -> tuple[tuple[int, int], ...] | None:
        if options & PCRE2_ANCHORED:
            m = self._re.match(subject, start)
        else:
            m = self._re.search(subject, start)
        if m is None:
            return None
        if options & PCRE2_NOTEMPTY and m.start() == m.end():
            # Python cannot ask for a non-empty match here; try the next
            # position, which is what a caller of NOTEMPTY|ANCHORED does next.
            return None
        return tuple(m.span(n) for n in range(self._re.groups + 1))


# -- the public face ----------------------------------------------------------------


class Regex:
    """A compiled Exim regex. Subjects are text (str) or, for search_bytes, bytes."""

    __slots__ = ("pattern", "_code")

    def __init__(self, pattern: str, options: int) -> None:
        self.pattern = pattern
        self._code: _Pcre2Code | _PyReCode = (
            _Pcre2Code(pattern, options) if _LIB is not None else _PyReCode(pattern, options)
        )

    def search_bytes(self, subject: bytes, start: int = 0, options: int = 0) -> Match | None:
        spans = self._code.match(subject, start, options)
        return None if spans is None else Match(subject, spans)

    def search(self, subject: str, pos: int = 0) -> Match | None:
        """Search text; `pos` and the match offsets count bytes of its UTF-8 form."""
        raw = _b(subject)
        if "\x00" in subject:
            raw = raw[: raw.index(b"\x00")]  # Exim's subjects are C strings
        return self.search_bytes(raw, pos)


def pcre_options(flags: int) -> int:
    """PCRE2 compile options for Python re flags (re.IGNORECASE, re.MULTILINE, re.DOTALL)."""
    options = 0
    for py_flag, pcre_flag in _FLAG_MAP:
        if flags & py_flag:
            options |= pcre_flag
    return options


@lru_cache(maxsize=2048)
def compile_pcre(pattern: str, flags: int = 0) -> Regex:
    """Compile once, as Exim would (PCRE2, no UTF); ExpansionError with Exim's text on failure.

    `flags` takes re.IGNORECASE, re.MULTILINE and re.DOTALL.
    """
    if "\x00" in pattern:
        pattern = pattern[: pattern.index("\x00")]
    return Regex(pattern, pcre_options(flags))


def using_pcre2() -> bool:
    """Whether the real PCRE2 library is in use (tests that need PCRE2 exactly check this)."""
    return _LIB is not None

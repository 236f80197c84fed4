"""RFC 2047 encoded words: decoding for $h_ and ${rfc2047d:}, encoding for ${rfc2047:}."""

from __future__ import annotations

import base64
import binascii
import quopri
import re

_WORD = re.compile(r"=\?([^?\s]+)\?([QqBb])\?([^?\s]*)\?=")
_BETWEEN = re.compile(r"(=\?[^?\s]+\?[QqBb]\?[^?\s]*\?=)\s+(?==\?[^?\s]+\?[QqBb]\?[^?\s]*\?=)")


def _decode_word(charset: str, enc: str, text: str) -> str | None:
    charset = charset.split("*", 1)[0]  # RFC 2231 language suffix
    try:
        if enc in "Bb":
            raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=False)
        else:
            raw = quopri.decodestring(text.replace("_", " ").encode("ascii", "replace"), header=True)
        return raw.decode(charset, "replace")
    except (LookupError, binascii.Error, ValueError):
        return None


def decode_header_words(text: str, target_charset: str = "utf-8") -> str:
    """Decode every encoded word in `text`; white space between adjacent words disappears."""
    if "=?" not in text:
        return text
    text = _BETWEEN.sub(r"\1", text)

    def repl(m: re.Match[str]) -> str:
        decoded = _decode_word(m.group(1), m.group(2), m.group(3))
        return m.group(0) if decoded is None else decoded

    return _WORD.sub(repl, text)


def encode_word(text: str, charset: str = "iso-8859-1") -> str:
    """Exim's ${rfc2047:}: Q-encode when anything needs it, else leave the text alone."""
    raw = text.encode(charset if charset.lower() not in ("", "us-ascii") else "latin-1", "surrogateescape")
    special = set(b"?=_()<>@,;:\"\\/[]")
    if all(32 < b < 127 and b not in special for b in raw) and " " not in text:
        return text
    out = [f"=?{charset}?Q?"]
    length = len(out[0])
    for b in raw:
        piece = "_" if b == 32 else (chr(b) if 32 < b < 127 and b not in special else f"={b:02X}")
        if length + len(piece) > 73:
            out.append(f"?= =?{charset}?Q?")
            length = len(charset) + 5
        out.append(piece)
        length += len(piece)
    out.append("?=")
    return "".join(out)

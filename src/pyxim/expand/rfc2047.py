"""RFC 2047 encoded words, the way Exim reads and writes them.

Decoding (Exim's rfc2047_decode2) is used by ${rfc2047d:} and for $h_
header variables; encoding (parse_quote_2047) by ${rfc2047:}.

Exim works on bytes: pyxim strings carry bytes that are not valid UTF-8 as
surrogate escapes, so this module encodes its input to UTF-8 with
surrogateescape, works on the bytes, and decodes its results the same way.
Charset conversion uses Python's codecs where Exim uses iconv(); a charset
Python does not know fails as iconv_open() would.
"""

from __future__ import annotations

import codecs

_SPACE = b" \t\n\v\f\r"
_HEX = b"0123456789abcdefABCDEF"

# Python text codecs that are not character sets iconv() would know.
_NOT_CHARSETS = frozenset({"idna", "punycode", "raw_unicode_escape", "unicode_escape", "undefined"})


def _b(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _s(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


# -- decoding ----------------------------------------------------------------


def _qp_decode(data: bytes) -> bytes | None:
    """The Q encoding: _ is a space, =XX a byte; white space is not allowed. None when malformed."""
    out = bytearray()
    i = 0
    while i < len(data):
        ch = data[i]
        i += 1
        if ch == ord("_"):
            out.append(32)
        elif ch == ord("="):
            pair = data[i : i + 2]
            if len(pair) < 2 or pair[0] not in _HEX or pair[1] not in _HEX:
                return None
            out.append(int(pair, 16))
            i += 2
        elif ch in (32, 9):
            return None
        else:
            out.append(ch)
    return bytes(out)


_B64 = {c: i for i, c in enumerate(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")}


def b64decode(data: bytes) -> bytes | None:
    """Exim's b64decode(): white space ignored, "=" padding checked strictly; None when malformed."""
    out = bytearray()
    i = 0
    n = len(data)

    def next_char() -> int:
        nonlocal i
        while i < n and data[i] in _SPACE:
            i += 1
        if i >= n:
            return -1
        i += 1
        return data[i - 1]

    while True:
        c = next_char()
        if c < 0:
            return bytes(out)
        x = _B64.get(c)
        if x is None:
            return None
        c = next_char()
        y = _B64.get(c) if c >= 0 else None
        if y is None:
            return None
        out.append(((x << 2) | (y >> 4)) & 0xFF)
        c = next_char()
        if c == ord("="):
            if next_char() != ord("=") or next_char() != -1:
                return None
            return bytes(out)
        x = _B64.get(c) if c >= 0 else None
        if x is None:
            return None
        out.append(((y << 4) | (x >> 2)) & 0xFF)
        c = next_char()
        if c == ord("="):
            if next_char() != -1:
                return None
            return bytes(out)
        y = _B64.get(c) if c >= 0 else None
        if y is None:
            return None
        out.append(((x << 6) | y) & 0xFF)


def _find_word(data: bytes, start: int, lencheck: bool) -> tuple[int, int, int, bytes] | None:
    """The next decodable encoded word at or after `start`: (start, charset end, end of ?=, decoded bytes)."""
    pos = start
    while True:
        word = data.find(b"=?", pos)
        if word < 0:
            return None
        q1 = data.find(b"?", word + 2)
        q2 = data.find(b"?", q1 + 1) if q1 >= 0 else -1
        end = data.find(b"?=", q2 + 1) if q2 >= 0 else -1
        if end < 0:
            return None
        pos = word + 2  # a failed candidate may hide a word that starts inside it
        # Words longer than 75 characters are not decoded when check_rfc2047_length is set.
        if (lencheck and end - word > 73) or q2 - q1 != 2:
            continue
        encoding = chr(data[q1 + 1]).upper()
        payload = data[q2 + 1 : end]
        decoded = b64decode(payload) if encoding == "B" else _qp_decode(payload) if encoding == "Q" else None
        if decoded is not None:
            return word, q1, end, decoded


def _charset_codec(name: str) -> codecs.CodecInfo | None:
    try:
        info = codecs.lookup(name)
    except LookupError:
        return None
    if not getattr(info, "_is_text_encoding", True) or info.name in _NOT_CHARSETS:
        return None
    return info


def _convert(raw: bytes, source: codecs.CodecInfo, target: codecs.CodecInfo) -> bytes:
    """iconv() as Exim drives it: convert up to the first byte that fails, then copy the rest unchanged."""
    decoder = source.incrementaldecoder("strict")
    out = bytearray()
    done = 0
    for i in range(len(raw)):
        try:
            chars = decoder.decode(raw[i : i + 1])
        except UnicodeDecodeError:
            break
        if not chars:
            continue  # in the middle of a multibyte sequence
        try:
            out += target.encode(chars, "strict")[0]
        except UnicodeEncodeError:
            break
        done = i + 1
    return bytes(out) + raw[done:]


def rfc2047_decode(
    text: str, target: str | None = "UTF-8", lencheck: bool = True, zeroval: str = "?"
) -> tuple[str, str | None]:
    """Decode every encoded word in `text`, converting to `target` (None: no conversion).

    Returns (decoded text, error). The error, Exim's iconv_open() message,
    is set when a charset is unknown; the text is then still decoded, as far
    as Exim would. White space between two adjacent encoded words vanishes.
    Zero bytes in decoded words become `zeroval`.
    """
    data = _b(text)
    found = _find_word(data, 0, lencheck)
    if found is None:
        return text, None
    target_codec = _charset_codec(target) if target is not None else None
    out = bytearray()
    error: str | None = None
    pos = 0
    zero = _b(zeroval) if zeroval else b"\x00"
    while found is not None:
        word, q1, end, decoded = found
        out += data[pos:word]
        charset = _s(data[word + 2 : q1])
        if target is not None and charset.lower() != target.lower():
            source_codec = _charset_codec(charset)
            if source_codec is None or target_codec is None:
                error = f'iconv_open("{target}", "{charset}") failed: Invalid argument (maybe unsupported conversion)'
            else:
                decoded = _convert(decoded, source_codec, target_codec)
        out += decoded.replace(b"\x00", zero)
        pos = end + 2
        found = _find_word(data, pos, lencheck)
        if found is not None:
            gap = pos
            while gap < len(data) and data[gap] in _SPACE:
                gap += 1
            if gap == found[0]:
                pos = gap
    out += data[pos:]
    return _s(bytes(out)), error


def decode_header_words(text: str, target_charset: str | None = "utf-8") -> str:
    """Decode the encoded words of a header value for $h_ (errors ignored, as Exim does there)."""
    if "=?" not in text:
        return text
    return rfc2047_decode(text, target_charset)[0]


# -- encoding ----------------------------------------------------------------

_MUST_ENCODE = frozenset(b'?=()<>@,;:\\".[]_')


def encode_word(text: str, charset: str | None = "iso-8859-1", fold: bool = False) -> str:
    """Exim's parse_quote_2047(): Q-encode `text` when anything but spaces needs it, else return it as is.

    Encoded words are kept near 75 characters: a new one starts (after
    "?= ", or "?=\\n " when folding) between the two halves of no "=XX=XX" pair.
    """
    header = f"=?{charset or 'iso-8859-1'}?Q?"
    out = header
    line_start = len(header)
    coded = False
    first_byte = False
    for ch in _b(text):
        if len(out) - line_start > 67 and not first_byte:
            out += "?=\n " if fold else "?= "
            line_start = len(out)
            out += header
        if ch < 33 or ch > 126 or ch in _MUST_ENCODE:
            if ch == 32:
                out += "_"
                first_byte = False
            else:
                out += f"={ch:02X}"
                coded = True
                first_byte = not first_byte
        else:
            out += chr(ch)
            first_byte = False
    return out + "?=" if coded else text

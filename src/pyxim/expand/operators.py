"""Expansion operators: ${name:argument} and ${name_params:argument}.

Every operator of Exim 4.96 is here, plus ${xtextd:} and ${headerwrap:}
from later Exims. Each one registers with `@operator`; the parser finds
`name_sub` forms by splitting at the first underscore, and, as in Exim, an
operator that takes no parameters simply ignores them (${lc_x:A} is "a").
The evaluator carries the argument's taint to the result.

Bytes: Exim works on bytes. pyxim strings carry bytes that are not valid
UTF-8 as surrogate escapes (the command line reads and writes with
surrogateescape), so an operator that counts, slices, hashes or escapes does
so on the UTF-8 bytes: `_b()` turns the argument into those bytes and
`_s()` turns a result back. ${length_1:é} is therefore one byte, half a
character, exactly as in Exim.

C behaviour: where Exim relies on a C library call (strtoul, int
arithmetic, sscanf) the operators reproduce what that call does with odd
input; see arith.py for the helpers.
"""

from __future__ import annotations

import base64
import hashlib
import os
import random
import stat as statmod
from collections.abc import Callable
from typing import TYPE_CHECKING

from pyxim.errors import ExpansionError
from pyxim.expand.arith import C_SPACE, evaluate, string_integer, strtol, strtoul, wrap_int
from pyxim.expand.registry import operator as _register
from pyxim.expand.taint import carry
from pyxim.lists import iterate_list, list_separator

if TYPE_CHECKING:  # pragma: no cover
    from pyxim.expand.evaluate import Evaluation

OperatorFunc = Callable[["Evaluation", str, "str | None"], str]


def operator(*names: str, takes_sub: bool = False) -> Callable[[OperatorFunc], OperatorFunc]:
    """Register an operator that, like Exim's, sees its argument as a C string.

    Exim's strings end at a zero byte, so an argument such as "a\\x00b" is "a"
    to every operator. `takes_sub` marks the operators that read a _suffix;
    Exim lets every other one have a suffix too, and ignores it.
    """

    def register(func: OperatorFunc) -> OperatorFunc:
        def call(ev: Evaluation, arg: str, sub: str | None) -> str:
            if "\x00" in arg:
                arg = carry(arg[: arg.index("\x00")], arg)
            return func(ev, arg, sub)

        call.__name__ = call.__qualname__ = func.__name__
        call.__doc__ = func.__doc__
        _register(*names, takes_sub=takes_sub)(call)
        return func

    return register


def _b(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _s(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def _main_option(ev: Evaluation, name: str, default: object = None) -> object:
    config = ev.ctx.config
    if config is None:
        return default
    value = config.main.get(name)
    return default if value is None else value


def _flag(ev: Evaluation, name: str, default: bool) -> bool:
    value = _main_option(ev, name, default)
    if isinstance(value, str):
        return value.strip().lower() in ("true", "yes", "1")
    return bool(value)


def _headers_charset(ev: Evaluation) -> str:
    return str(_main_option(ev, "headers_charset", "UTF-8") or "UTF-8")


_DIGITS = b"0123456789"
_ALNUM = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")


# -- case and length ---------------------------------------------------------

_LOWER = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", b"abcdefghijklmnopqrstuvwxyz")
_UPPER = bytes.maketrans(b"abcdefghijklmnopqrstuvwxyz", b"ABCDEFGHIJKLMNOPQRSTUVWXYZ")


@operator("lc")
def op_lc(ev: Evaluation, arg: str, sub: str | None) -> str:
    return _s(_b(arg).translate(_LOWER))  # ASCII only, as in the C locale


@operator("uc")
def op_uc(ev: Evaluation, arg: str, sub: str | None) -> str:
    return _s(_b(arg).translate(_UPPER))


@operator("strlen")
def op_strlen(ev: Evaluation, arg: str, sub: str | None) -> str:
    return str(len(_b(arg)))


# -- length, substr, hash, nhash: the _N and _N_M forms ----------------------


def _sub_values(opname: str, sub: str | None, single: bool) -> tuple[int, int]:
    """The numbers after the operator name, read the way Exim reads them.

    Returns (value1, value2); value2 is -1 when not given. `single` is for
    length/l, whose only number is value2. Numbers are C ints (they wrap);
    only substr/s accepts a leading minus sign.
    """
    if sub is None:
        raise ExpansionError(f"missing values after {opname}")
    name = f"{opname}_{sub}"
    value1, value2, sign = 0, -1, 1
    second = single  # filling value2?
    if single:
        value2 = 0
    text = sub
    if not single and opname[0] == "s" and text.startswith("-"):
        sign = -1
        text = text[1:]
    i = 0
    while i < len(text):
        ch = text[i]
        if i != 0 and ch == "_" and not second:
            second = True
            value2 = 0
            if i + 1 < len(text):
                i += 1
            continue
        if ch not in "0123456789":
            raise ExpansionError(f'non-digit after underscore in "{name}"')
        if second:
            value2 = wrap_int(value2 * 10 + int(ch), 32)
        else:
            value1 = wrap_int(value1 * 10 + int(ch), 32)
        i += 1
    return value1 * sign, value2


def substring(data: bytes, start: int, length: int | None) -> bytes:
    """Exim's extract_substr().

    A negative start counts from the end, and then a missing length means
    "everything to the left of it"; a start past the end gives nothing.
    """
    n = len(data)
    value1 = start
    value2 = -1 if length is None else length
    if value1 < 0:
        value1 += n
        if value1 < 0:
            value2 = max(value2 + value1, 0)
            value1 = 0
        elif value2 < 0:
            value2, value1 = value1, 0
    elif value1 > n:
        value1, value2 = n, 0
    elif value2 < 0:
        value2 = n
    if value1 + value2 > n:
        value2 = n - value1
    return data[value1 : value1 + max(value2, 0)]


# Exim's hash alphabet, with its historical "rts" order kept.
_HASHCODES = b"abcdefghijklmnopqrtsuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
# compute_nhash() weights the bytes with the thirty primes from 2 to 113
_PRIMES = tuple(p for p in range(2, 114) if all(p % d for d in range(2, p)))


def text_hash(data: bytes, length: int, limit: int = 26) -> bytes:
    """Exim's compute_hash(): `length` characters drawn from the first `limit` hash codes.

    A string no longer than `length` is returned unchanged.
    """
    if limit > len(_HASHCODES):
        raise ExpansionError(f'hash count "{limit}" too big')
    if length >= len(data):
        return data
    if limit <= 0:
        # Exim divides by zero here and dies; refuse instead.
        raise ExpansionError(f'hash count "{limit}" too small')
    buf = bytearray(data)
    i = 0
    for j in range(length, len(data)):
        c = data[j]
        shift = (c + j) & 7
        buf[i] ^= ((c << shift) | (c >> (8 - shift))) & 0xFF
        i = i + 1 if i + 1 < length else 0
    return bytes(_HASHCODES[buf[k] % limit] for k in range(length))


def numeric_hash(data: bytes, value1: int, value2: int | None) -> str:
    """Exim's compute_nhash(): "n" below value1, or "a/b" for a div/mod hash."""
    total = 0
    i = 0
    for c in data:
        if i == 0:
            i = len(_PRIMES) - 1
        total += _PRIMES[i] * c
        i -= 1
    total &= (1 << 64) - 1  # an unsigned long
    # The moduli are C ints turned into unsigned longs.
    if value2 is None or value2 < 0:
        modulus = value1 & ((1 << 64) - 1)
        if modulus == 0:
            raise ExpansionError(f'nhash modulus "{value1}" is zero')  # Exim divides by zero
        return str(total % modulus)
    product = wrap_int(value1 * value2, 32) & ((1 << 64) - 1)
    divisor = value2 & ((1 << 64) - 1)
    if product == 0 or divisor == 0:
        raise ExpansionError(f'nhash modulus "{value1}_{value2}" is zero')
    total %= product
    return f"{total // divisor}/{total % divisor}"


def _register_sized(opname: str, compute: Callable[[bytes, int, int], str | bytes], single: bool) -> None:
    def op(ev: Evaluation, arg: str, sub: str | None) -> str:
        value1, value2 = _sub_values(opname, sub, single)
        result = compute(_b(arg), value1, value2)
        return _s(result) if isinstance(result, bytes) else result

    operator(opname, takes_sub=True)(op)


for _name in ("length", "l"):
    _register_sized(_name, lambda data, v1, v2: substring(data, 0, v2), single=True)
for _name in ("substr", "s"):
    _register_sized(_name, lambda data, v1, v2: substring(data, v1, None if v2 < 0 else v2), single=False)
for _name in ("hash", "h"):
    _register_sized(_name, lambda data, v1, v2: text_hash(data, v1, 26 if v2 < 0 else v2), single=False)
for _name in ("nhash", "nh"):
    _register_sized(_name, lambda data, v1, v2: numeric_hash(data, v1, None if v2 < 0 else v2), single=False)


# -- digests -------------------------------------------------------------------


@operator("md5")
def op_md5(ev: Evaluation, arg: str, sub: str | None) -> str:
    return hashlib.md5(_b(arg)).hexdigest()


@operator("sha1")
def op_sha1(ev: Evaluation, arg: str, sub: str | None) -> str:
    return hashlib.sha1(_b(arg)).hexdigest().upper()


@operator("sha2", "sha256", takes_sub=True)
def op_sha2(ev: Evaluation, arg: str, sub: str | None) -> str:
    # ${sha256_N:} reads its suffix exactly as ${sha2_N:} does, in Exim too.
    algo = {None: "sha256", "256": "sha256", "384": "sha384", "512": "sha512"}.get(sub)
    if algo is None:
        raise ExpansionError("unrecognised sha2 variant")
    return hashlib.new(algo, _b(arg)).hexdigest().upper()


@operator("sha3", takes_sub=True)
def op_sha3(ev: Evaluation, arg: str, sub: str | None) -> str:
    algo = {None: "sha3_256", "224": "sha3_224", "256": "sha3_256", "384": "sha3_384", "512": "sha3_512"}.get(
        sub
    )
    if algo is None:
        raise ExpansionError("unrecognised sha3 variant")
    return hashlib.new(algo, _b(arg)).hexdigest().upper()


# -- number bases --------------------------------------------------------------

_B32 = "abcdefghijklmnopqrstuvwxyz234567"
_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_ULONG = (1 << 64) - 1


def _decimal_ulong(arg: str, opname: str) -> int:
    """strtoul(arg, &end, 10) that must consume everything (leading white space and a sign are fine)."""
    value, end = strtoul(arg)
    if end < len(arg):
        raise ExpansionError(f'argument for {opname} operator is "{arg}", which is not a decimal number')
    return value


@operator("base32")
def op_base32(ev: Evaluation, arg: str, sub: str | None) -> str:
    n = _decimal_ulong(arg, "base32")
    out = ""
    while n:
        out = _B32[n & 31] + out
        n >>= 5
    return out


def _decode_digits(arg: str, alphabet: str, base: int, opname: str) -> str:
    n = 0
    for ch in _b(arg):
        idx = alphabet.find(chr(ch))
        if idx < 0:
            raise ExpansionError(
                f'argument for {opname} operator is "{arg}", which is not a base {base} number'
            )
        n = (n * base + idx) & _ULONG
    return str(wrap_int(n))  # printed with %ld


@operator("base32d")
def op_base32d(ev: Evaluation, arg: str, sub: str | None) -> str:
    return _decode_digits(arg, _B32, 32, "base32d")


@operator("base62")
def op_base62(ev: Evaluation, arg: str, sub: str | None) -> str:
    n = _decimal_ulong(arg, "base62")
    out = ""
    for _ in range(6):  # Exim's string_base62_32(): always six digits
        out = _B62[n % 62] + out
        n //= 62
    return out


@operator("base62d")
def op_base62d(ev: Evaluation, arg: str, sub: str | None) -> str:
    return _decode_digits(arg, _B62, 62, "base62d")


# -- base64 and friends --------------------------------------------------------


@operator("base64", "str2b64")
def op_base64(ev: Evaluation, arg: str, sub: str | None) -> str:
    return base64.b64encode(_b(arg)).decode("ascii")


@operator("base64d")
def op_base64d(ev: Evaluation, arg: str, sub: str | None) -> str:
    from pyxim.expand.rfc2047 import b64decode

    data = b64decode(_b(arg))
    if data is None:
        raise ExpansionError(f'string "{arg}" is not well-formed for "base64d" operator')
    return _s(data.split(b"\x00", 1)[0])  # the result is a C string: it ends at a zero byte


@operator("hex2b64")
def op_hex2b64(ev: Evaluation, arg: str, sub: str | None) -> str:
    data = _b(arg)
    if any(c not in b"0123456789abcdefABCDEF" for c in data):
        raise ExpansionError(f'"{arg}" is not a hex string')
    if len(data) % 2:
        raise ExpansionError(f'"{arg}" contains an odd number of characters')
    return base64.b64encode(bytes.fromhex(data.decode("ascii"))).decode("ascii")


@operator("xtextd")
def op_xtextd(ev: Evaluation, arg: str, sub: str | None) -> str:
    """RFC 3461 xtext decoding: +XX is a byte (Exim 4.97+; pyxim has it already).

    Malformed xtext (a bad +XX, a character outside 33..126 or "=") gives "".
    """
    data = _b(arg)
    out = bytearray()
    i = 0
    while i < len(data):
        c = data[i]
        if c < 33 or c > 127 or c == ord("="):
            return ""
        if c == ord("+"):
            pair = data[i + 1 : i + 3]
            if len(pair) < 2 or any(x not in b"0123456789abcdefABCDEF" for x in pair):
                return ""
            out.append(int(pair, 16))
            i += 3
            continue
        out.append(c)
        i += 1
    return _s(bytes(out))


# -- quoting and escaping ------------------------------------------------------


@operator("hexquote")
def op_hexquote(ev: Evaluation, arg: str, sub: str | None) -> str:
    return "".join(chr(b) if 0x21 <= b <= 0x7E else f"\\x{b:02x}" for b in _b(arg))


_C_ESCAPES = {10: "\\n", 13: "\\r", 8: "\\b", 11: "\\v", 12: "\\f", 9: "\\t"}


def string_printing(data: bytes, escape_tab: bool = False, top_bit_printable: bool = False) -> str:
    """Exim's string_printing2(): non-printing bytes become C escapes (\\n, \\t…) or \\ooo.

    Tab counts as printing unless `escape_tab`; bytes above 127 count as
    printing only with print_topbitchars. Backslashes are left alone.
    """
    out = bytearray()
    for b in data:
        if 0x20 <= b <= 0x7E or (b == 9 and not escape_tab) or (top_bit_printable and b > 127):
            out.append(b)
        else:
            escape = _C_ESCAPES.get(b)
            out += escape.encode("ascii") if escape else f"\\{b:03o}".encode("ascii")
    return _s(bytes(out))


@operator("escape")
def op_escape(ev: Evaluation, arg: str, sub: str | None) -> str:
    return string_printing(_b(arg), top_bit_printable=_flag(ev, "print_topbitchars", False))


@operator("escape8bit")
def op_escape8bit(ev: Evaluation, arg: str, sub: str | None) -> str:
    return "".join(chr(c) if c < 127 and c != 92 else f"\\{c:03o}" for c in _b(arg))


def _c_quoted(data: bytes) -> str:
    out = bytearray(b'"')
    for c in data:
        if c == 10:
            out += b"\\n"
        elif c == 13:
            out += b"\\r"
        else:
            if c in b'\\"':
                out.append(92)
            out.append(c)
    out.append(34)
    return _s(bytes(out))


@operator("quote", takes_sub=True)
def op_quote(ev: Evaluation, arg: str, sub: str | None) -> str:
    if sub is not None:  # ${quote_<lookup type>[_option]:…}
        name, underscore, option = sub.partition("_")
        return quote_for_lookup(name, option if underscore else None, arg)
    data = _b(arg)
    if data and all(c in _ALNUM or c in b"_-." for c in data):
        return arg
    return _c_quoted(data)


_LOCAL_PART_SPECIALS = frozenset(b"!#$%&'*+-/=?^_`{|}~")


@operator("quote_local_part")
def op_quote_local_part(ev: Evaluation, arg: str, sub: str | None) -> str:
    data = _b(arg)
    needs = not data or any(
        c not in _ALNUM and c not in _LOCAL_PART_SPECIALS and (c != ord(".") or i == 0 or i == len(data) - 1)
        for i, c in enumerate(data)
    )
    return _c_quoted(data) if needs else arg


@operator("rxquote")
def op_rxquote(ev: Evaluation, arg: str, sub: str | None) -> str:
    out = bytearray()
    for c in _b(arg):
        if c not in _ALNUM:
            out.append(92)
        out.append(c)
    return _s(bytes(out))


def quote_for_lookup(name: str, option: str | None, arg: str) -> str:
    """${quote_<type>[_<option>]:…}: the lookup type's own quoting (Exim's lookup_info quote function)."""
    from pyxim import lookups

    ltype = lookups.find_lookup_type(name)
    if ltype is None:
        raise ExpansionError(f'unknown lookup type "{name}"')
    quote = getattr(ltype, "quote", None)
    result: str | None
    if quote is not None:
        result = quote(arg, option)
    else:
        result = arg if option is None else None
    if result is None:
        raise ExpansionError(f'"{option}" unrecognized after "${{quote_{name}"')
    return result


# -- RFC 2047 and character sets -------------------------------------------------


@operator("rfc2047")
def op_rfc2047(ev: Evaluation, arg: str, sub: str | None) -> str:
    from pyxim.expand.rfc2047 import encode_word

    return encode_word(arg, _headers_charset(ev))


@operator("rfc2047d")
def op_rfc2047d(ev: Evaluation, arg: str, sub: str | None) -> str:
    from pyxim.expand.rfc2047 import rfc2047_decode

    decoded, error = rfc2047_decode(
        arg, _headers_charset(ev), lencheck=_flag(ev, "check_rfc2047_length", True)
    )
    if error is not None:
        raise ExpansionError(error)
    return decoded


# Exim's GETUTF8INC tables: how many bytes follow a lead byte, and its payload mask.
_UTF8_EXTRA = [1] * 32 + [2] * 16 + [3] * 8 + [4] * 4 + [5] * 4
_UTF8_MASK = (0xFF, 0x1F, 0x0F, 0x07, 0x03, 0x01)


@operator("from_utf8")
def op_from_utf8(ev: Evaluation, arg: str, sub: str | None) -> str:
    """UTF-8 to ISO-8859-1; characters above 255 become "_". Malformed input is read as Exim reads it."""
    data = _b(arg)
    out = bytearray()
    i = 0
    while i < len(data):
        c = data[i]
        i += 1
        if c & 0xC0 == 0xC0:
            extra = _UTF8_EXTRA[c & 0x3F]
            shift = 6 * extra
            c = (c & _UTF8_MASK[extra]) << shift
            for _ in range(extra):
                shift -= 6
                nxt = data[i] if i < len(data) else 0  # Exim reads on past the end; treat that as zero
                c |= (nxt & 0x3F) << shift
                i += 1
        out.append(c if c <= 255 else ord("_"))
    return _s(bytes(out))


@operator("utf8clean")
def op_utf8clean(ev: Evaluation, arg: str, sub: str | None) -> str:
    """Replace each malformed UTF-8 sequence by "?", the way Exim's byte-by-byte checker does.

    Overlong forms pass (as in Exim); code points above U+10FFFF and
    surrogates do not. A byte that breaks a sequence is dropped with it
    unless it is ASCII.
    """
    out = bytearray()
    seq = bytearray()
    left = 0
    codepoint = 0
    for c in _b(arg):
        verdict = 0  # 1: broken by this byte, -1: invalid sequence
        if left:
            if c & 0xC0 != 0x80:
                verdict = 1
            else:
                codepoint = (codepoint << 6) | (c & 0x3F)
                seq.append(c)
                left -= 1
                if left == 0:
                    if codepoint > 0x10FFFF or 0xD800 <= codepoint <= 0xDFFF:
                        verdict = -1
                    else:
                        out += seq
                        seq.clear()
        else:
            if c < 0x80:
                out.append(c)
                continue
            if c & 0xE0 == 0xC0:
                if c in (0xC0, 0xC1):
                    verdict = -1
                else:
                    left, codepoint = 1, c & 0x1F
            elif c & 0xF0 == 0xE0:
                left, codepoint = 2, c & 0x0F
            elif c & 0xF8 == 0xF0:
                left, codepoint = 3, c & 0x07
            else:
                verdict = -1
            seq[:] = bytes([c])
        if verdict:
            left = 0
            seq.clear()
            out.append(ord("?"))
            if verdict == 1 and c < 0x80:
                out.append(c)
    if left:
        out.append(ord("?"))  # truncated in the middle of a character
    return _s(bytes(out))


# -- internationalised names (SUPPORT_I18N) ------------------------------------

_IDN2_MESSAGES = (
    ("joiner", "string contains a forbidden context-j character"),
    ("context", "string contains a forbidden context-o character"),
    ("bidi", "string has forbidden bi-directional properties"),
    ("rtl", "string has forbidden bi-directional properties"),
    ("label too long", "domain label longer than 63 characters"),
    ("domain too long", "domain name longer than 255 characters"),
    ("3rd and 4th", "string contains forbidden two hyphens pattern"),
    ("hyphen", "string start/ends with forbidden hyphen"),
    ("combining", "string contains a forbidden leading combining character"),
)


def _idn2_message(exc: Exception) -> str:
    text = str(exc).lower()
    for key, message in _IDN2_MESSAGES:
        if key in text:
            return message
    return "string contains a disallowed character"


def _utf8_error(what: str, arg: str, message: str) -> ExpansionError:
    return ExpansionError(
        f"error converting {what} ({string_printing(_b(arg))}) to {_TARGET[what]}: {message}"
    )


_TARGET = {"utf8": "alabel", "alabel": "utf8"}


def _valid_utf8(data: bytes) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


@operator("utf8_domain_to_alabel")
def op_utf8_domain_to_alabel(ev: Evaluation, arg: str, sub: str | None) -> str:
    """IDNA2008 with UTS #46 mapping, as libidn2 does for Exim; all-ASCII domains pass unchanged."""
    data = _b(arg)
    if all(c < 0x80 for c in data):
        return arg
    text = _valid_utf8(data.translate(_LOWER))
    if text is None:
        raise _utf8_error("utf8", arg, "string encoding error")
    try:
        import idna
    except ImportError:  # pragma: no cover - idna comes with dnspython's extras
        try:
            return text.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise _utf8_error("utf8", arg, _idn2_message(exc)) from None
    try:
        mapped = idna.uts46_remap(text, std3_rules=False, transitional=False)
        labels = [
            label if label.isascii() else idna.alabel(label).decode("ascii") for label in mapped.split(".")
        ]
    except (idna.IDNAError, UnicodeError) as exc:
        raise _utf8_error("utf8", arg, _idn2_message(exc)) from None
    return ".".join(labels)


@operator("utf8_domain_from_alabel")
def op_utf8_domain_from_alabel(ev: Evaluation, arg: str, sub: str | None) -> str:
    """Each "xn--" label decoded from Punycode; other labels unchanged."""
    out = ""
    for label in _dot_list(arg):
        if label.startswith("xn--"):
            label = _localpart_from_alabel(label, arg)
        if out:  # string_append_listele(): no separator after an empty start
            out += "."
        out += label.replace(".", "..")
    return out


def _dot_list(text: str) -> list[str]:
    """string_nextinlist() with "." as the fixed separator: ".." is a literal dot, items are trimmed."""
    items: list[str] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in C_SPACE:
            i += 1
        if i >= n:
            return items
        buf = []
        while i < n:
            if text[i] == ".":
                if text[i + 1 : i + 2] == ".":
                    buf.append(".")
                    i += 2
                    continue
                i += 1
                break
            buf.append(text[i])
            i += 1
        items.append("".join(buf).rstrip(C_SPACE))


def _localpart_from_alabel(label: str, arg: str) -> str:
    if not label.startswith("xn--"):
        raise _utf8_error("alabel", arg, "bad alabel prefix")
    try:
        return punycode_decode(_b(label[4:]))
    except _PunycodeError as exc:
        raise _utf8_error("alabel", arg, str(exc)) from None


@operator("utf8_localpart_from_alabel")
def op_utf8_localpart_from_alabel(ev: Evaluation, arg: str, sub: str | None) -> str:
    return _localpart_from_alabel(arg, arg)


@operator("utf8_localpart_to_alabel")
def op_utf8_localpart_to_alabel(ev: Evaluation, arg: str, sub: str | None) -> str:
    """Punycode with "xn--" in front; case is kept (local parts are case-sensitive)."""
    data = _b(arg)
    if all(c < 0x80 for c in data):
        return arg
    text = _valid_utf8(data)
    if not text:
        raise _utf8_error("utf8", arg, "l_u2a: bad UTF-8 input")
    return "xn--" + punycode_encode(text)


# RFC 3492 Punycode, as libidn implements it (strict about its input).
_PC_BASE, _PC_TMIN, _PC_TMAX, _PC_SKEW, _PC_DAMP = 36, 1, 26, 38, 700
_PC_MAXINT = (1 << 32) - 1


class _PunycodeError(Exception):
    pass


def _pc_adapt(delta: int, numpoints: int, firsttime: bool) -> int:
    delta = delta // _PC_DAMP if firsttime else delta // 2
    delta += delta // numpoints
    k = 0
    while delta > ((_PC_BASE - _PC_TMIN) * _PC_TMAX) // 2:
        delta //= _PC_BASE - _PC_TMIN
        k += _PC_BASE
    return k + (_PC_BASE - _PC_TMIN + 1) * delta // (delta + _PC_SKEW)


def _pc_threshold(k: int, bias: int) -> int:
    return _PC_TMIN if k <= bias else _PC_TMAX if k >= bias + _PC_TMAX else k - bias


def punycode_decode(data: bytes) -> str:
    """Decode the part after "xn--"; libidn's error texts on failure."""
    last = data.rfind(b"-")
    basic = data[:last] if last > 0 else b""
    if any(c >= 0x80 for c in basic):
        raise _PunycodeError("Invalid input")
    output = [chr(c) for c in basic]
    n, i, bias = 0x80, 0, 72
    pos = last + 1 if last > 0 else 0
    while pos < len(data):
        oldi, w, k = i, 1, _PC_BASE
        while True:
            if pos >= len(data):
                raise _PunycodeError("Invalid input")
            c = data[pos]
            pos += 1
            digit = (
                c - 48 + 26
                if 48 <= c <= 57
                else c - 65
                if 65 <= c <= 90
                else c - 97
                if 97 <= c <= 122
                else _PC_BASE
            )
            if digit >= _PC_BASE:
                raise _PunycodeError("Invalid input")
            if digit > (_PC_MAXINT - i) // w:
                raise _PunycodeError("String size limit exceeded")
            i += digit * w
            t = _pc_threshold(k, bias)
            if digit < t:
                break
            if w > _PC_MAXINT // (_PC_BASE - t):
                raise _PunycodeError("String size limit exceeded")
            w *= _PC_BASE - t
            k += _PC_BASE
        bias = _pc_adapt(i - oldi, len(output) + 1, oldi == 0)
        if i // (len(output) + 1) > _PC_MAXINT - n:
            raise _PunycodeError("String size limit exceeded")
        n += i // (len(output) + 1)
        i %= len(output) + 1
        if n > 0x10FFFF or 0xD800 <= n <= 0xDFFF:
            raise _PunycodeError("Invalid input")
        output.insert(i, chr(n))
        i += 1
    return "".join(output)


def punycode_encode(text: str) -> str:
    """Encode a Unicode string; basic (ASCII) characters are kept, case included."""
    codes = [ord(ch) for ch in text]
    out = [ch for ch in text if ord(ch) < 0x80]
    handled = basic = len(out)
    if basic:
        out.append("-")
    n, delta, bias = 0x80, 0, 72
    while handled < len(codes):
        m = min(c for c in codes if c >= n)
        delta += (m - n) * (handled + 1)
        n = m
        for c in codes:
            if c < n:
                delta += 1
            elif c == n:
                q, k = delta, _PC_BASE
                while True:
                    t = _pc_threshold(k, bias)
                    if q < t:
                        break
                    digit = t + (q - t) % (_PC_BASE - t)
                    out.append(chr(digit + 22 + 75 * (digit < 26)))
                    q = (q - t) // (_PC_BASE - t)
                    k += _PC_BASE
                out.append(chr(q + 22 + 75 * (q < 26)))
                bias = _pc_adapt(delta, handled + 1, handled == basic)
                delta = 0
                handled += 1
        delta += 1
        n += 1
    return "".join(out)


# -- arithmetic and time ---------------------------------------------------------


@operator("eval")
def op_eval(ev: Evaluation, arg: str, sub: str | None) -> str:
    return str(evaluate(arg, decimal=False))


@operator("eval10")
def op_eval10(ev: Evaluation, arg: str, sub: str | None) -> str:
    return str(evaluate(arg, decimal=True))


_TIME_UNITS = {"w": 7 * 24 * 3600, "d": 24 * 3600, "h": 3600, "m": 60, "s": 1}


def readconf_time(text: str) -> int | None:
    """Exim's readconf_readtime(): "1w2d3h4m5s", every number with its unit; None when malformed.

    The sum is a C int: values that overflow it come out negative and are refused.
    """
    i, n = 0, len(text)
    total = 0
    while True:
        if i >= n or text[i] not in "0123456789":
            return None
        value, end, _ = strtol(text, i)  # sscanf("%d") stores the long into an int
        value = wrap_int(value, 32)
        i = end
        unit = text[i] if i < n else ""
        if unit not in _TIME_UNITS:
            return None
        i += 1
        total = wrap_int(total + wrap_int(value * _TIME_UNITS[unit], 32), 32)
        if i >= n:
            return total if total >= 0 else None


def time_interval(seconds: int) -> str:
    """Exim's readconf_printtime(): 93784 -> "1d2h3m4s" (the argument is a C int)."""
    t = wrap_int(seconds, 32)
    prefix = ""
    if t < 0:
        prefix = "-"
        # -INT_MIN overflows; gcc's code then prints the low parts of 2**31 and no weeks
        t = -t if t != -(1 << 31) else (1 << 31) % (7 * 86400)
    weeks, rest = divmod(t, 7 * 86400)
    days, rest = divmod(rest, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    out = prefix
    for value, unit in ((weeks, "w"), (days, "d"), (hours, "h"), (minutes, "m")):
        if value > 0:
            out += f"{value}{unit}"
    if secs > 0 or out == "":
        out += f"{secs}s"
    return out


@operator("time_eval")
def op_time_eval(ev: Evaluation, arg: str, sub: str | None) -> str:
    value = readconf_time(arg)
    if value is None:
        raise ExpansionError(f'string "{arg}" is not an Exim time interval in "time_eval" operator')
    return str(value)


@operator("time_interval")
def op_time_interval(ev: Evaluation, arg: str, sub: str | None) -> str:
    n = 0
    for ch in arg:
        if ch not in "0123456789":
            raise ExpansionError(f'string "{arg}" is not a positive number in "time_interval" operator')
        n = wrap_int(n * 10 + int(ch), 32)
    return time_interval(n)


@operator("randint")
def op_randint(ev: Evaluation, arg: str, sub: str | None) -> str:
    maximum = wrap_int(string_integer(arg, isplus=True), 32)  # Exim passes it on as an int
    if maximum <= 1:
        return "0"
    return str(random.SystemRandom().randrange(maximum))


# -- lists ---------------------------------------------------------------------


@operator("listcount")
def op_listcount(ev: Evaluation, arg: str, sub: str | None) -> str:
    return str(sum(1 for _ in iterate_list(arg)))


_LIST_KINDS = {"a": "address", "d": "domain", "h": "host", "l": "localpart"}


@operator("listnamed", takes_sub=True)
def op_listnamed(ev: Evaluation, arg: str, sub: str | None) -> str:
    # Only the first character of the suffix counts: ${listnamed_dx:} is ${listnamed_d:}.
    kind = None
    if sub is not None:
        kind = _LIST_KINDS.get(sub[:1])
        if kind is None:
            raise ExpansionError('bad suffix on "list" operator')
    return _listnamed(ev, arg, kind)


def _listnamed(ev: Evaluation, name: str, kind: str | None) -> str:
    name = name[1:] if name.startswith("+") else name
    config = ev.ctx.config
    nl = config.named_lists.get(name) if config is not None else None
    if nl is None or (kind is not None and nl.kind != kind):
        raise ExpansionError(f'"{name}" is not a {kind + " " if kind else ""}named list')
    sep, _ = list_separator(nl.value)
    parts: list[str] = []
    for item in iterate_list(nl.value):
        if item.startswith("+"):
            parts.append(_listnamed(ev, item, kind))
        elif sep != ":":
            parts.append(_requote_for_colon(item, sep))
        else:
            parts.append(item)
    return " : ".join(parts)


def _requote_for_colon(item: str, sep: str) -> str:
    """An item of a list with another separator, rewritten for a colon-separated list (colons doubled)."""
    out = []
    i = 0
    while i < len(item):
        ch = item[i]
        if ch == ":":
            out.append("::")
        elif ch == sep:
            out.append(sep)
            if item[i + 1 : i + 2] == sep:
                i += 1
        else:
            out.append(ch)
        i += 1
    return "".join(out)


# -- addresses -----------------------------------------------------------------


def _parse_options(ev: Evaluation):  # type: ignore[no-untyped-def]
    from pyxim.address import ParseOptions

    return ParseOptions(
        allow_utf8_domains=_flag(ev, "allow_utf8_domains", False),
        strip_trailing_dot=_flag(ev, "strip_trailing_dot", False),
        strip_excess_angle_brackets=_flag(ev, "strip_excess_angle_brackets", False),
    )


def _address_part(part: str) -> OperatorFunc:
    """${address:}, ${domain:}, ${local_part:}: one field of the parsed address, "" when it does not parse."""

    def op(ev: Evaluation, arg: str, sub: str | None) -> str:
        from pyxim.address import ParsedAddress, parse_address

        parsed = parse_address(arg, options=_parse_options(ev))
        return getattr(parsed, part) if isinstance(parsed, ParsedAddress) else ""

    return op


operator("address")(_address_part("address"))
operator("domain")(_address_part("domain"))
operator("local_part")(_address_part("local_part"))


@operator("addresses")
def op_addresses(ev: Evaluation, arg: str, sub: str | None) -> str:
    """The addresses of a header-style list (groups allowed), joined by ":" or by the ">X" separator."""
    from pyxim.address import extract_addresses

    text = arg.lstrip(C_SPACE)
    sep = ":"
    if text.startswith(">"):
        if len(text) == 1:
            raise ExpansionError("output separator missing in expanding ${addresses:>}")
        sep, text = text[1], text[2:]
    out: list[str] = []
    for parsed in extract_addresses(text, _parse_options(ev)):
        address = parsed.address.replace(sep, sep + sep)
        if out and address.startswith(sep):
            address = " " + address  # so that a leading separator is not read as a doubled one
        out.append(address)
    return sep.join(out)


# -- IP addresses ----------------------------------------------------------------


def inet_pton4(text: str) -> bytes | None:
    """glibc's inet_pton(AF_INET): four decimal octets, no leading zeros."""
    parts = text.split(".")
    if len(parts) != 4:
        return None
    out = bytearray()
    for part in parts:
        if (
            not part
            or len(part) > 3
            or any(c not in "0123456789" for c in part)
            or (len(part) > 1 and part[0] == "0")
        ):
            return None
        value = int(part)
        if value > 255:
            return None
        out.append(value)
    return bytes(out)


def inet_pton6(text: str) -> bytes | None:
    """glibc's inet_pton(AF_INET6): up to eight groups, one "::", an optional dotted IPv4 tail."""
    if not text:
        return None
    i, n = 0, len(text)
    if text[0] == ":":
        if n < 2 or text[1] != ":":
            return None
        i = 1
    words: list[int] = []
    gap = -1
    token = i
    digits = 0
    value = 0
    while i < n:
        ch = text[i]
        i += 1
        if ch in "0123456789abcdefABCDEF":
            if digits == 4:
                return None
            value = value << 4 | int(ch, 16)
            digits += 1
            continue
        if ch == ":":
            token = i
            if digits == 0:
                if gap >= 0:
                    return None
                gap = len(words)
                continue
            if i == n or len(words) >= 8:
                return None
            words.append(value)
            digits = value = 0
            continue
        if ch == "." and len(words) <= 6:
            tail = inet_pton4(text[token:])
            if tail is not None:
                words += [tail[0] << 8 | tail[1], tail[2] << 8 | tail[3]]
                digits = 0
                break
        return None
    if digits:
        if len(words) >= 8:
            return None
        words.append(value)
    if gap >= 0:
        if len(words) == 8:
            return None  # "::" would stand for nothing
        words = words[:gap] + [0] * (8 - len(words)) + words[gap:]
    if len(words) != 8:
        return None
    return b"".join(w.to_bytes(2, "big") for w in words)


def string_is_ip_address(text: str, allow_mask: bool) -> tuple[int, bytes, int | None]:
    """Exim's string_is_ip_address(): (4 or 6, address bytes, mask or None); (0, b"", None) if not an address.

    With `allow_mask`, "/N" may follow (N as strtol reads it, not negative);
    an IPv6 address may carry a "%interface" suffix instead.
    """
    mask: int | None = None
    body = text
    slash = text.find("/")
    if slash >= 0:
        if not allow_mask:
            return 0, b"", None
        value, end, _ = strtol(text, slash + 1)
        rest = text[end if end > slash + 1 else slash + 1 :]
        if end == slash + 1:
            value = 0  # strtol read nothing
        if rest or value < 0:
            return 0, b"", None
        mask = value
        body = text[:slash]
    else:
        percent = text.find("%")
        if percent >= 0:
            # the interface name: letters, digits and punctuation only
            if any(not 0x21 <= ord(c) <= 0x7E for c in text[percent + 1 :]):
                return 0, b"", None
            body = text[:percent]
            if ":" not in body:
                return 0, b"", None
    if ":" in body:
        packed = inet_pton6(body)
        return (6, packed, mask) if packed is not None else (0, b"", None)
    packed = inet_pton4(body)
    return (4, packed, mask) if packed is not None else (0, b"", None)


def _ipv6_groups(packed: bytes) -> list[int]:
    return [int.from_bytes(packed[i : i + 2], "big") for i in range(0, 16, 2)]


def ipv6_nmtoa(packed: bytes) -> str:
    """Exim's ipv6_nmtoa(): lower-case hex, the longest (first) run of zero groups as "::"."""
    groups = _ipv6_groups(packed)
    best_start, best_len = -1, 0
    i = 0
    while i < 8:
        if groups[i] == 0:
            j = i
            while j < 8 and groups[j] == 0:
                j += 1
            if j - i > best_len:
                best_start, best_len = i, j - i
            i = j
        else:
            i += 1
    if best_len == 8:
        return ":"  # sic: Exim writes a lone colon for the all-zero address
    if best_len == 0:
        return ":".join(f"{g:x}" for g in groups)
    head = ":".join(f"{g:x}" for g in groups[:best_start])
    tail = ":".join(f"{g:x}" for g in groups[best_start + best_len :])
    return f"{head}::{tail}"


def _mask_bytes(packed: bytes, bits: int) -> bytes:
    value = int.from_bytes(packed, "big")
    width = len(packed) * 8
    keep = ((1 << bits) - 1) << (width - bits) if bits else 0
    return (value & keep).to_bytes(len(packed), "big")


@operator("mask", takes_sub=True)
def op_mask(ev: Evaluation, arg: str, sub: str | None) -> str:
    family, packed, mask = string_is_ip_address(arg, allow_mask=True)
    if family == 0:
        raise ExpansionError(f'"{arg}" is not an IP address')
    if mask is None:
        raise ExpansionError(f'missing mask value in "{arg}"')
    mask = wrap_int(mask, 32)  # Exim reads it into an int
    if mask < 0 or mask > (32 if family == 4 else 128):
        raise ExpansionError(f'mask value too big in "{arg}"')
    masked = _mask_bytes(packed, mask)
    if family == 4:
        return ".".join(str(b) for b in masked) + f"/{mask}"
    if sub is not None and sub.startswith("n"):
        return f"{ipv6_nmtoa(masked)}/{mask}"
    return ".".join(f"{g:04x}" for g in _ipv6_groups(masked)) + f"/{mask}"


def _as_ipv6(arg: str) -> bytes:
    """The argument as 16 bytes; an IPv4 address becomes ::ffff:a.b.c.d, as Exim does."""
    family, packed, _ = string_is_ip_address(arg, allow_mask=False)
    if family == 0:
        raise ExpansionError(f'"{arg}" is not an IP address')
    return bytes(10) + b"\xff\xff" + packed if family == 4 else packed


@operator("ipv6norm")
def op_ipv6norm(ev: Evaluation, arg: str, sub: str | None) -> str:
    return ipv6_nmtoa(_as_ipv6(arg))


@operator("ipv6denorm")
def op_ipv6denorm(ev: Evaluation, arg: str, sub: str | None) -> str:
    return ":".join(f"{g:04x}" for g in _ipv6_groups(_as_ipv6(arg)))


@operator("reverse_ip")
def op_reverse_ip(ev: Evaluation, arg: str, sub: str | None) -> str:
    family, packed, _ = string_is_ip_address(arg, allow_mask=True)
    if family == 0:
        raise ExpansionError(f"reverse_ip() not given an IP address [{arg}]")
    if family == 6 and arg.startswith("::ffff:"):
        # Exim's invert_address() treats the IPv4-mapped form as the IPv4 address
        family, packed = 4, packed[12:]
    if family == 4:
        return ".".join(str(b) for b in reversed(packed))
    return ".".join(reversed(packed.hex()))


# -- files and re-expansion ------------------------------------------------------


@operator("expand")
def op_expand(ev: Evaluation, arg: str, sub: str | None) -> str:
    from pyxim.expand.taint import is_tainted

    try:
        if is_tainted(arg):
            raise ExpansionError(f"attempt to expand tainted string '{arg}'")
        return ev.expand(arg)
    except ExpansionError as exc:
        raise type(exc)(f'internal expansion of "{arg}" failed: {exc.message}') from None


_MODE_NORMAL = ("---", "--x", "-w-", "-wx", "r--", "r-x", "rw-", "rwx")
_MODE_SETID = ("--S", "--s", "-wS", "-ws", "r-S", "r-s", "rwS", "rws")
_MODE_STICKY = ("--T", "--t", "-wT", "-wt", "r-T", "r-t", "rwT", "rwt")
_FILE_TYPES = {
    statmod.S_IFIFO: "p",
    statmod.S_IFCHR: "c",
    statmod.S_IFDIR: "d",
    statmod.S_IFBLK: "b",
    statmod.S_IFREG: "-",
}


@operator("stat")
def op_stat(ev: Evaluation, arg: str, sub: str | None) -> str:
    # Exim 4.96 stats tainted names too; only the "exists" lock-out stops it.
    if "exists" in ev.ctx.forbidden or "stat" in ev.ctx.forbidden:
        raise ExpansionError("Use of the stat() expansion is not permitted")
    try:
        st = os.stat(_b(arg))
    except OSError as exc:
        raise ExpansionError(f"stat({arg}) failed: {os.strerror(exc.errno or 0)}") from None
    mode = st.st_mode
    tables = (
        _MODE_STICKY if mode & 0o1000 else _MODE_NORMAL,
        _MODE_SETID if mode & 0o2000 else _MODE_NORMAL,
        _MODE_SETID if mode & 0o4000 else _MODE_NORMAL,
    )
    perms = tables[2][(mode >> 6) & 7] + tables[1][(mode >> 3) & 7] + tables[0][mode & 7]
    smode = _FILE_TYPES.get(statmod.S_IFMT(mode), "?") + perms
    return (
        f"mode={mode & 0o77777:04o} smode={smode} inode={st.st_ino} device={st.st_dev} "
        f"links={st.st_nlink} uid={st.st_uid} gid={st.st_gid} size={st.st_size} "
        f"atime={int(st.st_atime)} mtime={int(st.st_mtime)} ctime={int(st.st_ctime)}"
    )


# -- header wrapping (Exim 4.97+) -------------------------------------------------


@operator("headerwrap", takes_sub=True)
def op_headerwrap(ev: Evaluation, arg: str, sub: str | None) -> str:
    """${headerwrap_<cols>_<limit>:text}: fold at white space before column `cols` (default 80),
    continuation lines starting with a tab (counted as 8 columns), the whole cut at `limit`
    characters (default 998). Exim 4.97 added it; 4.96 does not know it.
    """
    cols, limit = 80, 998
    if sub:
        parts = sub.split("_")
        cols = _atoi(parts[0])
        if len(parts) > 1:
            limit = _atoi(parts[1])
    words = _b(arg).split()
    lines: list[bytes] = []
    line = b""
    width = 0
    for word in words:
        if line and width + 1 + len(word) > cols:
            lines.append(line)
            line, width = b"\t" + word, 8 + len(word)
        elif line:
            line += b" " + word
            width += 1 + len(word)
        else:
            line, width = word, len(word)
    if line:
        lines.append(line)
    return _s(b"\n".join(lines)[:limit])


def _atoi(text: str) -> int:
    value, end, _ = strtol(text)
    return wrap_int(value, 32) if end else 0

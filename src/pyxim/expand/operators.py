"""Expansion operators: ${name:argument} and ${name_params:argument}.

Exim works on bytes. Python strings here carry bytes that are not valid UTF-8
as surrogate escapes (the command line reads and writes with
surrogateescape), so an operator that counts or slices does so on the UTF-8
bytes: `_b()` and `_s()` convert. Operators register with `@operator`;
the evaluator carries the argument's taint to the result.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import os
import random
import re
from typing import TYPE_CHECKING

from pyxim.errors import ExpansionError
from pyxim.expand.registry import operator
from pyxim.expand.taint import check_untainted
from pyxim.lists import iterate_list, list_separator

if TYPE_CHECKING:  # pragma: no cover
    from pyxim.expand.evaluate import Evaluation


def _b(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _s(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


# -- case, length, substrings, hashes ---------------------------------------

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


def _sub_numbers(name: str, sub: str | None, count: int, what: str) -> list[int]:
    """Parse the _N or _N_M suffix of length/substr/hash/nhash (Exim's wording on errors)."""
    if sub is None:
        raise ExpansionError(f"missing values after {what}")
    values: list[int] = []
    for part in sub.split("_"):
        if len(values) == count:
            raise ExpansionError(f'non-digit after underscore in "{name}"')
        m = re.fullmatch(r"-?\d+", part)
        if not m:
            raise ExpansionError(f'non-digit after underscore in "{name}"')
        values.append(int(part))
    return values


@operator("length", "l")
def op_length(ev: Evaluation, arg: str, sub: str | None) -> str:
    (n,) = _sub_numbers(ev_name(ev, "length", sub), sub, 1, "length")
    return _s(_b(arg)[: max(n, 0)])


def ev_name(ev: Evaluation, base: str, sub: str | None) -> str:
    return base if sub is None else f"{base}_{sub}"


def substring(data: bytes, start: int, length: int | None) -> bytes:
    """Exim's extract_substr().

    A negative start counts from the end, and then a missing length means
    "everything to the left of it"; a start past the end gives nothing.
    """
    n = len(data)
    if start < 0:
        start += n
        if start < 0:
            length = max((length if length is not None else 0) + start, 0)
            start = 0
        elif length is None or length < 0:
            length, start = start, 0
    elif start > n:
        start, length = n, 0
    elif length is None or length < 0:
        length = n
    if start + length > n:
        length = n - start
    return data[start : start + max(length, 0)]


@operator("substr", "s")
def op_substr(ev: Evaluation, arg: str, sub: str | None) -> str:
    values = _sub_numbers(ev_name(ev, "substr", sub), sub, 2, "substr")
    start = values[0]
    length = values[1] if len(values) > 1 else None
    return _s(substring(_b(arg), start, length))


_HASHCODES = b"abcdefghijklmnopqrtsuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_PRIMES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97, 101, 103, 107, 109, 113)


def text_hash(data: bytes, length: int, limit: int) -> bytes:
    """Exim's compute_hash(): a string of `length` characters from the first `limit` hash codes."""
    if limit > len(_HASHCODES):
        raise ExpansionError(f'hash count "{limit}" too big')
    if length >= len(data):
        return data
    buf = bytearray(data)
    i = 0
    j = length
    while j < len(data):
        c = data[j]
        shift = (c + j) & 7
        j += 1
        buf[i] ^= ((c << shift) | (c >> (8 - shift))) & 0xFF
        i += 1
        if i >= length:
            i = 0
    return bytes(_HASHCODES[buf[k] % limit] for k in range(length))


def numeric_hash(data: bytes, value1: int, value2: int | None) -> str:
    """Exim's compute_nhash()."""
    total = 0
    i = 0
    for c in data:
        if i == 0:
            i = len(_PRIMES) - 1
        total += _PRIMES[i] * c
        i -= 1
    if value2 is None:
        return str(total % value1)
    total %= value1 * value2
    return f"{total // value2}/{total % value2}"


@operator("hash", "h")
def op_hash(ev: Evaluation, arg: str, sub: str | None) -> str:
    values = _sub_numbers(ev_name(ev, "hash", sub), sub, 2, "hash")
    limit = values[1] if len(values) > 1 else 26
    return _s(text_hash(_b(arg), values[0], limit))


@operator("nhash", "nh")
def op_nhash(ev: Evaluation, arg: str, sub: str | None) -> str:
    values = _sub_numbers(ev_name(ev, "nhash", sub), sub, 2, "nhash")
    if values[0] <= 0:
        raise ExpansionError(f'"{values[0]}" out of range for nhash')
    return numeric_hash(_b(arg), values[0], values[1] if len(values) > 1 else None)


@operator("md5")
def op_md5(ev: Evaluation, arg: str, sub: str | None) -> str:
    return hashlib.md5(_b(arg)).hexdigest()


@operator("sha1")
def op_sha1(ev: Evaluation, arg: str, sub: str | None) -> str:
    return hashlib.sha1(_b(arg)).hexdigest().upper()


@operator("sha256")
def op_sha256(ev: Evaluation, arg: str, sub: str | None) -> str:
    if sub is not None:
        raise ExpansionError("unrecognised sha2 variant")
    return hashlib.sha256(_b(arg)).hexdigest().upper()


@operator("sha2")
def op_sha2(ev: Evaluation, arg: str, sub: str | None) -> str:
    algo = {None: "sha256", "256": "sha256", "384": "sha384", "512": "sha512"}.get(sub)
    if algo is None:
        raise ExpansionError("unrecognised sha2 variant")
    return hashlib.new(algo, _b(arg)).hexdigest().upper()


@operator("sha3")
def op_sha3(ev: Evaluation, arg: str, sub: str | None) -> str:
    algo = {None: "sha3_256", "224": "sha3_224", "256": "sha3_256", "384": "sha3_384", "512": "sha3_512"}.get(sub)
    if algo is None:
        raise ExpansionError("unrecognised sha3 variant")
    return hashlib.new(algo, _b(arg)).hexdigest().upper()


# -- encodings ---------------------------------------------------------------

_B32 = "abcdefghijklmnopqrstuvwxyz234567"
_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _integer(arg: str, op: str) -> int:
    text = arg.strip()
    m = re.fullmatch(r"(\d+)", text)
    if not m:
        raise ExpansionError(f'argument for {op} operator is "{arg}", which is not a decimal number')
    return int(text)


@operator("base32")
def op_base32(ev: Evaluation, arg: str, sub: str | None) -> str:
    n = _integer(arg, "base32")
    out = ""
    while n:
        out = _B32[n & 31] + out
        n >>= 5
    return out


def _decode_digits(arg: str, alphabet: str, base: int) -> str:
    n = 0
    for ch in arg:
        idx = alphabet.find(ch)
        if idx < 0:
            raise ExpansionError(f'argument for base{base}d operator is "{arg}", which is not a base {base} number')
        n = n * base + idx
    return str(n)


@operator("base32d")
def op_base32d(ev: Evaluation, arg: str, sub: str | None) -> str:
    return _decode_digits(arg, _B32, 32)


@operator("base62")
def op_base62(ev: Evaluation, arg: str, sub: str | None) -> str:
    text = arg
    if not re.fullmatch(r"\d+", text):
        raise ExpansionError(f'argument for base62 operator is "{arg}", which is not a decimal number')
    n = int(text)
    out = ""
    for _ in range(6):
        out = _B62[n % 62] + out
        n //= 62
    return out


@operator("base62d")
def op_base62d(ev: Evaluation, arg: str, sub: str | None) -> str:
    return _decode_digits(arg, _B62, 62)


@operator("base64", "str2b64")
def op_base64(ev: Evaluation, arg: str, sub: str | None) -> str:
    return base64.b64encode(_b(arg)).decode("ascii")


@operator("base64d")
def op_base64d(ev: Evaluation, arg: str, sub: str | None) -> str:
    data = _b(arg)
    try:
        if re.search(rb"[^A-Za-z0-9+/=\s]", data):
            raise binascii.Error
        return _s(base64.b64decode(re.sub(rb"\s", b"", data), validate=True))
    except (binascii.Error, ValueError):
        raise ExpansionError(f'string "{arg}" is not well-formed for "base64d" operator') from None


@operator("hex2b64")
def op_hex2b64(ev: Evaluation, arg: str, sub: str | None) -> str:
    if len(arg) % 2:
        raise ExpansionError(f'"{arg}" contains an odd number of characters')
    try:
        data = bytes.fromhex(arg)
    except ValueError:
        raise ExpansionError(f'"{arg}" is not a hex string') from None
    return base64.b64encode(data).decode("ascii")


@operator("hexquote")
def op_hexquote(ev: Evaluation, arg: str, sub: str | None) -> str:
    out = []
    for b in _b(arg):
        out.append(chr(b) if 0x21 <= b <= 0x7E else f"\\x{b:02x}")
    return "".join(out)


def string_printing(data: bytes, keep_tab: bool = True) -> str:
    """Exim's string_printing2(): escape what is not printable, the C way."""
    out = []
    for b in data:
        if 0x20 <= b <= 0x7E or (keep_tab and b == 9):
            out.append(chr(b))
        elif b == 10:
            out.append("\\n")
        elif b == 13:
            out.append("\\r")
        elif b == 9:
            out.append("\\t")
        else:
            out.append(f"\\{b:03o}")
    return "".join(out)


@operator("escape")
def op_escape(ev: Evaluation, arg: str, sub: str | None) -> str:
    return string_printing(_b(arg))


@operator("escape8bit")
def op_escape8bit(ev: Evaluation, arg: str, sub: str | None) -> str:
    return "".join(chr(b) if b < 0x80 else f"\\{b:03o}" for b in _b(arg))


@operator("quote")
def op_quote(ev: Evaluation, arg: str, sub: str | None) -> str:
    if sub is not None:  # ${quote_<lookup type>[_option]:…}
        name, _, option = sub.partition("_")
        return quote_for_lookup(ev, name, option or None, arg)
    if arg and not re.search(r"[^A-Za-z0-9_.\-]", arg):
        return arg
    out = ['"']
    for ch in arg:
        if ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch in '"\\':
            out.append("\\" + ch)
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


_LP_SPECIALS = set('()<>@,;:\\"[]')


@operator("quote_local_part")
def op_quote_local_part(ev: Evaluation, arg: str, sub: str | None) -> str:
    needs = any(ch in _LP_SPECIALS or ord(ch) <= 32 or ord(ch) == 127 for ch in arg)
    # dots are fine where they separate atoms
    if not needs and arg and not arg.startswith(".") and not arg.endswith(".") and ".." not in arg:
        return arg
    out = ['"']
    for ch in arg:
        if ch in '"\\':
            out.append("\\")
        out.append(ch)
    out.append('"')
    return "".join(out)


@operator("rxquote")
def op_rxquote(ev: Evaluation, arg: str, sub: str | None) -> str:
    return "".join("\\" + ch if not ch.isalnum() and ch.isascii() and ord(ch) > 32 else ch for ch in arg)


@operator("utf8clean")
def op_utf8clean(ev: Evaluation, arg: str, sub: str | None) -> str:
    # Invalid sequences become '?', as Exim does.
    return _b(arg).decode("utf-8", "replace").replace("\ufffd", "?")


@operator("from_utf8")
def op_from_utf8(ev: Evaluation, arg: str, sub: str | None) -> str:
    data = _b(arg).decode("utf-8", "surrogateescape")
    out = bytearray()
    for ch in data:
        o = ord(ch)
        if 0xDC80 <= o <= 0xDCFF:
            out.append(o - 0xDC00)  # an undecodable byte stays as it was
        elif o < 256:
            out.append(o)
        else:
            out.append(ord("_"))
    return _s(bytes(out))


@operator("rfc2047")
def op_rfc2047(ev: Evaluation, arg: str, sub: str | None) -> str:
    from pyxim.expand.rfc2047 import encode_word

    charset = "UTF-8"
    if ev.ctx.config is not None:
        charset = str(ev.ctx.config.main.get("headers_charset") or "UTF-8")
    return encode_word(arg, charset)


@operator("rfc2047d")
def op_rfc2047d(ev: Evaluation, arg: str, sub: str | None) -> str:
    from pyxim.expand.rfc2047 import decode_header_words

    return decode_header_words(arg)


@operator("xtextd")
def op_xtextd(ev: Evaluation, arg: str, sub: str | None) -> str:
    """RFC 3461 xtext decoding (Exim 4.97+; pyxim offers it now)."""
    return _s(re.sub(rb"\+([0-9A-Fa-f]{2})", lambda m: bytes([int(m.group(1), 16)]), _b(arg)))


@operator("headerwrap")
def op_headerwrap(ev: Evaluation, arg: str, sub: str | None) -> str:
    """Fold a header line at white space (Exim 4.97+; pyxim offers it now)."""
    cols, limit = 80, 998
    if sub:
        parts = sub.split("_")
        cols = int(parts[0]) if parts[0].isdigit() else cols
        if len(parts) > 1 and parts[1].isdigit():
            limit = int(parts[1])
    out: list[str] = []
    line = ""
    for word in re.split(r"(\s+)", arg[:limit]):
        if not word:
            continue
        if line and len(line) + len(word) > cols and not word.isspace():
            out.append(line.rstrip())
            line = "\t"
        if word.isspace():
            line += " " if line and line != "\t" else ""
        else:
            line += word
    out.append(line)
    return "\n".join(out)


# -- arithmetic, time --------------------------------------------------------


@operator("eval")
def op_eval(ev: Evaluation, arg: str, sub: str | None) -> str:
    from pyxim.expand.arith import evaluate

    return str(evaluate(arg, decimal=False))


@operator("eval10")
def op_eval10(ev: Evaluation, arg: str, sub: str | None) -> str:
    from pyxim.expand.arith import evaluate

    return str(evaluate(arg, decimal=True))


def readconf_time(text: str) -> int | None:
    """Exim's readconf_readtime(): 1w2d3h4m5s, every number with its unit; None if malformed."""
    from pyxim.config.options import read_time

    return read_time(text)


def time_interval(seconds: int) -> str:
    from pyxim.config.options import print_time

    return print_time(seconds)


@operator("time_eval")
def op_time_eval(ev: Evaluation, arg: str, sub: str | None) -> str:
    value = readconf_time(arg)
    if value is None:
        raise ExpansionError(f'string "{arg}" is not an Exim time interval in "time_eval" operator')
    return str(value)


@operator("time_interval")
def op_time_interval(ev: Evaluation, arg: str, sub: str | None) -> str:
    if not re.fullmatch(r"\d+", arg):
        raise ExpansionError(f'string "{arg}" is not a positive number in "time_interval" operator')
    return time_interval(int(arg))


@operator("randint")
def op_randint(ev: Evaluation, arg: str, sub: str | None) -> str:
    from pyxim.expand.arith import evaluate

    maximum = evaluate(arg, decimal=False)
    if maximum <= 1:
        raise ExpansionError(f"max must be > 1 for randint, not {maximum}")
    return str(random.SystemRandom().randrange(maximum))


# -- lists -------------------------------------------------------------------


@operator("listcount")
def op_listcount(ev: Evaluation, arg: str, sub: str | None) -> str:
    return str(sum(1 for _ in iterate_list(arg)))


_LIST_KINDS = {"a": "address", "d": "domain", "h": "host", "l": "localpart"}


@operator("listnamed")
def op_listnamed(ev: Evaluation, arg: str, sub: str | None) -> str:
    if sub is not None and sub not in _LIST_KINDS:
        raise ExpansionError('bad suffix on "list" operator')
    return _listnamed(ev, arg, sub)


def _listnamed(ev: Evaluation, name: str, sub: str | None) -> str:
    name = name[1:] if name.startswith("+") else name
    config = ev.ctx.config
    nl = config.named_lists.get(name) if config is not None else None
    if nl is None or (sub is not None and nl.kind != _LIST_KINDS[sub]):
        kind = "" if sub is None else _LIST_KINDS[sub] + " "
        raise ExpansionError(f'"{name}" is not a {kind}named list')
    sep, _ = list_separator(nl.value)
    parts: list[str] = []
    for item in iterate_list(nl.value):
        if item.startswith("+"):
            parts.append(_listnamed(ev, item, sub))
        elif sep != ":":
            parts.append(item.replace(":", "::"))
        else:
            parts.append(item)
    return " : ".join(parts)


# -- addresses ---------------------------------------------------------------


def _address_part(part: str):  # type: ignore[no-untyped-def]
    """${address:}, ${domain:}, ${local_part:}: one field of the parsed address, empty if it does not parse."""

    def op(ev: Evaluation, arg: str, sub: str | None) -> str:
        from pyxim.address import extract_address

        parsed = extract_address(arg)
        return getattr(parsed, part) if parsed is not None else ""

    return op


operator("address")(_address_part("address"))
operator("domain")(_address_part("domain"))
operator("local_part")(_address_part("local_part"))


@operator("addresses")
def op_addresses(ev: Evaluation, arg: str, sub: str | None) -> str:
    from pyxim.address import extract_address, split_address_list

    sep = ":"
    text = arg
    if text.startswith(">") and len(text) > 1:
        sep = text[1]
        text = text[2:]
    out = []
    for piece in split_address_list(text):
        parsed = extract_address(piece)
        if parsed is not None and parsed.address:
            out.append(parsed.address.replace(sep, sep + sep))
    return sep.join(out)


# -- IP addresses ------------------------------------------------------------


def _ipv6_full(addr: ipaddress.IPv6Address) -> str:
    return ":".join(f"{int(addr) >> (112 - 16 * i) & 0xFFFF:04x}" for i in range(8))


@operator("mask")
def op_mask(ev: Evaluation, arg: str, sub: str | None) -> str:
    address, slash, bits = arg.partition("/")
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise ExpansionError(f'"{arg}" is not an IP address') from None
    if not slash:
        raise ExpansionError(f'missing mask value in "{arg}"')
    if not bits.isdigit() or int(bits) > ip.max_prefixlen:
        raise ExpansionError(f'mask value too big in "{arg}"')
    net = ipaddress.ip_network(f"{address}/{bits}", strict=False)
    if ip.version == 4:
        return f"{net.network_address}/{bits}"
    full = _ipv6_full(net.network_address)  # type: ignore[arg-type]
    return full.replace(":", ".") + f"/{bits}"


def _as_ipv6(arg: str) -> ipaddress.IPv6Address:
    """The argument as IPv6; an IPv4 address becomes ::ffff:a.b.c.d, as Exim does."""
    try:
        ip = ipaddress.ip_address(arg)
    except ValueError:
        raise ExpansionError(f'"{arg}" is not an IP address') from None
    return ipaddress.IPv6Address(f"::ffff:{ip}") if ip.version == 4 else ip  # type: ignore[return-value]


@operator("ipv6norm")
def op_ipv6norm(ev: Evaluation, arg: str, sub: str | None) -> str:
    return str(_as_ipv6(arg))


@operator("ipv6denorm")
def op_ipv6denorm(ev: Evaluation, arg: str, sub: str | None) -> str:
    return _ipv6_full(_as_ipv6(arg))


@operator("reverse_ip")
def op_reverse_ip(ev: Evaluation, arg: str, sub: str | None) -> str:
    try:
        ip = ipaddress.ip_address(arg)
    except ValueError:
        raise ExpansionError(f'"{arg}" is not an IP address') from None
    if ip.version == 4:
        return ".".join(reversed(str(ip).split(".")))
    return ".".join(reversed(f"{int(ip):032x}"))


# -- files, expansion --------------------------------------------------------


@operator("expand")
def op_expand(ev: Evaluation, arg: str, sub: str | None) -> str:
    try:
        return ev.expand(arg)
    except ExpansionError as exc:
        raise type(exc)(f'internal expansion of "{arg}" failed: {exc.message}') from None


@operator("stat")
def op_stat(ev: Evaluation, arg: str, sub: str | None) -> str:
    check_untainted(arg, "Tainted name '%s' for stat not permitted")
    try:
        st = os.stat(arg)
    except OSError as exc:
        raise ExpansionError(f"stat({arg}) failed: {exc.strerror}") from None
    import stat as statmod

    mode = st.st_mode
    kind = (
        "d" if statmod.S_ISDIR(mode) else "l" if statmod.S_ISLNK(mode) else "c" if statmod.S_ISCHR(mode)
        else "b" if statmod.S_ISBLK(mode) else "p" if statmod.S_ISFIFO(mode) else "s" if statmod.S_ISSOCK(mode)
        else "-"
    )
    perms = "".join(
        ch if mode & bit else "-"
        for ch, bit in zip("rwxrwxrwx", (0o400, 0o200, 0o100, 0o40, 0o20, 0o10, 0o4, 0o2, 0o1), strict=True)
    )
    return (
        f"mode={mode & 0o7777:04o} smode={kind}{perms} inode={st.st_ino} device={st.st_dev} "
        f"links={st.st_nlink} uid={st.st_uid} gid={st.st_gid} size={st.st_size} "
        f"atime={int(st.st_atime)} mtime={int(st.st_mtime)} ctime={int(st.st_ctime)}"
    )


# -- quote_<lookup> ----------------------------------------------------------


def quote_for_lookup(ev: Evaluation, name: str, option: str | None, arg: str) -> str:
    from pyxim import lookups

    ltype = lookups.find_lookup_type(name)
    if ltype is None:
        raise ExpansionError(f'unknown lookup type "{name}"')
    quote = getattr(ltype, "quote", None)
    return quote(arg, option) if quote is not None else arg

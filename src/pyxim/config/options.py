"""Typed option values: reading them from the configuration, printing them for -bP.

Exim's option types, with the Python value each becomes:

    string       str, None when unset (expanded later by whoever uses it)
    bool         bool (no_/not_ prefixes, = true/false/yes/no)
    expand_bool  bool, or the str to expand when the value contains "$"
    bool_verify  bool; also sets NAME_recipient (router `verify`, `fail_verify`)
    int          int (K/M/G suffixes, 0x hex and 0 octal prefixes)
    mkint        int, printed with a K or M suffix when it divides evenly
    Kint         int counted in kilobytes (check_spool_space and friends)
    octint       int read in octal (modes, umask)
    fixed        int in thousandths (load averages), None when unset
    time         int seconds (1d2h30m10s)
    timelist     tuple of seconds (delay_warning = 1h:2h:1d)
    uid, gid     int, None when unset (a name is looked up at load)
    expand_uid   int, or the str to expand when the value contains "$"
    uidlist      tuple of ints (never_users, trusted_users)
    rewrite      str, the rewrite rules checked at load (headers_rewrite)
    stime        int seconds, or a str starting "$" (smtp_receive_timeout)

Every parse_* function raises ConfigError with Exim's words; the caller adds
the file and line.
"""

from __future__ import annotations

import grp
import pwd
import re
from dataclasses import dataclass

from pyxim.errors import ConfigError

KINDS = frozenset(
    {
        "string",
        "bool",
        "expand_bool",
        "bool_verify",
        "int",
        "mkint",
        "Kint",
        "octint",
        "fixed",
        "time",
        "timelist",
        "uid",
        "gid",
        "expand_uid",
        "expand_gid",
        "uidlist",
        "gidlist",
        "rewrite",
        "stime",
    }
)
BOOL_KINDS = frozenset({"bool", "expand_bool", "bool_verify"})
# Older spellings of the kinds, still accepted by OptionDef.
_KIND_ALIASES = {"size": "mkint", "octal": "octint", "ugidlist": "uidlist"}


@dataclass(slots=True, frozen=True)
class OptionDef:
    """One option of the main section or of a driver.

    hidden: not listed by -bP (synonyms and internal entries), as in Exim.
    alias_of: the option this name sets (a synonym), so both names share one value.
    deprecated: a pyxim alias from older documents; setting it logs a notice.
    repeat: "con" when repeated settings are and-ed (router `condition`), or the
      separator that joins repeated settings (headers_add "\\n", headers_remove ":").
    """

    name: str
    kind: str
    default: object = None
    hidden: bool = False
    alias_of: str | None = None
    deprecated: bool = False
    repeat: str | None = None

    def __post_init__(self) -> None:
        if self.kind in _KIND_ALIASES:
            object.__setattr__(self, "kind", _KIND_ALIASES[self.kind])
        if self.kind not in KINDS:
            raise ValueError(f"unknown option kind {self.kind!r} for {self.name}")


def opt(name: str, kind: str = "string", default: object = None, **extra: object) -> OptionDef:
    """Shorthand used by the option tables."""
    return OptionDef(name, kind, default, **extra)  # type: ignore[arg-type]


def extra_chars(rest: str, what: str) -> ConfigError:
    """Exim's complaint about junk after a value, with its hint about comments."""
    hint = " (# is comment only at line start)" if rest.startswith("#") else ""
    return ConfigError(f"extra characters follow {what}{hint}")


# -- booleans ----------------------------------------------------------------


def parse_bool(name: str, value: str) -> bool:
    """`= true/false/yes/no` (any case); anything after the word is an error."""
    text = value.strip()
    m = re.match(r"[A-Za-z][A-Za-z0-9_]*", text)
    word = m.group(0) if m else ""
    rest = text[len(word) :].strip()
    low = word.lower()
    if low in ("true", "yes"):
        result = True
    elif low in ("false", "no"):
        result = False
    else:
        raise ConfigError(f'"{word}" is not a valid value for the "{name}" option')
    if rest:
        raise extra_chars(rest, f'"{word}" for boolean option {name}')
    return result


# -- integers ----------------------------------------------------------------

_INT_MAX = 2**31 - 1
_INT_MIN = -(2**31)
_NUMBER = re.compile(r"\s*([-+]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)")
_OCTAL = re.compile(r"\s*([-+]?)([0-7]+)")


def _strtol(text: str, octal: bool) -> tuple[int, str] | None:
    """C's strtol with base 0 (or 8): the number and what follows it, None if no digits."""
    m = (_OCTAL if octal else _NUMBER).match(text)
    if not m:
        return None
    sign, digits = m.groups()
    if octal:
        n = int(digits, 8)
    elif digits[:2].lower() == "0x":
        n = int(digits, 16)
    elif digits.startswith("0") and len(digits) > 1:
        n = int(digits, 8)
    else:
        n = int(digits)
    return (-n if sign == "-" else n), text[m.end() :]


def parse_int(name: str, value: str, octal: bool = False) -> int:
    """An integer with optional K/M/G suffix; 0x hex and leading-0 octal as in C."""
    inttype = "octal " if octal else ""
    got = _strtol(value, octal)
    if got is None:
        raise ConfigError(f"{inttype}integer expected for {name}")
    n, rest = got
    if rest[:1].lower() in ("k", "m", "g"):
        n *= {"k": 1024, "m": 1024**2, "g": 1024**3}[rest[0].lower()]
        rest = rest[1:]
    if not _INT_MIN <= n <= _INT_MAX:
        raise ConfigError(f'absolute value of integer "{value.strip()}" is too large (overflow)')
    rest = rest.strip()
    if rest:
        raise extra_chars(rest, f"{inttype}integer value for {name}")
    return n


def parse_kint(name: str, value: str) -> int:
    """An integer counted in kilobytes: a plain number is K, M and G scale up (Exim 4.96)."""
    got = _strtol(value, False)
    if got is None:
        raise ConfigError(f"integer expected for {name}")
    n, rest = got
    suffix = rest[:1].lower()
    if suffix in ("k", "m", "g"):
        n *= {"k": 1, "m": 1024, "g": 1024**2}[suffix]
        rest = rest[1:]
    if not _INT_MIN <= n <= _INT_MAX:
        raise ConfigError(f'absolute value of integer "{value.strip()}" is too large (overflow)')
    rest = rest.strip()
    if rest:
        raise extra_chars(rest, f"integer value for {name}")
    return n


def read_size(text: str) -> int | None:
    """A size as Exim reads an expanded size option (message_size_limit): None if malformed."""
    try:
        return parse_int("", text)
    except ConfigError:
        return None


def parse_fixed(name: str, value: str) -> int:
    """A fixed-point number kept in thousandths (extra decimals are ignored, as in Exim)."""
    m = re.match(r"\s*([-+]?\d+)", value)
    if not m:
        raise ConfigError(f"fixed-point number expected for {name}")
    whole = int(m.group(1))
    if whole < 0 or whole * 1000 > _INT_MAX:
        raise ConfigError(f'integer "{value.strip()}" is too large (overflow)')
    n = whole * 1000
    rest = value[m.end() :]
    if rest.startswith("."):
        digits = re.match(r"\.(\d*)", rest)
        assert digits is not None
        scale = 100
        for ch in digits.group(1):
            n += int(ch) * scale
            scale //= 10
        rest = rest[digits.end() :]
    rest = rest.strip()
    if rest:
        raise extra_chars(rest, f"fixed-point value for {name}")
    return n


# -- times -------------------------------------------------------------------

_UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
_TIME_PART = re.compile(r"(\d+)([wdhms])")


def read_time(text: str) -> int | None:
    """1w2d3h4m5s → seconds; every number needs its unit (Exim's readconf_readtime). None if malformed."""
    if not text or not text[0].isdigit():
        return None
    total = 0
    pos = 0
    while pos < len(text):
        m = _TIME_PART.match(text, pos)
        if not m:
            return None
        total += int(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    return total


def parse_time(name: str, value: str) -> int:
    seconds = read_time(value.strip())
    if seconds is None:
        raise ConfigError(f"invalid time value for {name}")
    return seconds


def parse_timelist(name: str, value: str, max_items: int = 10) -> tuple[int, ...]:
    """Colon-separated increasing times (delay_warning); a leading 0 means none."""
    text = value.strip()
    if not text:
        return ()
    times: list[int] = []
    for part in text.split(":"):
        seconds = read_time(part.strip())
        if seconds is None:
            raise ConfigError(f"invalid time value for {name}")
        if times and seconds <= times[-1]:
            raise ConfigError(f"time value out of order for {name}")
        times.append(seconds)
        if len(times) > max_items:
            raise ConfigError(f"too many time values for {name}")
    return () if times[0] == 0 else tuple(times)


def print_time(seconds: int) -> str:
    """Exim's readconf_printtime: largest units first, 0 as "0s"."""
    sign = "-" if seconds < 0 else ""
    t = abs(seconds)
    parts = []
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if t >= size:
            parts.append(f"{t // size}{unit}")
            t %= size
    if t or not parts:
        parts.append(f"{t}s")
    return sign + "".join(parts)


# -- users and groups --------------------------------------------------------


def find_user(name: str) -> int:
    """A user name or number, as route_finduser: numbers need not exist."""
    if re.fullmatch(r"\d+", name):
        return int(name)
    try:
        return pwd.getpwnam(name).pw_uid
    except KeyError:
        raise ConfigError(f"user {name} was not found") from None


def find_group(name: str) -> int:
    if re.fullmatch(r"\d+", name):
        return int(name)
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        raise ConfigError(f"group {name} was not found") from None


def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def split_list(value: str) -> list[str]:
    """An Exim list with ":" (or the "<c" separator): doubled separators stand for one, items stripped."""
    text = value.strip()
    sep = ":"
    if len(text) >= 2 and text[0] == "<" and not text[1].isalnum() and not text[1].isspace():
        sep, text = text[1], text[2:]
    items: list[str] = []
    current = ""
    i = 0
    while i < len(text):
        if text[i] == sep:
            if text[i + 1 : i + 2] == sep:
                current += sep
                i += 2
                continue
            items.append(current.strip())
            current = ""
        else:
            current += text[i]
        i += 1
    if current.strip() or items:
        items.append(current.strip())
    return [item for item in items if item]


def _id_list(value: str, find) -> tuple[int, ...]:  # type: ignore[no-untyped-def]
    return tuple(find(item) for item in split_list(value))


# -- strings -----------------------------------------------------------------


def read_string(name: str, value: str) -> str:
    """A value in double quotes has its escapes interpreted; otherwise it is the rest of the line."""
    if not value.startswith('"'):
        return value
    from pyxim.expand.parser import interpret_escape

    out: list[str] = []
    i = 1
    n = len(value)
    while i < n and value[i] != '"':
        if value[i] == "\\" and i + 1 < n:
            ch, i = interpret_escape(value, i)
            out.append(ch)
        else:
            out.append(value[i])
            i += 1
    if i >= n:
        raise ConfigError(f"missing quote at end of string value for {name}")
    rest = value[i + 1 :]
    if rest:
        raise extra_chars(rest, f"string value for {name}")
    return "".join(out)


def string_printing(text: str) -> str:
    """Non-printing characters as escapes, the way -bP shows a string (Exim's string_printing)."""
    out: list[str] = []
    for byte in text.encode("utf-8", "surrogateescape"):
        if 0x20 <= byte < 0x7F:
            out.append(chr(byte))
        elif byte in (0x0A, 0x0D, 0x09, 0x08, 0x0B, 0x0C, 0x1B):
            out.append(
                {0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t", 0x08: "\\b", 0x0B: "\\v", 0x0C: "\\f", 0x1B: "\\e"}[
                    byte
                ]
            )
        else:
            out.append(f"\\{byte:03o}")
    return "".join(out)


# -- one option --------------------------------------------------------------


def parse_value(opt: OptionDef, value: str | None, negated: bool = False) -> object:
    """The typed value of `name = value` (value None: the bare name, for booleans)."""
    kind = opt.kind
    if kind in BOOL_KINDS:
        if value is None:
            return not negated
        if kind == "expand_bool" and "$" in value:
            return read_string(opt.name, value)
        return parse_bool(opt.name, value)
    if negated:
        raise ConfigError("negation prefix applied to a non-boolean option")
    if value is None:
        raise ConfigError(f"unexpected end of line (data missing) after {opt.name}")
    if kind in ("int", "mkint"):
        return parse_int(opt.name, value)
    if kind == "octint":
        return parse_int(opt.name, value, octal=True)
    if kind == "Kint":
        return parse_kint(opt.name, value)
    if kind == "fixed":
        return parse_fixed(opt.name, value)
    if kind == "time":
        return parse_time(opt.name, value)
    if kind == "stime":
        return value if value.startswith("$") else parse_time(opt.name, value)
    if kind == "timelist":
        return parse_timelist(opt.name, value)
    text = read_string(opt.name, value)
    if kind in ("expand_uid", "expand_gid") and "$" in text:
        return text
    if kind in ("uid", "expand_uid"):
        return find_user(text)
    if kind in ("gid", "expand_gid"):
        return find_group(text)
    if kind == "uidlist":
        return _id_list(text, find_user)
    if kind == "gidlist":
        return _id_list(text, find_group)
    if kind == "rewrite":
        from pyxim.config.sections import check_header_rewrite

        check_header_rewrite(text)
    return text


def format_value(opt: OptionDef, value: object) -> str:
    """The value part of a -bP line (after "name = ")."""
    kind = opt.kind
    if value is None:
        return ""
    if isinstance(value, str) and kind != "string":
        return string_printing(value)  # an expansion waiting for its time (expand_uid, expand_bool, stime)
    if kind in ("string", "rewrite"):
        return string_printing(str(value))
    if kind == "int":
        return str(value)
    if kind == "mkint":
        n = int(value)  # type: ignore[call-overload]
        if n and n % 1024 == 0:
            n //= 1024
            return f"{n // 1024}M" if n % 1024 == 0 else f"{n}K"
        return str(n)
    if kind == "Kint":
        n = int(value)  # type: ignore[call-overload]
        return "0" if n == 0 else f"{n // 1024}M" if n % 1024 == 0 else f"{n}K"
    if kind == "octint":
        n = int(value)  # type: ignore[call-overload]
        return f"0{n:o}" if n else "0"
    if kind == "fixed":
        n = int(value)  # type: ignore[call-overload]
        frac = f"{n % 1000:03d}".rstrip("0") or "0"
        return f"{n // 1000}.{frac}"
    if kind in ("time", "stime"):
        return print_time(int(value))  # type: ignore[call-overload]
    if kind == "timelist":
        return ":".join(print_time(t) for t in value)  # type: ignore[attr-defined]
    if kind in ("uid", "expand_uid"):
        return user_name(int(value))  # type: ignore[call-overload]
    if kind in ("gid", "expand_gid"):
        return group_name(int(value))  # type: ignore[call-overload]
    if kind == "uidlist":
        return ":".join(user_name(u) for u in value)  # type: ignore[attr-defined]
    if kind == "gidlist":
        return ":".join(group_name(g) for g in value)  # type: ignore[attr-defined]
    return str(value)


def format_option(opt: OptionDef, value: object, no_labels: bool = False) -> str:
    """One line of -bP output: `name = value`, or `name` / `no_name` for booleans."""
    if opt.kind in BOOL_KINDS and not isinstance(value, str):
        return f"{'' if value else 'no_'}{opt.name}"
    text = format_value(opt, value)
    if no_labels:
        return text
    if opt.kind in ("uidlist", "gidlist") or (opt.kind == "fixed" and value is None):
        return f"{opt.name} =" + (f" {text}" if text else "")
    return f"{opt.name} = {text}"

"""Typed option values: reading them from the configuration, printing them for -bP.

Exim's option types: boolean, integer (K/M/G suffixes, 0x and 0 prefixes),
fixed-point, time (1d2h30m10s), size, string, uid/gid and lists of them.
A table (data/*.txt, Exim 4.96's own -bP listing of its defaults) gives each
option its default; the type is read off the way Exim prints the default,
with the exceptions listed here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

from pyxim.errors import ConfigError

_TIME = re.compile(r"^(\d+[wdhms])+$")
_SIZE_PRINTED = re.compile(r"^\d+[KMG]$")

SIZE_OPTIONS = frozenset(
    {"message_size_limit", "check_log_space", "check_spool_space", "bounce_return_size_limit",
     "return_size_limit", "quota", "quota_warn_threshold", "mailbox_size", "maildir_quota"}
)
INT_OPTIONS = frozenset({"dns_retry", "header_line_maxsize", "ldap_version", "sqlite_lock_timeout"})
TIME_OPTIONS = frozenset({"dns_retrans", "receive_timeout", "rfc1413_query_timeout", "timeout_frozen_after",
                          "auto_thaw", "connect_timeout", "command_timeout", "data_timeout", "final_timeout",
                          "timeout", "proxy_protocol_timeout", "smtp_receive_timeout"})
FIXED_OPTIONS = frozenset({"deliver_queue_load_max", "queue_only_load", "smtp_load_reserve"})
OCTAL_OPTIONS = frozenset({"umask", "mode", "directory_mode", "lockfile_mode", "modemask"})
UGID_LIST_OPTIONS = frozenset({"admin_groups", "never_users", "trusted_groups", "trusted_users", "owners", "owngroups"})


@dataclass(slots=True, frozen=True)
class OptionDef:
    name: str
    kind: str  # bool, int, size, time, fixed, string, ugidlist
    default: object


def parse_bool(name: str, value: str) -> bool:
    low = value.strip().lower()
    if low in ("true", "yes"):
        return True
    if low in ("false", "no"):
        return False
    raise ConfigError(f'"{value}" is not a valid value for the "{name}" option')


def parse_int(name: str, value: str) -> int:
    text = value.strip()
    m = re.fullmatch(r"(-?)(0x[0-9a-fA-F]+|0[0-7]*|[1-9]\d*)([KMG]?)", text)
    if not m:
        raise ConfigError(f"integer expected for {name}")
    sign, digits, suffix = m.groups()
    if digits.lower().startswith("0x"):
        n = int(digits, 16)
    elif digits.startswith("0") and len(digits) > 1:
        n = int(digits, 8)
    else:
        n = int(digits)
    n *= {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}[suffix]
    return -n if sign else n


_UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}


def read_time(text: str) -> int | None:
    """1w2d3h4m5s → seconds; every number needs its unit (Exim's readconf_readtime). None if malformed."""
    if not _TIME.match(text):
        return None
    return sum(int(n) * _UNITS[u] for n, u in re.findall(r"(\d+)([wdhms])", text))


def parse_time(name: str, value: str) -> int:
    seconds = read_time(value.strip())
    if seconds is None:
        raise ConfigError(f"invalid time value for {name}")
    return seconds


def parse_fixed(name: str, value: str) -> int:
    """Fixed-point values are kept in thousandths, as Exim does."""
    m = re.fullmatch(r"(\d+)(?:\.(\d{1,3}))?", value.strip())
    if not m:
        raise ConfigError(f"fixed-point number expected for {name}")
    return int(m.group(1)) * 1000 + int((m.group(2) or "0").ljust(3, "0"))


def print_time(seconds: int) -> str:
    if seconds == 0:
        return "0s"
    out = ""
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            out += f"{seconds // size}{unit}"
            seconds %= size
    return out


def print_size(n: int) -> str:
    for suffix, size in (("G", 1024**3), ("M", 1024**2), ("K", 1024)):
        if n and n % size == 0:
            return f"{n // size}{suffix}"
    return str(n)


def parse_value(opt: OptionDef, value: str | None, negated: bool) -> object:
    if opt.kind == "bool":
        if value is None:
            return not negated
        return parse_bool(opt.name, value) != negated
    if negated:
        raise ConfigError("negation prefix applied to a non-boolean option")
    if value is None:
        raise ConfigError(f"unexpected end of line (data missing) after {opt.name}")
    if opt.kind in ("int", "size", "octal"):
        return parse_int(opt.name, value)
    if opt.kind == "time":
        return parse_time(opt.name, value)
    if opt.kind == "fixed":
        return parse_fixed(opt.name, value)
    from pyxim.config.syntax import unquote

    return unquote(value.strip())


def format_option(opt: OptionDef, value: object) -> str:
    """One line of -bP output."""
    if opt.kind == "bool":
        return opt.name if value else f"no_{opt.name}"
    if value is None:
        return f"{opt.name} =" if opt.kind in ("ugidlist", "fixed") else f"{opt.name} = "
    if opt.kind == "time":
        return f"{opt.name} = {print_time(int(value))}"  # type: ignore[call-overload]
    if opt.kind == "size":
        return f"{opt.name} = {print_size(int(value))}"  # type: ignore[call-overload]
    if opt.kind == "octal":
        return f"{opt.name} = {int(value):#o}".replace("0o", "0")  # type: ignore[call-overload]
    if opt.kind == "fixed":
        v = int(value)  # type: ignore[call-overload]
        frac = f"{v % 1000:03d}".rstrip("0")
        return f"{opt.name} = {v // 1000}" + (f".{frac}" if frac else "")
    return f"{opt.name} = {value}"


def _kind_from_printed(name: str, printed: str | None, bare: bool) -> str:
    if bare:
        return "bool"
    if name in UGID_LIST_OPTIONS:
        return "ugidlist"
    if name in FIXED_OPTIONS:
        return "fixed"
    if name in INT_OPTIONS:
        return "int"
    if name in OCTAL_OPTIONS:
        return "octal"
    if name in SIZE_OPTIONS or (printed and _SIZE_PRINTED.match(printed)):
        return "size"
    if name in TIME_OPTIONS or name.endswith("_timeout") or (printed and _TIME.match(printed)):
        return "time"
    if name in INT_OPTIONS or (printed is not None and re.fullmatch(r"-?\d+", printed)):
        return "int"
    return "string"


def load_table(filename: str) -> dict[str, OptionDef]:
    """Read a data/*.txt table (Exim -bP format) into option definitions."""
    text = resources.files("pyxim.config").joinpath("data", filename).read_text(encoding="utf-8")
    table: dict[str, OptionDef] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        if " =" in line:
            name, _, value = line.partition(" =")
            value = value[1:] if value.startswith(" ") else value
            kind = _kind_from_printed(name, value, bare=False)
            default: object = None
            if value != "":
                # strings keep their exact text (e.g. check_string's trailing space)
                default = value if kind == "string" else parse_value(OptionDef(name, kind, None), value, False)
            table[name] = OptionDef(name, kind, default)
        else:
            negated = line.startswith("no_")
            name = line[3:] if negated else line
            table[name] = OptionDef(name, "bool", not negated)
    return table

"""Driver option tables, found by Exim's driver names.

Each router, transport and authenticator driver declares the options it
takes (generic ones included). The built-in tables come from data/*.txt,
which hold Exim 4.96's own -bP listings of each driver's defaults; a later
module adds a driver (`driver = queuefile`) or options with register().
"""

from __future__ import annotations

from functools import lru_cache

from pyxim.config.options import OptionDef, load_table

_TABLES: dict[tuple[str, str], dict[str, OptionDef]] = {}
_PYXIM_EXTRAS: dict[tuple[str, str], list[OptionDef]] = {
    ("transport", "smtp"): [OptionDef("arc_sign", "string", None)],
    ("authenticator", "dovecot"): [OptionDef("server_tls", "bool", False)],
}


def register(kind: str, driver: str, options: dict[str, OptionDef]) -> None:
    _TABLES[(kind, driver)] = dict(options)


def _generic(kind: str, samples: list[str]) -> dict[str, OptionDef]:
    tables = [load_table(f"{kind}-{s}.txt") for s in samples]
    common = set(tables[0])
    for t in tables[1:]:
        common &= set(t)
    return {name: tables[0][name] for name in common}


# Options set in the sample configuration that produced data/*.txt, so left
# out of those listings; they are unset by default.
_UNSET_IN_DATA = {
    "router": {"*": ["transport"], "manualroute": ["route_list"], "redirect": ["data"]},
    "transport": {"appendfile": ["file"], "pipe": ["command"], "lmtp": ["socket", "command"], "autoreply": ["file"]},
    "authenticator": {"*": ["public_name"]},
}


@lru_cache(maxsize=1)
def _builtins() -> None:
    for driver in ("accept", "redirect", "dnslookup", "manualroute"):
        register("router", driver, load_table(f"router-{driver}.txt"))
    generic_router = _generic("router", ["accept", "redirect", "dnslookup", "manualroute"])
    for driver in ("ipliteral", "iplookup", "queryprogram"):
        extra = {
            "iplookup": ["hosts", "optional", "port", "protocol", "query", "response_pattern", "reroute", "timeout"],
            "queryprogram": ["command", "command_group", "command_user", "current_directory", "timeout"],
        }.get(driver, [])
        table = dict(generic_router)
        for name in extra:
            table[name] = OptionDef(name, "time" if name == "timeout" else "bool" if name == "optional" else "string",
                                    False if name == "optional" else None)
        register("router", driver, table)
    for driver in ("appendfile", "pipe", "smtp", "lmtp", "autoreply"):
        register("transport", driver, load_table(f"transport-{driver}.txt"))
    generic_transport = _generic("transport", ["appendfile", "pipe", "smtp", "lmtp", "autoreply"])
    register("transport", "queuefile", {**generic_transport, "directory": OptionDef("directory", "string", None)})
    for driver in ("plaintext", "cram_md5", "dovecot"):
        register("authenticator", driver, load_table(f"auth-{driver}.txt"))
    generic_auth = _generic("auth", ["plaintext", "cram_md5", "dovecot"])
    for driver in ("external", "tls", "spa"):
        register("authenticator", driver, dict(generic_auth))
    for (kind, driver), extras in _PYXIM_EXTRAS.items():
        for opt in extras:
            _TABLES[(kind, driver)][opt.name] = opt
    for (kind, driver), table in _TABLES.items():
        for name in _UNSET_IN_DATA[kind].get("*", []) + _UNSET_IN_DATA[kind].get(driver, []):
            table.setdefault(name, OptionDef(name, "string", None))


_GENERIC_SAMPLES = {
    "router": ("router", ["accept", "redirect", "dnslookup", "manualroute"]),
    "transport": ("transport", ["appendfile", "pipe", "smtp", "lmtp", "autoreply"]),
    "authenticator": ("auth", ["plaintext", "cram_md5", "dovecot"]),
}


@lru_cache(maxsize=3)
def generic_option_names(kind: str) -> frozenset[str]:
    """Options every driver of this kind has (Exim lists these first in -bP)."""
    prefix, samples = _GENERIC_SAMPLES[kind]
    names = set(_generic(prefix, samples)) | set(_UNSET_IN_DATA[kind].get("*", [])) | {"driver"}
    return frozenset(names)


def options_for(kind: str, driver: str) -> dict[str, OptionDef] | None:
    _builtins()
    return _TABLES.get((kind, driver))


def drivers_of(kind: str) -> list[str]:
    _builtins()
    return sorted(d for k, d in _TABLES if k == kind)

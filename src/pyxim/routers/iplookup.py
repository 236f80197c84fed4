"""The iplookup router: its option table (Exim 4.96 names, types and defaults)."""

from __future__ import annotations

from pyxim.config.drivers import register
from pyxim.config.options import OptionDef, opt

OPTIONS: list[OptionDef] = [
    opt("hosts"),
    opt("optional", "bool", False),
    opt("port", "int", 0),
    opt("protocol"),
    opt("query"),
    opt("reroute"),
    opt("response_pattern"),
    opt("timeout", "time", 5),
]

register("router", "iplookup", OPTIONS)

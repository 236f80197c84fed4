"""The manualroute router: its option table (Exim 4.96 names, types and defaults)."""

from __future__ import annotations

from pyxim.config.drivers import register
from pyxim.config.options import OptionDef, opt

OPTIONS: list[OptionDef] = [
    opt("host_all_ignored", "string", "defer"),
    opt("host_find_failed", "string", "freeze"),
    opt("hosts_randomize", "bool", False),
    opt("route_data"),
    opt("route_list"),
    opt("same_domain_copy_routing", "bool", False),
]

register("router", "manualroute", OPTIONS)

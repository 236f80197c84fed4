"""The queryprogram router: its option table (Exim 4.96 names, types and defaults)."""

from __future__ import annotations

from pyxim.config.drivers import register
from pyxim.config.options import OptionDef, opt

OPTIONS: list[OptionDef] = [
    opt("command"),
    opt("command_group", "expand_gid"),
    opt("command_user", "expand_uid"),
    opt("current_directory", "string", "/"),
    opt("timeout", "time", 3600),
]

register("router", "queryprogram", OPTIONS)

"""The lmtp transport: its option table (Exim 4.96 names, types and defaults)."""

from __future__ import annotations

from pyxim.config.drivers import register
from pyxim.config.options import OptionDef, opt

OPTIONS: list[OptionDef] = [
    opt("batch_id"),
    opt("batch_max", "int", 1),
    opt("command"),
    opt("ignore_quota", "bool", False),
    opt("socket"),
    opt("timeout", "time", 300),
]

register("transport", "lmtp", OPTIONS)

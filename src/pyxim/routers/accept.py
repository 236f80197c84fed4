"""The accept router: its option table (Exim 4.96 names, types and defaults)."""

from __future__ import annotations

from pyxim.config.drivers import register
from pyxim.config.options import OptionDef

OPTIONS: list[OptionDef] = []

register("router", "accept", OPTIONS, generic_defaults={"log_as_local": True})

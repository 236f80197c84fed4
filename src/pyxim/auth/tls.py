"""The tls authenticator: its option table (Exim 4.96 names, types and defaults)."""

from __future__ import annotations

from pyxim.config.drivers import register
from pyxim.config.options import OptionDef, opt

OPTIONS: list[OptionDef] = [
    opt("server_param"),
    opt("server_param1"),
    opt("server_param2"),
    opt("server_param3"),
]

register("authenticator", "tls", OPTIONS)

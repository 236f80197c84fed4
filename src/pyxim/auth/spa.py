"""The spa authenticator: its option table (Exim 4.96 names, types and defaults)."""

from __future__ import annotations

from pyxim.config.drivers import register
from pyxim.config.options import OptionDef, opt

OPTIONS: list[OptionDef] = [
    opt("client_domain"),
    opt("client_password"),
    opt("client_username"),
    opt("server_password"),
]

register("authenticator", "spa", OPTIONS)

"""The cram_md5 authenticator: its option table (Exim 4.96 names, types and defaults)."""

from __future__ import annotations

from pyxim.config.drivers import register
from pyxim.config.options import OptionDef, opt

OPTIONS: list[OptionDef] = [
    opt("client_name"),
    opt("client_secret"),
    opt("server_secret"),
]

register("authenticator", "cram_md5", OPTIONS)

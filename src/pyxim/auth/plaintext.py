"""The plaintext authenticator: its option table (Exim 4.96 names, types and defaults)."""

from __future__ import annotations

from pyxim.config.drivers import register
from pyxim.config.options import OptionDef, opt

OPTIONS: list[OptionDef] = [
    opt("client_ignore_invalid_base64", "bool", False),
    opt("client_send"),
    opt("server_prompts"),
]

register("authenticator", "plaintext", OPTIONS)

"""The dovecot authenticator: its option table (Exim 4.96 names, types and defaults)."""

from __future__ import annotations

from pyxim.config.drivers import register
from pyxim.config.options import OptionDef, opt

OPTIONS: list[OptionDef] = [
    opt("server_socket"),
    opt("server_tls", "bool", False),  # pyxim: offer only on TLS connections
]

register("authenticator", "dovecot", OPTIONS)

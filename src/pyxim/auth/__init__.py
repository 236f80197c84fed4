"""Authenticators: one module per Exim authenticator driver (the SMTP AUTH server is in server.py).

For now each driver module holds its option table and registers it; the
generic options every authenticator takes are here. Importing this package
registers every built-in authenticator driver.
"""

from __future__ import annotations

from pyxim.config.options import OptionDef, opt

GENERIC_OPTIONS: list[OptionDef] = [
    opt("client_condition"),
    opt("client_set_id"),
    opt("public_name"),
    opt("server_advertise_condition"),
    opt("server_condition"),
    opt("server_debug_print"),
    opt("server_mail_auth_condition"),
    opt("server_set_id"),
]

from pyxim.auth import cram_md5, dovecot, external, plaintext, spa, tls  # noqa: E402,F401,I001  (registration)

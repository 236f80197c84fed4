"""Transports: one module per Exim transport driver.

For now each driver module holds its option table and registers it; the
generic options every transport takes are here. Importing this package
registers every built-in transport driver.
"""

from __future__ import annotations

from pyxim.config.options import OptionDef, opt

GENERIC_OPTIONS: list[OptionDef] = [
    opt("body_only", "bool", False),
    opt("current_directory"),
    opt("debug_print"),
    opt("delivery_date_add", "bool", False),
    opt("disable_logging", "bool", False),
    opt("envelope_to_add", "bool", False),
    opt("event_action"),
    opt("group", "expand_gid"),
    opt("headers_add", repeat="\n"),
    opt("headers_only", "bool", False),
    opt("headers_remove", repeat=":"),
    opt("headers_rewrite", "rewrite"),
    opt("home_directory"),
    opt("initgroups", "bool", False),
    opt("max_parallel"),
    opt("message_size_limit"),
    opt("rcpt_include_affixes", "bool", False),
    opt("retry_use_local_part", "bool", True),
    opt("return_path"),
    opt("return_path_add", "bool", False),
    opt("shadow_condition"),
    opt("shadow_transport"),
    opt("transport_filter"),
    opt("transport_filter_timeout", "time", 300),
    opt("user", "expand_uid"),
    opt("tpda_delivery_action", hidden=True, alias_of="event_action", deprecated=True),
]

from pyxim.transports import appendfile, autoreply, lmtp, pipe, queuefile, smtp  # noqa: E402,F401,I001  (registration)

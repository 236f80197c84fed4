"""Routers: one module per Exim router driver.

For now each driver module holds its option table and registers it; the
generic options every router takes are here. Importing this package
registers every built-in router driver.
"""

from __future__ import annotations

from pyxim.config.options import OptionDef, opt

GENERIC_OPTIONS: list[OptionDef] = [
    opt("address_data"),
    opt("address_test", "bool", True),
    opt("cannot_route_message"),
    opt("caseful_local_part", "bool", False),
    opt("check_local_user", "bool", False),
    opt("condition", repeat="con"),  # repeated settings are and-ed
    opt("debug_print"),
    opt("disable_logging", "bool", False),
    opt("dnssec_request_domains", "string", "*"),
    opt("dnssec_require_domains"),
    opt("domains"),
    opt("dsn_lasthop", "bool", False),
    opt("errors_to"),
    opt("expn", "bool", True),
    opt("fail_verify_recipient", "bool", False),
    opt("fail_verify_sender", "bool", False),
    opt("fallback_hosts"),
    opt("group", "expand_gid"),
    opt("headers_add", repeat="\n"),
    opt("headers_remove", repeat=":"),
    opt("ignore_target_hosts"),
    opt("initgroups", "bool", False),
    opt("local_part_prefix"),
    opt("local_part_prefix_optional", "bool", False),
    opt("local_part_suffix"),
    opt("local_part_suffix_optional", "bool", False),
    opt("local_parts"),
    opt("log_as_local", "bool", False),
    opt("more", "expand_bool", True),
    opt("pass_on_timeout", "bool", False),
    opt("pass_router"),
    opt("redirect_router"),
    opt("require_files"),
    opt("retry_use_local_part", "bool", None),  # unset: follows check_local_user
    opt("router_home_directory"),
    opt("self", "string", "freeze"),
    opt("senders"),
    opt("set", repeat=";"),
    opt("transport"),
    opt("transport_current_directory"),
    opt("transport_home_directory"),
    opt("unseen", "expand_bool", False),
    opt("user", "expand_uid"),
    opt("verify_only", "bool", False),
    opt("verify_recipient", "bool", True),
    opt("verify_sender", "bool", True),
    # synonyms Exim does not list: verify sets verify_sender and verify_recipient
    opt("verify", "bool_verify", True, hidden=True),
    opt("fail_verify", "bool_verify", False, hidden=True),
]

from pyxim.routers import accept, dnslookup, ipliteral, iplookup, manualroute, queryprogram, redirect  # noqa: E402,F401,I001  (registration)

"""The dnslookup router: its option table (Exim 4.96 names, types and defaults)."""

from __future__ import annotations

from pyxim.config.drivers import register
from pyxim.config.options import OptionDef, opt

OPTIONS: list[OptionDef] = [
    opt("check_secondary_mx", "bool", False),
    opt("check_srv"),
    opt("fail_defer_domains"),
    opt("ipv4_only"),
    opt("ipv4_prefer"),
    opt("mx_domains"),
    opt("mx_fail_domains"),
    opt("qualify_single", "bool", True),
    opt("rewrite_headers", "bool", True),
    opt("same_domain_copy_routing", "bool", False),
    opt("search_parents", "bool", False),
    opt("srv_fail_domains"),
    opt("widen_domains"),
]

register("router", "dnslookup", OPTIONS)

"""The dnslookup router: its option table (Exim 4.96 names, types and defaults)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pyxim.config.drivers import register
from pyxim.config.model import DriverInstance
from pyxim.config.options import OptionDef, opt
from pyxim.errors import LookupDefer
from pyxim.expand import ExpansionContext, expand_string
from pyxim.lists import iterate_list, match_domain_list

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


# -- routing -------------------------------------------------------------------
#
# What Exim's dnslookup router does with a domain, in the order it does it:
# the domain itself, then each widen_domains suffix (the domain itself last when
# search_parents is set, as the resolver's search list tries it already); for each
# name the resolver's own qualification (qualify_single for a name without dots,
# search_parents for names with dots, both from resolv.conf's search list); SRV
# records first when check_srv names a service, then MX, then A/AAAA. A domain
# found under another name (widened, qualified, or the end of a CNAME chain) is
# rerouted under that name, from the first router.


@dataclass(slots=True)
class DnsRoute:
    hosts: list[Any]  # engine.Host records, in the order delivery tries them
    name: str  # the fully qualified name they were found for
    local: bool = False  # the local host is among the best hosts (Exim's HOST_FOUND_LOCAL)
    removed: bool = False  # the local host and the hosts after it were removed (af_local_host_removed)


_FAILED = "failed"  # no such domain (Exim's HOST_FIND_FAILED)
_DEAD_MX = "dead-mx"  # MX records, but none leads to an address


def route(inst: DriverInstance, ctx: ExpansionContext) -> DnsRoute | None:
    """The hosts for $domain, or None when the router declines. Raises the engine's
    RouterFail / RouterDefer / RouterPass for the other outcomes."""
    from pyxim.routers import engine

    domain = str(ctx.variables.get("domain", ""))
    resolver = ctx.get_resolver()
    widen = [w for w in iterate_list(_expand(inst, "widen_domains", ctx) or "") if w]
    search_parents = bool(inst.options.get("search_parents"))
    names = [domain] + [f"{domain}.{w}" for w in widen]
    if widen and search_parents:
        names = names[1:] + [domain]
    found: tuple[str, list[Any], str] | None = None
    deferred: LookupDefer | None = None
    for name in names:
        try:
            found = _qualified_lookup(inst, ctx, resolver, name, search_parents)
        except LookupDefer as exc:
            # a lookup that did not complete stops widening: the answer is unknown, not "no"
            deferred = exc
            break
        if found[0] != _FAILED:
            break
    if deferred is not None:
        if inst.options.get("pass_on_timeout"):
            raise engine.RouterPass()
        raise engine.RouterDefer("host lookup did not complete")
    assert found is not None
    status, hosts, fqdn = found
    if status != "found":
        defer_list = _expand(inst, "fail_defer_domains", ctx)
        if defer_list is not None and match_domain_list(ctx, domain, defer_list):
            raise engine.RouterDefer("missing MX, or all MXs point to missing A records, and defer requested")
        if status == _DEAD_MX:
            raise engine.RouterFail("all relevant MX records point to non-existent hosts")
        return None
    ignore = _expand(inst, "ignore_target_hosts", ctx)
    if ignore:
        from pyxim.lists import match_host_list

        hosts = [h for h in hosts if not (h.address and match_host_list(ctx, h.address, ignore, ""))]
        if not hosts:
            return None
    # ipv4_only / ipv4_prefer are expanded conditions (anything but "", "0", "no", "false"), not lists
    if _condition(inst, "ipv4_only", ctx):
        hosts = [h for h in hosts if ":" not in (h.address or "")]
        if not hosts:
            return None
    elif _condition(inst, "ipv4_prefer", ctx):
        # IPv4 first within each preference; the sort is stable, so the order is otherwise kept
        hosts.sort(key=lambda h: (h.mx if h.mx is not None else -1, ":" in (h.address or "")))
    local, hosts, removed = engine.scan_for_local_hosts(ctx, hosts)
    return DnsRoute(hosts, fqdn, local, removed)


def _condition(inst: DriverInstance, name: str, ctx: ExpansionContext) -> bool:
    """Exim's expand_check_condition: true unless the expansion is empty, "0", "no" or "false"
    (or forced to fail)."""
    from pyxim.errors import ForcedFail

    try:
        value = _expand(inst, name, ctx)
    except ForcedFail:
        return False
    return value is not None and value.strip().lower() not in ("", "0", "no", "false")


def _expand(inst: DriverInstance, name: str, ctx: ExpansionContext) -> str | None:
    value = inst.options.get(name)
    return None if value is None else expand_string(str(value), ctx)


def _qualified_lookup(
    inst: DriverInstance, ctx: ExpansionContext, resolver: Any, name: str, search_parents: bool
) -> tuple[str, list[Any], str]:
    """The C resolver's search rules (res_search): a name without dots is tried with the
    default domain (the whole search list with search_parents) first when qualify_single is
    set, then as it is; a name with dots as it is first, then (search_parents) with each
    search-list domain."""
    qualify_single = inst.options.get("qualify_single") is not False
    search = resolver.search_list() if (qualify_single or search_parents) else []
    if "." not in name:
        # without search_parents the C library qualifies with the first (default) domain only
        tries = (
            [f"{name}.{s}" for s in (search if search_parents else search[:1]) if s] if qualify_single else []
        )
        tries.append(name)
    else:
        tries = [name] + ([f"{name}.{s}" for s in search if s] if search_parents else [])
    result: tuple[str, list[Any], str] = (_FAILED, [], name)
    deferred: LookupDefer | None = None
    for candidate in tries:
        try:
            result = _exact_lookup(inst, ctx, resolver, candidate)
        except LookupDefer as exc:
            deferred = exc  # the C library goes on to the next search domain after a server failure
            continue
        if result[0] != _FAILED:
            return result
    if deferred is not None:
        raise deferred
    return result


def _exact_lookup(
    inst: DriverInstance, ctx: ExpansionContext, resolver: Any, name: str
) -> tuple[str, list[Any], str]:
    from pyxim.routers import engine

    domain = str(ctx.variables.get("domain", ""))
    # Exim names the domain after the owner of the last CNAME in a chain (alias -> www -> mx1
    # gives www; www -> mx1 leaves www): the name whose record led to the data
    chain = [name]
    while len(chain) < 8:
        alias = resolver.query(chain[-1], "CNAME")
        if not alias.records:
            break
        chain.append(str(alias.records[0].target).rstrip("."))
    canonical = chain[-2] if len(chain) > 1 else name
    service = _expand(inst, "check_srv", ctx)
    if service:
        try:
            srv = resolver.query(f"_{service}._tcp.{name}", "SRV").records
        except LookupDefer:
            fail_list = _expand(inst, "srv_fail_domains", ctx)
            if fail_list is None or not match_domain_list(ctx, domain, fail_list):
                raise
            srv = []  # srv_fail_domains: a failed SRV lookup counts as no SRV records
        if len(srv) == 1 and str(srv[0].target).strip(".") == "":
            raise engine.RouterDecline("an MX or SRV record indicated no SMTP service")
        if srv:
            hosts = []
            for record in _srv_order(srv):
                target = str(record.target).rstrip(".")
                for address in engine._v6_first(resolver.addresses_for_name(target)):
                    hosts.append(engine.Host(target, address, record.priority, record.port))
            return ("found" if hosts else _DEAD_MX), hosts, canonical
    try:
        mx = engine._shuffle_equal_preferences(resolver.mx_hosts(name))
    except LookupDefer:
        fail_list = _expand(inst, "mx_fail_domains", ctx)
        if fail_list is None or not match_domain_list(ctx, domain, fail_list):
            raise
        mx = []  # mx_fail_domains: a failed MX lookup counts as no MX records
    if len(mx) == 1 and mx[0][1].strip(".") == "":
        # RFC 7505 null MX (and a "." SRV target): the router declines, and that is the reason given
        raise engine.RouterDecline("an MX or SRV record indicated no SMTP service")
    if mx:
        hosts = [
            engine.Host(host, address, pref)
            for pref, host in mx
            for address in engine._v6_first(resolver.addresses_for_name(host))
        ]
        return ("found" if hosts else _DEAD_MX), hosts, canonical
    mx_domains = _expand(inst, "mx_domains", ctx)
    if mx_domains is not None and match_domain_list(ctx, domain, mx_domains):
        return _FAILED, [], name  # MX records required for this domain: no fallback to its address
    found = resolver.query(name, "A")
    if not found.records:
        found = resolver.query(name, "AAAA")
    # the host itself is named by the end of the chain
    host = (found.cname_target or chain[-1]).rstrip(".")
    hosts = [engine.Host(host, address) for address in engine._v6_first(resolver.addresses_for_name(name))]
    return ("found" if hosts else _FAILED), hosts, canonical


def _srv_order(records: list[Any]) -> list[Any]:
    """RFC 2782: by priority, and within one priority a weighted random order."""
    import random

    out: list[Any] = []
    for priority in sorted({r.priority for r in records}):
        group = [r for r in records if r.priority == priority]
        while group:
            total = sum(r.weight for r in group)
            pick = group[0]
            if total:
                point = random.randint(0, total)
                running = 0
                for r in group:
                    running += r.weight
                    if running >= point:
                        pick = r
                        break
            else:
                pick = random.choice(group)
            group.remove(pick)
            out.append(pick)
    return out

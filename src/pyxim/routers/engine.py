"""Routing: addresses through the routers in order, as Exim does (first part).

Each router's generic preconditions (domains, local_parts, senders, condition,
verify_only …) are checked, then its driver decides: accept (to a transport),
redirect (new addresses, routed again from the first router, or :fail:,
:defer:, :blackhole:), manualroute (hosts from route_list). A router that
declines passes the address to the next; `no_more` stops the search there.

Used by `-bt`, `-bv` and `verify = recipient/sender`. Delivery is not here.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

from pyxim.config.model import Config, DriverInstance
from pyxim.errors import ExpansionError, ForcedFail, LookupDefer
from pyxim.expand import ExpansionContext, expand_string
from pyxim.expand.taint import Tainted, carry, is_tainted
from pyxim.lists import iterate_list, match_address_list, match_domain_list, match_localpart_list

MAX_GENERATIONS = 50  # redirection loops end here


@dataclass
class Host:
    name: str
    address: str | None
    mx: int | None = None
    port: int | None = None  # from route_list "host::port"; None: the transport's port


@dataclass
class RoutedAddress:
    address: str
    parents: list[str] = field(default_factory=list)  # outermost last, as -bt prints them
    router: str = ""
    transport: str = ""
    hosts: list[Host] = field(default_factory=list)
    outcome: str = "routed"  # routed, failed, deferred, discarded
    message: str = ""
    # what the transport sees: $local_part_data, $domain_data, $address_data, $home …
    variables: dict[str, str] = field(default_factory=dict)
    uid: int | None = None  # the user to deliver as (check_local_user or the router's user)
    gid: int | None = None
    headers_add: list[str] = field(default_factory=list)  # the router's headers_add, expanded
    headers_remove: list[str] = field(default_factory=list)
    errors_to: str | None = None  # where bounces for this address go (errors_to; "" discards them)
    dsn_lasthop: bool = False  # the router's dsn_lasthop: DSN options are not passed on from here
    # a deferral that also freezes the message (host_find_failed/host_all_ignored/self = freeze)
    freeze: bool = False
    order: tuple[int, ...] = ()  # where redirection data put it (Exim routes children as written)
    one_time: bool = False  # made by a one_time redirect router: a deferral makes it a recipient
    errno: int = 0  # Exim's errno for a routing deferral (-32: a host lookup failed), 0: the default
    # lines the router asks to be written to the main log when this address is delivered
    log_lines: list[str] = field(default_factory=list)
    # a dnslookup router with rewrite_headers found the domain under another name: (old, new)
    domain_change: tuple[str, str] | None = None
    domain_changes: list[tuple[str, str]] = field(default_factory=list)  # the ancestors' changes, oldest first


class _Decline(Exception):
    """The router declines; a message (a null MX …) becomes the failure text if no later
    router takes the address."""


RouterDecline = _Decline


def _option(inst: DriverInstance, name: str) -> object:
    return inst.options.get(name)


def _expand_option(inst: DriverInstance, name: str, ctx: ExpansionContext) -> str | None:
    value = inst.options.get(name)
    if value is None:
        return None
    return expand_string(str(value), ctx)


def _preconditions(inst: DriverInstance, ctx: ExpansionContext, verifying: bool | str) -> bool:
    """`verifying`: False (delivery), True (a recipient, -bv) or "sender" (a sender's verification, -bvs)."""
    if verifying and inst.options.get("verify") is False:
        return False
    if verifying and inst.options.get("verify_sender" if verifying == "sender" else "verify_recipient") is False:
        return False
    if not verifying and inst.options.get("verify_only"):
        return False
    domain = ctx.variables.get("domain", "")
    # each router sees the whole local part; its own prefix/suffix options may strip it
    full = ctx.variables.setdefault(_FULL_LOCAL_PART, ctx.variables.get("local_part", ""))
    for name in ("local_part_prefix", "local_part_suffix", "local_part_prefix_v", "local_part_suffix_v"):
        ctx.variables[name] = ""
    ctx.variables["local_part"] = full
    domains = _expand_option(inst, "domains", ctx)
    if domains is not None and not match_domain_list(ctx, domain, domains):
        return False
    if not _strip_affixes(inst, ctx, full):
        return False
    local_part = ctx.variables.get("local_part", "")
    local_parts = _expand_option(inst, "local_parts", ctx)
    caseful = bool(inst.options.get("caseful_local_part"))
    if local_parts is not None and not match_localpart_list(
        ctx, local_part, local_parts, caseless=not caseful
    ):
        return False
    # Exim's cannot_route_message comes from the last router whose domains and
    # local_parts matched, even if a later precondition (check_local_user …) failed
    ctx.variables[_TRIED] = inst.name
    senders = _expand_option(inst, "senders", ctx)
    if senders is not None and not match_address_list(ctx, ctx.variables.get("sender_address", ""), senders):
        return False
    require_files = _expand_option(inst, "require_files", ctx)
    if require_files is not None:
        import os

        for item in iterate_list(require_files):
            wanted = not item.startswith("!")
            path = item.lstrip("!+")
            if path and os.path.exists(path) != wanted:
                return False
    condition = inst.options.get("condition")
    if condition is not None:
        from pyxim.expand.conditions import cond_bool_lax

        try:
            if not cond_bool_lax(None, [expand_string(str(condition), ctx)]):  # type: ignore[arg-type]
                return False
        except ForcedFail:
            return False
    if inst.options.get("check_local_user"):
        import pwd

        try:
            pw = pwd.getpwnam(local_part)
        except KeyError:
            return False
        # the password file's spelling is not tainted: it may name files
        ctx.variables["home"] = pw.pw_dir
        ctx.variables["local_part_data"] = pw.pw_name
        ctx.variables[_LOCAL_USER] = f"{pw.pw_uid}:{pw.pw_gid}"
    return True


def _strip_affixes(inst: DriverInstance, ctx: ExpansionContext, local_part: str) -> bool:
    """local_part_prefix / local_part_suffix: strip the first matching affix (a leading "*" in a
    prefix takes the longest match, a trailing "*" in a suffix the longest too), or decline
    unless the affix is _optional. Matching ignores case, as Exim's does."""
    from pyxim.expand.taint import carry

    lp = local_part
    for kind in ("prefix", "suffix"):
        patterns = _expand_option(inst, f"local_part_{kind}", ctx)
        if patterns is None:
            continue
        found = None
        low = lp.lower()
        for pattern in iterate_list(patterns):
            pat = pattern.lower()
            if kind == "prefix":
                if pat.startswith("*"):
                    at = low.rfind(pat[1:], 0, len(low) - 1) if pat[1:] else -1
                    if at >= 0:
                        found = (lp[: at + len(pat) - 1], lp[:at])
                elif pat and low.startswith(pat) and len(low) > len(pat):
                    found = (lp[: len(pat)], "")
            else:
                if pat.endswith("*"):
                    at = low.find(pat[:-1], 1) if pat[:-1] else -1
                    if at > 0:
                        found = (lp[at:], lp[at + len(pat) - 1 :])
                elif pat and low.endswith(pat) and len(low) > len(pat):
                    found = (lp[len(lp) - len(pat) :], "")
            if found is not None:
                break
        if found is None:
            if not inst.options.get(f"local_part_{kind}_optional"):
                return False
            continue
        affix, variable = found
        ctx.variables[f"local_part_{kind}"] = carry(affix, local_part)
        ctx.variables[f"local_part_{kind}_v"] = carry(variable, local_part)
        lp = lp[len(affix) :] if kind == "prefix" else lp[: len(lp) - len(affix)]
    ctx.variables["local_part"] = carry(lp, local_part)
    return True


# The local part as the address has it, before a router's prefix/suffix options (not a $-variable).
_FULL_LOCAL_PART = "pyxim:full_local_part"
# Where check_local_user leaves the user's uid:gid for the delivery (not a $-variable).
_LOCAL_USER = "pyxim:local_user"
_TRIED = "pyxim:router_tried"
_TRANSPORT_VARIABLES = (
    "local_part_data",
    "domain_data",
    "address_data",
    "home",
    "local_part_prefix",
    "local_part_suffix",
    "local_part_prefix_v",
    "local_part_suffix_v",
    "local_part",
)


def _unseen(
    result: RoutedAddress,
    pending: list,  # type: ignore[type-arg]
    generation: int,
    index: int,
    routers: list[str],
) -> RoutedAddress:
    """An unseen router's result becomes a child of the address, and a second child goes on
    from the next router (Exim shows both with the address as their parent, the second first)."""
    parents = [result.address, *result.parents]
    result.parents = parents
    pending.append(result)
    pending.append((result.address, parents, generation, index + 1, [result.router, *routers]))
    return RoutedAddress(result.address, parents[1:], outcome="redirected")


def _redirect_start(config: Config, inst: DriverInstance) -> int:
    """Where the addresses a router makes start routing: its redirect_router, else the first router."""
    name = inst.options.get("redirect_router")
    if not name:
        return 0
    return next((n for n, r in enumerate(config.routers) if r.name == name), 0)


def _is_true(value: object, ctx: ExpansionContext) -> bool:
    """A boolean option that may be an expansion (unseen, …)."""
    if value is None or isinstance(value, bool):
        return bool(value)
    from pyxim.expand.conditions import cond_bool_lax

    try:
        return bool(cond_bool_lax(None, [expand_string(str(value), ctx)]))  # type: ignore[arg-type]
    except ForcedFail:
        return False


def _routed(result: RoutedAddress, inst: DriverInstance, ctx: ExpansionContext) -> None:
    """Note what the transport needs from the router that accepted the address."""
    add = _expand_option(inst, "headers_add", ctx)
    if add:
        result.headers_add = [line for line in add.split("\n") if line.strip()]
    remove = _expand_option(inst, "headers_remove", ctx)
    if remove:
        result.headers_remove = [name for name in iterate_list(remove) if name]
    errors_to = _expand_option(inst, "errors_to", ctx)
    if errors_to is not None:
        result.errors_to = errors_to
    result.dsn_lasthop = bool(inst.options.get("dsn_lasthop"))
    address_data = inst.options.get("address_data")
    if address_data is not None:
        ctx.variables["address_data"] = expand_string(str(address_data), ctx)
    result.variables = {k: ctx.variables[k] for k in _TRANSPORT_VARIABLES if k in ctx.variables}
    user = ctx.variables.get(_LOCAL_USER)
    if user:
        uid, gid = user.split(":")
        result.uid, result.gid = int(uid), int(gid)
    if inst.options.get("user") is not None:
        result.uid = _numeric_id(inst.options["user"], "user")
    if inst.options.get("group") is not None:
        result.gid = _numeric_id(inst.options["group"], "group")


def _numeric_id(value: object, kind: str) -> int | None:
    if isinstance(value, int):
        return value
    import grp
    import pwd

    text = str(value)
    try:
        if text.isdigit():
            return int(text)
        return pwd.getpwnam(text).pw_uid if kind == "user" else grp.getgrnam(text).gr_gid
    except KeyError:
        return None


def _resolve(ctx: ExpansionContext, name: str) -> list[str]:
    try:
        ipaddress.ip_address(name.strip("[]"))
        return [name.strip("[]")]
    except ValueError:
        pass
    return ctx.get_resolver().addresses_for_name(name)


class _RouterFail(Exception):
    """A router that fails the address outright (host_find_failed = fail, self = fail …)."""

    def __init__(self, message: str = "", log_lines: list[str] | None = None) -> None:
        super().__init__(message)
        self.log_lines = log_lines or []


RouterFail = _RouterFail


_ROUTE_OPTIONS = {
    "randomize",
    "no_randomize",
    "byname",
    "bydns",
    "ipv4_prefer",
    "ipv6_prefer",
    "ipv4_only",
    "ipv6_only",
}


def _split_route(text: str) -> tuple[str, list[str]]:
    """A route_list/route_data entry after its domain: the host list (quoted or one word), then options."""
    text = text.strip()
    if text.startswith('"'):
        end = text.find('"', 1)
        hostlist, rest = (text[1:end], text[end + 1 :]) if end > 0 else (text[1:], "")
    else:
        hostlist, _, rest = text.partition(" ")
    return hostlist, rest.split()


def _manualroute(
    config: Config, inst: DriverInstance, ctx: ExpansionContext, router_name: str
) -> tuple[list[Host], str | None] | None:
    """The hosts for the domain (and a transport named in the route's options), or None to decline."""
    domain = ctx.variables.get("domain", "")
    route_data = inst.options.get("route_data")
    entries: list[tuple[str | None, str]] = []
    if route_data is not None:
        data = expand_string(str(route_data), ctx)
        if not data.strip():
            return None
        entries.append((None, data))
    else:
        for item in iterate_list(str(inst.options.get("route_list") or ""), ";"):
            pattern, _, rest = item.strip().partition(" ")
            entries.append((pattern, rest))
    for pattern, rest in entries:
        if pattern is not None and not match_domain_list(ctx, domain, pattern):
            continue
        hostlist, options = _split_route(rest)
        transport = None
        randomize = bool(inst.options.get("hosts_randomize"))
        for option in options:
            if option in _ROUTE_OPTIONS:
                randomize = option == "randomize" if "randomize" in option else randomize
            elif any(t.name == option for t in config.transports):
                transport = option
            else:
                raise _RouterDefer(f'error in router: unknown routing option or transport name "{option}"')
        hostlist = expand_string(hostlist, ctx) if pattern is not None else hostlist
        hosts: list[Host] = []
        ignore = _expand_option(inst, "ignore_target_hosts", ctx)
        not_found: list[str] = []  # Exim's log line for each host that was not found
        names = list(iterate_list(hostlist))
        if randomize:
            import random

            random.shuffle(names)  # Exim randomizes the host names, before any lookup
        self_send = False
        for name in names:
            port = None
            mx = False
            if name.endswith("/MX"):
                name, mx = name[:-3], True
            host_part, sep, port_text = name.rpartition(":")
            if sep and port_text.isdigit() and ("." in host_part or not host_part.count(":")):
                name, port = host_part, int(port_text)
            name = name.strip("[]")
            try:
                if mx:
                    addresses = [
                        (n, a, pref)
                        for pref, n in ctx.get_resolver().mx_hosts(name)
                        for a in _v6_first(ctx.get_resolver().addresses_for_name(n))
                    ]
                else:
                    addresses = [(name, a, None) for a in _resolve(ctx, name)]
            except LookupDefer:
                # the lookup did not complete: not the same as "no such host"
                if inst.options.get("pass_on_timeout"):
                    raise RouterPass() from None
                raise _RouterDefer("host lookup did not complete") from None
            if ignore and addresses:
                from pyxim.lists import match_host_list

                # a host whose every address is in ignore_target_hosts counts as not found
                addresses = [e for e in addresses if not match_host_list(ctx, e[1], ignore, "")]
            if not addresses:
                not_found.append(f"no IP address found for host {name}")
                _host_policy(
                    inst,
                    "host_find_failed",
                    f'lookup of host "{name}" failed in {router_name} router',
                    not_found,
                )
                continue  # host_find_failed = ignore
            found = [Host(n, a, pref, port) for n, a, pref in addresses]
            # Exim's rf_lookup_hostlist: the local host, found after other hosts, is dropped
            # with every later host (the list is treated like an ordered MX list); found
            # first, the router's `self` option decides (once it says send, later local
            # hosts are kept)
            local, found, _removed = scan_for_local_hosts(ctx, found)
            if local and not self_send:
                if hosts:
                    break
                if not _self_action(inst, found[0], str(domain)):
                    return None
                self_send = True
            hosts.extend(found)
        if not hosts:
            if not not_found:
                return None
            # host_find_failed = ignore dropped every host
            policy = str(inst.options.get("host_all_ignored") or "defer").strip()
            _host_policy(
                inst,
                "host_all_ignored",
                f"lookup failed for all hosts in {router_name} router: "
                f"host_find_failed=ignore host_all_ignored={policy}",
                not_found,
            )
            return None
        return hosts, transport
    return None


def _host_policy(inst: DriverInstance, option: str, message: str, log_lines: list[str] | None = None) -> None:
    """host_find_failed / host_all_ignored: ignore (return), decline (the router declines), pass
    (to pass_router or the next router), fail, defer, or freeze (defer and freeze the message)."""
    default = "freeze" if option == "host_find_failed" else "defer"
    policy = str(inst.options.get(option) or default).strip()
    if policy == "ignore":
        return
    if policy == "decline":
        raise _Decline()
    if policy == "pass":
        raise RouterPass()
    if policy == "fail":
        raise _RouterFail(message, log_lines)
    # Exim's errno for a failed host lookup is -32 in the == line
    raise _RouterDefer(
        message,
        freeze=policy == "freeze",
        log_lines=log_lines,
        errno=-32 if option == "host_find_failed" else 0,
    )


def _is_local_host(ctx: ExpansionContext, host: Host) -> bool:
    """Is this host item the local host? Exim's host_scan_for_local_hosts: its name is in
    hosts_treat_as_local (matched as a domain, with $domain set to the name), its address is
    0.0.0.0, or its address is one of this machine's interface addresses as local_interfaces
    (default: every interface) and extra_local_interfaces name them. Nothing else of 127/8
    counts as local."""
    from pyxim.lists import _canonical_ip, _local_interface_ips

    treat = ctx.config.main.get("hosts_treat_as_local") if ctx.config is not None else None
    if treat and host.name:
        saved = ctx.variables.get("domain")
        ctx.variables["domain"] = host.name
        try:
            if match_domain_list(ctx, host.name.lower(), str(treat), record=False):
                return True
        finally:
            if saved is None:
                ctx.variables.pop("domain", None)
            else:
                ctx.variables["domain"] = saved
    if not host.address:
        return False
    address = _canonical_ip(host.address)
    return address == "0.0.0.0" or address in _local_interface_ips(ctx)


def scan_for_local_hosts(ctx: ExpansionContext, hosts: list[Host]) -> tuple[bool, list[Host], bool]:
    """Exim's host_scan_for_local_hosts for one lookup's hosts, in the order they will be
    tried: (local, hosts, removed). When the local host is among the first group of equal
    preference (every address of a name found without MX records is one group), local is
    true and the list is kept whole for the router's `self` option; when it is found further
    down, it, the hosts of its preference and every later host are removed."""
    prev_end = 0  # the hosts before the preference group being scanned
    for index, host in enumerate(hosts):
        if _is_local_host(ctx, host):
            if prev_end == 0:
                return True, hosts, False
            return False, hosts[:prev_end], True
        if index + 1 == len(hosts) or hosts[index + 1].mx != host.mx:
            prev_end = index + 1
    return False, hosts, False


def _self_action(inst: DriverInstance, host: Host, domain: str) -> bool:
    """Exim's rf_self_action, for a host list whose first host is the local host: True to
    send anyway (self = send), False when the router declines; raises for pass, fail, defer
    and freeze (the default)."""
    policy = str(inst.options.get("self") or "freeze").strip()
    if policy == "send":
        return True
    if policy == "decline":
        return False
    if policy == "pass":
        raise RouterPass()
    message = (
        "lowest numbered MX record points to local host"
        if host.mx is not None
        else "remote host address is the local host"
    )
    if policy == "fail":
        raise _RouterFail(message)
    # freeze (the default) and defer: Exim also writes the reason, with the domain, to the main log
    raise _RouterDefer(message, freeze=policy == "freeze", log_lines=[f"{message}: {domain}"])


SELF_MESSAGES = ("lowest numbered MX record points to local host:", "remote host address is the local host:")


def test_mode_log_line(line: str, address: str) -> str:
    """A router's main-log line as Exim words it with no message (-bt, -bv): the `self` option's
    line names the address being routed."""
    return f"{line} (while routing <{address}>)" if line.startswith(SELF_MESSAGES) else line


def _v6_first(addresses: list[str]) -> list[str]:
    # Exim asks for AAAA before A, so a host's IPv6 addresses come first
    return [a for a in addresses if ":" in a] + [a for a in addresses if ":" not in a]


def _shuffle_equal_preferences(mx: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """RFC 5321: hosts of equal preference are tried in random order (as Exim does)."""
    import random

    out: list[tuple[int, str]] = []
    for pref in sorted({p for p, _ in mx}):
        same = [entry for entry in mx if entry[0] == pref]
        random.shuffle(same)
        out.extend(same)
    return out


def _parse_redirect_address(item: str) -> tuple[str | None, str | None]:
    """(the address an item names — route-addr, quoted local part … —, None) or (None, Exim's error)."""
    from pyxim.address import parse_address
    from pyxim.expand.taint import carry

    parsed = parse_address(item)
    if not parsed:
        return None, str(getattr(parsed, "message", "malformed address"))
    address = parsed.address  # type: ignore[union-attr]
    local, at, domain = address.rpartition("@") if "@" in address else (address, "", "")
    if local.startswith('"') and local.endswith('"') and len(local) > 1:
        # routing sees the local part without its quotes (Exim's deliver_split_address)
        local = re.sub(r"\\(.)", r"\1", local[1:-1])
        address = f"{local}{at}{domain}"
    return carry(address, item), None


def _redirect_items(data: str, depth: int = 0) -> list[str]:
    """The items of redirection data: commas or newlines separate them; '#' starts a comment
    line; ":include:path" reads more items from a file (its contents are not tainted)."""
    from pyxim.expand.taint import carry

    items: list[str] = []
    for line in data.split("\n"):
        if line.lstrip().startswith("#"):
            continue
        for piece in _split_items(line):
            piece = piece.strip()
            if not piece:
                continue
            if len(piece) > 2 and piece[0] == '"' and piece[-1] == '"' and piece[1] in "|/":
                # a quoted pipe or file ("|/usr/bin/prog a, b"): the quotes only protect its text
                piece = re.sub(r"\\(.)", r"\1", piece[1:-1])
            if piece.startswith(":include:"):
                path = piece[len(":include:") :].strip()
                if depth > 5:
                    raise _RouterDefer(f"too many nested :include: items at {path}")
                try:
                    with open(path, encoding="utf-8", errors="surrogateescape") as f:
                        items.extend(_redirect_items(f.read(), depth + 1))
                except OSError as exc:
                    raise _RouterDefer(f"failed to open included file {path}: {exc.strerror}") from None
                continue
            items.append(carry(piece, data))
    return items


def _split_items(line: str) -> list[str]:
    """Split a line of redirection data at commas outside quotes (a backslash escapes inside them)."""
    pieces: list[str] = []
    current: list[str] = []
    quoted = False
    i = 0
    while i < len(line):
        c = line[i]
        if quoted and c == "\\" and i + 1 < len(line):
            current.append(line[i : i + 2])
            i += 2
            continue
        if c == '"':
            quoted = not quoted
        elif c == "," and not quoted:
            pieces.append("".join(current))
            current = []
            i += 1
            continue
        current.append(c)
        i += 1
    pieces.append("".join(current))
    return pieces


@dataclass
class SyntaxErrorNotice:
    """Redirection items a skip_syntax_errors router skipped: Exim logs each one, and tells
    syntax_errors_to about them in a message of its own."""

    router: str
    errors: list[tuple[str, str]]  # (error, item)
    to: str | None  # syntax_errors_to, expanded (None: unset)
    text: str | None  # syntax_errors_text, expanded


def route_address(
    config: Config,
    address: str,
    ctx_vars: dict[str, str] | None = None,
    verifying: bool | str = False,
    ctx: ExpansionContext | None = None,
    notices: list[SyntaxErrorNotice] | None = None,
    message: Any = None,
) -> list[RoutedAddress]:
    """Route one address; returns one result per final address (redirection may make several).
    `notices` collects what skip_syntax_errors routers skipped (for delivery to act on);
    `message` (an expand.message.Message) is the message being delivered, for $h_ and filters."""
    results: list[RoutedAddress] = []
    pending: list = [(address, [], 0)]  # type: ignore[type-arg]
    while pending:
        entry = pending.pop()
        if isinstance(entry, RoutedAddress):  # a pipe or file item, routed by its redirect router
            results.append(entry)
            continue
        # (address, its ancestors, generation[, first router to try[, the router that handled each ancestor]])
        addr, parents, generation, *rest = entry
        start = rest[0] if rest else 0
        routers = rest[1] if len(rest) > 1 else []
        results.append(
            _route_one(
                config,
                addr,
                parents,
                generation,
                ctx_vars or {},
                verifying,
                pending,
                ctx,
                start,
                routers,
                notices,
                rest[2] if len(rest) > 2 else (),
                message,
            )
        )
    finals = [r for r in results if r.outcome != "redirected"]
    # a domain changed by DNS (dnslookup with rewrite_headers): the addresses routed from it carry
    # the change, so that delivery rewrites the header lines (Exim's rf_change_domain)
    changes = {r.address: r.domain_change for r in results if r.outcome == "redirected" and r.domain_change}
    if changes:
        for r in finals:
            r.domain_changes = [changes[p] for p in reversed(r.parents) if p in changes]
    return finals


def _route_one(
    config: Config,
    address: str,
    parents: list[str],
    generation: int,
    ctx_vars: dict[str, str],
    verifying: bool | str,
    pending: list,  # type: ignore[type-arg]
    ctx: ExpansionContext | None,
    start: int = 0,
    routers: list[str] | None = None,
    notices: list[SyntaxErrorNotice] | None = None,
    order: tuple[int, ...] = (),
    mail: Any = None,
) -> RoutedAddress:
    result = RoutedAddress(address, parents, order=order)
    routers = routers or []
    if routers and routers[0] in _one_time_routers(config):
        result.one_time = True
    # Exim's loop check: a router is skipped for an address that has an ancestor of the same
    # address (ignoring the local part's case only where it is caseless) that this router handled
    looped = {r for p, r in zip(parents, routers, strict=False) if p.lower() == address.lower()}
    local_part, _, domain = address.rpartition("@")
    context = ctx or ExpansionContext(config=config)
    if mail is not None and context.message is None:
        context.message = mail  # the message being delivered: $h_ in conditions and filters
    context.variables.update(ctx_vars)
    context.variables.update({"local_part": Tainted(local_part), "domain": Tainted(domain)})
    context.variables[_FULL_LOCAL_PART] = Tainted(local_part)
    if generation > MAX_GENERATIONS:
        result.outcome, result.message = "failed", "too many redirections"
        return result
    context.variables.pop(_TRIED, None)
    stop = False  # the last router run declined and has no_more
    decline_message = ""
    for index, inst in enumerate(config.routers):
        if index < start:
            continue  # an unseen router's copy goes on from the next router (or a pass_router)
        if stop:
            break
        if inst.name in looped:
            continue
        try:
            if not _preconditions(inst, context, verifying):
                continue
            # from here on the router runs: a decline with no_more ends the search
            more = inst.options.get("more")
            stop = more is not None and not _is_true(more, context)
            # unseen: when this router takes the address, a copy goes on to the routers after it
            copy = _is_true(inst.options.get("unseen"), context)
            if inst.driver == "accept":
                result.router, result.transport = inst.name, _transport_name(config, inst, context)
                _routed(result, inst, context)
                return _unseen(result, pending, generation, index, routers) if copy else result
            if inst.driver == "redirect":
                data = _expand_option(inst, "data", context)
                if data is None and inst.options.get("file"):
                    path = _expand_option(inst, "file", context) or ""
                    if is_tainted(path):  # a file named by the message's sender is not read
                        raise _RouterDefer(f"Tainted name '{path}' for file read not permitted")
                    try:
                        data = open(path, encoding="utf-8").read()
                    except OSError:
                        data = ""
                if not data:
                    continue  # nothing to redirect to: the router declines
                stripped = data.strip()
                kind = _filter_kind(stripped)
                replies: list[RoutedAddress] = []  # a filter's autoreplies: routed first, as in Exim
                if kind is not None:
                    from pyxim.routers import redirect

                    outcome = redirect.run_filter(
                        inst, context, data.lstrip(), kind, address, delivering=mail is not None and not verifying
                    )
                    if outcome.freeze is not None:
                        raise _RouterDefer(outcome.freeze or "frozen by filter", freeze=True)
                    filtered, replies = _filter_items(config, inst, context, outcome, [address, *parents])
                    significant = outcome.significant or outcome.fail is not None
                    if filtered is None and not replies:
                        continue  # the filter set up no delivery at all: the router declines
                    stripped = filtered or ""
                    if not significant:
                        # only unseen deliveries: the address goes on to the next routers too
                        # (routed after what the filter made, as Exim does)
                        pending.append(
                            (address, [address, *parents], generation, index + 1, [inst.name, *routers])
                        )
                for keyword, outcome in ((":fail:", "failed"), (":defer:", "deferred")):
                    if stripped.startswith(keyword):
                        if not inst.options.get("allow_fail" if outcome == "failed" else "allow_defer"):
                            raise _RouterDefer(f'error in redirect data: "{stripped}" is not permitted')
                        result.outcome = outcome
                        result.message = stripped[len(keyword) :].strip() or (
                            "Unrouteable address" if outcome == "failed" else "deferred by redirect"
                        )
                        result.router = inst.name
                        result.errors_to = _expand_option(inst, "errors_to", context)
                        return result
                if not stripped:  # only autoreplies: the address itself went on (unseen)
                    pending.extend(reversed(replies))
                    result.outcome, result.router = "redirected", inst.name
                    return result
                if stripped == ":blackhole:":
                    result.outcome, result.router = "discarded", inst.name
                    return result
                if stripped == ":unknown:":
                    continue
                # Exim's order: pipes and files first, as written; then the new addresses, last first
                # (pending is a stack: what is pushed last is handled first)
                items = _redirect_items(stripped)
                skipped: list[tuple[str, str]] = []
                for position, item in enumerate(items):
                    if item.startswith(("|", "/")):
                        continue
                    parsed, error = _parse_redirect_address(item)
                    if parsed is None:
                        if inst.options.get("skip_syntax_errors"):
                            skipped.append((str(error), item))  # Exim logs it and goes on
                            continue
                        raise _RouterDefer(f'error in redirect data: {error} in "{item}"')
                    item = parsed
                    if "@" in item:
                        child = item
                    elif inst.options.get("qualify_preserve_domain"):
                        child = f"{item}@{domain}"  # the domain of the address being redirected
                    else:
                        child = f"{item}@{_expand_option(inst, 'qualify_domain', context) or _qualify(config, context)}"
                    if inst.options.get("rewrite") is not False and config.rewrite_rules:
                        child = _rewrite_generated(config, child)
                    if inst.options.get("check_ancestor") and any(
                        child.lower() == a.lower() for a in [address, *parents][1:]
                    ):
                        # back to an ancestor (A aliased to B, B forwarding to A): B itself instead
                        child = address
                    pending.append(
                        (
                            child,
                            [address, *parents],
                            generation + 1,
                            _redirect_start(config, inst),
                            [inst.name, *routers],
                            (*order, position),
                        )
                    )
                for position, item in reversed(
                    [(n, i) for n, i in enumerate(items) if i.startswith(("|", "/"))]
                ):
                    special = _special_item(config, inst, context, item, [address, *parents])
                    special.order = (*order, position)
                    if kind is not None and item.startswith("|") and special.outcome == "routed":
                        special.variables["expand_pipe"] = "1"  # a filter's command is expanded per argument
                    pending.append(special)
                if skipped and notices is not None and not verifying:
                    notices.append(
                        SyntaxErrorNotice(
                            inst.name,
                            skipped,
                            _expand_option(inst, "syntax_errors_to", context),
                            _expand_option(inst, "syntax_errors_text", context),
                        )
                    )
                result.outcome = "redirected"
                if copy:
                    pending.append(
                        (address, [address, *parents], generation, index + 1, [inst.name, *routers])
                    )
                pending.extend(reversed(replies))
                return result
            if inst.driver in ("manualroute", "dnslookup"):
                route_transport = None
                if inst.driver == "manualroute":
                    found = _manualroute(config, inst, context, inst.name)
                    hosts, route_transport = found if found is not None else (None, None)
                else:
                    from pyxim.routers import dnslookup

                    dns_route = dnslookup.route(inst, context)
                    if dns_route is not None and dns_route.name.lower() != domain.lower():
                        # found under another name (widened, qualified by the resolver, the end
                        # of a CNAME chain): a child address with that domain is routed afresh
                        # from the first router (Exim's rf_change_domain)
                        pending.append(
                            (
                                f"{local_part}@{dns_route.name}",
                                [address, *parents],
                                generation + 1,
                                _redirect_start(config, inst),
                                [inst.name, *routers],
                            )
                        )
                        result.outcome = "redirected"
                        if inst.options.get("rewrite_headers", True):
                            result.domain_change = (domain, dns_route.name)
                        return result
                    hosts = dns_route.hosts if dns_route is not None else None
                    if dns_route is not None and dns_route.local:
                        # the local host is among the best hosts: the `self` option decides
                        if not _self_action(inst, dns_route.hosts[0], domain):
                            hosts = None
                    elif dns_route is not None and inst.options.get("check_secondary_mx"):
                        if not dns_route.removed:
                            hosts = None  # check_secondary_mx: the local host was not a lower MX
                if not hosts:
                    continue
                result.router = inst.name
                result.transport = route_transport or _transport_name(config, inst, context)
                result.hosts = hosts
                _routed(result, inst, context)
                if copy:
                    return _unseen(result, pending, generation, index, routers)
                return result
            # drivers whose routing is not implemented yet decline
        except _Decline as exc:
            if exc.args and exc.args[0]:
                decline_message = str(exc.args[0])
        except RouterPass:
            target = _expand_option(inst, "pass_router", context)
            if target:
                found_at = next((n for n, r in enumerate(config.routers) if r.name == target), None)
                if found_at is None or found_at <= index:
                    result.outcome = "deferred"
                    result.message = f'pass_router "{target}" not found after {inst.name} router'
                    return result
                start = found_at
            stop = False  # a pass goes on even past no_more
            continue
        except _RouterDefer as exc:
            result.outcome, result.message = "deferred", str(exc)
            result.freeze, result.log_lines, result.errno = exc.freeze, exc.log_lines, exc.errno
            result.router = inst.name
            return result
        except _RouterFail as exc:
            result.outcome, result.message, result.log_lines = "failed", str(exc), exc.log_lines
            result.router = inst.name
            return result
        except LookupDefer as exc:
            result.outcome, result.message = "deferred", exc.message
            return result
        except ExpansionError as exc:
            result.outcome, result.message = (
                "deferred",
                f"failed to expand in {inst.name} router: {exc.message}",
            )
            return result
    message = decline_message or "Unrouteable address"
    tried = context.variables.get(_TRIED)
    last_ran = next((r for r in config.routers if r.name == tried), None) if tried else None
    if last_ran is not None and last_ran.options.get("cannot_route_message"):
        # the last router that was run (its preconditions held) words the failure
        try:
            message = expand_string(str(last_ran.options["cannot_route_message"]), context) or message
        except ExpansionError:
            pass
    result.outcome, result.message = "failed", message
    return result


def _rewrite_generated(config: Config, address: str) -> str:
    """The redirect router's `rewrite` option (default on): a generated address goes through the
    rewrite section's envelope-recipient (T) rules, as Exim rewrites new addresses."""
    from pyxim.expand.taint import carry
    from pyxim.rewrite import ENVTO, Rewriter, rules_of

    rules = rules_of(config)
    if not rules.exist & ENVTO:
        return address
    new = Rewriter(config, rules).rewrite_one(address, ENVTO).address
    return carry(new, address) if new else address


def _one_time_routers(config: Config) -> set[str]:
    return {r.name for r in config.routers if r.driver == "redirect" and r.options.get("one_time")}


def _filter_kind(data: str) -> str | None:
    """Redirection data that is a filter: its first line says "# Exim filter" or "# Sieve filter"
    (any case, any spacing)."""
    first = data.split("\n", 1)[0].strip().lower()
    words = first[1:].split() if first.startswith("#") else []
    if words[:2] in (["exim", "filter"], ["sieve", "filter"]):
        return words[0]
    return None


def _filter_items(
    config: Config, inst: DriverInstance, ctx: ExpansionContext, outcome: Any, parents: list[str]
) -> tuple[str | None, list[RoutedAddress]]:
    """What an Exim filter set up, as redirection data (addresses, "/files", "|pipes" or
    ":fail:") plus the autoreplies, already routed to the router's reply_transport."""
    import json

    if outcome.fail is not None:
        return f":fail: {outcome.fail or 'Delivery failed by filter'}", []
    lines: list[str] = []
    replies: list[RoutedAddress] = []
    home = str(ctx.variables.get("home") or "")
    for item in outcome.items:
        if item.kind == "address":
            lines.append(item.text)
        elif item.kind == "pipe":
            lines.append("|" + item.text)
        elif item.kind == "file" and getattr(outcome, "sieve", False):
            # a Sieve folder ("inbox", "INBOX.x", "/abs"): $address_file as written
            replies.append(_special_item(config, inst, ctx, item.text, parents))
        elif item.kind == "file":
            path = item.text
            if not path.startswith("/") and home and inst.options.get("filter_prepend_home", True):
                path = carry(f"{home}/{path}", path, home)  # save's relative names are in $home
            if is_tainted(path):
                # kept whole (taint and all) so that the file transport refuses it
                replies.append(_special_item(config, inst, ctx, path, parents))
            else:
                lines.append(path)
        else:
            reply = item.reply
            to = item.text if "to" in reply.fields else _reply_address(ctx)
            # the reply is known by its first recipient's address ("Sam <s@x>" gives >s@x), as Exim logs it
            from pyxim.address import extract_address, split_address_list

            first = next((p.address for p in map(extract_address, split_address_list(to or ""))
                          if p is not None and p.address), None)
            result = RoutedAddress(">" + (first or to or "**bad-reply**"), parents, router=inst.name)
            name = str(inst.options.get("reply_transport") or "")
            if "$" in name:
                name = expand_string(name, ctx)
            if not name or all(t.name != name for t in config.transports):
                result.outcome = "deferred"
                result.message = (f"reply_transport unset in {inst.name} router" if not name
                                  else f'transport "{name}" not found in {inst.name} router')
            elif inst.options.get("forbid_filter_reply"):
                result.outcome, result.message, result.transport = "failed", "delivery to autoreply forbidden", name
            else:
                result.transport = name
            result.variables = {k: ctx.variables[k] for k in _TRANSPORT_VARIABLES if k in ctx.variables}
            # the reply's contents travel with the address; the transport builds the message
            result.variables["filter_reply"] = json.dumps({
                "fields": reply.fields, "expand_file": reply.expand_file,
                "return_message": reply.return_message, "vacation": reply.vacation,
                "tainted": sorted(k for k, v in reply.fields.items() if is_tainted(v)),
            })
            replies.append(result)
    return ("\n".join(lines) if lines else None), replies


def _reply_address(ctx: ExpansionContext) -> str:
    """Where a filter's mail goes without a "to": the message's $reply_address."""
    try:
        return expand_string("$reply_address", ctx).strip() if ctx.message is not None else ""
    except ExpansionError:
        return ""


def _special_item(
    config: Config, inst: DriverInstance, ctx: ExpansionContext, item: str, parents: list[str]
) -> RoutedAddress:
    """A "|command" or "/file" from redirection data: delivered by the router's pipe_transport or
    file_transport (directory_transport for "/dir/"); forbid_pipe/forbid_file refuse them."""
    pipe = item.startswith("|")
    kind = "pipe" if pipe else "file"
    result = RoutedAddress(item, parents, router=inst.name)
    option = "pipe_transport" if pipe else ("directory_transport" if item.endswith("/") else "file_transport")
    name = str(inst.options.get(option) or "")
    if "$" in name:
        name = expand_string(name, ctx)
    if inst.options.get(f"forbid_{kind}"):
        # it fails at delivery, logged with the transport it would have had
        result.outcome, result.message, result.transport = "failed", f"delivery to {kind} forbidden", name
        return result
    if not name:
        result.outcome = "deferred"
        result.message = f"{option} not set for {inst.name} router"
        return result
    if all(t.name != name for t in config.transports):
        result.outcome, result.message = "deferred", f'transport "{name}" not found in {inst.name} router'
        return result
    result.transport = name
    result.variables = {k: ctx.variables[k] for k in _TRANSPORT_VARIABLES if k in ctx.variables}
    result.variables["address_pipe" if pipe else "address_file"] = item[1:].lstrip() if pipe else item
    return result


class _RouterDefer(Exception):
    """A router cannot finish (its transport is missing, a host lookup did not complete …):
    the address is deferred; `freeze` freezes the message too (Exim's SPECIAL_FREEZE)."""

    def __init__(
        self, message: str = "", freeze: bool = False, log_lines: list[str] | None = None, errno: int = 0
    ) -> None:
        super().__init__(message)
        self.freeze = freeze
        self.log_lines = log_lines or []
        self.errno = errno


class RouterPass(Exception):
    """The router passes the address on: to its pass_router, else to the next router (even
    past no_more) — host_find_failed = pass, pass_on_timeout."""


RouterDefer = _RouterDefer


def _transport_name(config: Config, inst: DriverInstance, ctx: ExpansionContext) -> str:
    """The router's transport, expanded when it holds a "$"; Exim defers an
    address whose router names a transport that does not exist."""
    name = str(inst.options.get("transport") or "")
    if "$" in name:
        name = expand_string(name, ctx)
    if name and all(t.name != name for t in config.transports):
        raise _RouterDefer(f'transport "{name}" not found in {inst.name} router')
    return name


def _qualify(config: Config, ctx: ExpansionContext) -> str:
    from pyxim.expand.evaluate import Evaluation
    from pyxim.expand.variables import resolve_variable

    return resolve_variable(Evaluation(ctx), "qualify_recipient")


def format_bt(results: list[RoutedAddress], original: str, seen: set[str] | None = None) -> tuple[str, int]:
    """-bt output and exit status (0 routed, 1 deferred, 2 failed). `seen`: the addresses routed so far
    in this -bt run; Exim marks a later one "[duplicate, would not be delivered]"."""
    if seen is None:
        seen = set()
    out: list[str] = []
    status = 0
    # Exim prints an address that fails or defers as soon as routing ends for it, the routed
    # ones after all routing is done
    results = sorted((r for r in results if r.outcome in ("failed", "deferred")), key=lambda r: r.order) + [
        r for r in results if r.outcome not in ("failed", "deferred")
    ]
    for r in results:
        if r.outcome == "failed" and r.address.startswith(("|", "/")) and r.message.endswith(" forbidden"):
            # Exim lists a forbidden pipe or file with its parent and does not count it a failure here
            out.append(f"{r.parents[0]} -> {r.address} *** forbidden ***")
        elif r.address.startswith(">"):
            # a filter's mail or vacation: "parent -> mail TO", then its transport or the trouble
            if r.outcome == "failed":
                out.append(f"{r.parents[0]} -> mail {r.address[1:]} *** forbidden ***")
            elif r.outcome == "deferred":
                out.append(f"{r.parents[0]} -> mail {r.address[1:]}")
                out.append(f"*** Error in setting up pipe, file, or autoreply:\n{r.message}")
            else:
                out.append(f"{r.parents[0]} -> mail {r.address[1:]}")
                out.extend(f"    <-- {p}" for p in r.parents[1:])
                out.append(f"  transport = {r.transport}")
        elif r.outcome == "failed":
            out.append(f"{r.address} is undeliverable: {r.message}")
            out.extend(f"    <-- {p}" for p in r.parents)
            status = 2
        elif r.outcome == "deferred":
            out.append(f"{r.address} cannot be resolved at this time: {r.message}")
            out.extend(f"    <-- {p}" for p in r.parents)
            status = max(status, 1)
        elif r.outcome == "discarded":
            out.append(f"mail to {r.address} is discarded")
        elif r.address.startswith(("|", "/")):
            # a pipe or file from redirection: "parent -> |command", then the transport
            out.append(f"{r.parents[0]} -> {r.address}")
            out.extend(f"    <-- {p}" for p in r.parents[1:])
            out.append(f"  transport = {r.transport}")
        else:
            local, at, domain = r.address.rpartition("@")
            unique = f"{local}{at}{domain.lower()}"
            if r.parents and r.parents[0] == r.address:
                # an unseen router's copy is an address of its own (as in Exim)
                unique = f"\0{r.router}\0{unique}"
            out.append(r.address + ("   [duplicate, would not be delivered]" if unique in seen else ""))
            seen.add(unique)
            out.extend(f"    <-- {p}" for p in r.parents)
            out.append(f"  router = {r.router}, transport = {r.transport or 'unset'}")
            # Exim lines the hosts up: names padded to the longest, addresses too
            width = max((len(h.name) for h in r.hosts), default=0)
            awidth = max((len(h.address or "") for h in r.hosts), default=0)
            for h in r.hosts:
                line = f"  host {h.name:<{width}} [{h.address}]" + " " * (awidth - len(h.address or ""))
                if h.mx is not None:
                    line += f" MX={h.mx}"
                if h.port is not None:
                    line += f" port={h.port}"
                out.append(line)
    return "".join(line + "\n" for line in out), status

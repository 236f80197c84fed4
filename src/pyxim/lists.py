"""Exim lists: splitting, and matching domain, host, address and local-part lists.

Splitting follows Exim's string_nextinlist(): items are separated by `:`
unless the list starts with `<` and a punctuation character, which then
becomes the separator; a doubled separator stands for one literal separator
character inside an item; white space around items is dropped; a trailing
separator does not make an empty last item.
"""

from __future__ import annotations

from collections.abc import Iterator

from pyxim.expand.taint import carry


def _is_separator_char(ch: str) -> bool:
    # Exim accepts `<` followed by punctuation (or a control character such as
    # newline) as a change of separator.
    return bool(ch) and not ch.isalnum() and not ch.isspace() or ch == "\n"


def list_separator(text: str, default: str = ":") -> tuple[str, int]:
    """Return the separator in force for `text` and where the items start."""
    i = 0
    n = len(text)
    while i < n and text[i].isspace():
        i += 1
    if i + 1 < n and text[i] == "<" and _is_separator_char(text[i + 1]):
        return text[i + 1], i + 2
    return default, 0


def iterate_list(text: str, default_sep: str = ":") -> Iterator[str]:
    """Yield the items of an Exim list, keeping the taint of `text`."""
    sep, i = list_separator(text, default_sep)
    n = len(text)
    while True:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            return
        buf: list[str] = []
        while i < n:
            ch = text[i]
            if ch == sep:
                if i + 1 < n and text[i + 1] == sep:
                    buf.append(sep)
                    i += 2
                    continue
                i += 1
                break
            buf.append(ch)
            i += 1
        yield carry("".join(buf).rstrip(), text)


def split_list(text: str, default_sep: str = ":") -> tuple[str, list[str]]:
    """Return (separator, items) of an Exim list."""
    sep, _ = list_separator(text, default_sep)
    return sep, list(iterate_list(text, default_sep))


def quote_list_item(item: str, sep: str = ":") -> str:
    """Double every separator in `item` so it survives as one list item."""
    return carry(item.replace(sep, sep + sep), item)


# -- matching ---------------------------------------------------------------
#
# Exim's match_check_list(): items are tried in order; the first that matches
# decides (a negated item makes that a "no"). When nothing matches, the list
# matches only if its last item was negative ("!a : !b" means "anything but
# a or b"). Lookups inside lists (`lsearch;/file`) use the subject as key.

import ipaddress as _ipaddress  # noqa: E402
import socket as _socket  # noqa: E402
from functools import lru_cache as _lru_cache  # noqa: E402
from typing import TYPE_CHECKING as _TC  # noqa: E402

from pyxim.errors import ExpansionError as _ExpansionError  # noqa: E402

if _TC:  # pragma: no cover
    from pyxim.expand.context import ExpansionContext


class _NoHostName(Exception):
    """A host list needed the client's name and there is none (Exim's "unknown" case)."""


def match_pattern(subject: str, pattern: str, caseless: bool = True) -> bool:
    """One string pattern: `^regex`, `*suffix`, or a literal."""
    if pattern.startswith("^"):
        import re

        from pyxim.expand.regex import compile_pcre

        return compile_pcre(pattern, re.IGNORECASE if caseless else 0).search(subject) is not None
    s, p = (subject.lower(), pattern.lower()) if caseless else (subject, pattern)
    if p.startswith("*"):
        return s.endswith(p[1:])
    return s == p


def _lookup_item(ctx: ExpansionContext, item: str) -> tuple[str, str | None] | None:
    """If `item` is `type;file-or-query`, return (type spec, file or query)."""
    if ";" not in item:
        return None
    spec, _, rest = item.partition(";")
    if not spec or " " in spec or spec.startswith(("^", "*", "!", "@", "+")):
        return None
    return spec.strip(), rest.strip()


def _run_list_lookup(ctx: ExpansionContext, spec: str, arg: str, key: str) -> str | None:
    from pyxim import lookups

    ltype = lookups.lookup_type_for_spec(spec)
    if ltype.query_style:
        return lookups.lookup(ctx, spec, None, arg.replace("$key", key) if "$key" in arg else arg)
    return lookups.lookup(ctx, spec, arg, key)


@_lru_cache(maxsize=4096)
def _items(listtext: str) -> tuple[str, ...]:
    # Configuration lists are matched over and over: split each text once.
    return tuple(iterate_list(listtext))


def _check_list(
    ctx: ExpansionContext,
    listtext: str,
    kind: str,
    check_item,  # type: ignore[no-untyped-def]
) -> bool:
    last_negative = False
    for raw in _items(listtext):
        item = raw
        negative = False
        while item.startswith("!"):
            negative = not negative
            item = item[1:].lstrip()
        last_negative = negative
        if item.startswith("+"):
            matched = _named(ctx, item[1:], kind, check_item)
        else:
            from pyxim.errors import LookupDefer

            try:
                matched = check_item(item)
            except _NoHostName:
                return False  # a name item and no name for the host: the list fails
            except LookupDefer as exc:
                raise LookupDefer(f'unable to complete match against "{raw}": {exc.message}') from None
        if matched:
            return not negative
    return last_negative


def _named(ctx: ExpansionContext, name: str, kind: str, check_item) -> bool:  # type: ignore[no-untyped-def]
    config = ctx.config
    nl = config.named_lists.get(name) if config is not None else None
    if nl is None or nl.kind != kind:
        raise _ExpansionError(f'unknown named {kind} list "+{name}"')
    value = nl.value
    dynamic = "$" in value or "\\" in value
    if dynamic:
        from pyxim.expand import expand_string

        value = expand_string(value, ctx)
    # Exim caches the result of matching a named list unless its text depends
    # on variables; the _cache forms ask for caching even then.
    subject = getattr(check_item, "subject", None)
    if subject is None or (dynamic and not nl.cached):
        return _check_list(ctx, value, kind, check_item)
    key = ("namedlist", kind, name, subject)
    cached = ctx.lookup_cache.get(key)
    if cached is None:
        cached = _check_list(ctx, value, kind, check_item)
        ctx.lookup_cache[key] = cached
    return cached


def _primary_hostname(ctx: ExpansionContext) -> str:
    if ctx.config is not None and ctx.config.main.get("primary_hostname"):
        return str(ctx.config.main["primary_hostname"])
    return _socket.getfqdn()


def _local_interface_ips(ctx: ExpansionContext) -> set[str]:
    ips = {"127.0.0.1", "::1"}
    value = ctx.config.main.get("local_interfaces") if ctx.config is not None else None
    if value:
        for item in iterate_list(str(value)):
            addr = item.rsplit(".", 1)[0] if item.count(".") == 4 else item
            ips.add(addr.strip("[]"))
    return ips


def _mx_match(ctx: ExpansionContext, domain: str, which: str) -> bool:
    hosts = ctx.get_resolver().mx_hosts(domain)
    if not hosts:
        return False
    local = {_primary_hostname(ctx).lower()}
    best = min(pref for pref, _ in hosts)
    for pref, host in hosts:
        if host.lower().rstrip(".") in local:
            if which == "any":
                return True
            if which == "primary" and pref == best:
                return True
            if which == "secondary" and pref != best:
                return True
    return False


def match_domain_list(ctx: ExpansionContext, domain: str, listtext: str) -> bool:
    def check(item: str) -> bool:
        if item == "@":
            return domain.lower() == _primary_hostname(ctx).lower()
        if item == "@[]":
            return domain.startswith("[") and domain.endswith("]") and domain[1:-1] in _local_interface_ips(ctx)
        if item.startswith("@mx_"):
            return _mx_match(ctx, domain, item[4:])
        lk = _lookup_item(ctx, item)
        if lk is not None:
            value = _run_list_lookup(ctx, lk[0], lk[1], domain)
            if value is not None:
                ctx.variables["domain_data"] = value
                return True
            return False
        return match_pattern(domain, item)

    check.subject = domain  # type: ignore[attr-defined]
    return _check_list(ctx, listtext, "domain", check)


def match_localpart_list(ctx: ExpansionContext, local_part: str, listtext: str, caseless: bool = False) -> bool:
    def check(item: str) -> bool:
        lk = _lookup_item(ctx, item)
        if lk is not None:
            value = _run_list_lookup(ctx, lk[0], lk[1], local_part)
            if value is not None:
                ctx.variables["local_part_data"] = value
                return True
            return False
        return match_pattern(local_part, item, caseless=caseless)

    check.subject = local_part  # type: ignore[attr-defined]
    return _check_list(ctx, listtext, "localpart", check)


def match_address_list(ctx: ExpansionContext, address: str, listtext: str, caseless_localpart: bool = True) -> bool:
    local, _, domain = address.rpartition("@")

    def check(item: str) -> bool:
        if item.startswith("^"):
            return match_pattern(address, item)
        lk = _lookup_item(ctx, item)
        if lk is not None:
            value = _run_list_lookup(ctx, lk[0], lk[1], address)
            if value is None and domain:
                value = _run_list_lookup(ctx, lk[0], lk[1], "*@" + domain)
            return value is not None
        if "@" not in item:
            return match_domain_list(ctx, domain, quote_list_item(item)) if domain else False
        ilocal, _, idomain = item.rpartition("@")
        if ilocal == "*" or ilocal == "":
            local_ok = True
        else:
            local_ok = match_pattern(local, ilocal, caseless=caseless_localpart)
        return local_ok and match_pattern(domain, idomain)

    check.subject = address  # type: ignore[attr-defined]
    return _check_list(ctx, listtext, "address", check)


@_lru_cache(maxsize=65536)
def _network(item: str) -> _ipaddress.IPv4Network | _ipaddress.IPv6Network | None:
    try:
        return _ipaddress.ip_network(item.strip("[]"), strict=False)
    except ValueError:
        return None


@_lru_cache(maxsize=4096)
def _address(text: str) -> _ipaddress.IPv4Address | _ipaddress.IPv6Address | None:
    try:
        return _ipaddress.ip_address(text)
    except ValueError:
        return None


def _ip_item_matches(address: str, item: str) -> bool | None:
    """True/False when `item` is an IP or CIDR; None when it is something else."""
    net = _network(item)
    if net is None:
        return None
    ip = _address(address)
    if ip is None:
        return False
    if ip.version == 6 and ip.ipv4_mapped is not None and net.version == 4:  # type: ignore[union-attr]
        ip = ip.ipv4_mapped  # type: ignore[union-attr]
    return ip.version == net.version and ip in net


def _net_lookup(ctx: ExpansionContext, item: str, address: str) -> bool | None:
    """`net24-lsearch;file`: look the masked address up. None when not such an item."""
    import re

    m = re.match(r"net(\d*)-(.+?);(.*)$", item)
    if not m:
        return None
    spec, arg = m.group(2), m.group(3).strip()
    try:
        ip = _ipaddress.ip_address(address)
    except ValueError:
        return False
    bits = int(m.group(1)) if m.group(1) else ip.max_prefixlen
    net = _ipaddress.ip_network(f"{address}/{bits}", strict=False)
    key = str(net.network_address) if not m.group(1) else f"{net.network_address}/{bits}"
    if ip.version == 6:
        key = key.replace(":", "::") if False else key
    return _run_list_lookup(ctx, spec, arg, key) is not None


def match_ip_list(ctx: ExpansionContext, address: str, listtext: str) -> bool:
    def check(item: str) -> bool:
        if item == "*":
            return True
        direct = _ip_item_matches(address, item)
        if direct is not None:
            return direct
        if item == "@[]":
            return address in _local_interface_ips(ctx)
        net = _net_lookup(ctx, item, address)
        if net is not None:
            return net
        lk = _lookup_item(ctx, item)
        if lk is not None:
            return _run_list_lookup(ctx, lk[0], lk[1], address) is not None
        raise _NoHostName  # match_ip has no host names: such an item ends the match

    check.subject = address  # type: ignore[attr-defined]
    return _check_list(ctx, listtext, "host", check)


def match_host_list(ctx: ExpansionContext, host_address: str, listtext: str, host_name: str | None = None) -> bool:
    names: list[str] | None = [host_name] if host_name else None

    def host_names() -> list[str]:
        nonlocal names
        if names is None:
            names = []
            resolver = ctx.get_resolver()
            for name in resolver.host_names_for_ip(host_address):
                # forward-confirm, as Exim does before trusting a reverse name
                if host_address in resolver.addresses_for_name(name):
                    names.append(name.rstrip("."))
        if not names:
            raise _NoHostName
        return names

    def check(item: str) -> bool:
        if item == "*":
            return True
        if item == "":
            return host_address == ""  # an empty item matches a local (non-IP) caller
        direct = _ip_item_matches(host_address, item)
        if direct is not None:
            return direct
        if item == "@[]":
            return host_address in _local_interface_ips(ctx)
        if item == "@":
            return any(n.lower() == _primary_hostname(ctx).lower() for n in host_names())
        net = _net_lookup(ctx, item, host_address)
        if net is not None:
            return net
        lk = _lookup_item(ctx, item)
        if lk is not None:
            return any(_run_list_lookup(ctx, lk[0], lk[1], n) is not None for n in host_names())
        if item.startswith("^") or item.startswith("*") or "." in item:
            if not item.startswith(("^", "*")):
                # a plain name: compare its addresses with the client's
                try:
                    return host_address in ctx.get_resolver().addresses_for_name(item)
                except Exception:  # noqa: BLE001 — a lookup failure is "no match" here
                    return False
            return any(match_pattern(n, item) for n in host_names())
        return False

    check.subject = host_address  # type: ignore[attr-defined]
    return _check_list(ctx, listtext, "host", check)

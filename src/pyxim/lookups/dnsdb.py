"""dnsdb: DNS records as a query-style lookup.

    ${lookup dnsdb{mx=example.org}}            "10 mx1.example.org\\n20 mx2…"
    ${lookup dnsdb{>, defer_never,a=h1:h2}}    several names, "," between results
    ${lookup dnsdb{>\\n,; txt=example.org}}     ";" between the strings of one TXT record

Answers come from the DNS facade (ctx.get_resolver()). Results are tainted:
they come from the outside.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

import dns.reversename

from pyxim.errors import ExpansionError, LookupDefer
from pyxim.expand.taint import Tainted
from pyxim.lists import iterate_list
from pyxim.lookups import register_lookup

if TYPE_CHECKING:  # pragma: no cover
    from pyxim.expand.context import ExpansionContext

TYPES = ("a", "aaaa", "cname", "csa", "mx", "mxh", "ns", "ptr", "soa", "spf", "srv", "tlsa", "txt", "zns")


def _name(rdata) -> str:  # type: ignore[no-untyped-def]
    return rdata.to_text().rstrip(".")


def _format(rtype: str, rdata, txt_sep: str | None) -> str:  # type: ignore[no-untyped-def]
    if rtype in ("a", "aaaa"):
        return rdata.address
    if rtype in ("cname", "ns", "zns", "ptr"):
        return rdata.target.to_text().rstrip(".")
    if rtype == "mx":
        return f"{rdata.preference} {rdata.exchange.to_text().rstrip('.')}"
    if rtype == "mxh":
        return rdata.exchange.to_text().rstrip(".")
    if rtype == "srv":
        return f"{rdata.priority} {rdata.weight} {rdata.port} {rdata.target.to_text().rstrip('.')}"
    if rtype == "soa":
        return (
            f"{rdata.mname.to_text().rstrip('.')} {rdata.rname.to_text().rstrip('.')} "
            f"{rdata.serial} {rdata.refresh} {rdata.retry} {rdata.expire} {rdata.minimum}"
        )
    if rtype == "tlsa":
        return f"{rdata.usage} {rdata.selector} {rdata.mtype} {rdata.cert.hex()}"
    if rtype in ("txt", "spf"):
        parts = [s.decode("utf-8", "surrogateescape") for s in rdata.strings]
        return (txt_sep or "").join(parts)
    return _name(rdata)


class DnsdbLookup:
    name = "dnsdb"
    query_style = True

    def find(self, ctx: ExpansionContext, filename: str | None, key: str, options: dict[str, str]) -> str | None:
        text = key.lstrip()
        outsep = "\n"
        txt_sep: str | None = None
        if text.startswith(">"):
            outsep = text[1:2]
            text = text[2:]
            if text[:1] == ",":
                txt_sep = text[1:2]
                text = text[2:]
            text = text.lstrip()
        defer_mode = "lax"
        dnssec_mode = "lax"
        while True:
            head, comma, rest = text.partition(",")
            word = head.strip().lower()
            if comma and word.startswith("defer_") and word[6:] in ("strict", "lax", "never"):
                defer_mode = word[6:]
            elif comma and word.startswith("dnssec_") and word[7:] in ("strict", "lax", "never"):
                dnssec_mode = word[7:]
            elif comma and (word.startswith("retrans_") or word.startswith("retry_")):
                pass  # per-query timing: the facade's settings are used
            else:
                break
            text = rest.lstrip()
        rtype = "txt"
        if "=" in text:
            tname, _, text = text.partition("=")
            rtype = tname.strip().lower()
            if rtype not in TYPES:
                raise ExpansionError(f'unsupported DNS record type "{tname.strip()}"')
        resolver = ctx.get_resolver()
        results: list[str] = []
        deferred = False
        authenticated = True
        for domain in iterate_list(text):
            domain = domain.strip()
            if not domain:
                continue
            qname = domain
            qtype = {"mxh": "MX", "zns": "NS", "csa": "SRV"}.get(rtype, rtype.upper())
            if rtype == "ptr":
                try:
                    ipaddress.ip_address(domain)
                    qname = dns.reversename.from_address(domain).to_text()
                except ValueError:
                    pass
            try:
                answer = resolver.query(qname, qtype)
                if rtype == "zns":
                    while not answer.records and "." in qname.rstrip("."):
                        qname = qname.split(".", 1)[1]
                        answer = resolver.query(qname, "NS")
            except LookupDefer:
                if defer_mode == "strict":
                    raise
                deferred = True
                continue
            if dnssec_mode == "strict" and not answer.authenticated:
                continue
            authenticated = authenticated and answer.authenticated
            results.extend(_format(rtype, r, txt_sep) for r in answer.records)
        ctx.variables["lookup_dnssec_authenticated"] = (
            "" if dnssec_mode == "never" else ("yes" if results and authenticated else "no")
        )
        if not results:
            if deferred and defer_mode != "never":
                raise LookupDefer("dnsdb: temporary DNS error")
            return None
        return Tainted(outsep.join(results))


register_lookup(DnsdbLookup())

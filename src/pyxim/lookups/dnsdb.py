"""dnsdb: the DNS as a query-style lookup, as Exim 4.96 has it.

    ${lookup dnsdb{mx=example.org}}                 "10 mx1.example.org\\n20 mx2.example.org"
    ${lookup dnsdb{>: defer_never,a=h1:h2}}         several names, ":" between the results
    ${lookup dnsdb{>\\n,; txt=example.org}}          ";" between the strings of one TXT record
    ${lookup dnsdb{>:,; soa=example.org}}           every SOA field, ";" between them

The query is: an optional `>` with the output separator (and `,x` for the field
separator, or `;` for "join TXT strings with nothing"), then modifiers each ended
by a comma (defer_strict|lax|never, dnssec_strict|lax|never, retrans_<time>,
retry_<n>), then an optional `type=`, then an Exim list of names (`:` unless
changed with `<`). Types: a, a+ (AAAA then A), aaaa, cname, csa, mx, mxh, ns,
ptr (an IP address is reversed), soa, spf, srv, tlsa, txt (the default), zns.

Not found is None; a DNS failure defers only if nothing was found (defer_lax),
always (defer_strict) or never. With dnssec_strict an answer without the AD bit
counts as a failure. $lookup_dnssec_authenticated tells about the last DNS
answer: "yes", "no", or empty under dnssec_never. Exim's errors are "defer" with
its own message; the expander wraps them as `lookup of "…" gave DEFER: …`.
Results come from outside, so they are tainted.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pyxim.dns import DnsAnswer, name_text, reverse_name
from pyxim.errors import LookupDefer
from pyxim.expand.taint import Tainted
from pyxim.lists import iterate_list
from pyxim.lookups import register_lookup

if TYPE_CHECKING:  # pragma: no cover
    from pyxim.dns import Resolver
    from pyxim.expand.context import ExpansionContext

# type name -> the DNS type actually asked for (the pseudo types ride on real ones)
TYPES: dict[str, str] = {
    "a": "A",
    "a+": "AAAA",
    "aaaa": "AAAA",
    "cname": "CNAME",
    "csa": "SRV",
    "mx": "MX",
    "mxh": "MX",
    "ns": "NS",
    "ptr": "PTR",
    "soa": "SOA",
    "spf": "SPF",
    "srv": "SRV",
    "tlsa": "TLSA",
    "txt": "TXT",
    "zns": "NS",
}
_SPECIAL = {"zns", "soa", "csa"}  # walks up the tree: the facade's query_special()
_MODES = ("strict", "lax", "never")


@dataclass(slots=True)
class DnsdbQuery:
    """A dnsdb query taken apart."""

    outsep: str = "\n"
    outsep2: str | None = None  # field separator; None: TXT gives its first string only
    defer: str = "lax"
    dnssec: str = "lax"
    retrans: int | None = None
    retry: int | None = None
    rtype: str = "txt"
    names: tuple[str, ...] = ()


def _skip_space(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t\n\r\f\v":
        i += 1
    return i


def _mode(text: str, i: int, what: str) -> tuple[str, int]:
    for mode in _MODES:
        if text[i : i + len(mode)].lower() == mode:
            return mode, i + len(mode)
    raise LookupDefer(f"unsupported dnsdb {what} behaviour")


def _read_time(text: str, i: int) -> tuple[int, int]:
    """Exim's readconf_readtime() up to a comma: every number needs a unit. (-1, i) if malformed."""
    units = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
    total = 0
    while True:
        m = re.match(r"\d+", text[i:])
        if not m:
            return -1, i
        i += m.end()
        unit = text[i : i + 1]
        if unit not in units:
            return -1, i
        total += int(m.group()) * units[unit]
        i += 1
        if i >= len(text) or text[i] == ",":
            return total, i


def _read_int(text: str, i: int) -> tuple[int, int]:
    """C's strtol(…, 0): optional space and sign, then decimal, 0x hex or 0 octal. (0, i) if none."""
    m = re.match(r"[ \t\n\r\f\v]*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)", text[i:])
    if not m:
        return 0, i
    digits = m.group(2)
    value = (
        int(digits, 16)
        if digits[:2].lower() == "0x"
        else int(digits, 8)
        if digits.startswith("0")
        else int(digits)
    )
    return (-value if m.group(1) == "-" else value), i + m.end()


def parse_query(key: str) -> DnsdbQuery:
    """Take a dnsdb query apart; errors are LookupDefer with Exim's message."""
    q = DnsdbQuery()
    i = _skip_space(key, 0)
    if key[i : i + 1] == ">":
        q.outsep = key[i + 1 : i + 2] or "\0"
        i += 2
        if key[i : i + 1] == ",":
            q.outsep2 = key[i + 1 : i + 2] or "\0"
            i += 2
        elif key[i : i + 1] == ";":
            q.outsep2 = ""
            i += 1
        i = _skip_space(key, i)

    while True:
        low = key[i : i + 8].lower()
        if low.startswith("defer_"):
            q.defer, i = _mode(key, i + 6, "defer")
        elif low.startswith("dnssec_"):
            q.dnssec, i = _mode(key, i + 7, "dnssec")
        elif low.startswith("retrans_"):
            seconds, i = _read_time(key, i + 8)
            if seconds <= 0:
                raise LookupDefer("unsupported dnsdb timeout value")
            q.retrans = seconds
            while i < len(key) and key[i] != ",":
                i += 1
        elif low.startswith("retry_"):
            count, i = _read_int(key, i + 6)
            if count < 0:
                raise LookupDefer("unsupported dnsdb retry count")
            q.retry = count
        else:
            break
        i = _skip_space(key, i)
        if key[i : i + 1] != ",":
            raise LookupDefer("dnsdb modifier syntax error")
        i = _skip_space(key, i + 1)

    rest = key[i:]
    equals = rest.find("=")
    if equals >= 0:
        tname = rest[:equals].rstrip(" \t\n\r\f\v").lower()
        if tname not in TYPES:
            raise LookupDefer("unsupported DNS record type")
        q.rtype = tname
        rest = rest[_skip_space(rest, equals + 1) :]

    # One IPv6 address for ptr, without a list separator change, is one name, not a
    # colon-separated list (compatibility with the days before dnsdb took lists).
    if q.rtype == "ptr" and not rest.startswith("<") and _is_ip(rest):
        q.names = (rest,)
    else:
        q.names = tuple(iterate_list(rest))

    if q.outsep2 is None:
        q.outsep2 = {"spf": "", "srv": " ", "mx": " ", "tlsa": " "}.get(q.rtype)
    return q


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _fsep(outsep2: str | None) -> str:
    # Exim writes the field separator with "%c": the empty one (from ';') is a NUL, which
    # ends the C string there. Callers cut at "\0" to get the same text.
    return outsep2 if outsep2 else "\0"


def _cut(text: str) -> str:
    return text.split("\0", 1)[0]


def _txt(rdata: Any, outsep2: str | None) -> str:
    strings = [s.decode("utf-8", "surrogateescape") for s in rdata.strings]
    if outsep2 is None:
        return strings[0] if strings else ""
    return outsep2.join(strings)


def _csa(rdata: Any, found: str, domain: str) -> str | None:
    """The CSA verdict for one SRV record: "Y host", "N host", "? host", "X host", or None to skip."""
    if rdata.priority != 1:  # the CSA version
        return None
    if found != domain:  # a parent's subdomain assertion
        code = "X" if rdata.port & 1 else "?"
    elif rdata.weight < 2:
        code = "N"
    elif rdata.weight == 2:
        code = "Y"
    elif rdata.weight == 3:
        code = "?"
    else:
        return None
    return f"{code} {name_text(rdata.target)}"


def format_record(
    rtype: str, rdata: Any, outsep2: str | None, found: str = "", domain: str = ""
) -> str | None:
    """One record as dnsdb writes it; None when Exim skips it."""
    if rtype in ("txt", "spf"):
        return _txt(rdata, outsep2)
    if rtype in ("cname", "ns", "zns", "ptr"):
        return name_text(rdata.target)
    if rtype == "mxh":
        return name_text(rdata.exchange)
    if rtype == "mx":
        return _cut(f"{rdata.preference}{_fsep(outsep2)}") + name_text(rdata.exchange)
    if rtype == "srv":
        s = _fsep(outsep2)
        return _cut(f"{rdata.priority}{s}{rdata.weight}{s}{rdata.port}{s}") + name_text(rdata.target)
    if rtype == "tlsa":
        s = _fsep(outsep2)
        return _cut(f"{rdata.usage}{s}{rdata.selector}{s}{rdata.mtype}{s}{rdata.cert.hex()}")
    if rtype == "soa":
        text = name_text(rdata.mname)
        if outsep2 is not None:
            s = _fsep(outsep2)
            # the separator after mname goes in whole (even a NUL); the numbers' part is cut at one
            text += s + name_text(rdata.rname)
            text += _cut(
                f"{s}{rdata.serial}{s}{rdata.refresh}{s}{rdata.retry}{s}{rdata.expire}{s}{rdata.minimum}"
            )
        return text
    if rtype == "csa":
        return _csa(rdata, found, domain)
    return None


class DnsdbLookup:
    name = "dnsdb"
    query_style = True

    def find(
        self, ctx: ExpansionContext, filename: str | None, key: str, options: dict[str, str]
    ) -> str | None:
        q = parse_query(key)
        resolver = ctx.get_resolver()
        want_dnssec = q.dnssec != "never"
        out = ""
        deferred = False
        for domain in q.names:
            if q.rtype in ("ptr", "csa") and _is_ip(domain):
                domain = reverse_name(domain)
            for qtype in ("AAAA", "A") if q.rtype == "a+" else (TYPES[q.rtype],):
                try:
                    answer = self._ask(resolver, domain, q, qtype, want_dnssec)
                except LookupDefer:
                    self._note_dnssec(ctx, q, None)
                    if q.defer == "strict":
                        raise LookupDefer("") from None
                    deferred = deferred or q.defer == "lax"
                    continue
                self._note_dnssec(ctx, q, answer)
                if not answer.records:
                    continue
                if q.dnssec == "strict" and not answer.authenticated:
                    if q.defer == "strict":
                        raise LookupDefer("")
                    deferred = deferred or q.defer == "lax"
                    continue
                for rdata in answer.records:
                    if q.rtype in ("a", "aaaa", "a+"):
                        piece: str | None = rdata.address
                    else:
                        piece = format_record(
                            q.rtype, rdata, q.outsep2, answer.found_name, domain.rstrip(".")
                        )
                    # Exim puts the separator before a piece only once the result is not empty,
                    # and before it knows whether a CSA record is skipped.
                    if out:
                        out += q.outsep
                    if piece is not None:
                        out += piece
        if not out:
            if deferred:
                raise LookupDefer("")
            return None
        return Tainted(out)

    @staticmethod
    def _ask(resolver: Resolver, domain: str, q: DnsdbQuery, qtype: str, dnssec: bool) -> DnsAnswer:
        if q.rtype in _SPECIAL:
            return resolver.query_special(domain, q.rtype, dnssec=dnssec, retrans=q.retrans, retry=q.retry)
        if not domain:
            return DnsAnswer(domain, qtype, [], False, "NXDOMAIN")
        return resolver.query(domain, qtype, dnssec=dnssec, retrans=q.retrans, retry=q.retry)

    @staticmethod
    def _note_dnssec(ctx: ExpansionContext, q: DnsdbQuery, answer: DnsAnswer | None) -> None:
        if q.dnssec == "never":
            value = ""
        else:
            value = "yes" if answer is not None and answer.authenticated else "no"
        ctx.variables["lookup_dnssec_authenticated"] = value


register_lookup(DnsdbLookup())

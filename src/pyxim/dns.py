"""The one door to the DNS.

A Resolver wraps dnspython twice — an asyncio resolver for the daemon and a
synchronous one for the expander, which is synchronous — over one
configuration and one cache. Every method has an async twin with the same name
prefixed `a`: query/aquery, query_special/aquery_special,
host_names_for_ip/ahost_names_for_ip, addresses_for_name/aaddresses_for_name,
mx_hosts/amx_hosts. The logic is written once, as generators that yield the
queries they need; a sync and an async driver answer them.

Servers come from /etc/resolv.conf, or from the main option `dns_nameservers`,
written like local_interfaces (address, optional `.port`):

    dns_nameservers = 127.0.0.1.5353 : 127.0.0.2
    dns_nameservers = <; ::1.5353 ; 127.0.0.1

What a query gives follows Exim's dns_lookup(): NXDOMAIN and "no data" are
answers (DnsAnswer with no records), a timeout, SERVFAIL or unusable reply
raises LookupDefer. Names that fail dns_check_names_pattern (all types but PTR
and TXT) and A/AAAA lookups of IP addresses are "no such name" without asking
anybody. One CNAME without data is followed by asking again (dns_cname_loops).
Every answer carries the DNSSEC AD bit (`authenticated`); `dnssec=True` asks
for it (AD flag, EDNS DO), which DANE and the dnssec_* options need. An
authoritative answer counts as authenticated for zones in dns_trust_aa.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any

import dns.asyncresolver
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.nameserver
import dns.rcode
import dns.rdatatype
import dns.resolver
import dns.reversename

from pyxim.errors import ConfigError, LookupDefer

# Exim's default dns_check_names_pattern: letters, digits, '_', '-', '/'; no empty labels.
DEFAULT_CHECK_NAMES_PATTERN = r"(?i)^(?>(?(1)\.|())[^\W](?>[a-z0-9/_-]*[^\W])?)+(\.?)$"

# glibc's resolver defaults, which Exim keeps when dns_retrans / dns_retry are 0.
DEFAULT_RETRANS = 5.0
DEFAULT_RETRY = 2

RESOLV_CONF = "/etc/resolv.conf"


@dataclass(slots=True)
class DnsAnswer:
    name: str  # the name asked for
    rdtype: str
    records: list[Any] = field(default_factory=list)  # dnspython rdata of `rdtype`, in wire order
    authenticated: bool = False  # AD bit (or AA for a dns_trust_aa zone), across any CNAME chain
    rcode: str = "NOERROR"  # NOERROR (with or without records) or NXDOMAIN
    cname_target: str | None = None  # where a CNAME chain led, when it did
    found_name: str = ""  # for query_special(): the name the records belong to
    ttl: int = 0

    @property
    def found(self) -> bool:
        return bool(self.records)

    @property
    def nodata(self) -> bool:
        return self.rcode == "NOERROR" and not self.records


def parse_nameservers(value: str) -> list[tuple[str, int]]:
    """`127.0.0.1.5353 : 127.0.0.2` → [("127.0.0.1", 5353), ("127.0.0.2", 53)]."""
    import pyxim.expand  # noqa: F401 — first: pyxim.lists imported on its own runs into an import cycle
    from pyxim.lists import iterate_list

    servers: list[tuple[str, int]] = []
    for item in iterate_list(value):
        if not item:
            continue
        # the two forms local_interfaces takes: 192.0.2.1.53 and [192.0.2.1]:53
        if item.startswith("[") and "]" in item:
            address, _, rest = item[1:].partition("]")
            sep, tail = rest[:1], rest[1:]
            if rest and sep != ":":
                raise ConfigError(f'"{item}" in dns_nameservers is not an IP address (with optional .port)')
        elif _is_ip(item):
            address, tail = item, ""
        else:
            address, _, tail = item.rpartition(".")
        if not _is_ip(address):
            raise ConfigError(f'"{item}" in dns_nameservers is not an IP address (with optional .port)')
        if tail and (not tail.isdigit() or not 0 < int(tail) < 65536):
            raise ConfigError(f'bad port in dns_nameservers item "{item}"')
        servers.append((address, int(tail) if tail else 53))
    if not servers:
        raise ConfigError("dns_nameservers is set but lists no servers")
    return servers


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def reverse_name(ip: str) -> str:
    """192.0.2.1 → 1.2.0.192.in-addr.arpa; IPv6 in nibbles under ip6.arpa (no final dot)."""
    return dns.reversename.from_address(ip).to_text(omit_final_dot=True)


def name_text(name: dns.name.Name) -> str:
    """A domain name as Exim prints it (dn_expand): no final dot, the root as ""."""
    if name == dns.name.root:
        return ""
    return name.to_text(omit_final_dot=True)


# A step of the shared logic: (name, rdtype, dnssec, retrans, retry) to ask the server.
_Ask = tuple[dns.name.Name, str, bool, float, int]
_Steps = Generator[_Ask, DnsAnswer, Any]


class Resolver:
    def __init__(
        self,
        nameservers: list[tuple[str, int]] | None = None,
        *,
        retrans: float = 0,
        retry: int = 0,
        dnssec_ok: int = -1,
        use_edns0: int = -1,
        trust_aa: str | None = None,
        again_means_nonexist: str | None = None,
        check_names_pattern: str | None = DEFAULT_CHECK_NAMES_PATTERN,
        cname_loops: int = 1,
        csa_search_limit: int = 5,
        cache_size: int = 10000,
    ) -> None:
        """`retrans`/`retry` are Exim's dns_retrans (seconds per try) and dns_retry (tries per
        server); 0 keeps the resolver defaults. `dnssec_ok` and `use_edns0` are the tri-state
        main options (-1: as the query asks, 0: never, 1: always)."""
        self.nameservers = nameservers
        self.retrans = float(retrans) if retrans and retrans > 0 else DEFAULT_RETRANS
        self.retry = int(retry) if retry and retry > 0 else DEFAULT_RETRY
        self.dnssec_ok = dnssec_ok
        self.use_edns0 = use_edns0
        self.trust_aa = trust_aa or None
        self.again_means_nonexist = again_means_nonexist or None
        self.cname_loops = max(0, cname_loops)
        self.csa_search_limit = csa_search_limit
        self._check_names = None
        if check_names_pattern:
            from pyxim.expand.regex import compile_pcre

            self._check_names = compile_pcre(check_names_pattern)
        # One cache per kind of question: answers asked with DO may differ from the others.
        self._caches = {False: dns.resolver.LRUCache(cache_size), True: dns.resolver.LRUCache(cache_size)}
        self._system_servers = self._read_system_servers() if nameservers is None else None
        self._resolvers: dict[tuple[bool, bool, float, int], Any] = {}
        self.search_domains: list[str] | None = None  # None: read from resolv.conf when first wanted

    # -- building ---------------------------------------------------------------

    @classmethod
    def from_option(cls, value: object, **kwargs: Any) -> Resolver:
        """Build from the dns_nameservers option text (None/empty: /etc/resolv.conf)."""
        if value in (None, ""):
            return cls(**kwargs)
        return cls(parse_nameservers(str(value)), **kwargs)

    @classmethod
    def from_config(cls, main: Mapping[str, Any]) -> Resolver:
        """Build from the main options: dns_nameservers, dns_retrans, dns_retry, dns_dnssec_ok,
        dns_use_edns0, dns_trust_aa, dns_again_means_nonexist, dns_check_names_pattern,
        dns_cname_loops, dns_csa_search_limit."""

        def num(option: str, default: int) -> int:
            value = main.get(option)
            return default if value in (None, "") else int(value)

        pattern = main.get("dns_check_names_pattern")
        return cls.from_option(
            main.get("dns_nameservers"),
            retrans=num("dns_retrans", 0),
            retry=num("dns_retry", 0),
            dnssec_ok=num("dns_dnssec_ok", -1),
            use_edns0=num("dns_use_edns0", -1),
            trust_aa=main.get("dns_trust_aa") or None,
            again_means_nonexist=main.get("dns_again_means_nonexist") or None,
            check_names_pattern=DEFAULT_CHECK_NAMES_PATTERN if pattern is None else str(pattern),
            cname_loops=num("dns_cname_loops", 1),
            csa_search_limit=num("dns_csa_search_limit", 5),
        )

    def search_list(self) -> list[str]:
        """The resolver's search list, as the C library reads /etc/resolv.conf: the last
        "search" or "domain" line wins ("domain" gives a list of one). The dnslookup router
        uses it for qualify_single and search_parents; `search_domains` set on the
        instance (tests, embedding) takes its place."""
        if self.search_domains is not None:
            return list(self.search_domains)
        found: list[str] = []
        try:
            with open(RESOLV_CONF, encoding="utf-8", errors="replace") as f:
                for line in f:
                    words = line.split()
                    if len(words) > 1 and words[0] in ("search", "domain"):
                        found = [w.strip(".") for w in (words[1:] if words[0] == "search" else words[1:2])]
        except OSError:
            pass
        self.search_domains = found
        return list(found)

    @staticmethod
    def _read_system_servers() -> list[str]:
        try:
            return list(dns.resolver.Resolver(configure=True).nameservers)  # type: ignore[arg-type]
        except dns.exception.DNSException:
            return ["127.0.0.1"]  # no resolv.conf: the C library's default

    def _backend(self, is_async: bool, dnssec: bool, retrans: float, retry: int) -> Any:
        """The dnspython resolver for this kind of question, made once and kept."""
        key = (is_async, dnssec, retrans, retry)
        res = self._resolvers.get(key)
        if res is not None:
            return res
        res = (
            dns.asyncresolver.Resolver(configure=False)
            if is_async
            else dns.resolver.Resolver(configure=False)
        )
        if self.nameservers is not None:
            res.nameservers = [dns.nameserver.Do53Nameserver(addr, port) for addr, port in self.nameservers]
        else:
            res.nameservers = list(self._system_servers or ["127.0.0.1"])
        servers = max(1, len(res.nameservers))
        res.timeout = retrans
        res.lifetime = retrans * retry * servers
        res.retry_servfail = False
        res.cache = self._caches[dnssec]
        want_do = self.dnssec_ok == 1 or (dnssec and self.dnssec_ok != 0)
        if self.use_edns0 == 0:
            res.use_edns(False)
        else:
            res.use_edns(0, dns.flags.DO if want_do else 0, 1232)
        res.flags = dns.flags.RD | (dns.flags.AD if want_do else 0)
        self._resolvers[key] = res
        return res

    # -- the one network step, sync and async ---------------------------------

    def _ask(self, step: _Ask) -> DnsAnswer:
        qname, rdtype, dnssec, retrans, retry = step
        try:
            result = self._backend(False, dnssec, retrans, retry).resolve(
                qname, rdtype, search=False, raise_on_no_answer=False
            )
        except Exception as exc:  # noqa: BLE001 — every failure becomes an answer or LookupDefer
            return self._failure(qname, rdtype, exc)
        return self._answer(qname, rdtype, result)

    async def _aask(self, step: _Ask) -> DnsAnswer:
        qname, rdtype, dnssec, retrans, retry = step
        try:
            result = await self._backend(True, dnssec, retrans, retry).resolve(
                qname, rdtype, search=False, raise_on_no_answer=False
            )
        except Exception as exc:  # noqa: BLE001
            return self._failure(qname, rdtype, exc)
        return self._answer(qname, rdtype, result)

    def _answer(self, qname: dns.name.Name, rdtype: str, result: Any) -> DnsAnswer:
        response = result.response
        records = list(result.rrset) if result.rrset is not None else []
        canonical = result.canonical_name
        return DnsAnswer(
            name=name_text(qname),
            rdtype=rdtype,
            records=records,
            authenticated=self._secure(response),
            rcode="NOERROR",
            cname_target=name_text(canonical) if canonical != qname else None,
            found_name=name_text(canonical),
            ttl=result.rrset.ttl if result.rrset is not None else 0,
        )

    def _failure(self, qname: dns.name.Name, rdtype: str, exc: Exception) -> DnsAnswer:
        text = name_text(qname)
        if isinstance(exc, dns.resolver.NXDOMAIN | dns.resolver.YXDOMAIN):
            response = None
            if isinstance(exc, dns.resolver.NXDOMAIN):
                try:
                    response = exc.response(qname)
                except (KeyError, IndexError, AttributeError):
                    response = None
            return DnsAnswer(text, rdtype, [], self._secure(response), "NXDOMAIN", found_name=text)
        if self._again_is_nonexistent(text):
            return DnsAnswer(text, rdtype, [], False, "NXDOMAIN", found_name=text)
        if isinstance(exc, dns.exception.Timeout):
            raise LookupDefer(f"DNS lookup of {text} ({rdtype}) timed out") from None
        if isinstance(exc, dns.resolver.NoNameservers):
            raise LookupDefer(f"DNS lookup of {text} ({rdtype}) gave a server failure") from None
        raise LookupDefer(f"DNS lookup of {text} ({rdtype}) failed: {type(exc).__name__}") from None

    def _secure(self, response: dns.message.Message | None) -> bool:
        if response is None:
            return False
        if response.flags & dns.flags.AD:
            return True
        if not self.trust_aa or not response.flags & dns.flags.AA:
            return False
        # Exim's dns_trust_aa: the zone is named by the authority section (NS with data, SOA without).
        want = dns.rdatatype.NS if response.answer else dns.rdatatype.SOA
        for rrset in response.authority:
            if rrset.rdtype == want:
                return self._in_domain_list(name_text(rrset.name), self.trust_aa)
        return False

    def _again_is_nonexistent(self, name: str) -> bool:
        return bool(self.again_means_nonexist) and self._in_domain_list(name, self.again_means_nonexist or "")

    @staticmethod
    def _in_domain_list(domain: str, listtext: str) -> bool:
        from pyxim.expand.context import ExpansionContext
        from pyxim.lists import match_domain_list

        try:
            return match_domain_list(ExpansionContext(), domain, listtext)
        except Exception:  # noqa: BLE001 — a broken list matches nothing
            return False

    # -- drivers ------------------------------------------------------------------

    def _run(self, steps: _Steps) -> Any:
        return _drive(steps, self._ask)

    async def _arun(self, steps: _Steps) -> Any:
        reply: DnsAnswer | None = None
        error: LookupDefer | None = None
        while True:
            try:
                step = steps.throw(error) if error is not None else steps.send(reply)  # type: ignore[arg-type]
            except StopIteration as stop:
                return stop.value
            try:
                reply, error = await self._aask(step), None
            except LookupDefer as exc:
                reply, error = None, exc

    # -- Exim's dns_lookup ------------------------------------------------------

    def _lookup(
        self, name: str, rdtype: str, dnssec: bool, retrans: float | None, retry: int | None
    ) -> _Steps:
        rdtype = rdtype.upper()
        timing = (
            float(retrans) if retrans and retrans > 0 else self.retrans,
            int(retry) if retry and retry > 0 else self.retry,
        )
        text = name.rstrip(".") if name not in (".", "") else name
        if rdtype in ("A", "AAAA") and _is_ip(text):
            return DnsAnswer(text, rdtype, [], False, "NXDOMAIN", found_name=text)
        try:
            qname = dns.name.from_text(name) if name else dns.name.root
        except (dns.exception.DNSException, UnicodeError, ValueError):
            if rdtype in ("PTR", "TXT"):
                # Exim cannot even form such a query: the resolver fails it (a defer).
                raise LookupDefer(f'DNS lookup of "{name}" ({rdtype}) failed: bad domain name') from None
            return DnsAnswer(text, rdtype, [], False, "NXDOMAIN", found_name=text)
        if not self._name_ok(qname, rdtype):
            return DnsAnswer(text, rdtype, [], False, "NXDOMAIN", found_name=text)
        secure = True
        first: DnsAnswer | None = None
        current = qname
        for _ in range(self.cname_loops + 1):
            answer = yield (current, rdtype, dnssec, *timing)
            if first is None:
                first = answer
            secure = secure and answer.authenticated
            if answer.records or answer.rcode != "NOERROR" or answer.cname_target is None:
                if answer.records and current != qname:
                    answer.name = first.name
                    answer.cname_target = answer.found_name
                answer.authenticated = secure
                return answer
            # only a CNAME came back: ask again for where it points
            current = dns.name.from_text(answer.cname_target)
        raise LookupDefer(f"CNAME loop for {text}")

    def _name_ok(self, qname: dns.name.Name, rdtype: str) -> bool:
        if self._check_names is None or rdtype in ("PTR", "TXT"):
            return True
        labels = qname.labels
        if rdtype in ("SRV", "TLSA"):
            # _service._proto. come first and are not checked; Exim checks nothing
            # (it reads past the name) when there is no third label.
            if len(labels) < 4:
                return True
            labels = labels[2:]
        try:
            text = dns.name.Name(labels).to_text(omit_final_dot=True) if labels else ""
        except dns.exception.DNSException:
            return False
        return self._check_names.search(text) is not None

    # -- the special lookups (Exim's dns_special_lookup) -------------------------

    def _special(
        self, name: str, kind: str, dnssec: bool, retrans: float | None, retry: int | None
    ) -> _Steps:
        kind = kind.lower()
        if kind in ("zns", "soa"):
            # This name's records, or its parents', stopping short of the root.
            rdtype = "NS" if kind == "zns" else "SOA"
            labels = name.rstrip(".").split(".")
            for i in range(len(labels)):
                here = ".".join(labels[i:])
                answer = yield from self._lookup(here, rdtype, dnssec, retrans, retry)
                if answer.records:
                    answer.found_name = here
                    return answer
            return DnsAnswer(name, rdtype, [], False, "NXDOMAIN", found_name=name)
        if kind == "csa":
            return (yield from self._csa(name, dnssec, retrans, retry))
        if kind == "mxh":
            return (yield from self._lookup(name, "MX", dnssec, retrans, retry))
        return (yield from self._lookup(name, kind.upper(), dnssec, retrans, retry))

    def _csa(self, name: str, dnssec: bool, retrans: float | None, retry: int | None) -> _Steps:
        """Client SMTP Authorization: the host's own SRV record, else a parent's subdomain assertion."""
        name = name.rstrip(".")
        answer = yield from self._lookup(f"_client._smtp.{name}", "SRV", dnssec, retrans, retry)
        if answer.records:
            answer.found_name = name
            return answer
        # Exim 4.96 gives up at once when the host's own record does not exist at all;
        # only "exists, no SRV" goes on to search the parents, from the top down.
        if answer.rcode == "NXDOMAIN":
            return answer
        labels = name.split(".")
        limit, step, top = self.csa_search_limit, 1, 1  # `top` labels are the TLD, never searched
        lower = name.lower()
        if lower.endswith(".in-addr.arpa"):
            limit, top = 3, 2
        elif lower.endswith(".ip6.arpa"):
            limit, step, top = 3, 4, 2
        for i in range(limit):
            keep = top + step * (i + 1)
            if keep >= len(labels):
                break
            parent = ".".join(labels[-keep:])
            found = yield from self._lookup(f"_client._smtp.{parent}", "SRV", dnssec, retrans, retry)
            if any(r.priority == 1 and r.port & 1 for r in found.records):
                found.found_name = parent
                return found
        return DnsAnswer(name, "SRV", [], False, "NXDOMAIN", found_name=name)

    # -- what lists, routers and ACLs ask ---------------------------------------

    def _host_names(self, ip: str) -> _Steps:
        if not _is_ip(ip):
            return []
        answer = yield from self._lookup(reverse_name(ip), "PTR", False, None, None)
        return [name_text(r.target) for r in answer.records]

    def _addresses(self, name: str) -> _Steps:
        out: list[str] = []
        deferred: LookupDefer | None = None
        for rdtype in ("A", "AAAA"):
            try:
                answer = yield from self._lookup(name, rdtype, False, None, None)
            except LookupDefer as exc:
                deferred = exc
                continue
            out.extend(r.address for r in answer.records)
        if not out and deferred is not None:
            raise deferred
        return out

    def _mx(self, domain: str) -> _Steps:
        answer = yield from self._lookup(domain, "MX", False, None, None)
        return sorted((r.preference, name_text(r.exchange)) for r in answer.records)

    # -- public API: sync ---------------------------------------------------------

    def query(
        self,
        name: str,
        rdtype: str,
        *,
        dnssec: bool = False,
        retrans: float | None = None,
        retry: int | None = None,
    ) -> DnsAnswer:
        """Records of one type for a name. NXDOMAIN/NODATA are answers; LookupDefer otherwise."""
        return self._run(self._lookup(name, rdtype, dnssec, retrans, retry))

    def query_special(
        self,
        name: str,
        kind: str,
        *,
        dnssec: bool = False,
        retrans: float | None = None,
        retry: int | None = None,
    ) -> DnsAnswer:
        """Exim's pseudo types: "zns" (NS of the name or its nearest parent), "soa" (likewise),
        "csa" (SRV under _client._smtp, with the parent search), "mxh". found_name says where."""
        return self._run(self._special(name, kind, dnssec, retrans, retry))

    def host_names_for_ip(self, ip: str) -> list[str]:
        return self._run(self._host_names(ip))

    def addresses_for_name(self, name: str) -> list[str]:
        """A then AAAA addresses; LookupDefer only when nothing was found and a lookup deferred."""
        return self._run(self._addresses(name))

    def mx_hosts(self, domain: str) -> list[tuple[int, str]]:
        """(preference, host) sorted by preference (then name); [] when there are none."""
        return self._run(self._mx(domain))

    # -- public API: async twins ------------------------------------------------

    async def aquery(
        self,
        name: str,
        rdtype: str,
        *,
        dnssec: bool = False,
        retrans: float | None = None,
        retry: int | None = None,
    ) -> DnsAnswer:
        return await self._arun(self._lookup(name, rdtype, dnssec, retrans, retry))

    async def aquery_special(
        self,
        name: str,
        kind: str,
        *,
        dnssec: bool = False,
        retrans: float | None = None,
        retry: int | None = None,
    ) -> DnsAnswer:
        return await self._arun(self._special(name, kind, dnssec, retrans, retry))

    async def ahost_names_for_ip(self, ip: str) -> list[str]:
        return await self._arun(self._host_names(ip))

    async def aaddresses_for_name(self, name: str) -> list[str]:
        return await self._arun(self._addresses(name))

    async def amx_hosts(self, domain: str) -> list[tuple[int, str]]:
        return await self._arun(self._mx(domain))


def _drive(steps: _Steps, ask: Callable[[_Ask], DnsAnswer]) -> Any:
    """Run a generator of queries to its end, answering each with `ask`."""
    reply: DnsAnswer | None = None
    error: LookupDefer | None = None
    while True:
        try:
            step = steps.throw(error) if error is not None else steps.send(reply)  # type: ignore[arg-type]
        except StopIteration as stop:
            return stop.value
        try:
            reply, error = ask(step), None
        except LookupDefer as exc:
            reply, error = None, exc


__all__ = [
    "DEFAULT_CHECK_NAMES_PATTERN",
    "DnsAnswer",
    "Resolver",
    "name_text",
    "parse_nameservers",
    "reverse_name",
]

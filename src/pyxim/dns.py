"""The one door to the DNS.

A Resolver wraps dnspython twice — an asyncio resolver for the daemon and a
synchronous twin for the expander, which is synchronous — over one
configuration and one cache. Servers come from /etc/resolv.conf, or from the
main option `dns_nameservers`, written like local_interfaces:

    dns_nameservers = 127.0.0.1.5353 : 127.0.0.2
    dns_nameservers = <; ::1.5353 ; 127.0.0.1

Every answer carries the DNSSEC AD bit (`authenticated`), which DANE and the
dnssec_* options need. NXDOMAIN and "no data" are answers; a timeout or
SERVFAIL raises LookupDefer, which callers turn into a temporary error.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

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


@dataclass(slots=True)
class DnsAnswer:
    name: str
    rdtype: str
    records: list = field(default_factory=list)  # dnspython rdata objects
    authenticated: bool = False
    rcode: str = "NOERROR"  # NOERROR, NXDOMAIN
    cname_target: str | None = None

    @property
    def found(self) -> bool:
        return bool(self.records)


def parse_nameservers(value: str) -> list[tuple[str, int]]:
    """`127.0.0.1.5353 : 127.0.0.2` → [("127.0.0.1", 5353), ("127.0.0.2", 53)]."""
    from pyxim.lists import iterate_list

    servers: list[tuple[str, int]] = []
    for item in iterate_list(value):
        address, port = item, 53
        for candidate in (item, item.rsplit(".", 1)[0]):
            try:
                ipaddress.ip_address(candidate.strip("[]"))
            except ValueError:
                continue
            address = candidate.strip("[]")
            if candidate != item:
                tail = item.rsplit(".", 1)[1]
                if not tail.isdigit() or not 0 < int(tail) < 65536:
                    raise ConfigError(f'bad port in dns_nameservers item "{item}"')
                port = int(tail)
            break
        else:
            raise ConfigError(f'"{item}" in dns_nameservers is not an IP address (with optional .port)')
        servers.append((address, port))
    return servers


class _NxDomain:
    """Holds the NXDOMAIN answer when _temporary_errors() swallowed the exception."""

    answer: DnsAnswer


@contextmanager
def _temporary_errors(name: str, rdtype: str) -> Iterator[_NxDomain]:
    """NXDOMAIN becomes an answer; timeouts and server failures become LookupDefer."""
    holder = _NxDomain()
    holder.answer = DnsAnswer(name, rdtype, [], False, "NXDOMAIN")
    try:
        yield holder
    except dns.resolver.NXDOMAIN:
        return
    except (dns.resolver.NoNameservers, dns.exception.Timeout, dns.resolver.LifetimeTimeout) as exc:
        raise LookupDefer(f"DNS lookup of {name} ({rdtype}) gave a temporary error: {type(exc).__name__}") from None
    except dns.exception.DNSException as exc:
        raise LookupDefer(f"DNS lookup of {name} ({rdtype}) failed: {exc}") from None


class Resolver:
    def __init__(
        self,
        nameservers: list[tuple[str, int]] | None = None,
        timeout: float = 5.0,
        retries: int = 2,
        dnssec_ok: bool = True,
    ) -> None:
        self.cache = dns.resolver.LRUCache(10000)
        self.sync = self._configure(dns.resolver.Resolver(configure=nameservers is None), nameservers, timeout, retries, dnssec_ok)
        self.async_ = self._configure(
            dns.asyncresolver.Resolver(configure=nameservers is None), nameservers, timeout, retries, dnssec_ok
        )

    def _configure(self, res, nameservers, timeout, retries, dnssec_ok):  # type: ignore[no-untyped-def]
        if nameservers is not None:
            res.nameservers = [dns.nameserver.Do53Nameserver(addr, port) for addr, port in nameservers]
        res.timeout = timeout
        res.lifetime = timeout * max(retries, 1)
        res.cache = self.cache
        res.use_edns(0, dns.flags.DO if dnssec_ok else 0, 1232)
        res.flags = dns.flags.RD | dns.flags.AD
        res.retry_servfail = False
        return res

    @classmethod
    def from_option(cls, value: object) -> Resolver:
        if value in (None, ""):
            return cls()
        return cls(parse_nameservers(str(value)))

    # -- queries --------------------------------------------------------------

    def _answer(self, name: str, rdtype: str, result) -> DnsAnswer:  # type: ignore[no-untyped-def]
        response = result.response
        return DnsAnswer(
            name,
            rdtype,
            list(result.rrset) if result.rrset is not None else [],
            bool(response.flags & dns.flags.AD),
            "NOERROR",
            str(result.canonical_name).rstrip(".") if result.canonical_name != dns.name.from_text(name) else None,
        )

    def query(self, name: str, rdtype: str, *, dnssec: bool = False) -> DnsAnswer:
        with _temporary_errors(name, rdtype) as nx:
            result = self.sync.resolve(name, rdtype, search=False, raise_on_no_answer=False)
            return self._answer(name, rdtype, result)
        return nx.answer

    async def aquery(self, name: str, rdtype: str, *, dnssec: bool = False) -> DnsAnswer:
        with _temporary_errors(name, rdtype) as nx:
            result = await self.async_.resolve(name, rdtype, search=False, raise_on_no_answer=False)
            return self._answer(name, rdtype, result)
        return nx.answer

    # -- what lists and routers ask -------------------------------------------

    def host_names_for_ip(self, ip: str) -> list[str]:
        answer = self.query(dns.reversename.from_address(ip).to_text(), "PTR")
        return [r.target.to_text().rstrip(".") for r in answer.records]

    def addresses_for_name(self, name: str) -> list[str]:
        out: list[str] = []
        for rdtype in ("A", "AAAA"):
            out.extend(r.address for r in self.query(name, rdtype).records)
        return out

    def mx_hosts(self, domain: str) -> list[tuple[int, str]]:
        answer = self.query(domain, "MX")
        return sorted((r.preference, r.exchange.to_text().rstrip(".")) for r in answer.records)

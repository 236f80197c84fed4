"""pytest fixtures for DNS: the tests' own DNS server, a resolver and an expansion context using it.

    dns_server   (session)  DnsServer serving tests/fixtures/zones/*.zone on 127.0.0.1, ephemeral port;
                            dns_server.option is the value for dns_nameservers
    resolver     (function) pyxim.dns.Resolver asking dns_server only, 1s per try, one try, empty cache
    dns_ctx      (function) ExpansionContext whose resolver is `resolver`

Make a name misbehave for one test with `with dns_server.behaviour(servfail=[...], silent=[...]):`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests.support.dnsserver import DnsServer

if TYPE_CHECKING:  # pragma: no cover
    from pyxim.dns import Resolver
    from pyxim.expand.context import ExpansionContext


@pytest.fixture(scope="session")
def dns_server() -> Iterator[DnsServer]:
    with DnsServer() as server:
        yield server


@pytest.fixture
def resolver(dns_server: DnsServer) -> Resolver:
    from pyxim.dns import Resolver

    # Short timing: a name the server is told to ignore costs one second, not ten.
    return Resolver.from_option(dns_server.option, retrans=1, retry=1)


@pytest.fixture
def dns_ctx(resolver: Resolver) -> ExpansionContext:
    from pyxim.expand.context import ExpansionContext

    return ExpansionContext(resolver=resolver)

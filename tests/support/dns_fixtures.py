"""pytest fixtures: `dns_server` (the tests' own DNS server) and `dns_ctx` (an expansion context using it)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.dnsserver import DnsServer


@pytest.fixture(scope="session")
def dns_server() -> Iterator[DnsServer]:
    with DnsServer() as server:
        yield server


@pytest.fixture
def resolver(dns_server: DnsServer):  # type: ignore[no-untyped-def]
    from pyxim.dns import Resolver

    return Resolver.from_option(dns_server.option)

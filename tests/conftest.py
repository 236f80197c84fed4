"""Shared pytest configuration: the tests' DNS server fixtures."""

from __future__ import annotations

from tests.support.dns_fixtures import dns_server, resolver  # noqa: F401

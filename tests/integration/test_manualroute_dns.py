"""manualroute and dnslookup against the tests' own DNS server: names, /MX, host_find_failed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

CONF = """\
primary_hostname = t.example
dns_nameservers = {dns}
begin routers
byname:
  driver = manualroute
  domains = name.example
  route_list = * mx1.example.test
  transport = remote
bymx:
  driver = manualroute
  domains = mx.example
  route_list = * example.test/MX
  transport = remote
failing:
  driver = manualroute
  domains = {policy}.example
  route_list = * nosuch.example.test:192.0.2.99
  host_find_failed = {policy}
  transport = remote
mx:
  driver = dnslookup
  domains = example.test
  transport = remote
begin transports
remote:
  driver = smtp
"""


def bt(tmp_path: Path, dns: str, address: str, policy: str = "fail") -> tuple[str, int]:
    conf = tmp_path / "c.conf"
    conf.write_text(CONF.replace("{dns}", dns).replace("{policy}", policy))
    proc = subprocess.run([sys.executable, "-m", "pyxim", "-C", str(conf), "-bt", address], capture_output=True,
                          text=True, timeout=60)
    return proc.stdout, proc.returncode


def test_names_and_mx(tmp_path: Path, dns_server) -> None:  # type: ignore[no-untyped-def]
    out, rc = bt(tmp_path, dns_server.option, "u@name.example")
    assert rc == 0 and "  host mx1.example.test [192.0.2.10]" in out
    out, rc = bt(tmp_path, dns_server.option, "u@mx.example")
    assert rc == 0 and " MX=10" in out and out.index("mx1.example.test") < out.index("mx2.example.test")
    out, rc = bt(tmp_path, dns_server.option, "u@example.test")
    assert rc == 0 and "router = mx, transport = remote" in out and " MX=10" in out


@pytest.mark.parametrize(("policy", "expected", "status"), [
    ("fail", 'is undeliverable: lookup of host "nosuch.example.test" failed in failing router', 2),
    ("defer", 'cannot be resolved at this time: lookup of host "nosuch.example.test" failed in failing router', 1),
    ("decline", "is undeliverable: Unrouteable address", 2),
    ("ignore", "  host 192.0.2.99 [192.0.2.99]", 0),
])
def test_host_find_failed(tmp_path: Path, dns_server, policy: str, expected: str, status: int) -> None:  # type: ignore[no-untyped-def]
    out, rc = bt(tmp_path, dns_server.option, f"u@{policy}.example", policy)
    assert expected in out and rc == status


DNSLOOKUP_CONF = """\
primary_hostname = t.example
dns_nameservers = {dns}
begin routers
mx:
  driver = dnslookup
  mx_domains = mxonly.example.test : onlya-strict.example.test
  transport = remote
begin transports
remote:
  driver = smtp
"""


@pytest.mark.parametrize(("domain", "expected", "status"), [
    ("example.test", "  host mx1.example.test [192.0.2.10]   MX=10", 0),
    ("onlya.example.test", "  host onlya.example.test [192.0.2.77]", 0),
    ("nullmx.example.test", "is undeliverable: an MX or SRV record indicated no SMTP service", 2),
    ("deadmx.example.test", "is undeliverable: all relevant MX records point to non-existent hosts", 2),
    ("nosuch.example.test", "is undeliverable: Unrouteable address", 2),
])
def test_dnslookup(tmp_path: Path, dns_server, domain: str, expected: str, status: int) -> None:  # type: ignore[no-untyped-def]
    conf = tmp_path / "c.conf"
    conf.write_text(DNSLOOKUP_CONF.replace("{dns}", dns_server.option))
    proc = subprocess.run([sys.executable, "-m", "pyxim", "-C", str(conf), "-bt", f"u@{domain}"],
                          capture_output=True, text=True, timeout=60)
    assert expected in proc.stdout and proc.returncode == status, proc.stdout + proc.stderr

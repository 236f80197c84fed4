"""The client's host name: host_lookup looks it up when the connection starts, helo_lookup_domains when the
client names this host (or a literal of one of its addresses) in HELO; a failure is logged once as "no
host name found for IP address …" (log_selector host_lookup_failed, on by default). The names come from
the tests' DNS server (reverse zone 2.0.192.in-addr.arpa). pyxim -bh, so the lines are Exim's LOG: lines;
Exim itself cannot be pointed at this DNS server outside a private namespace (the same lines are
compared with exim4 for HELO syntax in tests/interop/test_smtp_commands_exim.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.dnsserver import DnsServer

SESSION = b"HELO HELO_NAME\r\nMAIL FROM:<s@x.example>\r\nRCPT TO:<r@t.example>\r\nQUIT\r\n"


def _bh(tmp_path: Path, dns: DnsServer, extra: str, address: str, helo: str) -> str:
    conf = tmp_path / "c.conf"
    conf.write_text(
        f"primary_hostname = t.example\ndns_nameservers = {dns.option}\n{extra}\n"
        "acl_smtp_rcpt = r\nbegin acl\nr:\n  warn logwrite = name=[$sender_host_name] rcvhost=[$sender_rcvhost]\n"
        "  accept\n"
    )
    proc = subprocess.run([sys.executable, "-m", "pyxim", "-C", str(conf), "-bh", address],
                          input=SESSION.replace(b"HELO_NAME", helo.encode()), capture_output=True, timeout=60)
    return "\n".join(line for line in proc.stderr.decode().splitlines() if line.startswith("LOG: "))


@pytest.mark.parametrize(
    ("extra", "address", "helo", "expected"),
    [
        # host_lookup: found and confirmed forward
        ("host_lookup = *", "192.0.2.10", "client", "LOG: name=[mx1.example.test] "
                                                    "rcvhost=[mx1.example.test ([192.0.2.10] helo=client)]"),
        # host_lookup: no PTR record, logged once although $sender_host_name is asked for again
        ("host_lookup = *", "192.0.2.77", "client", "LOG: no host name found for IP address 192.0.2.77\n"
                                                    "LOG: name=[] rcvhost=[[192.0.2.77] (helo=client)]"),
        # not in host_lookup: nothing at connection; HELO naming this host starts the lookup
        ("host_lookup = 192.0.2.99", "192.0.2.77", "t.example",
         "LOG: no host name found for IP address 192.0.2.77\nLOG: name=[] rcvhost=[[192.0.2.77] (helo=t.example)]"),
        ("host_lookup_failed_off = 1\nlog_selector = -host_lookup_failed\nhost_lookup = *", "192.0.2.77", "c",
         "LOG: name=[] rcvhost=[[192.0.2.77] (helo=c)]"),
    ],
)
def test_host_name_lookups(tmp_path: Path, dns_server: DnsServer, extra: str, address: str, helo: str,
                           expected: str) -> None:
    extra = extra.replace("host_lookup_failed_off = 1\n", "")
    assert _bh(tmp_path, dns_server, extra, address, helo) == expected

"""The dnslists ACL condition against the tests' own DNS server, through real SMTP sessions (-bh)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

CONF = """\
primary_hostname = mail.example.org
dns_nameservers = {dns}
acl_smtp_rcpt = rcpt
begin acl
rcpt:
  deny    dnslists = bl.test=127.0.0.3
          message = narrowed $sender_host_address in $dnslist_domain
  deny    dnslists = bl.test
          message = $sender_host_address is listed in $dnslist_domain: $dnslist_text ($dnslist_value)
  deny    dnslists = bl.test/$sender_address_domain
          message = sender domain $dnslist_matched is listed
  accept
"""


def session(tmp_path: Path, dns: str, client: str, sender: str = "a@ok.example") -> list[str]:
    conf = tmp_path / "c.conf"
    conf.write_text(CONF.replace("{dns}", dns))
    script = f"HELO c\r\nMAIL FROM:<{sender}>\r\nRCPT TO:<x@y.example>\r\nQUIT\r\n".encode()
    proc = subprocess.run([sys.executable, "-m", "pyxim", "-C", str(conf), "-bh", client], input=script,
                          capture_output=True, timeout=60)
    return [line.rstrip("\r") for line in proc.stdout.decode().split("\n") if line[:3].isdigit()]


def test_listed_client_is_refused_with_the_lists_text(tmp_path: Path, dns_server) -> None:  # type: ignore[no-untyped-def]
    replies = session(tmp_path, dns_server.option, "127.0.0.2")
    assert replies[3] == (
        "550 127.0.0.2 is listed in bl.test: 127.0.0.2 is listed: see https://bl.test/ (127.0.0.2)"
    )


def test_narrowed_list_matches_only_the_named_value(tmp_path: Path, dns_server) -> None:  # type: ignore[no-untyped-def]
    assert session(tmp_path, dns_server.option, "127.0.0.3")[3] == "550 narrowed 127.0.0.3 in bl.test"


def test_unlisted_client_and_key_lookups(tmp_path: Path, dns_server) -> None:  # type: ignore[no-untyped-def]
    assert session(tmp_path, dns_server.option, "127.0.0.9")[3] == "250 Accepted"
    assert session(tmp_path, dns_server.option, "127.0.0.9", "a@spam.example")[3] == (
        "550 sender domain spam.example is listed"
    )


def test_unreachable_list_counts_as_not_listed(tmp_path: Path, dns_server) -> None:  # type: ignore[no-untyped-def]
    dns_server.servfail.add("2.0.0.127.bl.test")
    try:
        assert session(tmp_path, dns_server.option, "127.0.0.2")[3] == "250 Accepted"
    finally:
        dns_server.servfail.discard("2.0.0.127.bl.test")


def test_acceptable_values() -> None:
    from pyxim.acl.dnslists import _acceptable

    assert _acceptable(["127.0.0.2"], "")
    assert _acceptable(["127.0.0.2"], "=127.0.0.2,127.0.0.3")
    assert not _acceptable(["127.0.0.4"], "=127.0.0.2,127.0.0.3")
    assert _acceptable(["127.0.0.4"], "!=127.0.0.2")
    assert _acceptable(["127.0.0.6"], "&0.0.0.4")
    assert not _acceptable(["127.0.0.2", "127.0.0.3"], "==127.0.0.2")
    with pytest.raises(ValueError):
        _acceptable(["127.0.0.2"], "&junk")

"""dnslookup's rewrite_headers: when DNS finds the domain under another name (widen_domains here),
the header lines naming the old domain are rewritten to the new one before delivery (Exim's
rf_change_domain); with rewrite_headers false they are left alone. The routing uses the tests' DNS
server; the hosts it finds are overridden by the transport so that the message reaches a recording
SMTP receiver on loopback, whose copy is checked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.dnsserver import DnsServer
from tests.support.smtpsink import smtp_sink

CONFIG = """\
primary_hostname = mail.example.org
qualify_domain = example.org
spool_directory = ROOT/spool
log_file_path = ROOT/%slog
dns_nameservers = DNS
begin routers
wide:
  driver = dnslookup
  domains = wide.test : *.routers.test
  widen_domains = routers.test
  REWRITE
  transport = remote
begin transports
remote:
  driver = smtp
  hosts = 127.0.0.1
  hosts_override
  allow_localhost
  port = PORT
  hosts_avoid_tls = *
"""
MESSAGE = b"To: u@wide.test, other@elsewhere.example\nCc: \"U\" <u@wide.test>\nSubject: about u@wide.test\n\nbody\n"


@pytest.mark.parametrize("rewrite", [True, False])
def test_widened_domain_rewrites_headers(tmp_path: Path, dns_server: DnsServer, rewrite: bool) -> None:
    with smtp_sink() as sink:
        conf = tmp_path / "c.conf"
        conf.write_text(CONFIG.replace("ROOT", str(tmp_path)).replace("DNS", dns_server.option)
                        .replace("PORT", str(sink.port))
                        .replace("REWRITE", "rewrite_headers" if rewrite else "no_rewrite_headers"))
        subprocess.run([sys.executable, "-m", "pyxim", "-C", str(conf), "-odi", "-f", "s@example.org",
                        "u@wide.test"], input=MESSAGE, capture_output=True, timeout=60)
    log = (tmp_path / "mainlog").read_text()
    assert "=> u@wide.test.routers.test <u@wide.test> R=wide T=remote H=127.0.0.1 [127.0.0.1]" in log
    (transaction,) = [t for conn in sink.connections for t in conn]
    assert transaction.recipients == ["u@wide.test.routers.test"]
    headers = transaction.data.split(b"\r\n\r\n", 1)[0].decode()
    if rewrite:
        assert "To: u@wide.test.routers.test, other@elsewhere.example\r\n" in headers
        assert 'Cc: "U" <u@wide.test.routers.test>\r\n' in headers
    else:
        assert "To: u@wide.test, other@elsewhere.example\r\n" in headers
        assert 'Cc: "U" <u@wide.test>\r\n' in headers
    assert "Subject: about u@wide.test\r\n" in headers  # not an address header

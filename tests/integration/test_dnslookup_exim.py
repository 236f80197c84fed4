"""The dnslookup router compared with the real Exim, both asking the tests' own DNS server
(Exim inside a private mount+network namespace; see test_dnsdb_exim for how)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.test_dnsdb_exim import EXIM, ROOT, _can_use_namespaces, _workdir
from tests.support.dnsserver import DnsServer

pytestmark = pytest.mark.skipif(not _can_use_namespaces(), reason="needs root, unshare, ip and exim4")

ROUTERS = """\
begin routers
mx:
  driver = dnslookup
  domains = ! nomx.example
  mx_domains = onlya-strict.example.test
  transport = remote
begin transports
remote:
  driver = smtp
"""

ADDRESSES = ["u@example.test", "u@prefs.example.test", "u@onlya.example.test", "u@nullmx.example.test",
             "u@deadmx.example.test", "u@nosuch.example.test", "u@dual.example.test", "u@alias.example.test"]


def _conf(work: Path, name: str, extra: str = "") -> Path:
    conf = work / name
    conf.write_text("primary_hostname = mail.example.org\nqualify_domain = example.org\n"
                    f"spool_directory = {work / 'spool'}\nlog_file_path = {work}/%slog\n" + extra + ROUTERS)
    os.chmod(conf, 0o644)
    return conf


def _normal(text: str) -> str:
    """Hosts of equal MX preference, and a host's addresses of one family, come in random order
    (RFC 5321; Exim shuffles them): compare them sorted within those groups."""
    lines = text.split("\n")
    hosts = [line for line in lines if line.startswith("  host ")]

    def key(line: str) -> tuple[int, int, str]:
        mx = int(line.rsplit("MX=", 1)[1]) if "MX=" in line else 0
        return (mx, 0 if "[" in line and ":" in line.split("[", 1)[1] else 1, line)

    rest = [line for line in lines if not line.startswith("  host ")]
    return "\n".join(rest[:-1] + sorted(hosts, key=key) + rest[-1:])


def test_dnslookup_routes_as_exim(dns_server: DnsServer) -> None:
    work = _workdir()
    try:
        resolv = work / "resolv.conf"
        resolv.write_text("nameserver 127.0.0.1\n")
        os.chmod(resolv, 0o644)
        conf = _conf(work, "exim.conf")
        results = {}
        for address in ADDRESSES:
            script = (f"ip link set lo up && mount --bind {resolv} /etc/resolv.conf && "
                      f"exec {sys.executable} -m tests.support.dnsserver --port 53 -- {EXIM} -C {conf} -bt {address}")
            exim = subprocess.run(["unshare", "--mount", "--net", "--", "sh", "-c", script], capture_output=True,
                                  text=True, cwd=ROOT, timeout=120)
            mine = subprocess.run([sys.executable, "-m", "pyxim", "-C",
                                   str(_conf(work, "pyxim.conf", f"dns_nameservers = {dns_server.option}\n")),
                                   "-bt", address], capture_output=True, text=True, cwd=ROOT, timeout=120)
            results[address] = ((_normal(exim.stdout), exim.returncode), (_normal(mine.stdout), mine.returncode))
    finally:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    differences = [f"{a}\n exim:  {e!r}\n pyxim: {p!r}" for a, (e, p) in results.items() if e != p]
    assert not differences, "\n".join(differences)

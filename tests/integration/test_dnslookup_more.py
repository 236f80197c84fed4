"""dnslookup options compared with the real Exim: widen_domains, qualify_single, search_parents
(the resolver's search list from resolv.conf), check_secondary_mx and the local host in an MX
list, check_srv with srv_fail_domains, fail_defer_domains, pass_on_timeout with pass_router,
ipv4_only, ipv4_prefer; and the routers that freeze a message (host_find_failed, host_all_ignored,
self).

Both programs run inside one private mount+network namespace (see test_dnsdb_exim for how),
with the tests' DNS server on the namespace's port 53 and a resolv.conf written here — so
pyxim, too, reads its servers and search list from /etc/resolv.conf, as Exim does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.test_dnsdb_exim import EXIM, ROOT, _can_use_namespaces, _workdir

pytestmark = pytest.mark.skipif(not _can_use_namespaces(), reason="needs root, unshare, ip and exim4")

CONFIG = """\
primary_hostname = mail.example.org
qualify_domain = example.org
dns_retrans = 1s
dns_retry = 1
begin routers
wide:
  driver = dnslookup
  domains = wide.test : nosuch.test
  widen_domains = nothere.test : routers.test
  transport = remote
parents:
  driver = dnslookup
  local_parts = sp
  search_parents
  transport = remote
noqualify:
  driver = dnslookup
  domains = nq : host1
  local_parts = nq
  qualify_single = false
  transport = remote
secondary:
  driver = dnslookup
  domains = sec.routers.test : nosec.routers.test
  check_secondary_mx
  transport = remote
keep:
  driver = dnslookup
  domains = keep.routers.test
  self = send
  transport = remote
slow:
  driver = dnslookup
  domains = slowmx.routers.test
  pass_on_timeout
  pass_router = last
  transport = remote
srv:
  driver = dnslookup
  domains = *.routers.test
  check_srv = smtp
  srv_fail_domains = sfail.routers.test
  fail_defer_domains = faildefer.routers.test
  transport = remote
v4:
  driver = dnslookup
  domains = dual.example.test : www.example.test
  ipv4_only = ${if eq{$domain}{dual.example.test}{yes}{no}}
  ipv4_prefer = true
  transport = remote
plain:
  driver = dnslookup
  transport = remote
  no_more
last:
  driver = accept
  transport = remote
begin transports
remote:
  driver = smtp
"""

CASES = {
    # resolv.conf "search": the first domain qualifies single names; search_parents tries them all
    "search routers.test example.test": [
        "u@wide.test",
        "u@nosuch.test",
        "sp@wide.test",
        "nq@host1",
        "u@host1",
        "u@mx1",
        "u@sec.routers.test",
        "u@nosec.routers.test",
        "u@primary.routers.test",
        "u@srv.routers.test",
        "u@nosrv.routers.test",
        "u@sfail.routers.test",
        "u@sfail2.routers.test",
        "u@faildefer.routers.test",
        "u@deadmx.routers.test",
        "u@slowmx.routers.test",
        "u@loopa.routers.test",
        "u@mixed.routers.test",
        "u@lowmx.routers.test",
        "u@keep.routers.test",
    ],
    "domain example.test": [
        "u@mx1",
        "u@dual",
        "nq@nq",
        "u@www.example.test",
        "u@alias.example.test",
        "u@outside.example.test",
        "u@nullmx.example.test",
    ],
}


def _both(work: Path, resolv: str, conf: Path, addresses: list[str]) -> dict[str, tuple[str, str]]:
    (work / "resolv.conf").write_text(f"{resolv}\nnameserver 127.0.0.1\n")
    os.chmod(work / "resolv.conf", 0o644)
    mark = "@@ROUTING-MARK@@"
    lines = []
    for address in addresses:
        for name, command in (
            ("exim", f"{EXIM} -C {conf}"),
            ("pyxim", f"{sys.executable} -m pyxim -C {conf}"),
        ):
            lines.append(f"echo '{mark} {name} {address}'; {command} -bt {address} 2>&1; echo \"rc=$?\"")
    (work / "inner.sh").write_text("\n".join(lines) + "\n")
    script = (
        f"ip link set lo up && mount --bind {work / 'resolv.conf'} /etc/resolv.conf && "
        f"exec {sys.executable} -m tests.support.dnsserver --port 53 --servfail _smtp._tcp.sfail.routers.test "
        f"--servfail _smtp._tcp.sfail2.routers.test --silent slowmx.routers.test -- sh {work / 'inner.sh'}"
    )
    proc = subprocess.run(
        ["unshare", "--mount", "--net", "--", "sh", "-c", script],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    outputs: dict[str, dict[str, str]] = {}
    for chunk in proc.stdout.split(mark)[1:]:
        head, _, body = chunk.partition("\n")
        who, address = head.split()
        # Exim's own log lines (LOG: on stderr under -bt) are not part of what -bt prints
        kept = [line for line in body.split("\n") if not line.startswith(("LOG:", "  lowest numbered MX"))]
        outputs.setdefault(address, {})[who] = "\n".join(kept)
    return {a: (o.get("exim", ""), o.get("pyxim", "")) for a, o in outputs.items()}


def _normal(text: str) -> str:
    """A host's addresses of one family come in random order: compare host lines sorted."""
    lines = text.split("\n")
    hosts = sorted(line for line in lines if line.startswith("  host "))
    return "\n".join([line for line in lines if not line.startswith("  host ")] + hosts)


def test_dnslookup_options_route_as_exim() -> None:
    work = _workdir()
    try:
        conf = work / "c.conf"
        conf.write_text(CONFIG)
        os.chmod(conf, 0o644)
        differences = []
        seen: dict[str, str] = {}
        for resolv, addresses in CASES.items():
            for address, (exim, mine) in _both(work, resolv, conf, addresses).items():
                seen[f"{resolv}|{address}"] = mine
                if _normal(exim) != _normal(mine):
                    differences.append(f"[{resolv}] {address}\n exim:  {exim!r}\n pyxim: {mine!r}")
        assert not differences, "\n".join(differences)
        # the cases say something: widening and the search list reroute, a timeout passes on
        first = "search routers.test example.test"
        assert "u@wide.test.routers.test\n    <-- u@wide.test" in seen[f"{first}|u@wide.test"]
        assert "router = last" in seen[f"{first}|u@slowmx.routers.test"]
        assert "port=2525" in seen[f"{first}|u@srv.routers.test"]
        assert "u@mx1.example.test\n    <-- u@mx1" in seen["domain example.test|u@mx1"]
        assert "2001:db8" not in seen["domain example.test|u@dual"]  # ipv4_only
    finally:
        shutil.rmtree(work, ignore_errors=True)


DELIVERY_CONFIG = """\
primary_hostname = t.example
spool_directory = ROOT/spool
log_file_path = ROOT/%slog
begin routers
failing:
  driver = manualroute
  domains = freeze.example
  route_list = * nosuch.example.test
  transport = remote
ignored:
  driver = manualroute
  domains = ign.example
  route_list = * mx2.example.test
  ignore_target_hosts = 192.0.2.20
  transport = remote
allignored:
  driver = manualroute
  domains = ai.example
  route_list = * nosuch.example.test:mx2.example.test
  ignore_target_hosts = 192.0.2.20
  host_find_failed = ignore
  host_all_ignored = freeze
  transport = remote
selfish:
  driver = manualroute
  domains = self.example
  route_list = * 127.0.0.1
  transport = remote
begin transports
remote:
  driver = smtp
begin retry
* * F,1h,10m
"""


def test_freezing_routers_freeze_the_message_as_exim() -> None:
    """host_find_failed = freeze (the default), a host whose addresses are all ignored,
    host_all_ignored = freeze, self = freeze: the defer lines, Exim's "no IP address found"
    lines, "Frozen", and -bp's "*** frozen ***"."""
    import re

    work = _workdir()
    os.chmod(work, 0o777)  # Exim drops to its own user for the delivery
    try:
        (work / "resolv.conf").write_text("nameserver 127.0.0.1\n")
        os.chmod(work / "resolv.conf", 0o644)
        lines = []
        for who, command in (("exim", EXIM), ("pyxim", f"{sys.executable} -m pyxim")):
            for domain in ("freeze", "ign", "ai", "self"):
                home = work / f"{who}-{domain}"
                home.mkdir()
                os.chmod(home, 0o777)
                (home / "c.conf").write_text(DELIVERY_CONFIG.replace("ROOT", str(home)))
                os.chmod(home / "c.conf", 0o644)
                lines.append(
                    f"printf 'Subject: x\\n\\nb\\n' | {command} -C {home}/c.conf -odi -f s@x.example "
                    f"u@{domain}.example >/dev/null 2>&1; echo '@@ {who} {domain}'; cat {home}/mainlog; "
                    f"{command} -C {home}/c.conf -bp"
                )
        (work / "inner.sh").write_text("\n".join(lines) + "\n")
        script = (
            f"ip link set lo up && mount --bind {work / 'resolv.conf'} /etc/resolv.conf && "
            f"exec {sys.executable} -m tests.support.dnsserver --port 53 -- sh {work / 'inner.sh'}"
        )
        proc = subprocess.run(
            ["unshare", "--mount", "--net", "--", "sh", "-c", script],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=120,
        )
        seen: dict[str, dict[str, list[str]]] = {}
        for chunk in proc.stdout.split("@@ ")[1:]:
            head, _, body = chunk.partition("\n")
            who, domain = head.split()
            kept = []
            for line in body.split("\n"):
                line = re.sub(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ", "", line)
                line = re.sub(r"[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}", "ID", line)
                line = re.sub(r"^ *\d+[smhd] +\d+ ", "AGE SIZE ", line)
                if line.startswith("ID ") and " <= " not in line or line.startswith(("AGE", "  ")):
                    kept.append(line.rstrip())
            seen.setdefault(domain, {})[who] = kept
        for domain, both in seen.items():
            assert both["pyxim"] == both["exim"], domain
            assert "ID Frozen" in both["pyxim"] and any("*** frozen ***" in line for line in both["pyxim"])
        assert len(seen) == 4
    finally:
        shutil.rmtree(work, ignore_errors=True)

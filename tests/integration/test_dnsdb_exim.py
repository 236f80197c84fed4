"""dnsdb compared with the real Exim, both asking the tests' own DNS server.

Exim has no option to name its DNS servers: it reads /etc/resolv.conf and asks
port 53. So Exim runs inside a private mount and network namespace (`unshare`)
where /etc/resolv.conf is replaced by one naming 127.0.0.1 (with `trust-ad`, so
the C library passes the AD bit on) and the namespace's own loopback carries our
server on port 53 — nothing leaves the namespace. pyxim runs `-be` with
dns_nameservers pointing at a server of the same zones on an ephemeral port.
Every line below must print byte for byte the same in both.

One difference is left out on purpose: Exim remembers failed DNS lookups for the
life of the process and, answering from that memory, has no AD bit to report,
so a second lookup of a name that was not found says "no" in
$lookup_dnssec_authenticated where the first said "yes". pyxim reports what the
(cached) answer said. The corpus therefore prints that variable only after
first lookups.

Needs root (for the namespaces and port 53) and exim4; skipped otherwise.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.support.dnsserver import DnsServer

ROOT = Path(__file__).resolve().parents[2]
EXIM = shutil.which("exim4") or shutil.which("exim")
MARK = "@@DNSDB-MARK@@"
SERVFAIL = ["servfail.example.test"]
SILENT = ["timeout.example.test"]

CORPUS = r"""
${lookup dnsdb{mx=example.test}}
${lookup dnsdb{mx=prefs.example.test}}
${lookup dnsdb{>: mx=prefs.example.test}}
${lookup dnsdb{>:,/ mx=prefs.example.test}}
${lookup dnsdb{>:; mx=prefs.example.test}}
${lookup dnsdb{MX=example.test}}
${lookup dnsdb{Mx = example.test}}
${lookup dnsdb{mxh=example.test}}
${lookup dnsdb{>:,: mxh=example.test}}
${lookup dnsdb{mx=nullmx.example.test}{y:[$value]}{n}}
${lookup dnsdb{mxh=nullmx.example.test}{y:[$value]}{n}}
${lookup dnsdb{mx=www.example.test}{y:$value}{n}}
${lookup dnsdb{mx=alias.example.test}{y:$value}{n}}
${lookup dnsdb{mx=-bad.example.test}{y}{n}}
${lookup dnsdb{a=mx1.example.test}}
${lookup dnsdb{a = mx1.example.test : mx2.example.test }}
${lookup dnsdb{>  a=mx1.example.test:mx2.example.test}}
${lookup dnsdb{>:,: a=mx1.example.test:mx2.example.test}}
${lookup dnsdb{a=<, mx1.example.test, mx2.example.test}}
${lookup dnsdb{a=mx1.example.test::mx2.example.test}{y:$value}{n}}
${lookup dnsdb{a=MX1.Example.TEST}}
${lookup dnsdb{a=mx1.example.test.}}
${lookup dnsdb{a=alias.example.test}}
${lookup dnsdb{a=outside.example.test}}
${lookup dnsdb{a=dangling.example.test}{y:$value}{n}}
${lookup dnsdb{a=nope.example.test}{y}{n}}
${lookup dnsdb{a=deep.example.test}{y}{n}}
${lookup dnsdb{a=192.0.2.1}{y}{n}}
${lookup dnsdb{a=bad_name..example.test}{y}{n}}
${lookup dnsdb{a=s/lash.example.test}{y:$value}{n}}
${lookup dnsdb{a=x.wild.example.test}}
${lookup dnsdb{>\n a=x.wild.example.test:y.z.wild.example.test:wild.example.test}{y:$value}{n}}
${lookup dnsdb{a=}{y:$value}{n}}
${lookup dnsdb{}{y:$value}{n}}
${lookup dnsdb{a=many.example.test}{${strlen:$value}}}
${lookup dnsdb{aaaa=dual.example.test}}
${lookup dnsdb{aaaa=mapped.example.test}}
${lookup dnsdb{aaaa=mx2.example.test}{y:$value}{n}}
${lookup dnsdb{a+=dual.example.test}}
${lookup dnsdb{>, a+=dual.example.test:mx2.example.test}}
${lookup dnsdb{a+=v6only.example.test}}
${lookup dnsdb{ a+ = mx2.example.test}}
${lookup dnsdb{txt=multi.example.test}}
${lookup dnsdb{multi.example.test}}
${lookup dnsdb{>\n,: txt=multi.example.test}}
${lookup dnsdb{>\n; txt=multi.example.test}}
${lookup dnsdb{>|; txt=twotxt.example.test}}
${lookup dnsdb{>|, txt=twotxt.example.test}}
${lookup dnsdb{twotxt.example.test}}
${lookup dnsdb{txt=punct.example.test}}
${lookup dnsdb{>\n, txt=punct.example.test}}
${lookup dnsdb{>,,, txt=punct.example.test}}
${lookup dnsdb{txt=empty.example.test}{y:[$value]}{n}}
${lookup dnsdb{>:,: txt=empty.example.test:multi.example.test}}
${lookup dnsdb{>: txt=empty.example.test:multi.example.test:empty.example.test:twotxt.example.test}{[$value]}}
${lookup dnsdb{txt=big.example.test}{${strlen:$value}}}
${lookup dnsdb{>:; txt=big.example.test}{${strlen:$value}}}
${lookup dnsdb{x.wild.example.test}}
${lookup dnsdb{txt=host.other.test}}
${lookup dnsdb{txt=outside.example.test}{y:$value}{n}}
${lookup dnsdb{txt=a=b.example.test}{y}{n}}
${lookup dnsdb{txt=bad..example.test}{y}{n}}
${lookup dnsdb{txt=x.nonexistent.tld}{y:$value}{n}}
${lookup dnsdb{spf=spfonly.example.test}}
${lookup dnsdb{>:,| spf=spfonly.example.test}}
${lookup dnsdb{spf=example.test}{y:$value}{n}}
${lookup dnsdb{txt=spfonly.example.test}{y:$value}{n}}
${lookup dnsdb{srv=_smtp._tcp.example.test}}
${lookup dnsdb{>;,: srv=_smtp._tcp.example.test}}
${lookup dnsdb{>:; srv=_smtp._tcp.example.test}}
${lookup dnsdb{srv=_smtp._tcp.-bad.example.test}{y:$value}{n}}
${lookup dnsdb{srv=_smtp._tcp}{y:$value}{n}}
${lookup dnsdb{tlsa=_25._tcp.mx1.example.test}}
${lookup dnsdb{>;,: tlsa=_25._tcp.mx1.example.test}}
${lookup dnsdb{>:; tlsa=_25._tcp.mx1.example.test}}
${lookup dnsdb{soa=example.test}}
${lookup dnsdb{>:,; soa=example.test}}
${lookup dnsdb{>:, soa=example.test}}
${lookup dnsdb{>:; soa=example.test}{${strlen:$value}}}
${lookup dnsdb{>:,; soa=sub.deep.example.test}}
${lookup dnsdb{soa=nothing.here.example.test}}
${lookup dnsdb{>:,; soa=sub.deep.example.test:nope.other.test}}
${lookup dnsdb{>:,; soa=x.y.nowhere.test}}
${lookup dnsdb{soa=test}}
${lookup dnsdb{zns=sub.deep.example.test}}
${lookup dnsdb{zns=x.y.nowhere.test}}
${lookup dnsdb{zns=example.test}}
${lookup dnsdb{zns=test}}
${lookup dnsdb{zns=nothing}{y:$value}{n}}
${lookup dnsdb{ns=example.test}}
${lookup dnsdb{ns=sub.deep.example.test}{y:$value}{n}}
${lookup dnsdb{cname=www.example.test}}
${lookup dnsdb{cname=alias.example.test}}
${lookup dnsdb{cname=mx1.example.test}{y:$value}{n}}
${lookup dnsdb{ptr=192.0.2.10}}
${lookup dnsdb{ptr=192.0.2.41}}
${lookup dnsdb{ptr=192.0.2.50}}
${lookup dnsdb{ptr=192.0.2.51}}
${lookup dnsdb{ptr=192.0.2.99}}
${lookup dnsdb{ptr=192.0.2.7}{y:$value}{n}}
${lookup dnsdb{ptr=2001:db8::10}}
${lookup dnsdb{ptr=2001:db8::10 }{y:$value}{n}}
${lookup dnsdb{ptr= 2001:db8::10}{y:$value}{n}}
${lookup dnsdb{ptr=<;2001:db8::10;192.0.2.20}}
${lookup dnsdb{ptr=<; 192.0.2.10 ; 2001:db8::40}}
${lookup dnsdb{ptr=192.0.2.10:192.0.2.20}}
${lookup dnsdb{ptr=10.2.0.192.in-addr.arpa}}
${lookup dnsdb{ptr=mx1.example.test}{y:$value}{n}}
${lookup dnsdb{csa=csa-yes.example.test}}
${lookup dnsdb{csa=csa-no.example.test}}
${lookup dnsdb{csa=csa-unknown.example.test}}
${lookup dnsdb{>:,: csa=csa-yes.example.test}}
${lookup dnsdb{csa=csa-v2.example.test}{y:$value}{n}}
${lookup dnsdb{>: csa=csa-mixed.example.test}{[$value]}{n}}
${lookup dnsdb{>: csa=csa-v2.example.test:csa-yes.example.test}{[$value]}{n}}
${lookup dnsdb{csa=nodata.strict.example.test}{y:$value}{n}}
${lookup dnsdb{csa=host.strict.example.test}{y:$value}{n}}
${lookup dnsdb{csa=host.nowhere.example.test}{y:$value}{n}}
${lookup dnsdb{csa=192.0.2.10}{y:$value}{n}}
${lookup dnsdb{foo=example.test}{y}{n}}
${lookup dnsdb{defer_foo,a=example.test}{y}{n}}
${lookup dnsdb{dnssec_foo,a=example.test}{y}{n}}
${lookup dnsdb{retrans_x,a=example.test}{y}{n}}
${lookup dnsdb{retrans_0s,a=mx1.example.test}{y}{n}}
${lookup dnsdb{retrans_5,a=mx1.example.test}{y}{n}}
${lookup dnsdb{retrans_5s ,a=mx1.example.test}{y}{n}}
${lookup dnsdb{retrans_1m30s,a=mx1.example.test}{y}{n}}
${lookup dnsdb{retry_x,a=example.test}{y}{n}}
${lookup dnsdb{retry_3 x,a=example.test}{y}{n}}
${lookup dnsdb{retry_0x10,a=mx1.example.test}{y}{n}}
${lookup dnsdb{retry_-1,a=mx1.example.test}{y}{n}}
${lookup dnsdb{retry_ 3,a=mx1.example.test}{y}{n}}
${lookup dnsdb{retrans_2s,retry_1,a=example.test}{y}{n}}
${lookup dnsdb{defer_never,}{y}{n}}
${lookup dnsdb{defer_never}{y}{n}}
${lookup dnsdb{defer_never ,a=mx1.example.test}{y}{n}}
${lookup dnsdb{defer_neverx,a=mx1.example.test}{y}{n}}
${lookup dnsdb{ DEFER_NEVER , Dnssec_Never , A = example.test}}[$lookup_dnssec_authenticated]
${lookup dnsdb{a=example.test}}[$lookup_dnssec_authenticated]
${lookup dnsdb{a=secure.test}{y}{n}}[$lookup_dnssec_authenticated]
${lookup dnsdb{mx=secure.test}}[$lookup_dnssec_authenticated]
${lookup dnsdb{dnssec_strict,mx=secure.test}}[$lookup_dnssec_authenticated]
${lookup dnsdb{dnssec_never,mx=secure.test}}[$lookup_dnssec_authenticated]
${lookup dnsdb{dnssec_strict,mx=example.test}{y}{n}}[$lookup_dnssec_authenticated]
${lookup dnsdb{dnssec_strict,a=mx.secure.test:mx1.example.test}}[$lookup_dnssec_authenticated]
${lookup dnsdb{dnssec_strict,a=mx1.example.test:mx.secure.test}}[$lookup_dnssec_authenticated]
${lookup dnsdb{dnssec_strict,a+=mx.secure.test}}[$lookup_dnssec_authenticated]
${lookup dnsdb{dnssec_strict,a=nope.secure.test}{y}{n}}[$lookup_dnssec_authenticated]
${lookup dnsdb{a=mx1.example.test:nope.example.test}}[$lookup_dnssec_authenticated]
${lookup dnsdb{a=mx.secure.test:nope.example.test}}[$lookup_dnssec_authenticated]
${lookup dnsdb{a=gone.secure.test}{y}{n}}[$lookup_dnssec_authenticated]
${lookup dnsdb{dnssec_strict,defer_never,a=mx1.example.test}{y}{n}}[$lookup_dnssec_authenticated]
${lookup dnsdb{tlsa=_25._tcp.mx.secure.test}}[$lookup_dnssec_authenticated]
${lookup dnsdb{a=servfail.example.test}{y}{n}}
${lookup dnsdb{defer_never,a=servfail.example.test}{y}{n}}
${lookup dnsdb{a=servfail.example.test:mx2.example.test}{y:$value}{n}}
${lookup dnsdb{defer_strict,a=servfail.example.test:mx2.example.test}{y:$value}{n}}
${lookup dnsdb{a=servfail.example.test:nope.example.test}{y:$value}{n}}
${lookup dnsdb{defer_lax,a=nope.example.test:servfail.example.test}{y:$value}{n}}
${lookup dnsdb{zns=x.servfail.example.test}{y:$value}{n}}
${lookup dnsdb{a+=servfail.example.test}{y:$value}{n}}
${lookup dnsdb{retrans_1s,retry_1,a=timeout.example.test}{y}{n}}
${lookup dnsdb{retrans_1s,retry_1,defer_never,a=timeout.example.test:mx1.example.test}{y:$value}{n}}
${lookup dnsdb{a=${lookup dnsdb{>: mxh=example.test}}}}
${lookup dnsdb{>| a=<|${lookup dnsdb{>|mxh=prefs.example.test}}}}
${lookup dnsdb{a=mx1.example.test}{$value}fail}
${lookup dnsdb{a=nope.example.test}{$value}fail}
${if eq{${lookup dnsdb{a=mx1.example.test}}}{192.0.2.10}{yes}{no}}
${sort {${lookup dnsdb{>:,,mx=prefs.example.test}}} {<} {${listextract{1}{<,$item}}}}
"""


def corpus() -> list[str]:
    return [line for line in CORPUS.splitlines() if line.strip()]


def _can_use_namespaces() -> bool:
    if EXIM is None or os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    probe = subprocess.run(["unshare", "--mount", "--net", "true"], capture_output=True, check=False)
    return probe.returncode == 0


pytestmark = pytest.mark.skipif(not _can_use_namespaces(), reason="needs root, unshare, ip and exim4")


def _split(output: str) -> list[str]:
    """'> r1\\n> MARK\\n> r2\\n> MARK\\n…> \\n' → [r1, r2, …]."""
    parts = output.split(f"\n> {MARK}\n")
    parts[0] = parts[0][2:] if parts[0].startswith("> ") else parts[0]
    return [p[2:] if i and p.startswith("> ") else p for i, p in enumerate(parts)][:-1]


def _workdir() -> Path:
    # Exim reads its configuration as root but may drop to its own user: keep the tree readable.
    work = Path(tempfile.mkdtemp(prefix="pyxim-dnsdb-"))
    os.chmod(work, 0o755)
    (work / "spool").mkdir()
    os.chmod(work / "spool", 0o777)
    return work


def _config(work: Path, extra: str = "") -> Path:
    conf = work / ("pyxim.conf" if extra else "exim.conf")
    conf.write_text(
        "primary_hostname = mail.example.org\n"
        "qualify_domain = example.org\n"
        f"spool_directory = {work / 'spool'}\n"
        f"log_file_path = {work}/%slog\n"
        "exim_user = Debian-exim\nexim_group = Debian-exim\n" + extra
    )
    os.chmod(conf, 0o644)
    return conf


def run_exim(work: Path, lines: list[str]) -> list[str]:
    resolv = work / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.1\noptions trust-ad\n")
    os.chmod(resolv, 0o644)
    conf = _config(work)
    behaviour = " ".join([f"--servfail {n}" for n in SERVFAIL] + [f"--silent {n}" for n in SILENT])
    script = (
        f"ip link set lo up && mount --bind {resolv} /etc/resolv.conf && "
        f"exec {sys.executable} -m tests.support.dnsserver --port 53 {behaviour} -- {EXIM} -C {conf} -be"
    )
    feed = "".join(f"{line}\n{MARK}\n" for line in lines)
    proc = subprocess.run(
        ["unshare", "--mount", "--net", "--", "sh", "-c", script],
        input=feed.encode(),
        capture_output=True,
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    return _split(proc.stdout.decode("utf-8", "surrogateescape"))


def run_pyxim(work: Path, server: DnsServer, lines: list[str]) -> list[str]:
    conf = _config(work, f"dns_nameservers = {server.option}\n")
    feed = "".join(f"{line}\n{MARK}\n" for line in lines)
    with server.behaviour(servfail=SERVFAIL, silent=SILENT):
        proc = subprocess.run(
            [sys.executable, "-m", "pyxim", "-C", str(conf), "-be"],
            input=feed.encode(),
            capture_output=True,
            cwd=ROOT,
            timeout=300,
            check=False,
        )
    assert not proc.stderr, proc.stderr.decode(errors="replace")
    return _split(proc.stdout.decode("utf-8", "surrogateescape"))


def test_dnsdb_prints_what_exim_prints(dns_server: DnsServer) -> None:
    lines = corpus()
    work = _workdir()
    try:
        exim = run_exim(work, lines)
        pyxim = run_pyxim(work, dns_server, lines)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    assert len(exim) == len(lines), "exim4 did not answer every line"
    assert len(pyxim) == len(lines), "pyxim did not answer every line"
    differences = [
        f"{line}\n   exim:  {e!r}\n   pyxim: {p!r}"
        for line, e, p in zip(lines, exim, pyxim, strict=True)
        if e != p
    ]
    assert not differences, "\n".join(differences)

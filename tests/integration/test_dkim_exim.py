"""DKIM verification in the DKIM ACL compared with the real Exim, both asking the tests' own DNS server
(Exim inside a private namespace; see test_dnsdb_exim). Messages are signed here with dkimpy and the
test key whose public half is published as sel._domainkey.example.test."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.test_dnsdb_exim import EXIM, ROOT, _can_use_namespaces, _workdir
from tests.support.dnsserver import DnsServer

pytestmark = pytest.mark.skipif(not _can_use_namespaces(), reason="needs root, unshare, ip and exim4")

KEY = (Path(__file__).resolve().parents[1] / "fixtures" / "dkim-test.key").read_bytes()

ACLS = """\
acl_smtp_rcpt = accept
acl_smtp_dkim = dkim
acl_smtp_data = data
dkim_verify_signers = $dkim_signers : unsigned.example
begin acl
dkim:
  warn  logwrite = signer=$dkim_cur_signer status=$dkim_verify_status reason=$dkim_verify_reason \\
                   domain=$dkim_domain selector=$dkim_selector algo=$dkim_algo \\
                   canon=$dkim_canon_headers/$dkim_canon_body
  warn  dkim_status = pass
        logwrite = dkim_status pass for $dkim_cur_signer
  accept
data:
  warn  logwrite = signers=$dkim_signers
  warn  spf = pass : fail : softfail : neutral : none : permerror : temperror
  warn  logwrite = AR[${authresults{t.example}}]
  accept
"""

BODY = (b"From: a@example.test\r\nTo: b@x.example\r\nSubject: hi\r\nMessage-ID: <m1@example.test>\r\n\r\n"
        b"body line\r\n")


def signed(selector: bytes = b"sel", domain: bytes = b"example.test") -> bytes:
    import dkim

    return dkim.sign(BODY, selector, domain, KEY, include_headers=[b"from", b"to", b"subject"],
                     identity=b"@" + domain) + BODY


def cases() -> dict[str, bytes]:
    good = signed()
    return {
        "good": good,
        "body changed": good.replace(b"body line", b"body LINE"),
        "header changed": good.replace(b"Subject: hi", b"Subject: ho"),
        "no key": signed(b"nokey"),
        "unsigned": BODY,
    }


def _conf(work: Path, name: str, extra: str = "") -> Path:
    conf = work / name
    conf.write_text("primary_hostname = mail.example.org\nqualify_domain = example.org\n"
                    f"spool_directory = {work / 'spool'}\nlog_file_path = {work}/%slog\n" + extra + ACLS)
    os.chmod(conf, 0o644)
    return conf


def _session(message: bytes) -> bytes:
    data = message.replace(b"\r\n.", b"\r\n..")
    return (b"EHLO client.example.test\r\nMAIL FROM:<a@spf-pass.example.test>\r\nRCPT TO:<b@x.example>\r\n"
            b"DATA\r\n"
            + data + b".\r\nQUIT\r\n")


def _log_lines(text: str) -> list[str]:
    out = []
    for line in text.split("\n"):
        if line.startswith("LOG: ") and ("signer=" in line or "dkim_status" in line or "signers=" in line
                                         or "DKIM" in line or "AR[" in line):
            # the log lines as Exim writes them (DKIM: … and DKIM= on the <= line), message ids masked
            out.append(re.sub(r"[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}", "ID", line))
    return out


def test_dkim_results_match_exim(dns_server: DnsServer) -> None:
    work = _workdir()
    try:
        resolv = work / "resolv.conf"
        resolv.write_text("nameserver 127.0.0.1\n")
        os.chmod(resolv, 0o644)
        exim_conf = _conf(work, "exim.conf")
        pyxim_conf = _conf(work, "pyxim.conf", f"dns_nameservers = {dns_server.option}\n")
        differences = []
        for name, message in cases().items():
            script = (f"ip link set lo up && mount --bind {resolv} /etc/resolv.conf && "
                      f"exec {sys.executable} -m tests.support.dnsserver --port 53 -- {EXIM} -C {exim_conf} "
                      "-bh 198.51.100.9")
            exim = subprocess.run(["unshare", "--mount", "--net", "--", "sh", "-c", script], input=_session(message),
                                  capture_output=True, cwd=ROOT, timeout=120)
            mine = subprocess.run([sys.executable, "-m", "pyxim", "-C", str(pyxim_conf), "-bh", "198.51.100.9"],
                                  input=_session(message), capture_output=True, cwd=ROOT, timeout=120)
            e = _log_lines((exim.stdout + exim.stderr).decode(errors="replace"))
            p = _log_lines((mine.stdout + mine.stderr).decode(errors="replace"))
            assert e, (name, (exim.stdout + exim.stderr).decode(errors="replace"))
            if e != p:
                differences.append(f"{name}\n exim:  {e}\n pyxim: {p}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    assert not differences, "\n".join(differences)


SIGNER = """\
primary_hostname = send.example
qualify_domain = example.test
spool_directory = ROOT/sspool
log_file_path = ROOT/s%slog
begin routers
out:
  driver = manualroute
  route_list = * 127.0.0.1::PORT
  self = send
  transport = smtp
begin transports
smtp:
  driver = smtp
  allow_localhost
  dkim_domain = example.test
  dkim_selector = sel
  dkim_private_key = KEYFILE
"""


def test_exim_verifies_pyxims_signature(dns_server: DnsServer) -> None:
    """pyxim signs on its smtp transport; the message as a pyxim daemon received it verifies in Exim."""
    from pyxim.spool.format import SpoolMessage
    from tests.integration.test_daemon import stop_daemon
    from tests.support.dnsserver import free_port
    from tests.support.servers import start_pyxim_daemon

    work = _workdir()
    port = free_port()
    try:
        recv = work / "recv.conf"
        recv.write_text(f"primary_hostname = recv.example\nspool_directory = {work}/rspool\n"
                        f"log_file_path = {work}/r%slog\nqueue_only\nacl_smtp_rcpt = accept\n")
        receiver = start_pyxim_daemon(recv, port)
        try:
            send = work / "send.conf"
            key = Path(__file__).resolve().parents[1] / "fixtures" / "dkim-test.key"
            send.write_text(SIGNER.replace("ROOT", str(work)).replace("PORT", str(port)).replace("KEYFILE", str(key)))
            subprocess.run([sys.executable, "-m", "pyxim", "-C", str(send), "-odi", "-f", "a@example.test",
                            "b@x.example"], input=BODY.replace(b"\r\n", b"\n"), check=True, timeout=60)
        finally:
            stop_daemon(receiver)
        header_file = next((work / "rspool" / "input").rglob("*-H"))
        spooled = SpoolMessage.parse_header_file(header_file.read_bytes())
        data_file = header_file.with_name(header_file.name[:-2] + "-D")
        body = data_file.read_bytes().split(b"\n", 1)[1]
        received = "".join(h.text for h in spooled.headers if h.type != "*").encode() + b"\n" + body
        assert received.startswith(b"Received:") and b"DKIM-Signature: v=1; a=rsa-sha256;" in received
        resolv = work / "resolv.conf"
        resolv.write_text("nameserver 127.0.0.1\n")
        os.chmod(resolv, 0o644)
        exim_conf = _conf(work, "exim.conf")
        script = (f"ip link set lo up && mount --bind {resolv} /etc/resolv.conf && "
                  f"exec {sys.executable} -m tests.support.dnsserver --port 53 -- {EXIM} -C {exim_conf} "
                  "-bh 198.51.100.9")
        exim = subprocess.run(["unshare", "--mount", "--net", "--", "sh", "-c", script],
                              input=_session(received.replace(b"\n", b"\r\n")), capture_output=True, cwd=ROOT,
                              timeout=120)
        lines = _log_lines((exim.stdout + exim.stderr).decode(errors="replace"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    assert any("signer=example.test status=pass" in line for line in lines), lines
    assert any(" DKIM=example.test " in line for line in lines), lines

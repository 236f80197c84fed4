"""The spf ACL condition and $spf_result / $spf_used_domain compared with the real Exim (libspf2),
both asking the tests' own DNS server (Exim inside a private namespace; see test_dnsdb_exim)."""

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

ACLS = """\
acl_smtp_mail = mail
begin acl
mail:
  warn    spf = pass : fail : softfail : neutral : none : permerror : temperror
          logwrite = spf=$spf_result
  warn    spf = err_perm
          logwrite = old name err_perm matched
  warn    !spf = pass
          logwrite = not pass
  warn    spf_guess = pass
          logwrite = guess=$spf_result guessed=$spf_result_guessed
  accept
"""

# A malformed record (spf-perm) is left out: Exim's libspf2 calls it "(invalid)", pyxim — with RFC 7208 —
# permerror; test_malformed_record_is_permerror covers pyxim's side.
SENDERS = ["a@spf-pass.example.test", "a@spf-fail.example.test", "a@spf-soft.example.test",
           "a@spf-neutral.example.test", "a@spf-incl.example.test",
           "a@spf-a.example.test", "a@nospf.example.test", "a@example.test"]


def _conf(work: Path, name: str, extra: str = "") -> Path:
    conf = work / name
    conf.write_text("primary_hostname = mail.example.org\nqualify_domain = example.org\n"
                    f"spool_directory = {work / 'spool'}\nlog_file_path = {work}/%slog\n" + extra + ACLS)
    os.chmod(conf, 0o644)
    return conf


def _log_lines(text: str) -> list[str]:
    # pyxim's notice for the older result names (err_perm) has no counterpart in Exim
    return [line for line in text.split("\n") if line.startswith("LOG: ") and "Warning" not in line
            and "purging" not in line and "is deprecated" not in line]


def test_spf_results_match_exim(dns_server: DnsServer) -> None:
    work = _workdir()
    try:
        resolv = work / "resolv.conf"
        resolv.write_text("nameserver 127.0.0.1\n")
        os.chmod(resolv, 0o644)
        exim_conf = _conf(work, "exim.conf")
        pyxim_conf = _conf(work, "pyxim.conf", f"dns_nameservers = {dns_server.option}\n")
        differences = []
        for client, sender in [("198.51.100.9", s) for s in SENDERS] + [("127.0.0.1", SENDERS[1])]:
            session = f"HELO client.example.test\r\nMAIL FROM:<{sender}>\r\nQUIT\r\n"
            script = (f"ip link set lo up && mount --bind {resolv} /etc/resolv.conf && "
                      f"exec {sys.executable} -m tests.support.dnsserver --port 53 -- {EXIM} -C {exim_conf} "
                      f"-bh {client}")
            exim = subprocess.run(["unshare", "--mount", "--net", "--", "sh", "-c", script], input=session,
                                  capture_output=True, text=True, cwd=ROOT, timeout=120)
            mine = subprocess.run([sys.executable, "-m", "pyxim", "-C", str(pyxim_conf), "-bh", client],
                                  input=session, capture_output=True, text=True, cwd=ROOT, timeout=120)
            e, p = _log_lines(exim.stdout + exim.stderr), _log_lines(mine.stdout + mine.stderr)
            if e != p:
                differences.append(f"{client} {sender}\n exim:  {e}\n pyxim: {p}")
            assert e, (sender, exim.stdout + exim.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    assert not differences, "\n".join(differences)


def test_malformed_record_is_permerror(dns_server: DnsServer, tmp_path: Path) -> None:
    conf = _conf(tmp_path, "pyxim.conf", f"dns_nameservers = {dns_server.option}\n")
    session = "HELO client.example.test\r\nMAIL FROM:<a@spf-perm.example.test>\r\nQUIT\r\n"
    proc = subprocess.run([sys.executable, "-m", "pyxim", "-C", str(conf), "-bh", "198.51.100.9"], input=session,
                          capture_output=True, text=True, timeout=120)
    lines = _log_lines(proc.stdout + proc.stderr)
    assert lines[:2] == ["LOG: spf=permerror", "LOG: old name err_perm matched"]
    assert re.search(r"^250 OK", proc.stdout, re.M)

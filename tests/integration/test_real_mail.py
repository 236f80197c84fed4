"""Real mail: messages from public mailing lists, signed by real DKIM signers and ARC sealers, with the
public keys as they were published (tests/fixtures/realmail/, SOURCE.md says where they come from).

Each sample goes over SMTP to a pyxim daemon on loopback whose dns_nameservers is the tests' own DNS
server serving those keys; its DKIM ACL logs $dkim_verify_status/$dkim_verify_reason per signer and its
DATA ACL does `verify = arc/none:fail:pass` and logs $arc_state, $arc_state_reason, $arc_domains and
$arc_oldest_pass. The assertions are on the main log, as an admin would read it:

    004  discuss.ocaml.org via Gmail: DKIM d=discoursemail.com passes (the signature has t= but no x=,
         so it does not expire, in Exim as in RFC 6376); ARC i=1 by google.com passes
    005  linux-kernel list: ARC chain webhostingserver.nl i=1, i=2, subspace.kernel.org i=3, passes
    006  linux-kernel list: ARC microsoft.com i=1, i=2, subspace.kernel.org i=3 sealed with cv=fail, so
         the chain fails; its two arm.com DKIM signatures name a key that is not published here
    and one-byte body changes of 004 and 005, which break the body hashes.

The DKIM verdicts are also asked of the real Exim 4.96 (in a private network namespace, against the
same zones, as test_dkim_exim does) and must be the same. Debian's exim4 is built without ARC, so the
ARC results are checked against the values above (which dkimpy's arc_verify and the blaze project's
own tests give too) rather than against Exim.
"""

from __future__ import annotations

import os
import re
import shutil
import smtplib
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.dnsserver import DnsServer, free_port

REALMAIL = Path(__file__).resolve().parents[1] / "fixtures" / "realmail"
ZONES = sorted(REALMAIL.glob("*.zone"))


def _sample(name: str) -> bytes:
    return (REALMAIL / f"{name}.mail").read_bytes()


def _one_byte(message: bytes, old: bytes, new: bytes) -> bytes:
    assert len(old) == len(new) and message.count(old) == 1, old
    return message.replace(old, new)


# the sender's local part names the case
SAMPLES: dict[str, bytes] = {
    "s004": _sample("004"),
    "s005": _sample("005"),
    "s006": _sample("006"),
    # in the text/plain parts (the HTML parts say the same words)
    "s004-body": _one_byte(_sample("004"), b"here:\n\nhttps:", b"here!\n\nhttps:"),
    "s005-body": _one_byte(_sample("005"), b"> Seems this fixes the bug", b"> Seems this fixes the bog"),
}

KERNEL_HOPS = "webhostingserver.nl:webhostingserver.nl:subspace.kernel.org"

# case → (state, reason, domains, oldest pass)
ARC: dict[str, tuple[str, str, str, str]] = {
    "s004": ("pass", "", "google.com", "1"),
    "s005": ("pass", "", KERNEL_HOPS, "1"),
    # the newest seal says cv=fail: the chain ends there, before any ARC-Message-Signature is checked
    "s006": ("fail", "i=3 (cv)", "microsoft.com:microsoft.com:subspace.kernel.org", "0"),
    "s004-body": ("fail", "AMS body hash miscompare", "google.com", "0"),
    "s005-body": ("fail", "AMS body hash miscompare", KERNEL_HOPS, "0"),
}

# case → (signer, selector, algorithm, status, reason) each time the DKIM ACL runs, in order; what the real
# Exim 4.96 gives (test_dkim_results_match_exim below asks it again)
DKIM: dict[str, list[tuple[str, str, str, str, str]]] = {
    "s004": [("discoursemail.com", "sjc2", "rsa-sha256", "pass", "")],
    "s005": [],
    # two identical signatures (the sender's and Exchange's copy), one ACL run each
    "s006": [("arm.com", "selector1", "rsa-sha256", "invalid", "pubkey_unavailable")] * 2,
    "s004-body": [("discoursemail.com", "sjc2", "rsa-sha256", "fail", "bodyhash_mismatch")],
    "s005-body": [],
}

ACLS = """\
acl_smtp_rcpt = accept
acl_smtp_dkim = dkim
acl_smtp_data = data
begin acl
dkim:
  warn  logwrite = DKIMCASE $sender_address signer=$dkim_cur_signer s=$dkim_selector a=$dkim_algo \\
                   status=$dkim_verify_status reason=$dkim_verify_reason
  accept
data:
  warn  logwrite = SIGNERS $sender_address <$dkim_signers>
"""

ARC_ACL = """\
  warn  verify = arc/none:fail:pass
        logwrite = ARCCASE $sender_address state=$arc_state reason=<$arc_state_reason> \\
                   domains=<$arc_domains> oldest=$arc_oldest_pass
"""

CONF = """\
primary_hostname = mx.example.net
qualify_domain = example.net
spool_directory = WORK/spool
log_file_path = WORK/%slog
pid_file_path = WORK/pyxim.pid
dns_nameservers = DNS
tls_advertise_hosts =
queue_only
"""

_DKIM_LINE = re.compile(
    r"DKIMCASE (\S+)@lists\.example signer=(\S*) s=(\S*) a=(\S*) status=(\S*) reason=(\S*)"
)


def _dkim_verdicts(log: str) -> dict[str, list[tuple[str, str, str, str, str]]]:
    verdicts: dict[str, list[tuple[str, str, str, str, str]]] = {name: [] for name in SAMPLES}
    for m in _DKIM_LINE.finditer(log):
        verdicts.setdefault(m.group(1), []).append(m.groups()[1:])  # type: ignore[arg-type]
    return verdicts


def _dkim_lines(log: str) -> list[str]:
    return [
        m.group(1)
        for m in re.finditer(r"(?m)^.*?[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2} (DKIM: .*)$", log)
    ]


@pytest.fixture(scope="module")
def mainlog() -> Iterator[str]:
    """Every sample sent to a pyxim daemon on loopback, one SMTP transaction each; its main log."""
    from tests.integration.test_daemon import stop_daemon
    from tests.support.servers import start_pyxim_daemon

    work = Path(tempfile.mkdtemp(prefix="pyxim-realmail-"))
    dns = DnsServer(zone_files=ZONES).start()
    daemon = None
    try:
        conf = work / "recv.conf"
        conf.write_text(
            CONF.replace("WORK", str(work)).replace("DNS", dns.option) + ACLS + ARC_ACL + "  accept\n"
        )
        port = free_port()
        daemon = start_pyxim_daemon(conf, port)
        with smtplib.SMTP("127.0.0.1", port, timeout=60) as smtp:
            smtp.ehlo("client.example.org")
            for name, message in SAMPLES.items():
                # smtplib sends the LF-ended samples with CRLF line ends, dot-stuffed
                smtp.sendmail(f"{name}@lists.example", ["reader@example.net"], message)
    finally:
        if daemon is not None:
            stop_daemon(daemon)
        dns.stop()
    try:
        yield (work / "mainlog").read_text()
    finally:
        shutil.rmtree(work, ignore_errors=True)


@pytest.mark.parametrize("case", list(SAMPLES))
def test_arc_state_in_the_log(case: str, mainlog: str) -> None:
    m = re.search(
        rf"ARCCASE {re.escape(case)}@lists\.example state=(\S*) reason=<([^>]*)> domains=<([^>]*)> "
        r"oldest=(\S*)",
        mainlog,
    )
    assert m is not None, mainlog
    assert m.groups() == ARC[case], mainlog


@pytest.mark.parametrize("case", list(SAMPLES))
def test_arrival_lines(case: str, mainlog: str) -> None:
    """Every sample is accepted (a failed chain only informs); the <= line says ARC after a chain that
    passed and names the first DKIM signer that passed."""
    lines = [line for line in mainlog.splitlines() if f"<= {case}@lists.example " in line]
    assert len(lines) == 1, mainlog
    line = lines[0] + " "
    assert (" ARC " in line) == (ARC[case][0] == "pass"), line
    passed = [signer for signer, _, _, status, _ in DKIM[case] if status == "pass"]
    if passed:
        assert f" DKIM={passed[0]} " in line, line
    else:
        assert " DKIM=" not in line, line


@pytest.mark.parametrize("case", list(SAMPLES))
def test_dkim_verdicts_in_the_log(case: str, mainlog: str) -> None:
    assert _dkim_verdicts(mainlog)[case] == DKIM[case], mainlog


def test_dkim_results_match_exim(mainlog: str) -> None:
    """The real Exim 4.96, asked with the same DKIM ACL over the same zones (-bh in a private network
    namespace whose resolv.conf points at the tests' DNS server), gives the same verdicts as pyxim."""
    from tests.integration.test_dnsdb_exim import EXIM, ROOT, _can_use_namespaces, _workdir

    if not _can_use_namespaces():
        pytest.skip("needs root, unshare, ip and exim4")
    work = _workdir()
    try:
        resolv = work / "resolv.conf"
        resolv.write_text("nameserver 127.0.0.1\n")
        os.chmod(resolv, 0o644)
        conf = work / "exim.conf"
        conf.write_text(
            CONF.replace("WORK", str(work)).replace("dns_nameservers = DNS\n", "") + ACLS + "  accept\n"
        )
        os.chmod(conf, 0o644)
        zones = " ".join(f"--zone {zone}" for zone in ZONES)
        script = (
            f"ip link set lo up && mount --bind {resolv} /etc/resolv.conf && "
            f"exec {sys.executable} -m tests.support.dnsserver {zones} --port 53 -- {EXIM} -C {conf} "
            "-bh 198.51.100.9"
        )
        exim_log = ""
        for name, message in SAMPLES.items():
            wire = message.replace(b"\n", b"\r\n").replace(b"\r\n.", b"\r\n..")
            session = (
                b"EHLO client.example.org\r\n"
                + f"MAIL FROM:<{name}@lists.example>\r\n".encode()
                + b"RCPT TO:<reader@example.net>\r\nDATA\r\n"
                + wire
                + b".\r\nQUIT\r\n"
            )
            run = subprocess.run(
                ["unshare", "--mount", "--net", "--", "sh", "-c", script],
                input=session,
                capture_output=True,
                cwd=ROOT,
                timeout=120,
            )
            output = (run.stdout + run.stderr).decode(errors="replace")
            assert f"SIGNERS {name}@lists.example" in output, output
            exim_log += "\n".join(line for line in output.splitlines() if line.startswith("LOG: ")) + "\n"
    finally:
        shutil.rmtree(work, ignore_errors=True)
    exim = _dkim_verdicts(exim_log)
    assert exim == _dkim_verdicts(mainlog), exim_log
    assert exim == DKIM, exim_log
    # the "DKIM: d=… [failed key import]" lines verification itself writes, message ids aside
    assert _dkim_lines(mainlog) == ["DKIM: d=arm.com s=selector1 [failed key import]"] * 2, mainlog
    assert _dkim_lines(exim_log) == _dkim_lines(mainlog), (exim_log, mainlog)
    for name in SAMPLES:  # $dkim_signers in the DATA ACL too
        ours = re.search(rf"SIGNERS {re.escape(name)}@lists\.example <([^>]*)>", mainlog)
        theirs = re.search(rf"SIGNERS {re.escape(name)}@lists\.example <([^>]*)>", exim_log)
        assert ours is not None and theirs is not None, (mainlog, exim_log)
        assert ours.group(1) == theirs.group(1), name


def test_dkimpy_agrees_on_the_samples() -> None:
    """An independent implementation (dkimpy) over the same keys: the fixtures are byte-exact copies."""
    import dkim
    import dns.zone

    keys: dict[bytes, bytes] = {}
    for path in ZONES:
        zone = dns.zone.from_file(str(path), origin=path.name[: -len(".zone")], relativize=False)
        for name, rdataset in zone.iterate_rdatasets("TXT"):
            keys[name.to_text().encode()] = b"".join(rdataset[0].strings)

    def txt(name: bytes, timeout: int = 5) -> bytes | None:
        return keys.get(name)

    def wire(message: bytes) -> bytes:
        # dkimpy 1.1 finds an ARC-Message-Signature by " i=" and misses "ARC-Message-Signature:i=3" (as
        # the kernel.org sealer writes it); one space after the colon changes no canonical form ARC uses
        return message.replace(b"\n", b"\r\n").replace(
            b"ARC-Message-Signature:i=", b"ARC-Message-Signature: i="
        )

    assert dkim.arc_verify(wire(SAMPLES["s004"]), dnsfunc=txt)[0] == dkim.CV_Pass
    assert dkim.arc_verify(wire(SAMPLES["s005"]), dnsfunc=txt)[0] == dkim.CV_Pass
    # a chain whose newest seal says cv=fail has ended (dkimpy: None) and does not pass
    assert dkim.arc_verify(wire(SAMPLES["s006"]), dnsfunc=txt)[0] is None
    assert dkim.arc_verify(wire(SAMPLES["s005-body"]), dnsfunc=txt)[0] == dkim.CV_Fail
    assert dkim.verify(wire(SAMPLES["s004"]), dnsfunc=txt)
    assert not dkim.verify(wire(SAMPLES["s004-body"]), dnsfunc=txt)

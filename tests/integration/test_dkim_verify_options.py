"""DKIM verification options (dkim_verify_hashes, dkim_verify_keytypes, dkim_verify_min_keysizes,
dkim_verify_minimal), hostile signatures and the dkim_verbose log lines, compared with exim4 4.96 (in a
private network namespace asking the tests' DNS server). The messages are signed here with pyxim's own
signer and the keys of tests/fixtures/dkim/ (public halves in tests/fixtures/zones/dkim.test.zone)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pyxim.transports.dkim_sign import _Key, _signature
from tests.integration.test_dnsdb_exim import EXIM, ROOT, _can_use_namespaces, _workdir
from tests.support.dnsserver import DnsServer

KEYS = Path(__file__).resolve().parents[1] / "fixtures" / "dkim"

MESSAGE = (
    b"From: a@dkim.test\r\nTo: x@y.example\r\nSubject: verify test\r\n"
    b"Message-ID: <v@dkim.test>\r\n\r\nbody line\r\n"
)


def _key(name: str) -> _Key:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key = load_pem_private_key((KEYS / f"{name}.key").read_bytes(), None)
    return _Key("ed25519" if name == "ed25519" else "rsa", key)


def sign(
    selector: str,
    key: str,
    hash_name: str = "sha256",
    message: bytes = MESSAGE,
    domain: str = "dkim.test",
    headers: str = "From:To:Subject",
) -> bytes:
    return (
        _signature(message, domain, selector, _key(key), hash_name, "relaxed/relaxed", headers, None, None)
        + message
    )


def _replace_sig(message: bytes, old: bytes, new: bytes) -> bytes:
    head, _, body = message.partition(b"\r\n\r\n")
    assert old in head, old
    return head.replace(old, new, 1) + b"\r\n\r\n" + body


def cases() -> dict[str, bytes]:
    good = sign("r2048", "rsa2048")
    return {
        "rsa2048": good,
        "rsa1024": sign("r1024", "rsa1024"),
        "rsa512": sign("r512", "rsa512"),
        "sha1": sign("r2048", "rsa2048", "sha1"),
        "sha512": sign("r2048", "rsa2048", "sha512"),
        "ed25519": sign("ed", "ed25519"),
        "revoked": sign("revoked", "rsa2048"),
        "badtype": sign("badtype", "rsa2048"),
        "garbage": sign("garbage", "rsa2048"),
        "notder": sign("badder", "rsa2048"),
        "notdkim": sign("notdkim", "rsa2048"),
        "nokey": sign("absent", "rsa2048"),
        "wrongkey": sign("r1024", "rsa2048"),
        "alg-md5": _replace_sig(good, b"a=rsa-sha256", b"a=rsa-md5"),
        "version2": _replace_sig(good, b"v=1;", b"v=2;"),
        "canon-bad": _replace_sig(good, b"c=relaxed/relaxed", b"c=weird/relaxed"),
        "no-b": re.sub(rb"b=[A-Za-z0-9+/=\r\n\t]+\r\n(?=From)", b"\r\n", good, count=1),
        "no-d": _replace_sig(good, b"d=dkim.test;", b""),
        "bh-garbage": re.sub(rb"bh=[^;]+;", b"bh=!!!;", good, count=1),
        "length-too-long": _replace_sig(good, b" h=", b" l=99999; h="),
        "h-without-from": _replace_sig(good, b"h=Subject:To:From", b"h=Subject:To"),
        "injected-header": good.replace(
            b"Subject: verify test", b"Subject: verify test\r\nSubject: injected"
        ),
        "huge-header": _replace_sig(good, b" h=", b" z=" + b"A" * 60000 + b"; h="),
        "tag-soup": b"DKIM-Signature: ;;;=;==;v;a=;\r\n" + MESSAGE,
    }


def conf(work: Path, name: str, options: str) -> Path:
    path = work / name
    path.write_text(
        f"primary_hostname = mail.example.org\nspool_directory = {work}/spool\n"
        f"log_file_path = {work}/%slog\n{options}"
        "acl_smtp_rcpt = accept\nacl_smtp_dkim = dkim\nacl_smtp_data = accept\n"
        "begin acl\ndkim:\n  warn  logwrite = VERIFY $dkim_cur_signer:$dkim_algo:$dkim_key_length "
        "$dkim_verify_status <$dkim_verify_reason>\n  accept\n"
    )
    os.chmod(path, 0o644)
    return path


def session(messages: list[bytes]) -> bytes:
    out = b"EHLO client.dkim.test\r\n"
    for message in messages:
        out += (
            b"MAIL FROM:<a@dkim.test>\r\nRCPT TO:<b@x.example>\r\nDATA\r\n"
            + message.replace(b"\r\n.", b"\r\n..")
            + b".\r\n"
        )
    return out + b"QUIT\r\n"


def log_lines(output: bytes) -> list[str]:
    lines = []
    for line in output.decode(errors="replace").split("\n"):
        if line.startswith("LOG: ") and ("VERIFY" in line or "DKIM" in line):
            lines.append(re.sub(r"[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2} ", "", line[5:]))
    return lines


def run_exim(work: Path, config: Path, messages: list[bytes]) -> list[str]:
    resolv = work / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.1\n")
    os.chmod(resolv, 0o644)
    script = (
        f"ip link set lo up && mount --bind {resolv} /etc/resolv.conf && "
        f"exec {sys.executable} -m tests.support.dnsserver --port 53 -- {EXIM} -C {config} -bh 198.51.100.9"
    )
    proc = subprocess.run(
        ["unshare", "--mount", "--net", "--", "sh", "-c", script],
        input=session(messages),
        capture_output=True,
        cwd=ROOT,
        timeout=120,
    )
    return log_lines(proc.stdout + proc.stderr)


def run_pyxim(config: Path, messages: list[bytes]) -> list[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "pyxim", "-C", str(config), "-bh", "198.51.100.9"],
        input=session(messages),
        capture_output=True,
        cwd=ROOT,
        timeout=120,
    )
    assert b"Traceback" not in proc.stderr, proc.stderr.decode(errors="replace")
    return log_lines(proc.stdout + proc.stderr)


CONFIGS = {
    "defaults": "",
    "restricted": "dkim_verify_hashes = sha256\ndkim_verify_keytypes = rsa\n"
    "dkim_verify_min_keysizes = rsa=2048 ed25519=250\n",
    "minimal-verbose": "dkim_verify_minimal = true\nlog_selector = +dkim_verbose\n",
}


def double_signed() -> bytes:
    """Two good signatures (ed25519 over rsa, as RFC 8463 suggests), for dkim_verify_minimal."""
    rsa = sign("r2048", "rsa2048")
    return (
        _signature(
            rsa,
            "dkim.test",
            "ed",
            _key("ed25519"),
            "sha256",
            "relaxed/relaxed",
            "From:To:Subject",
            None,
            None,
        )
        + rsa
    )


@pytest.mark.skipif(not _can_use_namespaces(), reason="needs root, unshare, ip and exim4")
@pytest.mark.parametrize("config", list(CONFIGS))
def test_outcomes_and_log_lines_match_exim(dns_server: DnsServer, config: str) -> None:
    """Status, reason, key length and log lines for good, weak, disallowed and hostile signatures."""
    messages = list(cases().values()) + [double_signed()]
    work = _workdir()
    try:
        exim = run_exim(work, conf(work, "exim.conf", CONFIGS[config]), messages)
        mine = run_pyxim(
            conf(work, "pyxim.conf", CONFIGS[config] + f"dns_nameservers = {dns_server.option}\n"), messages
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    assert exim and mine == exim


def test_hostile_signatures_never_break_the_session(dns_server: DnsServer, tmp_path: Path) -> None:
    """Absurd and broken signatures give a verdict (or are ignored, as Exim ignores them); never a traceback."""
    good = sign("r2048", "rsa2048")
    hostile = [
        b"DKIM-Signature: " + b"a=rsa-sha256; d=dkim.test; " * 5000 + b"\r\n" + MESSAGE,  # duplicate tags
        b"DKIM-Signature: v=1; a=rsa-sha256; d=dkim.test; s=r2048; h=From; bh=; b="
        + b"A" * 200000
        + b"\r\n"
        + MESSAGE,
        _replace_sig(good, b"s=r2048", b"s=" + b"x" * 300),  # a key name DNS cannot carry
        _replace_sig(good, b"s=r2048", b"s=..bad..name"),
        _replace_sig(good, b" h=", b" l=-5; h="),
        _replace_sig(good, b" h=", b" l=not-a-number; h="),
        _replace_sig(good, b"h=Subject:To:From", b"h=" + b":".join([b"Subject"] * 5000)),
        _replace_sig(good, b"d=dkim.test", "d=dkím.test".encode()),
        b"DKIM-Signature: v=1; a=ed25519-sha256; d=dkim.test; s=r2048; h=From; bh=AAAA; b=AAAA\r\n" + MESSAGE,
        b"DKIM-Signature: v=1; a=rsa-sha256; d=dkim.test; s=ed; h=From; bh=AAAA; b=AAAA\r\n" + MESSAGE,
    ]
    config = conf(tmp_path, "pyxim.conf", f"dns_nameservers = {dns_server.option}\n")
    lines = run_pyxim(config, hostile)
    verdicts = [line for line in lines if line.startswith("VERIFY")]
    assert all(re.search(r" (fail|invalid|none) <", v) for v in verdicts), verdicts

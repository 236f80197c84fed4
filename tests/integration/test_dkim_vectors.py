"""DKIM against published test vectors and other signers' messages.

- RFC 8463 Appendix A (tests/fixtures/rfc8463/): the example message signed with ed25519-sha256 and
  rsa-sha256, its keys published in a zone of the tests' own DNS server; both signatures must pass
  through a real SMTP session with a pyxim daemon on loopback ($dkim_verify_status in the DKIM ACL and
  DKIM= on the <= line), and pyxim's signer, given the RFC's keys, reproduces the RFC's bh= and b=
  (Ed25519 and RSA PKCS#1 v1.5 are deterministic).
- RFC 6376 publishes no private key for its examples, so it gives no signing vector; its example
  message is the one RFC 8463 Appendix A signs (above), and dkimpy's signatures of it are below.
- Messages signed by other signers (tests/fixtures/dkimpy/): a message signed by the prototype Exim
  ed25519 code and the RFC 6376 example as dkimpy signed it during the RFC 8463 drafts; each passes as
  published, and a one-byte change fails with Exim's reason.
"""

from __future__ import annotations

import base64
import re
import shutil
import smtplib
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyxim.transports.dkim_sign import _Key, _signature, sign_headers_with
from tests.support.dnsserver import DnsServer, free_port

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
RFC8463 = FIXTURES / "rfc8463"
DKIMPY = FIXTURES / "dkimpy"

SIGNED = (RFC8463 / "signed.eml").read_bytes()
ED25519_B = "/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQUdt9OdqQehSwhEIug4D11BusFa3bT3FY5OsU7ZbnKELq+eXdp1Q1Dw=="
RSA_B = (
    "F45dVWDfMbQDGHJFlXUNB2HKfbCeLRyhDXgFpEL8GwpsRe0IeIixNTe3DhCVlUrSjV4BwcVcOF6+FF3Zo9Rpo1tFOeS9mPYQTnGdaSGs"
    "geefOsk2JzdA+L10TeYt9BgDfQNZtKdN1WO//KgIqXP7OdEFE4LjFYNcUxZQ4FADY+8="
)
RFC_BH = "2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8="
RFC_H = ["from", "to", "subject", "date", "message-id", "from", "subject", "date"]

CONF = """\
primary_hostname = mx.example.net
qualify_domain = example.net
spool_directory = WORK/spool
log_file_path = WORK/%slog
dns_nameservers = DNS
queue_only
acl_smtp_rcpt = accept
acl_smtp_dkim = dkim
begin acl
dkim:
  warn  logwrite = CASE $sender_address signer=$dkim_cur_signer s=$dkim_selector a=$dkim_algo \\
                   status=$dkim_verify_status reason=$dkim_verify_reason
  accept
"""


def _rfc_keys() -> dict[str, _Key]:
    from cryptography.hazmat.primitives.asymmetric import ed25519
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    seed = base64.b64decode((RFC8463 / "ed25519.key").read_text().strip())
    return {
        "ed25519": _Key("ed25519", ed25519.Ed25519PrivateKey.from_private_bytes(seed)),
        "rsa": _Key("rsa", load_pem_private_key((RFC8463 / "rsa.key").read_bytes(), None)),
    }


def _unsigned(message: bytes) -> bytes:
    """The message without its DKIM-Signature fields."""
    return re.sub(rb"(?m)^DKIM-Signature:.*\r\n(?:[ \t].*\r\n)*", b"", message)


def _tags(message: bytes) -> list[dict[str, str]]:
    from dkim.util import parse_tag_value

    out = []
    for match in re.finditer(rb"(?m)^DKIM-Signature:(.*\r\n(?:[ \t].*\r\n)*)", message):
        tags = parse_tag_value(re.sub(rb"\s+", b"", match.group(1)))
        out.append({k.decode(): v.decode() for k, v in tags.items()})
    return out


def _one_byte(message: bytes, old: bytes, new: bytes) -> bytes:
    assert len(old) == len(new) and message.count(old) == 1, old
    return message.replace(old, new)


CASES: dict[str, tuple[bytes, list[tuple[str, str, str, str]]]] = {
    # sender local part → (message, expected (selector, algo, status, reason) per signature, in the order
    # Exim 4.96 checks them: ed25519 before rsa, as dkim_verify_keytypes lists them)
    "rfc8463": (
        SIGNED,
        [("brisbane", "ed25519-sha256", "pass", ""), ("test", "rsa-sha256", "pass", "")],
    ),
    "rfc8463-body": (
        _one_byte(SIGNED, b"hungry", b"hungrx"),
        [
            ("brisbane", "ed25519-sha256", "fail", "bodyhash_mismatch"),
            ("test", "rsa-sha256", "fail", "bodyhash_mismatch"),
        ],
    ),
    "rfc8463-header": (
        _one_byte(SIGNED, b"Is dinner", b"Is dinnex"),
        [
            ("brisbane", "ed25519-sha256", "fail", "signature_incorrect"),
            ("test", "rsa-sha256", "fail", "signature_incorrect"),
        ],
    ),
    "exim-proto": (
        (DKIMPY / "exim-prototype-ed25519.eml").read_bytes(),
        [("sed", "ed25519-sha256", "pass", "")],
    ),
    "exim-proto-body": (
        _one_byte((DKIMPY / "exim-prototype-ed25519.eml").read_bytes(), b"content", b"contenT"),
        [("sed", "ed25519-sha256", "fail", "bodyhash_mismatch")],
    ),
    "exim-proto-header": (
        _one_byte((DKIMPY / "exim-prototype-ed25519.eml").read_bytes(), b"nobody@", b"nobodx@"),
        [("sed", "ed25519-sha256", "fail", "signature_incorrect")],
    ),
    "dkimpy-draft": (
        (DKIMPY / "rfc6376-draft8463-signed.eml").read_bytes(),
        [("brisbane", "ed25519-sha256", "pass", ""), ("test", "rsa-sha256", "pass", "")],
    ),
    "dkimpy-draft-header": (
        # simple header canonicalization: one more space is already a change
        _one_byte((DKIMPY / "rfc6376-draft8463-signed.eml").read_bytes(), b"Suzie Q", b"Suzie_Q"),
        [
            ("brisbane", "ed25519-sha256", "fail", "signature_incorrect"),
            ("test", "rsa-sha256", "fail", "signature_incorrect"),
        ],
    ),
}


@pytest.fixture(scope="module")
def received() -> Iterator[tuple[dict[str, list[tuple[str, str, str, str]]], str]]:
    """Every case sent to a pyxim daemon on loopback in its own SMTP transaction; the DKIM ACL's verdicts
    per case, and the main log."""
    from tests.integration.test_daemon import stop_daemon
    from tests.support.servers import start_pyxim_daemon

    work = Path(tempfile.mkdtemp(prefix="pyxim-dkimvec-"))
    dns = DnsServer(zone_files=[RFC8463 / "football.example.com.zone", DKIMPY / "test.ex.zone"]).start()
    daemon = None
    try:
        conf = work / "recv.conf"
        conf.write_text(CONF.replace("WORK", str(work)).replace("DNS", dns.option))
        port = free_port()
        daemon = start_pyxim_daemon(conf, port)
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
            smtp.ehlo("client.example.org")
            for name, (message, _) in CASES.items():
                smtp.sendmail(f"{name}@sender.example", ["suzie@example.net"], message)
    finally:
        if daemon is not None:
            stop_daemon(daemon)
        dns.stop()
    try:
        log = (work / "mainlog").read_text()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    verdicts: dict[str, list[tuple[str, str, str, str]]] = {}
    for m in re.finditer(
        r"CASE (\S+)@sender\.example signer=\S* s=(\S*) a=(\S*) status=(\S*) reason=(\S*)", log
    ):
        verdicts.setdefault(m.group(1), []).append((m.group(2), m.group(3), m.group(4), m.group(5)))
    return verdicts, log


@pytest.mark.parametrize("case", list(CASES))
def test_verdicts_over_smtp(case: str, received) -> None:  # type: ignore[no-untyped-def]
    verdicts, log = received
    # the DKIM ACL runs once per signer ($dkim_signers: the domain and the i= identity)
    seen = list(dict.fromkeys(verdicts.get(case, [])))
    assert seen == CASES[case][1], log


def test_dkim_on_the_arrival_line(received) -> None:  # type: ignore[no-untyped-def]
    """DKIM= on the <= line names the first signer that passed, and is absent when none did."""
    _, log = received
    lines = {
        name: line for line in log.splitlines() for name in CASES if f"<= {name}@sender.example " in line
    }
    assert set(lines) == set(CASES), log
    assert " DKIM=football.example.com " in lines["rfc8463"] + " "
    assert " DKIM=test.ex " in lines["exim-proto"] + " "
    assert " DKIM=football.example.com " in lines["dkimpy-draft"] + " "
    for name in (
        "rfc8463-body",
        "rfc8463-header",
        "exim-proto-body",
        "exim-proto-header",
        "dkimpy-draft-header",
    ):
        assert " DKIM=" not in lines[name], lines[name]


def test_signer_reproduces_the_rfc_8463_values() -> None:
    """bh= from pyxim's signer as the transport calls it; b= from its signing step over the RFC's own
    DKIM-Signature field (pyxim writes Exim's tag layout, which the signature covers, so only the RFC's
    field gives the RFC's b=)."""
    import dkim

    keys = _rfc_keys()
    message = _unsigned(SIGNED)
    headers, _ = dkim.rfc822_parse(message)
    policy = dkim.CanonicalizationPolicy.from_c_value(b"relaxed/relaxed")
    fields = {
        t["s"]: m
        for t, m in zip(
            _tags(SIGNED), re.findall(rb"(?m)^DKIM-Signature:.*\r\n(?:[ \t].*\r\n)*", SIGNED), strict=True
        )
    }
    for selector, key, expected in (("brisbane", keys["ed25519"], ED25519_B), ("test", keys["rsa"], RSA_B)):
        ours = _signature(
            message,
            "football.example.com",
            selector,
            key,
            "sha256",
            "relaxed/relaxed",
            "From:To:Subject:Date:Message-ID",
            "@football.example.com",
            None,
        )
        assert _tags(ours)[0]["bh"] == RFC_BH
        assert ours == _signature(  # deterministic: the same input gives the same signature
            message,
            "football.example.com",
            selector,
            key,
            "sha256",
            "relaxed/relaxed",
            "From:To:Subject:Date:Message-ID",
            "@football.example.com",
            None,
        )
        unsigned = re.sub(rb"b=[^;]*$", b"b=", fields[selector].rstrip(b"\r\n"))
        raw = sign_headers_with(headers, policy, RFC_H, unsigned, key, "sha256")
        assert base64.b64encode(raw).decode() == expected, selector


def test_pyxim_signatures_with_the_rfc_keys_verify() -> None:
    """What pyxim's signer writes with the RFC's keys verifies against the RFC's published records."""
    from pyxim.policy import dkim as verifier
    from tests.support.dnsserver import DnsServer as Server

    keys = _rfc_keys()
    message = _unsigned(SIGNED)
    signed = message
    for selector, key in (("brisbane", keys["ed25519"]), ("test", keys["rsa"])):
        signed = (
            _signature(
                signed, "football.example.com", selector, key, "sha256", "relaxed/relaxed", None, None, None
            )
            + signed
        )
    with Server(zone_files=[RFC8463 / "football.example.com.zone"]) as dns:
        from pyxim.dns import Resolver
        from pyxim.expand.context import ExpansionContext

        ctx = ExpansionContext(resolver=Resolver.from_option(dns.option, retrans=1, retry=1))
        results = verifier.verify(ctx, signed)
    assert [(s["dkim_selector"], s["dkim_verify_status"]) for s in results.signatures] == [
        ("brisbane", "pass"),
        ("test", "pass"),
    ]

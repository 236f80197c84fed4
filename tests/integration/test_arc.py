"""ARC in one process: pyxim's verifier and signer against each other and against dkimpy's ARC code
(an independent implementation), over keys published in the tests' own DNS server on loopback.

Broken chains (gaps, duplicates, bad instances, wrong cv=, missing or broken tags, huge lines) must end
as "fail" with Exim's reason, never as an exception."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyxim.expand.context import ExpansionContext
from pyxim.policy.arc import ArcResult, verify_chain, verify_message
from pyxim.transports.arc_sign import _options, _seal, arc_sign, split_message
from tests.support.arc_zone import ADMDS, SELECTOR, ArcZone, start_arc_zone, stop_arc_zone

NOW = 1796229439
MESSAGE = (
    b"From: Alice <alice@origin.example>\nTo: bob@dest.example\nSubject: the plan\n"
    b"Date: Wed, 02 Dec 2026 10:00:00 +0000\nMessage-ID: <plan@origin.example>\n\n"
    b"the body  of the message \n\n"
)


@pytest.fixture(scope="module")
def zone() -> Iterator[ArcZone]:
    zone = start_arc_zone()
    yield zone
    stop_arc_zone(zone)


@pytest.fixture
def ctx(zone: ArcZone) -> ExpansionContext:
    from pyxim.dns import Resolver

    return ExpansionContext(resolver=Resolver.from_option(zone.server.option, retrans=1, retry=1))


def verify(ctx: ExpansionContext, message: bytes) -> ArcResult:
    headers, body = split_message(message)
    return verify_chain(ctx, headers, body)


def relay(
    zone: ArcZone,
    ctx: ExpansionContext,
    message: bytes,
    hops: int,
    first: int = 0,
    change: tuple[bytes, bytes] | None = None,
) -> bytes:
    """What `hops` ADMDs in turn do: verify, add their Authentication-Results, (change,) seal."""
    for admd in ADMDS[first : first + hops]:
        result = verify(ctx, message)
        if change is not None:
            message, change = message.replace(*change), None
        clause = "" if result.state == "none" else f";\n\tarc={result.state} (i={result.received_instance})"
        message = (
            f"Authentication-Results: {admd};\n\tspf=pass smtp.mailfrom=origin.example{clause}\n".encode()
            + message
        )
        log: list[str] = []
        message = _seal(message, admd, SELECTOR, zone.keys[admd], NOW, None, log)
        assert not log
    return message


def dkimpy_state(zone: ArcZone, message: bytes) -> tuple[bytes, str]:
    import dkim

    state, _, reason = dkim.arc_verify(message.replace(b"\n", b"\r\n"), dnsfunc=zone.txt)
    return state, reason


def test_unsigned_message_is_none(ctx: ExpansionContext) -> None:
    result = verify(ctx, MESSAGE)
    assert (result.state, result.reason, result.domains, result.oldest_pass) == ("none", "", "", 0)


@pytest.mark.parametrize("hops", [1, 2, 3])
def test_chains_pyxim_seals_verify_in_pyxim_and_dkimpy(
    zone: ArcZone, ctx: ExpansionContext, hops: int
) -> None:
    message = relay(zone, ctx, MESSAGE, hops)
    result = verify(ctx, message)
    assert result.state == "pass", result.reason
    assert result.domains == ":".join(ADMDS[:hops])
    assert result.oldest_pass == 1 and result.received_instance == hops
    assert dkimpy_state(zone, message) == (b"pass", "success")
    # Exim's header layout: the seal on top, then the message signature, then the copy of the results
    top = [line.split(":", 1)[0] for line in message.decode().split("\n")[:40] if line[:1].isalpha()]
    assert top[:4] == [
        "ARC-Seal",
        "ARC-Message-Signature",
        "ARC-Authentication-Results",
        "Authentication-Results",
    ]
    assert (
        f"ARC-Seal: i={hops}; cv={'none' if hops == 1 else 'pass'}; a=rsa-sha256; d={ADMDS[hops - 1]}; s=s1; "
        f"t={NOW};" in message.decode()
    )
    assert f"ARC-Authentication-Results: i={hops}; {ADMDS[hops - 1]};\n\tspf=pass" in message.decode()


def test_a_modifying_hop_that_reseals_moves_the_oldest_pass(zone: ArcZone, ctx: ExpansionContext) -> None:
    message = relay(zone, ctx, MESSAGE, 1)
    # a mailing list: checks the chain on arrival, tags the subject, seals
    message = relay(
        zone, ctx, message, 2, first=1, change=(b"Subject: the plan", b"Subject: [list] the plan")
    )
    result = verify(ctx, message)
    assert (result.state, result.oldest_pass, result.domains) == ("pass", 2, ":".join(ADMDS))
    assert dkimpy_state(zone, message)[0] == b"pass"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ((b"the body  of", b"the body of"), "AMS body hash miscompare"),
        ((b"Subject: the plan", b"Subject: the plot"), "AMS sig nonverify"),
        ((b"cv=pass", b"cv=none"), "seal cv state"),
        ((b"cv=pass", b"cv=fail"), "i=2 (cv)"),
        ((b"; s=s1;", b"; s=gone;"), "pubkey problem"),
        ((b"; s=s1;", b"; s=bad;"), "pubkey problem"),
        (
            (
                b"ARC-Authentication-Results: i=1; one.arc.test;\n\tspf=pass",
                b"ARC-Authentication-Results: i=1; one.arc.test;\n\tspf=fail",
            ),
            "seal sigverify error",
        ),
    ],
)
def test_tampered_chains_fail_with_exims_reason(
    zone: ArcZone, ctx: ExpansionContext, change: tuple[bytes, bytes], reason: str
) -> None:
    message = relay(zone, ctx, MESSAGE, 2)
    old, new = change
    assert old in message
    tampered = message.replace(old, new, 1)
    result = verify(ctx, tampered)
    assert (result.state, result.reason) == ("fail", reason)
    assert dkimpy_state(zone, tampered)[0] in (b"fail", None)


def _drop_set(message: bytes, instance: int) -> bytes:
    headers, body = split_message(message)
    kept = [
        raw
        for name, raw in headers
        if not (name.lower().startswith("arc-") and re.search(rf"\bi={instance};", raw))
    ]
    return "".join(kept).encode() + b"\n" + body


def _drop_line(message: bytes, prefix: str) -> bytes:
    headers, body = split_message(message)
    return "".join(raw for _, raw in headers if not raw.startswith(prefix)).encode() + b"\n" + body


def _duplicate_line(message: bytes, prefix: str) -> bytes:
    headers, body = split_message(message)
    raw = next(raw for _, raw in headers if raw.startswith(prefix))
    return raw.encode() + message


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda m: _drop_set(m, 2), "i=1 (sequence; expected 2)"),
        (lambda m: _drop_set(m, 1), "(sequence; expected i=1)"),
        (lambda m: _drop_line(m, "ARC-Seal: i=2"), "i=2 (missing header)"),
        (lambda m: _drop_line(m, "ARC-Authentication-Results: i=1"), "i=1 (missing header)"),
        (lambda m: _duplicate_line(m, "ARC-Message-Signature: i=1"), "collecting headers: inserting AMS"),
        (
            lambda m: _duplicate_line(m, "ARC-Authentication-Results: i=2"),
            "collecting headers: inserting AAR",
        ),
        (lambda m: m.replace(b"ARC-Seal: i=3", b"ARC-Seal: i=0"), "collecting headers: inserting AS"),
        (lambda m: m.replace(b"ARC-Seal: i=3", b"ARC-Seal: i=51"), "collecting headers: inserting AS"),
        (lambda m: m.replace(b"ARC-Seal: i=3", b"ARC-Seal: i=three"), "collecting headers: inserting AS"),
        (
            lambda m: m.replace(b"ARC-Seal: i=3; cv=pass", b"ARC-Seal: i=3; cv"),
            "collecting headers: inserting AS",
        ),
        (
            lambda m: m.replace(b"ARC-Seal: i=3; cv=pass", b"ARC-Seal: i=3; cv=pass; cv=pass"),
            "collecting headers: inserting AS",
        ),
        (
            lambda m: re.sub(rb"(ARC-Message-Signature: i=3;[^\n]*\n)\tbh=[^;]*;\n", rb"\1", m),
            "required tag missing",
        ),
        (
            lambda m: m.replace(
                b"ARC-Message-Signature: i=3; a=rsa-sha256", b"ARC-Message-Signature: i=3; a=rsa-md5"
            ),
            "internal hash setup error",
        ),
        (
            lambda m: m.replace(
                b"ARC-Message-Signature: i=3; a=rsa-sha256; c=relaxed",
                b"ARC-Message-Signature: i=3; a=rsa-sha256; c=baroque",
            ),
            "internal hash setup error",
        ),
        (
            lambda m: m.replace(
                b"ARC-Seal: i=3; cv=pass; a=rsa-sha256", b"ARC-Seal: i=3; cv=pass; a=ed25519-sha256"
            ),
            "seal hash setup error",
        ),
    ],
)
def test_broken_chains_fail_with_a_reason(zone: ArcZone, ctx: ExpansionContext, damage, reason: str) -> None:  # type: ignore[no-untyped-def]
    broken = damage(relay(zone, ctx, MESSAGE, 3))
    result = verify(ctx, broken)
    assert (result.state, result.reason) == ("fail", reason)


def test_gaps_show_as_empty_domains(zone: ArcZone, ctx: ExpansionContext) -> None:
    result = verify(ctx, _drop_set(relay(zone, ctx, MESSAGE, 3), 2))
    assert result.domains == "one.arc.test::three.arc.test"


def test_huge_and_hostile_lines_fail_quickly(zone: ArcZone, ctx: ExpansionContext) -> None:
    import time

    chain = relay(zone, ctx, MESSAGE, 1)
    cases = [
        chain.replace(b"ARC-Seal: i=1; cv=none;", b"ARC-Seal: i=1; cv=none; z=" + b"A" * 1_000_000 + b";"),
        chain.replace(b"; s=s1;", b"; s=" + b"x" * 5000 + b";", 1),
        chain.replace(b"h=", b"h=" + b"From:" * 20000, 1),
        b"ARC-Seal: \xff\xfe i=1; \x00\n" + chain,
        b"ARC-Message-Signature: i=1; a=rsa-sha256; b=;;;;; bh=\n" + MESSAGE,
        b"ARC-Seal:\n" + MESSAGE,
    ]
    for message in cases:
        started = time.monotonic()
        result = verify(ctx, message)
        assert result.state == "fail" and result.reason, result
        assert time.monotonic() - started < 5


def test_dkimpy_sealed_chains_verify_in_pyxim(zone: ArcZone, ctx: ExpansionContext) -> None:
    """A chain sealed by dkimpy (its own signer, relaxed/relaxed, different header list) passes here too."""
    dkim = pytest.importorskip("dkim")
    pytest.importorskip("authres")
    message = MESSAGE.replace(b"\n", b"\r\n")
    for number, admd in enumerate(ADMDS[:2]):
        arc = "" if number == 0 else "; arc=pass"
        message = (
            f"Authentication-Results: {admd}; spf=pass smtp.mailfrom=origin.example{arc}\r\n".encode()
            + message
        )
        message = (
            b"".join(
                dkim.arc_sign(
                    message,
                    SELECTOR.encode(),
                    admd.encode(),
                    zone.keys[admd],
                    admd.encode(),
                    include_headers=[b"from", b"to", b"subject"],
                )
            )
            + message
        )
    result = verify(ctx, message.replace(b"\r\n", b"\n"))
    assert (result.state, result.domains, result.oldest_pass) == ("pass", "one.arc.test:two.arc.test", 1)


def test_result_authresults_and_log_tag(zone: ArcZone, ctx: ExpansionContext) -> None:
    """$arc_* and the arc= clause of ${authresults}, worded as Exim's authres_arc, for the current message."""
    from pyxim.expand import expand_string
    from pyxim.expand.message import Message
    from pyxim.policy.arc import receive_log_tag

    message = relay(zone, ctx, MESSAGE, 2)
    ctx.message = Message.from_bytes(message)
    ctx.variables.update({"message_id": "1xYnKZ-0006nO-1k", "sender_host_address": "192.0.2.7"})
    assert expand_string("[$arc_state][$arc_domains][$arc_oldest_pass]", ctx) == "[][][0]"
    assert verify_message(ctx).state == "pass"
    assert (
        expand_string("[$arc_state][$arc_state_reason][$arc_domains][$arc_oldest_pass]", ctx)
        == "[pass][][one.arc.test:two.arc.test][1]"
    )
    assert expand_string("${authresults{mx.example}}", ctx) == (
        "Authentication-Results: mx.example;\n\tarc=pass (i=2) header.s=s1 arc.oldest-pass=1 "
        "smtp.remote-ip=192.0.2.7"
    )
    assert receive_log_tag(ctx) == " ARC"
    # the next message of the session starts with nothing
    ctx.variables["message_id"] = "1xYnKZ-0006nO-2k"
    assert expand_string("[$arc_state][$arc_oldest_pass]", ctx) == "[][0]"
    assert receive_log_tag(ctx) == ""
    ctx.message = Message.from_bytes(message.replace(b"the body  of", b"the body of"))
    assert verify_message(ctx).state == "fail"
    assert expand_string("${authresults{mx.example}}", ctx) == (
        "Authentication-Results: mx.example;\n\tarc=fail (i=2)(AMS body hash miscompare) header.s=s1 "
        "arc.oldest-pass=0 smtp.remote-ip=192.0.2.7"
    )
    ctx.variables["message_id"] = "1xYnKZ-0006nO-3k"
    ctx.message = Message.from_bytes(_drop_line(message, "ARC-Seal: i=2"))
    verify_message(ctx)
    assert expand_string("${authresults{mx.example}}", ctx).endswith("arc=fail (i=2 (missing header))")
    ctx.variables["message_id"] = "1xYnKZ-0006nO-4k"
    ctx.message = Message.from_bytes(MESSAGE)
    verify_message(ctx)
    assert expand_string("${authresults{mx.example}}", ctx).endswith(";\n\tarc=none")


# -- the signing option ------------------------------------------------------------------------------


def test_sign_options() -> None:
    assert _options("", NOW) == (False, None)
    assert _options("timestamps", NOW) == (True, None)
    assert _options("expire", NOW) == (False, NOW + 30 * 86400)
    assert _options("timestamps,expire=+3600", NOW) == (True, NOW + 3600)
    assert _options("expire=+0", NOW) == (False, NOW + 30 * 86400)
    assert _options("expire=1800000000", NOW) == (False, 1800000000)
    assert _options("expire=soon, bogus", NOW) == (False, 0)


def _call(tmp_path: Path, arc_sign_value: str):  # type: ignore[no-untyped-def]
    from pyxim.config import load_config
    from pyxim.delivery import TransportCall
    from pyxim.spool.format import Recipient, SpoolMessage

    conf = tmp_path / "exim.conf"
    conf.write_text(
        "primary_hostname = relay.example\nbegin transports\nt:\n  driver = smtp\n"
        f"  arc_sign = {arc_sign_value}\n"
    )
    config = load_config(str(conf))
    message = SpoolMessage(
        "1xYnKZ-0006nO-1k", "alice@origin.example", [Recipient("bob@dest.example")], [], float(NOW)
    )
    ctx = ExpansionContext(config=config, now=lambda: float(NOW))
    return TransportCall(
        config, config.transports[0], message, b"", "bob@dest.example", "bob@dest.example", ctx
    )


def test_the_transport_option(zone: ArcZone, ctx: ExpansionContext, tmp_path: Path) -> None:
    key = zone.key_files["two.arc.test"]
    message = b"Authentication-Results: two.arc.test; spf=pass smtp.mailfrom=origin.example\n" + MESSAGE
    log: list[str] = []
    signed = arc_sign(
        _call(tmp_path, "${lc:TWO.ARC.TEST} : s1 : " + f"{key} : timestamps,expire=+60"), message, log
    )
    assert not log and verify(ctx, signed).state == "pass"
    assert f"; t={NOW}; x={NOW + 60};\n\tbh=" in signed.decode()
    assert f"cv=none; a=rsa-sha256; d=two.arc.test; s=s1; t={NOW};\n\t b=" in signed.decode()
    assert dkimpy_state(zone, signed)[0] == b"pass"
    # the key may be given as the PEM text itself
    signed = arc_sign(_call(tmp_path, "two.arc.test : s1 : ${readfile{" + str(key) + "}}"), message, log)
    assert not log and verify(ctx, signed).state == "pass" and "; t=" not in signed.decode()
    # no signing: forced failure, empty, unset, a missing element, no Authentication-Results of the ADMD
    for value, line in [
        ("${if eq{a}{b}{x}fail}", None),
        ("", None),
        (" : s1 : /k", "identity"),
        ("two.arc.test : : /k", "selector"),
        ("two.arc.test : s1", "private-key"),
    ]:
        log = []
        assert arc_sign(_call(tmp_path, value), message, log) == message
        assert log == ([f"ARC: bad signing-specification ({line})"] if line else [])
    log = []
    assert arc_sign(_call(tmp_path, f"one.arc.test : s1 : {key}"), message, log) == message
    assert log == ["ARC: no Authentication-Results header for signing"]
    log = []
    assert arc_sign(_call(tmp_path, "two.arc.test : s1 : /nonexistent/key"), message, log) == message
    assert log and log[0].startswith("ARC: failed to read private key file /nonexistent/key")
    # an authserv-id that only starts with the ADMD's is not the ADMD's
    log = []
    other = b"Authentication-Results: two.arc.test.evil; spf=pass\n" + MESSAGE
    assert arc_sign(_call(tmp_path, f"two.arc.test : s1 : {key}"), other, log) == other

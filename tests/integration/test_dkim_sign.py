"""DKIM signing options on the smtp transport, checked by two independent verifiers: exim4 4.96 (in a
private network namespace asking the tests' DNS server, as in test_dkim_exim) and OpenDKIM (opendkim -t);
and messages signed by OpenDKIM and by dkimpy verify in pyxim.

The keys are in tests/fixtures/dkim/, their public halves in tests/fixtures/zones/dkim.test.zone.
One pyxim -odi run delivers one message through a transport per variant to a pyxim daemon; what the
daemon spooled is what the verifiers see."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyxim.transports.dkim_sign import header_names
from tests.integration.test_dnsdb_exim import EXIM, ROOT, _can_use_namespaces, _workdir
from tests.support.dnsserver import DnsServer, free_port

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
KEYS = FIXTURES / "dkim"
# OpenDKIM as the second, independent implementation. Debian 12's opendkim-testmsg (2.11.0~beta2) fails
# every input with "dkim_chunk(): Syntax error", so the filter's own test mode (opendkim -t file) is used:
# it verifies, or signs, a message file and prints the header it would add.
OPENDKIM = shutil.which("opendkim") or (shutil.which("opendkim", path="/usr/sbin:/sbin"))
needs_namespace = pytest.mark.skipif(not _can_use_namespaces(), reason="needs root, unshare, ip and exim4")

MESSAGE = (
    b"From: a@dkim.test\nTo: x@y.example\nTo: z@y.example\nSubject: signing test\n"
    b"Message-ID: <sign@dkim.test>\nDate: Wed, 02 Dec 2026 10:00:00 +0000\n\nbody line\n\n\n"
)

# transport name -> (its DKIM options, the signer:algorithm pairs a verifier must pass)
VARIANTS: dict[str, tuple[str, list[str]]] = {
    "rsa": ("dkim_selector = r2048\n  dkim_private_key = KEYS/rsa2048.key\n", ["dkim.test:rsa-sha256"]),
    "simple": (
        "dkim_selector = r1024\n  dkim_private_key = KEYS/rsa1024.key\n  dkim_canon = simple\n",
        ["dkim.test:rsa-sha256"],
    ),
    "sha1": (
        "dkim_selector = r2048\n  dkim_private_key = KEYS/rsa2048.key\n  dkim_hash = sha1\n",
        ["dkim.test:rsa-sha1"],
    ),
    "ed25519": ("dkim_selector = ed\n  dkim_private_key = KEYS/ed25519.key\n", ["dkim.test:ed25519-sha256"]),
    "oversign": (
        "dkim_selector = r2048\n  dkim_private_key = KEYS/rsa2048.key\n"
        "  dkim_sign_headers = =To:+From:Subject:+Cc:Reply-To\n  dkim_timestamps = 1209600\n"
        "  dkim_identity = signer@dkim.test\n",
        ["dkim.test:rsa-sha256", "signer@dkim.test:rsa-sha256"],
    ),
    # one signature per (domain, selector) pair that has a key: the others expand to "" (no signature)
    "multi": (
        "dkim_domain = dkim.test : example.test\n  dkim_selector = r2048 : ed : sel\n"
        "  dkim_private_key = ${if eq{$dkim_domain/$dkim_selector}{example.test/sel}{FIXTURES/dkim-test.key}"
        "{${if eq{$dkim_domain}{dkim.test}{${if eq{$dkim_selector}{sel}{}{KEYS/${if eq{$dkim_selector}{ed}"
        "{ed25519}{rsa2048}}.key}}}{}}}}\n",
        ["dkim.test:rsa-sha256", "dkim.test:ed25519-sha256", "example.test:rsa-sha256"],
    ),
}

SENDER = """\
primary_hostname = send.example
qualify_domain = dkim.test
spool_directory = ROOT/sspool
log_file_path = ROOT/s%slog
begin routers
out:
  driver = manualroute
  route_list = * 127.0.0.1::PORT
  self = send
  transport = $local_part
begin transports
"""


def _transport(name: str, options: str) -> str:
    domain = "" if "dkim_domain" in options else "  dkim_domain = dkim.test\n"
    return f"{name}:\n  driver = smtp\n  allow_localhost\n  hosts_avoid_tls = *\n{domain}  {options}".replace(
        "KEYS", str(KEYS)
    ).replace("FIXTURES", str(FIXTURES))


def _received(spool: Path) -> dict[str, bytes]:
    """Each message the receiving daemon spooled, as it arrived, keyed by its recipient's local part."""
    from pyxim.spool.format import SpoolMessage

    out = {}
    for header_file in (spool / "input").rglob("*-H"):
        spooled = SpoolMessage.parse_header_file(header_file.read_bytes())
        body = header_file.with_name(header_file.name[:-2] + "-D").read_bytes().split(b"\n", 1)[1]
        text = "".join(h.text for h in spooled.headers if h.type != "*").encode() + b"\n" + body
        out[
            spooled.recipients[0].address.split("@")[0]
            if "@y.example" in spooled.recipients[0].address
            else spooled.recipients[0].address
        ] = text
    return out


def _deliver(
    work: Path, transports: str, recipients: list[str], name: str = "send"
) -> tuple[dict[str, bytes], str]:
    """Send MESSAGE to each recipient through pyxim (-odi) to a pyxim daemon; what arrived, and the sender's log."""
    from tests.integration.test_daemon import stop_daemon
    from tests.support.servers import start_pyxim_daemon

    port = free_port()
    recv = work / f"{name}-recv.conf"
    recv.write_text(
        f"primary_hostname = recv.example\nspool_directory = {work}/{name}-rspool\n"
        f"log_file_path = {work}/{name}-r%slog\nqueue_only\nacl_smtp_rcpt = accept\n"
    )
    receiver = start_pyxim_daemon(recv, port)
    try:
        conf = work / f"{name}.conf"
        conf.write_text(SENDER.replace("ROOT/", f"{work}/{name}-").replace("PORT", str(port)) + transports)
        # one run per recipient: pyxim batches recipients of one transport into one delivery, and here
        # each must be expanded for its own $domain
        for recipient in recipients:
            subprocess.run(
                [sys.executable, "-m", "pyxim", "-C", str(conf), "-odi", "-f", "a@dkim.test", recipient],
                input=MESSAGE,
                check=True,
                timeout=60,
                capture_output=True,
            )
    finally:
        stop_daemon(receiver)
    log = work / f"{name}-smainlog"
    return _received(work / f"{name}-rspool"), log.read_text() if log.exists() else ""


@pytest.fixture(scope="module")
def signed() -> Iterator[dict[str, bytes]]:
    work = _workdir()
    try:
        transports = "".join(_transport(name, options) for name, (options, _) in VARIANTS.items())
        received, log = _deliver(work, transports, [f"{name}@y.example" for name in VARIANTS])  # noqa: F841
        assert sorted(received) == sorted(VARIANTS), log
        yield received
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _signature_tags(message: bytes) -> list[dict[str, str]]:
    head = message.split(b"\n\n", 1)[0].decode()
    out = []
    for match in re.finditer(r"^DKIM-Signature:(.*(?:\n[ \t].*)*)", head, re.M | re.I):
        value = re.sub(r"\s+", "", match.group(1))
        out.append(dict(tag.split("=", 1) for tag in value.split(";") if "=" in tag))  # noqa: C404
    return out


def test_tags_follow_the_options(signed: dict[str, bytes]) -> None:
    rsa = _signature_tags(signed["rsa"])
    assert len(rsa) == 1 and rsa[0]["a"] == "rsa-sha256" and rsa[0]["c"] == "relaxed/relaxed"
    assert (
        "t" not in rsa[0] and "x" not in rsa[0] and "i" not in rsa[0]
    )  # as Exim: no t=, x=, i= unless asked
    # Exim's default list: present headers bottom up, then the absent ones (signed as absent)
    assert rsa[0]["h"].startswith("Date:Message-ID:Subject:To:From:Sender:Reply-To:Cc:MIME-Version:")
    assert _signature_tags(signed["simple"])[0]["c"] == "simple/simple"
    assert _signature_tags(signed["sha1"])[0]["a"] == "rsa-sha1"
    assert _signature_tags(signed["ed25519"])[0]["a"] == "ed25519-sha256"
    over = _signature_tags(signed["oversign"])[0]
    assert over["h"] == "Subject:To:To:From:From:Cc:Reply-To" and over["i"] == "signer@dkim.test"
    assert int(over["x"]) - int(over["t"]) == 1209600
    multi = [(t["d"], t["s"], t["a"]) for t in _signature_tags(signed["multi"])]
    assert multi == [
        ("dkim.test", "r2048", "rsa-sha256"),
        ("dkim.test", "ed", "ed25519-sha256"),
        ("example.test", "sel", "rsa-sha256"),
    ]


def test_header_names_as_exim_chooses_them() -> None:
    """The h= lists exim4 4.96 wrote for these dkim_sign_headers values over a message with From, two To
    and Subject (seen by running it; Exim uses the message's own spelling for present headers)."""
    headers = [[b"From", b""], [b"To", b""], [b"To", b""], [b"Subject", b""]]
    assert header_names(headers, "From:To:Cc") == ["To", "From", "Cc"]
    assert header_names(headers, "=From:=To:=Cc") == ["To", "To", "From"]
    assert header_names(headers, "+From:+To:+Cc") == ["To", "To", "From", "From", "To", "Cc"]
    assert header_names(headers, "From:From:To:+Cc:=Subject") == ["Subject", "To", "From", "From", "Cc"]


VERIFY_ACL = """\
acl_smtp_rcpt = accept
acl_smtp_dkim = dkim
acl_smtp_data = accept
dkim_verify_hashes = sha1 : sha256 : sha512
begin acl
dkim:
  warn  logwrite = VERIFY $dkim_cur_signer:$dkim_algo $dkim_verify_status <$dkim_verify_reason>
  accept
"""


def _smtp_session(messages: list[bytes]) -> bytes:
    out = b"EHLO client.dkim.test\r\n"
    for message in messages:
        wire = message.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n").replace(b"\r\n.", b"\r\n..")
        out += b"MAIL FROM:<a@dkim.test>\r\nRCPT TO:<b@x.example>\r\nDATA\r\n" + wire + b".\r\n"
    return out + b"QUIT\r\n"


def _verdicts(output: str) -> list[str]:
    return [
        line.split("VERIFY ", 1)[1]
        for line in output.split("\n")
        if line.startswith("LOG: ") and " VERIFY " in line
    ]


# OpenDKIM resolves through libunbound, which never queries a loopback address: in the namespace the
# DNS server listens on this one (and Exim's resolv.conf names it)
NS_ADDRESS = "10.53.0.1"


def _in_namespace(work: Path, command: str, stdin: bytes) -> subprocess.CompletedProcess[bytes]:
    """`command` run with the tests' zones served on port 53 of a private network namespace."""
    resolv = work / "resolv.conf"
    resolv.write_text(f"nameserver {NS_ADDRESS}\n")
    os.chmod(resolv, 0o644)
    script = (
        f"ip link set lo up && ip addr add {NS_ADDRESS}/32 dev lo && mount --bind {resolv} /etc/resolv.conf"
        f" && exec {sys.executable} -m tests.support.dnsserver --host {NS_ADDRESS} --port 53 -- sh -c '{command}'"
    )
    return subprocess.run(
        ["unshare", "--mount", "--net", "--", "sh", "-c", script],
        input=stdin,
        capture_output=True,
        cwd=ROOT,
        timeout=120,
    )


@needs_namespace
def test_exim_verifies_every_variant(signed: dict[str, bytes]) -> None:
    work = _workdir()
    try:
        conf = work / "exim.conf"
        conf.write_text(
            f"primary_hostname = mail.example.org\nspool_directory = {work}/spool\n"
            f"log_file_path = {work}/%slog\n" + VERIFY_ACL
        )
        os.chmod(conf, 0o644)
        names = list(VARIANTS)
        proc = _in_namespace(
            work, f"{EXIM} -C {conf} -bh 198.51.100.9", _smtp_session([signed[n] for n in names])
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    seen = _verdicts((proc.stdout + proc.stderr).decode(errors="replace"))
    expected = [f"{signer} pass <>" for name in names for signer in VARIANTS[name][1]]
    # the multi-signature message lists its signers in Exim's order: check as sets per message
    assert sorted(seen) == sorted(expected), seen


def _opendkim_keys(path: Path) -> Path:
    """The zones' DKIM key records in the file OpenDKIM's TestPublicKeys reads ("name record" lines): its
    resolver (libunbound) will not ask a DNS server on a loopback address, so the keys come this way."""
    import dns.zone

    lines = []
    for origin in ("dkim.test", "example.test"):
        zone = dns.zone.from_file(str(FIXTURES / "zones" / f"{origin}.zone"), origin=origin, relativize=False)
        for name, rdataset in zone.iterate_rdatasets("TXT"):
            if "._domainkey." in name.to_text():
                lines += [f"{name.to_text(True)} {b''.join(r.strings).decode()}" for r in rdataset]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.skipif(OPENDKIM is None, reason="needs opendkim (Debian's opendkim package)")
def test_opendkim_verifies_pyxim_signatures(signed: dict[str, bytes], tmp_path: Path) -> None:
    conf = tmp_path / "opendkim.conf"
    conf.write_text(f"Mode v\nSyslog no\nTestPublicKeys {_opendkim_keys(tmp_path / 'keys')}\n")
    for name, (_, signers) in VARIANTS.items():
        path = tmp_path / f"{name}.eml"
        path.write_bytes(signed[name].replace(b"\n", b"\r\n"))
        proc = subprocess.run(
            [OPENDKIM or "opendkim", "-x", str(conf), "-vvv", "-t", str(path)],
            capture_output=True,
            timeout=30,
        )
        out = (proc.stdout + proc.stderr).decode(errors="replace")
        verdicts = sorted(re.findall(r"dkim=(\w+)[^;]*?header\.d=([\w.]+) [^;]*?header\.a=([\w-]+)", out))
        wanted = sorted({("pass", s.split(":")[0].split("@")[-1], s.split(":")[1]) for s in signers})
        assert verdicts == wanted, (name, out)


def _opendkim_sign(work: Path, message: bytes) -> bytes:
    """`message` signed by OpenDKIM (r1024 of dkim.test, relaxed/simple): its header put on top."""
    conf = work / "opendkim-sign.conf"
    conf.write_text(
        f"Mode s\nSyslog no\nDomain dkim.test\nSelector r1024\nKeyFile {KEYS / 'rsa1024.key'}\n"
        "Canonicalization relaxed/simple\nRequireSafeKeys false\n"
    )
    path = work / "to-sign.eml"
    path.write_bytes(message)
    proc = subprocess.run(
        [OPENDKIM or "opendkim", "-x", str(conf), "-vvv", "-t", str(path)], capture_output=True, timeout=30
    )
    found = re.search(r"hname='DKIM-Signature' hvalue='([^']*)'", (proc.stdout + proc.stderr).decode())
    assert found, proc.stderr
    return b"DKIM-Signature: " + found.group(1).replace("\n", "\r\n").encode() + b"\r\n" + message


def test_pyxim_verifies_other_signers(dns_server: DnsServer, tmp_path: Path) -> None:
    """Messages signed by dkimpy (rsa, ed25519) and by OpenDKIM verify as pass in pyxim's DKIM ACL."""
    import dkim

    wire = MESSAGE.replace(b"\n", b"\r\n")
    ed_seed = _ed25519_seed(KEYS / "ed25519.key")
    messages = [
        dkim.sign(
            wire,
            b"r2048",
            b"dkim.test",
            (KEYS / "rsa2048.key").read_bytes(),
            include_headers=[b"from", b"to", b"subject"],
        )
        + wire
    ]
    expected = ["dkim.test:rsa-sha256 pass <>"]
    if importlib.util.find_spec("nacl"):  # dkimpy signs ed25519 only with PyNaCl installed
        messages.append(
            dkim.sign(
                wire,
                b"ed",
                b"dkim.test",
                ed_seed,
                signature_algorithm=b"ed25519-sha256",
                include_headers=[b"from", b"to", b"subject"],
            )
            + wire
        )
        expected.append("dkim.test:ed25519-sha256 pass <>")
    if OPENDKIM:
        messages.append(_opendkim_sign(tmp_path, wire))
        expected.append("dkim.test:rsa-sha256 pass <>")
    conf = tmp_path / "v.conf"
    conf.write_text(
        f"primary_hostname = mail.example.org\nspool_directory = {tmp_path}/spool\n"
        f"log_file_path = {tmp_path}/%slog\ndns_nameservers = {dns_server.option}\n" + VERIFY_ACL
    )
    proc = subprocess.run(
        [sys.executable, "-m", "pyxim", "-C", str(conf), "-bh", "198.51.100.9"],
        input=_smtp_session(messages),
        capture_output=True,
        timeout=60,
    )
    seen = _verdicts((proc.stdout + proc.stderr).decode(errors="replace"))
    # dkimpy's signatures carry i=@dkim.test, which is a signer of its own ($dkim_signers), as in Exim
    assert [v for v in seen if not v.startswith("@")] == expected, seen


def _ed25519_seed(path: Path) -> bytes:
    import base64

    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(path.read_bytes(), None)
    raw = key.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,  # type: ignore[union-attr]
        serialization.NoEncryption(),
    )
    return base64.b64encode(raw)


STRICT = """\
bad:
  driver = smtp
  allow_localhost
  hosts_avoid_tls = *
  dkim_domain = dkim.test
  dkim_selector = r2048
  dkim_private_key = ${if eq{$domain}{nofile.example}{/nonexistent/dkim.key}{KEYS/ed25519.pub}}
  dkim_strict = ${if eq{$domain}{strict.example}{true}{false}}
  multi_domain = false
"""


def test_strict_defers_and_lax_sends_unsigned(tmp_path: Path) -> None:
    """Exim's log lines (seen from exim4 4.96): an unreadable key file is "unable to open file for reading",
    a key that is not one is "DKIM: signing failed: PRIVKEY"; without dkim_strict the message goes out
    unsigned, with it the delivery is deferred (errno 13, EACCES, as Exim sets it)."""
    tmp_path.chmod(0o755)
    (tmp_path / "ed25519.pub").write_text("not a key\n")
    transports = STRICT.replace("KEYS", str(tmp_path))
    received, log = _deliver(
        tmp_path, transports, ["bad@nofile.example", "bad@other.example", "bad@strict.example"]
    )
    assert sorted(received) == ["bad@nofile.example", "bad@other.example"]
    assert "unable to open file for reading: /nonexistent/dkim.key" in log
    assert "DKIM: signing failed: PRIVKEY" in log
    assert "DKIM: message could not be signed, and dkim_strict is set. Deferring message delivery." in log
    assert re.search(r"== bad@strict\.example R=out T=bad defer \(13\): Permission denied", log), log
    assert re.search(r"=> bad@nofile\.example R=out T=bad", log) and re.search(r"=> bad@other\.example", log)
    assert all(b"DKIM-Signature" not in m for m in received.values())

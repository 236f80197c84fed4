"""ARC chains built by real pyxim daemons relaying to each other over loopback.

Three relays, one per ADMD (one/two/three.arc.test), each a daemon on an ephemeral loopback port whose
DATA ACL does `verify = arc/none:pass` and adds its Authentication-Results with ${authresults}, and whose
smtp transport seals with arc_sign; a final daemon verifies and writes $arc_state, $arc_state_reason,
$arc_domains and $arc_oldest_pass into a header. The recipient's local part picks the path:

    hops1            relay1 → final
    hops2            relay1 → relay2 → final
    hops3            relay1 → relay2 → relay3 → final
    listlike         relay1 → relay2 (tags the subject, then seals) → relay3 → final
    tamperbody       relay1 → relay2 (changes the body, does not seal) → final
    tamperheader     relay1 → relay2 (changes the subject, does not seal) → final

relay1 also DKIM-signs, so its ARC set must sit above its DKIM-Signature and cover it. Keys live in
the tests' own DNS server (tests/support/arc_zone.py); the final message is checked with dkimpy too.
"""

from __future__ import annotations

import shutil
import smtplib
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_daemon import stop_daemon
from tests.support.arc_zone import ArcZone, start_arc_zone, stop_arc_zone
from tests.support.dnsserver import free_port
from tests.support.servers import start_pyxim_daemon

COMMON = """\
primary_hostname = {name}.arc.test
qualify_domain = arc.test
spool_directory = {root}/{name}/spool
log_file_path = {root}/{name}/%slog
pid_file_path = {root}/{name}/pyxim.pid
dns_nameservers = {dns}
tls_advertise_hosts =
acl_smtp_rcpt = accept
acl_smtp_data = data
"""

RELAY_ACL = """\
begin acl
data:
  require verify = arc/none:pass
          log_message = ARC chain refused: $arc_state ($arc_state_reason)
  warn    add_header = ${{authresults{{{admd}}}}}
  accept
"""

FINAL = (
    COMMON
    + """\
queue_only
begin acl
data:
  warn    verify = arc/none:pass:fail
  warn    add_header = X-ARC-Check: state=$arc_state reason=<$arc_state_reason> \\
                       domains=<$arc_domains> oldest=$arc_oldest_pass
  warn    add_header = ${{authresults{{final.arc.test}}}}
  warn    logwrite = arc-check $h_subject: $arc_state <$arc_state_reason>
  accept
"""
)

SEAL = """\
  driver = smtp
  allow_localhost
  hosts_try_chunking =
  arc_sign = {admd} : s1 : {key}{options}
"""


def _router(name: str, port: int, transport: str, local_parts: str = "") -> str:
    only = f"  local_parts = {local_parts}\n" if local_parts else ""
    return (
        f"{name}:\n  driver = manualroute\n{only}  route_list = * 127.0.0.1::{port}\n  self = send\n"
        f"  transport = {transport}\n"
    )


def _relay(name: str, admd: str, routers: str, transports: str, zone: ArcZone, root: Path) -> str:
    return (
        COMMON.format(name=name, root=root, dns=zone.server.option)
        + RELAY_ACL.format(admd=admd)
        + "begin routers\n"
        + routers
        + "begin transports\n"
        + transports
    )


@pytest.fixture(scope="module")
def network() -> Iterator[tuple[ArcZone, Path, int]]:
    zone = start_arc_zone()
    root = Path(tempfile.mkdtemp(prefix="pyxim-arc-relay-"))
    root.chmod(0o755)
    ports = {name: free_port() for name in ("relay1", "relay2", "relay3", "final")}
    keys = {admd: zone.key_files[admd] for admd in zone.key_files}
    one, two, three = "one.arc.test", "two.arc.test", "three.arc.test"
    confs = {
        "final": FINAL.format(name="final", root=root, dns=zone.server.option),
        "relay1": _relay(
            "relay1",
            one,
            _router("direct", ports["final"], "seal", "hops1") + _router("onward", ports["relay2"], "seal"),
            "seal:\n"
            + SEAL.format(admd=one, key=keys[one], options="")
            + f"  dkim_domain = {one}\n  dkim_selector = s1\n  dkim_private_key = {keys[one]}\n",
            zone,
            root,
        ),
        "relay2": _relay(
            "relay2",
            two,
            _router("body", ports["final"], "filter", "tamperbody")
            + _router("header", ports["final"], "retitle", "tamperheader")
            + _router("list", ports["relay3"], "listseal", "listlike")
            + _router("direct", ports["final"], "seal", "hops2")
            + _router("onward", ports["relay3"], "seal"),
            "seal:\n"
            + SEAL.format(admd=two, key=keys[two], options=" : timestamps,expire=+3600")
            + "listseal:\n"
            + SEAL.format(admd=two, key=keys[two], options="")
            + "  headers_remove = Subject\n  headers_add = Subject: [list] $h_subject:\n"
            + "filter:\n  driver = smtp\n  allow_localhost\n  transport_filter = /bin/sed s/signed/SIGNED/\n"
            + "retitle:\n  driver = smtp\n  allow_localhost\n  headers_remove = Subject\n"
            + "  headers_add = Subject: changed on the way\n",
            zone,
            root,
        ),
        "relay3": _relay(
            "relay3",
            three,
            _router("onward", ports["final"], "seal"),
            "seal:\n" + SEAL.format(admd=three, key=keys[three], options=""),
            zone,
            root,
        ),
    }
    procs = []
    try:
        for name in ("final", "relay3", "relay2", "relay1"):
            (root / name).mkdir()
            conf = root / name / "exim.conf"
            conf.write_text(confs[name])
            procs.append(start_pyxim_daemon(conf, ports[name]))
        yield zone, root, ports["relay1"]
    finally:
        for proc in procs:
            stop_daemon(proc)
        shutil.rmtree(root, ignore_errors=True)
        stop_arc_zone(zone)


def _send(port: int, local_part: str) -> None:
    message = (
        f"From: alice@origin.example\r\nTo: {local_part}@dest.example\r\nSubject: {local_part}\r\n"
        f"Message-ID: <{local_part}@origin.example>\r\n\r\nthe signed body\r\n"
    )
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as smtp:
        smtp.sendmail("alice@origin.example", [f"{local_part}@dest.example"], message.encode())


def _arrived(root: Path, local_parts: list[str], timeout: float = 30) -> dict[str, bytes]:
    """The messages the final daemon spooled, by the local part they were sent to (as received)."""
    from pyxim.spool.format import SpoolMessage

    found: dict[str, bytes] = {}
    deadline = time.time() + timeout
    while time.time() < deadline and len(found) < len(local_parts):
        for header_file in (root / "final" / "spool" / "input").rglob("*-H"):
            try:
                spooled = SpoolMessage.parse_header_file(header_file.read_bytes())
                body = header_file.with_name(header_file.name[:-2] + "-D").read_bytes().split(b"\n", 1)[1]
            except (OSError, IndexError, ValueError):
                continue  # still being written
            to = spooled.recipients[0].address.split("@")[0]
            found[to] = "".join(h.text for h in spooled.headers if h.type != "*").encode() + b"\n" + body
        time.sleep(0.2)
    missing = set(local_parts) - set(found)
    assert not missing, f"never arrived: {missing}\n" + "\n".join(
        (root / name / "mainlog").read_text() if (root / name / "mainlog").exists() else ""
        for name in ("relay1", "relay2", "relay3", "final")
    )
    return found


def _check(message: bytes) -> str:
    text = message.decode()
    start = text.index("X-ARC-Check: ")
    return text[start + 13 :].split("\n", 1)[0].strip()


def test_chains_built_by_relaying_daemons(network: tuple[ArcZone, Path, int]) -> None:
    import dkim

    zone, root, port = network
    parts = ["hops1", "hops2", "hops3", "listlike", "tamperbody", "tamperheader"]
    for local_part in parts:
        _send(port, local_part)
    got = _arrived(root, parts)
    checks = {part: " ".join(_check(got[part]).split()) for part in parts}
    assert checks["hops1"] == "state=pass reason=<> domains=<one.arc.test> oldest=1"
    assert checks["hops2"] == "state=pass reason=<> domains=<one.arc.test:two.arc.test> oldest=1"
    assert (
        checks["hops3"] == "state=pass reason=<> domains=<one.arc.test:two.arc.test:three.arc.test> oldest=1"
    )
    assert (
        checks["listlike"]
        == "state=pass reason=<> domains=<one.arc.test:two.arc.test:three.arc.test> oldest=2"
    )
    assert (
        checks["tamperbody"] == "state=fail reason=<AMS body hash miscompare> domains=<one.arc.test> oldest=0"
    )
    assert checks["tamperheader"] == "state=fail reason=<AMS sig nonverify> domains=<one.arc.test> oldest=0"

    # dkimpy, independently, agrees on what the daemons built
    for part in ("hops1", "hops2", "hops3", "listlike"):
        state, _, reason = dkim.arc_verify(got[part].replace(b"\n", b"\r\n"), dnsfunc=zone.txt)
        assert state == b"pass", (part, reason)
    assert dkim.arc_verify(got["tamperbody"].replace(b"\n", b"\r\n"), dnsfunc=zone.txt)[0] == b"fail"

    # relay1 sealed over its own DKIM signature: the ARC set on top, DKIM-Signature named in h=
    one = got["hops1"].decode()
    assert (
        one.index("ARC-Seal: i=1; cv=none;")
        < one.index("ARC-Message-Signature: i=1;")
        < one.index("ARC-Authentication-Results: i=1; one.arc.test;")
        < one.index("DKIM-Signature:")
    )
    ams = one[one.index("ARC-Message-Signature: i=1;") :].replace("\n\t  ", "")
    # h= names the headers bottom-up, so the DKIM-Signature above them all comes last
    assert ams.split("\n\th=", 1)[1].split(";", 1)[0] == "Message-ID:Subject:To:From:DKIM-Signature"
    assert "ARC-Authentication-Results: i=1; one.arc.test;\n\tarc=none\n" in one
    # relay2's seal had timestamps and an expiry an hour on; relay3 saw a chain that passed
    three = got["hops3"].decode()
    stamp = next(line for line in three.split("\n") if line.startswith("ARC-Message-Signature: i=2;"))
    t, x = int(stamp.split("t=")[1].split(";")[0]), int(stamp.split("x=")[1].split(";")[0])
    assert x - t == 3600 and abs(t - time.time()) < 300
    assert "ARC-Seal: i=3; cv=pass;" in three
    dkim_clause = "dkim=pass header.d=one.arc.test header.s=s1 header.a=rsa-sha256"
    assert (
        f"ARC-Authentication-Results: i=3; three.arc.test;\n\t{dkim_clause};\n\tarc=pass (i=2) header.s=s1 "
        "arc.oldest-pass=1 smtp.remote-ip=127.0.0.1\n" in three
    )
    # the final hop's ${authresults}: Exim's arc= clause, after the dkim one
    assert (
        f"Authentication-Results: final.arc.test;\n\t{dkim_clause};\n\tarc=pass (i=3) header.s=s1 "
        "arc.oldest-pass=1 smtp.remote-ip=127.0.0.1\n" in three
    )
    assert (
        ";\n\tarc=fail (i=1)(AMS body hash miscompare) header.s=s1 arc.oldest-pass=0 smtp.remote-ip=127.0.0.1\n"
        in got["tamperbody"].decode()
    )

    # the <= lines: tagged ARC after a chain that passed, and only then
    mainlog = (root / "final" / "mainlog").read_text()
    received = {line.split(" for ")[0]: line for line in mainlog.splitlines() if " <= " in line}
    tagged = [line for line in received.values() if " ARC" in line.split(" S=")[1]]
    assert len(received) == 6 and len(tagged) == 4, mainlog
    assert "arc-check tamperbody fail <AMS body hash miscompare>" in mainlog, mainlog
    # the relays saw no chain (relay1) or a passing one, and refused nothing
    for name in ("relay1", "relay2", "relay3"):
        assert "refused" not in (root / name / "mainlog").read_text()

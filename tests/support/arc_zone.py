"""Keys and a DNS zone of their own for the ARC tests: arc.test, with one RSA key per ADMD
(one.arc.test, two.arc.test, three.arc.test; selector "s1"), served by the tests' DNS server on loopback.

The keys are made afresh for each test run, so no private key lives in the repository.
"""

from __future__ import annotations

import base64
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.dnsserver import DnsServer

ADMDS = ("one.arc.test", "two.arc.test", "three.arc.test")
SELECTOR = "s1"


@dataclass
class ArcZone:
    server: DnsServer
    directory: Path
    keys: dict[str, bytes] = field(default_factory=dict)  # ADMD → PEM private key
    key_files: dict[str, Path] = field(default_factory=dict)

    def txt(self, name: bytes, timeout: int = 5) -> bytes | None:
        """A dnsfunc for dkimpy that asks the zone's own server (never the system resolver)."""
        import dns.message
        import dns.query
        import dns.rdatatype

        query = dns.message.make_query(name.decode().rstrip("."), "TXT")
        reply = dns.query.udp(query, "127.0.0.1", port=self.server.port, timeout=timeout)
        for rrset in reply.answer:
            if rrset.rdtype == dns.rdatatype.TXT:
                return b"".join(next(iter(rrset)).strings)
        return None


def _txt_strings(record: str) -> str:
    return " ".join(f'"{record[i : i + 200]}"' for i in range(0, len(record), 200))


def start_arc_zone() -> ArcZone:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    directory = Path(tempfile.mkdtemp(prefix="pyxim-arc-"))
    lines = [
        "$TTL 300",
        "@ IN SOA ns.arc.test. hostmaster.arc.test. 1 3600 600 86400 300",
        "@ IN NS ns.arc.test.",
    ]
    zone = ArcZone(server=None, directory=directory)  # type: ignore[arg-type]
    for admd in ADMDS:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        public = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        zone.keys[admd] = pem
        path = directory / f"{admd}.key"
        path.write_bytes(pem)
        path.chmod(0o644)
        zone.key_files[admd] = path
        record = "v=DKIM1; k=rsa; p=" + base64.b64encode(public).decode()
        lines.append(f"{SELECTOR}._domainkey.{admd.removesuffix('.arc.test')} IN TXT {_txt_strings(record)}")
    lines.append('bad._domainkey.one IN TXT "v=DKIM1; k=rsa; p=notbase64!!"')
    zone_file = directory / "arc.test.zone"
    zone_file.write_text("\n".join(lines) + "\n")
    zone.server = DnsServer(zone_files=[zone_file]).start()
    return zone


def stop_arc_zone(zone: ArcZone) -> None:
    import shutil

    zone.server.stop()
    shutil.rmtree(zone.directory, ignore_errors=True)

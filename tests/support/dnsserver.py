"""A DNS server of the tests' own: serves zone files on loopback, over UDP and TCP.

    with DnsServer() as server:                      # every tests/fixtures/zones/*.zone
        server.port                                  # ephemeral unless port= was given
        server.option                                # "127.0.0.1.<port>", for dns_nameservers
        with server.behaviour(servfail={"broken.example.test"}, silent={"slow.example.test"}):
            ...                                      # SERVFAIL / no answer at all (timeout)

It is built on dnspython's zone and message classes; no DNS software is needed.
It answers authoritatively (AA), gives NXDOMAIN for names it does not know and
NOERROR with no data for names without the asked type, follows CNAMEs inside
the zones it has, and serves `*` wildcards. A UDP answer larger than 512 bytes
(or the client's EDNS buffer size) goes out empty with TC set, so the client
retries over TCP.

Per-name behaviour (a name, or "name/TYPE" for one record type only):
  servfail       answer SERVFAIL
  silent         never answer (the client times out)
  authenticated  set the AD bit, when the query asked for it (DO or AD flag, RFC 6840)
  raw            name -> function(query, tcp) returning the bytes to send (or None),
                 for hostile answers: garbage, wrong ids, lies about lengths.
Zones named in `secure_zones` (default: secure.test) are signed when loaded, so
their answers carry RRSIGs when DO is set, and every name in them is "authenticated".

One thread serves both sockets through a selector; stop() (or leaving the
`with` block) wakes it, joins it and closes every socket.
"""

from __future__ import annotations

import argparse
import selectors
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import dns.dnssec
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.zone

ZONES = Path(__file__).resolve().parent.parent / "fixtures" / "zones"

RawAnswer = Callable[[dns.message.Message, bool], bytes | None]


def _key(text: str) -> str:
    """A behaviour key: "name" or "name/TYPE", the name without final dot, in lower case."""
    name, slash, rdtype = text.partition("/")
    return name.rstrip(".").lower() + (slash + rdtype.upper() if slash else "")


class DnsServer:
    def __init__(
        self,
        zone_files: Iterable[Path] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        secure_zones: Iterable[str] = ("secure.test",),
    ) -> None:
        self.host = host
        self.secure_zones = {_key(z) for z in secure_zones}
        self.zones: list[dns.zone.Zone] = []
        for path in zone_files if zone_files is not None else sorted(ZONES.glob("*.zone")):
            origin = path.name[: -len(".zone")]
            zone = dns.zone.from_file(str(path), origin=origin, relativize=False, check_origin=False)
            if _key(origin) in self.secure_zones:
                _sign(zone)
            self.zones.append(zone)
        self.servfail: set[str] = set()
        self.silent: set[str] = set()
        self.authenticated: set[str] = set()
        self.raw: dict[str, RawAnswer] = {}
        # (name, type, "udp"|"tcp") of every query received, in order
        self.queries: list[tuple[str, str, str]] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._udp, self._tcp = self._bind(host, port)
        self.port: int = self._udp.getsockname()[1]
        self._wake_r, self._wake_w = socket.socketpair()
        self._conns: dict[socket.socket, bytearray] = {}

    @staticmethod
    def _bind(host: str, port: int) -> tuple[socket.socket, socket.socket]:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # UDP and TCP must share the port; an ephemeral UDP port may be busy for TCP, so retry.
        for _ in range(20):
            udp = socket.socket(family, socket.SOCK_DGRAM)
            tcp = socket.socket(family, socket.SOCK_STREAM)
            try:
                udp.bind((host, port))
                tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                tcp.bind((host, udp.getsockname()[1]))
                tcp.listen(16)
            except OSError:
                udp.close()
                tcp.close()
                if port:
                    raise
                continue
            udp.setblocking(False)
            tcp.setblocking(False)
            return udp, tcp
        raise OSError("no port free for both UDP and TCP")

    # -- lifecycle ------------------------------------------------------------

    def start(self) -> DnsServer:
        self._thread = threading.Thread(target=self._serve, name=f"dns-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping = True
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        for sock in (self._udp, self._tcp, self._wake_r, self._wake_w, *self._conns):
            sock.close()
        self._conns.clear()

    def __enter__(self) -> DnsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def option(self) -> str:
        """The value for pyxim's dns_nameservers option."""
        if ":" in self.host:
            return f"<; {self.host}.{self.port}"
        return f"{self.host}.{self.port}"

    @contextmanager
    def behaviour(
        self,
        servfail: Iterable[str] = (),
        silent: Iterable[str] = (),
        authenticated: Iterable[str] = (),
        raw: dict[str, RawAnswer] | None = None,
    ) -> Iterator[DnsServer]:
        """Misbehave for some names inside the `with` block only."""
        added = [
            (self.servfail, {_key(n) for n in servfail} - self.servfail),
            (self.silent, {_key(n) for n in silent} - self.silent),
            (self.authenticated, {_key(n) for n in authenticated} - self.authenticated),
        ]
        raw = {_key(k): v for k, v in (raw or {}).items()}
        for target, names in added:
            target |= names
        self.raw.update(raw)
        try:
            yield self
        finally:
            for target, names in added:
                target -= names
            for k in raw:
                self.raw.pop(k, None)

    # -- the serving thread ---------------------------------------------------

    def _serve(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self._udp, selectors.EVENT_READ, "udp")
        sel.register(self._tcp, selectors.EVENT_READ, "listen")
        sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        try:
            while not self._stopping:
                for key, _ in sel.select(timeout=1.0):
                    if key.data == "udp":
                        self._serve_udp()
                    elif key.data == "listen":
                        self._accept(sel)
                    elif key.data == "tcp":
                        self._serve_tcp(sel, key.fileobj)  # type: ignore[arg-type]
        finally:
            sel.close()

    def _serve_udp(self) -> None:
        try:
            data, peer = self._udp.recvfrom(65535)
        except OSError:
            return
        reply = self._reply(data, tcp=False)
        if reply is not None:
            try:
                self._udp.sendto(reply, peer)
            except OSError:
                pass

    def _accept(self, sel: selectors.BaseSelector) -> None:
        try:
            conn, _ = self._tcp.accept()
        except OSError:
            return
        conn.setblocking(False)
        self._conns[conn] = bytearray()
        sel.register(conn, selectors.EVENT_READ, "tcp")

    def _serve_tcp(self, sel: selectors.BaseSelector, conn: socket.socket) -> None:
        try:
            chunk = conn.recv(65535)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            sel.unregister(conn)
            self._conns.pop(conn, None)
            conn.close()
            return
        buf = self._conns[conn]
        buf += chunk
        while len(buf) >= 2:
            (length,) = struct.unpack("!H", buf[:2])
            if len(buf) < 2 + length:
                break
            data = bytes(buf[2 : 2 + length])
            del buf[: 2 + length]
            reply = self._reply(data, tcp=True)
            if reply is not None:
                conn.setblocking(True)
                conn.settimeout(2)
                try:
                    conn.sendall(struct.pack("!H", len(reply)) + reply)
                except OSError:
                    pass
                conn.setblocking(False)

    # -- answering ------------------------------------------------------------

    def _reply(self, wire: bytes, tcp: bool) -> bytes | None:
        try:
            return self.answer(wire, tcp)
        except Exception:  # noqa: BLE001 — a test server must never die on a query
            return None

    def _behaves(self, table: set[str] | dict[str, RawAnswer], name: str, rdtype: str) -> bool:
        return name in table or f"{name}/{rdtype}" in table

    def answer(self, wire: bytes, tcp: bool) -> bytes | None:
        """The reply to one query in wire format, or None for no reply."""
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return self._formerr(wire)
        if query.flags & dns.flags.QR:
            return None  # a response sent to us: ignore, as servers do
        if query.opcode() != dns.opcode.QUERY or len(query.question) != 1:
            response = dns.message.make_response(query)
            response.set_rcode(dns.rcode.NOTIMP if query.opcode() != dns.opcode.QUERY else dns.rcode.FORMERR)
            return response.to_wire()
        question = query.question[0]
        name = _key(question.name.to_text())
        rdtype = dns.rdatatype.to_text(question.rdtype)
        with self._lock:
            self.queries.append((name, rdtype, "tcp" if tcp else "udp"))
        for key in (f"{name}/{rdtype}", name):
            if key in self.raw:
                return self.raw[key](query, tcp)
        if self._behaves(self.silent, name, rdtype):
            return None
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA | dns.flags.RA
        if self._behaves(self.servfail, name, rdtype):
            response.flags &= ~dns.flags.AA
            response.set_rcode(dns.rcode.SERVFAIL)
            return response.to_wire()
        want_dnssec = bool(query.ednsflags & dns.flags.DO)
        zone = self._fill(response, question.name, question.rdtype, want_dnssec)
        if zone is None:
            response.flags &= ~dns.flags.AA
            response.set_rcode(dns.rcode.REFUSED)
            return response.to_wire()
        secure = _key(zone.origin.to_text()) in self.secure_zones or self._behaves(
            self.authenticated, name, rdtype
        )
        if secure and (want_dnssec or query.flags & dns.flags.AD):
            response.flags |= dns.flags.AD
        limit = 65535 if tcp else (max(512, query.payload) if query.edns >= 0 else 512)
        try:
            return response.to_wire(max_size=limit, want_shuffle=False)
        except dns.exception.TooBig:
            response.answer.clear()
            response.authority.clear()
            response.additional.clear()
            response.flags |= dns.flags.TC
            return response.to_wire()

    @staticmethod
    def _formerr(wire: bytes) -> bytes | None:
        # Enough of a header to reply to? Then FORMERR with the same id, else silence.
        if len(wire) < 12:
            return None
        (qid,) = struct.unpack("!H", wire[:2])
        flags = dns.flags.QR | dns.rcode.FORMERR
        return struct.pack("!HHHHHH", qid, flags, 0, 0, 0, 0)

    def _zone_for(self, name: dns.name.Name) -> dns.zone.Zone | None:
        best = None
        for zone in self.zones:
            if name.is_subdomain(zone.origin) and (best is None or len(zone.origin) > len(best.origin)):
                best = zone
        return best

    def _find_node(self, zone: dns.zone.Zone, name: dns.name.Name):  # type: ignore[no-untyped-def]
        """The node for `name`, a matching wildcard node, or None; and whether the name exists at all."""
        node = zone.get_node(name)
        if node is not None:
            return node, True
        # An empty non-terminal exists (NODATA) even though it has no node of its own.
        if any(n != name and n.is_subdomain(name) for n in zone.nodes):
            return None, True
        parent = name
        while parent != zone.origin and len(parent) > 1:
            parent = parent.parent()
            wild = zone.get_node(dns.name.Name(("*",) + parent.labels))
            if wild is not None:
                return wild, True
            if zone.get_node(parent) is not None:
                break
        return None, False

    def _fill(
        self, response: dns.message.Message, qname: dns.name.Name, rdtype: int, want_dnssec: bool
    ) -> dns.zone.Zone | None:
        """Put the answer for (qname, rdtype) into `response`; return the zone used (None: not ours)."""
        first_zone = zone = self._zone_for(qname)
        if zone is None:
            return None
        name = qname
        for _ in range(8):  # CNAME chain, inside the zones we have
            node, exists = self._find_node(zone, name)
            if node is None:
                # RFC 6604: the rcode speaks of the last name of a CNAME chain.
                response.set_rcode(dns.rcode.NOERROR if exists else dns.rcode.NXDOMAIN)
                self._add_soa(response, zone)
                return first_zone
            sets = [
                rds
                for rds in node.rdatasets
                if rdtype == dns.rdatatype.ANY
                or rds.rdtype == rdtype
                or (want_dnssec and rds.rdtype == dns.rdatatype.RRSIG and rds.covers == rdtype)
            ]
            if not sets or all(s.rdtype == dns.rdatatype.RRSIG for s in sets):
                cname = node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.CNAME)
                if cname is None or rdtype == dns.rdatatype.CNAME:
                    self._add_soa(response, zone)
                    return first_zone
                response.answer.append(_rrset(name, cname))
                if want_dnssec:
                    sig = node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.RRSIG, dns.rdatatype.CNAME)
                    if sig is not None:
                        response.answer.append(_rrset(name, sig))
                name = cname[0].target
                zone = self._zone_for(name)
                if zone is None:
                    return first_zone
                continue
            for rds in sets:
                if rds.rdtype == dns.rdatatype.RRSIG and not want_dnssec:
                    continue
                response.answer.append(_rrset(name, rds))
            # Name the zone's servers in the authority section, as BIND does: Exim's
            # dns_trust_aa takes the zone name from there.
            ns = zone.get_rdataset(zone.origin, dns.rdatatype.NS)
            if ns is not None and rdtype != dns.rdatatype.NS:
                response.authority.append(_rrset(zone.origin, ns))
            return first_zone
        return first_zone

    @staticmethod
    def _add_soa(response: dns.message.Message, zone: dns.zone.Zone) -> None:
        soa = zone.get_rdataset(zone.origin, dns.rdatatype.SOA)
        if soa is not None:
            response.authority.append(_rrset(zone.origin, soa))


def _rrset(name: dns.name.Name, rdataset) -> dns.rrset.RRset:  # type: ignore[no-untyped-def]
    rrset = dns.rrset.RRset(name, rdataset.rdclass, rdataset.rdtype, rdataset.covers)
    rrset.update(rdataset)
    return rrset


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (for other test servers)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _sign(zone: dns.zone.Zone) -> None:
    """Sign `zone` in place with a fresh key, so its answers can carry RRSIGs."""
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    dnskey = dns.dnssec.make_dnskey(key.public_key(), dns.dnssec.Algorithm.ECDSAP256SHA256, flags=257)
    now = int(time.time())
    with zone.writer() as txn:
        txn.add(zone.origin, 300, dnskey)
        dns.dnssec.sign_zone(
            zone, txn=txn, keys=[(key, dnskey)], inception=now - 3600, lifetime=30 * 86400, add_dnskey=False
        )


# -- command line: serve zones while another program runs ---------------------
#
#   python3 -m tests.support.dnsserver --port 53 --servfail broken.example.test -- exim4 -be
#
# runs the command with the server up and passes stdin/stdout through; the
# interop tests use it inside a private network namespace to give the real
# Exim (which only reads /etc/resolv.conf) our zones.


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dnsserver")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--servfail", action="append", default=[])
    parser.add_argument("--silent", action="append", default=[])
    parser.add_argument("--authenticated", action="append", default=[])
    parser.add_argument("--log", action="store_true", help="list the queries on stderr at the end")
    parser.add_argument("--zone", action="append", default=[], type=Path,
                        help="serve this zone file (repeatable) instead of every tests/fixtures/zones/*.zone")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    with DnsServer(zone_files=args.zone or None, host=args.host, port=args.port) as server:
        server.servfail |= {_key(n) for n in args.servfail}
        server.silent |= {_key(n) for n in args.silent}
        server.authenticated |= {_key(n) for n in args.authenticated}
        if not command:
            print(server.option, flush=True)
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                return 0
        rc = subprocess.run(command, check=False).returncode
        if args.log:
            for name, rdtype, transport in server.queries:
                print(f"dnsserver: {transport} {rdtype} {name}", file=sys.stderr)
        return rc


if __name__ == "__main__":
    sys.exit(main())

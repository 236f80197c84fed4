"""A DNS server of the tests' own: serves zone files on loopback (UDP and TCP).

    with DnsServer([ZONES / "example.test.zone"]) as server:
        server.port  # ephemeral
        server.servfail.add("broken.example.test")
        server.silent.add("slow.example.test")     # never answers: the client times out
        server.authenticated.add("secure.example.test")  # answers carry the AD bit

Built on dnspython's zone and message classes; no DNS software is needed. It
answers authoritatively, gives NXDOMAIN for names it does not know, and sets
TC on UDP answers too large for 512 bytes (or the client's EDNS size) so the
client retries over TCP. Stop it (the context manager does) and its threads
end and its sockets close.
"""

from __future__ import annotations

import socket
import socketserver
import struct
import threading
from pathlib import Path

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.zone

ZONES = Path(__file__).resolve().parent.parent / "fixtures" / "zones"


class DnsServer:
    def __init__(self, zone_files: list[Path] | None = None, host: str = "127.0.0.1") -> None:
        self.zones: list[dns.zone.Zone] = []
        for path in zone_files if zone_files is not None else sorted(ZONES.glob("*.zone")):
            origin = path.name[: -len(".zone")]
            self.zones.append(dns.zone.from_file(str(path), origin=origin, relativize=False, check_origin=False))
        self.servfail: set[str] = set()
        self.silent: set[str] = set()
        self.authenticated: set[str] = set()
        self.queries: list[tuple[str, str]] = []
        self.host = host
        server = self

        class Udp(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                data, sock = self.request
                reply = server.answer(data, tcp=False)
                if reply is not None:
                    sock.sendto(reply, self.client_address)

        class Tcp(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                conn = self.request
                conn.settimeout(5)
                try:
                    while True:
                        head = conn.recv(2)
                        if len(head) < 2:
                            return
                        (length,) = struct.unpack("!H", head)
                        data = b""
                        while len(data) < length:
                            chunk = conn.recv(length - len(data))
                            if not chunk:
                                return
                            data += chunk
                        reply = server.answer(data, tcp=True)
                        if reply is None:
                            return
                        conn.sendall(struct.pack("!H", len(reply)) + reply)
                except OSError:
                    return

        socketserver.UDPServer.allow_reuse_address = True
        self.udp = socketserver.ThreadingUDPServer((host, 0), Udp)
        self.port = self.udp.server_address[1]
        self.tcp = socketserver.ThreadingTCPServer((host, self.port), Tcp, bind_and_activate=False)
        self.tcp.allow_reuse_address = True
        self.tcp.daemon_threads = True
        self.udp.daemon_threads = True
        self.tcp.server_bind()
        self.tcp.server_activate()
        self.threads: list[threading.Thread] = []

    # -- lifecycle ------------------------------------------------------------

    def start(self) -> DnsServer:
        for srv in (self.udp, self.tcp):
            t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
            t.start()
            self.threads.append(t)
        return self

    def stop(self) -> None:
        for srv in (self.udp, self.tcp):
            srv.shutdown()
            srv.server_close()
        for t in self.threads:
            t.join(timeout=5)

    def __enter__(self) -> DnsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def option(self) -> str:
        """The value for pyxim's dns_nameservers option."""
        return f"{self.host}.{self.port}"

    # -- answering ------------------------------------------------------------

    def _zone_for(self, name: dns.name.Name) -> dns.zone.Zone | None:
        best = None
        for zone in self.zones:
            if name.is_subdomain(zone.origin) and (best is None or len(zone.origin) > len(best.origin)):
                best = zone
        return best

    def answer(self, wire: bytes, tcp: bool) -> bytes | None:
        try:
            query = dns.message.from_wire(wire)
        except Exception:  # noqa: BLE001 — garbage in: no answer, as a real server would
            return None
        if not query.question:
            return None
        question = query.question[0]
        qname = question.name
        text = qname.to_text().rstrip(".").lower()
        self.queries.append((text, dns.rdatatype.to_text(question.rdtype)))
        if text in self.silent:
            return None
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if text in self.servfail:
            response.set_rcode(dns.rcode.SERVFAIL)
            return response.to_wire()
        zone = self._zone_for(qname)
        if zone is None:
            response.set_rcode(dns.rcode.REFUSED)
            return response.to_wire()
        node = zone.get_node(qname)
        if node is None:
            response.set_rcode(dns.rcode.NXDOMAIN)
        else:
            rdataset = node.get_rdataset(dns.rdataclass.IN, question.rdtype)
            if rdataset is None and question.rdtype != dns.rdatatype.CNAME:
                cname = node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.CNAME)
                if cname is not None:
                    response.answer.append(self._rrset(qname, cname))
                    target = cname[0].target
                    tnode = zone.get_node(target)
                    if tnode is not None:
                        trd = tnode.get_rdataset(dns.rdataclass.IN, question.rdtype)
                        if trd is not None:
                            response.answer.append(self._rrset(target, trd))
            elif rdataset is not None:
                response.answer.append(self._rrset(qname, rdataset))
        if text in self.authenticated:
            response.flags |= dns.flags.AD
        limit = 65535 if tcp else max(512, query.payload if query.edns >= 0 else 512)
        try:
            return response.to_wire(max_size=limit)
        except dns.exception.TooBig:
            response.answer = []
            response.flags |= dns.flags.TC
            return response.to_wire()

    @staticmethod
    def _rrset(name: dns.name.Name, rdataset) -> dns.rrset.RRset:  # type: ignore[no-untyped-def]
        rrset = dns.rrset.RRset(name, rdataset.rdclass, rdataset.rdtype)
        rrset.update(rdataset)
        rrset.ttl = rdataset.ttl
        return rrset


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

"""PROXY protocol v1 and v2 (HAProxy): the real client behind a load balancer.

When the connecting host matches `hosts_proxy` (old name `proxy_required_hosts`),
the first bytes must be a PROXY header, read within `proxy_protocol_timeout`.
It names the client (source) and the address the client connected to
(destination). $sender_host_address becomes the client's; $proxy_local_* are
the proxy's own connection to pyxim, $proxy_external_* the destination.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from dataclasses import dataclass

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


class ProxyError(Exception):
    pass


@dataclass(slots=True)
class ProxyHeader:
    source: str | None  # None: LOCAL/UNKNOWN (health checks): keep the real peer
    source_port: int
    destination: str | None
    destination_port: int
    length: int  # bytes consumed from the stream


def parse(data: bytes) -> ProxyHeader | None:
    """A complete header at the start of `data`, None if more bytes are needed; ProxyError if malformed."""
    if data.startswith(V2_SIGNATURE[: min(len(data), 12)]) and (len(data) < 12 or data[:12] == V2_SIGNATURE):
        return _parse_v2(data)
    if data.startswith(b"PROXY"[: min(len(data), 5)]):
        return _parse_v1(data)
    raise ProxyError("no PROXY header")


def _parse_v1(data: bytes) -> ProxyHeader | None:
    end = data.find(b"\r\n")
    if end < 0:
        if len(data) > 107:
            raise ProxyError("PROXY v1 header too long")
        return None
    words = data[:end].decode("ascii", "replace").split(" ")
    if len(words) >= 2 and words[0] == "PROXY" and words[1] == "UNKNOWN":
        return ProxyHeader(None, 0, None, 0, end + 2)
    if len(words) != 6 or words[0] != "PROXY" or words[1] not in ("TCP4", "TCP6"):
        raise ProxyError("malformed PROXY v1 header")
    _, family, src, dst, sport, dport = words
    try:
        for address in (src, dst):
            ip = ipaddress.ip_address(address)
            if (ip.version == 4) != (family == "TCP4"):
                raise ValueError
        sp, dp = int(sport), int(dport)
        if not (0 <= sp < 65536 and 0 <= dp < 65536):
            raise ValueError
    except ValueError:
        raise ProxyError("malformed PROXY v1 header") from None
    return ProxyHeader(src, sp, dst, dp, end + 2)


def _parse_v2(data: bytes) -> ProxyHeader | None:
    if len(data) < 16:
        return None
    ver_cmd, fam, length = data[12], data[13], struct.unpack("!H", data[14:16])[0]
    if ver_cmd >> 4 != 2:
        raise ProxyError("unsupported PROXY protocol version")
    total = 16 + length
    if len(data) < total:
        return None
    command = ver_cmd & 0x0F
    if command == 0:  # LOCAL
        return ProxyHeader(None, 0, None, 0, total)
    if command != 1:
        raise ProxyError("unsupported PROXY v2 command")
    body = data[16:total]
    if fam == 0x11 and len(body) >= 12:  # TCP over IPv4
        src, dst = socket.inet_ntop(socket.AF_INET, body[0:4]), socket.inet_ntop(socket.AF_INET, body[4:8])
        sp, dp = struct.unpack("!HH", body[8:12])
    elif fam == 0x21 and len(body) >= 36:  # TCP over IPv6
        src, dst = socket.inet_ntop(socket.AF_INET6, body[0:16]), socket.inet_ntop(socket.AF_INET6, body[16:32])
        sp, dp = struct.unpack("!HH", body[32:36])
    elif fam == 0x00:  # UNSPEC
        return ProxyHeader(None, 0, None, 0, total)
    else:
        raise ProxyError("unsupported PROXY v2 address family")
    return ProxyHeader(src, sp, dst, dp, total)

"""asyncio streams ↔ pyOpenSSL, through memory BIOs.

The session keeps talking to "a reader and a writer"; after STARTTLS they
are TlsReader/TlsWriter, which push ciphertext through the real stream.
"""

from __future__ import annotations

import asyncio

from OpenSSL import SSL


class TlsFailed(Exception):
    pass


class TlsStream:
    def __init__(self, context: SSL.Context, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.conn = SSL.Connection(context, None)
        self.conn.set_accept_state()
        self.reader = reader
        self.writer = writer
        self.sni: str | None = None

    async def _flush(self) -> None:
        while True:
            try:
                data = self.conn.bio_read(65536)
            except SSL.WantReadError:
                break
            if not data:
                break
            self.writer.write(data)
        await self.writer.drain()

    async def handshake(self, timeout: float) -> None:
        async def run() -> None:
            while True:
                try:
                    self.conn.do_handshake()
                    break
                except SSL.WantReadError:
                    await self._flush()
                    data = await self.reader.read(65536)
                    if not data:
                        raise TlsFailed("connection closed during the TLS handshake") from None
                    self.conn.bio_write(data)
                except SSL.Error as exc:
                    await self._flush()
                    raise TlsFailed(f"TLS handshake failed: {exc}") from None
            await self._flush()

        try:
            await asyncio.wait_for(run(), timeout)
        except (TimeoutError, TlsFailed) as exc:
            from pyxim.tls.context import FAILED_VERIFICATION

            FAILED_VERIFICATION.discard(id(self.conn))
            if isinstance(exc, TlsFailed):
                raise
            raise TlsFailed("timed out during the TLS handshake") from None
        name = self.conn.get_servername()
        self.sni = name.decode("ascii", "replace") if name else None

    async def read(self, n: int = 65536) -> bytes:
        while True:
            try:
                return self.conn.recv(n)
            except SSL.WantReadError:
                await self._flush()
                data = await self.reader.read(65536)
                if not data:
                    return b""
                self.conn.bio_write(data)
            except SSL.ZeroReturnError:
                return b""
            except SSL.Error:
                return b""

    async def write(self, data: bytes) -> None:
        self.conn.sendall(data)
        await self._flush()

    def info(self) -> dict[str, str]:
        cipher = self.conn.get_cipher_name() or ""
        version = self.conn.get_protocol_version_name() or ""
        bits = self.conn.get_cipher_bits() or 0
        peer = self.conn.get_peer_certificate()
        peerdn = ""
        verified = "0"
        if peer is not None:
            peerdn = ",".join(
                f"{k.decode()}={v.decode('utf-8', 'replace')}" for k, v in peer.get_subject().get_components()
            )
            from pyxim.tls.context import FAILED_VERIFICATION

            verified = "0" if id(self.conn) in FAILED_VERIFICATION else "1"
        from pyxim.tls.context import FAILED_VERIFICATION

        FAILED_VERIFICATION.discard(id(self.conn))
        return {
            "tls_in_peerdn": peerdn,
            "tls_in_certificate_verified": verified,
            "tls_in_cipher": f"{version}:{cipher}:{bits}",
            "tls_in_cipher_std": self.conn.get_cipher_name() or "",
            "tls_in_ver": version,
            "tls_in_bits": str(bits),
            "tls_in_sni": self.sni or "",
        }

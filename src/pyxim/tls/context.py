"""Server TLS contexts from tls_certificate / tls_privatekey / tls_require_ciphers / tls_dhparam.

Options are expanded per connection (so $tls_in_sni can choose a certificate);
contexts are cached by the expanded values, so the files are read once.
"""

from __future__ import annotations

from functools import lru_cache

from OpenSSL import SSL, crypto

from pyxim.errors import ConfigError


def _on_servername(conn: SSL.Connection) -> None:
    handler = conn.get_app_data()
    name = conn.get_servername()
    if handler is not None and name:
        handler(conn, name.decode("ascii", "replace"))


@lru_cache(maxsize=64)
def server_context(certificate: str, privatekey: str, ciphers: str = "", dhparam: str = "",
                   verify_locations: str = "", verify_mode: str = "none") -> SSL.Context:
    ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
    ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
    ctx.set_options(SSL.OP_NO_COMPRESSION | SSL.OP_CIPHER_SERVER_PREFERENCE)
    try:
        ctx.use_certificate_chain_file(certificate)
        ctx.use_privatekey_file(privatekey or certificate)
        ctx.check_privatekey()
        if ciphers:
            ctx.set_cipher_list(ciphers.encode())
        if dhparam and dhparam not in ("none", "historic"):
            ctx.load_tmp_dh(dhparam.encode())
        if verify_locations and verify_locations != "system":
            ctx.load_verify_locations(verify_locations)
        elif verify_locations == "system":
            ctx.set_default_verify_paths()
    except (SSL.Error, OSError, crypto.Error) as exc:
        raise ConfigError(f"TLS error on connection: cannot set up server context: {exc}") from None
    # SNI: the connection's app data, if set, is called with the name and may switch context
    ctx.set_tlsext_servername_callback(_on_servername)
    if verify_mode != "none":
        mode = SSL.VERIFY_PEER
        if verify_mode == "require":
            mode |= SSL.VERIFY_FAIL_IF_NO_PEER_CERT

        def check(conn: SSL.Connection, cert, errno: int, depth: int, ok: int) -> bool:  # type: ignore[no-untyped-def]
            if not ok:
                FAILED_VERIFICATION.add(id(conn))
            # tls_try_verify_hosts: a bad certificate is noted, not fatal
            return bool(ok) or verify_mode == "try"

        ctx.set_verify(mode, check)
    return ctx


# Connections (by id) whose peer certificate failed verification; the stream
# reads and forgets its own entry once the handshake is over.
FAILED_VERIFICATION: set[int] = set()

"""DKIM signing on the smtp transport (dkim_domain, dkim_selector, dkim_private_key, dkim_canon,
dkim_sign_headers, dkim_identity, dkim_hash, dkim_timestamps), with dkimpy.

As in Exim, the options are expanded for each delivery; a private key that expands to nothing (or "0",
or "false") means no signature; dkim_domain may be a list, giving one signature per domain.
"""

from __future__ import annotations

from pathlib import Path

from pyxim.delivery import TransportCall
from pyxim.errors import ExpansionError, ForcedFail
from pyxim.expand import expand_string

# Exim's default list of headers to sign (its PDKIM_DEFAULT_SIGN_HEADERS), each once
DEFAULT_SIGN_HEADERS = (
    "From:Sender:Reply-To:Subject:Date:Message-ID:To:Cc:MIME-Version:Content-Type:Content-Transfer-Encoding:"
    "Content-ID:Content-Description:Resent-Date:Resent-From:Resent-Sender:Resent-To:Resent-Cc:Resent-Message-ID:"
    "In-Reply-To:References:List-Id:List-Help:List-Unsubscribe:List-Subscribe:List-Post:List-Owner:List-Archive"
)


class DkimSignError(Exception):
    """The signing options could not be used: the delivery is deferred, as Exim defers it."""


def _option(call: TransportCall, name: str) -> str | None:
    value = call.transport.options.get(name)
    if value is None:
        return None
    try:
        return expand_string(str(value), call.ctx)
    except ForcedFail:
        return None
    except ExpansionError as exc:
        raise DkimSignError(f"failed to expand {name}: {exc.message}") from None


def sign(call: TransportCall, data: bytes) -> bytes:
    """The message (LF line ends) with DKIM-Signature headers prepended, when the transport signs."""
    import dkim

    key_text = _option(call, "dkim_private_key")
    if not key_text or key_text.strip() in ("0", "false"):
        return data
    domains = [d.strip() for d in (_option(call, "dkim_domain") or "").split(":") if d.strip()]
    selector = (_option(call, "dkim_selector") or "").strip()
    if not domains or not selector:
        return data
    key_text = key_text.strip()
    key = key_text.encode() if key_text.startswith("-----") else _read_key(key_text)
    canon = (_option(call, "dkim_canon") or "relaxed").strip()
    canonicalize = (canon.encode(), canon.encode()) if "/" not in canon else tuple(
        part.encode() for part in canon.split("/", 1))
    headers_text = _option(call, "dkim_sign_headers") or DEFAULT_SIGN_HEADERS
    wanted = [h.strip().lstrip("=+").lower() for h in headers_text.split(":") if h.strip()]
    wire = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    head = wire.split(b"\r\n\r\n", 1)[0].lower()
    present = [h.encode() for h in wanted if (b"\r\n" + h.encode() + b":") in b"\r\n" + head]
    if b"from" not in present:
        present.insert(0, b"from")  # RFC 6376 requires From in every signature
    identity = _option(call, "dkim_identity")
    algorithm = b"rsa-sha256" if (_option(call, "dkim_hash") or "sha256").strip() == "sha256" else b"rsa-sha1"
    signatures = b""
    for domain in domains:
        try:
            signatures += dkim.sign(
                wire, selector.encode(), domain.encode(), key, identity=identity.encode() if identity else None,
                canonicalize=canonicalize, include_headers=present, signature_algorithm=algorithm,
            )
        except dkim.DKIMException as exc:
            raise DkimSignError(f"DKIM: signing failed: {exc}") from None
    return signatures.replace(b"\r\n", b"\n") + data


def _read_key(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise DkimSignError(f"DKIM: failed to read private key file {path}: {exc.strerror}") from None

"""DKIM signing (RFC 6376, ed25519 per RFC 8463) on the smtp transport, with Exim's options:
dkim_domain and dkim_selector (lists: one signature per domain per selector), dkim_private_key,
dkim_canon, dkim_sign_headers (plain, "=" and "+" names), dkim_identity, dkim_hash (sha1, sha256,
sha512), dkim_timestamps (t= and x=) and dkim_strict.

As in Exim, the options are expanded for each delivery, and dkim_private_key, dkim_hash and
dkim_identity once per signature with $dkim_domain and $dkim_selector set; a private key that expands
to nothing, "0" or "false" means no signature. When a signature cannot be made (unreadable or
unusable key, failed expansion) the message goes out unsigned with a log line saying why, unless
dkim_strict expands to "true" or "1": then the delivery is deferred.

The signature is built here rather than by dkimpy's signer because Exim's tag set differs from
dkimpy's (no i= unless dkim_identity is set, no t= unless dkim_timestamps is set, x=) and because
the h= list follows Exim's rules for "=" and "+"; dkimpy still supplies the canonicalization.
"""

from __future__ import annotations

import base64
import hashlib
import time
from dataclasses import dataclass
from typing import Any

from pyxim.delivery import TransportCall
from pyxim.errors import ExpansionError, ForcedFail
from pyxim.expand import expand_string

# Exim's default list of headers to sign (its PDKIM_DEFAULT_SIGN_HEADERS), each once
DEFAULT_SIGN_HEADERS = (
    "From:Sender:Reply-To:Subject:Date:Message-ID:To:Cc:MIME-Version:Content-Type:Content-Transfer-Encoding:"
    "Content-ID:Content-Description:Resent-Date:Resent-From:Resent-Sender:Resent-To:Resent-Cc:Resent-Message-ID:"
    "In-Reply-To:References:List-Id:List-Help:List-Unsubscribe:List-Subscribe:List-Post:List-Owner:List-Archive"
)

HASHES = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha512": hashlib.sha512}

STRICT_LOG = "DKIM: message could not be signed, and dkim_strict is set. Deferring message delivery."


class DkimSignError(Exception):
    """The message could not be signed and dkim_strict is set: the delivery is deferred (errno 13, as
    Exim's EACCES)."""


class _Unsigned(Exception):
    """One signature could not be made: the message goes unsigned (or deferred, under dkim_strict)."""


@dataclass(slots=True)
class _Key:
    kind: str  # "rsa" or "ed25519"
    key: Any  # a cryptography private key


def _expand(call: TransportCall, name: str, log: list[str], label: str | None = None) -> str | None:
    value = call.transport.options.get(name)
    if value is None:
        return None
    try:
        return expand_string(str(value), call.ctx)
    except ForcedFail:
        return None
    except ExpansionError as exc:
        # Exim's wording, including its singular "dkim_sign_header"
        log.append(f"failed to expand {label or name}: {exc.message}")
        raise _Unsigned from None


def _strict(call: TransportCall) -> bool:
    value = call.transport.options.get("dkim_strict")
    if value is None:
        return False
    try:
        text = expand_string(str(value), call.ctx)
    except (ExpansionError, ForcedFail):
        return False
    return text.strip().lower() in ("1", "true")


def sign(call: TransportCall, data: bytes, log: list[str] | None = None) -> bytes:
    """The message (LF line ends) with DKIM-Signature headers prepended, when the transport signs.

    Lines for the main log are appended to `log`; DkimSignError means defer (dkim_strict)."""
    log = log if log is not None else []
    try:
        return _sign(call, data, log)
    except _Unsigned:
        if _strict(call):
            log.append(STRICT_LOG)
            raise DkimSignError("Permission denied") from None
        return data


def _sign(call: TransportCall, data: bytes, log: list[str]) -> bytes:
    if call.transport.options.get("dkim_private_key") is None:
        return data
    domains = _unique(_list(_expand(call, "dkim_domain", log) or ""))
    selectors = _unique(_list(_expand(call, "dkim_selector", log) or ""))
    if not domains or not selectors:
        return data
    canon = (_expand(call, "dkim_canon", log) or "relaxed").strip() or "relaxed"
    if canon not in (
        "relaxed",
        "simple",
        "relaxed/relaxed",
        "relaxed/simple",
        "simple/simple",
        "simple/relaxed",
    ):
        log.append(f"DKIM: unknown canonicalization method '{canon}', defaulting to 'relaxed'.")
        canon = "relaxed"
    if "/" not in canon:
        canon = f"{canon}/{canon}"
    sign_headers = _expand(call, "dkim_sign_headers", log, "dkim_sign_header")
    timestamps = _expand(call, "dkim_timestamps", log)
    wire = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    signatures: list[bytes] = []
    ctx_vars = call.ctx.variables
    saved = {k: ctx_vars.get(k) for k in ("dkim_domain", "dkim_selector")}
    try:
        for domain in domains:
            for selector in selectors:
                ctx_vars["dkim_domain"], ctx_vars["dkim_selector"] = domain, selector
                key_text = (_expand(call, "dkim_private_key", log) or "").strip()
                if key_text in ("", "0", "false"):
                    continue  # no signature for this pair, and no error
                key = _load_key(key_text, log)
                hash_name = (_expand(call, "dkim_hash", log) or "sha256").strip().lower()
                identity = _expand(call, "dkim_identity", log)
                if hash_name not in HASHES or (key.kind == "ed25519" and hash_name != "sha256"):
                    log.append(f"DKIM: signing failed: unsupported hash '{hash_name}' for {key.kind} key")
                    raise _Unsigned
                signatures.append(
                    _signature(
                        wire,
                        domain,
                        selector,
                        key,
                        hash_name,
                        canon,
                        sign_headers,
                        identity.strip() if identity else None,
                        timestamps,
                    )
                )
    finally:
        for k, v in saved.items():
            if v is None:
                ctx_vars.pop(k, None)
            else:
                ctx_vars[k] = v
    return b"".join(signatures).replace(b"\r\n", b"\n") + data


def _list(text: str) -> list[str]:
    from pyxim.lists import iterate_list

    return [item.strip() for item in iterate_list(text) if item.strip()]


def _unique(items: list[str]) -> list[str]:
    # Exim signs once per distinct domain / selector
    out: list[str] = []
    for item in items:
        if item.lower() not in (o.lower() for o in out):
            out.append(item)
    return out


def _load_key(text: str, log: list[str]) -> _Key:
    """The private key: inline PEM, or a file when the value starts with "/" (as in Exim)."""
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    if text.startswith("/"):
        try:
            with open(text, "rb") as f:
                raw = f.read()
        except OSError:
            log.append(f"unable to open file for reading: {text}")
            raise _Unsigned from None
    else:
        raw = text.encode()
    try:
        key = load_pem_private_key(raw, password=None)
    except (ValueError, TypeError) as exc:
        key = _raw_ed25519(raw)
        if key is None:
            log.append(f"signing_init: privkey PEM-block import: {exc}")
            log.append("DKIM: signing failed: PRIVKEY")
            raise _Unsigned from None
    if isinstance(key, rsa.RSAPrivateKey):
        return _Key("rsa", key)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return _Key("ed25519", key)
    log.append("signing_init: unsupported private key type")
    log.append("DKIM: signing failed: PRIVKEY")
    raise _Unsigned


def _raw_ed25519(raw: bytes) -> Any:
    """An ed25519 key given as the base64 of its 32-byte seed (the form dkimpy's tools write)."""
    from cryptography.hazmat.primitives.asymmetric import ed25519

    try:
        seed = base64.b64decode(b"".join(raw.split()), validate=True)
    except ValueError:
        return None
    return ed25519.Ed25519PrivateKey.from_private_bytes(seed) if len(seed) == 32 else None


def header_names(headers: list[list[bytes]], spec: str | None) -> list[str]:
    """The h= list for `headers` (in message order) under an Exim dkim_sign_headers value.

    Headers are taken from the bottom up. A plain name signs one instance (and, when there is none,
    signs its absence); "=name" signs every instance present; "+name" signs every instance present
    and one more (so an added one breaks the signature)."""
    items: list[tuple[str, str]] = []
    entries = [e.strip() for e in (spec or DEFAULT_SIGN_HEADERS).split(":") if e.strip()]
    if not any(e.lstrip("=+").strip().lower() == "from" for e in entries):
        entries.insert(0, "From")  # RFC 6376 5.4: From is always signed
    for entry in entries:
        entry = entry.strip()
        if entry:
            prefix = entry[0] if entry[0] in "=+" else ""
            items.append((prefix, entry[len(prefix) :].strip()))
    ticked = [False] * len(items)
    names: list[str] = []
    for name_bytes, _ in reversed(headers):
        name = name_bytes.decode("ascii", "replace").strip()
        for i, (prefix, wanted) in enumerate(items):
            if not ticked[i] and wanted.lower() == name.lower():
                names.append(name)
                ticked[i] = prefix == ""
                break
    names += [wanted for i, (prefix, wanted) in enumerate(items) if not ticked[i] and prefix != "="]
    return names


def _fold(tags: list[str]) -> str:
    """Tags joined with "; ", folded before a tag that would pass column 76, b= last and folded."""
    out, line = "", "DKIM-Signature: "
    for tag in tags[:-1]:
        piece = tag + "; "
        if len(line) + len(piece.rstrip()) > 76 and line.strip():
            out += line.rstrip() + "\r\n\t"
            line = ""
        line += piece
    return out + line.rstrip() + "\r\n\t" + tags[-1]


def sign_headers_with(
    headers: list[list[bytes]], policy: Any, names: list[str], unsigned: bytes, key: _Key, hash_name: str
) -> bytes:
    """The raw signature (b= before base64) over `headers` (as dkim.rfc822_parse gives them) for the h=
    list `names` and the signature header `unsigned` ("DKIM-Signature: ...; b=", folded as it will be
    sent). Both algorithms are deterministic (PKCS#1 v1.5, Ed25519), so a published example's b= can be
    reproduced from its key and its signature header (tests/integration/test_dkim_vectors.py)."""
    import dkim

    name, _, value = unsigned.partition(b":")  # the value keeps its leading space (simple canonicalization)
    hasher = HASHES[hash_name]()
    dkim.hash_headers(
        hasher,
        policy,
        policy.canonicalize_headers(headers),
        [n.lower().encode() for n in names],
        [name, value],
        None,
    )
    if key.kind == "ed25519":
        # RFC 8463: Ed25519 signs the SHA-256 hash of the data, not the data itself
        return bytes(key.key.sign(hasher.digest()))
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, utils

    algo = {"sha1": hashes.SHA1(), "sha256": hashes.SHA256(), "sha512": hashes.SHA512()}[hash_name]
    return bytes(key.key.sign(hasher.digest(), padding.PKCS1v15(), utils.Prehashed(algo)))


def _signature(
    wire: bytes,
    domain: str,
    selector: str,
    key: _Key,
    hash_name: str,
    canon: str,
    sign_headers: str | None,
    identity: str | None,
    timestamps: str | None,
) -> bytes:
    import dkim

    headers, body = dkim.rfc822_parse(wire)
    policy = dkim.CanonicalizationPolicy.from_c_value(canon.encode())
    body_hash = base64.b64encode(HASHES[hash_name](policy.canonicalize_body(body)).digest()).decode()
    names = header_names(headers, sign_headers)
    algorithm = f"{key.kind}-{hash_name}"
    tags = ["v=1", f"a={algorithm}", "q=dns/txt", f"c={canon}", f"d={domain}", f"s={selector}"]
    if identity:
        tags.append(f"i={identity}")
    tags.append("h=" + ":".join(names))
    tags.append(f"bh={body_hash}")
    if timestamps is not None and timestamps.strip():
        now = int(time.time())
        try:
            tags += [f"t={now}", f"x={now + int(timestamps.strip())}"]
        except ValueError:
            tags.append(f"t={now}")
    tags.append("b=")
    unsigned = _fold(tags)
    raw_sig = sign_headers_with(headers, policy, names, unsigned.encode(), key, hash_name)
    b64 = base64.b64encode(raw_sig).decode()
    chunks = [b64[i : i + 72] for i in range(0, len(b64), 72)]
    return (unsigned + "\r\n\t".join(chunks) + "\r\n").encode()

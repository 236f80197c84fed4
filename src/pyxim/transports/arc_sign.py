"""ARC signing on the smtp transport: `arc_sign = <admd-id> : <selector> : <private key> [: <options>]`,
as Exim's experimental ARC support does it.

The option is expanded as a whole for each delivery; unset, empty or a forced failure means no ARC
set. The first three elements must be non-empty; the private key is the PEM text itself or, when it
starts with "/", a file holding it. The fourth element is a comma list of `timestamps` (t= on the
ARC-Message-Signature and the ARC-Seal) and `expire[=<val>]` (x= on the ARC-Message-Signature: a
plain number is used as it is, "+N" is N seconds from now, no value is a month from now).

The set is built from the textually first Authentication-Results header whose authserv-id is the
ADMD (Exim takes only that one, see SPEC-NOTES.md): ARC-Authentication-Results copies it behind
i=<n>; the ARC-Message-Signature (rsa-sha256, c=relaxed, i.e. relaxed headers and a simple body)
covers Exim's default header list plus any DKIM-Signature lines; the ARC-Seal's cv= is the arc=
result that header carries ("none" when it has none). The three lines go on top of the message,
above the DKIM signatures, because Exim seals after it has DKIM-signed.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

from pyxim.delivery import TransportCall
from pyxim.errors import ExpansionError, ForcedFail
from pyxim.expand import expand_string

# Exim's PDKIM_DEFAULT_SIGN_HEADERS, with DKIM-Signature first: what an ARC-Message-Signature covers
AMS_HEADERS = (
    "DKIM-Signature",
    "From",
    "Sender",
    "Reply-To",
    "Subject",
    "Date",
    "Message-ID",
    "To",
    "Cc",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "Content-ID",
    "Content-Description",
    "Resent-Date",
    "Resent-From",
    "Resent-Sender",
    "Resent-To",
    "Resent-Cc",
    "Resent-Message-ID",
    "In-Reply-To",
    "References",
    "List-Id",
    "List-Help",
    "List-Unsubscribe",
    "List-Subscribe",
    "List-Post",
    "List-Owner",
    "List-Archive",
)
_AMS_NAMES = {name.lower(): name for name in AMS_HEADERS}
DEFAULT_EXPIRE = 60 * 60 * 24 * 30  # a month, Exim's ARC_SIGN_DEFAULT_EXPIRE_DELTA
_ARC_NAMES = ("arc-authentication-results", "arc-message-signature", "arc-seal")
_INSTANCE = re.compile(r"[\s;]*i\s*=\s*([0-9]{1,9})\s*(?:;|\Z)")


class ArcSignError(Exception):
    """arc_sign could not be expanded: the delivery is deferred."""


def arc_sign(call: TransportCall, data: bytes, log: list[str]) -> bytes:
    """The message (LF line ends, DKIM signatures already on top) with an ARC set prepended, when the
    transport's arc_sign says so. Why a message goes without one is added to `log`."""
    spec = call.transport.options.get("arc_sign")
    if spec is None:
        return data
    try:
        text = expand_string(str(spec), call.ctx)
    except ForcedFail:
        return data
    except ExpansionError as exc:
        raise ArcSignError(f"failed to expand arc_sign: {exc.message}") from None
    if not text.strip():
        return data
    from pyxim.lists import iterate_list

    items = list(iterate_list(text))
    identity, selector, key_text = (items + ["", "", ""])[:3]
    if not identity or not selector or not key_text:
        missing = "identity" if not identity else "selector" if not selector else "private-key"
        log.append(f"ARC: bad signing-specification ({missing})")
        return data
    if key_text.startswith("/"):
        try:
            key_text = Path(key_text).read_text()
        except OSError as exc:
            log.append(f"ARC: failed to read private key file {key_text}: {exc.strerror}")
            return data
    now = int(call.ctx.now())
    timestamps, expire = _options(items[3] if len(items) > 3 else "", now)
    try:
        return _seal(data, identity, selector, key_text.encode(), now if timestamps else None, expire, log)
    except ValueError as exc:  # an unusable key
        log.append(f"ARC: signing: {exc}")
        return data
    except Exception as exc:  # whatever the message holds, it still goes (unsealed) rather than fail
        log.append(f"ARC: signing failed ({type(exc).__name__}: {exc})")
        return data


def _options(text: str, now: int) -> tuple[bool, int | None]:
    """The fourth element: (timestamps wanted, the x= value or None)."""
    timestamps, expire = False, None
    for option in (o.strip() for o in text.split(",")):
        if option == "timestamps":
            timestamps = True
        elif option.startswith("expire"):
            value = option[6:]
            if not value.startswith("="):
                expire = now + DEFAULT_EXPIRE
            elif value[1:2] == "+":
                delta = _leading_number(value[2:])
                expire = now + (delta or DEFAULT_EXPIRE)
            else:
                expire = _leading_number(value[1:])
    return timestamps, expire


def _leading_number(text: str) -> int:
    """C's atol: the leading digits, 0 when there are none."""
    m = re.match(r"\s*([0-9]+)", text)
    return int(m.group(1)) if m else 0


def split_message(data: bytes) -> tuple[list[tuple[str, str]], bytes]:
    """Header lines as (name, raw line with its continuation lines and newline), and the body."""
    text = data.decode("utf-8", "surrogateescape")
    head, sep, body = text.partition("\n\n")
    if not sep:
        head, body = text, ""
    headers: list[tuple[str, str]] = []
    for line in head.split("\n"):
        if line[:1] in (" ", "\t") and headers:
            name, raw = headers[-1]
            headers[-1] = (name, raw + line + "\n")
        elif line:
            headers.append((line.split(":", 1)[0].rstrip(" \t"), line + "\n"))
    return headers, body.encode("utf-8", "surrogateescape")


def find_authentication_results(headers: list[tuple[str, str]], identity: str) -> str | None:
    """What follows the authserv-id (and its ";") in the first Authentication-Results of the ADMD,
    its line end kept; None when there is none with results."""
    for name, raw in headers:
        if name.lower() != "authentication-results":
            continue
        value = raw.split(":", 1)[1].lstrip(" \t\r\n")
        if not value.startswith(identity):
            continue
        rest = value[len(identity) :]
        if rest[:1] not in (";", " ", "\t", "\r", "\n"):
            continue  # a longer authserv-id that merely starts with ours
        rest = rest.removeprefix(";").lstrip(" \t\r\n")
        if rest:
            return rest
    return None


def chain_status(results: str) -> str:
    """The arc= result of an Authentication-Results payload: the new seal's cv= ("none" without one)."""
    for method in results.split(";"):
        method = method.strip()
        if method.startswith("arc="):
            return re.split(r"[ ;\r\n]", method[4:], maxsplit=1)[0]
    return "none"


def _existing_sets(headers: list[tuple[str, str]]) -> dict[int, dict[str, str]]:
    """The ARC lines already on the message, by instance (lines whose i= cannot be read are passed over)."""
    sets: dict[int, dict[str, str]] = {}
    for name, raw in headers:
        kind = name.lower()
        if kind not in _ARC_NAMES:
            continue
        m = _INSTANCE.match(raw.split(":", 1)[1].replace("\n", " "))
        if m is None and kind != "arc-authentication-results":
            m = re.search(
                r"(?:^|;)\s*i\s*=\s*([0-9]{1,9})\s*(?:;|$)", raw.split(":", 1)[1].replace("\n", " ")
            )
        if m is None or not 0 < int(m.group(1)) <= 50:
            continue
        sets.setdefault(int(m.group(1)), {}).setdefault(kind, raw)
    return sets


def _folded_signature(signature: bytes) -> str:
    encoded = base64.b64encode(signature).decode("ascii")
    return "\n\t  ".join(encoded[i : i + 74] for i in range(0, len(encoded), 74))


def _sign(key, data: bytes) -> bytes:  # type: ignore[no-untyped-def]
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    return key.sign(data, padding.PKCS1v15(), hashes.SHA256())  # type: ignore[no-any-return]


def _seal(
    data: bytes,
    identity: str,
    selector: str,
    key_pem: bytes,
    now: int | None,
    expire: int | None,
    log: list[str],
) -> bytes:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from pyxim.policy.arc import body_hash, relaxed_header

    headers, body = split_message(data)
    results = find_authentication_results(headers, identity)
    if results is None:
        log.append("ARC: no Authentication-Results header for signing")
        return data
    existing = _existing_sets(headers)
    instance = max(existing, default=0) + 1
    if instance > 50:
        log.append("ARC: the chain already has 50 sets; no more can be added")
        return data
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"private key not usable ({exc})") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("the private key is not an RSA key (ARC signs with rsa-sha256)")

    aar = f"ARC-Authentication-Results: i={instance}; {identity};\n\t{results}"
    if not aar.endswith("\n"):
        aar += "\n"

    # the ARC-Message-Signature: the listed headers, bottom-up, each occurrence named in h=
    stamp = f"; t={now}" if now is not None else ""
    ams = (
        f"ARC-Message-Signature: i={instance}; a=rsa-sha256; c=relaxed; d={identity}; s={selector}{stamp}"
        + (f"; x={expire}" if expire is not None else "")
        + f";\n\tbh={base64.b64encode(body_hash(body, 'simple', 'sha256', None)).decode()};\n\th="
    )
    covered = b""
    column = 3
    names = []
    for name, raw in reversed(headers):
        listed = _AMS_NAMES.get(name.lower())
        if listed is None:
            continue
        if column + len(listed) > 78:
            names.append("\n\t  ")
            column = 3
        names.append(listed + ":")
        column += len(listed) + 1
        covered += relaxed_header(raw)
    ams += "".join(names).removesuffix(":") + ";\n\tb=;"
    signature = _sign(key, covered + relaxed_header(ams).removesuffix(b"\r\n"))
    ams = ams[:-1] + _folded_signature(signature) + ";\n"

    # the ARC-Seal: every set in order (only the new one when the chain failed), itself without b=
    status = chain_status(results)
    seal = f"ARC-Seal: i={instance}; cv={status}; a=rsa-sha256; d={identity}; s={selector}{stamp};\n\t b=;"
    sealed = b""
    if status != "fail":
        for number in sorted(existing):
            lines = existing[number]
            for kind in _ARC_NAMES:
                if kind in lines:
                    sealed += relaxed_header(lines[kind])
    sealed += relaxed_header(aar) + relaxed_header(ams) + relaxed_header(seal).removesuffix(b"\r\n")
    signature = _sign(key, sealed)
    seal = seal[:-1] + _folded_signature(signature) + ";\n"
    return (seal + ams + aar).encode("utf-8", "surrogateescape") + data

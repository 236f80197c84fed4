"""DKIM verification (RFC 6376; ed25519 per RFC 8463) for the acl_smtp_dkim hook, and the dkim_status /
dkim_signers ACL conditions.

Each DKIM-Signature is checked here, with dkimpy's header parsing and canonicalization and the
cryptography package's RSA and Ed25519; key records come through pyxim's resolver. The results are
worded as Exim 4.96 words them: $dkim_verify_status is pass, fail, invalid or none; $dkim_verify_reason
names why (bodyhash_mismatch, signature_incorrect, pubkey_too_short, pubkey_unavailable,
pubkey_dns_syntax, pubkey_der_syntax). As in Exim, a signature whose hash is not in dkim_verify_hashes,
whose key type is not in dkim_verify_keytypes, with an unknown algorithm or without d= is ignored (it
names no signer); keys shorter than dkim_verify_min_keysizes fail; dkim_verify_minimal stops after the
first pass; log_selector +dkim_verbose logs one line per signature after the DKIM ACL. The session runs
acl_smtp_dkim once per dkim_verify_signers item with these values set
(pyxim.policy.register_dkim_verifier).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pyxim.acl.engine import AclConditionError, acl_condition
from pyxim.errors import LookupDefer
from pyxim.policy import DkimResults

if TYPE_CHECKING:  # pragma: no cover
    from pyxim.acl.engine import AclRun
    from pyxim.expand.context import ExpansionContext

STATUSES = ("none", "invalid", "fail", "pass")
HASHES = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha512": hashlib.sha512}
KEYTYPES = ("rsa", "ed25519")
# A public key record longer than this is not one (Exim's PDKIM_DNS_TXT_MAX_RECLEN is 64k; DNS itself caps it)
MAX_KEY_RECORD = 65535

# the text in brackets of a dkim_verbose line, per (status, reason); Exim's wording
_VERBOSE = {
    ("pass", ""): "verification succeeded",
    (
        "fail",
        "bodyhash_mismatch",
    ): "verification failed - body hash mismatch (body probably modified in transit)",
    (
        "fail",
        "signature_incorrect",
    ): "verification failed - signature did not verify (headers probably modified in transit)",
    ("fail", "pubkey_too_short"): "verification failed - signature invalid (key too short)",
    ("invalid", "pubkey_unavailable"): "invalid - public key record (currently?) unavailable",
    ("invalid", "pubkey_dns_syntax"): "invalid - syntax error in public key record",
    ("invalid", "pubkey_der_syntax"): "invalid - syntax error in public key record",
    ("none", ""): "not verified",
}


@dataclass(slots=True)
class _Signature:
    tags: dict[bytes, bytes]
    raw: list[bytes]  # [name, value] as in the message
    status: str = "none"
    reason: str = ""
    detail: str = ""  # why an invalid signature is invalid, for the dkim_verbose line
    key_bits: int = 0
    log: list[str] = field(default_factory=list)

    def text(self, tag: bytes, default: str = "") -> str:
        return self.tags.get(tag, default.encode()).decode("ascii", "replace")


def _options(ctx: ExpansionContext) -> tuple[list[str], list[str], dict[str, int], bool, bool]:
    from pyxim import logselector
    from pyxim.lists import iterate_list

    main: Any = ctx.config.main if ctx.config is not None else {}

    def listed(name: str, default: str) -> list[str]:
        value = main.get(name)
        return [
            i.strip().lower() for i in iterate_list(str(default if value is None else value)) if i.strip()
        ]

    sizes = {"rsa": 1024, "ed25519": 250}
    text = main.get("dkim_verify_min_keysizes")
    for item in re.split(r"[\s,:]+", str("rsa=1024 ed25519=250" if text is None else text)):
        name, _, size = item.partition("=")
        if size.strip().isdigit():
            sizes[name.strip().lower()] = int(size)
    verbose = "dkim_verbose" in logselector.parse(str(main.get("log_selector") or ""))
    return (
        listed("dkim_verify_hashes", "sha256:sha512"),
        listed("dkim_verify_keytypes", "ed25519:rsa"),
        sizes,
        bool(main.get("dkim_verify_minimal")),
        verbose,
    )


def verify(ctx: ExpansionContext, message: bytes) -> DkimResults:
    """Check every DKIM signature of a received message (LF line ends, as spooled)."""
    import dkim
    from dkim.util import InvalidTagValueList, parse_tag_value

    results = DkimResults()
    if b"dkim-signature:" not in message.lower():
        return results
    wire = message.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    try:
        headers, body = dkim.rfc822_parse(wire)
    except dkim.MessageFormatError:
        return results
    hashes, keytypes, min_sizes, minimal, verbose = _options(ctx)
    signatures: list[_Signature] = []
    for header in headers:
        if header[0].lower() != b"dkim-signature":
            continue
        unfolded = re.sub(rb"\r\n[ \t]", b" ", header[1])
        try:
            tags = parse_tag_value(re.sub(rb"[ \t\r\n]+", b" ", unfolded))
        except InvalidTagValueList:
            continue  # not a signature Exim can read: it names no signer
        algorithm = tags.get(b"a", b"").decode("ascii", "replace").lower()
        keytype, _, hash_name = algorithm.partition("-")
        if not tags.get(b"d") or keytype not in KEYTYPES or hash_name not in HASHES:
            continue
        if hash_name not in hashes or keytype not in keytypes:
            continue  # Exim ignores signatures with hashes or key types it was told not to accept
        signatures.append(_Signature(tags, header))
    # Exim 4.96 checks (and runs the DKIM ACL for) signatures in order of preference: key type as listed in
    # dkim_verify_keytypes, then hash as listed in dkim_verify_hashes; header order otherwise
    signatures.sort(
        key=lambda sig: (
            keytypes.index(sig.text(b"a").lower().partition("-")[0]),
            hashes.index(sig.text(b"a").lower().partition("-")[2]),
        )
    )
    resolver = ctx.get_resolver()
    passed_one = False
    for sig in signatures:
        if minimal and passed_one:
            continue  # dkim_verify_minimal: the rest stay "none"
        _check(sig, headers, body, resolver, min_sizes)
        passed_one = passed_one or sig.status == "pass"
        results.log += sig.log
    for sig in signatures:
        values = _values(sig)
        domain, identity = values["dkim_domain"], values["dkim_identity"]
        if sig.status == "pass" and not results.passed:
            results.passed = domain
        results.signatures.append(values)
        for signer in (domain, identity):
            if signer:
                # $dkim_signers names every signature's domain and identity, a repeat included (as Exim's
                # dkim_exim_verify_finish builds it); the first signature by a signer gives its values
                results.signers.append(signer)
                results.variables.setdefault(signer.lower(), values)
        if verbose:
            results.after_acl.append(_verbose_line(sig))
    return results


def _canon(sig: _Signature) -> tuple[str, str]:
    """The c= pair; as in Exim, a value it does not know makes both halves "simple"."""
    head, _, body = sig.text(b"c", "simple/simple").lower().partition("/")
    body = body or "simple"
    if head not in ("relaxed", "simple") or body not in ("relaxed", "simple"):
        return "simple", "simple"
    return head, body


def _values(sig: _Signature) -> dict[str, str]:
    head_canon, body_canon = _canon(sig)
    return {
        "dkim_verify_status": sig.status,
        "dkim_verify_reason": sig.reason,
        "dkim_domain": sig.text(b"d"),
        "dkim_identity": sig.text(b"i"),
        "dkim_selector": sig.text(b"s"),
        "dkim_algo": sig.text(b"a"),
        "dkim_canon_headers": head_canon,
        "dkim_canon_body": body_canon,
        "dkim_headernames": sig.text(b"h"),
        "dkim_key_length": str(sig.key_bits),
        "dkim_created": sig.text(b"t", "0"),
        "dkim_expires": sig.text(b"x", "0"),
        "dkim_bodylength": sig.text(b"l", "9999999999999"),
    }


def _verbose_line(sig: _Signature) -> str:
    """Exim's per-signature dkim_verbose line."""
    values = _values(sig)
    try:
        sig_bits = len(base64.b64decode(re.sub(rb"\s", b"", sig.tags.get(b"b", b"")), validate=True)) * 8
    except (binascii.Error, ValueError):
        sig_bits = 0
    line = (
        f"DKIM: d={values['dkim_domain'] or '<UNSET>'} s={values['dkim_selector'] or '<UNSET>'} "
        f"c={values['dkim_canon_headers']}/{values['dkim_canon_body']} a={values['dkim_algo']} b={sig_bits}"
    )
    for tag in ("i", "t", "x", "l"):
        if sig.tags.get(tag.encode()):
            line += f" {tag}={sig.text(tag.encode())}"
    text = sig.detail or _VERBOSE.get((sig.status, sig.reason), f"{sig.status} - unspecified problem")
    return f"{line} [{text}]"


def _check(
    sig: _Signature, headers: list[list[bytes]], body: bytes, resolver: Any, min_sizes: dict[str, int]
) -> None:
    """Verify one signature, setting its status, reason and log lines as Exim would."""
    import dkim

    tags = sig.tags
    keytype, _, hash_name = tags[b"a"].decode().lower().partition("-")
    if tags.get(b"v") != b"1":
        sig.status, sig.detail = "invalid", "invalid - unsupported DKIM version"
        return
    try:
        signature = base64.b64decode(re.sub(rb"\s", b"", tags.get(b"b", b"")), validate=True)
        body_hash = base64.b64decode(re.sub(rb"\s", b"", tags.get(b"bh", b"")))
    except (binascii.Error, ValueError):
        signature, body_hash = b"", b""
    if not signature or not tags.get(b"s") or b"h" not in tags:
        sig.status, sig.detail = "invalid", "invalid - signature tag missing or invalid"
        return
    policy = dkim.CanonicalizationPolicy.from_c_value("/".join(_canon(sig)).encode())
    canonical_body = policy.canonicalize_body(body)
    if b"l" in tags:
        try:
            canonical_body = canonical_body[: int(tags[b"l"])]
        except ValueError:
            sig.status, sig.detail = "invalid", "invalid - signature tag missing or invalid"
            return
    if HASHES[hash_name](canonical_body).digest() != body_hash:
        sig.status, sig.reason = "fail", "bodyhash_mismatch"
        return
    key = _public_key(sig, resolver, keytype)
    if key is None:
        return
    bits = key.key_size if keytype == "rsa" else 256
    sig.key_bits = bits
    include = [n.strip().lower() for n in tags[b"h"].split(b":") if n.strip()]
    hasher = HASHES[hash_name]()
    try:
        dkim.hash_headers(hasher, policy, policy.canonicalize_headers(headers), include, sig.raw, None)
    except Exception:  # noqa: BLE001 — a header dkimpy cannot canonicalize is a signature that did not verify
        hasher = HASHES[hash_name](b"\0")
    if _signature_ok(key, keytype, hash_name, hasher.digest(), signature):
        # the key size is judged only for a signature that verified (as Exim: a bad one is signature_incorrect)
        sig.status = "pass" if bits >= min_sizes.get(keytype, 0) else "fail"
        sig.reason = "" if sig.status == "pass" else "pubkey_too_short"
    else:
        sig.status, sig.reason = "fail", "signature_incorrect"
        sig.log.append("DKIM: validation error: Public key signature verification has failed.")


def _signature_ok(key: Any, keytype: str, hash_name: str, digest: bytes, signature: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, utils

    try:
        if keytype == "ed25519":
            key.verify(signature, digest)  # RFC 8463: over the SHA-256 hash
        else:
            algo = {"sha1": hashes.SHA1(), "sha256": hashes.SHA256(), "sha512": hashes.SHA512()}[hash_name]
            key.verify(signature, digest, padding.PKCS1v15(), utils.Prehashed(algo))
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def _public_key(sig: _Signature, resolver: Any, keytype: str) -> Any:
    """The signer's public key from DNS, or None with the signature marked invalid (and Exim's log lines)."""
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
    from cryptography.hazmat.primitives.serialization import load_der_public_key
    from dkim.util import InvalidTagValueList, parse_tag_value

    name = f"{sig.text(b's')}._domainkey.{sig.text(b'd')}"
    import_failed = f"DKIM: d={sig.text(b'd')} s={sig.text(b's')} [failed key import]"
    record = None
    try:
        answer = resolver.query(name, "TXT")
        if answer.records:
            record = b"".join(answer.records[0].strings)
    except (LookupDefer, ValueError, UnicodeError):
        record = None
    key_tags: dict[bytes, bytes] | None = None
    if record is not None and len(record) <= MAX_KEY_RECORD:
        try:
            key_tags = parse_tag_value(re.sub(rb"\s+", b" ", record))
        except InvalidTagValueList:
            key_tags = None
        if key_tags is not None and key_tags.get(b"v", b"DKIM1") != b"DKIM1":
            key_tags = None
    if key_tags is None or b"p" not in key_tags:
        sig.log.append(import_failed)
        sig.status, sig.reason = "invalid", "pubkey_unavailable"
        return None
    try:
        data = base64.b64decode(re.sub(rb"\s", b"", key_tags[b"p"]), validate=True)
    except (binascii.Error, ValueError):
        sig.log.append(import_failed)
        sig.status, sig.reason = "invalid", "pubkey_dns_syntax"
        return None
    try:
        if keytype == "ed25519":
            if len(data) != 32:
                raise ValueError("bad ed25519 key")
            return ed25519.Ed25519PublicKey.from_public_bytes(data)
        key = load_der_public_key(data)
        if not isinstance(key, rsa.RSAPublicKey):
            raise ValueError("not an RSA key")
        return key
    except (ValueError, TypeError):
        sig.log.append(import_failed)
        # GnuTLS's words, as Exim logs them: a value that is not DER at all, or DER that ends early
        error = "Error in DER parsing." if data[:1] == b"\x30" else "Error in TAG."
        sig.log.append(f"DKIM: validation error: ASN1 parser: {error}")
        sig.status, sig.reason = "invalid", "pubkey_der_syntax"
        return None


@acl_condition("dkim_status")
def cond_dkim_status(run: AclRun, value: str) -> bool:
    """True when $dkim_verify_status (of the signer the DKIM ACL is run for) is in the list."""
    from pyxim.lists import iterate_list

    wanted = [item.strip() for item in iterate_list(run.expand(value))]
    for item in wanted:
        if item not in STATUSES:
            raise AclConditionError(f'unknown DKIM status "{item}"')
    return str(run.ctx.variables.get("dkim_verify_status") or "none") in wanted


@acl_condition("dkim_signers")
def cond_dkim_signers(run: AclRun, value: str) -> bool:
    """True when $dkim_cur_signer matches the (domain or address) list."""
    from pyxim.lists import match_address_list, match_domain_list

    signer = str(run.ctx.variables.get("dkim_cur_signer") or "")
    listtext = run.expand(value)
    if "@" in signer:
        return match_address_list(run.ctx, signer, listtext)
    return match_domain_list(run.ctx, signer, listtext)


# What ${authresults} says for each signature (Exim's wording, RFC 8601 results)
_AUTHRES = {
    ("fail", "bodyhash_mismatch"): "fail (body hash mismatch; body probably modified in transit)",
    ("fail", "signature_incorrect"): "fail (signature did not verify; headers probably modified in transit)",
    ("invalid", "pubkey_unavailable"): "tmperror (pubkey unavailable)",
    ("invalid", "pubkey_dns_syntax"): "neutral (public key record import problem)",
}


def _authres(ev) -> list[str]:  # type: ignore[no-untyped-def]
    """The dkim clauses of ${authresults}: one per signature checked."""
    clauses = []
    for values in ev.ctx.lookup_cache.get(SIGNATURES_KEY, []):
        status = values["dkim_verify_status"]
        tags = (
            f"header.d={values['dkim_domain']}"
            + (f" header.i={values['dkim_identity']}" if values["dkim_identity"] else "")
            + f" header.s={values['dkim_selector']} header.a={values['dkim_algo']}"
        )
        if status == "pass":
            clauses.append(f"dkim=pass {tags}")
        else:
            word = _AUTHRES.get((status, values["dkim_verify_reason"]), "neutral (unspecified problem)")
            clauses.append(f"dkim={word}\n\t\t {tags}")
    return clauses


SIGNATURES_KEY = ("pyxim", "dkim-signatures")

from pyxim.expand.authres import contributor  # noqa: E402

contributor(30)(_authres)

"""ARC verification (RFC 8617, as Exim's experimental ARC support does it): `verify = arc/<list>`,
$arc_state, $arc_state_reason, $arc_domains, $arc_oldest_pass, the "ARC" tag on the <= line and the
arc= clause of ${authresults}.

Exim follows the draft-11 verifier actions (SPEC-NOTES.md), and so does this module:

1. collect the ARC sets of the message (a header line that cannot be parsed, an instance of 0 or
   above 50, or a second line of one kind for an instance fails the chain; no ARC lines: "none");
2. walk the sets from the highest instance down: each must be the next lower instance, have all
   three lines, and its seal must not say cv=fail; while the ARC-Message-Signatures keep
   validating, the lowest of them is $arc_oldest_pass;
3. the newest ARC-Message-Signature must validate;
4. every ARC-Seal, newest first, must carry the right cv= (none for i=1, not none above) and validate.

The reasons in $arc_state_reason are Exim's words. Keys are asked of pyxim's resolver (the
dns_nameservers option), never of the system's. The crypto is RSA (rsa-sha256, rsa-sha1) through
`cryptography`; dkimpy's canonicalisation code is used for relaxed headers and for bodies.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pyxim.acl.engine import AclConditionError, register_verify
from pyxim.errors import LookupDefer

if TYPE_CHECKING:  # pragma: no cover
    from pyxim.acl.engine import AclRun
    from pyxim.expand.context import ExpansionContext
    from pyxim.expand.evaluate import Evaluation

STATES = ("none", "fail", "pass")
MAX_INSTANCE = 50  # RFC 8617 §4.2.1; Exim refuses a larger i= as an "overlarge instance number"

# header name (lower case) → the slot of the set it fills, and the word in Exim's reason
_KINDS = {
    "arc-authentication-results": ("aar", "AAR"),
    "arc-message-signature": ("ams", "AMS"),
    "arc-seal": ("seal", "AS"),
}
_HASHES = {"sha256": hashlib.sha256, "sha1": hashlib.sha1}
_TAG_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
_AAR_INSTANCE = re.compile(r"\s*i\s*=\s*([0-9]{1,9})\s*(?:;|\Z)")
_B_VALUE = re.compile(r"(^|;)(\s*b\s*=)[^;]*", re.ASCII)

CACHE_KEY = ("pyxim", "arc")


class ArcLineError(Exception):
    """A header line of the chain that cannot be read (Exim: "line parse", "dup hdr" …)."""


@dataclass(slots=True)
class ArcLine:
    name: str  # as written
    raw: str  # the whole line: name, colon, value, continuation lines, final newline
    tags: dict[str, str]  # tag → value with folding white space removed at both ends

    @property
    def value(self) -> str:
        return self.raw.split(":", 1)[1]


@dataclass(slots=True)
class ArcSet:
    instance: int
    aar: ArcLine | None = None
    ams: ArcLine | None = None
    seal: ArcLine | None = None
    ams_result: str | None = None  # None: not checked yet; "": validated; otherwise why not


@dataclass(slots=True)
class ArcResult:
    """The outcome of ARC verification for one message."""

    state: str  # pass, fail, none
    reason: str = ""
    sets: dict[int, ArcSet] = field(default_factory=dict)
    received_instance: int = 0  # the chain's highest instance, once its form was found good
    oldest_pass: int = 0

    @property
    def domains(self) -> str:
        """$arc_domains: each set's ARC-Seal d=, instance 1 first; a missing one is an empty element."""
        if not self.sets:
            return ""
        top = max(self.sets)
        out = []
        for instance in range(1, top + 1):
            arc_set = self.sets.get(instance)
            seal = arc_set.seal if arc_set is not None else None
            out.append(seal.tags.get("d", "") if seal is not None else "")
        return ":".join(out)

    @property
    def newest_selector(self) -> str:
        arc_set = self.sets.get(self.received_instance)
        return arc_set.ams.tags.get("s", "") if arc_set is not None and arc_set.ams is not None else ""


# -- reading the chain ---------------------------------------------------------------------


def parse_tags(value: str) -> dict[str, str]:
    """An RFC 6376 tag=value list; a tag seen twice, or a part without "=", is an error."""
    tags: dict[str, str] = {}
    for spec in value.split(";"):
        if not spec.strip():
            continue
        name, eq, content = spec.partition("=")
        name = name.strip()
        if not eq or not _TAG_NAME.match(name):
            raise ArcLineError(f"bad tag '{spec.strip()[:20]}'")
        if name in tags:
            raise ArcLineError(f"{name} tag dup")
        tags[name] = content.strip(" \t\r\n")
    return tags


def _instance(text: str) -> int:
    if not text.isascii() or not text.isdigit():
        raise ArcLineError("instance find")
    number = int(text[:9])
    if number == 0:
        raise ArcLineError("instance find")
    if number > MAX_INSTANCE or len(text) > 9:
        raise ArcLineError("overlarge instance number")
    return number


def read_line(name: str, raw: str) -> ArcLine:
    """One ARC header line. An ARC-Authentication-Results line is read for its i= only: the rest is
    an Authentication-Results payload, whose comments may hold anything."""
    value = raw.split(":", 1)[1]
    if name.lower() == "arc-authentication-results":
        m = _AAR_INSTANCE.match(value)
        if m is None:
            raise ArcLineError("instance find")
        return ArcLine(name, raw, {"i": m.group(1)})
    unfolded = value.replace("\r", "").replace("\n", "")
    return ArcLine(name, raw, parse_tags(unfolded))


def collect_sets(headers: list[tuple[str, str]], result: ArcResult) -> bool:
    """Step 1: gather the ARC sets (into result.sets); False with result.reason set when a line is bad."""
    for name, raw in headers:
        kind = _KINDS.get(name.strip().lower())
        if kind is None:
            continue
        slot, word = kind
        try:
            line = read_line(name, raw)
            instance = _instance(line.tags.get("i", ""))
            arc_set = result.sets.setdefault(instance, ArcSet(instance))
            if getattr(arc_set, slot) is not None:
                raise ArcLineError("dup hdr")
            setattr(arc_set, slot, line)
        except ArcLineError:
            result.reason = f"collecting headers: inserting {word}"
            return False
    return True


# -- canonicalisation and keys -----------------------------------------------------------------


def relaxed_header(raw: str) -> bytes:
    """RFC 6376 relaxed header canonicalisation of one line, CRLF-terminated."""
    from dkim.canonicalization import Relaxed

    name, _, value = raw.partition(":")
    data = value.encode("utf-8", "surrogateescape").replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    [(cname, cvalue)] = Relaxed.canonicalize_headers([(name.encode("utf-8", "surrogateescape"), data)])
    return cname + b":" + cvalue


def without_b_value(raw: str) -> str:
    """The line with the content of its b= tag removed (what a signature covers of itself)."""
    name, _, value = raw.partition(":")
    return name + ":" + _B_VALUE.sub(lambda m: m.group(1) + m.group(2), value, count=1)


def body_hash(body: bytes, canon: str, hash_name: str, length: int | None) -> bytes:
    """The body hash for a c= body canonicalisation ("simple" or "relaxed") and a hash algorithm."""
    from dkim.canonicalization import ALGORITHMS

    wire = body.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    canonical = ALGORITHMS[canon.encode()].canonicalize_body(wire)
    if length is not None:
        canonical = canonical[:length]
    return _HASHES[hash_name](canonical).digest()


class KeyProblem(Exception):
    """No usable public key for a selector and domain (Exim's "pubkey problem")."""


def public_key(ctx: ExpansionContext, selector: str, domain: str, hash_name: str):  # type: ignore[no-untyped-def]
    """The RSA public key published at selector._domainkey.domain, asked of pyxim's resolver."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    if not selector or not domain or any(c.isspace() for c in selector + domain):
        raise KeyProblem("bad selector or domain")
    try:
        answer = ctx.get_resolver().query(f"{selector}._domainkey.{domain}", "TXT")
    except LookupDefer as exc:
        raise KeyProblem(str(exc)) from None
    except Exception as exc:  # a name the resolver refuses (too long, bad label) is no key either
        raise KeyProblem(str(exc)) from None
    if not answer.records:
        raise KeyProblem("no TXT record")
    text = b"".join(answer.records[0].strings).decode("ascii", "replace")
    try:
        tags = parse_tags(text)
    except ArcLineError as exc:
        raise KeyProblem(str(exc)) from None
    if tags.get("k", "rsa") != "rsa":
        raise KeyProblem("key type")
    services = [s.strip() for s in tags.get("s", "*").split(":")]
    if "*" not in services and "email" not in services:
        raise KeyProblem("service type")
    if "h" in tags and hash_name not in [h.strip() for h in tags["h"].split(":")]:
        raise KeyProblem("hash not allowed by the key")
    try:
        der = base64.b64decode("".join(tags.get("p", "").split()), validate=True)
    except ValueError:
        raise KeyProblem("key not base64") from None
    if not der:
        raise KeyProblem("key revoked")
    try:
        key = serialization.load_der_public_key(der)
    except ValueError:
        try:  # some publish the bare RSAPublicKey rather than SubjectPublicKeyInfo
            pem = (
                b"-----BEGIN RSA PUBLIC KEY-----\n"
                + base64.encodebytes(der)
                + b"-----END RSA PUBLIC KEY-----\n"
            )
            key = serialization.load_pem_public_key(pem)
        except ValueError:
            raise KeyProblem("key not parsable") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise KeyProblem("not an RSA key")
    return key


def _algorithm(tags: dict[str, str]) -> str:
    """The hash name of an a= tag pyxim can check ("rsa-sha256" → "sha256"), or ""."""
    algo, _, hash_name = tags.get("a", "").partition("-")
    return hash_name if algo == "rsa" and hash_name in _HASHES else ""


def rsa_verifies(key, signature_b64: str, data: bytes, hash_name: str) -> bool:  # type: ignore[no-untyped-def]
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    try:
        signature = base64.b64decode("".join(signature_b64.split()), validate=True)
    except ValueError:
        return False
    algorithm = hashes.SHA256() if hash_name == "sha256" else hashes.SHA1()
    try:
        key.verify(signature, data, padding.PKCS1v15(), algorithm)
    except (InvalidSignature, ValueError):
        return False
    return True


# -- the verifier actions -------------------------------------------------------------------------


def _signed_headers(headers: list[tuple[str, str]], names: list[str]) -> bytes:
    """What an h= list covers: for each name, the bottom-most header of that name not yet used
    (a name with no such header adds nothing), relaxed."""
    used: set[int] = set()
    out = b""
    for wanted in names:
        wanted = wanted.strip().lower()
        for index in range(len(headers) - 1, -1, -1):
            if index not in used and headers[index][0].strip().lower() == wanted:
                used.add(index)
                out += relaxed_header(headers[index][1])
                break
    return out


def verify_ams(ctx: ExpansionContext, arc_set: ArcSet, headers: list[tuple[str, str]], body: bytes) -> str:
    """Check one ARC-Message-Signature: "" when it validates, else Exim's reason."""
    from dkim.canonicalization import InvalidCanonicalizationPolicyError

    if arc_set.ams_result is not None:
        return arc_set.ams_result
    assert arc_set.ams is not None
    tags = arc_set.ams.tags
    reason = ""
    if not all(tags.get(t) for t in ("a", "b", "bh", "d", "h", "s")):
        reason = "required tag missing"
    hash_name = _algorithm(tags)
    if not reason and not hash_name:
        reason = "internal hash setup error"
    if not reason:
        head_canon, _, body_canon = tags.get("c", "simple").partition("/")
        length = None
        if "l" in tags:
            length = int(tags["l"]) if tags["l"].isascii() and tags["l"].isdigit() else -1
        if (
            head_canon not in ("simple", "relaxed")
            or body_canon not in ("", "simple", "relaxed")
            or (length is not None and length < 0)
        ):
            reason = "internal hash setup error"
    if not reason:
        try:
            computed = body_hash(body, body_canon or "simple", hash_name, length)
        except (InvalidCanonicalizationPolicyError, KeyError):
            computed = b""
        try:
            claimed = base64.b64decode("".join(tags["bh"].split()), validate=True)
        except ValueError:
            claimed = b"-"
        if computed != claimed:
            reason = "AMS body hash miscompare"
    if not reason:
        try:
            key = public_key(ctx, tags["s"], tags["d"], hash_name)
        except KeyProblem:
            reason = "pubkey problem"
    if not reason:
        names = [n for n in tags["h"].split(":") if n.strip()]
        if head_canon == "relaxed":
            signed = _signed_headers(headers, names)
            own = relaxed_header(without_b_value(arc_set.ams.raw)).removesuffix(b"\r\n")
        else:
            signed = _simple_headers(headers, names)
            own = (
                without_b_value(arc_set.ams.raw)
                .rstrip("\r\n")
                .replace("\n", "\r\n")
                .encode("utf-8", "surrogateescape")
            )
        if not rsa_verifies(key, tags["b"], signed + own, hash_name):
            reason = "AMS sig nonverify"
    arc_set.ams_result = reason
    return reason


def _simple_headers(headers: list[tuple[str, str]], names: list[str]) -> bytes:
    used: set[int] = set()
    out = b""
    for wanted in names:
        wanted = wanted.strip().lower()
        for index in range(len(headers) - 1, -1, -1):
            if index not in used and headers[index][0].strip().lower() == wanted:
                used.add(index)
                out += (
                    headers[index][1]
                    .replace("\r\n", "\n")
                    .replace("\n", "\r\n")
                    .encode("utf-8", "surrogateescape")
                )
                break
    return out


def verify_seal(ctx: ExpansionContext, result: ArcResult, instance: int) -> str:
    """Check the ARC-Seal of one instance over the sets 1 … instance: "" or Exim's reason."""
    arc_set = result.sets[instance]
    assert arc_set.seal is not None
    tags = arc_set.seal.tags
    cv = tags.get("cv", "")
    if (instance == 1) != (cv == "none"):
        return "seal cv state"
    hash_name = _algorithm(tags)
    if not hash_name or not tags.get("b"):
        return "seal hash setup error"
    data = b""
    for number in range(1, instance + 1):
        earlier = result.sets[number]
        assert earlier.aar is not None and earlier.ams is not None and earlier.seal is not None
        data += relaxed_header(earlier.aar.raw) + relaxed_header(earlier.ams.raw)
        if number == instance:
            data += relaxed_header(without_b_value(earlier.seal.raw)).removesuffix(b"\r\n")
        else:
            data += relaxed_header(earlier.seal.raw)
    try:
        key = public_key(ctx, tags.get("s", ""), tags.get("d", ""), hash_name)
    except KeyProblem:
        return "pubkey problem"
    if not rsa_verifies(key, tags["b"], data, hash_name):
        return "seal sigverify error"
    return ""


def verify_chain(ctx: ExpansionContext, headers: list[tuple[str, str]], body: bytes) -> ArcResult:
    """Exim's acl_verify_arc over a message's header lines ((name, raw line) in order) and body."""
    result = ArcResult("none")
    if not collect_sets(headers, result):
        result.state = "fail"
        return result
    if not result.sets:
        return result
    result.state = "fail"
    top = max(result.sets)
    expected = top
    ams_failed = False
    for instance in sorted(result.sets, reverse=True):
        arc_set = result.sets[instance]
        if instance != expected:
            result.reason = f"i={instance} (sequence; expected {expected})"
            return result
        if arc_set.aar is None or arc_set.ams is None or arc_set.seal is None:
            result.reason = f"i={instance} (missing header)"
            return result
        if arc_set.seal.tags.get("cv", "") == "fail":
            result.reason = f"i={instance} (cv)"
            return result
        # the oldest-pass AMS does not decide the chain; it is reported ($arc_oldest_pass)
        if not ams_failed:
            if verify_ams(ctx, arc_set, headers, body):
                ams_failed = True
            else:
                result.oldest_pass = instance
        expected -= 1
    if expected != 0:
        result.reason = f"(sequence; expected i={expected})"
        return result
    result.received_instance = top
    newest = verify_ams(ctx, result.sets[top], headers, body)
    if newest:
        result.reason = newest
        return result
    for instance in range(top, 0, -1):
        why = verify_seal(ctx, result, instance)
        if why:
            result.reason = why
            return result
    result.state = "pass"
    return result


# -- hooks into the ACL, the variables, the log and ${authresults} ---------------------------------


def _message_parts(ctx: ExpansionContext) -> tuple[list[tuple[str, str]], bytes]:
    message = ctx.message
    if message is None:
        return [], b""
    headers = [(h.name, h.raw) for h in message.headers if not h.deleted]
    return headers, message.body.encode("utf-8", "surrogateescape")


def _message_key(ctx: ExpansionContext) -> str:
    return str(ctx.variables.get("message_id") or "")


def current(ctx: ExpansionContext) -> ArcResult | None:
    """The ARC result of the message being received, once `verify = arc` has run for it."""
    cached = ctx.lookup_cache.get(CACHE_KEY)
    if cached is None or cached[0] != _message_key(ctx):
        return None
    return cached[1]  # type: ignore[no-any-return]


def verify_message(ctx: ExpansionContext) -> ArcResult:
    """Verify the message in ctx (once per message; a second `verify = arc` reuses the result)."""
    found = current(ctx)
    if found is not None:
        return found
    headers, body = _message_parts(ctx)
    try:
        found = verify_chain(ctx, headers, body)
    except Exception as exc:  # hostile input must end as "fail", never as a traceback
        found = ArcResult("fail", f"internal error: {type(exc).__name__}")
    ctx.lookup_cache[CACHE_KEY] = (_message_key(ctx), found)
    return found


def verify_arc(run: AclRun, options: str) -> bool:
    """`verify = arc/<acceptable states>` (none:pass when no list is given)."""
    from pyxim.lists import iterate_list

    if run.ctx.message is None:
        raise AclConditionError("cannot verify arc outside the DATA ACL (there is no message yet)")
    result = verify_message(run.ctx)
    # as in Exim, a failed check says nothing of its own in the log: log_message words it
    wanted = [item.strip() for item in iterate_list(options)] if options.strip() else ["none", "pass"]
    return result.state in wanted


def _variable(pick, unset: str = ""):  # type: ignore[no-untyped-def]
    def compute(ev: Evaluation) -> str:
        found = current(ev.ctx)
        return pick(found) if found is not None else unset

    return compute


def receive_log_tag(ctx: ExpansionContext) -> str:
    """What the <= line carries for ARC: " ARC" after a chain that passed (Exim's tagging)."""
    found = current(ctx)
    return " ARC" if found is not None and found.state == "pass" else ""


def _authres(ev: Evaluation) -> list[str]:
    """The arc clause of ${authresults}, worded as Exim's authres_arc."""
    found = current(ev.ctx)
    if found is None:
        return []
    clause = f"arc={found.state}"
    if found.received_instance > 0:
        clause += f" (i={found.received_instance})"
        if found.reason:
            clause += f"({found.reason})"
        clause += f" header.s={found.newest_selector} arc.oldest-pass={found.oldest_pass}"
        address = str(ev.ctx.variables.get("sender_host_address") or "")
        if address:
            clause += f" smtp.remote-ip={address}"
    elif found.reason:
        clause += f" ({found.reason})"
    return [clause]


def _register() -> None:
    from pyxim.expand.authres import contributor
    from pyxim.expand.taint import Tainted
    from pyxim.expand.variables import register_variable

    register_variable("arc_state", "", _variable(lambda r: r.state))
    register_variable("arc_state_reason", "", _variable(lambda r: r.reason))
    register_variable("arc_domains", "", _variable(lambda r: Tainted(r.domains)))  # the message's words
    register_variable("arc_oldest_pass", "0", _variable(lambda r: str(r.oldest_pass), "0"))
    contributor(50)(_authres)  # after dmarc, as in Exim's ${authresults}
    register_verify("arc", verify_arc)


_register()

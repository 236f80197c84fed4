"""DKIM verification (RFC 6376) for the acl_smtp_dkim hook, and the dkim_status / dkim_signers ACL conditions.

dkimpy checks each DKIM-Signature; its DNS questions go through pyxim's
resolver. The results are worded as Exim words them: $dkim_verify_status is
pass, fail, invalid or none; $dkim_verify_reason names why (bodyhash_mismatch,
signature_incorrect, pubkey_unavailable, pubkey_dns_syntax …). The session
runs acl_smtp_dkim once per dkim_verify_signers item with these values set
(pyxim.policy.register_dkim_verifier).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyxim.acl.engine import AclConditionError, acl_condition
from pyxim.errors import LookupDefer
from pyxim.policy import DkimResults

if TYPE_CHECKING:  # pragma: no cover
    from pyxim.acl.engine import AclRun
    from pyxim.expand.context import ExpansionContext

STATUSES = ("none", "invalid", "fail", "pass")


def _signature_count(message: bytes) -> int:
    count = 0
    for line in message.split(b"\n"):
        if not line.strip():
            break  # end of the header
        if line[:15].lower() == b"dkim-signature:":
            count += 1
    return count


def verify(ctx: ExpansionContext, message: bytes) -> DkimResults:
    """Check every DKIM signature of a received message (LF line ends, as spooled)."""
    import dkim

    count = _signature_count(message)
    results = DkimResults()
    if not count:
        return results
    wire = message.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    resolver = ctx.get_resolver()

    def txt(name: bytes, timeout: int = 5) -> bytes | None:
        try:
            answer = resolver.query(name.decode("ascii", "replace").rstrip("."), "TXT")
        except LookupDefer:
            return None
        if not answer.records:
            return None
        return b"".join(answer.records[0].strings)

    for index in range(count):
        checker = dkim.DKIM(wire, minkey=512)
        status, reason = "fail", ""
        try:
            ok = checker.verify(index, dnsfunc=txt)
            if ok:
                status = "pass"
            elif not checker.keysize:
                status, reason = "invalid", "pubkey_unavailable"
            else:
                reason = "signature_incorrect"
        except dkim.KeyFormatError:
            status, reason = "invalid", "pubkey_dns_syntax"
        except dkim.ValidationError as exc:
            if "body hash mismatch" in str(exc):
                reason = "bodyhash_mismatch"
            else:
                status, reason = "invalid", ""
        except dkim.DKIMException:
            status, reason = "invalid", ""
        fields = checker.signature_fields or {}
        domain = (checker.domain or fields.get(b"d", b"")).decode("ascii", "replace")
        identity = fields.get(b"i", b"").decode("ascii", "replace")
        canon = fields.get(b"c", b"simple/simple").decode("ascii", "replace")
        head_canon, _, body_canon = canon.partition("/")
        values = {
            "dkim_verify_status": status,
            "dkim_verify_reason": reason,
            "dkim_domain": domain,
            "dkim_identity": identity,
            "dkim_selector": (checker.selector or fields.get(b"s", b"")).decode("ascii", "replace"),
            "dkim_algo": fields.get(b"a", b"").decode("ascii", "replace"),
            "dkim_canon_headers": head_canon,
            "dkim_canon_body": body_canon or "simple",
            "dkim_headernames": fields.get(b"h", b"").decode("ascii", "replace"),
            "dkim_key_length": str(checker.keysize or 0),
        }
        if status == "pass" and not results.passed:
            results.passed = domain
        elif reason == "pubkey_unavailable":
            results.log.append(f"DKIM: d={domain} s={values['dkim_selector']} [failed key import]")
        elif reason == "signature_incorrect":
            results.log.append("DKIM: validation error: Public key signature verification has failed.")
        results.signatures.append(values)
        for signer in (domain, identity):
            if signer and signer.lower() not in results.variables:
                results.variables[signer.lower()] = values
                results.signers.append(signer)
    return results


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
        tags = (f"header.d={values['dkim_domain']}"
                + (f" header.i={values['dkim_identity']}" if values["dkim_identity"] else "")
                + f" header.s={values['dkim_selector']} header.a={values['dkim_algo']}")
        if status == "pass":
            clauses.append(f"dkim=pass {tags}")
        else:
            word = _AUTHRES.get((status, values["dkim_verify_reason"]), "neutral (unspecified problem)")
            clauses.append(f"dkim={word}\n\t\t {tags}")
    return clauses


SIGNATURES_KEY = ("pyxim", "dkim-signatures")

from pyxim.expand.authres import contributor  # noqa: E402

contributor(30)(_authres)

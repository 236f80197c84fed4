"""Message-authentication policy modules (SPF, DKIM, DMARC, ARC …) and the hooks they plug into.

The SMTP session does not know how a DKIM signature is checked. After DATA
it asks the verifier registered here (pyxim's own, policy/dkim.py, unless
another was registered) and then runs acl_smtp_dkim once per signer, as Exim
does. A signer named by dkim_verify_signers without a signature is seen with
$dkim_verify_status "none".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from pyxim.expand.context import ExpansionContext


@dataclass(slots=True)
class DkimResults:
    """What DKIM verification found in one message.

    `signers` is $dkim_signers (every signing domain and identity, in order);
    `variables` maps a signer to the $dkim_* values the DKIM ACL sees while
    $dkim_cur_signer is that signer."""

    signers: list[str] = field(default_factory=list)
    variables: dict[str, dict[str, str]] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)  # what verification has to say in the main log
    passed: str = ""  # the domain of the first signature that verified (DKIM= on the <= line)
    signatures: list[dict[str, str]] = field(default_factory=list)  # each signature's $dkim_* values, in order
    after_acl: list[str] = field(default_factory=list)  # per signature (as `signatures`): its dkim_verbose line


DkimVerifier = Callable[["ExpansionContext", bytes], DkimResults]

_dkim_verifier: DkimVerifier | None = None


def register_dkim_verifier(verifier: DkimVerifier | None) -> None:
    """Install the function that verifies a received message's DKIM signatures
    (None removes it). It gets the context and the message as received,
    dot-stuffing undone, with LF line ends as Exim spools it (DKIM
    canonicalisation puts the CRLFs back)."""
    global _dkim_verifier
    _dkim_verifier = verifier


def ensure_dkim_verifier() -> None:
    """Install pyxim's own DKIM verifier (policy/dkim.py) unless another one is in place."""
    if _dkim_verifier is None:
        from pyxim.policy import dkim

        register_dkim_verifier(dkim.verify)


def dkim_verify(ctx: ExpansionContext, message: bytes) -> DkimResults:
    if _dkim_verifier is None:
        return DkimResults()
    return _dkim_verifier(ctx, message)


# The values a signer without a signature shows in the DKIM ACL. As in Exim, $dkim_domain and
# $dkim_selector keep what the previous signer left there.
UNSIGNED = {"dkim_verify_status": "none", "dkim_verify_reason": "", "dkim_algo": "", "dkim_canon_headers": "",
            "dkim_canon_body": ""}

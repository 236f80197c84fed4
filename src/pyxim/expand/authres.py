"""${authresults{admd-id}}: the Authentication-Results header (RFC 8601).

Policy modules (spf, dkim, dmarc, arc) contribute their method results by
registering a function with `contributor`; the item strings them together
in Exim's order: local/iprev/smtp.auth first, then spf, dkim, dmarc, arc.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from pyxim.expand.evaluate import Evaluation

# Each contributor returns zero or more "method=result ..." clauses.
Contributor = Callable[["Evaluation"], list[str]]
_CONTRIBUTORS: list[tuple[int, Contributor]] = []


def contributor(order: int) -> Callable[[Contributor], Contributor]:
    def register(func: Contributor) -> Contributor:
        _CONTRIBUTORS.append((order, func))
        _CONTRIBUTORS.sort(key=lambda pair: pair[0])
        return func

    return register


def _smtp_auth(ev: Evaluation) -> list[str]:
    # Exim adds smtp.auth when the client authenticated.
    auth_id = ev.ctx.variables.get("authenticated_id", "")
    if not auth_id:
        return []
    return [f"auth=pass (smtp.auth={auth_id})"]


def authentication_results(ev: Evaluation, admd_id: str) -> str:
    header = f"Authentication-Results: {admd_id}"
    clauses: list[str] = []
    for _, func in [(30, _smtp_auth), *_CONTRIBUTORS]:
        clauses.extend(func(ev))
    if not clauses:
        return header
    return header + "".join(f";\n\t{c}" for c in clauses)

"""SRS (Sender Rewriting Scheme) as Exim 4.96 has it natively: the ${srs_encode} item and the
inbound_srs condition, with $srs_recipient.

    ${srs_encode {secret}{return path}{original domain}}  ->  SRS0=HHHH=TT=domain=local@original-domain

HHHH is the first four hex digits of HMAC-MD5(secret, the return path in lower case); TT the day number
(days since 1970, modulo 1024) in base 32 (a-z, 2-7). inbound_srs {local part}{secret} is true for an
SRS0 local part whose hash is right and whose day is recent, and sets $srs_recipient to the address it
carries.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from typing import TYPE_CHECKING

from pyxim.expand.registry import condition, item

if TYPE_CHECKING:  # pragma: no cover
    from pyxim.expand.evaluate import Evaluation

_BASE32 = "abcdefghijklmnopqrstuvwxyz234567"
MAX_AGE_DAYS = 30  # how old an SRS0 address may be and still be accepted
_SRS0 = re.compile(r"SRS0=([^=]{4})=([^=]{2})=([^=]*)=(.*)", re.S)


def _hash(secret: str, address: str) -> str:
    return hmac.new(secret.encode("utf-8", "surrogateescape"), address.lower().encode("utf-8", "surrogateescape"),
                    hashlib.md5).hexdigest()[:4]


def _today(ev: Evaluation) -> int:
    now = ev.ctx.now() if getattr(ev.ctx, "now", None) else time.time()
    return int(now // 86400) & 0x3FF


@item("srs_encode", 3, 3)
def item_srs_encode(ev: Evaluation, args: list[str]) -> str:
    secret, return_path, domain = args
    if not return_path:
        return ""
    # Exim takes a return path without "@" as all local part, empty domain.
    local, sender_domain = (
        return_path.rsplit("@", 1) if "@" in return_path else (return_path, "")
    )
    day = _today(ev)
    stamp = _BASE32[day >> 5] + _BASE32[day & 31]
    return f"SRS0={_hash(secret, return_path)}={stamp}={sender_domain}={local}@{domain}"


@condition("inbound_srs", nargs=2)
def cond_inbound_srs(ev: Evaluation, args: list[str]) -> bool:
    local_part, secret = args
    ev.ctx.variables["srs_recipient"] = ""
    found = _SRS0.fullmatch(local_part)
    if found is None:
        return False
    digest, stamp, domain, local = found.groups()
    if any(c not in _BASE32 for c in stamp):
        return False
    day = _BASE32.index(stamp[0]) * 32 + _BASE32.index(stamp[1])
    if (_today(ev) - day) % 1024 > MAX_AGE_DAYS:
        return False
    address = f"{local}@{domain}"
    if secret and digest != _hash(secret, address):
        return False
    ev.ctx.variables["srs_recipient"] = address
    return True

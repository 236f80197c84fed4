"""SRS (Sender Rewriting Scheme) as Exim 4.96 has it natively: the ${srs_encode} item and the
inbound_srs condition, with $srs_recipient — plus the SRS1 form, which Exim lacks.

    ${srs_encode {secret}{return path}{original domain}}  ->  SRS0=HHHH=TT=domain=local@original-domain

HHHH is the first four hex digits of HMAC-MD5(secret, the return path in lower case); TT the day number
(days since 1970, modulo 1024) in base 32 (a-z, 2-7). inbound_srs {local part}{secret} is true for an
SRS0 local part whose hash is right and whose day is recent, and sets $srs_recipient to the address it
carries. Some MTAs change the case of local parts, so the prefix, hash and day stamp are read in either
case (Exim reads only a lower-case hash and stamp).

SRS1 (pyxim, with the main option `srs_use_srs1`): a forwarder that gets an SRS0 or SRS1 address
wraps it so that a bounce goes straight back to the first forwarder rather than through every hop:

    SRS0=HHHH=TT=orig.example=user@fwd1.example  ->  SRS1=GGGG=fwd1.example==HHHH=TT=orig.example=user@fwd2

GGGG hashes the first forwarder's domain and the SRS0 remainder. inbound_srs always decodes SRS1
(back to the SRS0 address at the first forwarder); without `srs_use_srs1` srs_encode wraps an SRS
address again as SRS0, as Exim does.
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
_SRS0 = re.compile(r"SRS0=([^=]{4})=([^=]{2})=([^=]*)=(.*)", re.S | re.I)
_SRS1 = re.compile(r"SRS1=([^=]{4})=([^=]+)=(=.*)", re.S | re.I)
_SRS_ADDRESS = re.compile(r"SRS[01][=+-]", re.I)


def _hash(secret: str, address: str) -> str:
    return hmac.new(
        secret.encode("utf-8", "surrogateescape"),
        address.lower().encode("utf-8", "surrogateescape"),
        hashlib.md5,
    ).hexdigest()[:4]


def _today(ev: Evaluation) -> int:
    now = ev.ctx.now() if getattr(ev.ctx, "now", None) else time.time()
    return int(now // 86400) & 0x3FF


@item("srs_encode", 3, 3)
def item_srs_encode(ev: Evaluation, args: list[str]) -> str:
    secret, return_path, domain = args
    if not return_path:
        return ""
    # Exim takes a return path without "@" as all local part, empty domain.
    local, sender_domain = return_path.rsplit("@", 1) if "@" in return_path else (return_path, "")
    if _SRS_ADDRESS.match(local) and _use_srs1(ev):
        srs1 = _SRS1.fullmatch(local)
        if srs1 is not None:  # already SRS1: keep the first forwarder, hash again
            first, rest = srs1.group(2), srs1.group(3)
        else:
            first, rest = sender_domain, local[4:]
        return f"SRS1={_hash(secret, first + rest)}={first}={rest}@{domain}"
    day = _today(ev)
    stamp = _BASE32[day >> 5] + _BASE32[day & 31]
    return f"SRS0={_hash(secret, return_path)}={stamp}={sender_domain}={local}@{domain}"


def _use_srs1(ev: Evaluation) -> bool:
    config = getattr(ev.ctx, "config", None)
    return bool(config is not None and config.main.get("srs_use_srs1"))


@condition("inbound_srs", nargs=2)
def cond_inbound_srs(ev: Evaluation, args: list[str]) -> bool:
    local_part, secret = args
    ev.ctx.variables["srs_recipient"] = ""
    srs1 = _SRS1.fullmatch(local_part)
    if srs1 is not None:
        digest, first, rest = srs1.groups()
        if secret and digest.lower() != _hash(secret, first + rest):
            return False
        ev.ctx.variables["srs_recipient"] = f"SRS0{rest}@{first}"
        return True
    found = _SRS0.fullmatch(local_part)
    if found is None:
        return False
    digest, stamp, domain, local = found.groups()
    stamp = stamp.lower()
    if any(c not in _BASE32 for c in stamp):
        return False
    day = _BASE32.index(stamp[0]) * 32 + _BASE32.index(stamp[1])
    if (_today(ev) - day) % 1024 > MAX_AGE_DAYS:
        return False
    address = f"{local}@{domain}"
    if secret and digest.lower() != _hash(secret, address):
        return False
    ev.ctx.variables["srs_recipient"] = address
    return True

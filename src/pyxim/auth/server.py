"""SMTP AUTH on the server side, as exchanges the session drives.

An exchange is a generator: it yields challenges (text to send base64-encoded
after "334 ") and receives the client's decoded responses; it returns one of
OK, FAIL, DEFER, CANCELLED, BAD64. Drivers: plaintext (PLAIN, LOGIN, any
prompt list) and cram_md5. $auth1… are set in the expansion context as the
exchange goes, and server_condition / server_secret decide.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
import time
from collections.abc import Generator

from pyxim.config.model import Config, DriverInstance
from pyxim.errors import ExpansionError, ForcedFail
from pyxim.expand import ExpansionContext, expand_string
from pyxim.expand.taint import Tainted

Exchange = Generator[str, str | None, str]

OK, FAIL, DEFER, CANCELLED, BAD64 = "OK", "FAIL", "DEFER", "CANCELLED", "BAD64"


class Cancelled(Exception):
    pass


class BadBase64(Exception):
    pass


def decode_response(line: str) -> bytes:
    """A client response: '*' cancels; anything else must be base64."""
    if line.strip() == "*":
        raise Cancelled
    try:
        return base64.b64decode(line.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise BadBase64 from None


def server_mechanisms(config: Config) -> list[DriverInstance]:
    """Authenticators that can act as servers, in configuration order."""
    out = []
    for inst in config.authenticators:
        if inst.driver == "plaintext" and inst.options.get("server_condition"):
            out.append(inst)
        elif inst.driver == "cram_md5" and inst.options.get("server_secret"):
            out.append(inst)
    return out


def _set_auth_vars(ctx: ExpansionContext, values: list[bytes]) -> None:
    for n, value in enumerate(values, 1):
        ctx.variables[f"auth{n}"] = Tainted(value.decode("utf-8", "surrogateescape"))
    ctx.variables.setdefault("auth1", "")


def _condition(ctx: ExpansionContext, text: str) -> str:
    from pyxim.expand.conditions import cond_bool_lax

    try:
        result = expand_string(text, ctx)
    except ForcedFail:
        return FAIL
    except ExpansionError:
        return DEFER
    return OK if cond_bool_lax(None, [result]) else FAIL  # type: ignore[arg-type]


def plaintext(inst: DriverInstance, ctx: ExpansionContext, initial: str | None) -> Exchange:
    from pyxim.lists import iterate_list

    prompts_text = str(inst.options.get("server_prompts") or "")
    try:
        prompts = list(iterate_list(expand_string(prompts_text, ctx))) if prompts_text else []
    except ExpansionError:
        return DEFER
    values: list[bytes] = []
    try:
        if initial is not None:
            # the initial response answers the first prompt; "=" stands for an empty one
            values.extend((b"" if initial == "=" else decode_response(initial)).split(b"\0"))
            prompts = prompts[1:]
        for prompt in prompts:
            response = yield prompt
            values.extend(decode_response(response or "").split(b"\0"))
    except Cancelled:
        return CANCELLED
    except BadBase64:
        return BAD64
    _set_auth_vars(ctx, values)
    return _condition(ctx, str(inst.options["server_condition"]))


def cram_md5(inst: DriverInstance, ctx: ExpansionContext, initial: str | None) -> Exchange:
    if initial is not None:
        return FAIL  # CRAM-MD5 has no initial response
    host = str(ctx.variables.get("primary_hostname") or "")
    if not host and ctx.config is not None:
        host = str(ctx.config.main.get("primary_hostname") or "")
    challenge = f"<{os.getpid()}.{int(time.time())}{int.from_bytes(os.urandom(3), 'big')}@{host}>"
    try:
        response = decode_response((yield challenge) or "")
    except Cancelled:
        return CANCELLED
    except BadBase64:
        return BAD64
    user, _, digest = response.decode("utf-8", "surrogateescape").rpartition(" ")
    if not user or len(digest) != 32:
        return FAIL
    _set_auth_vars(ctx, [user.encode("utf-8", "surrogateescape")])
    try:
        secret = expand_string(str(inst.options["server_secret"]), ctx)
    except ForcedFail:
        return FAIL
    except ExpansionError:
        return DEFER
    expected = hmac.new(secret.encode("utf-8", "surrogateescape"), challenge.encode(), "md5").hexdigest()
    return OK if hmac.compare_digest(expected, digest.lower()) else FAIL


DRIVERS = {"plaintext": plaintext, "cram_md5": cram_md5}

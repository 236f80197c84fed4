"""The autoreply transport: its option table (Exim 4.96 names, types and defaults)."""

from __future__ import annotations

import os
import time
from email.utils import formatdate
from pathlib import Path

from pyxim.config.drivers import register
from pyxim.config.options import OptionDef, opt
from pyxim.delivery import DeliveryResult, TransportCall, transport
from pyxim.errors import ExpansionError, ForcedFail
from pyxim.expand import expand_string

OPTIONS: list[OptionDef] = [
    opt("bcc"),
    opt("cc"),
    opt("file"),
    opt("file_expand", "bool", False),
    opt("file_optional", "bool", False),
    opt("from"),
    opt("headers"),
    opt("log"),
    opt("mode", "octint", 384),
    opt("never_mail"),
    opt("once"),
    opt("once_file_size", "int", 0),
    opt("once_repeat"),
    opt("reply_to"),
    opt("return_message", "bool", False),
    opt("subject"),
    opt("text"),
    opt("to"),
]

register("transport", "autoreply", OPTIONS)


def _expand(call: TransportCall, name: str) -> str | None:
    value = call.transport.options.get(name)
    if value is None:
        return None
    return expand_string(str(value), call.ctx)


@transport("autoreply")
def autoreply_deliver(call: TransportCall) -> DeliveryResult:
    """Generate a new message (a vacation reply …) from the transport's options, as Exim's autoreply.

    The new message has the null sender, goes on the spool and is delivered like a bounce; the
    address itself counts as delivered."""
    from pyxim.delivery.bounce import _hostname, _local_user
    from pyxim.lists import match_address_list
    from pyxim.spool.format import Recipient, SpoolHeader, SpoolMessage
    from pyxim.spool.ids import MessageIdGenerator
    from pyxim.spool.store import Spool

    name = call.transport.name
    filtered = _filter_reply(call)
    try:
        if filtered is not None:
            # a filter's mail/vacation command: its values (already expanded) replace the
            # options that make the message; never_mail still applies
            fields = {k: filtered["fields"].get(k) for k in ("to", "cc", "bcc", "from", "reply_to", "subject",
                                                             "text", "file")}
            fields["headers"] = filtered["fields"].get("extra_headers")
            fields["never_mail"] = _expand(call, "never_mail")
            if fields["to"] is None:
                fields["to"] = call.address[1:] if call.address.startswith(">") else None
            for key in ("file",):
                if fields[key] and key in filtered.get("tainted", ()):
                    return DeliveryResult("defer", f"Tainted '{fields[key]}' (file name for {name} transport) "
                                                   "not permitted")
        else:
            fields = {k: _expand(call, k) for k in ("to", "cc", "bcc", "from", "reply_to", "subject", "headers",
                                                    "text", "file", "never_mail")}
    except ForcedFail:
        return DeliveryResult("ok")  # a forced failure in an option: no reply, as Exim
    except ExpansionError as exc:
        return DeliveryResult("defer", f"Expansion of autoreply option in {name} transport failed: {exc.message}")
    from pyxim.address import extract_address, split_address_list

    recipients: list[str] = []
    for key in ("to", "cc", "bcc"):
        # address lists as in header lines: "Sam <s@x.example>, t@y.example"
        for piece in split_address_list(fields[key] or ""):
            parsed = extract_address(piece)
            if parsed is not None and parsed.address:
                recipients.append(parsed.address)
    never = fields["never_mail"]
    if never:
        recipients = [r for r in recipients if not match_address_list(call.ctx, r, never)]
    if not recipients:
        return DeliveryResult("ok")  # nobody to reply to: nothing is sent
    config = call.config
    host = _hostname(config)
    now = time.time()
    new_id = MessageIdGenerator().new_id()
    date = formatdate(now, localtime=True)
    own_id = next((h.text.split(":", 1)[1].strip() for h in call.message.headers if h.type == "I"), "")
    user = _transport_user(call) or _local_user(config)
    # Exim submits the reply as the transport's user (exim -t): the Received line names that user, and
    # "for" the recipient when there is only one
    for_part = f"\n\tfor {recipients[0]}" if len(recipients) == 1 else ""
    headers: list[tuple[str, str]] = [
        (f"Received: from {user} by {host} with local (Exim {_version()})\n\tid {new_id}{for_part};\n\t{date}\n",
         "P")]
    if fields["from"]:
        headers.append((f"From: {fields['from']}\n", "F"))
    if fields["reply_to"]:
        headers.append((f"Reply-To: {fields['reply_to']}\n", "R"))
    if fields["to"]:
        headers.append((f"To: {fields['to']}\n", "T"))
    if fields["cc"]:
        headers.append((f"Cc: {fields['cc']}\n", "C"))
    if fields["subject"]:
        headers.append((f"Subject: {fields['subject']}\n", " "))
    if own_id:
        headers.append((f"In-Reply-To: {own_id}\n", " "))
        headers.append((f"References: {own_id}\n", " "))
    headers.append(("Auto-Submitted: auto-replied\n", " "))
    for line in (fields["headers"] or "").split("\n"):
        if line.strip():
            headers.append((line + "\n", " "))
    headers.append((f"Message-Id: <E{new_id}@{host}>\n", "I"))
    if not fields["from"]:
        # no `from`: the submission's own fixup names the user it ran as
        from pyxim.expand.evaluate import Evaluation
        from pyxim.expand.variables import resolve_variable

        qualify = resolve_variable(Evaluation(call.ctx), "qualify_domain")
        headers.append((f"From: {user}@{qualify}\n", "F"))
    headers.append((f"Date: {date}\n", " "))
    body = ""
    if fields["text"]:
        body += fields["text"] + ("" if fields["text"].endswith("\n") else "\n")
    if fields["file"]:
        try:
            file_name = fields["file"]
            if filtered is not None and not file_name.startswith("/"):
                file_name = os.path.join(str(call.ctx.variables.get("home") or "/"), file_name)
            content = Path(file_name).read_text("utf-8", "surrogateescape")
            if (filtered["expand_file"] if filtered is not None else call.transport.options.get("file_expand")):
                content = expand_string(content, call.ctx)
            body += content
        except OSError as exc:
            if not call.transport.options.get("file_optional"):
                return DeliveryResult("defer", f"Failed to open file {fields['file']} when sending message from "
                                               f"{name} transport: {exc.strerror}")
    data = body.encode("utf-8", "surrogateescape")
    if filtered["return_message"] if filtered is not None else call.transport.options.get("return_message"):
        data += b"\n------ This is a copy of the message, including all the headers.\n\n"
        for h in call.message.headers:
            if h.type != "*":
                data += h.text.encode("utf-8", "surrogateescape")
        data += b"\n"
        limit = int(config.main.get("bounce_return_size_limit") or 102400)
        data += call.body if len(call.body) <= limit else call.body[:limit]
    message = SpoolMessage(
        new_id, "", [Recipient(r) for r in recipients], [SpoolHeader(t, k) for t, k in headers], now,
        caller=user, uid=os.getuid(), gid=os.getgid(),
        options={"received_protocol": "local", "body_linecount": str(data.count(b"\n")), "localerror": None},
    )
    spool = Spool(Path(str(config.main["spool_directory"])), bool(config.main.get("split_spool_directory")))
    spool.write(message, data)
    size = len(data) + sum(len(t) for t, _ in headers) + 1  # the empty line after the headers counts
    result = DeliveryResult("ok")
    result.log.append(f"{new_id} <= <> R={call.message.message_id} U={user} P=local S={size}")
    result.new_messages.append(new_id)
    return result


def _transport_user(call: TransportCall) -> str:
    """The login of the user the transport runs as ("" when it runs as pyxim itself)."""
    import pwd

    if call.uid is None:
        return ""
    try:
        return pwd.getpwuid(call.uid).pw_name
    except KeyError:
        return str(call.uid)


def _filter_reply(call: TransportCall) -> dict | None:  # type: ignore[type-arg]
    """The reply an Exim filter's mail or vacation command set up for this address, if any."""
    import json

    data = call.ctx.variables.get("filter_reply")
    return json.loads(str(data)) if data else None


def _version() -> str:
    from pyxim import EXIM_COMPAT_VERSION

    return EXIM_COMPAT_VERSION

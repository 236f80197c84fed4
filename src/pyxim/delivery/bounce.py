"""Bounce messages: a multipart/report (RFC 3464) to the sender, shaped as Exim 4.96 writes one.

The bounce is a new message from <> put on the spool and logged with
`<= <> R=<original id>`; it is delivered like any other. A bounce is never
sent for a bounce (sender <>): Exim freezes such a message, and so do we.
"""

from __future__ import annotations

import os
import time
from email.utils import formatdate

from pyxim.config.model import Config
from pyxim.spool.format import Recipient, SpoolHeader, SpoolMessage
from pyxim.spool.ids import MessageIdGenerator
from pyxim.spool.store import Spool

_INTRO = (
    "This message was created automatically by mail delivery software.\n\n"
    "A message that you sent could not be delivered to one or more of its\n"
    "recipients. This is a permanent error. The following address(es) failed:\n\n"
)


def _hostname(config: Config) -> str:
    from pyxim.expand.variables import system_hostname

    return str(config.main.get("primary_hostname") or system_hostname())


def bounce_text(
    config: Config, message: SpoolMessage, body: bytes, failed: list[tuple[str, str, str]], boundary: str
) -> bytes:
    """The bounce's body: explanation, delivery-status part, the returned message."""
    host = _hostname(config)
    parts = [f"--{boundary}\nContent-type: text/plain; charset=us-ascii\n\n", _INTRO]
    for address, reason, original in failed:
        parts.append(f"  {address}\n")
        if original != address:
            parts.append(f"    (generated from {original})\n")
        if reason:
            parts.append(f"    {reason}\n")
    parts.append(f"\n--{boundary}\nContent-type: message/delivery-status\n\nReporting-MTA: dns; {host}\n\n")
    for _address, _reason, original in failed:
        # Exim names the recipient as it was received (the address before redirection)
        parts.append(f"Action: failed\nFinal-Recipient: rfc822;{original}\nStatus: 5.0.0\n\n")
    parts.append(f"--{boundary}\nContent-type: message/rfc822\n\n")
    text = "".join(parts).encode("utf-8", "surrogateescape")
    returned = f"Return-path: <{message.sender}>\n".encode("utf-8", "surrogateescape")
    for h in message.headers:
        if h.type != "*":
            returned += h.text.encode("utf-8", "surrogateescape")
    returned += b"\n"
    limit = int(config.main.get("bounce_return_size_limit") or 102400)
    if config.main.get("bounce_return_body", True) and config.main.get("bounce_return_message", True):
        returned += body if len(body) <= limit else body[:limit] + b"\n------ This is a copy of the message, truncated.\n"
    if not config.main.get("bounce_return_message", True):
        returned = b""
    return text + returned + f"\n--{boundary}--\n".encode()


def send_bounce(
    config: Config, spool: Spool, message: SpoolMessage, body: bytes, failed: list[tuple[str, str, str]], log
) -> str | None:  # type: ignore[no-untyped-def]
    """Spool a bounce for `failed` to the message's sender; returns its id (None for a bounce's bounce)."""
    if not message.sender:
        log(f"{message.message_id} Frozen (delivery error message)")
        message.options["frozen"] = str(int(time.time()))
        return None
    host = _hostname(config)
    now = time.time()
    new_id = MessageIdGenerator().new_id()
    boundary = f"{int(now)}-eximdsn-{int.from_bytes(os.urandom(4), 'big') % 2147483647}"
    date = formatdate(now, localtime=True)
    failed_list = ",\n  ".join(a for a, _, _ in failed)
    own_id = next((h.text.split(":", 1)[1].strip() for h in message.headers if h.type == "I"), "")
    header_texts = [
        (f"Received: from {config.main.get('exim_user') or 'mail'} by {host} with local (pyxim)\n"
         f"\tid {new_id}\n\tfor {message.sender};\n\t{date}\n", "P"),
        (f"X-Failed-Recipients: {failed_list}\n", " "),
        ("Auto-Submitted: auto-replied\n", " "),
        (f"From: Mail Delivery System <Mailer-Daemon@{host}>\n", "F"),
        (f"To: {message.sender}\n", "T"),
    ]
    if own_id:
        header_texts.append((f"References: {own_id}\n", " "))
    header_texts += [
        (f"Content-Type: multipart/report; report-type=delivery-status; boundary={boundary}\n", " "),
        ("MIME-Version: 1.0\n", " "),
        ("Subject: Mail delivery failed: returning message to sender\n", " "),
        (f"Message-Id: <E{new_id}@{host}>\n", "I"),
        (f"Date: {date}\n", " "),
    ]
    text = bounce_text(config, message, body, failed, boundary)
    bounce = SpoolMessage(
        new_id, "", [Recipient(message.sender)], [SpoolHeader(t, k) for t, k in header_texts], now,
        caller="mail", uid=os.getuid(), gid=os.getgid(),
        options={"received_protocol": "local", "body_linecount": str(text.count(b"\n")), "localerror": None},
    )
    spool.write(bounce, text)
    size = len(text) + sum(len(t) for t, _ in header_texts)
    log(f"{new_id} <= <> R={message.message_id} U=mail P=local S={size}")
    return new_id

"""Bounce messages: a multipart/report (RFC 3464) to the sender, shaped as Exim 4.96 writes one.

The bounce is a new message from <> put on the spool and logged with
`<= <> R=<original id>`; it is delivered like any other. A bounce is never
sent for a bounce (sender <>): Exim freezes such a message, and so do we.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
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


def _local_user(config: Config) -> str:
    """Who generates the report, as Exim names itself in its Received line and U= (its exim_user)."""
    import pwd

    uid = config.main.get("exim_user")
    try:
        return pwd.getpwuid(uid if isinstance(uid, int) else os.geteuid()).pw_name
    except KeyError:
        return str(uid if isinstance(uid, int) else os.geteuid())


def _received(config: Config, host: str, new_id: str, to: str | list[str], date: str, user: str | None = None) -> str:
    """The Received: line of a message pyxim makes itself (bounce, warning, reply): from the user it is
    made as (default: exim_user), "for" its recipient when it has only one."""
    from pyxim import EXIM_COMPAT_VERSION

    recipients = [to] if isinstance(to, str) else to
    for_part = f"\n\tfor {recipients[0]}" if len(recipients) == 1 else ""
    return (f"Received: from {user or _local_user(config)} by {host} with local (Exim {EXIM_COMPAT_VERSION})\n"
            f"\tid {new_id}{for_part};\n\t{date}\n")


@dataclass(slots=True)
class _Report:
    """What every generated report shares: its id, time, MIME boundary and the names it uses."""

    host: str
    now: float
    new_id: str
    boundary: str
    date: str


def _new_report(config: Config) -> _Report:
    now = time.time()
    return _Report(_hostname(config), now, MessageIdGenerator().new_id(),
                   f"{int(now)}-eximdsn-{int.from_bytes(os.urandom(4), 'big') % 2147483647}",
                   formatdate(now, localtime=True))


def _spool_report(config: Config, spool: Spool, message: SpoolMessage, report: _Report, recipient: str,
                  header_texts: list[tuple[str, str]], text: bytes, log) -> str:  # type: ignore[no-untyped-def]
    """Put a report (from <>) on the spool and log its arrival as Exim does (<= <> R=parent)."""
    user = _local_user(config)
    spooled = SpoolMessage(
        report.new_id, "", [Recipient(recipient)], [SpoolHeader(t, k) for t, k in header_texts], report.now,
        caller=user, uid=os.getuid(), gid=os.getgid(),
        options={"received_protocol": "local", "body_linecount": str(text.count(b"\n")), "localerror": None},
    )
    spool.write(spooled, text)
    size = len(text) + sum(len(t) for t, _ in header_texts)
    log(f"{report.new_id} <= <> R={message.message_id} U={user} P=local S={size}")
    return report.new_id


def _reply_to(config: Config) -> list[tuple[str, str]]:
    """errors_reply_to: a Reply-To: on bounces and warnings."""
    value = config.main.get("errors_reply_to")
    return [(f"Reply-To: {value}\n", "R")] if value else []


def _references(message: SpoolMessage) -> list[tuple[str, str]]:
    """References: the original's Message-Id, when it has one."""
    own_id = next((h.text.split(":", 1)[1].strip() for h in message.headers if h.type == "I"), "")
    return [(f"References: {own_id}\n", " ")] if own_id else []


def _mime_headers(report: _Report, subject: str | None = None) -> list[tuple[str, str]]:
    """Content-Type, MIME-Version (the Subject between them for warnings), Message-Id and Date."""
    out = [(f"Content-Type: multipart/report; report-type=delivery-status; boundary={report.boundary}\n", " "),
           ("MIME-Version: 1.0\n", " ")]
    if subject is not None:
        out.append((f"Subject: {subject}\n", " "))
    return out + [(f"Message-Id: <E{report.new_id}@{report.host}>\n", "I"), (f"Date: {report.date}\n", " ")]


def _template(config: Config, option: str, message: SpoolMessage, body: bytes,
              variables: dict[str, str], log) -> list[str | None] | None:  # type: ignore[no-untyped-def]
    """bounce_message_file / warn_message_file: the template's items (text between "****" lines),
    each expanded with the report's variables set; None for an empty item or one that does not
    expand (its default text is used then, as in Exim), None for the whole when there is no file."""
    path = config.main.get(option)
    if not path:
        return None
    from pyxim.delivery.engine import _context
    from pyxim.errors import ExpansionError, ForcedFail
    from pyxim.expand import expand_string

    ctx = _context(config, message, body, None)
    try:
        name = expand_string(str(path), ctx)
        with open(name, encoding="utf-8", errors="surrogateescape") as f:
            text = f.read()
    except (OSError, ExpansionError, ForcedFail) as exc:
        # Exim carries on with its default wording and says why in the main log
        log(f"Failed to open {option} {path}: {getattr(exc, 'strerror', None) or exc}")
        return None
    ctx.variables.update(variables)
    items: list[str | None] = []
    current: list[str] = []
    for line in text.splitlines(keepends=True):
        if line.rstrip("\n") == "****":
            items.append("".join(current))
            current = []
        else:
            current.append(line)
    items.append("".join(current))
    out: list[str | None] = []
    for item in items:
        if not item:
            out.append(None)
            continue
        try:
            out.append(expand_string(item, ctx) or None)
        except (ExpansionError, ForcedFail):
            out.append(None)
    return out


def _item(items: list[str | None] | None, n: int) -> str | None:
    return items[n] if items is not None and n < len(items) else None


def _template_headers(text: str) -> list[tuple[str, str]]:
    """A template's header item: one spool header per header line (continuations kept with theirs)."""
    out: list[str] = []
    for line in text.splitlines(keepends=True):
        if not line.strip():
            break  # a blank line would end the header section: what follows it is not a header
        if line[0] in " \t" and out:
            out[-1] += line
        else:
            out.append(line)
    texts = [h if h.endswith("\n") else h + "\n" for h in out]
    return [(t, SpoolHeader.of(t).type) for t in texts]


def bounce_text(
    config: Config, message: SpoolMessage, body: bytes, failed: list[tuple[str, str, str]], boundary: str,
    info: dict[str, dict[str, str]] | None = None, intro: str | None = None,
) -> bytes:
    """The bounce's body: explanation, delivery-status part, the returned message.

    `intro`: the template's second item (bounce_message_file), which replaces the default text
    before the list of addresses; bounce_message_text goes after the default's first line."""
    host = _hostname(config)
    if intro is None:
        extra = str(config.main.get("bounce_message_text") or "")
        intro = _INTRO if not extra else _INTRO.replace("software.\n", f"software.\n{extra}", 1)
    else:
        intro += "\n"
    parts = [f"--{boundary}\nContent-type: text/plain; charset=us-ascii\n\n", intro]
    for address, reason, original in failed:
        parts.append(f"  {address}\n")
        if original != address:
            parts.append(f"    (generated from {original})\n")
        if reason:
            parts.append(f"    {reason}\n")
    parts.append(f"\n--{boundary}\nContent-type: message/delivery-status\n\nReporting-MTA: dns; {host}\n\n")
    extra = bool(config.main.get("dsn_extra_info", True))
    for address, reason, original in failed:
        # Exim names the recipient as it was received (the address before redirection)
        parts.append(f"Action: failed\nFinal-Recipient: rfc822;{original}\nStatus: 5.0.0\n")
        remote = re.match(r"host (\S+) \[[^\]]*\]\n\s+SMTP error from remote mail server after [^\n]*:\n\s+(.*)",
                          reason)
        if remote:
            # a remote server's refusal: which server, and its words (RFC 3464)
            parts.append(f"Remote-MTA: dns; {remote.group(1)}\n")
            more = (info or {}).get(address) if extra else None
            if more:
                # the experimental DSN extra information (dsn_extra_info turns it off)
                port = "" if more.get("port") in ("", "25") else f":{more['port']}"
                parts.append(f"Remote-MTA: X-ip; [{more['ip']}]{port}\n")
                for field_name, key in (("X-Remote-MTA-smtp-greeting", "greeting"),
                                        ("X-Remote-MTA-helo-response", "helo_response"),
                                        ("X-Exim-Diagnostic", "diagnostic")):
                    if more.get(key):
                        parts.append(f"{field_name}: X-str; {more[key]}\n")
            parts.append(f"Diagnostic-Code: smtp; {remote.group(2)}\n")
        parts.append("\n")
    headers_only = message.options.get("dsn_ret") == "2"  # RET=HDRS
    kind = "text/rfc822-headers" if headers_only else "message/rfc822"
    parts.append(f"--{boundary}\nContent-type: {kind}\n\n")
    text = "".join(parts).encode("utf-8", "surrogateescape")
    returned = _returned_headers(message) + b"\n"
    limit = int(config.main.get("bounce_return_size_limit") or 102400)
    if (config.main.get("bounce_return_body", True) and config.main.get("bounce_return_message", True)
            and not headers_only):
        returned += body if len(body) <= limit else body[:limit] + b"\n------ This is a copy of the message, truncated.\n"
    if not config.main.get("bounce_return_message", True):
        returned = b""
    return text + returned + f"\n--{boundary}--\n".encode()


def send_bounce(
    config: Config, spool: Spool, message: SpoolMessage, body: bytes, failed: list[tuple[str, str, str]], log,
    to: str | None = None, info: dict[str, dict[str, str]] | None = None,
) -> str | None:  # type: ignore[no-untyped-def]
    """Spool a bounce for `failed` to the message's sender (or `to`, a router's errors_to);
    returns its id (None for a bounce's bounce)."""
    if not message.sender:
        log(f"{message.message_id} Frozen (delivery error message)")
        message.options["frozen"] = str(int(time.time()))
        return None
    recipient = to or message.sender
    flags = {r.address: r.dsn_flags for r in message.recipients}
    failed = [f for f in failed if wants_failure_report(flags.get(f[2], 0))]
    if not failed:
        return None
    report = _new_report(config)
    failed_list = ",\n  ".join(a for a, _, _ in failed)
    limit = int(config.main.get("bounce_return_size_limit") or 102400)
    items = _template(config, "bounce_message_file", message, body,
                      {"bounce_recipient": recipient, "bounce_return_size_limit": str(limit)}, log)
    mime = _mime_headers(report, "Mail delivery failed: returning message to sender")
    heading = _item(items, 0)
    if heading is not None:
        # the template's first item stands where Exim's own Subject: line would be
        mime[2:3] = _template_headers(heading)
    header_texts = [
        (_received(config, report.host, report.new_id, recipient, report.date), "P"),
        (f"X-Failed-Recipients: {failed_list}\n", " "),
        *_reply_to(config),
        ("Auto-Submitted: auto-replied\n", " "),
        (f"From: Mail Delivery System <Mailer-Daemon@{report.host}>\n", "F"),
        (f"To: {recipient}\n", "T"),
        *_references(message),
        *mime,
    ]
    text = bounce_text(config, message, body, failed, report.boundary, info, intro=_item(items, 1))
    return _spool_report(config, spool, message, report, recipient, header_texts, text, log)

NOTIFY_NEVER, NOTIFY_SUCCESS, NOTIFY_FAILURE, NOTIFY_DELAY = 0x02, 0x04, 0x08, 0x10


def wants_failure_report(flags: int) -> bool:
    """RFC 3461: a recipient given NOTIFY without FAILURE (or NOTIFY=NEVER) gets no bounce."""
    return not flags or bool(flags & NOTIFY_FAILURE)


def _returned_headers(message: SpoolMessage) -> bytes:
    out = f"Return-path: <{message.sender}>\n".encode("utf-8", "surrogateescape")
    for h in message.headers:
        if h.type != "*":
            out += h.text.encode("utf-8", "surrogateescape")
    return out


def send_success_dsn(
    config: Config, spool: Spool, message: SpoolMessage, body: bytes, delivered: list[tuple[str, str, str]], log
) -> str | None:  # type: ignore[no-untyped-def]
    """RFC 3461 success notification for recipients that asked (NOTIFY=SUCCESS), as Exim words it.

    `delivered` holds (final address, recipient as received, "server|how" for a remote delivery
    reported here — a server that takes no DSN options, or dsn_lasthop — or ""); the report names the
    recipient as
    submitted (ORCPT, and Final-Recipient the received address), never a rewritten one."""
    if not message.sender or not delivered:
        return None
    report = _new_report(config)
    host, boundary = report.host, report.boundary
    by_address = {r.address: r for r in message.recipients}
    parts = [f"--{boundary}\nContent-type: text/plain; charset=us-ascii\n\n",
             "This message was created automatically by mail delivery software.\n",
             " ----- The following addresses had successful delivery notifications -----\n"]
    for _address, original, relay in delivered:
        how = relay.split("|", 1)[1] if relay else 'relayed via non "Remote SMTP" router'
        parts.append(f"<{original}> ({how})\n")
    parts.append(f"\n--{boundary}\nContent-type: message/delivery-status\n\nReporting-MTA: dns; {host}\n")
    envid = message.options.get("dsn_envid")
    if envid:
        parts.append(f"Original-Envelope-ID: {envid}\n")
    parts.append("\n")
    for _address, original, relay in delivered:
        recipient = by_address.get(original)
        if recipient is not None and recipient.orcpt:
            parts.append(f"Original-Recipient: {recipient.orcpt}\n")
        parts.append(f"Action: delivered\nFinal-Recipient: rfc822;{original}\nStatus: 2.0.0\n")
        if relay:
            parts.append(f"Remote-MTA: dns; {relay.split('|', 1)[0]}\nDiagnostic-Code: smtp; 250 Ok\n\n")
        else:
            parts.append("Diagnostic-Code: X-Exim; relayed via non SMTP router\n\n")
    # a success report returns the headers only, whatever RET= asked for (as Exim)
    parts.append(f"--{boundary}\nContent-type: text/rfc822-headers\n\n")
    text = "".join(parts).encode("utf-8", "surrogateescape") + _returned_headers(message) + b"\n"
    text += f"\n--{boundary}--\n".encode()
    header_texts = [
        (_received(config, host, report.new_id, message.sender, report.date), "P"),
        (f"From: Mail Delivery System <Mailer-Daemon@{host}>\n", "F"),
        ("Auto-Submitted: auto-generated\n", " "),
        (f"To: {message.sender}\n", "T"),
        ("Subject: Delivery Status Notification\n", " "),
        *_references(message),
        *_mime_headers(report),
    ]
    return _spool_report(config, spool, message, report, message.sender, header_texts, text, log)

def _delay_text(seconds: float) -> str:
    # Exim words a short delay in minutes, a longer one in hours
    return f"{int(seconds // 60)} minutes" if seconds < 120 * 60 else f"{int(seconds // 3600)} hours"


def send_delay_warning(
    config: Config, spool: Spool, message: SpoolMessage, body: bytes, deferred: list[tuple[str, str]],
    threshold: float, log,
) -> str | None:  # type: ignore[no-untyped-def]
    """The "message delayed" report (delay_warning), as Exim words it; deferred: (address, reason)."""
    report = _new_report(config)
    host, boundary = report.host, report.boundary
    delay = _delay_text(threshold)
    items = _template(config, "warn_message_file", message, body,
                      {"warn_message_delay": delay, "warn_message_recipients": message.sender}, log)
    intro = _item(items, 1)
    parts = [f"--{boundary}\nContent-type: text/plain; charset=us-ascii\n\n"]
    if intro is not None:
        parts.append(intro)
    else:
        parts += ["This message was created automatically by mail delivery software.\n",
                  "A message that you sent has not yet been delivered to one or more of its\n",
                  f"recipients after more than {delay} on the queue on {host}.\n\n",
                  f"The message identifier is:     {message.message_id}\n"]
        # the original's Subject: and Date: as they stand in its header, in their order (as Exim)
        for h in message.headers:
            name = h.text.split(":", 1)[0].strip().lower()
            if h.type != "*" and name == "subject":
                parts.append(f"The subject of the message is: {h.text[9:]}")
            elif h.type != "*" and name == "date":
                parts.append(f"The date of the message is:    {h.text[6:]}")
        parts.append("\n")
        if len(deferred) == 1:
            parts.append("The address to which the message has not yet been delivered is:\n")
        else:
            parts.append("The addresses to which the message has not yet been delivered are:\n")
    parts.append("\n")
    for address, reason in deferred:
        parts.append(f"  {address}\n")
        if reason:
            parts.append(f"    Delay reason: {reason}\n")
    parts.append("\n")
    if items is not None:
        # with a template only its third item follows the list (nothing when it is empty)
        parts.append(_item(items, 2) or "")
    else:
        parts.append("No action is required on your part. Delivery attempts will continue for\n"
                     "some time, and this warning may be repeated at intervals if the message\n"
                     "remains undelivered. Eventually the mail delivery software will give up,\n"
                     "and when that happens, the message will be returned to you.\n")
    parts.append(f"\n--{boundary}\nContent-type: message/delivery-status\n\nReporting-MTA: dns; {host}\n\n")
    for address, _reason in deferred:
        parts.append(f"Action: delayed\nFinal-Recipient: rfc822;{address}\nStatus: 4.0.0\n\n")
    parts.append(f"--{boundary}\nContent-type: text/rfc822-headers\n\n")
    text = "".join(parts).encode("utf-8", "surrogateescape") + _returned_headers(message) + b"\n"
    text += f"\n--{boundary}--\n".encode()
    mime = _mime_headers(report, f"Warning: message {message.message_id} delayed {delay}")
    heading = _item(items, 0)
    if heading is not None:
        mime[2:3] = _template_headers(heading)
    header_texts = [
        (_received(config, host, report.new_id, message.sender, report.date), "P"),
        *_reply_to(config),
        ("Auto-Submitted: auto-replied\n", " "),
        (f"From: Mail Delivery System <Mailer-Daemon@{host}>\n", "F"),
        (f"To: {message.sender}\n", "T"),
        *_references(message),
        *mime,
    ]
    return _spool_report(config, spool, message, report, message.sender, header_texts, text, log)


QUOTA_WARN_MESSAGE = (
    "To: $local_part@$domain\nSubject: Your mailbox\n\n"
    "This message is automatically created by mail delivery software (Exim).\n\n"
    "The size of your mailbox has exceeded a warning threshold that is\n"
    "set by the system administrator.\n"
)


def send_quota_warning(config: Config, spool: Spool, message: SpoolMessage, text: str, log) -> str | None:  # type: ignore[no-untyped-def]
    """appendfile's quota_warn_message (already expanded): its header lines, then its text, sent from <>
    to the addresses of its To:/Cc:/Bcc: lines (Exim submits it with -t), with Exim's Auto-Submitted: and
    From: lines first and Message-Id:/Date: added. Returns the new message's id (None: no recipient)."""
    import pwd

    from pyxim.address import extract_address, split_address_list

    head, _, body = text.replace("\r\n", "\n").partition("\n\n")
    fields: list[str] = []
    for line in head.split("\n"):
        if line[:1] in (" ", "\t") and fields:
            fields[-1] += "\n" + line
        elif line.strip():
            fields.append(line)
    recipients: list[str] = []
    for field in fields:
        name, _, value = field.partition(":")
        if name.strip().lower() in ("to", "cc", "bcc"):
            for piece in split_address_list(value):
                parsed = extract_address(piece)
                if parsed is not None and parsed.address:
                    recipients.append(parsed.address)
    if not recipients:
        log(f"{message.message_id} quota warning message has no recipients")
        return None
    try:
        user = pwd.getpwuid(os.getuid()).pw_name  # the delivery process, as Exim's child names its caller
    except KeyError:
        user = str(os.getuid())
    report = _new_report(config)
    kinds = {"to": "T", "cc": "C", "subject": " ", "reply-to": "R"}
    header_texts = [
        (_received(config, report.host, report.new_id, recipients, report.date, user), "P"),
        ("Auto-Submitted: auto-replied\n", " "),
        (f"From: Mail Delivery System <Mailer-Daemon@{report.host}>\n", "F"),
        *[(f + "\n", kinds.get(f.partition(":")[0].strip().lower(), " ")) for f in fields
          if f.partition(":")[0].strip().lower() != "bcc"],
        (f"Message-Id: <E{report.new_id}@{report.host}>\n", "I"),
        (f"Date: {report.date}\n", " "),
    ]
    data = body.encode("utf-8", "surrogateescape")
    spooled = SpoolMessage(
        report.new_id, "", [Recipient(r) for r in recipients], [SpoolHeader(t, k) for t, k in header_texts],
        report.now, caller=user, uid=os.getuid(), gid=os.getgid(),
        options={"received_protocol": "local", "body_linecount": str(data.count(b"\n")), "localerror": None},
    )
    spool.write(spooled, data)
    size = len(data) + sum(len(t) for t, _ in header_texts) + 1  # the empty line after the headers counts
    log(f"{report.new_id} <= <> R={message.message_id} U={user} P=local S={size}")
    return report.new_id

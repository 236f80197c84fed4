"""Local submission, sendmail-style: -bm (the default with addresses), -t, -i/-oi, -f, -F.

The message comes on standard input. Without -i (or -oi) a line holding
only "." ends it, as with sendmail. With -t the recipients come from the
To:, Cc: and Bcc: headers (Bcc: is then hidden from the copies). The rest —
headers added, the spool, the log line — is the SMTP session's own code
path, with the protocol named "local".
"""

from __future__ import annotations

import os
import pwd
from pathlib import Path

from pyxim.address import extract_address, split_address_list
from pyxim.config.model import Config
from pyxim.errors import PyximError
from pyxim.expand.taint import Tainted
from pyxim.log import Logger
from pyxim.smtp.session import Envelope, SessionOutput, SmtpSession, _login, _split_message
from pyxim.spool.format import Recipient
from pyxim.spool.ids import MessageIdGenerator
from pyxim.spool.store import Spool


class SubmissionError(PyximError):
    pass


def read_message(stream, dot_ends: bool) -> tuple[bytes, int]:  # type: ignore[no-untyped-def]
    lines: list[bytes] = []
    longest = 0
    for raw in stream:
        line = raw[:-1] if raw.endswith(b"\n") else raw
        if line.endswith(b"\r"):
            line = line[:-1]
        if dot_ends and line == b".":
            break
        longest = max(longest, len(line))
        lines.append(line + b"\n")
    return b"".join(lines), longest


def _gecos_name() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_gecos.split(",")[0] or _login()
    except KeyError:
        return _login()


def submit(config: Config, stdin, recipients: list[str], extract: bool, dot_ends: bool,  # type: ignore[no-untyped-def]
           sender: str | None, full_name: str | None, origin: dict[str, str] | None = None) -> tuple[str, bool]:
    """A message from standard input (-bm, -t). `origin`: the -oM options of a trusted caller (the host,
    its name, ident and authentication, the protocol -oMr names) for a message passed on by a filter."""
    spool = Spool(Path(str(config.main["spool_directory"])), bool(config.main.get("split_spool_directory")))
    logger = Logger(str(config.main.get("log_file_path") or ""), str(config.main["spool_directory"]))

    def store(message, body):  # type: ignore[no-untyped-def]
        spool.write(message, body)
        return message.message_id

    origin = origin or {}
    from pyxim.cli import origin_peer

    session = SmtpSession(config, origin_peer(origin), store, MessageIdGenerator().new_id, logger.main)
    # -oMr's value is the caller's text: the -H file marks it tainted, as Exim's does
    session.protocol_override = Tainted(origin["-oMr"]) if origin.get("-oMr") else "local"
    if origin:
        from pyxim.cli import apply_origin

        apply_origin(session, origin)
    start = session._acl("acl_not_smtp_start", "accept")
    if start.verdict != "accept":
        raise SubmissionError(start.message or "message rejected by acl_not_smtp_start")
    data, longest = read_message(stdin, dot_ends)
    # the caller's own address takes qualify_domain (qualify_recipient is for recipients)
    from pyxim.expand.variables import resolve_variable
    from pyxim.smtp.session import _Ev

    default_sender = f"{_login()}@{resolve_variable(_Ev(session.ctx), 'qualify_domain')}"
    if sender is None:
        sender = default_sender
        session.extra_options = {"auth_id": _login(), "auth_sender": default_sender, "local": None}
    # Exim names the caller in a generated From: only when the sender is the caller's own address
    # (or -F gives a name): "-f other@address" alone makes "From: other@address"
    if full_name is not None:
        session.originator_name = full_name
    else:
        session.originator_name = _gecos_name() if sender == default_sender else ""
    addresses = list(recipients)
    if extract:
        headers, _ = _split_message(data)
        for header in headers:
            name, _, value = header.partition(":")
            if name.strip().lower() in ("to", "cc", "bcc"):
                for piece in split_address_list(value):
                    parsed = extract_address(piece)
                    if parsed is not None and parsed.address:
                        addresses.append(parsed.address)
        session.deleted_headers = {"bcc"}
    if not addresses:
        raise SubmissionError("no recipients found in message" if extract else "no recipients given")
    qualify = session._qualify_recipient()
    session.envelope = Envelope(
        sender=Tainted(sender),
        recipients=[Recipient(a if "@" in a else f"{a}@{qualify}") for a in addresses],
    )
    session.ctx.variables["sender_address"] = Tainted(sender)
    result = session._acl("acl_not_smtp", "accept")
    if result.verdict != "accept":
        raise SubmissionError(result.message or "message rejected by acl_not_smtp")
    out = SessionOutput()
    session._message_done(out, data, longest)
    reply = "".join(out.replies)
    if not reply.startswith("250"):
        raise SubmissionError(reply.strip())
    message_id = reply.split("id=", 1)[1].strip()
    wanted = any(mid == message_id and deliver for mid, deliver in session.received)
    return message_id, wanted

"""The autoreply transport: its option table (Exim 4.96 names, types and defaults)."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
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
    from pyxim.delivery.bounce import _hostname, _local_user, _received
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
    try:
        memo = _once_settings(call, filtered)
    except ExpansionError as exc:
        return DeliveryResult("defer", f"Expansion of autoreply option in {name} transport failed: {exc.message}")
    except _OnceError as exc:
        return DeliveryResult("defer", str(exc))
    if memo is not None and fields["to"]:
        try:
            then = memo.last_sent(fields["to"])
        except OSError as exc:
            return DeliveryResult("defer", f"Failed to open {memo.kind} file {memo.path} when sending message "
                                           f"from {name} transport: {exc.strerror or exc}")
        if then is not None and (not memo.repeat or time.time() - then < memo.repeat):
            # sent before (and not long enough ago): no reply, the address counts as delivered
            if memo.log:
                error = _write_reply_log(call, memo.log, f"{_log_stamp()}\n  previously sent to {fields['to'][:200]}\n")
                if error:
                    return DeliveryResult("defer", error)
            return DeliveryResult("ok")
    config = call.config
    host = _hostname(config)
    now = time.time()
    new_id = MessageIdGenerator().new_id()
    date = formatdate(now, localtime=True)
    own_id = next((h.text.split(":", 1)[1].strip() for h in call.message.headers if h.type == "I"), "")
    user = _transport_user(call) or _local_user(config)
    # Exim submits the reply as the transport's user (exim -t): the Received line names that user
    headers: list[tuple[str, str]] = [(_received(config, host, new_id, recipients, date, user), "P")]
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
    if memo is not None and fields["to"]:
        try:
            memo.remember(fields["to"], now)
        except OSError:
            pass  # the reply went: a once file that cannot be written only means it may go again
    log_name = memo.log if memo is not None else _log_name(call, filtered)
    if log_name:
        # Exim's record of what was sent: a time stamp, then the new message's main header fields
        entry = f"{_log_stamp()}\n"
        for label, key in (("From", "from"), ("To", "to"), ("Cc", "cc"), ("Bcc", "bcc"), ("Subject", "subject")):
            if fields[key]:
                entry += f"  {label}: {fields[key]}\n"
        if fields["headers"]:
            entry += f"  {fields['headers']}\n"
        error = _write_reply_log(call, log_name, entry)
        if error:
            return DeliveryResult("defer", error)
    size = len(data) + sum(len(t) for t, _ in headers) + 1  # the empty line after the headers counts
    result = DeliveryResult("ok")
    result.log.append(f"{new_id} <= <> R={call.message.message_id} U={user} P=local S={size}")
    result.new_messages.append(new_id)
    return result


class _OnceError(Exception):
    """A once/once_repeat/log setting that cannot be used (Exim defers the address)."""


def _log_stamp() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())


def _filter_path(call: TransportCall, value: str | None) -> str | None:
    """A filter's once or log file: a relative name is in the user's home directory, as its
    mail/vacation file is."""
    if not value:
        return value
    if not value.startswith("/"):
        return os.path.join(str(call.ctx.variables.get("home") or "/"), value)
    return value


def _log_name(call: TransportCall, filtered: dict | None) -> str | None:  # type: ignore[type-arg]
    if filtered is not None:
        return _filter_path(call, filtered["fields"].get("log"))
    return _expand(call, "log")


@dataclass(slots=True)
class _Once:
    """Where an autoreply remembers whom it has replied to (Exim's "once" database or, with
    once_file_size, a plain file of limited size), and for how long that stops another reply."""

    path: str
    repeat: int  # once_repeat in seconds; 0: never again
    size: int  # once_file_size; 0: the database form
    log: str | None
    uid: int | None
    gid: int | None
    mode: int

    @property
    def kind(self) -> str:
        return "cache" if self.size else "database"

    def last_sent(self, to: str) -> float | None:
        if self.size:
            return next((t for t, address in reversed(self._entries()) if address == to), None)
        with self._db() as db:
            row = db.execute("SELECT sent FROM once WHERE address = ?", (to,)).fetchone()
        return float(row[0]) if row else None

    def remember(self, to: str, when: float) -> None:
        if self.size:
            # the newest entry goes at the end; the oldest ones go when the file would be too big
            lines = [f"{int(t)} {a}\n" for t, a in self._entries() if a != to] + [f"{int(when)} {to}\n"]
            while len(lines) > 1 and sum(len(x) for x in lines) > self.size:
                lines.pop(0)
            fd = _open_owned(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, self.mode, self.uid, self.gid)
            with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as f:
                f.write("".join(lines))
            return
        with self._db() as db:
            db.execute("INSERT OR REPLACE INTO once (address, sent) VALUES (?, ?)", (to, int(when)))

    def _entries(self) -> list[tuple[float, str]]:
        fd = _open_owned(self.path, os.O_RDONLY | os.O_CREAT, self.mode, self.uid, self.gid)
        with os.fdopen(fd, encoding="utf-8", errors="surrogateescape") as f:
            out = []
            for line in f:
                stamp, _, address = line.rstrip("\n").partition(" ")
                if stamp.isdigit():
                    out.append((float(stamp), address))
            return out

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        # a hints-style file at the path given; made (and owned) as the transport's user would make it
        os.close(_open_owned(self.path, os.O_RDWR | os.O_CREAT, self.mode, self.uid, self.gid))
        try:
            db = sqlite3.connect(self.path, timeout=10)
        except sqlite3.Error as exc:
            raise OSError(str(exc)) from None
        try:
            with db:
                db.execute("CREATE TABLE IF NOT EXISTS once (address TEXT PRIMARY KEY, sent INTEGER)")
                yield db
        except sqlite3.Error as exc:
            raise OSError(str(exc)) from None
        finally:
            db.close()


def _open_owned(path: str, flags: int, mode: int, uid: int | None, gid: int | None) -> int:
    """Open a file the transport keeps; when pyxim runs as root and the transport has a user, a file it
    creates belongs to that user (Exim's transport process runs as the user and creates it so)."""
    created = not os.path.exists(path)
    fd = os.open(path, flags, mode)
    if created and uid is not None and os.geteuid() == 0:
        try:
            os.fchown(fd, uid, gid if gid is not None else -1)
        except OSError:
            pass
    return fd


def _once_settings(call: TransportCall, filtered: dict | None) -> _Once | None:  # type: ignore[type-arg]
    """once, once_repeat and once_file_size (a filter's once and once_repeat), or None without once."""
    from pyxim.config.options import read_time
    from pyxim.expand.taint import is_tainted

    name = call.transport.name
    if filtered is not None:
        path = _filter_path(call, filtered["fields"].get("once"))
        repeat_text = filtered["fields"].get("once_repeat")
        tainted = "once" in filtered.get("tainted", ())
    else:
        path = _expand(call, "once")
        repeat_text = _expand(call, "once_repeat")
        tainted = path is not None and is_tainted(path)
    if not path:
        return None
    if tainted:
        raise _OnceError(f"Tainted '{path}' (once file for {name} transport) not permitted")
    repeat = 0
    if repeat_text:
        value = read_time(repeat_text.strip())
        if value is None:
            raise _OnceError(f'Invalid time value "{repeat_text}" for "once_repeat" in {name} transport')
        repeat = value
    size = 0 if filtered is not None else int(call.transport.options.get("once_file_size") or 0)
    mode = int(call.transport.options.get("mode") or 0o600)
    return _Once(path, repeat, size, _log_name(call, filtered), call.uid, call.gid, mode)


def _write_reply_log(call: TransportCall, path: str, text: str) -> str:
    """Append to the autoreply's log file; Exim's error text when that fails ("" when it worked)."""
    mode = int(call.transport.options.get("mode") or 0o600)
    try:
        fd = _open_owned(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, mode, call.uid, call.gid)
        try:
            os.write(fd, text.encode("utf-8", "surrogateescape"))
        finally:
            os.close(fd)
    except OSError as exc:
        return f"Failed to open log file {path} for {call.transport.name} transport: {exc.strerror}"
    return ""


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

"""The message as expansion sees it: header lines in order, and the body.

A Message is built by whoever has one: the SMTP session (after DATA), the
spool reader, or `-bem FILE` (load_bem_message below, which reads the file
the way Exim's -bem does). Header lines keep their raw text, continuation
lines and final newline included; $h_ trims and decodes, $rh_ gives them raw
(see variables.py).

Each header line carries Exim's type letter (the one the spool -H file
stores): P Received, F From, T To, C Cc, B Bcc, R Reply-To, S Sender,
I Message-Id, a space for the rest, and * for a line that was replaced or
removed — such lines stay in the list (Exim keeps them on the spool) but
nothing in expansion sees them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pyxim.expand.taint import Tainted

if TYPE_CHECKING:  # pragma: no cover
    from pyxim.expand.context import ExpansionContext

# Header names with a type letter. The ones in _RESENT keep their letter with
# a "Resent-" prefix (Exim treats Resent-To: like To:, but not Resent-Reply-To:).
_TYPES = {
    "bcc": "B",
    "cc": "C",
    "from": "F",
    "message-id": "I",
    "received": "P",
    "reply-to": "R",
    "sender": "S",
    "to": "T",
}
_RESENT = frozenset({"bcc", "cc", "from", "message-id", "sender", "to"})
DELETED = "*"


def header_name(text: str) -> str:
    """The name part of a header line: everything before the colon, trailing white space dropped."""
    return text.split(":", 1)[0].rstrip(" \t")


def header_type(text: str) -> str:
    """Exim's type letter for a header line (see the module docstring)."""
    name = header_name(text).lower()
    if name.startswith("resent-") and name[7:] in _RESENT:
        return _TYPES[name[7:]]
    return _TYPES.get(name, " ")


@dataclass(slots=True)
class HeaderLine:
    name: str  # as written
    raw: str  # the whole header line(s) including the name and the final newline
    type: str = ""  # Exim's type letter; worked out from the name when not given

    def __post_init__(self) -> None:
        if not self.type:
            self.type = header_type(self.raw)

    @property
    def value(self) -> str:
        """Everything after the colon, continuation lines included, final newline kept."""
        return self.raw.split(":", 1)[1] if ":" in self.raw else ""

    @property
    def deleted(self) -> bool:
        return self.type == DELETED

    def is_named(self, name: str) -> bool:
        """Exim's test for $h_name: — the line starts with "name:", case ignored (no space before the colon)."""
        prefix = name + ":"
        return self.raw[: len(prefix)].lower() == prefix.lower()


@dataclass(slots=True)
class Message:
    headers: list[HeaderLine] = field(default_factory=list)
    body: str = ""

    @classmethod
    def from_bytes(cls, data: bytes) -> Message:
        """A plain RFC 5322 parse: header lines up to the first empty line (or non-header line), then the body.

        CRLF line ends become LF. For the way `exim -bem` reads a file (a
        line holding "." ends it, counts, added headers) see load_bem_message.
        """
        text = data.decode("utf-8", "surrogateescape").replace("\r\n", "\n")
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        headers: list[HeaderLine] = []
        i = 0
        while i < len(lines):
            line = lines[i]
            if line == "":
                i += 1
                break
            if line[:1] in (" ", "\t") and headers:
                headers[-1].raw += line + "\n"
            elif _is_header_line(line):
                headers.append(HeaderLine(header_name(line), line + "\n"))
            else:
                break  # not a header: the body starts here (no blank line)
            i += 1
        body_lines = lines[i:]
        body = "\n".join(body_lines) + ("\n" if body_lines else "")
        return cls(headers, body)

    @classmethod
    def from_file(cls, path: str) -> Message:
        with open(path, "rb") as f:
            return cls.from_bytes(f.read())

    # -- headers -------------------------------------------------------------

    @property
    def visible_headers(self) -> list[HeaderLine]:
        """The header lines that are still part of the message (not replaced or removed)."""
        return [h for h in self.headers if not h.deleted]

    def find_headers(self, name: str) -> list[HeaderLine]:
        """The live header lines called `name` (no colon), in order."""
        return [h for h in self.headers if not h.deleted and h.is_named(name)]

    def has_header(self, name: str) -> bool:
        return any(not h.deleted and h.is_named(name) for h in self.headers)

    def header_values(self, name: str) -> list[str]:
        return [h.value for h in self.find_headers(name)]

    def headers_text(self, raw: bool = False) -> str:
        """All live header lines, as one text without the last newline."""
        return "".join(h.raw for h in self.visible_headers).rstrip("\n")

    # -- body ----------------------------------------------------------------

    def body_visible(self, limit: int, from_end: bool = False, keep_newlines: bool = False) -> str:
        """$message_body / $message_body_end: the first (or last) `limit` bytes of the body.

        Exim turns newlines (unless message_body_newlines is set) and binary
        zeros into spaces so the value fits on one line.
        """
        data = self.body.encode("utf-8", "surrogateescape")
        part = data[-limit:] if from_end and limit > 0 else data[: max(limit, 0)]
        part = part.replace(b"\0", b" ")
        if not keep_newlines:
            part = part.replace(b"\n", b" ")
        return part.decode("utf-8", "surrogateescape")

    # -- sizes (what a reader computes when nobody measured the message) -----

    @property
    def size(self) -> int:
        header_bytes = sum(len(h.raw.encode("utf-8", "surrogateescape")) for h in self.visible_headers)
        return header_bytes + 1 + len(self.body.encode("utf-8", "surrogateescape"))

    @property
    def body_size(self) -> int:
        return len(self.body.encode("utf-8", "surrogateescape"))

    @property
    def body_linecount(self) -> int:
        return self.body.count("\n")

    @property
    def body_zerocount(self) -> int:
        return self.body.count("\0")

    @property
    def linecount(self) -> int:
        return sum(h.raw.count("\n") for h in self.visible_headers) + 1 + self.body_linecount


def _is_header_line(line: str) -> bool:
    """Exim's test: printing characters other than ":" (at least none of them white space), optional blanks, ":"."""
    i = 0
    n = len(line)
    while i < n and "!" <= line[i] <= "~" and line[i] != ":":
        i += 1
    while i < n and line[i] in " \t":
        i += 1
    return i < n and line[i] == ":" and line[:1] not in (" ", "\t")


# -- reading a message file the way exim -bem does ------------------------------


@dataclass(slots=True)
class BemReading:
    """What Exim's reception code measured while reading a -bem file."""

    headers: list[bytes]  # header lines (continuations joined), LF line ends
    body: bytes  # the body as Exim keeps it
    header_size: int  # bytes counted while reading the header part
    linecount: int  # $message_linecount
    body_linecount: int  # $body_linecount (Exim's count, quirks included)
    body_zerocount: int
    uucp_from: bytes | None = None  # a leading "From " line that was taken as the sender
    uucp_match: re.Match[str] | None = None
    no_headers: bool = False  # the first line was not a header ("Warning: no message headers read")

    @property
    def size(self) -> int:
        return self.header_size + len(self.body)


def _physical_line(data: bytes, pos: int) -> tuple[bytes, int]:
    """One line from `pos`, newline included; at the end of the data a newline is supplied."""
    end = data.find(b"\n", pos)
    if end < 0:
        return data[pos:] + b"\n", len(data)
    return data[pos : end + 1], end + 1


def _lf(line: bytes) -> bytes:
    return line[:-2] + b"\n" if line.endswith(b"\r\n") else line


def read_bem(
    data: bytes, dot_ends: bool = True, visible: int = 500, uucp_from: re.Pattern[str] | None = None
) -> BemReading:
    """Read a message the way exim -bem reads its file (Exim's receive_msg() then read_message_body()).

    Header part: CRLF becomes LF; a line holding only "." ends the message
    (unless -i); an empty line ends the headers; the first line that is not
    a header ends them too and is lost (it is counted in the size, as Exim
    does, but is not part of the body). Body part: kept as it is (CRs too),
    without dot-unstuffing; $body_linecount follows Exim's state machine,
    which does not count empty lines. `visible` is message_body_visible,
    which takes part in one of Exim's counting corner cases.
    """
    pos = 0
    n = len(data)
    headers: list[bytes] = []
    size = 0
    lines = 0
    uucp_line: bytes | None = None
    uucp_match: re.Match[str] | None = None
    no_headers = False
    read_body = False
    first = True
    while True:
        if pos >= n and n > 0:
            break  # the end of the file came where a new line would start: no body
        line, pos = _physical_line(data, pos)
        if dot_ends and line in (b".\n", b".\r\n"):
            break  # the message ends here
        if line in (b"\n", b"\r\n"):
            size += 1
            lines += 1
            read_body = pos < n
            if first:
                no_headers = True
            break
        text = _lf(line)
        physical = 1
        while pos < n and data[pos : pos + 1] in (b" ", b"\t"):
            more, pos = _physical_line(data, pos)
            text += _lf(more)
            physical += 1
        size += len(text)
        lines += physical
        decoded = text.decode("utf-8", "surrogateescape")
        if first and uucp_from is not None and physical == 1:
            m = uucp_from.search(decoded.rstrip("\n"))
            if m:
                uucp_line, uucp_match = text, m
                continue  # first stays True: the next line is still the first of the message
        if not _is_header_line(decoded.rstrip("\n")):
            # Exim keeps reading the body after it, but the line itself is lost
            no_headers = no_headers or first
            read_body = pos < n
            break
        headers.append(text)
        first = False
    body = bytearray()
    body_lines = 0
    zeros = 0
    if read_body:
        body_lines, zeros = _read_body(data[pos:], dot_ends, body)
        # Exim counts a last line that has no newline — and also whenever its
        # ring buffer for $message_body_end has just wrapped round.
        if len(body) % (visible + 1) == 0 or body[-1:] != b"\n":
            body_lines += 1
    return BemReading(
        headers, bytes(body), size, lines + body_lines, body_lines, zeros, uucp_line, uucp_match, no_headers
    )


def _read_body(data: bytes, dot_ends: bool, out: bytearray) -> tuple[int, int]:
    """The body part of read_bem: (line count, zero count); bytes go to `out`.

    With dot_ends, a line holding only "." ends the body (a dot alone at the
    very end is dropped), other lines are kept as they are, and — Exim's
    quirk — empty lines are not counted.
    """
    if not dot_ends:
        out += data
        return data.count(b"\n"), data.count(b"\0")
    count = 0
    pos = 0
    n = len(data)
    while pos < n:
        nl = data.find(b"\n", pos)
        end = n if nl < 0 else nl + 1
        line = data[pos:end]
        if line == b".\n":
            return count, data[: end - 1].count(b"\0")
        if line == b".":
            break
        if line != b"\n" and nl >= 0:
            count += 1
        out += line
        pos = end
    return count, data.count(b"\0")


# -- qualifying addresses in header lines ---------------------------------------

_SENDER_TYPES = frozenset("FSR")
_RECIPIENT_TYPES = frozenset("TCB")


def qualify_header(text: str, htype: str, sender_domain: str, recipient_domain: str) -> str | None:
    """Add a domain to every unqualified address of an address header (locally submitted messages).

    Returns the new header text, or None when nothing changed. Like Exim,
    a line break ("\\n\\t") goes after a qualified address once the line has
    grown more than 40 characters since the last break.
    """
    from pyxim.address import GroupState, ParsedAddress, find_address_end, parse_address

    if htype in _SENDER_TYPES:
        domain = sender_domain
    elif htype in _RECIPIENT_TYPES:
        domain = recipient_domain
    else:
        return None
    colon = text.find(":")
    if colon < 0:
        return None
    s = colon + 1
    while s < len(text) and text[s].isspace():
        s += 1
    group = GroupState(allow_group=True)
    changed = False
    last_break = 0
    while s < len(text):
        end = find_address_end(text, s)
        parsed = parse_address(text[s:end], group=group)
        start_piece = s
        s = end + (1 if end < len(text) else 0)
        while s < len(text) and text[s].isspace():
            s += 1
        if not isinstance(parsed, ParsedAddress) or parsed.domain or not parsed.address:
            continue
        new = f"{parsed.address}@{domain}"
        old_len = parsed.end - parsed.start
        head = text[: start_piece + parsed.start] + new + text[start_piece + parsed.end : s]
        rest = text[s:]
        resume = len(head)
        if len(new) > old_len and len(head) - last_break > 40:
            p = s - 1
            while p >= 0 and text[p] in " \t":
                p -= 1
            if p < 0 or text[p] != "\n":
                last_break = len(head)
                head += "\n\t"
        # Exim goes on scanning from where the old text stopped, just before any break it added.
        text = head + rest
        s = resume
        changed = True
    return text if changed else None


# -- -bem ---------------------------------------------------------------------------


def _option(ctx: ExpansionContext, name: str, default: object = None) -> object:
    config = ctx.config
    if config is None:
        return default
    value = config.main.get(name)
    return default if value is None else value


def _expand_option(ctx: ExpansionContext, name: str) -> str:
    from pyxim.expand import expand_string

    text = _option(ctx, name, "")
    return expand_string(str(text), ctx) if text else ""


def _id_part(text: str, allowed: str) -> str:
    """Characters that cannot go into a Message-Id: become "-", as Exim does."""
    return "".join(c if c.isascii() and (c.isalnum() or c in allowed) else "-" for c in text)


def load_bem_message(
    path: str,
    ctx: ExpansionContext,
    dot_ends: bool = True,
    sender: str | None = None,
    full_name: str | None = None,
) -> list[str]:
    """Read `path` as exim -bem does and make it the context's message.

    Sets ctx.message and the variables Exim sets for -bem ($message_exim_id,
    $message_size, $message_body, $body_linecount, $received_count …).
    Like Exim for a local message, it qualifies unqualified addresses in
    address headers and adds Message-Id:, From: and Date: when they are
    missing (Resent- versions when the message has Resent- headers); the
    Sender: lines of a caller that is not trusted are dropped (unless
    local_sender_retain) — -bem adds no Sender: of its own.
    `sender` is the -f address and `full_name` the -F name, if given. Returns the notices Exim prints on
    standard output before its first prompt ("Warning: no message headers
    read"…). Raises OSError when the file cannot be read.
    """
    from pyxim.expand import variables as V
    from pyxim.spool.ids import MessageIdGenerator

    with open(path, "rb") as f:
        data = f.read()
    visible = int(_option(ctx, "message_body_visible", 500))  # type: ignore[call-overload]
    trusted = V.caller_is_trusted(ctx)
    pattern_text = str(_option(ctx, "uucp_from_pattern", "") or "")
    pattern = None
    if pattern_text and sender is None:  # -bem honours the line whoever calls
        from pyxim.expand.regex import compile_pcre

        pattern = compile_pcre(pattern_text)
    reading = read_bem(data, dot_ends, visible, pattern)
    notices = ["Warning: no message headers read"] if reading.no_headers else []

    login = V.caller_login()
    qualify_domain = V.resolve_variable(V.bare_evaluation(ctx), "qualify_domain")
    qualify_recipient = V.resolve_variable(V.bare_evaluation(ctx), "qualify_recipient")
    default_sender = f"{login}@{qualify_domain}"
    if reading.uucp_match is not None:
        from pyxim.expand.evaluate import Evaluation

        ev = Evaluation(ctx)
        m = reading.uucp_match
        ev.set_captures([m.group(0), *[g or "" for g in m.groups()]])
        sender = ev.expand(str(_option(ctx, "uucp_from_sender", "$1")))
        notices.append('Sender taken from "From " line')
        if sender and "@" not in sender:
            sender = f"{sender}@{qualify_domain}"
    forced = sender is not None and sender != default_sender
    if sender is None:
        sender = default_sender

    from pyxim.rewrite import bem_rewriter

    rewriter = bem_rewriter(ctx)  # with rewrite rules, they qualify and rewrite the headers
    message = Message()
    for raw in reading.headers:
        text = raw.decode("utf-8", "surrogateescape")
        line = HeaderLine(header_name(text), text)
        message.headers.append(line)
        if _option(ctx, "no_qualify_headers", False):  # -bnq style suppression, if a caller sets it
            continue
        new = (rewriter(text, line.type) if rewriter is not None
               else qualify_header(text, line.type, qualify_domain, qualify_recipient))
        if new is not None:
            line.type = DELETED  # Exim keeps the old line, marked, and adds the new one after it
            message.headers.append(HeaderLine(header_name(new), new))
    message.body = reading.body.decode("utf-8", "surrogateescape")

    resent = any(h.name.lower().startswith("resent-") for h in message.visible_headers)
    prefix = "Resent-" if resent else ""

    def add(text: str, top: bool = False) -> None:
        line = HeaderLine(header_name(text), text)
        if top:
            message.headers.insert(0, line)
        else:
            message.headers.append(line)

    now = ctx.now()
    localhost_number = _option(ctx, "localhost_number")
    generator = MessageIdGenerator(
        int(str(localhost_number)) if localhost_number not in (None, "") else None, clock=lambda: now
    )
    message_id = generator.new_id()
    if not message.has_header(prefix + "Message-Id"):
        id_text = _id_part(_expand_option(ctx, "message_id_header_text"), "!#$%&'*+-/=?^_`{|}~.")
        id_domain = _id_part(_expand_option(ctx, "message_id_header_domain"), "-.[]:") or V.resolve_variable(
            V.bare_evaluation(ctx), "primary_hostname"
        )
        add(f"{prefix}Message-Id: <E{message_id}{'.' if id_text else ''}{id_text}@{id_domain}>\n", top=resent)

    name = full_name if full_name is not None else V.originator_name(ctx)
    if not message.has_header(prefix + "From"):
        if name and not forced:
            add(f"{prefix}From: {_phrase(name)} <{sender}>\n")
        else:
            add(f"{prefix}From: {sender}\n")
    if not trusted and not _option(ctx, "local_sender_retain", False):
        # An untrusted caller's Sender: lines go (Exim's -bem adds none of its own).
        for h in message.find_headers("Sender"):
            h.type = DELETED
    if not message.has_header(prefix + "Date"):
        tod = V.resolve_variable(V.bare_evaluation(ctx), "tod_full")
        add(f"{prefix}Date: {tod}\n", top=resent)

    ctx.message = message
    variables = ctx.variables
    variables.update(
        {
            "message_exim_id": message_id,
            "message_id": message_id,
            "received_time": str(int(now)),
            "message_age": "0",
            "received_count": str(sum(1 for h in message.visible_headers if h.type == "P") + 1),
            "message_size": str(reading.size),
            "message_body_size": str(len(reading.body)),
            "message_linecount": str(reading.linecount),
            "body_linecount": str(reading.body_linecount),
            "body_zerocount": str(reading.body_zerocount),
            # -bem fills these while reading, always with newlines turned into spaces
            "message_body": Tainted(message.body_visible(visible)),
            "message_body_end": Tainted(message.body_visible(visible, from_end=True)),
        }
    )
    if forced or reading.uucp_match is not None:
        variables["sender_address"] = Tainted(sender) if reading.uucp_match is not None else sender
    return notices


_PHRASE_SPECIALS = set('()<>@,;:\\".[]')


def _phrase(name: str) -> str:
    """A display name as it can stand in a header: quoted when it holds specials."""
    if not any(c in _PHRASE_SPECIALS for c in name):
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'

"""The bytes a transport writes: Exim's transport_write_message().

    spec = spec_for(call)                      # options of the transport, expanded
    data = write_message(call.message.headers, call.body, spec)

A message goes out as Exim writes it (transport.c): the optional
``Return-path:``, ``Envelope-to:`` and ``Delivery-date:`` lines, then the
spooled header lines in order (deleted ones, type "*", skipped; those named
by headers_remove left out; a trailing "*" in a name matches any header with
that prefix), then router-added and transport-added header lines
(headers_add), a blank line and the body.

check_string/escape_string apply at the start of every body line (the first
included); header lines are escaped only when `escape_headers` is set (Exim's
topt_escape_headers, used by the SMTP transports). use_crlf turns every LF of
the message (headers and body, not the prefix/suffix) into CRLF.

Everything here is bytes in the end: str values go out UTF-8 encoded with
surrogateescape, so bytes read from the spool come back unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pyxim.errors import ExpansionError, ForcedFail
from pyxim.expand import expand_string
from pyxim.lists import iterate_list

if TYPE_CHECKING:  # pragma: no cover
    from pyxim.delivery import TransportCall
    from pyxim.expand.context import ExpansionContext
    from pyxim.spool.format import SpoolHeader


def to_bytes(text: str | bytes) -> bytes:
    """A str as the bytes it stands for (UTF-8; surrogate escapes give the original bytes back)."""
    if isinstance(text, bytes):
        return text
    return text.encode("utf-8", "surrogateescape")


@dataclass(slots=True)
class WriteSpec:
    """What transport_write_message() needs besides the message itself.

    return_path: the value for a ``Return-path:`` line, None for no line.
    envelope_to: the addresses for an ``Envelope-to:`` line (none: no line).
    delivery_date: the value for a ``Delivery-date:`` line ($tod_full), None for none.
    headers_remove: header names (already expanded) to leave out; "X-*" is a prefix.
    headers_add: header texts (already expanded), written after the spooled
      ones (router-added first, then the transport's); a missing final newline is added.
    """

    return_path: str | None = None
    envelope_to: Sequence[str] = ()
    delivery_date: str | None = None
    headers_remove: Sequence[str] = ()
    headers_add: Sequence[str] = ()
    body_only: bool = False
    headers_only: bool = False
    check_string: str | bytes | None = None
    escape_string: str | bytes | None = None
    escape_headers: bool = False
    use_crlf: bool = False
    extra: dict[str, object] = field(default_factory=dict)  # for later transports (smtp/lmtp)
    filter_argv: Sequence[str] = ()  # transport_filter: the message passes through this command first
    filter_timeout: float = 300.0
    # headers_rewrite: a header's text as written (None: unchanged); the spool keeps the original
    rewrite: Callable[[SpoolHeader], str | None] | None = None


def header_removed(text: str, names: Iterable[str]) -> bool:
    """Whether header line `text` is named by one of `names` (Exim's caseless prefix
    match: "name" then optional white space and a colon; "pre*" any header starting "pre")."""
    low = text.lower()
    for name in names:
        if not name:
            continue
        n = name.lower()
        if n.endswith("*"):
            if low.startswith(n[:-1]):
                return True
            continue
        if not low.startswith(n):
            continue
        rest = text[len(n) :].lstrip(" \t")
        if rest.startswith(":"):
            return True
    return False


def _escape_lines(data: bytes, check: bytes, escape: bytes, at_start: bool) -> bytes:
    """Replace `check` by `escape` where it starts a line (and at the very start when at_start)."""
    if not check:
        return data
    lines = data.split(b"\n")
    out = []
    for i, line in enumerate(lines):
        if (i > 0 or at_start) and line.startswith(check):
            line = escape + line[len(check) :]
        out.append(line)
    return b"\n".join(out)


def write_message(headers: Iterable[SpoolHeader], body: bytes, spec: WriteSpec) -> bytes:
    """The message as a transport writes it (without message_prefix/message_suffix)."""
    head = bytearray()
    if not spec.body_only:
        if spec.return_path is not None:
            head += b"Return-path: <" + to_bytes(spec.return_path) + b">\n"
        if spec.envelope_to:
            seen: list[str] = []
            for a in spec.envelope_to:
                if a not in seen:
                    seen.append(a)
            head += b"Envelope-to: " + to_bytes(",\n ".join(seen)) + b"\n"
        if spec.delivery_date is not None:
            head += b"Delivery-date: " + to_bytes(spec.delivery_date) + b"\n"
        for h in headers:
            if h.type == "*":
                continue
            if spec.headers_remove and header_removed(h.text, spec.headers_remove):
                continue
            new = spec.rewrite(h) if spec.rewrite is not None else None
            head += to_bytes(h.text if new is None else new)
        for text in spec.headers_add:
            if not text:
                continue
            b = to_bytes(text)
            head += b if b.endswith(b"\n") else b + b"\n"
        head += b"\n"
    check = to_bytes(spec.check_string) if spec.check_string else b""
    escape = to_bytes(spec.escape_string) if spec.escape_string is not None else b""
    use_escape = bool(check) and spec.escape_string is not None
    head_b = bytes(head)
    if spec.filter_argv:
        # transport_filter: the message as it would be written goes through the command; what comes
        # out is written instead (then escaped, as Exim escapes the filter's output)
        filtered = _run_filter(spec, head_b + (b"" if spec.headers_only else bytes(body)))
        split = filtered.find(b"\n\n")
        head_b, body = (filtered[: split + 2], filtered[split + 2 :]) if split >= 0 else (b"", filtered)
    if use_escape and spec.escape_headers:
        head_b = _escape_lines(head_b, check, escape, at_start=True)
    body_b = b"" if spec.headers_only else bytes(body)
    if use_escape and body_b:
        body_b = _escape_lines(body_b, check, escape, at_start=True)
    data = head_b + body_b
    if spec.use_crlf:
        data = data.replace(b"\n", b"\r\n")
    return data


# -- building the spec from a transport's options ------------------------------


def _run_filter(spec: WriteSpec, data: bytes) -> bytes:
    import subprocess

    try:
        proc = subprocess.run(list(spec.filter_argv), input=data, capture_output=True,
                              timeout=spec.filter_timeout, check=False)
    except subprocess.TimeoutExpired:
        raise TransportWriteError("filter", " ".join(spec.filter_argv), "transport filter timed out") from None
    except OSError as exc:
        raise TransportWriteError("filter", " ".join(spec.filter_argv),
                                  f"transport filter process failed: {exc.strerror}") from None
    if proc.returncode != 0:
        raise TransportWriteError("filter", " ".join(spec.filter_argv),
                                  f"transport filter process failed ({proc.returncode})")
    return proc.stdout


class TransportWriteError(Exception):
    """An expansion needed to write the message failed: the delivery is deferred.

    `what` names the failing piece ("headers", "prefix", "suffix", "return_path");
    the transports word the message the way their Exim counterparts do."""

    def __init__(self, what: str, source: str, reason: str) -> None:
        super().__init__(reason)
        self.what = what
        self.source = source
        self.reason = reason


def _expand(text: str, ctx: ExpansionContext) -> str | None:
    """Expand; None when the expansion is forced to fail."""
    try:
        return expand_string(text, ctx)
    except ForcedFail:
        return None


def expanded_headers_remove(option: str | None, ctx: ExpansionContext) -> list[str]:
    """headers_remove: a colon list, each item expanded separately (empty or forced failure: no action)."""
    names: list[str] = []
    if not option:
        return names
    for item in iterate_list(option, ":"):
        try:
            value = _expand(item, ctx)
        except ExpansionError as e:
            raise TransportWriteError("headers", item, str(e)) from e
        if value:
            names.append(value)
    return names


def expanded_headers_add(option: str | None, ctx: ExpansionContext) -> list[str]:
    """headers_add: a newline list, each item expanded separately (empty or forced failure: nothing added)."""
    texts: list[str] = []
    if not option:
        return texts
    for item in iterate_list(option, "\n"):
        try:
            value = _expand(item, ctx)
        except ExpansionError as e:
            raise TransportWriteError("headers", item, str(e)) from e
        if value:
            texts.append(value)
    return texts


def effective_return_path(call: TransportCall) -> str:
    """The return path for this delivery: the transport's return_path option when set
    (forced failure: no change), else $return_path as the engine set it (the sender).
    The value is stored back in $return_path for the prefix expansion (mbox From line)."""
    ctx = call.ctx
    current = ctx.variables.get("return_path")
    if current is None:
        current = call.message.sender
    option = call.transport.options.get("return_path")
    if option:
        try:
            value = _expand(option, ctx)
        except ExpansionError as e:
            raise TransportWriteError("return_path", option, str(e)) from e
        if value is not None:
            current = value
            ctx.variables["return_path"] = value
    return current


def tod_full(ctx: ExpansionContext) -> str:
    return expand_string("$tod_full", ctx)


def spec_for(
    call: TransportCall,
    *,
    check_string: str | None = None,
    escape_string: str | None = None,
    use_crlf: bool | None = None,
    escape_headers: bool = False,
    router_headers_add: Sequence[str] = (),
    router_headers_remove: Sequence[str] = (),
) -> WriteSpec:
    """A WriteSpec from the transport's generic options (return_path_add,
    envelope_to_add, delivery_date_add, headers_add/remove, body_only,
    headers_only) and, unless given, its check_string/escape_string/use_crlf.
    Raises TransportWriteError when an expansion fails."""
    opts = call.transport.options
    ctx = call.ctx
    return_path = effective_return_path(call)
    remove = list(router_headers_remove or call.headers_remove) + expanded_headers_remove(
        opts.get("headers_remove"), ctx)
    add = list(router_headers_add or call.headers_add) + expanded_headers_add(opts.get("headers_add"), ctx)
    return WriteSpec(
        return_path=return_path if opts.get("return_path_add") else None,
        envelope_to=(call.envelope_to or [call.original or call.address]) if opts.get("envelope_to_add") else (),
        delivery_date=tod_full(ctx) if opts.get("delivery_date_add") else None,
        headers_remove=remove,
        headers_add=add,
        body_only=bool(opts.get("body_only")),
        headers_only=bool(opts.get("headers_only")),
        check_string=check_string if check_string is not None else opts.get("check_string"),
        escape_string=escape_string if escape_string is not None else opts.get("escape_string"),
        escape_headers=escape_headers,
        use_crlf=bool(opts.get("use_crlf")) if use_crlf is None else use_crlf,
        filter_argv=_filter_argv(call),
        filter_timeout=float(opts.get("transport_filter_timeout") or 300),
        rewrite=_headers_rewrite(call),
    )


def _headers_rewrite(call: TransportCall) -> Callable[[SpoolHeader], str | None] | None:
    option = call.transport.options.get("headers_rewrite")
    if not option:
        return None
    from pyxim.rewrite import transport_rewriter

    # unqualified header addresses are qualified only where the message was allowed them
    allowed = "allow_unqualified_recipient" in getattr(call.message, "options", {})
    return transport_rewriter(str(option), call.ctx.config, call.ctx, allowed)


def _filter_argv(call: TransportCall) -> list[str]:
    """transport_filter split into arguments before each is expanded (as pipe commands are)."""
    command = call.transport.options.get("transport_filter")
    if not command:
        return []
    from pyxim.transports.pipe import command_argv

    return list(command_argv(call, str(command), True))


def expand_affix(call: TransportCall, name: str) -> bytes:
    """message_prefix / message_suffix expanded (unset or forced failure: nothing)."""
    option = call.transport.options.get(name)
    if not option:
        return b""
    try:
        value = _expand(option, call.ctx)
    except ExpansionError as e:
        raise TransportWriteError("prefix" if name == "message_prefix" else "suffix", option, str(e)) from e
    return to_bytes(value or "")


def transport_message(call: TransportCall, spec: WriteSpec | None = None) -> bytes:
    """prefix + message + suffix, as appendfile and pipe write it."""
    if spec is None:
        spec = spec_for(call)
    prefix = expand_affix(call, "message_prefix")
    data = write_message(call.message.headers, call.body, spec)
    suffix = expand_affix(call, "message_suffix")
    return prefix + data + suffix


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmMgG]?)\s*$")


def parse_size(text: str) -> int | None:
    """A quota-style size ("10M", "512K", "1.5G", "1000"); None when malformed."""
    m = _SIZE.match(text)
    if not m:
        return None
    mult = {"": 1, "k": 1024, "m": 1024 * 1024, "g": 1024 * 1024 * 1024}[m.group(2).lower()]
    return int(float(m.group(1)) * mult)

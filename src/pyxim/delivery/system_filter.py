"""The system filter (main option system_filter): an Exim filter run once per delivery attempt of a
message, before any routing, as Exim's deliver.c does.

What it decides is handed back to the delivery engine, which acts on it in Exim's words:
"cancelled by system filter: …" (fail: every original recipient fails, one bounce), "Frozen by the
system filter…" (freeze, unless the message was thawed by hand), "Delivery deferred by system filter"
(defer), "original recipients ignored (system filter)" (a significant delivery). The deliveries it
sets up are children of the pseudo-address "system-filter": addresses go through the routers, files,
pipes and replies through the system_filter_*_transport options, run as system_filter_user. Its
header changes apply to the message at once and are kept in the spool; $n0-$n9 become $sn0-$sn9 for
the users' filters.
"""

from __future__ import annotations

import json
import pwd
from collections.abc import Callable
from dataclasses import dataclass, field

from pyxim.config.model import Config
from pyxim.errors import ExpansionError, ForcedFail
from pyxim.expand import ExpansionContext, expand_string
from pyxim.routers.engine import RoutedAddress, route_address
from pyxim.spool.format import SpoolHeader, SpoolMessage

PARENT = "system-filter"  # the artificial parent of what a system filter generates, as Exim names it


@dataclass(slots=True)
class SystemFilterOutcome:
    error: str | None = None  # the filter could not be run: the attempt is abandoned
    fail_log: str | None = None  # fail: the text logged …
    fail_text: str = ""  # … and the text in the bounce ("<<log>>bounce" splits them)
    freeze: str | None = None
    defer: str | None = None
    significant: bool = False
    routed: list[RoutedAddress] = field(default_factory=list)
    sn: dict[str, str] = field(default_factory=dict)


def run_system_filter(config: Config, message: SpoolMessage, ctx: ExpansionContext, pending: list[str],
                      manually_thawed: bool) -> SystemFilterOutcome | None:
    """Run the system filter for `message` (None when there is none). `ctx` is the message's expansion
    context; its message headers change as the filter's "headers" commands say, and so do the
    spooled message's."""
    from pyxim.routers.engine import _filter_kind
    from pyxim.routers.exim_filter import FilterError, FilterOptions, parse, run

    name = config.main.get("system_filter")
    if not name:
        return None
    try:
        path = expand_string(str(name), ctx)
    except ForcedFail:
        return None  # a forced failure: no filtering, as Exim documents
    except ExpansionError as exc:
        return SystemFilterOutcome(error=f'failed to expand "{name}": {exc.message}')
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            text = f.read()
    except OSError as exc:
        return SystemFilterOutcome(error=f"failed to open {path}: {exc.strerror}")
    uid, gid = filter_ids(config)
    ctx.first_delivery = "deliver_firsttime" in message.options
    ctx.variables["manually_thawed"] = "1" if manually_thawed else ""
    ctx.variables["recipients"] = ", ".join(pending)  # available to system filters only
    from pyxim.expand.evaluate import Evaluation
    from pyxim.expand.variables import resolve_variable

    qualify = resolve_variable(Evaluation(ctx), "qualify_recipient")
    options = FilterOptions(system=True, real_log=True, qualify_domain=qualify,
                            log_owner=(uid, gid) if uid is not None else None)
    before = len(ctx.message.headers) if ctx.message is not None else 0
    try:
        result = run(parse(text.lstrip(), options, _filter_kind(text.strip()) is not None), ctx, options)
    except FilterError as exc:
        return SystemFilterOutcome(error=str(exc))
    finally:
        ctx.variables.pop("recipients", None)
    _apply_headers(message, ctx, before)
    out = SystemFilterOutcome(significant=result.significant, freeze=result.freeze,
                              defer=getattr(result, "defer", None),
                              sn={f"sn{n}": str(v) for n, v in enumerate(result.n_vars)})
    if result.fail is not None:
        text = result.fail
        # "<<short>>long": the short part is logged, the rest goes into the bounce (Exim's convention)
        if text.startswith("<<") and ">>" in text:
            short, _, rest = text[2:].partition(">>")
            out.fail_log, out.fail_text = short, rest
        else:
            out.fail_log = out.fail_text = text
    for item in result.items:
        out.routed.extend(_generated(config, ctx, item, uid, gid))
    return out


def filter_ids(config: Config) -> tuple[int | None, int | None]:
    """system_filter_user and system_filter_group: the ids the filter, and the files, pipes and replies
    it sets up, run as (None: root, Exim's default)."""
    from pyxim.routers.engine import _numeric_id

    user = config.main.get("system_filter_user")
    if user is None:
        return None, None
    uid = _numeric_id(user, "user")
    gid = None
    if config.main.get("system_filter_group") is not None:
        gid = _numeric_id(config.main["system_filter_group"], "group")
    elif uid is not None:
        try:
            gid = pwd.getpwuid(uid).pw_gid
        except KeyError:
            gid = None
    return uid, gid


def _apply_headers(message: SpoolMessage, ctx: ExpansionContext, before: int) -> None:
    """The filter changed the expansion context's header lines (removals mark them deleted, additions
    go at the end); the spooled message gets the same changes, so every delivery and later attempt
    sees them."""
    if ctx.message is None:
        return
    for spooled, seen in zip(message.headers, ctx.message.headers[:before], strict=False):
        if seen.type == "*":
            spooled.type = "*"
    for added in ctx.message.headers[before:]:
        message.headers.append(SpoolHeader(added.raw, added.type or " "))


def _generated(config: Config, ctx: ExpansionContext, item: object, uid: int | None,
               gid: int | None) -> list[RoutedAddress]:
    """One delivery the filter set up, routed: addresses by the routers, the rest to their transports."""
    kind = getattr(item, "kind")  # noqa: B009 — a Generated from exim_filter
    text = str(getattr(item, "text"))  # noqa: B009
    if kind == "address":
        routed = route_address(config, text, dict(ctx.variables), ctx=None, notices=[], message=ctx.message)
        for r in routed:
            if not r.parents or r.parents[-1] != PARENT:
                r.parents = [*r.parents, PARENT]
            errors_to = getattr(item, "errors_to", None)
            if errors_to is not None and r.errors_to is None:
                r.errors_to = errors_to  # any address will do in a system filter
            if getattr(item, "noerror", False):
                r.errors_to = ""  # noerror: a failure of this delivery is not reported
        return routed
    if kind == "reply":
        reply = getattr(item, "reply")  # noqa: B009
        to = text or _reply_address(ctx)
        from pyxim.address import extract_address, split_address_list

        first = next((p.address for p in map(extract_address, split_address_list(to or ""))
                      if p is not None and p.address), None)
        r = RoutedAddress(">" + (first or to or "**bad-reply**"), [PARENT])
        option = "system_filter_reply_transport"
        from pyxim.expand.taint import is_tainted

        r.variables["filter_reply"] = json.dumps({
            "fields": reply.fields, "expand_file": reply.expand_file,
            "return_message": reply.return_message, "vacation": reply.vacation,
            "tainted": sorted(k for k, v in reply.fields.items() if is_tainted(v)),
        })
    elif kind == "pipe":
        r = RoutedAddress("|" + text, [PARENT])
        option = "system_filter_pipe_transport"
        r.variables.update({"address_pipe": text.lstrip(), "expand_pipe": "1"})
    else:
        r = RoutedAddress(text, [PARENT])
        option = "system_filter_directory_transport" if text.endswith("/") else "system_filter_file_transport"
        r.variables["address_file"] = text
    name = str(config.main.get(option) or "")
    try:
        name = expand_string(name, ctx) if "$" in name else name
    except ExpansionError as exc:
        name, r.outcome, r.message = "", "deferred", f"failed to expand {option}: {exc.message}"
    if r.outcome == "routed":
        if not name:
            r.outcome, r.message = "deferred", f"{option} is unset"
        elif all(t.name != name for t in config.transports):
            r.outcome, r.message = "deferred", f'transport "{name}" not found'
        else:
            r.transport = name
    r.uid, r.gid = uid, gid
    if getattr(item, "noerror", False):
        r.errors_to = ""
    return [r]


def _reply_address(ctx: ExpansionContext) -> str:
    try:
        return expand_string("$reply_address", ctx).strip() if ctx.message is not None else ""
    except ExpansionError:
        return ""


LogFunc = Callable[[str], None]


def log_error(log: LogFunc, message_id: str, error: str) -> None:
    """An error in the system filter goes to the main log and the panic log, as in Exim."""
    line = f"{message_id} Error in system filter: {error}"
    owner = getattr(log, "__self__", None)
    if owner is not None and hasattr(owner, "panic"):
        owner.panic(line)  # the main log too
        if hasattr(owner, "message_log"):
            owner.message_log(line)
    else:
        log(line)

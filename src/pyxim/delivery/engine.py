"""Delivering one spooled message: route, transport, record — Exim's deliver.c in outline.

For every recipient not yet done the routers decide; each routed address is
handed to its transport; the outcome is logged with Exim's flags
(`=>` delivered, `**` failed, `==` deferred) and kept in the spool: done
addresses go into the -H file's non-recipients tree, so a later attempt
(a queue run) tries only what is left. When nothing is left the message is
"Completed" and its spool files are removed. Failed addresses produce a
bounce to the sender (delivery/bounce.py).

A message is worked on by one process at a time: its -D file is locked with
fcntl for the whole attempt, as Exim does, so a queue runner and the
daemon's immediate delivery never deliver the same message twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from pyxim.config.model import Config, DriverInstance
from pyxim.delivery import DONT_DELIVER, TRANSPORTS, DeliveryResult, TransportCall
from pyxim.errors import ExpansionError
from pyxim.expand import ExpansionContext, expand_string
from pyxim.expand.taint import Tainted
from pyxim.routers.engine import RoutedAddress, route_address
from pyxim.spool.format import SpoolFormatError, SpoolMessage
from pyxim.spool.ids import is_message_id
from pyxim.spool.store import Spool

LogFunc = Callable[[str], None]


@dataclass(slots=True)
class AttemptOutcome:
    """What one delivery attempt did, for the caller (queue runner, -M, tests)."""

    message_id: str
    state: str  # completed, deferred, frozen, locked, missing
    delivered: list[str] = field(default_factory=list)
    failed: list[tuple[str, str, str]] = field(default_factory=list)  # (address, reason, original recipient)
    deferred: list[tuple[str, str]] = field(default_factory=list)
    bounces: list[str] = field(default_factory=list)  # ids of the bounce messages it spooled
    # (final address, recipient as received) of deliveries that end here (local transports): success DSNs
    final: list[tuple[str, str]] = field(default_factory=list)
    # (address, recipient as received, host) of remote deliveries to servers without DSN
    relayed: list[tuple[str, str, str]] = field(default_factory=list)
    errors_to: dict[str, str] = field(default_factory=dict)  # failed address -> its router's errors_to
    dsn_info: dict[str, dict[str, str]] = field(default_factory=dict)  # failed address -> DSN extra information
    # remote=False (-qq's first pass): the first host of each remote address routed and left for later
    remote_hosts: list[str] = field(default_factory=list)
    freeze: bool = False  # a router deferred an address asking for the message to be frozen
    freeze_log: str = ""  # the line that says why it is frozen ("Frozen" when a router asked)
    waiting_host: str = ""  # the first host a deferred remote address waits for


@contextlib.contextmanager
def _locked(spool: Spool, message_id: str) -> Iterator[bool]:
    """Hold the message's -D file lock (non-blocking); yields False if another process has it."""
    _, dpath = spool.paths(message_id)
    try:
        fd = os.open(dpath, os.O_RDWR)
    except FileNotFoundError:
        yield False
        return
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 0, 0)
        except OSError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def deliver_message(
    config: Config, spool: Spool, message_id: str, log: LogFunc, *, force: bool = False,
    ignore_retry: bool | None = None, clock: Callable[[], float] | None = None, remote: bool = True,
    queue_running: bool = True,
) -> AttemptOutcome:
    """One delivery attempt for one message (Exim's deliver_message).

    `force` delivers a frozen message too (-M, -qff); `ignore_retry` tries
    addresses whose retry time has not come (-M, -qf; default: as `force`);
    `remote` False routes remote addresses without delivering them (the first pass of -qq);
    `queue_running` False (a delivery right after reception) disregards the retry times of
    addresses, as Exim does outside queue runs (a remote host's retry time still counts)."""
    if ignore_retry is None:
        ignore_retry = force
    with _locked(spool, message_id) as mine:
        if not mine:
            return AttemptOutcome(message_id, "locked")
        try:
            message, body = spool.read(message_id)
        except (OSError, SpoolFormatError) as exc:
            log(f"{message_id} Spool file is missing or damaged: {exc}")
            return AttemptOutcome(message_id, "missing")
        import time

        now = (clock or time.time)()
        age = now - message.received_time
        discard_bounce = False
        # a journal left by an attempt that was cut short: those addresses are delivered already
        for address in spool.journal_read(message_id):
            if address not in message.non_recipients:
                message.non_recipients.append(address)
        if "frozen" in message.options and not force:
            bounce_limit = float(config.main.get("ignore_bounce_errors_after") or 0)
            frozen_limit = float(config.main.get("timeout_frozen_after") or 0)
            if not message.sender and bounce_limit and age > bounce_limit:
                # a bounce that has waited long enough gets one more try, then is thrown away
                del message.options["frozen"]
                log(f"{message_id} Unfrozen by errmsg timer")
                discard_bounce = True
            elif frozen_limit and age > frozen_limit:
                return _cancel(config, spool, message, body, log, "cancelled by timeout_frozen_after")
            else:
                return AttemptOutcome(message_id, "frozen")
        # a thaw by hand (-Mt, or -M of a frozen message) stops the system filter freezing it again
        thawed = "manual_thaw" in message.options
        if "frozen" in message.options:
            del message.options["frozen"]
            log(f"{message_id} Unfrozen by forced delivery")
            thawed = True
        outcome = _attempt(config, spool, message, body, log, clock, ignore_retry, remote, queue_running, thawed)
        if remote:
            message.options.pop("deliver_firsttime", None)  # tried once: -qi passes it by from now on
        if outcome.failed and discard_bounce:
            for address, _reason, original in outcome.failed:
                if original not in message.non_recipients:
                    message.non_recipients.append(original)
                log(f"{message_id} {address}: error ignored")
            outcome.failed = []
        if outcome.failed and not message.sender:
            # a bounce that could not be delivered is frozen, except where the address timed out
            # of its retry rules (Exim's af_retry_timedout): that error is ignored
            for item in [f for f in outcome.failed if f[1] == "retry timeout exceeded"]:
                if item[2] not in message.non_recipients:
                    message.non_recipients.append(item[2])
                log(f"{message_id} {item[0]}: error ignored")
                outcome.failed.remove(item)
        wanted = {r.address for r in message.recipients if r.dsn_flags & 0x04}  # NOTIFY=SUCCESS
        notify = [(a, o, "") for a, o in outcome.final if o in wanted]
        notify += [(a, o, h) for a, o, h in outcome.relayed if o in wanted]
        # one report line per recipient as received: a redirection's children are reported as their parent
        seen: set[str] = set()
        notify = [entry for entry in notify if not (entry[1] in seen or seen.add(entry[1]))]
        if notify:
            from pyxim.delivery.bounce import send_success_dsn

            dsn_id = send_success_dsn(config, spool, message, body, notify, log)
            if dsn_id is not None:
                outcome.bounces.append(dsn_id)
        if message.sender and outcome.deferred:
            warning_id = _maybe_warn(config, spool, message, body, outcome, now, log)
            if warning_id is not None:
                outcome.bounces.append(warning_id)
        if outcome.failed:
            from pyxim.delivery.bounce import send_bounce

            # a router's errors_to sends that address's bounce elsewhere ("" discards it)
            groups: dict[str | None, list[tuple[str, str, str]]] = {}
            for item in outcome.failed:
                groups.setdefault(outcome.errors_to.get(item[0]), []).append(item)
            for to, items in groups.items():
                if to == "":
                    for item in items:
                        log(f"{message_id} {item[0]}: error ignored")
                    continue
                bounce_id = send_bounce(config, spool, message, body, items, log, to=to, info=outcome.dsn_info)
                if bounce_id is not None:
                    outcome.bounces.append(bounce_id)
        if outcome.freeze:
            # a router asked for it (host_find_failed, host_all_ignored or self = freeze)
            message.options["frozen"] = str(int(now))
            message.options.pop("manual_thaw", None)
            log(f"{message_id} {outcome.freeze_log or 'Frozen'}")
        done = set(message.non_recipients)
        if all(r.address in done for r in message.recipients):
            _record_waiting(config, message_id, "")
            spool.remove(message_id)
            log(f"{message_id} Completed")
            outcome.state = "completed"
        else:
            _record_waiting(config, message_id, outcome.waiting_host)
            spool.update_header(message)
            spool.journal_remove(message_id)  # the -H file now holds what the journal said
            outcome.state = "deferred"
        return outcome


def _record_waiting(config: Config, message_id: str, host: str) -> None:
    """The "wait" hints: which host a message's deferred remote delivery waits for (none: forgotten)."""
    from pyxim.queue.hints import HintsDb

    try:
        db = HintsDb(str(config.main.get("spool_directory") or ""), "wait")
        if host:
            db.put(message_id, host)
        elif db.get(message_id) is not None:
            db.delete(message_id)
    except (OSError, sqlite3.Error):
        pass  # only a hint: the next queue run delivers anyway, one connection per message


def waiting_hosts(config: Config, message_ids: list[str]) -> dict[str, str]:
    """message id -> the host it waits for, for those that wait for one."""
    from pyxim.queue.hints import HintsDb

    try:
        db = HintsDb(str(config.main.get("spool_directory") or ""), "wait")
        found = {m: db.get(m) for m in message_ids}
    except (OSError, sqlite3.Error):
        return {}
    return {m: str(h) for m, h in found.items() if h}


def _maybe_warn(config: Config, spool: Spool, message: SpoolMessage, body: bytes, outcome: AttemptOutcome,
                now: float, log: LogFunc) -> str | None:
    """delay_warning: tell the sender when the message has waited past the next threshold."""
    times = config.main.get("delay_warning") or ()
    if isinstance(times, (int, float)):
        times = (times,)
    times = [t for t in times if t]
    if not times:
        return None
    n = message.warning_count
    # the listed times, then the last one repeated: 4h:8h:24h warns at 4h, 8h, 24h, 48h, 72h …
    threshold = times[n] if n < len(times) else times[-1] * (n - len(times) + 2)
    if now - message.received_time < threshold:
        return None
    flags = {r.address: r.dsn_flags for r in message.recipients}
    deferred = [(a, why) for a, why in outcome.deferred
                if not flags.get(a, 0) or flags.get(a, 0) & 0x10]  # NOTIFY without DELAY: no warning
    condition = config.main.get("delay_warning_condition")
    if condition:
        from pyxim.expand.conditions import cond_bool_lax

        ctx = _context(config, message, body, None)
        try:
            if not cond_bool_lax(None, [expand_string(str(condition), ctx)]):  # type: ignore[arg-type]
                return None
        except ExpansionError:
            return None
    message.warning_count = n + 1
    if not deferred:
        return None
    from pyxim.delivery.bounce import send_delay_warning

    return send_delay_warning(config, spool, message, body, deferred, threshold, log)


def _cancel(config: Config, spool: Spool, message: SpoolMessage, body: bytes, log: LogFunc,
            why: str) -> AttemptOutcome:
    """Give a message up (timeout_frozen_after, -Mg): its pending recipients fail, the sender is told."""
    from pyxim.delivery.bounce import send_bounce

    outcome = AttemptOutcome(message.message_id, "completed")
    log(f"{message.message_id} {why}")
    pending = [r.address for r in message.recipients if r.address not in message.non_recipients]
    if pending and message.sender:
        bounce_id = send_bounce(config, spool, message, body, [(a, "", a) for a in pending], log)
        if bounce_id is not None:
            outcome.bounces.append(bounce_id)
    outcome.failed = [(a, "", a) for a in pending]
    spool.remove(message.message_id)
    log(f"{message.message_id} Completed")
    return outcome


def _max_parallel(inst: DriverInstance, ctx: ExpansionContext) -> int | DeliveryResult:
    """The generic transport option max_parallel (expanded): how many deliveries by this transport
    may run at once across every process on this spool; 0 for no limit."""
    text = inst.options.get("max_parallel")
    if not text:
        return 0
    try:
        expanded = expand_string(str(text), ctx).strip()
    except ExpansionError as exc:
        return DeliveryResult("defer", f"failed to expand max_parallel for {inst.name} transport: {exc}")
    if not expanded:
        return 0
    if not expanded.isdigit():
        return DeliveryResult("defer", f'invalid max_parallel "{expanded}" for {inst.name} transport')
    return int(expanded)


def _over_transport_size_limit(inst: DriverInstance, ctx: ExpansionContext) -> DeliveryResult | None:
    """The generic transport option message_size_limit (expanded per address): a bigger message
    fails the address, as in Exim."""
    text = inst.options.get("message_size_limit")
    if not text:
        return None
    from pyxim.config.options import read_size

    try:
        expanded = expand_string(str(text), ctx)
    except ExpansionError as exc:
        return DeliveryResult("defer", f"failed to expand message_size_limit for {inst.name} transport: {exc}")
    limit = read_size(expanded)
    if limit is None:
        return DeliveryResult("defer", f'invalid message_size_limit "{expanded}" for {inst.name} transport')
    size = int(ctx.variables.get("message_size") or 0)
    if 0 < limit < size:
        return DeliveryResult("fail", f"message is too big (transport limit = {limit})")
    return None


def _context(config: Config, message: SpoolMessage, body: bytes, clock: Callable[[], float] | None) -> ExpansionContext:
    from pyxim.expand.message import HeaderLine, Message

    ctx = ExpansionContext(config=config, now=clock) if clock is not None else ExpansionContext(config=config)
    ctx.message = Message(
        [HeaderLine(h.text.split(":", 1)[0], h.text, h.type) for h in message.headers],
        body.decode("utf-8", "surrogateescape"),
    )
    sender = Tainted(message.sender)
    ctx.variables.update({
        "message_exim_id": message.message_id,
        "message_id": message.message_id,
        "sender_address": sender,
        "return_path": sender,
        "recipients_count": str(len(message.recipients)),
        "message_size": str(len(body) + sum(len(h.text) for h in message.headers)),
    })
    ctx.variables.update(_reception_variables(message.options))
    # the message's ACL variables, as the ACLs left them
    ctx.acl_vars.update({f"acl_{name}": Tainted(value) for name, value in message.acl_vars.items()})
    return ctx


def _reception_variables(options: dict[str, str | None]) -> dict[str, str]:
    """What the -H file keeps of the message's reception, as the variables a delivery sees
    ($sender_host_address, $sender_host_name, $sender_helo_name, $received_protocol, $authenticated_id …)."""
    from pyxim.spool.format import split_host_port

    out: dict[str, str] = {}
    if options.get("host_address"):
        address, port = split_host_port(str(options["host_address"]))
        out.update({"sender_host_address": Tainted(address), "sender_host_port": str(port)})
    if options.get("interface_address"):
        address, port = split_host_port(str(options["interface_address"]))
        out.update({"received_ip_address": address, "interface_address": address, "received_port": str(port),
                    "interface_port": str(port)})
    for option, variable in (("helo_name", "sender_helo_name"), ("host_name", "sender_host_name"),
                             ("ident", "sender_ident"), ("received_protocol", "received_protocol"),
                             ("host_auth", "sender_host_authenticated"), ("auth_id", "authenticated_id"),
                             ("auth_sender", "authenticated_sender")):
        if options.get(option):
            out[variable] = Tainted(str(options[option]))
    if "host_address" in options and "host_name" not in options:
        out["host_lookup_failed"] = "0"  # not looked up at reception: not to be looked up now either
    return out


def _attempt(
    config: Config, spool: Spool, message: SpoolMessage, body: bytes, log: LogFunc,
    clock: Callable[[], float] | None, ignore_retry: bool = False, remote: bool = True,
    queue_running: bool = True, manually_thawed: bool = False,
) -> AttemptOutcome:
    import time

    from pyxim import transports  # noqa: F401 — registers every transport's delivery function
    from pyxim.queue.retry import RetryDb

    outcome = AttemptOutcome(message.message_id, "deferred")
    mid = message.message_id
    done = set(message.non_recipients)
    retry = RetryDb(config)
    now = (clock or time.time)()
    # First every pending recipient is routed, then each distinct (address, transport) is
    # delivered once: an address reached twice (directly and through an alias) gets one copy,
    # whose Envelope-to: names every recipient that led to it (Exim's duplicate handling).
    plan: list[tuple[str, str, ExpansionContext, list[RoutedAddress]]] = []
    received = sum(1 for h in message.headers if h.type != "*" and h.text[:9].lower() == "received:")
    if received > int(config.main.get("received_headers_max") or 30):
        # a mail loop: every recipient fails, without routing (Exim's check at delivery)
        reason = 'Too many "Received" headers - suspected mail loop'
        for recipient in message.recipients:
            if recipient.address not in done:
                log(f"{mid} ** {recipient.address}: {reason}")
                outcome.failed.append((recipient.address, reason, recipient.address))
                message.non_recipients.append(recipient.address)
                done.add(recipient.address)
        return outcome
    filtered = _system_filter(config, message, body, log, clock, done, outcome, manually_thawed)
    if filtered is None:
        return outcome  # an error in the system filter: nothing more is done this time
    sn_vars, held, made_by_filter = filtered
    for recipient in message.recipients:
        original = recipient.address
        if original in done or held:
            continue
        key = f"R:{original}"
        # an address's retry time counts in queue runs only (Exim routes it on a first delivery anyway)
        address_retry = queue_running and not ignore_retry
        if address_retry and not retry.due(key, now):
            log(f"{mid} == {original} routing defer (-52): retry time not reached")
            outcome.deferred.append((original, "retry time not reached"))
            continue
        base = _context(config, message, body, clock)
        base.variables.update(sn_vars)  # the system filter's $n0-$n9, for users' filters
        notices: list = []  # type: ignore[type-arg]
        plan.append((original, key, base, route_address(config, original, dict(base.variables), ctx=None,
                                                        notices=notices, message=base.message)))
        for old, new in dict.fromkeys(change for r in plan[-1][3] for change in r.domain_changes):
            # rewrite_headers: the header lines name the domain as DNS found it, for every delivery
            from pyxim.rewrite import rewrite_routed_domain

            message.headers = rewrite_routed_domain(message.headers, old, new)
        if notices:  # skip_syntax_errors: logged, and syntax_errors_to told (routers/redirect.py)
            from pyxim.routers.redirect import report_syntax_errors

            outcome.bounces.extend(report_syntax_errors(config, spool, message, notices, log))
    if made_by_filter:
        from pyxim.delivery.system_filter import PARENT

        base = _context(config, message, body, clock)
        base.variables.update(sn_vars)
        plan.append((PARENT, f"R:{PARENT}", base, made_by_filter))
    primary: dict[tuple[str, str], tuple[int, int]] = {}
    reached_by: dict[tuple[str, str], list[str]] = {}
    for n, (original, _key, _base, routed) in enumerate(plan):
        for m, r in enumerate(routed):
            if r.outcome == "routed" and r.transport:
                ident = (r.address.lower(), r.transport)
                primary[ident] = (n, m)  # the last one wins, as in Exim
                reached_by.setdefault(ident, [])
                if original not in reached_by[ident]:
                    reached_by[ident].append(original)
    results: dict[tuple[str, str], DeliveryResult] = {}
    deferred_parts: set[int] = set()  # plan items with an address of their own still deferred
    promoted: list[RoutedAddress] = []  # deferred children of one_time redirect routers
    spool_files = tuple(str(p) for p in spool.paths(message.message_id))
    made: list[tuple[int, int]] = []  # the SMTP transactions' addresses, in the order they were made
    batched, secondary = ({}, set()) if not remote or DONT_DELIVER.get() else _run_batches(
        config, message, body, plan, primary, done, reached_by, clock, spool_files,  # type: ignore[arg-type]
        ignore_retry, now, made)
    # results are logged in plan order, except that the items delivered by SMTP take their places in
    # the order of the transactions (multi_domain = false splits a batch by domain), as Exim logs them
    ranked = list(dict.fromkeys(n for n, _m in made))
    slots = [n for n in range(len(plan)) if n in set(ranked)]
    placed = dict(zip(slots, ranked, strict=True))
    order_n = [placed.get(n, n) for n in range(len(plan))]
    finished_n = dict.fromkeys(order_n, True)
    # Exim's order: what routing settled (failures, deferrals, :blackhole:) as it routes, then the local
    # deliveries — a recipient's redirections last routed first, as Exim's list of local addresses has
    # them —, then the remote ones (in the order of their transactions)
    position = {n: i for i, n in enumerate(order_n)}

    def exim_order(nm: tuple[int, int]) -> tuple:  # type: ignore[type-arg]
        r = plan[nm[0]][3][nm[1]]
        phase = _phase(config, r)
        if phase != 1:
            return phase, position[nm[0]], nm[1]
        # local deliveries: the last generation of redirections first; within one, the addresses in the
        # order routing took them, then the pipes and files last made first (Exim's addr_local)
        where = (position[nm[0]], *r.order)
        if r.address.startswith(("|", "/", ">")):
            return phase, -len(r.parents), 1, tuple(-x for x in where)
        return phase, -len(r.parents), 0, where

    pairs = sorted(((n, m) for n in order_n for m in range(len(plan[n][3]))), key=exim_order)
    for n, m in pairs:
        original, key, base, routed = plan[n]
        r = routed[m]
        if r.address in done and r.address != original:
            continue  # a redirection already delivered in an earlier attempt
        ident = (r.address.lower(), r.transport)
        if r.outcome == "routed" and r.transport and primary.get(ident) != (n, m):
            finished_n[n] = False  # a duplicate: its fate is the primary's (settled below)
            continue
        if not remote and r.outcome == "routed" and r.transport and not _is_local(config, r):
            # -qq's first pass: routed only; the second pass delivers, grouped by host
            finished_n[n] = False
            deferred_parts.add(n)
            outcome.remote_hosts += [h.address for h in r.hosts[:1] if h.address]
            continue
        # a local delivery's retry record is its own ("T:address"), checked once routed, as Exim
        local = r.outcome == "routed" and bool(r.transport) and _is_local(config, r)
        rkey = f"T:{r.address}" if local else key
        waiting = local and queue_running and not ignore_retry and not retry.due(rkey, now)
        if waiting:
            result = DeliveryResult("defer", "Retry time not yet reached", host_retry=True)
        else:
            result = batched.get((n, m)) or _one(config, message, body, r, original, base, clock,
                                                  reached_by.get(ident), spool_files,  # type: ignore[arg-type]
                                                  ignore_retry=ignore_retry, now=now)
        results[ident] = result
        parent = f" <{original}>" if r.address != original or r.outcome == "discarded" else ""
        errno = getattr(result, "log_errno", None)  # Exim's "(n)" in a defer line
        if errno is None:
            errno = -53 if waiting else getattr(result, "errno", 0) or r.errno or -1
        for line in result.log:  # a transport's own lines (pipe output …) come first, as in Exim
            # a line about a message the transport made (autoreply) carries that message's id
            log(line if is_message_id(line.split(" ", 1)[0]) else f"{mid} {line}")
        timed_out = False
        if result.status == "defer":
            if (result.retry_expired if result.host_retry
                    else retry.failed(rkey, original, now, result.message).expired):
                # past the retry rule's last cutoff: the deferral is logged, then the address fails
                router = f" R={r.router}" if r.router else ""
                transport = f" T={r.transport}" if r.transport and r.outcome == "routed" else ""
                why = f": {result.message}" if result.message else ""
                log(f"{mid} == {r.address}{parent}{router}{transport} defer ({errno}){why}")
                result = DeliveryResult("fail", "retry timeout exceeded")
                timed_out = True
        elif result.status == "ok":
            retry.succeeded(rkey)
        outcome.bounces.extend(result.new_messages)
        if result.status == "ok":
            outcome.delivered.append(r.address)
            if r.outcome == "routed" and _is_local(config, r):
                outcome.final.append((r.address, original))
            elif result.relayed_to_non_dsn or (r.dsn_lasthop and r.hosts):
                # the report is made here: the next hop takes no DSN, or the router is the last hop
                host = result.relayed_to_non_dsn or r.hosts[0].name
                how = "relayed via non DSN router" if r.dsn_lasthop else "relayed to non-DSN-aware mailer"
                outcome.relayed.append((r.address, original, f"{host}|{how}"))
            if r.outcome == "discarded":
                log(f"{mid} => :blackhole: <{r.address}> R={r.router}")
            else:
                who = result.log_address or _log_address(config, r)
                shown = f" <{original}>" if r.transport and _is_local(config, r) else parent
                if r.address.startswith(("|", "/")) and r.parents and r.parents[0] != original:
                    shown = f" ({r.parents[0]}){shown}"  # the alias that named the pipe or file
                # a further address delivered in the same SMTP transaction is logged with "->"
                flag = "*>" if result.bypassed else "->" if (n, m) in secondary else "=>"
                router = f" R={r.router}" if r.router else ""  # a system filter's file, pipe or reply has none
                log(f"{mid} {flag} {who}{shown}{router} T={r.transport}{result.detail}")
            if r.address != original:
                message.non_recipients.append(r.address)
                done.add(r.address)
            spool.journal_append(message.message_id, r.address)
        elif result.status == "fail":
            # the bounce gets the transport's bland text (pipe: "local delivery failed") and output
            reason = getattr(result, "user_message", "") or result.message
            output = getattr(result, "output", b"")
            if output:
                reason += "\n    ------ pipe output ------\n    " + output.decode(
                    "utf-8", "replace").rstrip("\n").replace("\n", "\n    ")
            outcome.failed.append((r.address, reason, original))
            if result.dsn_info:
                outcome.dsn_info[r.address] = result.dsn_info
            if r.errors_to is not None:
                outcome.errors_to[r.address] = r.errors_to
            if not message.sender:
                finished_n[n] = False  # a bounce that cannot be delivered is frozen, not dropped
            router = f" R={r.router}" if r.router and not timed_out else ""
            # a forbidden pipe or file names the transport it would have had
            transport = f" T={r.transport}" if r.transport and (
                r.outcome == "routed" or r.address.startswith(("|", "/"))) and not timed_out else ""
            text = getattr(result, "log_text", None)  # the smtp transport's " H=host [ip]: …" form
            log(f"{mid} ** {r.address}{parent}{router}{transport}"
                + (f": {result.message}" if text is None else text))
        else:
            if getattr(result, "waiting_host", ""):
                # a remote delivery waits for its host: the next queue run that reaches the host
                # sends this message down the same connection (Exim's wait-<transport> database)
                outcome.waiting_host = outcome.waiting_host or result.waiting_host
            if r.one_time and r.address != original:
                # a one_time redirect's deferred child becomes a recipient of its own and its
                # parent counts as done, so the redirection is not made again (Exim's one_time)
                promoted.append(r)
            else:
                finished_n[n] = False
                deferred_parts.add(n)
            outcome.deferred.append((r.address, result.message))
            outcome.freeze = outcome.freeze or r.freeze
            router = f" R={r.router}" if r.router else ""
            transport = f" T={r.transport}" if r.transport and r.outcome == "routed" else ""
            why = f": {result.message}" if result.message else ""
            text = getattr(result, "log_text", None)
            log(f"{mid} == {r.address}{parent}{router}{transport} defer ({errno}){why if text is None else text}")
    for n in order_n:
        if finished_n[n]:
            original = plan[n][0]
            if original not in done:  # "system-filter" is done already when an earlier attempt finished it
                message.non_recipients.append(original)
            done.add(original)
    from pyxim.spool.format import Recipient

    for r in sorted(promoted, key=lambda r: r.order):  # as the redirection data listed them
        if all(x.address != r.address for x in message.recipients):
            message.recipients.append(Recipient(r.address))
    # recipients whose only deliveries were duplicates are done when their primary succeeded
    for n, (original, _key, _base, routed) in enumerate(plan):
        if original in done or n in deferred_parts:
            continue
        dups = [r for m, r in enumerate(routed) if r.outcome == "routed" and r.transport
                and primary.get((r.address.lower(), r.transport)) != (n, m)]
        if dups and all(
            results.get((r.address.lower(), r.transport), DeliveryResult("defer")).status != "defer" for r in dups
        ):
            message.non_recipients.append(original)
            done.add(original)
    return outcome


def _system_filter(config: Config, message: SpoolMessage, body: bytes, log: LogFunc,
                   clock: Callable[[], float] | None, done: set[str], outcome: AttemptOutcome,
                   manually_thawed: bool) -> tuple[dict[str, str], bool, list[RoutedAddress]] | None:
    """Run the system filter and act on what it decided about the original recipients. Returns the
    $sn0-$sn9 values, whether the original recipients wait (freeze, defer, or done by the filter), and
    the deliveries the filter set up; None after an error in the filter (the attempt stops there)."""
    from pyxim.delivery.system_filter import log_error, run_system_filter

    mid = message.message_id
    pending = [r.address for r in message.recipients if r.address not in done]
    ctx = _context(config, message, body, clock)
    result = run_system_filter(config, message, ctx, pending, manually_thawed)
    if result is None:
        return {}, False, []
    if result.error is not None:
        log_error(log, mid, result.error)
        return None
    held = False
    if result.fail_log is not None:
        log(f"{mid} cancelled by system filter: {result.fail_log}")
        for address in pending:
            # every original recipient fails, without a line of its own; a bounce is not bounced
            if message.sender:
                outcome.failed.append((address, result.fail_text, address))
            message.non_recipients.append(address)
            done.add(address)
        held = True
    elif result.freeze is not None and not manually_thawed:
        outcome.freeze = True
        outcome.freeze_log = "Frozen by the system filter" + (f": {result.freeze}" if result.freeze else "")
        held = True
    elif result.defer is not None:
        log(f"{mid} Delivery deferred by system filter")
        outcome.deferred.extend((address, result.defer) for address in pending)
        held = True
    elif result.significant:
        log(f"{mid} original recipients ignored (system filter)")
        for address in pending:
            message.non_recipients.append(address)
            done.add(address)
        held = True
    return result.sn, held, result.routed


def _run_batches(config: Config, message: SpoolMessage, body: bytes, plan: list, primary: dict,  # type: ignore[type-arg]
                 done: set[str], reached_by: dict, clock: Callable[[], float] | None,  # type: ignore[type-arg]
                 spool_files: tuple[str, str], ignore_retry: bool = False, now: float = 0.0,
                 order: list[tuple[int, int]] | None = None,
                 ) -> tuple[dict[tuple[int, int], DeliveryResult], set[tuple[int, int]]]:
    """Addresses for one smtp transport and the same hosts go in one transaction (up to max_rcpt;
    one domain only with multi_domain false), as Exim batches remote deliveries; returns each one's
    result and which were not first. `order` gets the (plan item, address) pairs in the order the
    transactions were made, which is the order Exim logs them in."""
    if order is None:
        order = []
    groups: dict[tuple, list[tuple[int, int, RoutedAddress, str]]] = {}  # type: ignore[type-arg]
    for n, (original, _key, _base, routed) in enumerate(plan):
        for m, r in enumerate(routed):
            if r.outcome != "routed" or not r.transport:
                continue
            if (r.address in done and r.address != original) or primary.get((r.address.lower(), r.transport)) != (n, m):
                continue
            inst = next((t for t in config.transports if t.name == r.transport), None)
            if inst is None or inst.driver != "smtp" or not (r.hosts or inst.options.get("hosts")):
                continue
            hosts = tuple((h.name, h.address, h.port) for h in r.hosts)
            # multi_domain false: one transaction per domain (Exim's smtp transport option)
            domain = "" if _multi_domain(inst, r, plan[n][2]) else r.address.rpartition("@")[2].lower()
            groups.setdefault((r.transport, hosts, r.router, domain), []).append((n, m, r, original))
    batched: dict[tuple[int, int], DeliveryResult] = {}
    secondary: set[tuple[int, int]] = set()
    chunks: list[list[tuple[int, int, RoutedAddress, str]]] = []
    for (transport_name, _hosts, _router, _domain), members in groups.items():
        inst = next(t for t in config.transports if t.name == transport_name)
        size = max(1, int(inst.options.get("max_rcpt") or 100))
        chunks += [members[start : start + size] for start in range(0, len(members), size)]

    def run(chunk: list[tuple[int, int, RoutedAddress, str]]) -> DeliveryResult:
        n, m, r, original = chunk[0]
        ident = (r.address.lower(), r.transport)
        return _one(config, message, body, r, original, plan[n][2], clock, reached_by.get(ident), spool_files,
                    batch=[(x[2].address, x[3]) for x in chunk[1:]], ignore_retry=ignore_retry, now=now)

    # remote_max_parallel: the transactions to different hosts run side by side (Exim forks that many
    # remote delivery processes); the results are logged in order afterwards, as Exim's parent does
    parallel = max(1, int(config.main.get("remote_max_parallel") or 1))
    if parallel > 1 and len(chunks) > 1:
        import contextvars
        from concurrent.futures import ThreadPoolExecutor

        # each worker runs in a copy of this thread's context (CONTINUE_HOSTS travels with it)
        contexts = [contextvars.copy_context() for _ in chunks]
        with ThreadPoolExecutor(max_workers=min(parallel, len(chunks))) as pool:
            results = list(pool.map(lambda c, chunk: c.run(run, chunk), contexts, chunks))
    else:
        results = [run(chunk) for chunk in chunks]
    order.extend(item[:2] for chunk in chunks for item in chunk)
    for chunk, result in zip(chunks, results, strict=True):
        n, m, _r, _original = chunk[0]
        batched[(n, m)] = result
        delivered = result.status == "ok"
        for n2, m2, r2, _original in chunk[1:]:
            other = result.per_address.get(r2.address)
            if other is None:  # the transport said nothing of it (a host error): as the first address fared
                from dataclasses import replace

                other = replace(result, log=[], new_messages=[], per_address={})
            batched[(n2, m2)] = other
            if delivered:  # "->" follows the transaction's first "=>" (Exim's first delivered address)
                secondary.add((n2, m2))
            delivered = delivered or other.status == "ok"
    return batched, secondary


def _multi_domain(inst: DriverInstance, r: RoutedAddress, base: ExpansionContext) -> bool:
    """The smtp transport's multi_domain, expanded per address (a forced failure counts as true)."""
    value = inst.options.get("multi_domain", True)
    if not isinstance(value, str):
        return value is not False
    from pyxim.errors import ForcedFail

    ctx = base
    local_part, _, domain = r.address.rpartition("@")
    saved = dict(ctx.variables)
    ctx.variables.update({"local_part": Tainted(local_part), "domain": Tainted(domain)})
    ctx.variables.update(r.variables)
    try:
        text = expand_string(value, ctx).strip().lower()
    except (ForcedFail, ExpansionError):
        return True
    finally:
        ctx.variables.clear()
        ctx.variables.update(saved)
    return text not in ("", "0", "false", "no")


def _phase(config: Config, r: RoutedAddress) -> int:
    """When Exim logs an address's outcome: 0 routing (failed, deferred, discarded), 1 a local delivery,
    2 a remote one."""
    if r.outcome != "routed" or not r.transport:
        return 0
    return 1 if _is_local(config, r) else 2


def _is_local(config: Config, r: RoutedAddress) -> bool:
    t = next((t for t in config.transports if t.name == r.transport), None)
    return t is not None and t.driver in ("appendfile", "pipe", "lmtp", "autoreply", "queuefile")


def _log_address(config: Config, r: RoutedAddress) -> str:
    # Exim shows a local delivery by its local part (the mailbox), a remote one by the address
    if r.address.startswith(("|", "/", ">")):
        return r.address  # a pipe, file or filter reply from redirection is shown as itself
    if r.transport and _is_local(config, r):
        return r.address.rpartition("@")[0]
    return r.address


def _one(
    config: Config, message: SpoolMessage, body: bytes, r: RoutedAddress, original: str, base: ExpansionContext,
    clock: Callable[[], float] | None, envelope_to: list[str] | None = None,
    spool_files: tuple[str, str] = ("", ""), batch: list[tuple[str, str]] | None = None,
    ignore_retry: bool = False, now: float = 0.0,
) -> DeliveryResult:
    if r.outcome == "failed":
        return DeliveryResult("fail", r.message, log=list(r.log_lines))
    if r.outcome == "deferred":
        return DeliveryResult("defer", r.message, log=list(r.log_lines))  # the router's lines come first
    if r.outcome == "discarded":
        return DeliveryResult("ok")
    if not r.transport:
        return DeliveryResult("defer", f"No transport set by {r.router} router")
    inst = next((t for t in config.transports if t.name == r.transport), None)
    if inst is None:
        return DeliveryResult("defer", f'transport "{r.transport}" not found in {r.router} router')
    func = TRANSPORTS.get(inst.driver)
    if func is None:
        return DeliveryResult("defer", f"{inst.driver} transport: delivery not available in this version")
    ctx = _context(config, message, body, clock)
    limit = _max_parallel(inst, ctx)  # before the address is known, as in Exim ($domain is empty)
    local_part, _, domain = r.address.rpartition("@")
    olp, _, odom = original.rpartition("@")
    ctx.variables.update({
        "local_part": Tainted(local_part), "domain": Tainted(domain),
        "original_local_part": Tainted(olp), "original_domain": Tainted(odom),
        "parent_local_part": Tainted(olp) if r.address != original else "",
        "parent_domain": Tainted(odom) if r.address != original else "",
    })
    ctx.variables.update(r.variables)
    uid, gid = r.uid, r.gid
    if inst.options.get("user") is not None:
        from pyxim.routers.engine import _numeric_id

        uid = _numeric_id(inst.options["user"], "user")
    if inst.options.get("group") is not None:
        from pyxim.routers.engine import _numeric_id

        gid = _numeric_id(inst.options["group"], "group")
    refused = _over_transport_size_limit(inst, ctx)
    if refused is not None:
        return refused
    never = config.main.get("never_users") or ()
    never_ids = (never,) if isinstance(never, int) else tuple(never)
    fixed = uid == 0 and inst.driver in ("appendfile", "pipe")
    if uid is not None and (fixed or uid in never_ids):
        # Exim never runs a local delivery as a never_users user (root always: Debian builds it with
        # FIXED_NEVER_USERS=root); the reason gets a line of its own too, and basic_errno -29 (ERRNO_UIDFAIL)
        from pyxim.transports.local import LocalResult

        why = f"User {uid} set for {inst.name} transport is on the {'fixed_' if fixed else ''}never_users list"
        return LocalResult("defer", why, log=[why], errno=-29)
    call = TransportCall(config, inst, message, body, r.address, original, ctx, uid, gid, envelope_to,
                         list(r.hosts), r.router, list(r.headers_add), list(r.headers_remove), spool_files,
                         list(batch or []), r.dsn_lasthop, ignore_retry, now)
    if DONT_DELIVER.get():
        # -N: as if delivered; a remote delivery names the host it would have tried first
        detail = ""
        if inst.driver == "smtp":
            host = r.hosts[0] if r.hosts else None
            if host is not None:
                name, address = host.name, host.address
            else:
                from pyxim.lists import iterate_list

                name = address = next(iter(iterate_list(str(inst.options.get("hosts") or ""))), "")
            detail = f' H={name} [{address}] C="delivery bypassed by -N option"'
        bypassed = DeliveryResult("ok", detail=detail, bypassed=True)
        if inst.driver == "appendfile":
            from pyxim.transports.appendfile import file_item_path

            bypassed.log_address = file_item_path(call)
        return bypassed
    from pyxim.delivery.write import TransportWriteError

    if isinstance(limit, DeliveryResult):
        return limit
    from pyxim.delivery.serialize import ERRNO_TRETRY, slot
    from pyxim.transports.local import LocalResult

    try:
        with slot(str(config.main.get("spool_directory") or ""), f"tpt-serialize-{inst.name}", limit) as free:
            if not free:
                # no retry record: as in Exim, the address just waits for the next attempt
                return LocalResult("defer", "concurrency limit reached for transport", errno=ERRNO_TRETRY,
                                   host_retry=True)
            result = func(call)
    except TransportWriteError as exc:
        return DeliveryResult("defer", exc.reason)
    except Exception as exc:  # noqa: BLE001 — a transport bug defers the address, never loses it
        return DeliveryResult("defer", f"{inst.name} transport failed: {type(exc).__name__}: {exc}")
    if result.status == "ok" and inst.options.get("shadow_transport"):
        result.detail += _shadow(config, inst, call)
    return result


def _shadow(config: Config, inst: DriverInstance, call: TransportCall) -> str:
    """shadow_transport: after a successful local delivery, a copy through another transport when
    shadow_condition allows; its failure changes nothing. Returns " ST=name" when it delivered."""
    name = str(inst.options["shadow_transport"])
    shadow = next((t for t in config.transports if t.name == name), None)
    func = TRANSPORTS.get(shadow.driver) if shadow is not None else None
    if shadow is None or func is None:
        return ""
    condition = inst.options.get("shadow_condition")
    if condition:
        from pyxim.expand.conditions import cond_bool_lax

        try:
            if not cond_bool_lax(None, [expand_string(str(condition), call.ctx)]):  # type: ignore[arg-type]
                return ""
        except ExpansionError:
            return ""
    from dataclasses import replace

    try:
        result = func(replace(call, transport=shadow))
    except Exception:  # noqa: BLE001 — a shadow delivery's failure is not the address's
        return ""
    return f" ST={name}" if result.status == "ok" else ""

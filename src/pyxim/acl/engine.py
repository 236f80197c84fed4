"""Access control lists: verbs, conditions and modifiers, evaluated as Exim does.

An ACL is a list of statements, each a verb with conditions and modifiers
in order. `accept`, `deny`, `defer`, `discard`, `drop` decide when all their
conditions are true; `require` denies when one is false; `warn` only acts.
Reaching the end denies. A condition that cannot be decided (a lookup defer)
makes the statement answer "defer".

Conditions and controls are found in registries, so later modules add
`spf =`, `dmarc_status =`, `verify = arc` … by registering a function.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pyxim.errors import ExpansionError, ForcedFail, LookupDefer

if TYPE_CHECKING:  # pragma: no cover
    from pyxim.config.model import Config
    from pyxim.expand.context import ExpansionContext

VERBS = ("accept", "defer", "deny", "discard", "drop", "require", "warn")


@dataclass(slots=True)
class AclState:
    """What ACLs set for the session and the message (headers to add, controls…)."""

    add_headers: list[str] = field(default_factory=list)
    remove_headers: list[str] = field(default_factory=list)
    controls: set[str] = field(default_factory=set)
    # (about the client?, text) in the order the ACLs wrote them; lines about
    # the client are logged after its H=… (warn's log_message, skipped warns)
    log_lines: list[tuple[bool, str]] = field(default_factory=list)
    delay: float = 0.0
    # the ACL option now running (acl_smtp_rcpt, acl_not_smtp …): some controls are refused in some ACLs
    where: str = ""


@dataclass(slots=True)
class AclResult:
    verdict: str  # accept, deny, defer, discard, drop
    message: str | None = None  # user message (message =)
    log_message: str | None = None
    defer_reason: str | None = None
    verb: str | None = None  # the statement's verb that decided (None: the end of the ACL)


class AclConditionError(Exception):
    """A condition that cannot be evaluated (unknown, or unsupported here): Exim's 'defer'."""


ConditionFunc = Callable[["AclRun", str], bool]
CONDITIONS: dict[str, ConditionFunc] = {}
CONTROLS: set[str] = {
    "allow_auth_unadvertised", "caseful_local_part", "caselower_local_part", "enforce_sync", "no_enforce_sync",
    "freeze", "no_multiline_responses", "no_pipelining", "queue", "queue_only", "submission",
    "suppress_local_fixups", "debug", "dkim_disable_verify", "dmarc_disable_verify", "dmarc_verify_disable",
    "dmarc_enable_forensic", "no_mbox_unspool", "fakedefer", "fakereject", "no_callout_flush", "no_delay_flush",
    "utf8_downconvert", "cutthrough_delivery", "bmi_run", "wellknown", "prdr",
}


ControlFunc = Callable[["AclRun", str], None]
CONTROL_HANDLERS: dict[str, ControlFunc] = {}


def register_control(name: str, handler: ControlFunc | None = None) -> None:
    """Make `control = name[/options]` known; `handler(run, text)` is called when an ACL sets it
    (the text is the expanded control with its options). Every control set stays in
    AclState.controls, where the session and later stages look for it."""
    CONTROLS.add(name)
    if handler is not None:
        CONTROL_HANDLERS[name] = handler


# `verify = <kind>[/options]` kinds that live in modules of their own (arc …): func(run, options)
VERIFY_KINDS: dict[str, ConditionFunc] = {}


def register_verify(name: str, func: ConditionFunc) -> None:
    """Make `verify = name/options` known; `func(run, options)` decides it (the verify value is
    expanded once, before its kind is looked up, so the options come already expanded)."""
    VERIFY_KINDS[name] = func


def acl_condition(name: str) -> Callable[[ConditionFunc], ConditionFunc]:
    def register(func: ConditionFunc) -> ConditionFunc:
        from pyxim.config.sections import register_acl_name

        register_acl_name(name)  # so a configuration naming it loads
        CONDITIONS[name] = func
        return func

    return register


@dataclass
class AclRun:
    config: Config
    ctx: ExpansionContext
    state: AclState
    depth: int = 0
    verify_failure: str | None = None  # why the last verify condition failed (for the log)
    verify_user_message: str | None = None  # what the client is told when no message= is set
    label: str = ""  # -bh trace: 'ACL "name"' or "inline ACL"
    # -bh trace: a condition's argument already expanded (to show it), handed to its first expand()
    preexpanded: tuple[str, str] | None = None

    def expand(self, text: str) -> str:
        from pyxim.expand import expand_string

        if self.preexpanded is not None:
            raw, done = self.preexpanded
            self.preexpanded = None
            if raw == text:
                return done
        return expand_string(text, self.ctx)


class AclTracer:
    """`-bh`: Exim's ">>> " debugging lines for ACLs (and list matches), given to `write`
    one line at a time without its newline. Outside -bh there is none (ctx.acl_trace is None)."""

    def __init__(self, write: Callable[[str], None], inline_where: str = "") -> None:
        self.write = write
        self.indent = 0  # one space per nested ACL, as Exim's debug_printf_indent
        self.lists = False  # whether list matches are shown now (during hosts/domains/local_parts)
        self.inline_where = inline_where  # "file line" Exim shows for ACLs given in line

    def __call__(self, text: str, indent: bool = True) -> None:
        self.write(">>> " + (" " * self.indent if indent else "") + text)

    @staticmethod
    def for_config(config: Config, write: Callable[[str], None]) -> AclTracer:
        """Exim parses ACLs given in line at run time, when its reader has finished the main
        file: their statements show its name and its last line number."""
        try:
            with open(config.filename, "rb") as f:
                data = f.read()
            lines = data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)
        except OSError:
            lines = 0
        return AclTracer(write, f"{config.filename} {lines}")


# Conditions and modifiers whose argument Exim expands before showing it (its expand_at_top);
# the others expand it further down, and the trace shows only the text as written.
_NOT_EXPANDED_AT_TOP = frozenset(
    {"acl", "authenticated", "domains", "encrypted", "hosts", "local_parts", "recipients", "sender_domains", "senders"}
)


def _load_condition_modules() -> None:
    """Conditions that live in modules of their own register when imported."""
    from pyxim.acl import dnslists, mime, ratelimit  # noqa: F401
    from pyxim.policy import arc, dkim, dmarc, spf  # noqa: F401


def acl_runner(config: Config, ctx: ExpansionContext, state: AclState | None = None):  # type: ignore[no-untyped-def]
    """What ${acl{name}{args}} and the acl condition call: run a named ACL with $acl_arg1…."""

    def run(name: str, args: list[str]) -> tuple[str, str | None]:
        saved = {k: ctx.variables.get(k) for k in [f"acl_arg{n}" for n in range(1, 10)] + ["acl_narg"]}
        for n in range(1, 10):
            ctx.variables[f"acl_arg{n}"] = args[n - 1] if n <= len(args) else ""
        ctx.variables["acl_narg"] = str(len(args))
        try:
            if config.acls.get(name) is None:
                return "error", None
            trace = ctx.acl_trace
            if trace is None:
                result = run_acl(config, name, ctx, state or AclState())
            else:  # Exim's -bh trace indents an ACL run by an expansion two more places
                outer = trace.indent
                result = run_acl(config, name, ctx, state or AclState(), depth=outer + 2)
                trace.indent = outer
        finally:
            for k, v in saved.items():
                if v is None:
                    ctx.variables.pop(k, None)
                else:
                    ctx.variables[k] = v
        if result.verdict in ("accept", "discard"):
            return "accept", result.message
        if result.verdict in ("deny", "drop"):
            return "deny", result.message
        return "defer", result.message

    return run


def find_acl_text(config: Config, name: str) -> list | None:
    acl = config.acls.get(name)
    return acl.statements if acl is not None else None


def run_acl(config: Config, acl_name: str | None, ctx: ExpansionContext, state: AclState, default: str = "accept",
            depth: int = 0) -> AclResult:
    """Run the ACL named by an option's value (expanded); an unset option gives `default`."""
    from pyxim.expand import expand_string

    if not acl_name:
        return AclResult(default)
    try:
        name = expand_string(acl_name, ctx).strip()
    except ExpansionError as exc:
        return AclResult("defer", defer_reason=f"failed to expand ACL string \"{acl_name}\": {exc.message}")
    trace = ctx.acl_trace
    statements = find_acl_text(config, name)
    label, where = f'ACL "{name}"', ""
    if statements is None:
        if name and name.split()[0] in VERBS:  # an ACL written in line: "acl_smtp_rcpt = accept hosts = …"
            try:
                statements = _parse_inline(name)
            except Exception as exc:  # noqa: BLE001 - Exim's "error in ACL"
                return AclResult("defer", defer_reason=f"error in ACL: {exc}")
            label = "inline ACL"
            where = trace.inline_where if trace is not None else ""
        else:
            return AclResult("defer", defer_reason=f'ACL "{name}" not found')
    elif trace is not None:
        trace.indent = depth
        trace(f'using ACL "{name}"')
        acl = config.acls.get(name)
        where = acl.file if acl is not None else ""
    if trace is not None and depth == 0:
        # Exim remembers domain and local part list results with the address being checked:
        # a new recipient starts afresh, and the trace shows the lists matched again.
        for key in [k for k in ctx.lookup_cache if k[0] == "namedlist" and k[1] in ("domain", "localpart")]:
            del ctx.lookup_cache[key]
    _load_condition_modules()
    run = AclRun(config, ctx, state, depth, label=label)
    for st in statements:
        if trace is not None:
            trace.indent = depth
            trace(f'processing "{st.verb}" ({where if label == "inline ACL" else f"{where} {st.line}"})')
        result = _run_statement(run, st)
        if result is not None:
            return result
    if trace is not None:
        trace(f"end of {label}: implicit DENY")
    return AclResult("deny", defer_reason=None)


def _parse_inline(text: str) -> list:  # type: ignore[type-arg]
    """The statements of an ACL given in line (Exim reads its text as lines of an ACL)."""
    from pyxim.config.model import Acl
    from pyxim.config.sections import _acl_line
    from pyxim.config.syntax import Line

    acl = Acl("", [])
    statement = None
    for piece in text.split("\n"):
        if piece.strip():
            statement = _acl_line(acl, statement, piece.strip(), Line("", 0, piece.strip()), piece.strip())
    return acl.statements


def _run_statement(run: AclRun, st) -> AclResult | None:  # type: ignore[no-untyped-def]
    message: str | None = None
    log_message: str | None = None
    all_true = True
    endpass = False
    for name, value, _line in st.items:
        if name == "endpass":
            endpass = True
            continue
        try:
            if name in ("message", "log_message"):
                # expanded when the statement decides; kept as text until then
                if name == "message":
                    message = value
                else:
                    log_message = value
                if run.ctx.acl_trace is not None:
                    run.ctx.acl_trace(f"  message: {value}" if name == "message" else f"l_message: {value}")
                continue
            if run.ctx.acl_trace is not None:
                _trace_check(run, name, value)
            if name in _MODIFIERS:
                _MODIFIERS[name](run, value)
                continue
            negated = name.startswith("!")
            func = CONDITIONS.get(name.lstrip("!"))
            if func is None:
                raise AclConditionError(f'unknown ACL condition/modifier "{name}"')
            if func(run, value) == negated:
                all_true = False
        except LookupDefer as exc:
            if run.verify_user_message is not None and not st.verb == "warn":
                # a verify that could not complete words its own reply (callouts)
                user = run.verify_user_message
                run.verify_user_message = None
                _trace_outcome(run, st.verb, "deferred")
                return AclResult("defer", user, defer_reason=exc.message)
            if st.verb == "warn":
                # a warn statement that cannot be decided is skipped, with a note in the log
                run.state.log_lines.append(
                    (True, f'Warning: ACL "warn" statement skipped: condition test deferred: {exc.message}')
                )
                _trace_outcome(run, st.verb, "deferred")
                return None
            _trace_outcome(run, st.verb, "deferred")
            return AclResult("defer", defer_reason=exc.message)
        except ForcedFail:
            # Exim skips a condition or modifier whose argument's expansion is forced to fail;
            # a list whose expansion is forced to fail does not match
            if name.lstrip("!") in _NOT_EXPANDED_AT_TOP:
                all_true = False
        except (ExpansionError, AclConditionError) as exc:
            text = exc.message if isinstance(exc, ExpansionError) else str(exc)
            _trace_outcome(run, st.verb, "error")
            return AclResult("defer", defer_reason=text)
        except Exception as exc:  # noqa: BLE001 — a module's bug defers this statement, never the session
            _trace_outcome(run, st.verb, "error")
            return AclResult("defer", defer_reason=f'internal error in ACL condition "{name}": '
                                                   f"{type(exc).__name__}: {exc}")
        if not all_true:
            break
    verb = st.verb
    if run.ctx.acl_trace is not None:
        run.preexpanded = None
        _trace_outcome(run, verb, "succeeded" if all_true else "failed", endpass)
    user_message = _expand_or_none(run, message)
    if user_message is None and run.verify_user_message is not None and (verb == "require" and not all_true):
        user_message = run.verify_user_message
    # the log says why a verify failed unless log_message says otherwise
    log_text = _expand_or_none(run, log_message) or run.verify_failure
    run.verify_failure = None
    run.verify_user_message = None
    if verb == "require":
        return None if all_true else AclResult("deny", user_message, log_text, verb="require")
    if not all_true:
        if verb in ("accept", "discard") and endpass:
            return AclResult("deny", user_message, log_text)
        return None
    if verb == "warn":
        if log_text:
            run.state.log_lines.append((True, f"Warning: {log_text}"))
        return None
    return AclResult(verb, user_message, log_text, verb=verb)


def _trace_check(run: AclRun, name: str, value: str) -> None:
    """-bh: Exim's "check NAME = VALUE" line, and the value expanded below it when it has $ or \\.

    The expansion is done here, as Exim does it, and handed to the condition's own expand()."""
    run.preexpanded = None
    run.ctx.acl_trace.lists = name.lstrip("!") in _TRACED_LISTS
    lhs = f"check {name} "
    arg = value
    if name == "set":
        varname, _, arg = value.partition("=")
        lhs += varname.strip() + " "
        arg = arg.strip()
    expanded = None
    if name.lstrip("!") not in _NOT_EXPANDED_AT_TOP and ("$" in arg or "\\" in arg):
        expanded = run.expand(arg)  # before the line: a failed expansion shows none
        run.preexpanded = (arg, expanded)
    run.ctx.acl_trace(f"{lhs}= {arg}")
    if expanded is not None:
        run.ctx.acl_trace(" " * min(len(lhs), 29) + f"= {expanded}", indent=False)


# Conditions whose list matches the trace shows (Exim's address lists show more than pyxim can yet).
_TRACED_LISTS = frozenset({"domains", "local_parts", "hosts"})
_END_WORDS = {"accept": "ACCEPT", "defer": "DEFER", "deny": "DENY", "discard": "DISCARD", "drop": "DROP"}


def _trace_outcome(run: AclRun, verb: str, outcome: str, endpass: bool = False) -> None:
    """-bh: "VERB: condition test OUTCOME in ACL", then "end of ACL" when the statement decides."""
    trace = run.ctx.acl_trace
    if trace is None:
        return
    trace.lists = False
    trace(f"{verb}: condition test {outcome} in {run.label}")
    if outcome == "succeeded" and verb in _END_WORDS:
        trace(f"end of {run.label}: {_END_WORDS[verb]}")
    elif outcome == "failed" and verb == "require":
        trace(f"end of {run.label}: not OK")
    elif outcome == "failed" and endpass and verb in ("accept", "discard"):
        trace(f"{verb}: endpass encountered - denying access")


def _expand_or_none(run: AclRun, text: str | None) -> str | None:
    if text is None:
        return None
    try:
        return run.expand(text)
    except ExpansionError:
        return text


# -- modifiers ---------------------------------------------------------------


def _mod_set(run: AclRun, value: str) -> None:
    name, _, text = value.partition("=")
    name = name.strip()
    if not name.startswith(("acl_c", "acl_m")):
        raise AclConditionError(f'invalid variable name after "set" in ACL modifier "set {name}"')
    run.ctx.acl_vars[name] = run.expand(text.strip())


# Where add_header puts its headers (Exim's prefixes; without one, at the end)
HEADER_POSITIONS = (":after_received:", ":at_start_rfc:", ":at_start:", ":at_end:")


def _mod_add_header(run: AclRun, value: str) -> None:
    text = run.expand(value)
    # a position prefix applies to every header of this add_header; it is kept on each stored header
    # and acted on when the message's headers are put together
    position = next((p for p in HEADER_POSITIONS if text[: len(p)].lower() == p), "")
    text = text[len(position) :]
    # one header per line, but a line starting with white space continues the header before it
    # (Exim's setup_header): ${authresults} and other folded values stay one header
    lines: list[str] = []
    for line in text.split("\n"):
        if line[:1] in (" ", "\t") and lines:
            lines[-1] += "\n" + line
        elif line:
            lines.append(line)
    for line in lines:
        header = line if ":" in line.split("\n", 1)[0] else f"X-ACL-Warn: {line}"
        run.state.add_headers.append(position + header)
        position = ""  # only the first header of the value goes where the prefix says


def place_added_headers(headers: list, added: list[str], make) -> None:  # type: ignore[type-arg,no-untyped-def]
    """Put the add_header headers (each with its position prefix, if any) into a message's headers.

    headers: spool headers in order (each with .text); make(text) builds one. As Exim places them:
    :at_start: goes first; :after_received: after the first run of Received: headers;
    :at_start_rfc: after the first header and the Received:/Resent-* headers that follow it; the
    others last. Only the first header of one add_header value carries its position."""

    def name(h) -> str:  # type: ignore[no-untyped-def]
        return str(h.text).split(":", 1)[0].strip().lower()

    anchor = None  # Exim remembers where the last :after_received:/:at_start_rfc: header went
    for text in added:
        position = next((p for p in HEADER_POSITIONS if text[: len(p)].lower() == p), "")
        header = make(text[len(position) :] + "\n")
        if position == ":at_start:" or (position in (":after_received:", ":at_start_rfc:") and not headers):
            headers.insert(0, header)
            continue
        if position == ":at_start_rfc:":
            n = 0
            while n + 1 < len(headers) and (name(headers[n + 1]) == "received"
                                            or name(headers[n + 1]).startswith("resent-")):
                n += 1
            anchor = headers[n]
        elif position == ":after_received:":
            if anchor is None:
                first = next((i for i, h in enumerate(headers) if name(h) == "received"), None)
                if first is None:
                    headers.append(header)
                    continue
                n = first
                while n + 1 < len(headers) and name(headers[n + 1]) == "received":
                    n += 1
                anchor = headers[n]
        else:
            headers.append(header)
            continue
        headers.insert(next(i for i, h in enumerate(headers) if h is anchor) + 1, header)


def _mod_remove_header(run: AclRun, value: str) -> None:
    from pyxim.lists import iterate_list

    run.state.remove_headers.extend(iterate_list(run.expand(value)))


# Set by -bh (not -bhc): verify callouts are not made (not a $-variable name).
NO_CALLOUTS = "pyxim:no_callouts"

# Where the RCPT session keeps the local part as the client wrote it (not a $-variable name).
ORIGINAL_LOCAL_PART = "pyxim:original_local_part"


# Exim's names for where an ACL runs, as its "cannot use control=… in … ACL" error words them
ACL_WHERE_NAMES = {
    "acl_smtp_rcpt": "RCPT", "acl_smtp_mail": "MAIL", "acl_smtp_predata": "PREDATA", "acl_smtp_mime": "MIME",
    "acl_smtp_dkim": "DKIM", "acl_smtp_data": "DATA", "acl_smtp_data_prdr": "PRDR", "acl_not_smtp": "non-SMTP",
    "acl_smtp_auth": "AUTH", "acl_smtp_connect": "connection", "acl_smtp_etrn": "ETRN", "acl_smtp_expn": "EXPN",
    "acl_smtp_helo": "EHLO or HELO", "acl_smtp_mailauth": "MAILAUTH", "acl_not_smtp_start": "non-SMTP-start",
    "acl_smtp_notquit": "NOTQUIT", "acl_smtp_quit": "QUIT", "acl_smtp_starttls": "STARTTLS", "acl_smtp_vrfy": "VRFY",
}
_MESSAGE_ACLS = frozenset({"acl_smtp_mail", "acl_smtp_rcpt", "acl_smtp_predata", "acl_smtp_data", "acl_smtp_mime",
                           "acl_smtp_dkim", "acl_smtp_data_prdr"})
_NOT_SMTP = frozenset({"acl_not_smtp", "acl_not_smtp_start"})
# Which ACLs each control may be used in (checked against exim4 4.96 for the SMTP ACLs); unlisted: any
CONTROL_ALLOWED_IN: dict[str, frozenset[str]] = {
    "allow_auth_unadvertised": frozenset({"acl_smtp_connect", "acl_smtp_helo"}),
    "caseful_local_part": frozenset({"acl_smtp_rcpt"}),
    "caselower_local_part": frozenset({"acl_smtp_rcpt"}),
    "utf8_downconvert": frozenset({"acl_smtp_rcpt"}),
    "freeze": _MESSAGE_ACLS | {"acl_not_smtp"},
    "queue": _MESSAGE_ACLS | {"acl_not_smtp"},
    "queue_only": _MESSAGE_ACLS | {"acl_not_smtp"},
    "no_mbox_unspool": _MESSAGE_ACLS | {"acl_not_smtp"},
    "fakedefer": _MESSAGE_ACLS,
    "fakereject": _MESSAGE_ACLS,
    "submission": frozenset({"acl_smtp_mail", "acl_smtp_rcpt", "acl_smtp_predata", "acl_not_smtp_start"}),
    "suppress_local_fixups": frozenset({"acl_smtp_mail", "acl_smtp_rcpt", "acl_smtp_predata", "acl_not_smtp_start"}),
}
# ... and which ones refuse a control that is allowed elsewhere (after DATA is too late for these)
CONTROL_REFUSED_IN: dict[str, frozenset[str]] = {
    "dkim_disable_verify": frozenset({"acl_smtp_data"}) | _NOT_SMTP,
    "dmarc_disable_verify": frozenset({"acl_smtp_data"}) | _NOT_SMTP,
    "dmarc_verify_disable": frozenset({"acl_smtp_data"}) | _NOT_SMTP,
    "dmarc_enable_forensic": frozenset({"acl_smtp_data"}) | _NOT_SMTP,
    "enforce_sync": _NOT_SMTP,
    "no_enforce_sync": _NOT_SMTP,
    "no_pipelining": _NOT_SMTP,
    "no_multiline_responses": _NOT_SMTP,
}


def _control_refused(word: str, where: str) -> bool:
    if not where:
        return False  # not run at an ACL point (${acl} in a test expansion …)
    allowed = CONTROL_ALLOWED_IN.get(word)
    return (allowed is not None and where not in allowed) or where in CONTROL_REFUSED_IN.get(word, frozenset())


def _mod_control(run: AclRun, value: str) -> None:
    text = run.expand(value)
    word = text.split("/", 1)[0].strip()
    if word not in CONTROLS:
        raise AclConditionError(f'unknown control "{word}"')
    if _control_refused(word, run.state.where):
        where = ACL_WHERE_NAMES.get(run.state.where, run.state.where)
        # Exim reads queue_only as control "queue" with an option, and names it so
        name = "queue" if word == "queue_only" else word
        raise AclConditionError(f'cannot use "control={name}" in {where} ACL')
    run.state.controls.add(text)
    handler = CONTROL_HANDLERS.get(word)
    if handler is not None:
        handler(run, text)
    original = run.ctx.variables.get(ORIGINAL_LOCAL_PART)
    if original is not None and word in ("caseful_local_part", "caselower_local_part"):
        # for the rest of this ACL run
        run.ctx.variables["local_part"] = original if word == "caseful_local_part" else original.lower()


def _mod_logwrite(run: AclRun, value: str) -> None:
    # a logwrite line stays one log line: Exim writes a newline in it as \n
    run.state.log_lines.append((False, run.expand(value).replace("\n", "\\n")))


def _mod_delay(run: AclRun, value: str) -> None:
    from pyxim.config.options import read_time

    seconds = read_time(run.expand(value).strip())
    if seconds is None:
        raise AclConditionError(f'invalid time value in "delay = {value}"')
    run.state.delay += seconds


def _mod_continue(run: AclRun, value: str) -> None:
    run.expand(value)


def _mod_udpsend(run: AclRun, value: str) -> None:
    """udpsend = host : port : payload — one datagram, for statistics or monitoring.

    The payload is the rest of the list after the port, exactly as written
    there (Exim does not split it further)."""
    import ipaddress
    import socket

    from pyxim.lists import leading_items

    (parts, payload) = leading_items(run.expand(value), 2)
    if not parts:
        raise AclConditionError('missing destination host in "udpsend" modifier')
    if len(parts) < 2:
        raise AclConditionError('missing destination port in "udpsend" modifier')
    host, port_text = parts
    if payload is None:
        raise AclConditionError('missing datagram payload in "udpsend" modifier')
    if not port_text.isdigit() or int(port_text) > 65535:
        raise AclConditionError('bad destination port in "udpsend" modifier')
    try:
        addresses = [str(ipaddress.ip_address(host))]
    except ValueError:
        try:
            infos = socket.getaddrinfo(host, None, type=socket.SOCK_DGRAM)
        except (OSError, UnicodeError):
            infos = []
        addresses = [info[4][0] for info in infos]
        if not addresses:
            raise LookupDefer('DNS lookup failed in "udpsend" modifier') from None
    data = payload.encode("utf-8", "surrogateescape")
    address = addresses[0]
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.connect((address, int(port_text)))
            sent = sock.send(data)
    except OSError as exc:
        raise LookupDefer(f'failed to send datagram to {address} in "udpsend" modifier: {exc.strerror}') from None
    if sent < len(data):
        raise LookupDefer(f'only {sent} of {len(data)} bytes sent in "udpsend" modifier')


_MODIFIERS: dict[str, Callable[[AclRun, str], None]] = {
    "udpsend": _mod_udpsend,
    "set": _mod_set,
    "add_header": _mod_add_header,
    "remove_header": _mod_remove_header,
    "control": _mod_control,
    "logwrite": _mod_logwrite,
    "delay": _mod_delay,
    "continue": _mod_continue,
}


# -- conditions --------------------------------------------------------------


@acl_condition("condition")
def _cond_condition(run: AclRun, value: str) -> bool:
    from pyxim.expand.conditions import cond_bool_lax

    text = run.expand(value)
    try:
        return cond_bool_lax(None, [text])  # type: ignore[arg-type]
    except ExpansionError:
        return False


def _list_condition(variable: str, matcher: str) -> ConditionFunc:
    def check(run: AclRun, value: str) -> bool:
        from pyxim import lists

        subject = run.ctx.variables.get(variable, "")
        listtext = _expand_list_arg(run, value)
        func = getattr(lists, matcher)
        return bool(func(run.ctx, subject, listtext))

    return check


acl_condition("domains")(_list_condition("domain", "match_domain_list"))
acl_condition("local_parts")(_list_condition("local_part", "match_localpart_list"))
acl_condition("senders")(_list_condition("sender_address", "match_address_list"))
acl_condition("recipients")(_list_condition("recipient", "match_address_list"))


@acl_condition("sender_domains")
def _cond_sender_domains(run: AclRun, value: str) -> bool:
    from pyxim.lists import match_domain_list

    sender = run.ctx.variables.get("sender_address", "")
    return match_domain_list(run.ctx, sender.rpartition("@")[2], run.expand(value))


@acl_condition("hosts")
def _cond_hosts(run: AclRun, value: str) -> bool:
    from pyxim.lists import match_host_list

    address = run.ctx.variables.get("sender_host_address", "")
    name = run.ctx.variables.get("sender_host_name") or None
    return match_host_list(run.ctx, address, _expand_list_arg(run, value), name)


def _expand_list_arg(run: AclRun, value: str) -> str:
    """A list condition's list, expanded as Exim's list matching does: a failure defers."""
    try:
        return run.expand(value)
    except ForcedFail:
        raise
    except ExpansionError as exc:
        raise LookupDefer(exc.message) from None


@acl_condition("authenticated")
def _cond_authenticated(run: AclRun, value: str) -> bool:
    from pyxim.lists import match_localpart_list

    auth_id = run.ctx.variables.get("authenticated_id", "")
    if not run.ctx.variables.get("sender_host_authenticated"):
        return False
    return match_localpart_list(run.ctx, auth_id, run.expand(value))


@acl_condition("encrypted")
def _cond_encrypted(run: AclRun, value: str) -> bool:
    from pyxim.lists import match_localpart_list

    cipher = run.ctx.variables.get("tls_in_cipher", "")
    return bool(cipher) and match_localpart_list(run.ctx, cipher, run.expand(value))


@acl_condition("acl")
def _cond_acl(run: AclRun, value: str) -> bool:
    text = run.expand(value)
    name = text.split()[0] if text.split() else ""
    if run.depth > 20:
        raise AclConditionError("ACL nested too deeply")
    result = run_acl(run.config, name, run.ctx, run.state, default="deny", depth=run.depth + 1)
    if run.ctx.acl_trace is not None:
        run.ctx.acl_trace.indent = run.depth
    if result.verdict == "defer":
        raise LookupDefer(result.defer_reason or f'ACL "{name}" deferred')
    return result.verdict == "accept"


_ADDRESS_HEADERS = ("from", "sender", "reply-to", "to", "cc", "bcc", "resent-from", "resent-sender",
                    "resent-reply-to", "resent-to", "resent-cc", "resent-bcc")


def _verify_header_syntax(run: AclRun) -> bool:
    from pyxim.address import extract_address, split_address_list

    msg = run.ctx.message
    if msg is None:
        return True
    for header in msg.headers:
        if header.name.lower() not in _ADDRESS_HEADERS:
            continue
        value = header.value.strip()
        if not value or value.endswith(";") and ":" in value:  # empty, or a group "undisclosed:;"
            continue
        for piece in split_address_list(value):
            parsed = extract_address(piece)
            if parsed is None or ("@" not in parsed.address and parsed.address) or " " in parsed.address:
                text = piece.strip()
                if "<" in text and ">" not in text:
                    word = text.split("<", 1)[1].split("@")[0].strip()
                    error = f'"@" or "." expected after "{word}"'
                else:
                    error = 'missing or malformed local part (expected word or "<")'
                run.verify_failure = f'{error}: failing address in "{header.name}:" header is: {text}'
                return False
    return True


def _verify_not_blind(run: AclRun) -> bool:
    from pyxim.address import extract_address, split_address_list

    msg = run.ctx.message
    def norm(address: str) -> str:
        # local parts compare exactly, domains without case (as Exim does)
        local, at, domain = address.rpartition("@")
        return f"{local}@{domain.lower()}" if at else address

    recipients = [norm(r) for r in run.ctx.variables.get("recipients", "").split(", ") if r]
    if msg is None or not recipients:
        return True
    visible: set[str] = set()
    for header in msg.headers:
        if header.name.lower() in ("to", "cc"):
            for piece in split_address_list(header.value):
                parsed = extract_address(piece)
                if parsed is not None:
                    visible.add(norm(parsed.address))
    if all(r in visible for r in recipients):
        return True
    run.verify_failure = "bcc recipient detected"
    return False


def _verify_header_sender(run: AclRun, options: str = "", text: str = "") -> bool:
    """At least one address in Sender:, Reply-To: or From: must verify (route, and answer a
    callout when /callout is given); when none does and some could not be checked, the
    condition defers, as Exim's does."""
    from pyxim.address import extract_address, split_address_list
    from pyxim.routers.engine import route_address

    msg = run.ctx.message
    if msg is None:
        return True
    deferred = False
    for header in msg.headers:
        if header.name.lower() not in ("sender", "reply-to", "from"):
            continue
        for piece in split_address_list(header.value):
            parsed = extract_address(piece)
            if parsed is None or "@" not in parsed.address:
                continue
            results = route_address(run.config, parsed.address, verifying="sender")
            if any(r.outcome == "deferred" for r in results):
                deferred = True
                continue
            if not results or not all(r.outcome in ("routed", "discarded") for r in results):
                continue
            if "callout" not in options:
                return True
            from pyxim.acl.callout import verify_by_callout

            try:
                if verify_by_callout(run, "header_sender", parsed.address, results, options, text):
                    return True
            except LookupDefer:
                deferred = True
            run.verify_failure = run.verify_user_message = None  # the next address gets its chance
    if deferred:
        raise LookupDefer("all attempts to verify a sender in a header line deferred")
    run.verify_failure = "there is no valid sender in any header line"
    return False


def _verify_reverse_host_lookup(run: AclRun, defer_ok: bool) -> bool:
    address = run.ctx.variables.get("sender_host_address", "")
    if not address:
        return True
    resolver = run.ctx.get_resolver()
    try:
        for name in resolver.host_names_for_ip(address):
            if address in resolver.addresses_for_name(name):
                run.ctx.variables["sender_host_name"] = name
                return True
    except LookupDefer:
        if defer_ok:
            return True
        raise
    return False


def _verify_helo(run: AclRun) -> bool:
    helo = run.ctx.variables.get("sender_helo_name", "")
    address = run.ctx.variables.get("sender_host_address", "")
    if not helo or not address:
        return not address  # local sessions have nothing to verify
    if helo.startswith("["):
        return helo.strip("[]").removeprefix("IPv6:").lower() == address.lower()
    resolver = run.ctx.get_resolver()
    try:
        return address in resolver.addresses_for_name(helo)
    except LookupDefer:
        return False


@acl_condition("verify")
def _cond_verify(run: AclRun, value: str) -> bool:
    text = run.expand(value)
    what, _, options = text.partition("/")
    what = what.strip()
    if what == "header_syntax":
        return _verify_header_syntax(run)
    if what == "not_blind":
        return _verify_not_blind(run)
    if what == "reverse_host_lookup":
        return _verify_reverse_host_lookup(run, "defer_ok" in options)
    if what == "helo":
        return _verify_helo(run)
    if what == "header_sender":
        return _verify_header_sender(run, options, text)
    if what == "certificate":
        return run.ctx.variables.get("tls_in_certificate_verified") == "1"
    if what in ("sender", "recipient"):
        address = run.ctx.variables.get("sender_address" if what == "sender" else "recipient", "")
        if what == "sender" and address == "":
            return True  # the null sender (bounces) always verifies
        if "@" not in address:
            run.verify_failure = run.verify_user_message = "bad address"
            return False
        from pyxim.routers.engine import route_address

        if not run.config.routers:
            return True  # nothing to route with: as good as Exim's "no routers" check
        results = route_address(run.config, str(address), verifying="sender" if what == "sender" else True)
        failed = next((r for r in results if r.outcome == "failed"), None)
        deferred = next((r for r in results if r.outcome == "deferred"), None)
        if deferred is not None and "defer_ok" not in options:
            raise LookupDefer(deferred.message)
        if failed is not None:
            if what == "recipient":
                run.verify_failure = run.verify_user_message = failed.message
            else:
                from pyxim.acl.callout import sender_failed

                sender_failed(run, str(address), failed.message,
                              [f"Verification failed for <{address}>", failed.message])
            return False
        if "callout" in options:
            from pyxim.acl.callout import verify_by_callout

            return verify_by_callout(run, what, str(address), results, options, text)
        return True
    handler = VERIFY_KINDS.get(what)
    if handler is not None:
        return handler(run, options)
    raise AclConditionError(f"verify = {what} is not available in this version of pyxim")


@acl_condition("regex")
def _cond_regex(run: AclRun, value: str) -> bool:
    """Match any line of the message (headers and body); $regex1… get the groups."""
    from pyxim.expand.regex import compile_pcre

    msg = run.ctx.message
    if msg is None:
        return False
    lines = (msg.headers_text() + "\n\n" + msg.body).split("\n")
    for pattern in _list_items(run.expand(value)):
        regex = compile_pcre(pattern)
        m = next((found for found in map(regex.search, lines) if found), None)
        if m:
            record_regex_match(run, m)
            return True
    return False


def record_regex_match(run: AclRun, m) -> None:  # type: ignore[no-untyped-def]
    """$regex1… and $regex_match_string after a regex or mime_regex condition matched."""
    for n, group in enumerate(m.groups(), 1):
        run.ctx.variables[f"regex{n}"] = group or ""
    run.ctx.variables["regex_match_string"] = m.group(0)


def _list_items(text: str) -> list[str]:
    from pyxim.lists import iterate_list

    return list(iterate_list(text))

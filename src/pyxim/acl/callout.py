"""Callout verification (verify = recipient/callout=…, sender/callout=…), as Exim does it.

The options after "callout" are a comma-separated list: a time (the per-command timeout),
defer_ok, no_cache, random, postmaster, fullpostmaster, postmaster_mailfrom=, use_sender,
use_postmaster, mailfrom= (header_sender only), maxwait=, connect=, hold. ("pipelining" is
an Exim 4.97 word; 4.96 refuses it as a bad time value, as pyxim does.)

The sequence for one address: a check of a "random" local part (callout_random_local_part)
when `random` is set and the domain's answer to it is not known — if the server accepts it, it
accepts everything and the address passes without more; then the address itself; then, for
`postmaster`/`postmaster_mailfrom`/`fullpostmaster`, postmaster@domain (and the bare
"postmaster" for fullpostmaster) when the domain's answer to it is not known. Each question goes
through the smtp transport's own connection code (smtp_delivery.callout); Exim asks them in one
connection with RSET between, pyxim in one connection each — the server sees the same
MAIL FROM/RCPT TO pairs.

Answers are kept in the "callout" hints database: per domain (random and postmaster answers,
callout_domain_positive_expire / callout_domain_negative_expire) and per address
(callout_positive_expire / callout_negative_expire; the key names the MAIL FROM address when it
is not <>). Temporary errors are not kept. `no_cache` neither reads nor writes it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from pyxim.errors import LookupDefer

# Exim 4.96's words ("pipelining" came later: 4.96 reads it as a malformed time, and so do we)
_BOOLEANS = (
    "defer_ok",
    "no_cache",
    "random",
    "postmaster",
    "fullpostmaster",
    "use_sender",
    "use_postmaster",
    "hold",
)


@dataclass
class CalloutOptions:
    timeout: float = 30.0  # each SMTP command (Exim's default callout time is 30s)
    connect: float | None = None  # connecting; None: as `timeout`
    maxwait: float | None = None  # the whole callout
    defer_ok: bool = False
    no_cache: bool = False
    random: bool = False
    postmaster: bool = False
    fullpostmaster: bool = False
    postmaster_mailfrom: str | None = None
    use_sender: bool = False
    use_postmaster: bool = False
    mailfrom: str | None = None
    hold: bool = False  # Exim keeps the connection for the message; pyxim accepts the option only

    @property
    def check_postmaster(self) -> bool:
        return self.postmaster or self.fullpostmaster or self.postmaster_mailfrom is not None


def parse_options(verify_options: str, what: str, condition: str) -> CalloutOptions:
    """The callout options of a verify condition's text after its first "/"."""
    from pyxim.acl.engine import AclConditionError
    from pyxim.config.options import read_time

    opts = CalloutOptions()
    for option in verify_options.split("/"):
        name, _, value = option.strip().partition("=")
        name = name.strip()
        if name == "defer_ok":
            opts.defer_ok = True
        if name != "callout":
            continue
        for item in (i.strip() for i in value.split(",")):
            key, eq, arg = item.partition("=")
            key, arg = key.strip(), arg.strip()
            if not item:
                continue
            if key in _BOOLEANS and not eq:
                setattr(opts, key, True)
            elif key in ("postmaster_mailfrom", "mailfrom") and eq:
                if key == "mailfrom" and what != "header_sender":
                    raise AclConditionError(
                        f'"mailfrom" is allowed as a callout option only for '
                        f'verify=header_sender (detected in ACL condition "{condition}")'
                    )
                setattr(opts, key, arg)
            elif key in ("maxwait", "connect") and eq:
                seconds = read_time(arg)
                if seconds is None or seconds < 0:
                    raise AclConditionError(f'bad time value in ACL condition "verify {condition}"')
                setattr(opts, key, float(seconds))
            elif not eq:
                seconds = read_time(key)
                if seconds is None or seconds < 0:
                    # Exim takes any word it does not know for the time, and says so
                    raise AclConditionError(f'bad time value in ACL condition "verify {condition}"')
                opts.timeout = float(seconds) if seconds else opts.timeout
            else:
                raise AclConditionError(f'bad time value in ACL condition "verify {condition}"')
    return opts


class _Cache:
    """The callout hints database, or nothing (no_cache, no spool)."""

    def __init__(self, config: Any, enabled: bool) -> None:
        self.db = None
        self.main = config.main
        spool = config.main.get("spool_directory")
        if enabled and spool:
            from pyxim.queue.hints import HintsDb

            try:
                self.db = HintsDb(str(spool), "callout")
            except OSError:
                self.db = None

    def _expire(self, option: str, default: int) -> float:
        value = self.main.get(option)
        return float(default if value in (None, "") else value)

    def domain(self, domain: str) -> dict[str, Any]:
        """The domain's known answers: {"random": "accept"/"reject", "postmaster": …}, expired
        ones left out."""
        if self.db is None:
            return {}
        record = self.db.get(f"D:{domain}") or {}
        now = time.time()
        known = {}
        for field, (result, stamp) in record.items():
            limit = self._expire(
                "callout_domain_positive_expire" if result == "accept" else "callout_domain_negative_expire",
                604800 if result == "accept" else 10800,
            )
            if now - stamp <= limit:
                known[field] = result
        return known

    def set_domain(self, domain: str, field: str, result: str) -> None:
        if self.db is not None:
            record = self.db.get(f"D:{domain}") or {}
            record[field] = [result, time.time()]
            self.db.put(f"D:{domain}", record)

    def address(self, key: str) -> str | None:
        if self.db is None:
            return None
        record = self.db.get(f"A:{key}")
        if not record:
            return None
        result, stamp = record
        limit = self._expire(
            "callout_positive_expire" if result == "accept" else "callout_negative_expire",
            86400 if result == "accept" else 7200,
        )
        return result if time.time() - stamp <= limit else None

    def set_address(self, key: str, result: str) -> None:
        if self.db is not None:
            self.db.put(f"A:{key}", [result, time.time()])


def verify_by_callout(
    run: Any, what: str, address: str, results: list[Any], verify_options: str, condition: str
) -> bool:
    """verify = recipient/callout (or sender/callout) for an address that routed."""
    from pyxim.acl.engine import NO_CALLOUTS
    from pyxim.delivery import TransportCall
    from pyxim.expand import ExpansionContext, expand_string
    from pyxim.spool.format import SpoolMessage
    from pyxim.transports.smtp_delivery import callout

    opts = parse_options(verify_options, what, condition)
    if run.ctx.variables.get(NO_CALLOUTS):
        return True  # -bh: callouts are assumed to succeed (-bhc makes them)
    routed = next((r for r in results if r.outcome == "routed" and r.transport), None)
    if routed is None:
        return True
    transport = next((t for t in run.config.transports if t.name == routed.transport), None)
    if transport is None or transport.driver != "smtp":
        return True  # Exim calls out only for addresses an smtp transport would deliver
    ctx = ExpansionContext(config=run.config)
    local_part, _, domain = address.rpartition("@")
    ctx.variables.update({"local_part": local_part, "domain": domain, **routed.variables})
    call = TransportCall(
        run.config,
        transport,
        SpoolMessage("", "", [], [], 0.0),
        b"",
        address,
        address,
        ctx,
        hosts=list(routed.hosts),
        router=routed.router,
    )
    deadline = time.monotonic() + opts.maxwait if opts.maxwait else None

    def ask(rcpt: str, mail_from: str) -> tuple[str, str]:
        timeout = opts.timeout
        if deadline is not None:
            timeout = min(timeout, deadline - time.monotonic())
            if timeout <= 0:
                return "defer", "callout maxwait exceeded"
        return callout(call, timeout, sender=mail_from, rcpt=rcpt, connect_timeout=opts.connect)

    sender = ""
    if what == "recipient" and opts.use_sender:
        sender = str(run.ctx.variables.get("sender_address", ""))
    elif what == "recipient" and opts.use_postmaster:
        from pyxim.expand.evaluate import Evaluation
        from pyxim.expand.variables import resolve_variable

        sender = f"postmaster@{resolve_variable(Evaluation(run.ctx), 'qualify_domain')}"
    elif opts.mailfrom is not None:
        sender = opts.mailfrom
    cache = _Cache(run.config, not opts.no_cache)
    dom_key = domain.lower()
    key = address.lower() if not sender else f"{address.lower()}/<{sender}>"
    known = cache.domain(dom_key)
    kind = "recipient" if what == "recipient" else "sender"

    def failed(log_text: str, user_text: str, detail: list[str], postmaster: bool = False) -> bool:
        if what in ("recipient", "header_sender"):
            run.verify_failure, run.verify_user_message = log_text, user_text
        else:
            heading = (
                f"Postmaster verification failed while checking <{address}>"
                if postmaster
                else f"Verification failed for <{address}>"
            )
            sender_failed(
                run, address, log_text, [heading, *detail, *(_POSTMASTER_RFCS if postmaster else [])]
            )
        return False

    def deferred(text: str) -> bool:
        if opts.defer_ok:
            return True
        if what == "header_sender":
            raise LookupDefer(text)  # the header_sender condition words its own deferral
        run.verify_user_message = f"Could not complete {kind} verify callout"
        if what != "recipient":
            run.state.log_lines.append(
                (
                    True,
                    f"sender verify defer for <{address}>: Could not complete sender verify callout: {text}",
                )
            )
            raise LookupDefer("Could not complete sender verify callout")
        raise LookupDefer(f"Could not complete {kind} verify callout: {text}")

    def rejected(text: str, last: str | None = None, postmaster: bool = False) -> bool:
        """`text`: the refusal, for the log; `last`: the last answer had, when another (Exim quotes
        the last command and answer of the conversation to the client)."""
        return failed(
            text,
            f"Callout verification failed:\n{_reply_of(last or text)}",
            _conversation(last or text),
            postmaster,
        )

    # what the cache already knows decides without a connection
    if opts.random and known.get("random") == "accept":
        return True  # the domain takes any local part: asking about this one says nothing
    if opts.check_postmaster and known.get("postmaster") == "reject":
        reused = "(result of earlier verification reused)."
        return failed(reused, reused, [reused], postmaster=True)
    cached = cache.address(key)
    if cached == "reject":
        previous = "Previous (cached) callout verification failure"
        return failed(previous, previous, [previous])
    if cached != "accept":
        if opts.random and "random" not in known:
            random_part = expand_string(
                str(
                    run.config.main.get("callout_random_local_part") or "$primary_hostname-$tod_epoch-testing"
                ),
                run.ctx,
            )
            status, text = ask(f"{random_part}@{domain}", sender)
            if status == "ok":
                cache.set_domain(dom_key, "random", "accept")
                return True
            if status == "fail":
                cache.set_domain(dom_key, "random", "reject")
            else:
                return deferred(text)
        status, text = ask(address, sender)
        if status == "defer":
            return deferred(text)
        cache.set_address(key, "accept" if status == "ok" else "reject")
        if status == "fail":
            if opts.check_postmaster and "postmaster" not in known:
                # Exim asks about postmaster even so, and its reply to the client then quotes
                # the last answer it had (postmaster's), while the log keeps the real reason
                pm_status, pm_text, pm_error = _ask_postmaster(ask, opts, domain)
                if pm_status != "defer":
                    cache.set_domain(dom_key, "postmaster", "accept" if pm_status == "ok" else "reject")
                    last = (
                        pm_text
                        if pm_status == "fail"
                        else f"{text.split(' : ', 1)[0]} : after RCPT TO:<{_last_postmaster(opts, domain, pm_error)}>: {pm_text}"
                    )
                    return rejected(pm_error or text, last)
            return rejected(text)
    if opts.check_postmaster and "postmaster" not in known:
        status, text, _error = _ask_postmaster(ask, opts, domain)
        if status == "defer":
            return deferred(text)
        cache.set_domain(dom_key, "postmaster", "accept" if status == "ok" else "reject")
        if status == "fail":
            return rejected(text, postmaster=True)
    return True


_POSTMASTER_RFCS = [
    "Several RFCs state that you are required to have a postmaster",
    "mailbox for each mail domain. This host does not accept mail",
    "from domains whose servers reject the postmaster address.",
]


def _reply_of(text: str) -> str:
    """The server's answer in a callout error text ("… after RCPT TO:<x>: 550 no")."""
    return text.rsplit(": ", 1)[-1] if " after " in text else text


def _conversation(text: str) -> list[str]:
    """Exim's "Called / Sent / Response" lines for a sender callout's failure."""
    import re

    m = re.match(r"\S+ \[([^\]]+)\] : (?:SMTP error from remote mail server )?after (.*?): (.*)$", text, re.S)
    if m is None:
        return [text]
    return [f"Called:   {m.group(1)}", f"Sent:     {m.group(2)}", f"Response: {m.group(3)}"]


def _last_postmaster(opts: CalloutOptions, domain: str, error: str) -> str:
    """The postmaster address asked last (the bare one when fullpostmaster fell back to it)."""
    return "postmaster" if opts.fullpostmaster and error else f"postmaster@{domain}"


def sender_failed(run: Any, address: str, reason: str, detail: list[str]) -> None:
    """A sender verification failed: Exim logs "sender verify fail for <address>: reason" once,
    tells the client the detail lines before the ACL's own message, and logs the rejection
    as "Sender verify failed"."""
    run.state.log_lines.append(
        (
            True,
            f"sender verify fail for <{address}>"
            + (f": {reason}" if reason and not reason.startswith(("(", "Previous")) else ""),
        )
    )
    run.verify_failure = "Sender verify failed"
    run.verify_user_message = "\n".join([*detail, "Sender verify failed"])


def _ask_postmaster(ask: Any, opts: CalloutOptions, domain: str) -> tuple[str, str, str]:
    """(status, text of the last answer, text of the last refusal or "")."""
    mail_from = opts.postmaster_mailfrom or ""
    status, text = ask(f"postmaster@{domain}", mail_from)
    error = text if status == "fail" else ""
    if status == "fail" and opts.fullpostmaster:
        # RFC 5321 says the bare "postmaster" must be accepted too
        status, text = ask("postmaster", mail_from)
        error = text if status == "fail" else error
    return status, text, error

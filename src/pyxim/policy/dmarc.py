"""DMARC (RFC 7489) as Exim's DMARC support does it: the `dmarc_status` ACL condition, the
$dmarc_* variables, the dmarc clause of ${authresults}, the history file and forensic reports.

As in Exim, nothing happens until a `dmarc_status` condition is first evaluated
(in the DATA ACL); then the message is checked once:

  * the RFC5322.From domain is taken from the message's From: header;
  * the SPF result for the MAIL FROM identity (or HELO, for a null sender) is the
    one `spf` already found, or is worked out then, through the same cached check;
  * the DKIM results are the ones DKIM verification left for this message;
  * the policy is _dmarc.<From domain> TXT, else _dmarc.<organizational domain>,
    asked through pyxim's resolver;
  * identifier alignment (adkim=, aspf=), sp= and pct= decide the outcome.

The outcome is one of accept, reject, quarantine, none, norecord, nofrom,
temperror and off (control = dmarc_disable_verify). Deliberate choices where
Exim (through libopendmarc) has none or is silent are written next to the code
and in docs/configuration.md.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pyxim.acl.engine import AclConditionError, acl_condition, register_control
from pyxim.errors import LookupDefer
from pyxim.policy.dmarc_record import (
    DmarcRecord,
    RecordError,
    is_dmarc_record,
    org_domain_finder,
    parse_record,
)

if TYPE_CHECKING:  # pragma: no cover
    from pyxim.acl.engine import AclRun
    from pyxim.expand.context import ExpansionContext

STATUSES = ("accept", "reject", "quarantine", "none", "norecord", "nofrom", "temperror", "off")

DISABLE_CONTROLS = ("dmarc_disable_verify", "dmarc_verify_disable")
FORENSIC_CONTROL = "dmarc_enable_forensic"

# Where a context keeps things for DMARC (not $-variable names)
OUTCOME_KEY = "pyxim:dmarc"
# Tests (and embedders) put a function returning a float in [0, 1) here to decide pct= sampling
RANDOM_KEY = ("pyxim", "dmarc-random")

# OpenDMARC's numbers, which its history file and opendmarc-import use
ARES = {
    "pass": 0,
    "softfail": 2,
    "neutral": 3,
    "temperror": 4,
    "permerror": 5,
    "none": 6,
    "fail": 7,
    "unknown": 11,
}
POLICY_ABSENT, POLICY_PASS, POLICY_REJECT, POLICY_QUARANTINE, POLICY_NONE = 14, 15, 16, 17, 18
FROM_DOMAIN_ABSENT = 13
ALIGN_PASS, ALIGN_FAIL = 4, 5
ACTION = {"reject": 0, "accept": 2, "tempfail": 3, "quarantine": 4}


@dataclass(slots=True)
class DmarcOutcome:
    """What the DMARC check of one message found (Exim's dmarc_* globals)."""

    status: str  # $dmarc_status and what dmarc_status matches
    result: str  # the RFC 8601 result in ${authresults} and $dmarc_ar_header (Exim's dmarc_pass_fail)
    status_text: str = ""
    from_domain: str = ""  # header.from
    used_domain: str = ""  # where the policy record was found (or would have been)
    domain_policy: str = ""  # p= (or sp=) of the record in force; "" on any error
    spf_domain: str = ""
    spf_result: str = ""
    spf_aligned: bool = False
    dkim_aligned: bool = False
    record: DmarcRecord | None = None
    org_record: bool = False  # the record came from the organizational domain
    policy_code: int = POLICY_ABSENT
    action: str = "accept"
    signatures: list[dict[str, str]] = field(default_factory=list)


# -- controls -------------------------------------------------------------------------------


def _old_control(run: AclRun, text: str) -> None:
    # SPEC-NOTES: the older name works, with a line in the main log
    run.state.log_lines.append(
        (False, 'control "dmarc_verify_disable" is deprecated; use "dmarc_disable_verify"')
    )


register_control("dmarc_disable_verify")
register_control("dmarc_verify_disable", _old_control)
register_control(FORENSIC_CONTROL)


def _controls(run: AclRun) -> set[str]:
    return {c.split("/", 1)[0].strip() for c in run.state.controls}


# -- the From: domain -------------------------------------------------------------------------


def from_domain(ctx: ExpansionContext) -> tuple[str, str]:
    """(domain, problem): the RFC5322.From domain, or "" and why there is none.

    RFC 7489 6.6.1 leaves messages with several From: fields or several
    author domains to the receiver; pyxim, like OpenDMARC's default, does
    not guess which author to check: such a message is "nofrom". One From:
    with several addresses in one domain is that domain."""
    from email.utils import getaddresses

    message = ctx.message
    if message is None:
        return "", "no message"
    fields = [h.value for h in message.headers if h.name.strip().lower() == "from" and h.type != "*"]
    if not fields:
        return "", "no From: header"
    if len(fields) > 1:
        return "", "several From: headers"
    text = " ".join(fields[0].split())
    domains = []
    for _name, address in getaddresses([text]):
        if not address:
            continue
        local, at, domain = address.rpartition("@")
        domain = domain.strip().rstrip(".").lower()
        if not at or not local or not domain or not _plausible_domain(domain):
            return "", "unusable From: address"
        domains.append(domain)
    if not domains:
        return "", "no address in From: header"
    if len(set(domains)) > 1:
        return "", "From: addresses in several domains"
    return domains[0], ""


def _plausible_domain(domain: str) -> bool:
    labels = domain.split(".")
    return (
        len(domain) <= 253
        and all(0 < len(label) <= 63 for label in labels)
        and all(c.isalnum() or c in "-_" for label in labels for c in label)
    )


# -- DNS ------------------------------------------------------------------------------------------


def _dns_timing(ctx: ExpansionContext) -> tuple[float | None, int | None]:
    main = ctx.config.main if ctx.config is not None else {}
    retrans = main.get("dns_retrans") or None
    retry = main.get("dns_retry") or None
    return (float(retrans) if retrans else None), (int(retry) if retry else None)


def txt_records(ctx: ExpansionContext, name: str) -> list[str]:
    """The TXT records at `name`, each one's strings joined. LookupDefer on a DNS failure."""
    retrans, retry = _dns_timing(ctx)
    answer = ctx.get_resolver().query(name, "TXT", retrans=retrans, retry=retry)
    out = []
    for rdata in answer.records:
        out.append(b"".join(rdata.strings).decode("utf-8", "replace"))
    return out


def discover_policy(
    ctx: ExpansionContext, domain: str, org_domain: str
) -> tuple[DmarcRecord | None, str, bool]:
    """RFC 7489 6.6.3: (record or None, the domain it was looked for at, from the org domain?).
    LookupDefer when DNS fails; RecordError for a record that cannot be used."""
    looked = domain
    found = [t for t in txt_records(ctx, f"_dmarc.{domain}") if is_dmarc_record(t)]
    at_org = False
    if not found and org_domain and org_domain != domain:
        looked, at_org = org_domain, True
        found = [t for t in txt_records(ctx, f"_dmarc.{org_domain}") if is_dmarc_record(t)]
    if not found:
        return None, looked, at_org
    if len(found) > 1:
        # step 5: several DMARC records at one name mean no policy
        raise RecordError("more than one DMARC record")
    return parse_record(found[0]), looked, at_org


# -- the check -----------------------------------------------------------------------------------


def _aligned(identifier: str, from_dom: str, strict: bool, org_of) -> bool:  # type: ignore[no-untyped-def]
    identifier, from_dom = identifier.lower().rstrip("."), from_dom.lower()
    if not identifier:
        return False
    if identifier == from_dom:
        return True
    return not strict and org_of(identifier) == org_of(from_dom)


def _spf(run: AclRun) -> tuple[str, str]:
    """(SPF domain, SPF result) for the MAIL FROM identity, HELO for a null sender."""
    from pyxim.policy import spf

    variables = run.ctx.variables
    sender = str(variables.get("sender_address") or "")
    domain = sender.rpartition("@")[2] if "@" in sender else ""
    if not domain:
        domain = str(variables.get("sender_helo_name") or "")
        # Exim's line, for the null sender
        run.state.log_lines.append((False, f"DMARC using synthesized SPF sender domain = {domain}"))
    try:
        values = spf.check(run, guess=False)
    except AclConditionError:
        return domain, "none"
    except Exception:  # noqa: BLE001 - pyspf is foreign code; a failure of it is "no SPF result"
        return domain, "temperror"
    # as after an spf condition: $spf_result and the spf clause of ${authresults}
    variables.update(values)
    return domain, values["spf_result"]


def _signatures(run: AclRun) -> list[dict[str, str]]:
    from pyxim.policy.dkim import SIGNATURES_KEY

    if "dkim_disable_verify" in _controls(run):
        return []
    return list(run.ctx.lookup_cache.get(SIGNATURES_KEY, []))


def _random(ctx: ExpansionContext) -> float:
    chooser = ctx.lookup_cache.get(RANDOM_KEY)
    return float(chooser()) if callable(chooser) else random.random()


def _skipped(status: str, from_dom: str = "") -> DmarcOutcome:
    # Exim's value when the check never ran to the end: the condition sees `status`, and
    # ${authresults} says "skipped"
    return DmarcOutcome(status, "skipped", from_domain=from_dom)


def check(run: AclRun) -> DmarcOutcome:
    """Check this message (once; later calls get the same outcome)."""
    ctx = run.ctx
    message_id = str(ctx.variables.get("message_exim_id") or "")
    key = (OUTCOME_KEY, message_id)
    cached = ctx.lookup_cache.get(key)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    try:
        outcome = _check(run)
    except Exception as exc:  # noqa: BLE001 - hostile input must never cost the message
        # Exim's wording for an outcome its library does not know
        run.state.log_lines.append((False, f"DMARC internal error: {type(exc).__name__}: {exc}"))
        outcome = DmarcOutcome(
            "temperror", "temperror", "Internal Policy Error", action="tempfail", policy_code=0
        )
    ctx.lookup_cache[key] = outcome
    if outcome.record is not None and outcome.status != "temperror":
        from pyxim.policy import dmarc_report

        try:
            dmarc_report.after_check(run, outcome)
        except Exception as exc:  # noqa: BLE001 - reports are a side matter; the message goes on
            run.state.log_lines.append((False, f"DMARC reporting failed: {type(exc).__name__}: {exc}"))
    return outcome


def _check(run: AclRun) -> DmarcOutcome:
    ctx = run.ctx
    config = run.config
    if _controls(run) & set(DISABLE_CONTROLS):
        return _skipped("off")
    tld_file = config.main.get("dmarc_tld_file")
    if tld_file == "":
        return _skipped("none")  # an explicit empty dmarc_tld_file turns DMARC off, as in Exim
    try:
        org_of = org_domain_finder(str(tld_file) if tld_file else None)
    except OSError as exc:
        run.state.log_lines.append(
            (False, f"DMARC failure to load tld list '{tld_file}': {exc.strerror or exc}")
        )
        return _skipped("none")
    if not ctx.variables.get("sender_host_address"):
        return _skipped("none")  # locally submitted: no DMARC, as in Exim
    from_dom, problem = from_domain(ctx)
    if not from_dom:
        # Exim words nofrom as temperror; pyxim keeps that for a missing or unreadable From:, and
        # says permerror for several author domains, a fault of the message that will not go away
        several = problem.startswith("several") or "several domains" in problem
        return DmarcOutcome(
            "nofrom",
            "permerror" if several else "temperror",
            "Multiple From: domains" if several else "No From: domain found",
        )
    if ctx.variables.get("sender_host_authenticated"):
        return _skipped("none", from_dom)  # Exim skips DMARC for authenticated clients
    spf_domain, spf_result = _spf(run)
    signatures = _signatures(run)
    outcome = DmarcOutcome(
        "norecord",
        "none",
        "No DMARC record",
        from_domain=from_dom,
        used_domain=from_dom,
        spf_domain=spf_domain,
        spf_result=spf_result,
        signatures=signatures,
    )
    try:
        org_domain = org_of(from_dom)
        record, looked, at_org = discover_policy(ctx, from_dom, org_domain)
    except LookupDefer:
        outcome.status, outcome.result, outcome.status_text = (
            "temperror",
            "temperror",
            "DNS temporary failure",
        )
        outcome.action, outcome.policy_code = "tempfail", 0
        return outcome
    except RecordError:
        return outcome  # OpenDMARC's "record parse error": treated as no record
    outcome.used_domain = looked
    if record is None:
        return outcome
    outcome.record, outcome.org_record = record, at_org
    # sp= governs a From domain below the organizational domain when the policy came from there
    policy = record.sp if at_org and record.sp else record.p
    outcome.domain_policy = policy
    outcome.spf_aligned = spf_result == "pass" and _aligned(spf_domain, from_dom, record.spf_strict, org_of)
    outcome.dkim_aligned = any(
        s.get("dkim_verify_status") == "pass"
        and _aligned(s.get("dkim_domain", ""), from_dom, record.dkim_strict, org_of)
        for s in signatures
    )
    if outcome.spf_aligned or outcome.dkim_aligned:
        outcome.status, outcome.result, outcome.status_text = "accept", "pass", "Accept"
        outcome.policy_code = POLICY_PASS
        return outcome
    outcome.result = "fail"
    # pct= (RFC 7489 6.6.4): a message outside the sample gets the next less strict policy
    if policy != "none" and record.pct < 100 and not _random(ctx) * 100 < record.pct:
        policy = "quarantine" if policy == "reject" else "none"
    if policy == "reject":
        outcome.status, outcome.status_text, outcome.action = "reject", "Reject", "reject"
        outcome.policy_code = POLICY_REJECT
    elif policy == "quarantine":
        outcome.status, outcome.status_text, outcome.action = "quarantine", "Quarantine", "quarantine"
        outcome.policy_code = POLICY_QUARANTINE
    else:
        outcome.status, outcome.status_text = "none", "None, Accept"
        outcome.policy_code = POLICY_NONE
    return outcome


# -- the condition --------------------------------------------------------------------------


@acl_condition("dmarc_status")
def cond_dmarc_status(run: AclRun, value: str) -> bool:
    """True when the message's DMARC outcome is in the list (items may be negated with !),
    the way the spf condition reads its list."""
    from pyxim.lists import iterate_list

    wanted = []
    for item in iterate_list(run.expand(value)):
        negated = item.startswith("!")
        word = item.lstrip("!").strip()
        if word not in STATUSES:
            raise AclConditionError(f'unknown DMARC status "{item}"')
        wanted.append((negated, word))
    if run.ctx.message is None:
        raise AclConditionError("dmarc_status: no message yet (the condition belongs in the DATA ACL)")
    status = check(run).status
    return any((status == word) != negated for negated, word in wanted)


# -- variables and ${authresults} ------------------------------------------------------------


def current_outcome(ctx: ExpansionContext) -> DmarcOutcome | None:
    """The outcome for the message being handled, once the check has run for it."""
    message_id = str(ctx.variables.get("message_exim_id") or "")
    if not message_id:
        return None
    found = ctx.lookup_cache.get((OUTCOME_KEY, message_id))
    return found if isinstance(found, DmarcOutcome) else None


def ar_header(ctx: ExpansionContext, outcome: DmarcOutcome) -> str:
    """$dmarc_ar_header: Exim's one-method Authentication-Results header."""
    from pyxim.expand.variables import resolve_variable

    host = resolve_variable(_Ev(ctx), "primary_hostname")
    return f"Authentication-Results: {host}; {_clause(outcome)}"


def _clause(outcome: DmarcOutcome) -> str:
    return f"dmarc={outcome.result}" + (f" header.from={outcome.from_domain}" if outcome.from_domain else "")


class _Ev:
    def __init__(self, ctx: ExpansionContext) -> None:
        self.ctx = ctx


def _variable(name: str):  # type: ignore[no-untyped-def]
    def compute(ev) -> str:  # type: ignore[no-untyped-def]
        outcome = current_outcome(ev.ctx)
        if outcome is None:
            # before the check, while a message is being received, Exim's $dmarc_status reads "none"
            # (its per-message setup); outside a message it is unset, like the others
            in_message = bool(ev.ctx.variables.get("message_exim_id"))
            return "none" if name == "status" and in_message else ""
        if name == "ar_header":
            return ar_header(ev.ctx, outcome)
        return str(getattr(outcome, name))

    return compute


def _register_variables() -> None:
    from pyxim.expand.variables import register_variable

    for name in ("status", "status_text", "used_domain", "domain_policy", "ar_header"):
        register_variable(f"dmarc_{name}", "", _variable(name))


_register_variables()


def _authres(ev) -> list[str]:  # type: ignore[no-untyped-def]
    """The dmarc clause of ${authresults}, once dmarc_status has been evaluated for this message."""
    outcome = current_outcome(ev.ctx)
    return [] if outcome is None else [_clause(outcome)]


from pyxim.expand.authres import contributor  # noqa: E402

contributor(40)(_authres)

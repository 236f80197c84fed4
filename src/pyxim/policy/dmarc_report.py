"""What follows a DMARC check that found a policy record: Exim's "DMARC results" log line,
a block in dmarc_history_file, and forensic (failure) reports.

The history file is the one OpenDMARC's filter writes and `opendmarc-import`
reads into its database for aggregate reports: one block of "key value"
lines per message, starting with "job". Numbers are OpenDMARC's (results as
its A-R codes, record letters as their character codes).

Forensic reports (RFC 6591 as RFC 7489 section 7.3 profiles it) go to the
record's ruf= mailto: addresses when an ACL set `control = dmarc_enable_forensic`
and the record's fo= asks for one. A report is a new message from <> put on
pyxim's own spool, as bounces are; a ruf= address outside the policy domain's
organization is used only when that domain agrees (RFC 7489 7.1).
"""

from __future__ import annotations

import os
import pwd
from email.utils import formatdate
from pathlib import Path
from typing import TYPE_CHECKING

from pyxim.errors import ExpansionError, LookupDefer
from pyxim.policy.dmarc_record import ALIGNMENT_CODES, POLICY_CODES, org_domain_finder

if TYPE_CHECKING:  # pragma: no cover
    from pyxim.acl.engine import AclRun
    from pyxim.policy.dmarc import DmarcOutcome


# How many ruf= addresses of one record get a report (only mailto: URIs can be served)
MAX_REPORT_ADDRESSES = 5


def after_check(run: AclRun, outcome: DmarcOutcome) -> None:
    from pyxim.policy.dmarc import FORENSIC_CONTROL, _controls

    log = run.state.log_lines
    log.append(
        (
            False,
            f"DMARC results: spf_domain={outcome.spf_domain} dmarc_domain={outcome.used_domain} "
            f"spf_align={'yes' if outcome.spf_aligned else 'no'} "
            f"dkim_align={'yes' if outcome.dkim_aligned else 'no'} "
            f"enforcement='{outcome.status_text}'",
        )
    )
    if run.ctx.acl_trace is not None:
        return  # -bh: as Exim when host checking, nothing is written and nothing is sent
    write_history(run, outcome)
    if FORENSIC_CONTROL in _controls(run):
        send_forensic_reports(run, outcome)


# -- the history file ----------------------------------------------------------------------------


def history_block(run: AclRun, outcome: DmarcOutcome) -> str:
    """One message's block in OpenDMARC's history format."""
    from pyxim.policy.dmarc import ACTION, ALIGN_FAIL, ALIGN_PASS, ARES

    ctx = run.ctx
    record = outcome.record
    assert record is not None
    variables = ctx.variables
    lines = [
        f"job {variables.get('message_exim_id') or ''}",
        f"reporter {_primary_hostname(run)}",
        f"received {int(ctx.now())}",
        f"ipaddr {variables.get('sender_host_address') or ''}",
        f"from {outcome.from_domain}",
        # the SPF identity: the envelope domain, or the HELO name for a null sender
        # (opendmarc-import drops a block without mfrom)
        f"mfrom {outcome.spf_domain or '-'}",
        f"spf {ARES.get(outcome.spf_result, ARES['unknown'])}",
    ]
    for sig in outcome.signatures:
        status, reason = sig.get("dkim_verify_status", ""), sig.get("dkim_verify_reason", "")
        if status == "invalid":
            code = (
                ARES["permerror"]
                if reason in ("pubkey_unavailable", "pubkey_dns_syntax")
                else ARES["unknown"]
            )
        else:
            code = ARES.get(status, ARES["unknown"])
        lines.append(f"dkim {sig.get('dkim_domain') or '-'} {sig.get('dkim_selector') or '-'} {code}")
    lines.append(f"pdomain {outcome.used_domain}")
    lines.append(f"policy {outcome.policy_code}")
    lines.extend(f"rua {a.uri}{'!' + a.limit if a.limit else ''}" for a in record.rua)
    if not record.rua:
        lines.append("rua -")
    lines += [
        f"pct {record.pct}",
        f"adkim {ALIGNMENT_CODES[record.adkim]}",
        f"aspf {ALIGNMENT_CODES[record.aspf]}",
        f"p {POLICY_CODES[record.p]}",
        f"sp {POLICY_CODES[record.sp]}",
        f"align_dkim {ALIGN_PASS if outcome.dkim_aligned else ALIGN_FAIL}",
        f"align_spf {ALIGN_PASS if outcome.spf_aligned else ALIGN_FAIL}",
        f"action {ACTION[outcome.action]}",
        # pyxim's DMARC does not weigh ARC; OpenDMARC's database wants the fields all the same
        f"arc {ARES['none']}",
        f"arc_policy {ARES['none']} json:[]",
    ]
    return "".join(line.replace("\n", " ") + "\n" for line in lines)


def write_history(run: AclRun, outcome: DmarcOutcome) -> None:
    path = run.config.main.get("dmarc_history_file")
    if not path:
        return
    block = history_block(run, outcome).encode("utf-8", "surrogateescape")
    try:
        fd = os.open(str(path), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    except OSError:
        run.state.log_lines.append((False, f"failure to create DMARC history file: {path}"))
        return
    try:
        # one write with O_APPEND: blocks from concurrent sessions never interleave
        if os.write(fd, block) != len(block):
            run.state.log_lines.append((False, f"failure to write to DMARC history file: {path}"))
    except OSError:
        run.state.log_lines.append((False, f"failure to write to DMARC history file: {path}"))
    finally:
        os.close(fd)


# -- forensic reports -------------------------------------------------------------------------


def failure_kind(outcome: DmarcOutcome) -> str | None:
    """The Auth-Failure value when the record's fo= asks for a report on this message, else None."""
    record = outcome.record
    assert record is not None
    signatures = outcome.signatures
    for option in record.fo:
        if option == "0" and not (outcome.spf_aligned or outcome.dkim_aligned):
            return "dmarc"
        if option == "1" and not (outcome.spf_aligned and outcome.dkim_aligned):
            return "dmarc"
        if option == "d":
            for sig in signatures:
                if sig.get("dkim_verify_status") in ("fail", "invalid"):
                    return "bodyhash" if sig.get("dkim_verify_reason") == "bodyhash_mismatch" else "signature"
        if option == "s" and outcome.spf_result == "fail":
            return "spf"
    return None


def _authorized(run: AclRun, outcome: DmarcOutcome, address: str) -> bool:
    """RFC 7489 7.1: a report address outside the policy domain's organization needs a
    <policy domain>._report._dmarc.<its domain> record that starts with v=DMARC1."""
    from pyxim.policy.dmarc import txt_records
    from pyxim.policy.dmarc_record import is_dmarc_record

    tld_file = run.config.main.get("dmarc_tld_file")
    org_of = org_domain_finder(str(tld_file) if tld_file else None)
    target = address.rpartition("@")[2].lower().rstrip(".")
    if org_of(target) == org_of(outcome.used_domain):
        return True
    try:
        return any(
            is_dmarc_record(t) for t in txt_records(run.ctx, f"{outcome.used_domain}._report._dmarc.{target}")
        )
    except LookupDefer:
        return False


def send_forensic_reports(run: AclRun, outcome: DmarcOutcome) -> None:
    record = outcome.record
    assert record is not None
    kind = failure_kind(outcome)
    if kind is None or not record.ruf:
        return
    # a hostile record must not turn one message into a flood: a few distinct addresses only
    recipients: list[str] = []
    for ruf in record.ruf:
        if ruf.address and ruf.address.lower() not in (r.lower() for r in recipients):
            recipients.append(ruf.address)
    del recipients[MAX_REPORT_ADDRESSES:]
    for recipient in recipients:
        if not _authorized(run, outcome, recipient):
            run.state.log_lines.append(
                (
                    False,
                    f"DMARC forensic report to {recipient} not authorized by "
                    f"{recipient.rpartition('@')[2]}: not sent",
                )
            )
            continue
        try:
            spool_report(run, outcome, recipient, kind)
        except (OSError, ExpansionError):
            run.state.log_lines.append((False, f"failure to send DMARC forensic report to {recipient}"))


def _primary_hostname(run: AclRun) -> str:
    from pyxim.expand.variables import resolve_variable
    from pyxim.policy.dmarc import _Ev

    return resolve_variable(_Ev(run.ctx), "primary_hostname")  # type: ignore[arg-type]


def _report_from(run: AclRun) -> str:
    """dmarc_forensic_sender (expanded), else Exim's From: for its own messages (dsn_from)."""
    from pyxim.expand import expand_string

    main = run.config.main
    for option in ("dmarc_forensic_sender", "dsn_from"):
        value = main.get(option)
        if value:
            text = expand_string(str(value), run.ctx).strip()
            if text:
                return text
    return f"Mail Delivery System <Mailer-Daemon@{_primary_hostname(run)}>"


def _user() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def build_report(
    run: AclRun, outcome: DmarcOutcome, recipient: str, kind: str, new_id: str, boundary: str
) -> tuple[list[str], bytes]:
    """(header lines, body) of an RFC 6591 report about the message being received."""
    from pyxim import EXIM_COMPAT_VERSION
    from pyxim.policy.dmarc import ar_header

    ctx = run.ctx
    now = ctx.now()
    host = _primary_hostname(run)
    ip = str(ctx.variables.get("sender_host_address") or "")
    date = formatdate(now, localtime=True)
    alignment = ",".join(
        name for name, ok in (("dkim", outcome.dkim_aligned), ("spf", outcome.spf_aligned)) if ok
    )
    headers = [
        f"Received: from {_user()} by {host} with local (Exim {EXIM_COMPAT_VERSION})\n\tid {new_id}\n"
        f"\tfor {recipient};\n\t{date}\n",
        f"From: {_report_from(run)}\n",
        f"To: {recipient}\n",
        f"Subject: DMARC Forensic Report for {outcome.used_domain} from IP {ip}\n",
        "Auto-Submitted: auto-generated\n",
        "MIME-Version: 1.0\n",
        f'Content-Type: multipart/report; report-type=feedback-report;\n\tboundary="{boundary}"\n',
        f"Message-Id: <E{new_id}@{host}>\n",
        f"Date: {date}\n",
    ]
    sender = str(ctx.variables.get("sender_address") or "")
    ar_value = ar_header(ctx, outcome).split(":", 1)[1].strip()
    if outcome.spf_result:
        ar_value += f";\n\tspf={outcome.spf_result} smtp.mailfrom={outcome.spf_domain}"
    for sig in outcome.signatures:
        ar_value += f";\n\tdkim={sig.get('dkim_verify_status')} header.d={sig.get('dkim_domain')}"
    # the human-readable part says what Exim's report says
    summary = [
        ("Sender Domain", outcome.used_domain),
        ("Sender IP Address", ip),
        ("Received Date", date),
        ("SPF Alignment", "yes" if outcome.spf_aligned else "no"),
        ("DKIM Alignment", "yes" if outcome.dkim_aligned else "no"),
        ("DMARC Results", outcome.status_text),
    ]
    feedback = [
        "Feedback-Type: auth-failure",
        f"User-Agent: pyxim/{EXIM_COMPAT_VERSION}",
        "Version: 1",
        f"Original-Envelope-Id: {ctx.variables.get('message_exim_id') or ''}",
        f"Original-Mail-From: <{sender}>",
        f"Arrival-Date: {date}",
        f"Source-IP: {ip}",
        f"Reported-Domain: {outcome.from_domain}",
        f"Authentication-Results: {ar_value}",
        f"Auth-Failure: {kind}",
        f"Identity-Alignment: {alignment or 'none'}",
        f"Delivery-Result: {_delivery_result(outcome)}",
    ]
    for sig in outcome.signatures:
        if sig.get("dkim_verify_status") != "pass" and sig.get("dkim_domain"):
            feedback += [
                f"DKIM-Domain: {sig['dkim_domain']}",
                f"DKIM-Selector: {sig.get('dkim_selector', '')}",
            ]
            break
    original = ""
    if ctx.message is not None:
        original = "".join(
            h.raw if h.raw.endswith("\n") else h.raw + "\n" for h in ctx.message.headers if h.type != "*"
        )
    body = (
        "This is a multi-part message in MIME format.\n\n"
        f"--{boundary}\nContent-Type: text/plain; charset=us-ascii\n\n"
        "A message claiming to be from you has failed the published DMARC\npolicy for your domain.\n\n"
        + "".join(f"  {k}: {v}\n" for k, v in summary)
        + f"\n--{boundary}\nContent-Type: message/feedback-report\n\n"
        + "".join(f"{line}\n" for line in feedback)
        + f"\n--{boundary}\nContent-Type: text/rfc822-headers\n\n"
        + original
        + f"\n--{boundary}--\n"
    )
    return headers, body.encode("utf-8", "surrogateescape")


def _delivery_result(outcome: DmarcOutcome) -> str:
    # RFC 6591: what the receiver did, as far as DMARC asked; the ACL may still decide otherwise
    return {"reject": "reject", "quarantine": "spam"}.get(outcome.status, "delivered")


def spool_report(run: AclRun, outcome: DmarcOutcome, recipient: str, kind: str) -> str:
    """Put one report on the spool, from <>, and log its arrival as Exim logs a message it sends itself."""
    from pyxim.log import Logger
    from pyxim.spool.format import Recipient, SpoolHeader, SpoolMessage
    from pyxim.spool.ids import MessageIdGenerator
    from pyxim.spool.store import Spool

    main = run.config.main
    spool = Spool(Path(str(main["spool_directory"])), bool(main.get("split_spool_directory")))
    generator = MessageIdGenerator()
    new_id = generator.new_id()
    # another generator (the session's) may hand out the same id in the same instant
    while any(p.exists() for p in spool.paths(new_id)) or new_id == run.ctx.variables.get("message_exim_id"):
        new_id = generator.new_id()
    boundary = f"{int(run.ctx.now())}-pyxim-dmarc-{int.from_bytes(os.urandom(4), 'big')}"
    header_texts, body = build_report(run, outcome, recipient, kind, new_id, boundary)
    user = _user()
    message = SpoolMessage(
        new_id,
        "",
        [Recipient(recipient)],
        [SpoolHeader.of(t) for t in header_texts],
        run.ctx.now(),
        caller=user,
        uid=os.getuid(),
        gid=os.getgid(),
        options={"received_protocol": "local", "body_linecount": str(body.count(b"\n")), "localerror": None},
    )
    spool.write(message, body)
    size = len(body) + sum(len(t.encode("utf-8", "surrogateescape")) for t in header_texts)
    logger = Logger(str(main.get("log_file_path") or ""), str(main["spool_directory"]))
    logger.main(f"{new_id} <= <> U={user} P=local S={size}")
    return new_id

"""Expansion variables: $name and the header variables $h_… and friends.

Values come from the caller first (ExpansionContext.variables: the SMTP
session, the router, the transport set what they know), then from what can
be computed here (time of day, configuration, the message). A variable Exim
knows but that has no value in this context expands to its empty value —
"" for strings, "0" (or Exim's own default) for numbers — and an unknown
name is an error with Exim's text.
"""

from __future__ import annotations

import getpass
import os
import socket
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from pyxim import EXIM_COMPAT_VERSION
from pyxim.errors import ExpansionError
from pyxim.expand.taint import Tainted, taint

if TYPE_CHECKING:  # pragma: no cover
    from pyxim.expand.evaluate import Evaluation

# Variables whose empty value is not "": Exim prints these for "unset".
_DEFAULTS: dict[str, str] = {
    "acl_narg": "0",
    "authentication_failed": "0",
    "body_linecount": "0",
    "body_zerocount": "0",
    "bounce_return_size_limit": "102400",
    "dkim_key_length": "0",
    "host_lookup_deferred": "0",
    "host_lookup_failed": "0",
    "interface_port": "-1",
    "message_body_size": "0",
    "message_linecount": "0",
    "message_size": "0",
    "mime_part_count": "-1",
    "prdr_requested": "no",
    "proxy_session": "no",
    "rcpt_count": "0",
    "rcpt_defer_count": "0",
    "rcpt_fail_count": "0",
    "received_count": "0",
    "received_port": "-1",
    "recipients_count": "0",
    "runrc": "0",
    "sender_host_port": "0",
    "smtp_count_at_connection_start": "0",
    "tls_in_certificate_verified": "0",
    "tls_in_ocsp": "0",
    "tls_out_ocsp": "0",
    "tls_out_dane": "no",
    "tls_in_bits": "0",
    "tls_out_bits": "0",
    "tls_bits": "0",
    "arc_oldest_pass": "0",
    "bmi_deliver": "1",
}

# Every other variable Exim 4.96 documents (plus the experimental ones and
# their old names from the seed documents), empty when the context has no value.
_NAMES = """
acl_verify_message address_data address_file address_pipe arc_domains arc_state arc_state_reason
authenticated_fail_id authenticated_id authenticated_sender av_failed bmi_alt_location
bmi_base64_tracker_verdict bmi_base64_verdict bounce_recipient callout_address csa_status dcc_header
dcc_result dkim_algo dkim_bodylength dkim_canon_body dkim_canon_headers dkim_copiedheaders dkim_created
dkim_cur_signer dkim_domain dkim_expires dkim_headernames dkim_identity dkim_key_granularity
dkim_key_nosubdomains dkim_key_notes dkim_key_srvtype dkim_key_testing dkim_selector dkim_signers
dkim_verify_reason dkim_verify_status dmarc_ar_header dmarc_domain_policy dmarc_status dmarc_status_text
dmarc_used_domain dnslist_domain dnslist_matched dnslist_text dnslist_value domain domain_data
event_data event_defer_errno event_name headers_added home host host_address host_data local_part
local_part_data local_part_prefix local_part_prefix_v local_part_suffix local_part_suffix_v
local_user_gid local_user_uid localhost_number lookup_dnssec_authenticated malware_name message_age
message_exim_id message_id message_body message_body_end max_received_linelength mime_anomaly_level
mime_anomaly_text mime_boundary mime_charset mime_content_description mime_content_disposition
mime_content_id mime_content_size mime_content_transfer_encoding mime_content_type mime_decoded_filename
mime_filename mime_is_coverletter mime_is_multipart mime_is_rfc822 original_domain original_local_part
originator_gid originator_uid parent_domain parent_local_part pipe_addresses prvscheck_address
prvscheck_keynum prvscheck_result proxy_external_address proxy_external_port proxy_local_address
proxy_local_port proxy_host_address proxy_host_port proxy_target_address proxy_target_port qualify_domain
queue_name queue_size rcpt_defer_count received_for received_ip_address received_protocol received_time
recipient_data recipient_verify_failure recipients regex_match_string regex_cachesize reply_address
return_path return_size_limit router_name self_hostname sender_address_data sender_address_domain
sender_address_local_part sender_data sender_fullhost sender_helo_dnssec sender_helo_name
sender_host_address sender_host_authenticated sender_host_dnssec sender_host_name sender_ident
sender_rate sender_rate_limit sender_rate_period sender_rcvhost sender_verify_failure sending_ip_address
sending_port smtp_active_hostname smtp_command smtp_command_argument smtp_command_history
smtp_notquit_reason spam_action spam_bar spam_report spam_score spam_score_int spf_guess
spf_header_comment spf_received spf_result spf_result_guessed spf_smtp_comment spf_used_domain
srs_recipient thisaddress tls_bits tls_certificate_verified tls_cipher tls_in_cipher
tls_in_cipher_std tls_in_ourcert tls_in_peercert tls_in_peerdn tls_in_resumption tls_in_sni
tls_in_ver tls_out_cipher tls_out_cipher_std tls_out_dane tls_out_ourcert tls_out_peercert
tls_out_peerdn tls_out_resumption tls_out_sni tls_out_tlsa_usage tls_out_ver tls_peerdn tls_sni
transport_name value verify_mode warn_message_delay warn_message_recipients item
tpda_delivery_ip tpda_delivery_port tpda_delivery_fqdn tpda_delivery_local_part tpda_delivery_domain
tpda_delivery_confirmation tpda_defer_errno tpda_defer_errstr interface_address
""".split()


def _main(ev: Evaluation, option: str, default: str = "") -> str:
    config = ev.ctx.config if ev is not None else None
    if config is None:
        return default
    value = config.main.get(option)
    if value is None or value == "":
        return default
    return str(value)


def _primary_hostname(ev: Evaluation) -> str:
    return _main(ev, "primary_hostname") or socket.getfqdn()


def _qualify_domain(ev: Evaluation) -> str:
    return _main(ev, "qualify_domain") or _primary_hostname(ev)


def _qualify_recipient(ev: Evaluation) -> str:
    return _main(ev, "qualify_recipient") or _qualify_domain(ev)


def _local_time(ev: Evaluation) -> time.struct_time:
    return time.localtime(ev.ctx.now())


def _zone(t: time.struct_time) -> str:
    off = t.tm_gmtoff or 0
    sign = "-" if off < 0 else "+"
    off = abs(off)
    return f"{sign}{off // 3600:02d}{off % 3600 // 60:02d}"


def _tod_full(ev: Evaluation) -> str:
    t = _local_time(ev)
    return time.strftime("%a, %d %b %Y %H:%M:%S ", t) + _zone(t)


def _caller(ev: Evaluation) -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry
        return str(os.getuid())


def _config_file(ev: Evaluation) -> str:
    config = ev.ctx.config
    return os.path.abspath(config.filename) if config is not None and config.filename else ""


def _sender_part(ev: Evaluation, domain: bool) -> str:
    from pyxim.expand.taint import carry

    sender = resolve_variable(ev, "sender_address")
    local, at, dom = sender.rpartition("@")
    if not at:
        return "" if domain else sender
    return carry(dom if domain else local, sender)


def _message_headers(ev: Evaluation, raw: bool) -> str:
    msg = ev.ctx.message
    if msg is None:
        return ""
    return taint(msg.headers_text(raw=raw))


def _message_body(ev: Evaluation, end: bool) -> str:
    msg = ev.ctx.message
    if msg is None:
        return ""
    limit = int(_main(ev, "message_body_visible", "500") or 500)
    return taint(msg.body_visible(limit, from_end=end))


_COMPUTED: dict[str, Callable[[Evaluation], str]] = {
    "primary_hostname": _primary_hostname,
    "qualify_domain": _qualify_domain,
    "qualify_recipient": _qualify_recipient,
    "sender_address_domain": lambda ev: _sender_part(ev, domain=True),
    "sender_address_local_part": lambda ev: _sender_part(ev, domain=False),
    "smtp_active_hostname": lambda ev: _main(ev, "smtp_active_hostname") or _primary_hostname(ev),
    "spool_directory": lambda ev: _main(ev, "spool_directory", "/var/spool/pyxim"),
    "exim_version": lambda ev: EXIM_COMPAT_VERSION,
    "version_number": lambda ev: EXIM_COMPAT_VERSION,
    "compile_number": lambda ev: "1",
    "compile_date": lambda ev: "",
    "exim_path": lambda ev: sys.argv[0] if sys.argv and sys.argv[0] else "pyxim",
    "config_file": _config_file,
    "config_dir": lambda ev: os.path.dirname(_config_file(ev)),
    "pid": lambda ev: str(os.getpid()),
    "caller_uid": lambda ev: str(os.getuid()),
    "caller_gid": lambda ev: str(os.getgid()),
    "exim_uid": lambda ev: str(os.geteuid()),
    "exim_gid": lambda ev: str(os.getegid()),
    "tod_bsdinbox": lambda ev: time.strftime("%a %b %e %H:%M:%S %Y", _local_time(ev)),
    "tod_epoch": lambda ev: str(int(ev.ctx.now())),
    "tod_epoch_l": lambda ev: str(int(ev.ctx.now() * 1_000_000)),
    "tod_full": _tod_full,
    "tod_log": lambda ev: time.strftime("%Y-%m-%d %H:%M:%S", _local_time(ev)),
    "tod_logfile": lambda ev: time.strftime("%Y%m%d", _local_time(ev)),
    "tod_zone": lambda ev: _zone(_local_time(ev)),
    "tod_zulu": lambda ev: time.strftime("%Y%m%d%H%M%SZ", time.gmtime(ev.ctx.now())),
    "sender_address": lambda ev: f"{_caller(ev)}@{_qualify_domain(ev)}",
    "caller_name": _caller,
    "message_headers": lambda ev: _message_headers(ev, raw=False),
    "message_headers_raw": lambda ev: _message_headers(ev, raw=True),
    "message_body": lambda ev: _message_body(ev, end=False),
    "message_body_end": lambda ev: _message_body(ev, end=True),
    "message_size": lambda ev: str(ev.ctx.message.size) if ev.ctx.message is not None else "0",
    "body_linecount": lambda ev: str(ev.ctx.message.body_linecount) if ev.ctx.message is not None else "0",
    "body_zerocount": lambda ev: str(ev.ctx.message.body_zerocount) if ev.ctx.message is not None else "0",
    "message_body_size": lambda ev: str(len(ev.ctx.message.body)) if ev.ctx.message is not None else "0",
    "message_linecount": lambda ev: str(ev.ctx.message.linecount) if ev.ctx.message is not None else "0",
}

KNOWN: frozenset[str] = frozenset(_NAMES) | frozenset(_DEFAULTS) | frozenset(_COMPUTED)

# Old names kept as aliases (SPEC-NOTES): the value lives under the current name.
ALIASES = {
    "proxy_host_address": "proxy_local_address",
    "proxy_host_port": "proxy_local_port",
    "proxy_target_address": "proxy_external_address",
    "proxy_target_port": "proxy_external_port",
    "tls_bits": "tls_in_bits",
    "tls_certificate_verified": "tls_in_certificate_verified",
    "tls_cipher": "tls_in_cipher",
    "tls_peerdn": "tls_in_peerdn",
    "tls_sni": "tls_in_sni",
    "tpda_defer_errno": "event_defer_errno",
}


def _acl_variable_problem(name: str) -> str | None:
    """None when `name` is a well-formed ACL variable name, else Exim's hint."""
    if len(name) < 6:
        return " (ACL variable names must be acl_cN, acl_mN, acl_c_xxx or acl_m_xxx)"
    if not (name[5].isdigit() or name[5] == "_"):
        return " (6th character of a user-defined ACL variable must be a digit or underscore)"
    return None


def is_known_variable(name: str) -> bool:
    if name in KNOWN:
        return True
    if name.startswith("regex") and name[5:].isdigit():
        return True
    if name.startswith(("acl_c", "acl_m")):
        return _acl_variable_problem(name) is None
    if name.startswith("acl_arg") and name[7:].isdigit() and len(name) == 8:
        return True
    if name.startswith("auth") and name[4:].isdigit() and len(name) == 5:
        return True
    return False


def unknown_variable(name: str) -> ExpansionError:
    message = f'unknown variable name "{name}"'
    if name.startswith(("acl_c", "acl_m")):
        message += _acl_variable_problem(name) or ""
    return ExpansionError(message)


def resolve_variable(ev: Evaluation, name: str) -> str:
    if ev is not None:
        values = ev.ctx.variables
        if name in values:
            return values[name]
        if name.startswith(("acl_c", "acl_m")) and _acl_variable_problem(name) is None:
            return ev.ctx.acl_vars.get(name, "")
        current = ALIASES.get(name)
        if current is not None and current in values:
            return values[current]
        func = _COMPUTED.get(name)
        if func is not None:
            return func(ev)
    if is_known_variable(name):
        return _DEFAULTS.get(name, "")
    raise unknown_variable(name)


def variable_is_set(ev: Evaluation, name: str) -> bool:
    return resolve_variable(ev, name) != ""


_ADDRESS_HEADERS = frozenset({"bcc", "cc", "from", "reply-to", "sender", "to"})


def header_variable(ev: Evaluation, prefix: str, header_name: str) -> str:
    """$h_name:, $rh_…, $bh_…, $lh_… (and the long $header_ forms)."""
    msg = ev.ctx.message
    if msg is None:
        return ""
    kind = prefix[0] if prefix[0] in "rbl" else "h"
    values = msg.header_values(header_name)
    if not values:
        return ""
    if kind == "r":
        return Tainted("".join(values))
    if kind == "l":
        from pyxim.lists import quote_list_item

        # one list item per header line, leading white space kept
        return Tainted(":".join(quote_list_item(v.rstrip("\n")) for v in values))
    # Headers that carry address lists are joined with a comma (Exim's "BCFRST" types).
    sep = ",\n" if header_name.lower() in _ADDRESS_HEADERS else "\n"
    joined = sep.join(v.strip() for v in values)
    if kind in ("h", "b"):  # $bh_ decodes too, only without charset translation
        from pyxim.expand.rfc2047 import decode_header_words

        charset = _main(ev, "headers_charset", "UTF-8")
        joined = decode_header_words(joined, charset)
    return Tainted(joined)

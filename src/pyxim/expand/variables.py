"""Expansion variables: $name and the header variables $h_… and friends.

Values come from the caller first (ExpansionContext.variables: the SMTP
session, the router, the transport set what they know), then from what can
be computed here (time of day, configuration, the caller, the message). A
variable Exim knows but that has no value in this context expands to its
"unset" value — "" for strings, "0" for numbers, "no" for yes/no values, a
few others exactly as Exim prints them — and an unknown name is an error
with Exim's text.

The table is Exim 4.96's, plus the variables of the experimental features
pyxim implements (ARC, DMARC, Brightmail, DCC) and their older names
(SPEC-NOTES). Later modules add theirs with register_variable().
"""

from __future__ import annotations

import functools
import os
import pwd
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pyxim import EXIM_COMPAT_VERSION
from pyxim.errors import ExpansionError
from pyxim.expand.taint import Tainted, carry

if TYPE_CHECKING:  # pragma: no cover
    from pyxim.expand.context import ExpansionContext
    from pyxim.expand.evaluate import Evaluation

# Strings: unset is "".
_STRINGS = """
acl_arg1 acl_arg2 acl_arg3 acl_arg4 acl_arg5 acl_arg6 acl_arg7 acl_arg8 acl_arg9 acl_verify_message
address_data address_file address_pipe authenticated_fail_id authenticated_id authenticated_sender
bounce_recipient callout_address compile_date compile_number config_dir config_file csa_status
dkim_algo dkim_canon_body dkim_canon_headers dkim_copiedheaders dkim_cur_signer dkim_domain
dkim_headernames dkim_identity dkim_key_notes dkim_selector dkim_signers dkim_verify_reason
dkim_verify_status dnslist_domain dnslist_matched dnslist_text dnslist_value domain domain_data
event_data event_name exim_path exim_version headers_added home host host_address host_data initial_cwd
interface_address item ldap_dn local_part local_part_data local_part_prefix local_part_prefix_v
local_part_suffix local_part_suffix_v local_scan_data lookup_dnssec_authenticated mailstore_basename
malware_name message_body message_body_end message_exim_id message_headers message_headers_raw
message_id mime_anomaly_text mime_boundary mime_charset mime_content_description
mime_content_disposition mime_content_id mime_content_transfer_encoding mime_content_type
mime_decoded_filename mime_filename original_domain original_local_part parent_domain
parent_local_part primary_hostname proxy_external_address proxy_local_address prvscheck_address
prvscheck_keynum prvscheck_result qualify_domain qualify_recipient queue_name queue_size received_for
received_ip_address received_protocol recipient_data recipient_verify_failure recipients
regex_match_string reply_address return_path router_name self_hostname sender_address
sender_address_data sender_address_domain sender_address_local_part sender_data sender_fullhost
sender_helo_name sender_host_address sender_host_authenticated sender_host_name sender_ident
sender_rate sender_rate_limit sender_rate_period sender_rcvhost sender_verify_failure
sending_ip_address smtp_active_hostname smtp_command smtp_command_argument smtp_command_history
smtp_notquit_reason spam_action spam_bar spam_report spam_score spam_score_int spf_guess
spf_header_comment spf_received spf_result spf_smtp_comment spool_directory srs_recipient thisaddress
tls_cipher tls_in_cipher tls_in_cipher_std tls_in_ourcert tls_in_peercert tls_in_peerdn tls_in_sni
tls_in_ver tls_out_cipher tls_out_cipher_std tls_out_ourcert tls_out_peercert tls_out_peerdn
tls_out_sni tls_out_ver tls_peerdn tls_sni transport_name value verify_mode version_number
warn_message_delay warn_message_recipient warn_message_recipients warnmsg_delay warnmsg_recipients
arc_domains arc_state arc_state_reason bmi_alt_location bmi_base64_tracker_verdict bmi_base64_verdict
dcc_header dcc_result dmarc_ar_header dmarc_domain_policy dmarc_status dmarc_status_text
dmarc_used_domain proxy_host_address proxy_target_address tpda_delivery_ip tpda_delivery_fqdn
tpda_delivery_local_part tpda_delivery_domain tpda_delivery_confirmation tpda_defer_errstr
"""

# Numbers: unset is "0".
_NUMBERS = """
acl_narg arc_oldest_pass authentication_failed av_failed body_linecount body_zerocount
bounce_return_size_limit caller_gid caller_uid dkim_created dkim_key_length dkim_key_nosubdomains
dkim_key_testing event_defer_errno exim_gid exim_uid host_lookup_deferred host_lookup_failed host_port
inode load_average localhost_number log_inodes log_space max_received_linelength message_age
message_body_size message_linecount message_size mime_anomaly_level mime_content_size
mime_is_coverletter mime_is_multipart mime_is_rfc822 originator_gid originator_uid pid
proxy_external_port proxy_local_port rcpt_count rcpt_defer_count rcpt_fail_count received_count
received_time recipients_count return_size_limit runrc sender_host_port smtp_count_at_connection_start
spool_inodes spool_space tls_bits tls_certificate_verified tls_in_bits tls_in_certificate_verified
tls_in_ocsp tls_in_resumption tls_out_bits tls_out_certificate_verified tls_out_ocsp
tls_out_resumption tls_out_tlsa_usage proxy_host_port proxy_target_port tpda_delivery_port
tpda_defer_errno
"""

# Yes/no values: unset is "no".
_BOOLEANS = """
message_smtputf8 prdr_requested proxy_session sender_helo_dnssec sender_host_dnssec spf_result_guessed
tls_out_dane
"""

# The rest print something of their own when unset.
_SPECIAL = {
    "interface_port": "-1",
    "received_port": "-1",
    "sending_port": "-1",
    "mime_part_count": "-1",
    "local_user_gid": "4294967295",  # (uid_t)-1, as Exim prints it
    "local_user_uid": "4294967295",
    "dkim_bodylength": "9999999999999",  # DKIM values with no signature being looked at
    "dkim_expires": "9999999999999",
    "dkim_key_granularity": "*",
    "dkim_key_srvtype": "*",
    "bmi_deliver": "1",
}

_UNSET: dict[str, str] = {}
for _kind, _value in ((_STRINGS, ""), (_NUMBERS, "0"), (_BOOLEANS, "no")):
    _UNSET.update(dict.fromkeys(_kind.split(), _value))
_UNSET.update(_SPECIAL)

# Names that are one value under several names (in Exim they point at the same
# variable; the tpda_ and older proxy_ names are SPEC-NOTES aliases). A value set
# under any name of a group is seen under all of them.
_SAME: list[tuple[str, ...]] = [
    ("message_exim_id", "message_id"),
    ("interface_address", "received_ip_address"),
    ("interface_port", "received_port"),
    ("bounce_return_size_limit", "return_size_limit"),
    ("warn_message_delay", "warnmsg_delay"),
    ("warn_message_recipients", "warn_message_recipient", "warnmsg_recipients"),
    ("exim_version", "version_number"),
    ("tls_in_bits", "tls_bits"),
    ("tls_in_certificate_verified", "tls_certificate_verified"),
    ("tls_in_cipher", "tls_cipher"),
    ("tls_in_peerdn", "tls_peerdn"),
    ("tls_in_sni", "tls_sni"),
    ("proxy_local_address", "proxy_host_address"),
    ("proxy_local_port", "proxy_host_port"),
    ("proxy_external_address", "proxy_target_address"),
    ("proxy_external_port", "proxy_target_port"),
    ("host_address", "tpda_delivery_ip"),
    ("host_port", "tpda_delivery_port"),
    ("host", "tpda_delivery_fqdn"),
    ("local_part", "tpda_delivery_local_part"),
    ("domain", "tpda_delivery_domain"),
    ("event_defer_errno", "tpda_defer_errno"),
]
# The old TPDA event text lives in $event_data now.
_SAME_AS_EVENT_DATA = ("tpda_delivery_confirmation", "tpda_defer_errstr")
ALIASES: dict[str, tuple[str, ...]] = {}
for _group in _SAME:
    for _name in _group:
        ALIASES[_name] = tuple(n for n in _group if n != _name)
for _name in _SAME_AS_EVENT_DATA:
    ALIASES[_name] = ("event_data",)

AUTH_VARS = 4  # $auth1 … $auth4
REGEX_VARS = 9  # $regex1 … $regex9

# The working directory pyxim started in ($initial_cwd): taken when this module loads.
try:
    _INITIAL_CWD = os.getcwd()
except OSError:  # pragma: no cover - a removed directory
    _INITIAL_CWD = ""


# -- the calling process ------------------------------------------------------------


def caller_login() -> str:
    """The login name of the real uid (Exim's originator_login)."""
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


def _config_main(ctx: ExpansionContext | None, option: str, default: Any = "") -> Any:
    config = ctx.config if ctx is not None else None
    if config is None:
        return default
    value = config.main.get(option)
    if value is None or value == "":
        return default
    return value


def _exim_ids(ctx: ExpansionContext | None) -> tuple[int, int]:
    """exim_uid and exim_gid: from exim_user/exim_group, else pyxim's own effective ids."""
    user = str(_config_main(ctx, "exim_user", ""))
    group = str(_config_main(ctx, "exim_group", ""))
    uid, gid = os.geteuid(), os.getegid()
    if user:
        try:
            entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
            uid, gid = entry.pw_uid, entry.pw_gid
        except (KeyError, ValueError):
            pass
    if group:
        import grp

        try:
            gid = int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
        except (KeyError, ValueError):
            pass
    return uid, gid


def caller_is_trusted(ctx: ExpansionContext | None) -> bool:
    """Exim's trusted caller: root, the Exim user, or one named by trusted_users/trusted_groups."""
    uid = os.getuid()
    if uid == 0 or uid == _exim_ids(ctx)[0]:
        return True
    # The configuration keeps trusted_users/trusted_groups as uid/gid tuples
    # (Exim resolves the names when it reads the file).
    users = _config_main(ctx, "trusted_users", None) or ()
    if uid in _id_tuple(users):
        return True
    groups = _config_main(ctx, "trusted_groups", None) or ()
    mine = {os.getgid(), *os.getgroups()}
    return any(gid in mine for gid in _id_tuple(groups))


def _id_tuple(value: object) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,)
    if isinstance(value, (tuple, list)):
        return tuple(v for v in value if isinstance(v, int))
    return ()


def originator_name(ctx: ExpansionContext | None) -> str:
    """The caller's full name for a generated From: — the gecos field, as Exim makes it.

    An "&" stands for the login name with its first letter in upper case;
    gecos_pattern and gecos_name, when both are set, rewrite it.
    """
    login = caller_login()
    try:
        name = pwd.getpwuid(os.getuid()).pw_gecos
    except KeyError:
        return ""
    amp = name.find("&")
    if amp >= 0:
        name = name[:amp] + login[:1].upper() + login[1:] + name[amp + 1 :]
    pattern = str(_config_main(ctx, "gecos_pattern", ""))
    template = str(_config_main(ctx, "gecos_name", ""))
    if pattern and template and ctx is not None:
        from pyxim.expand.evaluate import Evaluation
        from pyxim.expand.regex import compile_pcre

        m = compile_pcre(pattern).search(name)
        if m:
            ev = Evaluation(ctx)
            ev.set_captures([m.group(0), *[g or "" for g in m.groups()]])
            try:
                name = ev.expand(template)
            except ExpansionError:
                pass
    return name


class _Bare:
    """An Evaluation stand-in for callers outside expansion (only .ctx is used here)."""

    __slots__ = ("ctx",)

    def __init__(self, ctx: ExpansionContext) -> None:
        self.ctx = ctx


def bare_evaluation(ctx: ExpansionContext) -> Evaluation:
    return _Bare(ctx)  # type: ignore[return-value]


# -- computed values -------------------------------------------------------------------


def _main(ev: Evaluation, option: str, default: str = "") -> str:
    return str(_config_main(ev.ctx if ev is not None else None, option, default))


def _primary_hostname(ev: Evaluation) -> str:
    return _main(ev, "primary_hostname") or system_hostname()


@functools.cache
def system_hostname() -> str:
    """Exim's default primary_hostname: the node name, fully qualified through the
    resolver when it has no dot and the resolver knows better."""
    name = socket.gethostname()
    if "." not in name:
        try:
            canonical = socket.getaddrinfo(name, None, flags=socket.AI_CANONNAME)[0][3]
        except (OSError, IndexError, UnicodeError):
            canonical = ""
        if "." in canonical:
            name = canonical
    return name


def _qualify_domain(ev: Evaluation) -> str:
    return _main(ev, "qualify_domain") or _primary_hostname(ev)


def _qualify_recipient(ev: Evaluation) -> str:
    return _main(ev, "qualify_recipient") or _qualify_domain(ev)


def _is_local(ev: Evaluation) -> bool:
    """A context for the calling process itself (-be, -bem, local submission), not an SMTP peer.

    The SMTP session always records $sender_host_address (empty for -bs), so
    its absence means nobody from outside is involved; then, as Exim does for
    local callers, $sender_address, $authenticated_id … come from the caller.
    """
    return "sender_host_address" not in ev.ctx.variables


def _now(ev: Evaluation) -> tuple[int, int]:
    """The clock as (seconds, microseconds)."""
    now = ev.ctx.now()
    sec = int(now)
    usec = round((now - sec) * 1_000_000)
    if usec >= 1_000_000:
        sec, usec = sec + 1, usec - 1_000_000
    return sec, usec


def _local_time(ev: Evaluation) -> tuple[time.struct_time, int]:
    """(broken-down time, offset from UTC in minutes) in the configured timezone, else the process's."""
    sec = _now(ev)[0]
    zone = _main(ev, "timezone")
    if zone.lower() == "utc":
        return time.gmtime(sec), 0  # Exim's timestamps_utc
    if zone:
        from datetime import datetime
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            moment = datetime.fromtimestamp(sec, ZoneInfo(zone))
        except (ZoneInfoNotFoundError, ValueError):
            pass
        else:
            offset = moment.utcoffset()
            return moment.timetuple(), int(offset.total_seconds()) // 60 if offset is not None else 0
    local = time.localtime(sec)
    return local, (local.tm_gmtoff or 0) // 60


def _zone(minutes: int) -> str:
    # Exim prints "%+03d%02d" of the whole hours (truncated toward zero) and the minutes.
    hours = int(minutes / 60)
    return f"{hours:+03d}{abs(minutes - hours * 60):02d}"


def tod_full(ev: Evaluation) -> str:
    t, off = _local_time(ev)
    return time.strftime("%a, %d %b %Y %H:%M:%S ", t) + _zone(off)


def _tod_epoch_l(ev: Evaluation) -> str:
    sec, usec = _now(ev)
    return f"{sec}{usec:06d}"


def _tod_zulu(ev: Evaluation) -> str:
    return time.strftime("%Y%m%d%H%M%SZ", time.gmtime(_now(ev)[0]))


def _config_file(ev: Evaluation) -> str:
    config = ev.ctx.config
    return os.path.abspath(config.filename) if config is not None and config.filename else ""


def _sender_part(ev: Evaluation, domain: bool) -> str:
    sender = resolve_variable(ev, "sender_address")
    at = sender.rfind("@")
    if at < 0:
        return "" if domain else sender
    return carry(sender[at + 1 :] if domain else sender[:at], sender)


def _caller_sender(ev: Evaluation) -> str:
    return f"{caller_login()}@{_qualify_domain(ev)}" if _is_local(ev) else ""


def _message(ev: Evaluation, compute: Callable[[Any], object], unset: str = "0") -> str:
    msg = ev.ctx.message
    return unset if msg is None else str(compute(msg))


def _message_headers(ev: Evaluation, raw: bool) -> str:
    msg = ev.ctx.message
    if msg is None:
        return ""
    return Tainted(_join_headers(ev, msg.visible_headers, None, "r" if raw else "h", whole=True))


def _message_body(ev: Evaluation, end: bool) -> str:
    msg = ev.ctx.message
    if msg is None:
        return ""
    limit = int(_main(ev, "message_body_visible", "500") or 500)
    keep = bool(_config_main(ev.ctx, "message_body_newlines", False))
    return Tainted(msg.body_visible(limit, from_end=end, keep_newlines=keep))


def _reply_address(ev: Evaluation) -> str:
    """Reply-To:, else From:, raw, on one line, white space trimmed at both ends."""
    msg = ev.ctx.message
    if msg is None:
        return ""
    for name in ("reply-to", "from"):
        found = msg.find_headers(name)
        if found:
            text = "".join(h.value for h in found).lstrip(" \t\n\r\f\v")
            if text or name == "from":
                return Tainted(text.replace("\n", " ").rstrip(" \t\n\r\f\v"))
    return ""


def _statvfs(ev: Evaluation, spool: bool) -> tuple[int, int]:
    """(kilobytes available, inodes available) for the spool or the log directory; -1 when unknown."""
    path = _main(ev, "spool_directory", "/var/spool/pyxim")
    if not spool:
        logs = [p.strip() for p in _main(ev, "log_file_path").split(":") if p.strip()]
        files = [p for p in logs if p != "syslog"]
        if logs and not files:
            return -1, -1  # logging to syslog only
        if files:
            path = os.path.dirname(files[0].replace("%s", "main").replace("%D", "").replace("%M", "")) or "/"
        else:
            path = os.path.join(path, "log")
    try:
        st = os.statvfs(path)
    except OSError:
        return -1, -1
    return int(st.f_bavail * st.f_frsize / 1024), st.f_favail


def _load_average(ev: Evaluation) -> str:
    try:
        return str(int(os.getloadavg()[0] * 1000))
    except OSError:
        return "-1"


def _exim_path(ev: Evaluation) -> str:
    import shutil
    import sys

    configured = _main(ev, "exim_path")
    return configured or shutil.which("pyxim") or os.path.abspath(sys.argv[0] if sys.argv else "pyxim")


def _sender_host_name(ev: Evaluation) -> str:
    """Looked up when first wanted, as Exim does: the client's name from a reverse lookup, confirmed forward.

    Sets $host_lookup_failed or $host_lookup_deferred when there is no name.
    The answer is shared with host list matching (same cache entry).
    """
    import ipaddress

    from pyxim.errors import LookupDefer

    ctx = ev.ctx
    variables = ctx.variables
    address = variables.get("sender_host_address") or ""
    if not address or variables.get("host_lookup_failed") == "1":
        return ""
    key = ("_state", "host_names", address)
    names = ctx.lookup_cache.get(key)
    if names is None:

        def canonical(ip: str) -> str:
            try:
                return str(ipaddress.ip_address(ip.split("%")[0]))
            except ValueError:
                return ip.lower()

        names = []
        resolver = ctx.get_resolver()
        try:
            for name in resolver.host_names_for_ip(address):
                if canonical(address) in {canonical(a) for a in resolver.addresses_for_name(name)}:
                    names.append(name.rstrip("."))
        except LookupDefer:
            variables["host_lookup_deferred"] = "1"
            return ""
        ctx.lookup_cache[key] = names
    if not names:
        variables["host_lookup_failed"] = "1"
        return ""
    variables["sender_host_name"] = Tainted(names[0])
    return variables["sender_host_name"]


def _received_count(msg: Any) -> int:
    return sum(1 for h in msg.visible_headers if h.type == "P")


_COMPUTED: dict[str, Callable[[Evaluation], str]] = {
    "primary_hostname": _primary_hostname,
    "qualify_domain": _qualify_domain,
    "qualify_recipient": _qualify_recipient,
    "smtp_active_hostname": lambda ev: _main(ev, "smtp_active_hostname") or _primary_hostname(ev),
    "spool_directory": lambda ev: _main(ev, "spool_directory", "/var/spool/pyxim"),
    "spf_guess": lambda ev: _main(ev, "spf_guess", "v=spf1 a/24 mx/24 ptr ?all"),
    "bounce_return_size_limit": lambda ev: str(int(_config_main(ev.ctx, "bounce_return_size_limit", 102400))),
    "return_size_limit": lambda ev: str(int(_config_main(ev.ctx, "bounce_return_size_limit", 102400))),
    "localhost_number": lambda ev: str(_config_main(ev.ctx, "localhost_number", 0)),
    "exim_version": lambda ev: EXIM_COMPAT_VERSION,
    "version_number": lambda ev: EXIM_COMPAT_VERSION,
    "compile_number": lambda ev: "1",
    "exim_path": _exim_path,
    "config_file": _config_file,
    "config_dir": lambda ev: os.path.dirname(_config_file(ev)),
    "initial_cwd": lambda ev: _INITIAL_CWD,
    "pid": lambda ev: str(os.getpid()),
    "caller_uid": lambda ev: str(os.getuid()),
    "caller_gid": lambda ev: str(os.getgid()),
    "originator_uid": lambda ev: str(os.getuid()),
    "originator_gid": lambda ev: str(os.getgid()),
    "exim_uid": lambda ev: str(_exim_ids(ev.ctx)[0]),
    "exim_gid": lambda ev: str(_exim_ids(ev.ctx)[1]),
    "load_average": _load_average,
    "spool_space": lambda ev: str(_statvfs(ev, spool=True)[0]),
    "spool_inodes": lambda ev: str(_statvfs(ev, spool=True)[1]),
    "log_space": lambda ev: str(_statvfs(ev, spool=False)[0]),
    "log_inodes": lambda ev: str(_statvfs(ev, spool=False)[1]),
    "tod_bsdinbox": lambda ev: time.strftime("%a %b %d %H:%M:%S %Y", _local_time(ev)[0]),
    "tod_epoch": lambda ev: str(_now(ev)[0]),
    "tod_epoch_l": _tod_epoch_l,
    "tod_full": tod_full,
    "tod_log": lambda ev: time.strftime("%Y-%m-%d %H:%M:%S", _local_time(ev)[0]),
    "tod_logfile": lambda ev: time.strftime("%Y%m%d", _local_time(ev)[0]),
    "tod_zone": lambda ev: _zone(_local_time(ev)[1]),
    "tod_zulu": _tod_zulu,
    # What a local caller is: Exim sets these for messages (and tests) from the calling process.
    "sender_address": _caller_sender,
    "authenticated_sender": _caller_sender,
    "authenticated_id": lambda ev: caller_login() if _is_local(ev) else "",
    "sender_ident": lambda ev: caller_login() if _is_local(ev) else "",
    "sender_address_domain": lambda ev: _sender_part(ev, domain=True),
    "sender_address_local_part": lambda ev: _sender_part(ev, domain=False),
    "message_headers": lambda ev: _message_headers(ev, raw=False),
    "message_headers_raw": lambda ev: _message_headers(ev, raw=True),
    "message_body": lambda ev: _message_body(ev, end=False),
    "message_body_end": lambda ev: _message_body(ev, end=True),
    "reply_address": _reply_address,
    "sender_host_name": _sender_host_name,
    "message_size": lambda ev: _message(ev, lambda m: m.size),
    "message_body_size": lambda ev: _message(ev, lambda m: m.body_size),
    "body_linecount": lambda ev: _message(ev, lambda m: m.body_linecount),
    "body_zerocount": lambda ev: _message(ev, lambda m: m.body_zerocount),
    "message_linecount": lambda ev: _message(ev, lambda m: m.linecount),
    "received_count": lambda ev: _message(ev, _received_count),
}


def register_variable(name: str, unset: str = "", compute: Callable[[Evaluation], str] | None = None) -> None:
    """Make `name` a known variable (for modules that bring their own: policy checks, drivers…).

    `unset` is what it expands to when nobody has set it; `compute`, when
    given, works the value out instead (it receives the Evaluation).
    """
    _UNSET[name] = unset
    if compute is not None:
        _COMPUTED[name] = compute


# -- names ------------------------------------------------------------------------------


def _is_acl_variable(name: str) -> bool:
    """$acl_c…/$acl_m…: any name with those five letters whose sixth character is not a letter."""
    return name[:5] in ("acl_c", "acl_m") and not (name[5:6].isascii() and name[5:6].isalpha())


def _numbered(name: str) -> str | None:
    """$auth1…$auth4 and $regex1…$regex9 under their plain names ("auth01" is $auth1, as in Exim)."""
    for stem, top in (("auth", AUTH_VARS), ("regex", REGEX_VARS)):
        digits = name[len(stem) :]
        if name.startswith(stem) and digits.isascii() and digits.isdigit() and 0 < int(digits) <= top:
            return f"{stem}{int(digits)}"
    return None


def is_known_variable(name: str) -> bool:
    return (
        name in _UNSET
        or name in _COMPUTED
        or _is_acl_variable(name)
        or name.startswith("r_")
        or _numbered(name) is not None
    )


def unknown_variable(name: str, strict: bool = False) -> ExpansionError:
    """Exim's error for an unknown name; names starting acl_ get its hint in parentheses."""
    message = f'unknown variable name "{name}"'
    if name.startswith("acl_"):
        if name[4:5] in ("c", "m"):
            if name[5:6].isascii() and name[5:6].isalpha():
                hint = "6th character of a user-defined ACL variable must be a digit or underscore"
            else:
                hint = "strict_acl_vars is set"
        else:
            hint = "user-defined ACL variables must start acl_c or acl_m"
        message += f" ({hint})"
    return ExpansionError(message)


def _strict(ev: Evaluation) -> bool:
    return bool(_config_main(ev.ctx, "strict_acl_vars", False))


def resolve_variable(ev: Evaluation, name: str) -> str:
    """The value of $name (also ${name}); ExpansionError when Exim would not know the name.

    `ev` may be None: then only the name is checked (the parser does that
    for names in branches it skips).
    """
    if ev is None:
        if is_known_variable(name):
            return ""
        raise unknown_variable(name)
    values = ev.ctx.variables
    if _is_acl_variable(name) or name.startswith("r_"):
        # ACL variables live with the ACL engine; router variables ($r_…) with the router
        value = ev.ctx.acl_vars.get(name) if _is_acl_variable(name) else None
        if value is None:
            value = values.get(name)
        if value is not None:
            return value
        if _strict(ev):
            raise unknown_variable(name, strict=True)
        return ""
    numbered = _numbered(name)
    if numbered is not None:
        return values.get(numbered) or ""
    value = values.get(name)
    if value is None:
        for other in ALIASES.get(name, ()):
            value = values.get(other)
            if value is not None:
                break
    if value is not None:
        return value
    func = _COMPUTED.get(name)
    if func is not None:
        return func(ev)
    if name in _UNSET:
        return _UNSET[name]
    raise unknown_variable(name)


def variable_is_set(ev: Evaluation, name: str) -> bool:
    """def:name — Exim's test is "not empty" ("0" counts as set)."""
    return resolve_variable(ev, name) != ""


# -- header variables ---------------------------------------------------------------------

# Exim caps what $h_ and $message_headers return (its header_insert_maxlen).
HEADER_INSERT_MAXLEN = 64 * 1024
_SPACE = b" \t\n\r\f\v"
# Lines of these types hold address lists: several of them are joined with a comma.
_ADDRESS_TYPES = frozenset("BCFRST")


def _join_headers(
    ev: Evaluation, found: list[Any], charset: str | None, kind: str, whole: bool = False
) -> str:
    """Exim's find_header(): join the lines of one header name (or of all, `whole`) for $h_ and friends.

    kind "h": each value trimmed of white space, empty ones skipped, joined by
    "\\n" (",\\n" for address headers), then RFC 2047 decoded (to `charset`;
    None decodes without translating). "r": raw values run together. "l": a
    list, one item per line (trailing newlines dropped, colons doubled).
    """
    out = bytearray()
    comma = False
    for h in found:
        data = (h.raw if whole else h.value).encode("utf-8", "surrogateescape")
        if kind == "l":
            data = data.rstrip(b"\n")
        elif kind != "r":
            data = data.strip(_SPACE)
            if not whole and h.type in _ADDRESS_TYPES:
                comma = True
        room = HEADER_INSERT_MAXLEN - len(out)
        data = data[: max(room, 0)]
        if kind == "l":
            if out:
                out += b":"
            out += data.replace(b":", b"::")
        elif kind == "r":
            out += data
        elif data:
            if out:
                out += b",\n" if comma else b"\n"
            out += data
        if len(out) >= HEADER_INSERT_MAXLEN:
            break
    text = out.decode("utf-8", "surrogateescape")
    if kind in ("r", "l"):
        return text
    from pyxim.expand.rfc2047 import rfc2047_decode

    lencheck = bool(_config_main(ev.ctx, "check_rfc2047_length", True))
    decoded, error = rfc2047_decode(text, charset, lencheck=lencheck)
    # Exim keeps the header as it stands when a charset cannot be converted
    return text if error is not None else decoded


def header_variable(ev: Evaluation, prefix: str, header_name: str) -> str:
    """$h_name:, $rh_…, $bh_…, $lh_… and the long $header_ forms; "" when there is no such header.

    Header names are matched without regard to case; values are tainted.
    """
    msg = ev.ctx.message
    if msg is None:
        return ""
    found = msg.find_headers(header_name)
    if not found:
        return ""
    kind = prefix[0] if prefix[0] in "rbl" else "h"
    if kind == "b":
        return Tainted(_join_headers(ev, found, None, "h"))
    if kind == "h":
        return Tainted(_join_headers(ev, found, _main(ev, "headers_charset", "UTF-8"), "h"))
    return Tainted(_join_headers(ev, found, None, kind))

"""Variables and header variables, with a clock and a configuration the tests control.

What does not depend on the build, the time or the process is also compared
with the real Exim (tests/interop/expansions/variables.txt, test_bem.py);
here are the values that change from run to run (times, pid, paths), the
pyxim-only names, and the rules checked one by one.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from pyxim import EXIM_COMPAT_VERSION
from pyxim.config import load_config
from pyxim.config.model import Config
from pyxim.errors import ExpansionError
from pyxim.expand import ExpansionContext, expand_string, is_tainted
from pyxim.expand import variables as V
from pyxim.expand.message import HeaderLine, Message
from pyxim.expand.taint import Tainted

WHEN = 1_795_536_185.062798  # Tue 2026-11-24 16:03:05.062798 UTC
EARLY_DAY = 1_796_466_185.5  # Sat 2026-12-05 10:23:05.5 UTC


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def conf(tmp_path: Path, text: str = "") -> Config:
    path = tmp_path / "test.conf"
    path.write_text("primary_hostname = mail.example.org\nqualify_domain = example.org\n" + text)
    return load_config(str(path))


def x(text: str, **kw: object) -> str:
    kw.setdefault("now", lambda: WHEN)
    return expand_string(text, ExpansionContext(**kw))  # type: ignore[arg-type]


class Ev:
    """The smallest stand-in for an Evaluation: variables.py only uses .ctx."""

    def __init__(self, ctx: ExpansionContext) -> None:
        self.ctx = ctx


# -- time of day ---------------------------------------------------------------------


def test_time_of_day_variables() -> None:
    assert x("$tod_full") == "Tue, 24 Nov 2026 16:03:05 +0000"
    assert x("$tod_log") == "2026-11-24 16:03:05"
    assert x("$tod_logfile") == "20261124"
    assert x("$tod_zone") == "+0000"
    assert x("$tod_zulu") == "20261124160305Z"
    assert x("$tod_bsdinbox") == "Tue Nov 24 16:03:05 2026"
    assert x("$tod_epoch") == "1795536185"
    assert x("$tod_epoch_l") == "1795536185062798"


def test_days_below_ten_have_a_leading_zero() -> None:
    assert x("$tod_full", now=lambda: EARLY_DAY) == "Sat, 05 Dec 2026 10:23:05 +0000"
    assert x("$tod_bsdinbox", now=lambda: EARLY_DAY) == "Sat Dec 05 10:23:05 2026"
    assert x("$tod_epoch_l", now=lambda: EARLY_DAY) == "1796466185500000"


@pytest.mark.parametrize(
    ("zone", "full", "offset"),
    [
        ("Asia/Kolkata", "Tue, 24 Nov 2026 21:33:05 +0530", "+0530"),
        ("America/St_Johns", "Tue, 24 Nov 2026 12:33:05 -0330", "-0330"),
        ("Pacific/Kiritimati", "Wed, 25 Nov 2026 06:03:05 +1400", "+1400"),
    ],
)
def test_local_time_zone(monkeypatch: pytest.MonkeyPatch, zone: str, full: str, offset: str) -> None:
    monkeypatch.setenv("TZ", zone)
    time.tzset()
    assert x("$tod_full") == full
    assert x("$tod_zone") == offset
    assert x("$tod_zulu") == "20261124160305Z"  # always UTC


def test_timezone_option(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    utc = conf(tmp_path, "timezone = UTC\n")
    assert x("$tod_full $tod_log", config=utc) == "Tue, 24 Nov 2026 16:03:05 +0000 2026-11-24 16:03:05"
    newfoundland = conf(tmp_path, "timezone = America/St_Johns\n")
    assert (
        x("$tod_full|$tod_bsdinbox", config=newfoundland)
        == "Tue, 24 Nov 2026 12:33:05 -0330|Tue Nov 24 12:33:05 2026"
    )


# -- values from the configuration and the process ------------------------------------------


def test_configuration_values(tmp_path: Path) -> None:
    config = conf(tmp_path, "spool_directory = /var/spool/test\nbounce_return_size_limit = 10K\n")
    assert x("$primary_hostname $qualify_domain $qualify_recipient", config=config) == (
        "mail.example.org example.org example.org"
    )
    assert x("$smtp_active_hostname $spool_directory", config=config) == "mail.example.org /var/spool/test"
    assert x("$bounce_return_size_limit $return_size_limit", config=config) == "10240 10240"
    assert x("$config_file", config=config) == str(tmp_path / "test.conf")
    assert x("$config_dir", config=config) == str(tmp_path)
    assert x("$spf_guess", config=config) == "v=spf1 a/24 mx/24 ptr ?all"


def test_defaults_without_a_configuration() -> None:
    # Exim's default: the node name (exim4 -C /dev/null -be '$primary_hostname' printed it here),
    # qualified through the resolver only when that gives a dotted name
    fqdn = V.system_hostname()
    assert fqdn.split(".")[0] == socket.gethostname().split(".")[0]
    assert x("$primary_hostname") == fqdn
    assert x("$qualify_domain $qualify_recipient") == f"{fqdn} {fqdn}"
    assert x("[$config_file][$localhost_number]") == "[][0]"


def test_version_and_process() -> None:
    # pyxim reports the Exim release it follows, not its own version
    assert x("$exim_version $version_number") == f"{EXIM_COMPAT_VERSION} {EXIM_COMPAT_VERSION}"
    assert x("$pid") == str(os.getpid())
    assert x("$caller_uid $caller_gid") == f"{os.getuid()} {os.getgid()}"
    assert x("$originator_uid $originator_gid") == f"{os.getuid()} {os.getgid()}"
    assert int(x("$load_average")) >= 0
    assert x("$initial_cwd") == V._INITIAL_CWD


def test_exim_user_and_group(tmp_path: Path) -> None:
    assert x("$exim_uid/$exim_gid", config=conf(tmp_path, "exim_user = root\nexim_group = 0\n")) == "0/0"
    assert x("$exim_uid", config=conf(tmp_path)) == str(os.geteuid())


def test_exim_path(tmp_path: Path) -> None:
    assert (
        x("$exim_path", config=conf(tmp_path, "exim_path = /opt/pyxim/bin/pyxim\n")) == "/opt/pyxim/bin/pyxim"
    )


def test_free_space(tmp_path: Path) -> None:
    config = conf(tmp_path, f"spool_directory = {tmp_path}\nlog_file_path = {tmp_path}/%slog\n")
    st = os.statvfs(tmp_path)
    assert abs(int(x("$spool_space", config=config)) - st.f_bavail * st.f_frsize // 1024) < 1024 * 1024
    assert int(x("$spool_inodes", config=config)) > 0
    assert int(x("$log_space", config=config)) > 0
    syslog_only = conf(tmp_path, "log_file_path = syslog\n")
    assert x("$log_space $log_inodes", config=syslog_only) == "-1 -1"


def test_local_caller_values() -> None:
    login = V.caller_login()
    assert x("$sender_address") == f"{login}@{V.system_hostname()}"
    assert x("$authenticated_id $sender_ident") == f"{login} {login}"
    assert x("$sender_address_local_part") == login


def test_smtp_contexts_do_not_get_the_callers_identity() -> None:
    ctx = ExpansionContext(variables={"sender_host_address": Tainted("192.0.2.1")})
    assert expand_string(
        "[$sender_address][$authenticated_id][$authenticated_sender][$sender_ident]", ctx
    ) == ("[][][][]")


# -- names -------------------------------------------------------------------------------


def test_known_unset_and_unknown_variables() -> None:
    assert x("[$sender_host_address]") == "[]"
    assert x("$recipients_count $interface_port $local_user_uid") == "0 -1 4294967295"
    assert x("$proxy_session $prdr_requested $tls_out_dane") == "no no no"
    assert x("$dkim_bodylength $dkim_key_srvtype") == "9999999999999 *"
    with pytest.raises(ExpansionError, match='^unknown variable name "nosuch"$'):
        x("$nosuch")
    with pytest.raises(ExpansionError, match='^unknown variable in "\\$\\{nosuch}"$'):
        x("${nosuch}")


def test_names_exim_4_96_does_not_have() -> None:
    for name in ("caller_name", "spf_used_domain", "regex_cachesize", "sender_helo_verified", "n0", "sn0"):
        assert not V.is_known_variable(name)
        with pytest.raises(ExpansionError, match=f'unknown variable name "{name}"'):
            V.resolve_variable(Ev(ExpansionContext()), name)


def test_pyxim_specific_variables_exist() -> None:
    # Debian's Exim build lacks DMARC, ARC, Brightmail and DCC; pyxim knows their variables.
    assert x("[$dmarc_status][$arc_state][$dmarc_domain_policy][$dcc_result][$bmi_deliver]") == "[][][][][1]"


def test_values_from_the_caller_and_other_names() -> None:
    ctx = ExpansionContext(
        variables={
            "proxy_local_address": "10.0.0.1",
            "tls_in_sni": "mx.example",
            "message_exim_id": "1xVsXb-0001n2-0G",
            "host_address": "192.0.2.7",
            "event_data": "250 OK",
            "interface_port": "25",
        }
    )
    assert expand_string("$proxy_host_address $tls_sni", ctx) == "10.0.0.1 mx.example"
    assert expand_string("$message_id $tpda_delivery_ip", ctx) == "1xVsXb-0001n2-0G 192.0.2.7"
    assert expand_string("$tpda_delivery_confirmation $received_port", ctx) == "250 OK 25"
    old_name = ExpansionContext(variables={"tls_sni": "set.under.the.old.name"})
    assert expand_string("$tls_in_sni", old_name) == "set.under.the.old.name"


def test_acl_variables(tmp_path: Path) -> None:
    ctx = ExpansionContext(acl_vars={"acl_m_x": "set", "acl_c0": "zero"})
    # the name ends at the first character that is not a letter, digit or underscore
    assert expand_string("$acl_m_x $acl_c0 [$acl_m_unset][$acl_c][$acl_c-x][$acl_c9x][${acl_c-x}]", ctx) == (
        "set zero [][][-x][][]"
    )
    with pytest.raises(ExpansionError, match=r'"acl_mx" \(6th character of a user-defined ACL variable'):
        x("$acl_mx")
    with pytest.raises(
        ExpansionError, match=r'"acl_x" \(user-defined ACL variables must start acl_c or acl_m\)'
    ):
        x("$acl_x")
    with pytest.raises(ExpansionError, match=r'"acl_arg0" \(user-defined ACL'):
        x("$acl_arg0")
    strict = conf(tmp_path, "strict_acl_vars\n")
    with pytest.raises(
        ExpansionError, match=r'^unknown variable name "acl_m_foo" \(strict_acl_vars is set\)$'
    ):
        x("$acl_m_foo", config=strict)
    assert x("$acl_m_foo", config=strict, acl_vars={"acl_m_foo": "ok"}) == "ok"


def test_router_and_numbered_variables() -> None:
    assert x("[$r_anything]", variables={}) == "[]"
    assert x("$r_x", variables={"r_x": "router value"}) == "router value"
    ctx = ExpansionContext(variables={"auth1": "user", "regex2": "two"})
    assert expand_string("$auth1 $auth01 $regex2 $regex02 [$auth4][$regex9]", ctx) == "user user two two [][]"
    for name in ("auth0", "auth5", "regex0", "regex10", "auth", "regex", "auth1x"):
        assert not V.is_known_variable(name)


def test_def_tests_for_emptiness() -> None:
    assert x("${if def:acl_narg{y}{n}}${if def:domain{y}{n}}${if def:qualify_domain{y}{n}}") == "yny"


def test_resolve_variable_without_an_evaluation_only_checks_the_name() -> None:
    assert V.resolve_variable(None, "domain") == ""  # type: ignore[arg-type]
    with pytest.raises(ExpansionError, match=r'"acl_zz" \(user-defined'):
        V.resolve_variable(None, "acl_zz")  # type: ignore[arg-type]


def test_register_variable() -> None:
    assert not V.is_known_variable("pyxim_test_thing")
    V.register_variable("pyxim_test_thing", "none", compute=None)
    try:
        assert x("$pyxim_test_thing") == "none"
        assert x("$pyxim_test_thing", variables={"pyxim_test_thing": "set"}) == "set"
    finally:
        V._UNSET.pop("pyxim_test_thing")


def test_sender_parts_keep_taint() -> None:
    ctx = ExpansionContext(variables={"sender_address": Tainted("user@example.net")})
    assert expand_string("$sender_address_local_part $sender_address_domain", ctx) == "user example.net"
    assert is_tainted(V.resolve_variable(Ev(ctx), "sender_address_domain"))


# -- header variables -----------------------------------------------------------------------

MSG = (
    b"Subject: =?utf-8?Q?caf=C3=A9?=\n"
    b"To: a@example.org\n"
    b"To: b@example.org\n"
    b"Resent-Cc: r1@example.org\n"
    b"Resent-Cc: r2@example.org\n"
    b"X-Note: one\n"
    b"X-Note:   \n"
    b"X-Note: two: three\n"
    b"X-Latin: =?iso-8859-1?q?caf=E9?=\n"
    b"X-Sp : not found by name\n"
    b"Reply-To:\n"
    b"From: \n  folded@example.org\n"
    b"\n"
    b"line one\n"
    b"line two\n"
)


def msg_ctx(data: bytes = MSG, config: Config | None = None) -> ExpansionContext:
    return ExpansionContext(message=Message.from_bytes(data), config=config)


def test_header_variables() -> None:
    ctx = msg_ctx()
    assert expand_string("$h_subject:", ctx) == "café"
    assert expand_string("$rh_subject:", ctx) == " =?utf-8?Q?caf=C3=A9?=\n"
    assert expand_string("$h_to:", ctx) == "a@example.org,\nb@example.org"  # address headers: comma
    assert expand_string("$h_resent-cc:", ctx) == "r1@example.org,\nr2@example.org"
    assert expand_string("$h_x-note:", ctx) == "one\ntwo: three"  # empty ones skipped
    assert expand_string("$rh_x-note:", ctx) == " one\n   \n two: three\n"
    assert expand_string("$lh_x-note:", ctx) == " one:   : two:: three"
    assert expand_string("$h_X-NOTE: $header_x-note:", ctx) == "one\ntwo: three one\ntwo: three"
    assert expand_string("[$h_x-sp:][$h_nosuch:][$lh_nosuch:]", ctx) == "[][][]"
    assert (
        expand_string("${if def:h_x-note:{y}{n}}${if def:h_cc:{y}{n}}${if def:h_reply-to:{y}{n}}", ctx)
        == "yny"
    )
    assert is_tainted(expand_string("$h_subject:", ctx))
    assert is_tainted(V.header_variable(Ev(ctx), "lh", "x-note"))


def test_header_charsets(tmp_path: Path) -> None:
    ctx = msg_ctx()
    assert expand_string("$h_x-latin:", ctx) == "café"  # translated to headers_charset (UTF-8)
    assert expand_string("$bh_x-latin:", ctx) == "caf\udce9"  # decoded, not translated: the byte E9
    latin = msg_ctx(config=conf(tmp_path, "headers_charset = ISO-8859-1\n"))
    assert expand_string("$h_subject:", latin) == "caf\udce9"


def test_encoded_word_length_check(tmp_path: Path) -> None:
    data = b"Subject: =?utf-8?q?" + b"a" * 80 + b"?=\n\n"
    assert expand_string("$h_subject:", msg_ctx(data)).startswith("=?utf-8?q?")
    loose = msg_ctx(data, conf(tmp_path, "no_check_rfc2047_length\n"))
    assert expand_string("$h_subject:", loose) == "a" * 80


def test_header_values_are_capped() -> None:
    data = b"X-Big: " + b"x" * 70000 + b"\nX-Big: more\n\n"
    ctx = msg_ctx(data)
    assert len(V.header_variable(Ev(ctx), "h", "x-big")) == V.HEADER_INSERT_MAXLEN
    assert len(V.header_variable(Ev(ctx), "rh", "x-big")) == V.HEADER_INSERT_MAXLEN


def test_replaced_headers_are_invisible() -> None:
    message = Message(
        [
            HeaderLine("To", "To: old\n", "*"),
            HeaderLine("To", "To: new@example.org\n"),
            HeaderLine("X", "X: 1\n"),
        ],
        "",
    )
    ctx = ExpansionContext(message=message)
    assert (
        expand_string("$h_to: [$message_headers_raw]", ctx) == "new@example.org [To: new@example.org\nX: 1\n]"
    )


def test_message_wide_variables(tmp_path: Path) -> None:
    ctx = msg_ctx()
    assert expand_string("$message_body", ctx) == "line one line two "
    assert expand_string("$body_linecount $message_body_size $body_zerocount", ctx) == "2 18 0"
    assert expand_string("$message_headers", ctx).splitlines()[0] == "Subject: café"
    assert expand_string("$message_headers_raw", ctx).endswith("From: \n  folded@example.org\n")
    # Reply-To: is empty, so From: is used: raw, on one line, trimmed
    assert expand_string("[$reply_address]", ctx) == "[folded@example.org]"
    assert is_tainted(expand_string("$message_body", ctx))
    small = msg_ctx(config=conf(tmp_path, "message_body_visible = 5\nmessage_body_newlines\n"))
    assert expand_string("[$message_body][$message_body_end]", small) == "[line ][ two\n]"


def test_no_message() -> None:
    assert x("[$h_subject:][$message_body][$message_headers][$reply_address][$message_size]") == "[][][][][0]"


def test_sender_host_name_is_looked_up_when_wanted(resolver) -> None:  # type: ignore[no-untyped-def]
    # the tests' DNS server (tests/fixtures/zones): 192.0.2.10 is mx1.example.test both ways
    ctx = ExpansionContext(variables={"sender_host_address": "192.0.2.10"}, resolver=resolver)
    assert expand_string("$sender_host_name", ctx) == "mx1.example.test"
    assert is_tainted(ctx.variables["sender_host_name"])
    # liar.example.test does not point back at 192.0.2.200
    liar = ExpansionContext(variables={"sender_host_address": "192.0.2.200"}, resolver=resolver)
    assert expand_string("[$sender_host_name][$host_lookup_failed]", liar) == "[][1]"
    # nothing is looked up in a branch that is not taken, nor without a client address
    skipped = ExpansionContext(variables={"sender_host_address": "192.0.2.10"}, resolver=resolver)
    assert expand_string("${if eq{a}{b}{$sender_host_name}{no}}", skipped) == "no"
    assert "sender_host_name" not in skipped.variables
    assert x("[$sender_host_name]") == "[]"

"""The sections of a configuration: options, named lists, drivers, ACLs, retry and rewrite rules.

Every error message here is the one exim4 4.96 gives for the same file (compared by hand with
`exim4 -C FILE -bV`); pyxim adds the line where Exim names none and a "did you mean" line.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pyxim.config import load_config
from pyxim.config.model import Config
from pyxim.errors import ConfigError

ROUTER_T = "begin transports\nt:\n  driver = pipe\n"


def load(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "exim.conf"
    path.write_text(text)
    return load_config(str(path))


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        # main options
        (
            "accept_8bitmime = true false\n",
            1,
            'extra characters follow "true" for boolean option accept_8bitmime',
        ),
        ("no_accept_8bitmime = true\n", 1, "extra characters follow boolean option no_accept_8bitmime"),
        ("accept_8bitmime junk\n", 1, "extra characters follow boolean option accept_8bitmime"),
        ("primary_hostname x\n", 1, 'missing "=" after primary_hostname'),
        (
            "smtp_accept_max = 12 # many\n",
            1,
            "extra characters follow integer value for smtp_accept_max (# is comment only at line start)",
        ),
        ('smtp_banner = "abc\n', 1, "missing quote at end of string value for smtp_banner"),
        ("exim_user = nosuchuser-pyxim\n", 1, "user nosuchuser-pyxim was not found"),
        ("delay_warning = 2h:1h\n", 1, "time value out of order for delay_warning"),
        (
            "local_sender_retain\nlocal_from_check\n",
            None,
            "both local_from_check and local_sender_retain are set; this combination is not allowed",
        ),
        # named lists
        ("domainlist foo a\n", 1, "missing '=' after \"foo\""),
        ("domainlist foo = a\ndomainlist foo = b\n", 2, 'duplicate name "foo" for a named domain list'),
        ("hostlist h = a\nhostlist h = b\n", 2, 'duplicate name "h" for a named host list'),
        ("domainlistx foo = a\n", 1, "unrecognized configuration line"),
        # drivers
        ("begin routers\nfoo = bar\n", 2, "router name missing"),
        ("begin routers\nr:\n  domains = a\n", 2, 'no driver defined for router "r"'),
        (
            "begin routers\nr:\n  data = x\n  driver = redirect\n",
            3,
            'option "data" unknown ("driver" must be specified before any private options)',
        ),
        (
            "begin routers\nr:\n  driver = redirect\n  data = x\n  data = y\n",
            5,
            '"data" option set for the second time',
        ),
        (
            "begin routers\nr:\n  driver = redirect\n  data = x\nr:\n  driver = redirect\n  data = x\n",
            5,
            'there are two routers called "r"',
        ),
        ("begin routers\nr: junk\n  driver = redirect\n", 2, "extra characters follow driver name r"),
        (
            "begin routers\nr:\n  driver = accept\n" + ROUTER_T,
            2,
            "r router:\n  a transport is required for this router",
        ),
        (
            "begin routers\nr:\n  driver = redirect\n  data = x\n  transport = t\n" + ROUTER_T,
            2,
            "r router:\n  a transport must not be defined for this router",
        ),
        (
            "begin routers\nr:\n  driver = accept\n  transport = t\n  self = bogus\n" + ROUTER_T,
            2,
            "r router:\n  bogus is not valid for the self option",
        ),
        (
            "begin routers\nr:\n  driver = accept\n  transport = t\n  pass_router = nope\n" + ROUTER_T,
            2,
            'new_router "nope" not found for "r" router',
        ),
        (
            "begin transports\nt:\n  driver = pipe\n  headers_rewrite = a@b c@d F\n",
            4,
            "rewrite rule specifies a non-header rewrite - not allowed at transport time -",
        ),
        (
            "begin authenticators\na:\n  driver = plaintext\n  public_name = X\n  server_condition = y\n"
            "b:\n  driver = plaintext\n  public_name = x\n  server_condition = y\n",
            6,
            "two server authenticators (a and b) have the same public name (X)",
        ),
        # ACLs
        ("begin acl\na:\n  foo hosts = x\n", 3, 'error in ACL: unknown ACL verb "foo" in "foo hosts = x"'),
        ("begin acl\na:\n  hosts = x\n", 3, 'error in ACL: unknown ACL verb "hosts" in "hosts = x"'),
        (
            "begin acl\na:\n  accept foo = x\n",
            3,
            'error in ACL: unknown ACL condition/modifier in "accept foo = x"',
        ),
        ("begin acl\na:\n  accept hosts x\n", 3, 'error in ACL: "=" missing after ACL "hosts" condition'),
        ("begin acl\na:\n  accept message x\n", 3, 'error in ACL: "=" missing after ACL "message" modifier'),
        ("begin acl\na b:\n  accept\n", 2, "missing or malformed ACL name"),
        ("begin acl\na:\n  accept\na:\n  deny\n", 4, 'there are two ACLs called "a"'),
        (
            "begin acl\na:\n  accept !message = x\n",
            3,
            'error in ACL: ACL error: negation is not allowed with "message"',
        ),
        (
            "begin acl\na:\n  deny endpass\n",
            3,
            'error in ACL: ACL error: "endpass" is not allowed with "deny"',
        ),
        (
            "begin acl\na:\n  accept set foo = 1\n",
            3,
            'error in ACL: invalid variable name after "set" in ACL modifier "set foo = 1" '
            '(must start "acl_c" or "acl_m")',
        ),
        ("begin acl\na:\n  accept set acl_m_x\n", 3, 'error in ACL: "=" missing after ACL "set" modifier'),
        # retry rules
        ("begin retry\n*\n", 2, "missing error type in retry rule"),
        ("begin retry\n* foo\n", 2, 'unknown or malformed retry error "foo"'),
        ("begin retry\n* * X,1h,1m\n", 2, "unknown retry rule letter"),
        ("begin retry\n* * F,1h\n", 2, "comma expected"),
        ("begin retry\n* * F,1h,1m G\n", 2, "semicolon expected"),
        ("begin retry\n* * G,1h,1m,0.5\n", 2, "bad parameters for retry rule"),
        ("begin retry\n* timeout_X F,1h,1m\n", 2, '"A", "MX", or "connect" expected after "timeout"'),
        (
            "begin retry\n* rcpt_4z F,1h,1m\n",
            2,
            "rcpt_4 must be followed by xx, dx, or dd, where x is literal and d is any digit",
        ),
        # rewrite rules
        ("begin rewrite\na@b\n", 2, "missing rewrite replacement string"),
        (
            "begin rewrite\na@b c@d Z\n",
            2,
            "unknown rewrite flag character 'Z' (could be missing quotes round replacement item)",
        ),
        ("begin rewrite\na@b c@d S\n", 2, "rewrite rule has the S flag but is not a regular expression"),
        (
            "begin local_scan\nx = 1\n",
            1,
            "local_scan() options not supported: (LOCAL_SCAN_HAS_OPTIONS not defined in Local/Makefile)",
        ),
    ],
)
def test_errors(tmp_path: Path, text: str, line: int | None, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    assert info.value.message == message
    assert info.value.line == line


def test_unknown_driver_and_option_suggestions(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, "begin routers\nr:\n  driver = redirct\n")
    assert info.value.message == 'router r: cannot find router driver "redirct"\n  (did you mean "redirect"?)'
    assert info.value.line == 3
    with pytest.raises(ConfigError) as info:
        load(tmp_path, "begin transports\nt:\n  driver = smtp\n  hosts_try_prdrr = *\n")
    assert str(info.value).endswith('option "hosts_try_prdrr" unknown\n  (did you mean "hosts_try_prdr"?)')


def test_a_missing_transport_is_found_only_when_routing(tmp_path: Path) -> None:
    c = load(
        tmp_path, "begin routers\nr:\n  driver = accept\n  transport = nosuch\n"
    )  # Exim's -bV accepts it
    assert c.routers[0].options["transport"] == "nosuch"


def test_named_lists(tmp_path: Path) -> None:
    c = load(
        tmp_path,
        "domainlist local_domains = @ : example.org\nhostlist_cache relay = 127.0.0.1\n"
        'addresslist_cache bad = *@spam.example\nlocalpartlist specials = "post\\x6daster"\n'
        "domainlist = unnamed\n",
    )
    relay = c.named_lists["relay"]
    assert (relay.kind, relay.cached, relay.line) == ("host", True, 2)
    assert c.named_lists["bad"].kind == "address" and c.named_lists["bad"].cached
    assert c.named_lists["specials"].value == "postmaster"  # quoted values have escapes
    assert not c.named_lists["local_domains"].cached
    assert c.named_lists[""].value == "unnamed"  # Exim accepts a list without a name


def test_driver_options_are_typed_and_complete(tmp_path: Path) -> None:
    c = load(
        tmp_path,
        "begin routers\n"
        "r:\n  driver = redirect\n  data = x\n  user = root\n  condition = A\n  condition = B\n"
        "  headers_add = X-A: 1\n  headers_add = X-B: 2\n  headers_remove = a:b\n  headers_remove = c\n"
        "  set = r_a = 1\n  set = r_b = 2\n  verify = false\n  unseen = ${if eq{1}{1}}\n  no_more\n"
        "begin transports\n"
        "t:\n  driver = appendfile\n  file = /tmp/x\n  mode = 0640\n  quota = 10M\n  lock_interval = 5s\n"
        "s:\n  driver = smtp\n  port = 2525\n  hosts_try_prdr = *\n  tls_verify_cert_hostname = a\n",
    )
    r = c.routers[0].options
    assert r["user"] == 0 and r["group"] == 0  # a user by name brings its group
    assert r["condition"] == "${if and{{bool_lax{A}}{bool_lax{B}}}}"
    assert r["headers_add"] == "X-A: 1\nX-B: 2"
    assert r["headers_remove"] == "a:b:c"
    assert r["set"] == "r_a = 1;r_b = 2"
    assert (r["verify_sender"], r["verify_recipient"]) == (False, False)
    assert r["unseen"] == "${if eq{1}{1}}" and r["more"] is False
    assert r["retry_use_local_part"] is True  # the router has a condition (Exim's rule)
    assert r["allow_fail"] is False  # every option is present, with its default
    t = c.transports[0].options
    assert (t["mode"], t["quota"], t["lock_interval"], t["batch_max"]) == (0o640, "10M", 5, 1)
    s = c.transports[1].options
    assert s["port"] == "2525" and s["tls_verify_cert_hostnames"] == "a" and s["connect_timeout"] == 300
    assert c.deprecations == [
        f'{tmp_path}/exim.conf:28: option "tls_verify_cert_hostname" is deprecated; '
        'use "tls_verify_cert_hostnames"'
    ]


def test_acl_statements(tmp_path: Path) -> None:
    c = load(
        tmp_path,
        "begin acl\ncheck:\n  accept hosts = +relay\n         ! verify = sender\n         set acl_m_x=1\n"
        "         endpass\n  deny   message = no\n         domains = !+local_domains\nother :\n  require\n",
    )
    acl = c.acls["check"]
    assert [s.verb for s in acl.statements] == ["accept", "deny"]
    assert acl.statements[0].items == [
        ("hosts", "+relay", 3),
        ("!verify", "sender", 4),
        ("set", "acl_m_x=1", 5),
        ("endpass", "", 6),
    ]
    assert acl.statements[1].items == [("message", "no", 7), ("domains", "!+local_domains", 8)]
    assert (acl.file, acl.line) == (f"{tmp_path}/exim.conf", 2)
    assert c.acls["other"].statements[0].verb == "require"


def test_retry_and_rewrite_rules(tmp_path: Path) -> None:
    c = load(
        tmp_path,
        "begin retry\n*.example  *  F,2h,15m; G,16h,1h,1.5; F,4d,6h\n"
        '"a b"  quota_7d  senders = *@x.example  F,1h,10m\n'
        "*  refused_MX\n"
        'begin rewrite\n*@old.example  $1@new.example  Ff\n"^(.*)@x$"  "$1@y"  S\n',
    )
    first, second, third = c.retry_rules
    assert (first.pattern, first.error, first.rules) == ("*.example", "*", "F,2h,15m; G,16h,1h,1.5; F,4d,6h")
    assert first.items == [("F", 7200, 900, 0), ("G", 57600, 3600, 1500), ("F", 345600, 21600, 0)]
    assert (second.pattern, second.error, second.senders, second.items) == (
        "a b",
        "quota_7d",
        "*@x.example",
        [("F", 3600, 600, 0)],
    )
    assert third.items == []
    a, b = c.rewrite_rules
    assert (a.pattern, a.replacement, a.flags, a.line) == ("*@old.example", "$1@new.example", "Ff", 6)
    assert (b.pattern, b.replacement, b.flags) == ("^(.*)@x$", "$1@y", "S")


def test_hide_and_aliases(tmp_path: Path) -> None:
    c = load(
        tmp_path,
        "hide smtp_banner = secret\ndaemon_smtp_port = 2525\nreturn_size_limit = 1K\n"
        "proxy_required_hosts = 10.0.0.1\n",
    )
    assert c.main["smtp_banner"] == "secret" and "smtp_banner" in c.hidden
    assert c.main["daemon_smtp_ports"] == "2525"  # Exim's own synonyms, without a notice
    assert c.main["bounce_return_size_limit"] == 1024
    assert c.main["hosts_proxy"] == "10.0.0.1"
    assert c.deprecations == [
        f'{tmp_path}/exim.conf:4: option "proxy_required_hosts" is deprecated; use "hosts_proxy"'
    ]


def test_values_exim_settles_after_reading(tmp_path: Path) -> None:
    c = load(tmp_path, "remote_max_parallel = 0\nretry_interval_max = 2d\ntimezone =\n")
    assert (c.main["remote_max_parallel"], c.main["retry_interval_max"], c.main["timezone"]) == (
        1,
        86400,
        None,
    )


def test_every_driver_is_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    from pyxim.config import drivers
    from pyxim.config.drivers import drivers_of, options_for, register

    drivers_of("router")  # load the built-in tables, then let this test's registration go away afterwards
    for table in ("_PRIVATE", "_GENERIC_DEFAULTS", "_MERGED"):
        monkeypatch.setattr(drivers, table, dict(getattr(drivers, table)))

    assert drivers_of("router") == [
        "accept",
        "dnslookup",
        "ipliteral",
        "iplookup",
        "manualroute",
        "queryprogram",
        "redirect",
    ]
    assert drivers_of("transport") == ["appendfile", "autoreply", "lmtp", "pipe", "queuefile", "smtp"]
    assert drivers_of("authenticator") == ["cram_md5", "dovecot", "external", "plaintext", "spa", "tls"]
    table = options_for("transport", "smtp")
    assert table is not None
    for name in (
        "hosts_try_prdr",
        "tls_verify_cert_hostnames",
        "hosts_require_ocsp",
        "hosts_request_ocsp",
        "hosts_try_dane",
        "hosts_require_dane",
        "dkim_domain",
        "dkim_selector",
        "arc_sign",
        "event_action",
        "tpda_delivery_action",
        "tpda_host_defer_action",
        "headers_rewrite",
    ):
        assert name in table, name
    assert options_for("router", "nosuch") is None
    from pyxim.config.options import opt

    register("router", "pyxim_test_driver", [opt("test_option", "int", 3)])
    added = options_for("router", "pyxim_test_driver")
    assert added is not None and added["test_option"].default == 3 and "domains" in added


def test_transport_defaults_that_depend_on_the_format(tmp_path: Path) -> None:
    c = load(
        tmp_path,
        "begin transports\nmbox:\n  driver = appendfile\n  file = /m\n"
        "maildir:\n  driver = appendfile\n  directory = /d\n  maildir_format\n"
        "mbx:\n  driver = appendfile\n  file = /m\n  mbx_format\n"
        "bsmtp:\n  driver = pipe\n  command = /bin/cat\n  use_bsmtp\n  check_string = X\n  message_prefix = P\n",
    )
    mbox, maildir, mbx, bsmtp = (t.options for t in c.transports)
    assert (mbox["check_string"], mbox["escape_string"], mbox["message_suffix"]) == ("From ", ">From ", "\n")
    assert mbox["message_prefix"].startswith("From ${if def:return_path")
    assert (maildir["check_string"], maildir["message_prefix"]) == (None, None)
    assert (mbx["use_lockfile"], mbx["use_mbx_lock"]) == (False, True)
    assert (bsmtp["check_string"], bsmtp["escape_string"], bsmtp["message_prefix"]) == (".", "..", "P")
    assert c.transports[3].explicit == {"command", "use_bsmtp", "check_string", "message_prefix"}

"""The configuration parser: syntax, macros, directives, typed options, errors with file and line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pyxim.config import load_config
from pyxim.config.options import OptionDef, format_option, parse_fixed, parse_int, parse_time
from pyxim.errors import ConfigError


def write(tmp_path: Path, text: str, name: str = "exim.conf") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def load(tmp_path: Path, text: str, macros: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return load_config(write(tmp_path, text), macros)


def test_typed_values(tmp_path: Path) -> None:
    c = load(
        tmp_path,
        "primary_hostname = mail.example.org\n"
        "smtp_accept_max = 0x10\n"
        "smtp_accept_reserve = 010\n"
        "message_size_limit = 20M\n"
        "auto_thaw = 1d2h30m10s\n"
        "no_accept_8bitmime\n"
        "queue_only = yes\n"
        "deliver_queue_load_max = 2.5\n"
        'smtp_banner = "tab\\there"\n',
    )
    assert c.main["primary_hostname"] == "mail.example.org"
    assert c.main["smtp_accept_max"] == 16
    assert c.main["smtp_accept_reserve"] == 8
    assert c.main["message_size_limit"] == "20M"  # a string Exim expands when it uses it
    assert c.main["auto_thaw"] == 86400 + 2 * 3600 + 30 * 60 + 10
    assert c.main["accept_8bitmime"] is False
    assert c.main["queue_only"] is True
    assert c.main["deliver_queue_load_max"] == 2500
    assert c.main["smtp_banner"] == "tab\there"
    assert c.main["smtp_accept_max_per_connection"] == "1000"  # Exim 4.96: an expanded string


def test_value_parsers() -> None:
    assert parse_int("x", "2K") == 2048
    assert parse_int("x", "-3") == -3
    with pytest.raises(ConfigError, match="invalid time value for x"):
        parse_time("x", "90")  # every number needs its unit, as in Exim
    assert parse_time("x", "1w") == 604800
    assert parse_fixed("x", "0.05") == 50
    assert format_option(OptionDef("t", "time", None), 93784) == "t = 1d2h3m4s"
    assert format_option(OptionDef("s", "size", None), 50 * 1024 * 1024) == "s = 50M"
    assert format_option(OptionDef("b", "bool", None), False) == "no_b"


def test_macros_and_conditionals(tmp_path: Path) -> None:
    c = load(
        tmp_path,
        "DOMAIN = example.org\n"
        "HOST = mail.DOMAIN\n"
        ".ifdef HOST\n"
        "primary_hostname = HOST\n"
        ".else\n"
        "primary_hostname = wrong\n"
        ".endif\n"
        ".ifndef FROM_CMDLINE\n"
        "qualify_domain = none.example\n"
        ".elifdef DOMAIN\n"
        "qualify_domain = DOMAIN\n"
        ".endif\n"
        "HOST == redefined.DOMAIN\n"
        "smtp_active_hostname = HOST\n",
        {"FROM_CMDLINE": "1"},
    )
    assert c.main["primary_hostname"] == "mail.example.org"
    assert c.main["qualify_domain"] == "example.org"
    assert c.main["smtp_active_hostname"] == "redefined.example.org"
    assert c.macros["FROM_CMDLINE"] == "1"


def test_command_line_macro_wins(tmp_path: Path) -> None:
    c = load(tmp_path, "NAME = file\nprimary_hostname = NAME.example\n", {"NAME": "cli"})
    assert c.main["primary_hostname"] == "cli.example"


def test_continuation_and_comments(tmp_path: Path) -> None:
    c = load(tmp_path, "# comment\n\nprimary_hostname = a\\\n   .example\\\n# inner comment\n   .org\n")
    assert c.main["primary_hostname"] == "a.example.org"


def test_include(tmp_path: Path) -> None:
    write(tmp_path, "qualify_domain = included.example\n", "inc.conf")
    c = load(tmp_path, "primary_hostname = x\n.include inc.conf\n.include_if_exists /nonexistent/file\n")
    assert c.main["qualify_domain"] == "included.example"


def test_named_lists_and_sections(tmp_path: Path) -> None:
    c = load(
        tmp_path,
        "domainlist local_domains = @ : example.org\n"
        "hostlist_cache relay = 127.0.0.1\n"
        "addresslist bad = *@spam.example\n"
        "localpartlist specials = postmaster\n"
        "acl_smtp_rcpt = check_rcpt\n"
        "begin acl\n"
        "check_rcpt:\n"
        "  accept hosts = +relay\n"
        "  deny   message = no\n"
        "         domains = !+local_domains\n"
        "begin routers\n"
        "dnslookup:\n"
        "  driver = dnslookup\n"
        "  domains = ! +local_domains\n"
        "  transport = remote_smtp\n"
        "  no_more\n"
        "begin transports\n"
        "remote_smtp:\n"
        "  driver = smtp\n"
        "  hosts_try_prdr = *\n"
        "begin retry\n"
        "*  *  F,2h,15m; G,16h,1h,1.5; F,4d,6h\n"
        "begin rewrite\n"
        "*@old.example  $1@new.example  Ff\n",
    )
    assert c.named_lists["relay"].kind == "host" and c.named_lists["relay"].cached
    assert c.named_lists["specials"].kind == "localpart"
    acl = c.acls["check_rcpt"]
    assert [s.verb for s in acl.statements] == ["accept", "deny"]
    assert acl.statements[1].items == [("message", "no", 9), ("domains", "!+local_domains", 10)]
    router = c.routers[0]
    assert (router.name, router.driver, router.options["more"]) == ("dnslookup", "dnslookup", False)
    assert c.transports[0].options["hosts_try_prdr"] == "*"
    assert c.retry_rules[0].rules == "F,2h,15m; G,16h,1h,1.5; F,4d,6h"
    assert c.rewrite_rules[0].flags == "Ff"


def test_aliases_are_accepted_with_a_deprecation_notice(tmp_path: Path) -> None:
    c = load(
        tmp_path,
        "proxy_required_hosts = 10.0.0.1\nacl_data_smtp_prdr = accept\n"
        "begin transports\nt:\n  driver = smtp\n  tls_verify_cert_hostname = *\n  tpda_delivery_action = x\n",
    )
    assert c.main["hosts_proxy"] == "10.0.0.1"
    assert c.main["acl_smtp_data_prdr"] == "accept"
    assert c.transports[0].options["tls_verify_cert_hostnames"] == "*"
    assert c.transports[0].options["event_action"] == "x"
    assert len(c.deprecations) == 4
    assert "proxy_required_hosts" in c.deprecations[0] and "hosts_proxy" in c.deprecations[0]


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("primary_hostname = x\nnosuch_option = 1\n", 2, 'main option "nosuch_option" unknown'),
        ("auto_thaw = xx\n", 1, "invalid time value for auto_thaw"),
        ("smtp_accept_max = abc\n", 1, "integer expected for smtp_accept_max"),
        ("accept_8bitmime = maybe\n", 1, '"maybe" is not a valid value for the "accept_8bitmime" option'),
        ("no_smtp_accept_max\n", 1, "negation prefix applied to a non-boolean option"),
        ("smtp_accept_max\n", 1, "unexpected end of line (data missing) after smtp_accept_max"),
        ("begin nonsense\n", 1, '"nonsense" is not a known configuration section name'),
        (".endif\n", 1, ".endif without matching .ifdef"),
        (".ifdef X\n", 1, "Unexpected end of configuration file: .endif missing"),
        (
            ".include /nonexistent/x.conf\n",
            1,
            "failed to open included configuration file /nonexistent/x.conf",
        ),
        ("queue_only = false\nqueue_only = true\n", 2, '"queue_only" option set for the second time'),
        ("begin routers\nr:\n  driver = nosuch\n", 3, 'router r: cannot find router driver "nosuch"'),
        ("begin routers\nr:\n  driver = accept\n  nosuch = 1\n", 4, 'option "nosuch" unknown'),
    ],
)
def test_errors_name_file_and_line(tmp_path: Path, text: str, line: int, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.line == line
    assert info.value.message.startswith(message)
    assert str(info.value).startswith(f"Exim configuration error in line {line} of {path}:\n  {message}")


def test_unknown_option_suggests_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, "primary_hostnme = x\n")
    assert 'did you mean "primary_hostname"?' in info.value.message


def test_macro_redefinition_needs_double_equals(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match='macro "MAC" is already defined'):
        load(tmp_path, "MAC = 1\nMAC = 2\n")


def test_embedded_default_configuration_is_safe() -> None:
    c = load_config(None)
    assert c.main["acl_smtp_rcpt"] == "acl_check_rcpt"
    assert c.named_lists["relay_from_hosts"].value == "<; 127.0.0.1 ; ::1"
    verbs = [s.verb for s in c.acls["acl_check_rcpt"].statements]
    assert "require" in verbs  # relaying needs a local or relay domain


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pyxim", *args], capture_output=True, text=True, timeout=60)


def test_bv_reports_the_configuration_file(tmp_path: Path) -> None:
    path = write(tmp_path, "primary_hostname = x\n")
    proc = run("-C", path, "-bV")
    assert proc.returncode == 0
    assert f"Configuration file is {path}" in proc.stdout


def test_bv_on_a_bad_configuration_exits_1(tmp_path: Path) -> None:
    path = write(tmp_path, "primary_hostname = x\nbogus = 1\n")
    proc = run("-C", path, "-bV")
    assert proc.returncode == 1
    assert f'Exim configuration error in line 2 of {path}:\n  main option "bogus" unknown' in proc.stderr
    assert "Traceback" not in proc.stderr


def test_bp_forms(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "primary_hostname = x.example\nMAC = v\ndomainlist local_domains = a : b\n"
        "begin routers\nr1:\n  driver = accept\n  transport = t1\nbegin transports\nt1:\n  driver = pipe\n",
    )
    proc = run(
        "-C", path, "-bP", "primary_hostname", "+local_domains", "router_list", "macro", "MAC", "nosuch"
    )
    assert proc.stdout == (
        "primary_hostname = x.example\ndomainlist local_domains = a : b\nr1\nMAC=v\nnosuch is not a known option\n"
    )
    assert proc.returncode == 1
    proc = run("-C", path, "-bP", "transport", "t1")
    assert "driver = pipe\n" in proc.stdout and proc.returncode == 0


def test_log_selector_parsing() -> None:
    from pyxim import logselector

    enabled = logselector.parse("+subject -tls_cipher")
    assert "subject" in enabled and "tls_cipher" not in enabled and "tls_certificate_verified" in enabled
    assert logselector.parse("+all") == logselector.KNOWN
    with pytest.raises(ConfigError, match="unknown log_selector setting: \\+nonsense"):
        logselector.parse("+nonsense")


def test_bad_log_selector_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown log_selector setting: \\+bogus"):
        load(tmp_path, "log_selector = +subject +bogus\n")

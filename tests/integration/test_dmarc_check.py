"""The DMARC check one step below the SMTP session: an ACL run against the tests' DNS server
(tests/fixtures/zones/dmarc.test.zone), for what a daemon test cannot steer — pct= sampling
with a chosen random number, the bundled Public Suffix List, a replaced organizational-domain
method — and the record parser and From: reading on their own."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyxim.acl.engine import AclConditionError, AclRun, AclState, _load_condition_modules
from pyxim.config import load_config
from pyxim.expand import expand_string
from pyxim.expand.context import ExpansionContext
from pyxim.expand.message import Message
from pyxim.policy import dmarc
from pyxim.policy.dmarc_record import RecordError, parse_record, register_org_domain_finder
from tests.support.dnsserver import DnsServer

_load_condition_modules()


def make_run(
    tmp_path: Path,
    dns_server: DnsServer,
    from_header: str | None,
    *,
    tld: str | None = "psl",
    extra: str = "",
    client: str = "192.0.2.99",
    sender: str = "x@norec.dmarc.test",
    random_value: float | None = None,
) -> AclRun:
    (tmp_path / "psl.dat").write_text("test\ndmarc.test\n")
    lines = [
        f"spool_directory = {tmp_path}/spool",
        f"log_file_path = {tmp_path}/%slog",
        "primary_hostname = mx.example.org",
        f"dns_nameservers = {dns_server.option}",
        f"dmarc_history_file = {tmp_path}/history",
    ]
    if tld == "psl":
        lines.append(f"dmarc_tld_file = {tmp_path}/psl.dat")
    elif tld is not None:
        lines.append(f"dmarc_tld_file = {tld}")
    conf = tmp_path / "exim.conf"
    conf.write_text("\n".join(lines) + "\n" + extra)
    config = load_config(str(conf))
    ctx = ExpansionContext(config=config)
    ctx.variables.update(
        {
            "sender_host_address": client,
            "sender_helo_name": "client.test",
            "sender_address": sender,
            "message_exim_id": "1xYabc-000001-AB",
        }
    )
    head = f"From: {from_header}\n" if from_header is not None else ""
    ctx.message = Message.from_bytes(f"{head}Subject: t\n\nbody\n".encode())
    if random_value is not None:
        ctx.lookup_cache[dmarc.RANDOM_KEY] = lambda: random_value
    return AclRun(config, ctx, AclState())


@pytest.mark.parametrize(
    ("chance", "status"), [(0.3, "reject"), (0.49, "reject"), (0.5, "quarantine"), (0.9, "quarantine")]
)
def test_pct_sampling_through_the_context(tmp_path, dns_server, chance, status) -> None:  # type: ignore[no-untyped-def]
    run = make_run(tmp_path, dns_server, "a@pct50.dmarc.test", random_value=chance)
    assert dmarc.check(run).status == status
    # the record's policy is still p=reject
    assert expand_string("$dmarc_domain_policy", run.ctx) == "reject"


def test_bundled_public_suffix_list_is_the_default(tmp_path, dns_server) -> None:  # type: ignore[no-untyped-def]
    # with the real list .test is no suffix: the organizational domain of mail.orgp.dmarc.test is dmarc.test,
    # which has no record (with the tests' list it is orgp.dmarc.test, which has)
    run = make_run(tmp_path, dns_server, "a@mail.orgp.dmarc.test", tld=None)
    outcome = dmarc.check(run)
    assert (outcome.status, outcome.used_domain) == ("norecord", "dmarc.test")
    run = make_run(tmp_path, dns_server, "a@mail.orgp.dmarc.test")
    outcome = dmarc.check(run)
    assert (outcome.status, outcome.used_domain) == ("quarantine", "orgp.dmarc.test")


def test_empty_tld_file_disables_dmarc(tmp_path, dns_server) -> None:  # type: ignore[no-untyped-def]
    run = make_run(tmp_path, dns_server, "a@reject.dmarc.test", tld="")
    assert run.config.main["dmarc_tld_file"] == ""
    assert dmarc.cond_dmarc_status(run, "none")
    assert (
        expand_string("$dmarc_ar_header", run.ctx) == "Authentication-Results: mx.example.org; dmarc=skipped"
    )
    assert not (tmp_path / "history").exists()


def test_unreadable_tld_file_is_logged(tmp_path, dns_server) -> None:  # type: ignore[no-untyped-def]
    run = make_run(tmp_path, dns_server, "a@reject.dmarc.test", tld=str(tmp_path / "missing.dat"))
    assert dmarc.check(run).status == "none"
    assert run.state.log_lines == [
        (False, f"DMARC failure to load tld list '{tmp_path}/missing.dat': No such file or directory")
    ]


def test_org_domain_method_can_be_replaced(tmp_path, dns_server) -> None:  # type: ignore[no-untyped-def]
    # RFC 9989-9991 find the organizational domain by a DNS tree walk; any such method plugs in here
    asked = []

    def walk(domain: str) -> str:
        asked.append(domain)
        return "orgp.dmarc.test" if domain.endswith("orgp.dmarc.test") else domain

    register_org_domain_finder(walk)
    try:
        run = make_run(tmp_path, dns_server, "a@deep.mail.orgp.dmarc.test", tld=None)
        outcome = dmarc.check(run)
    finally:
        register_org_domain_finder(None)
    assert (outcome.status, outcome.used_domain) == ("quarantine", "orgp.dmarc.test")
    assert "deep.mail.orgp.dmarc.test" in asked


def test_local_and_authenticated_messages_are_skipped(tmp_path, dns_server) -> None:  # type: ignore[no-untyped-def]
    run = make_run(tmp_path, dns_server, "a@reject.dmarc.test", client="")
    assert dmarc.check(run).status == "none"
    run = make_run(tmp_path, dns_server, "a@reject.dmarc.test")
    run.ctx.variables["sender_host_authenticated"] = "plain"
    outcome = dmarc.check(run)
    assert (outcome.status, outcome.result, outcome.from_domain) == ("none", "skipped", "reject.dmarc.test")


def test_variables_before_the_check_and_bad_names(tmp_path, dns_server) -> None:  # type: ignore[no-untyped-def]
    run = make_run(tmp_path, dns_server, "a@reject.dmarc.test")
    assert (
        expand_string("<$dmarc_status> <$dmarc_status_text> <$dmarc_used_domain> <$dmarc_ar_header>", run.ctx)
        == "<none> <> <> <>"
    )
    with pytest.raises(AclConditionError, match='unknown DMARC status "bogus"'):
        dmarc.cond_dmarc_status(run, "reject : bogus")
    assert dmarc.cond_dmarc_status(run, "!accept : !none")
    assert not dmarc.cond_dmarc_status(run, "accept")
    assert expand_string("$dmarc_status/$dmarc_status_text", run.ctx) == "reject/Reject"


def test_host_checking_writes_no_history(tmp_path, dns_server) -> None:  # type: ignore[no-untyped-def]
    run = make_run(tmp_path, dns_server, "a@reject.dmarc.test")
    run.ctx.acl_trace = lambda *a, **k: None  # what -bh sets
    assert dmarc.check(run).status == "reject"
    assert not (tmp_path / "history").exists()
    assert any("DMARC results:" in line for _, line in run.state.log_lines)


def test_history_file_failure_is_logged(tmp_path, dns_server) -> None:  # type: ignore[no-untyped-def]
    run = make_run(tmp_path, dns_server, "a@reject.dmarc.test")
    run.config.main["dmarc_history_file"] = str(tmp_path / "no" / "such" / "dir")
    assert dmarc.check(run).status == "reject"
    assert (False, f"failure to create DMARC history file: {tmp_path}/no/such/dir") in run.state.log_lines


# -- the record parser and the From: domain on their own ----------------------------------------------


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        ("v=DMARC1; p=reject", ("reject", "", "", "", 100, ["0"])),
        (
            "v=DMARC1;p=Quarantine;sp=none;adkim=s;aspf=r;pct=20;fo=1:d:s",
            ("quarantine", "none", "s", "r", 20, ["1", "d", "s"]),
        ),
        ("v=DMARC1; p=none; unknown=tag; rf=afrf; ri=3600;", ("none", "", "", "", 100, ["0"])),
        ("v=DMARC1; p=bogus; rua=mailto:a@x.test", ("none", "", "", "", 100, ["0"])),
    ],
)
def test_record_parser(text, expect) -> None:  # type: ignore[no-untyped-def]
    r = parse_record(text)
    assert (r.p, r.sp, r.adkim, r.aspf, r.pct, r.fo) == expect


@pytest.mark.parametrize(
    "text",
    [
        "v=DMARC1",
        "v=DMARC1; p=bogus",
        "v=DMARC1; p=none; adkim=x",
        "v=DMARC1; p=none; pct=101",
        "v=DMARC1; p=none; pct=-1",
        "v=DMARC1; p=none; fo=2",
        "v=DMARC1; p=none; p=reject",
        "v=DMARC1; p=none; ruf=mailto:no-at-sign",
        "v=DMARC1; p=none; ruf=mailto:a@b!huge",
        "v=DMARC1; p=none; ===",
        "V=DMARC1; p=none",
        "v=DMARC2; p=none",
        "v=spf1 -all",
        "",
        "v=DMARC1; p=none; sp=everything",
    ],
)
def test_record_parser_refuses(text) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RecordError):
        parse_record(text)


def test_report_addresses() -> None:
    r = parse_record("v=DMARC1; p=none; rua=mailto:a@x.test!10m, https://r.test/x; ruf=mailto:f%40b@x.test")
    assert [(a.uri, a.address, a.limit) for a in r.rua] == [
        ("mailto:a@x.test", "a@x.test", "10m"),
        ("https://r.test/x", "", ""),
    ]
    assert [a.address for a in r.ruf] == ["f@b@x.test"]


@pytest.mark.parametrize(
    ("header", "domain"),
    [
        ("a@Example.TEST", "example.test"),
        ('"Someone, Esq." <someone@x.test>', "x.test"),
        ("=?utf-8?q?J=C3=B6rg?= <j@x.test.>", "x.test"),
        ("a@x.test, b@X.test", "x.test"),
        ("Group: a@x.test, b@x.test;", "x.test"),
        ("a@x.test, b@y.test", ""),
        ("undisclosed-recipients:;", ""),
        ("", ""),
        ("no address here", ""),
        ("a@bad_domain..test", ""),
        ("a@" + "x" * 300 + ".test", ""),
    ],
)
def test_from_domain(header, domain) -> None:  # type: ignore[no-untyped-def]
    ctx = ExpansionContext()
    ctx.message = Message.from_bytes(f"From: {header}\nSubject: t\n\nbody\n".encode())
    assert dmarc.from_domain(ctx)[0] == domain


@pytest.mark.parametrize(
    "header",
    [
        "a@bücher.dmarc.test",
        "a@xn--bcher-kva.dmarc.test",
        "a@-.dmarc.test",
        "a@" + ".".join(["x" * 63] * 4),
        "a@_dmarc.reject.dmarc.test",
    ],
)
def test_odd_from_domains_never_raise(tmp_path, dns_server, header) -> None:  # type: ignore[no-untyped-def]
    run = make_run(tmp_path, dns_server, header)
    # (the last one is a subdomain of reject.dmarc.test, whose policy applies)
    assert dmarc.check(run).status in ("norecord", "nofrom", "temperror", "reject")
    assert not any("internal error" in line for _, line in run.state.log_lines), run.state.log_lines


@pytest.mark.parametrize(
    ("fo", "spf", "dkim", "spf_ok", "dkim_ok", "kind"),
    [
        (["0"], "fail", [], False, False, "dmarc"),
        (["0"], "pass", [], True, False, None),
        (["1"], "pass", [], True, False, "dmarc"),
        (["1"], "pass", [("pass", "")], True, True, None),
        (["s"], "fail", [("pass", "")], False, True, "spf"),
        (["d"], "pass", [("fail", "bodyhash_mismatch")], True, False, "bodyhash"),
        (["d"], "pass", [("invalid", "pubkey_unavailable")], True, False, "signature"),
        (["d", "s"], "pass", [("pass", "")], True, True, None),
    ],
)
def test_failure_report_options(fo, spf, dkim, spf_ok, dkim_ok, kind) -> None:  # type: ignore[no-untyped-def]
    from pyxim.policy.dmarc_report import failure_kind

    outcome = dmarc.DmarcOutcome(
        "reject",
        "fail",
        record=parse_record("v=DMARC1; p=reject; fo=" + ":".join(fo)),
        spf_result=spf,
        spf_aligned=spf_ok,
        dkim_aligned=dkim_ok,
        signatures=[{"dkim_verify_status": s, "dkim_verify_reason": r} for s, r in dkim],
    )
    assert failure_kind(outcome) == kind

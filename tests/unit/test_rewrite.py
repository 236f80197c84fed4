"""The rewrite engine on its own: awkward input, loops, failures, big headers."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pyxim.config import load_config
from pyxim.config.model import Config
from pyxim.rewrite import (
    ENVFROM,
    ENVTO,
    SMTP,
    TO,
    Rewriter,
    RuleSet,
    rewrite_reception,
    rewrite_test,
    rule_bits,
    smtp_command,
    transport_rewriter,
)
from pyxim.spool.format import Recipient, SpoolHeader

RULES = """\
primary_hostname = mail.example.org
qualify_domain = example.org
begin rewrite
*@loop.example $local_part@loop.example R
*@old.example $local_part@new.example
*@fail.example "${if !eq{$local_part}{f}{ok}fail}@failed.example"
*@fail.example second@failed.example
*@err.example ${lookup{x}lsearch{/nonexistent/file}}@x.example
*@unq.example $local_part
*@env.example $local_part@env-new.example E
\\N^<smtp-(.*)>$\\N <$1> S
"""


@pytest.fixture
def config(tmp_path: Path) -> Config:
    path = tmp_path / "rw.conf"
    path.write_text(RULES)
    return load_config(str(path), {})


def rewriter(config: Config) -> tuple[Rewriter, list[str]]:
    lines: list[str] = []
    rw = Rewriter(config, RuleSet.of(config.rewrite_rules), log=lines.append, panic=lines.append)
    return rw, lines


def test_flag_letters() -> None:
    assert rule_bits("") == 0xFF  # no action letter: everywhere
    assert rule_bits("S") == SMTP  # an S rule is for SMTP time only
    assert rule_bits("Eq") & (ENVFROM | ENVTO) == ENVFROM | ENVTO
    assert rule_bits("t") & 0xFF == TO


def test_repeat_stops_after_ten(config: Config) -> None:
    rw, lines = rewriter(config)
    out = rw.rewrite_one("a@loop.example", TO)
    assert out.address == "a@loop.example" and out.changed
    assert len(out.before) == 11
    assert lines == ["rewrite rule repeat ignored after 10 times"]


def test_forced_failure_moves_on_and_other_failures_give_up(config: Config) -> None:
    rw, lines = rewriter(config)
    assert rw.rewrite_one("f@fail.example", TO).address == "second@failed.example"
    assert rw.rewrite_one("g@fail.example", TO).address == "ok@failed.example"
    out = rw.rewrite_one("x@err.example", TO)
    assert (out.address, out.changed) == ("x@err.example", False)
    assert lines[-1].startswith(
        "Expansion of ${lookup{x}lsearch{/nonexistent/file}}@x.example failed while rewriting"
    )
    out = rw.rewrite_one("x@unq.example", TO)
    assert (out.address, lines[-1]) == (
        "x@unq.example",
        'Rewrite of x@unq.example yielded unqualified address "x"',
    )


def test_malformed_header_addresses_are_left_alone(config: Config) -> None:
    rw, lines = rewriter(config)
    text = 'To: broken <, a@old.example, "unterminated, (comment, @x\n'
    new = rw.header(text, "T", False, False)
    assert new is None or "broken <" in new  # never an exception
    assert any(line.startswith("rewrite: ") for line in lines)
    assert rw.header("To:\n", "T", True, True) is None
    assert rw.header("No colon here\n", "T", True, True) is None


def test_a_huge_header_is_handled_quickly(config: Config) -> None:
    rw, _ = rewriter(config)
    count = 5000
    text = "To: " + ",\n ".join(f"u{i}@old.example" for i in range(count)) + "\n"
    started = time.monotonic()
    new = rw.header(text, "T", False, False)
    assert time.monotonic() - started < 10
    assert new is not None and new.count("@new.example") == count and "@old.example" not in new


def test_reception_marks_the_old_header_and_records_envelope_changes(config: Config) -> None:
    from pyxim.expand.context import ExpansionContext

    headers = [SpoolHeader.of("To: a@old.example, bob\n"), SpoolHeader.of("Subject: x\n")]
    recipients = [Recipient("r@env.example")]
    sender, records = rewrite_reception(
        config,
        ExpansionContext(config=config),
        "s@env.example",
        recipients,
        headers,
        allow_unqualified_sender=True,
        allow_unqualified_recipient=True,
    )
    assert sender == "s@env-new.example" and recipients[0].address == "r@env-new.example"
    assert [(h.type, h.text) for h in headers] == [
        ("*", "To: a@old.example, bob\n"),
        ("T", "To: a@new.example, bob@example.org\n"),
        (" ", "Subject: x\n"),
    ]
    assert [r.text for r in records] == [
        "X-rewrote-original-recipient: r@env.example\n",
        "X-rewrote-sender: s@env.example\n",
    ]


def test_smtp_rules_keep_esmtp_parameters(config: Config) -> None:
    from pyxim.expand.context import ExpansionContext

    ctx = ExpansionContext(config=config)
    assert smtp_command(config, ctx, "<smtp-a@b.example> SIZE=10") == "<a@b.example> SIZE=10"
    assert smtp_command(config, ctx, "<other@b.example>") == "<other@b.example>"


def test_transport_rules_leave_the_spool_alone(config: Config) -> None:
    from pyxim.expand.context import ExpansionContext

    rewrite = transport_rewriter(
        "*@old.example $local_part@t.example", config, ExpansionContext(config=config)
    )
    assert rewrite is not None
    h = SpoolHeader.of("Cc: x@old.example\n")
    assert rewrite(h) == "Cc: x@t.example\n" and h.text == "Cc: x@old.example\n"
    assert transport_rewriter("", config, ExpansionContext(config=config)) is None


def test_brw_without_rules(tmp_path: Path) -> None:
    path = tmp_path / "none.conf"
    path.write_text("primary_hostname = a.example\n")
    out: list[str] = []
    rewrite_test(load_config(str(path), {}), "x@y", out.append)
    assert out == ["No rewrite rules are defined\n"]


def test_routed_domain_rewrite() -> None:
    from pyxim.rewrite import rewrite_routed_domain

    headers = [SpoolHeader.of("To: a@foo, b@Foo, c@bar\n"), SpoolHeader.of("Subject: a@foo\n")]
    out = rewrite_routed_domain(headers, "foo", "foo.example.com")
    assert [(h.type, h.text) for h in out] == [
        ("*", "To: a@foo, b@Foo, c@bar\n"),
        ("T", "To: a@foo.example.com, b@foo.example.com, \n\tc@bar\n"),  # Exim's fold past 40 characters
        (" ", "Subject: a@foo\n"),
    ]
    assert headers[0].type == "T"  # the caller's list is left as it was

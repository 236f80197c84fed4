"""Variables, header variables and the message model, with a clock the tests control."""

from __future__ import annotations

import os
import time

import pytest

from pyxim.errors import ExpansionError
from pyxim.expand import ExpansionContext, expand_string, is_tainted
from pyxim.expand.message import Message

WHEN = 1_795_536_185.062798  # 2026-11-24 16:03:05.062798 UTC


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()


def x(text: str, **kw: object) -> str:
    return expand_string(text, ExpansionContext(now=lambda: WHEN, **kw))  # type: ignore[arg-type]


def test_time_of_day_variables() -> None:
    assert x("$tod_full") == "Tue, 24 Nov 2026 16:03:05 +0000"
    assert x("$tod_log") == "2026-11-24 16:03:05"
    assert x("$tod_logfile") == "20261124"
    assert x("$tod_zone") == "+0000"
    assert x("$tod_zulu") == "20261124160305Z"
    assert x("$tod_bsdinbox") == "Tue Nov 24 16:03:05 2026"
    assert x("$tod_epoch") == "1795536185"
    assert x("$tod_epoch_l") == "1795536185062798"


def test_known_unset_and_unknown_variables() -> None:
    assert x("[$sender_host_address]") == "[]"
    assert x("$recipients_count") == "0"
    assert x("$proxy_session") == "no"
    assert x("$acl_m_anything$acl_c9") == ""
    with pytest.raises(ExpansionError, match='unknown variable name "acl_mx" \\(6th character'):
        x("$acl_mx")
    with pytest.raises(ExpansionError, match='unknown variable in "\\${nosuch}"'):
        x("${nosuch}")


def test_values_from_the_caller_and_old_names() -> None:
    ctx = ExpansionContext(variables={"proxy_local_address": "10.0.0.1", "tls_in_sni": "mx.example"})
    assert expand_string("$proxy_host_address $tls_sni", ctx) == "10.0.0.1 mx.example"
    ctx.acl_vars["acl_m_x"] = "set"
    assert expand_string("$acl_m_x", ctx) == "set"


def test_pyxim_specific_variables_exist() -> None:
    # Debian's Exim build lacks DMARC and ARC; pyxim knows their variables.
    assert x("[$dmarc_status][$arc_state][$dmarc_domain_policy][$tpda_delivery_ip]") == "[][][][]"


def test_exim_version_is_the_compatibility_level() -> None:
    assert x("$exim_version") == "4.96"
    assert x("$pid") == str(os.getpid())


MSG = (
    b"Subject: =?utf-8?Q?caf=C3=A9?=\n"
    b"To: a@example.org\n"
    b"To: b@example.org\n"
    b"X-Note: one\n"
    b"X-Note: two\n"
    b"\n"
    b"line one\n"
    b"line two\n"
)


def test_header_variables() -> None:
    ctx = ExpansionContext(message=Message.from_bytes(MSG))
    assert expand_string("$h_subject:", ctx) == "café"
    assert expand_string("$rh_subject:", ctx) == " =?utf-8?Q?caf=C3=A9?=\n"
    assert expand_string("$h_to:", ctx) == "a@example.org,\nb@example.org"
    assert expand_string("$h_x-note:", ctx) == "one\ntwo"
    assert expand_string("$lh_x-note:", ctx) == " one: two"
    assert expand_string("${if def:h_x-note:{y}{n}}${if def:h_cc:{y}{n}}", ctx) == "yn"
    assert is_tainted(expand_string("$h_subject:", ctx))
    assert expand_string("$message_body", ctx) == "line one line two "
    assert expand_string("$body_linecount", ctx) == "2"

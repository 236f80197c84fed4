"""The Message model and the -bem loader.

The loader's results were compared with exim4 -bem on the same files (see
tests/interop/test_bem.py); here each rule is pinned down on its own, with a
fixed clock for the headers and ids Exim makes up.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from pyxim.config import load_config
from pyxim.config.model import Config
from pyxim.expand import ExpansionContext, expand_string, is_tainted
from pyxim.expand import variables as V
from pyxim.expand.message import HeaderLine, Message, header_type, load_bem_message, qualify_header, read_bem
from pyxim.spool.ids import id_time, is_message_id

WHEN = 1_795_536_185.25  # Tue 2026-11-24 16:03:05.25 UTC


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


# -- header lines ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "letter"),
    [
        ("Received: from x\n", "P"),
        ("From: a@b\n", "F"),
        ("TO: a@b\n", "T"),
        ("Cc : a@b\n", "C"),
        ("Bcc: a@b\n", "B"),
        ("Reply-To: a@b\n", "R"),
        ("Sender: a@b\n", "S"),
        ("Message-ID: <x@y>\n", "I"),
        ("Resent-To: a@b\n", "T"),
        ("resent-from: a@b\n", "F"),
        ("Resent-Message-Id: <x@y>\n", "I"),
        ("Resent-Reply-To: a@b\n", " "),
        ("Subject: hi\n", " "),
        ("Date: today\n", " "),
    ],
)
def test_header_types(text: str, letter: str) -> None:
    assert header_type(text) == letter
    assert HeaderLine(text.split(":")[0], text).type == letter


def test_header_names_match_up_to_the_colon() -> None:
    line = HeaderLine("X-Sp ", "X-Sp : value\n")
    assert not line.is_named("x-sp")
    assert HeaderLine("Subject", "SUBJECT: x\n").is_named("subject")
    assert not HeaderLine("Subject", "Subject: x\n").is_named("subj")


def test_generic_parse_and_sizes() -> None:
    m = Message.from_bytes(b"Subject: a\r\n  b\r\nX: 1\r\n\r\nbody\r\nline\n")
    assert [h.raw for h in m.headers] == ["Subject: a\n  b\n", "X: 1\n"]
    assert m.body == "body\nline\n"
    assert (m.size, m.body_size, m.body_linecount, m.linecount) == (31, 10, 2, 6)
    assert Message.from_bytes(b"not a header\nSubject: x\n").body == "not a header\nSubject: x\n"


def test_body_visible_counts_bytes() -> None:
    m = Message([], "é\0x\nyz\n")
    assert m.body_visible(3) == "é "  # two bytes of é, then the zero as a space
    assert m.body_visible(4, from_end=True) == " yz "
    assert m.body_visible(4, from_end=True, keep_newlines=True) == "\nyz\n"


# -- reading like exim -bem ----------------------------------------------------------------


def test_dot_ends_the_message_and_dots_are_not_unstuffed() -> None:
    r = read_bem(b"Subject: s\n\na\n..b\n.\nc\n")
    assert r.body == b"a\n..b\n"
    assert (r.size, r.linecount, r.body_linecount) == (18, 4, 2)
    assert read_bem(b"Subject: s\n\na\n..b\n.\nc\n", dot_ends=False).body == b"a\n..b\n.\nc\n"
    assert read_bem(b"Subject: s\n.\r\nbody\n").body == b""  # in the header part ".\r\n" ends it too
    assert read_bem(b"Subject: s\n\na\r\n.\r\nb\n").body == b"a\r\n.\r\nb\n"  # in the body it does not


def test_crlf_in_headers_becomes_lf_but_the_body_is_kept() -> None:
    r = read_bem(b"Subject: s\r\nX-A: 1\r\n\r\nline\r\nbare\rcr\r\n")
    assert r.headers == [b"Subject: s\n", b"X-A: 1\n"]
    assert r.body == b"line\r\nbare\rcr\r\n"
    assert (r.size, r.body_linecount) == (34, 2)


def test_empty_lines_are_not_counted_in_the_body() -> None:
    # Exim's -bem line counter skips empty lines; a last line without newline counts
    assert read_bem(b"Subject: s\n\na\n\n\nb\n\nc\n").body_linecount == 3
    assert read_bem(b"Subject: s\n\n\n\n").body_linecount == 0
    assert read_bem(b"Subject: s\n\nno newline").body_linecount == 1
    assert read_bem(b"Subject: s\n\n.\n").body_linecount == 1  # nothing read into the body: counted once
    assert read_bem(b"Subject: s\n\n").body_linecount == 0  # no body at all
    # the ring buffer for $message_body_end wrapped round exactly: one more
    assert read_bem(b"Subject: s\n\n" + b"a" * 500 + b"\n", visible=500).body_linecount == 2
    assert read_bem(b"Subject: s\n\na\n\nb\n", dot_ends=False).body_linecount == 3  # -oi: every newline


def test_a_first_line_that_is_not_a_header_is_lost() -> None:
    r = read_bem(b"not a header\n continued\nSubject: x\n\nbody\n")
    assert r.no_headers and r.headers == []
    assert r.body == b"Subject: x\n\nbody\n"
    assert (r.size, r.linecount, r.body_linecount) == (41, 4, 2)
    later = read_bem(b"Subject: s\nX: y\nno header here\nSubject: t\n\nbody\n")
    assert not later.no_headers and len(later.headers) == 2
    assert later.body == b"Subject: t\n\nbody\n"
    assert later.size == 48


def test_odd_files() -> None:
    empty = read_bem(b"")
    assert (empty.size, empty.linecount, empty.no_headers, empty.body) == (1, 1, True, b"")
    one = read_bem(b"Subject: no newline")
    assert (one.headers, one.size, one.linecount) == ([b"Subject: no newline\n"], 20, 1)
    assert read_bem(b"X-Sp : v\n:empty\n\n").headers == [b"X-Sp : v\n", b":empty\n"]
    zeros = read_bem(b"Subject: z\n\nab\0cd\n\0\n")
    assert (zeros.body_zerocount, zeros.body_linecount) == (2, 2)


# -- qualifying addresses -------------------------------------------------------------------


def test_qualify_header_as_exim_does() -> None:
    text = 'To: bob (Bob Smith), Group: a, "b c"@d, e;, <f>, g <h>,\n  i\n'
    assert qualify_header(text, "T", "sender.example", "example.org") == (
        "To: bob@example.org (Bob Smith), Group: a@example.org, \n"
        '\t"b c"@d, e@example.org;, <f@example.org>, \n'
        "\tg <h@example.org>,\n"
        "  i@example.org\n"
    )
    assert (
        qualify_header("From: alice (A)\n", "F", "sender.example", "x") == "From: alice@sender.example (A)\n"
    )
    for unchanged in ("Reply-To: <>\n", "Sender: a b c\n", "Bcc: x@\n", "Cc: undisclosed-recipients:;\n"):
        assert qualify_header(unchanged, header_type(unchanged), "s", "r") is None
    assert qualify_header("Subject: bob\n", " ", "s", "r") is None
    assert qualify_header("Resent-Reply-To: bob\n", " ", "s", "r") is None


# -- load_bem_message ------------------------------------------------------------------------


def conf(tmp_path: Path, text: str = "") -> Config:
    path = tmp_path / "test.conf"
    path.write_text("primary_hostname = mail.example.org\nqualify_domain = example.org\n" + text)
    return load_config(str(path))


def load(tmp_path: Path, data: bytes, text: str = "", **kw: object) -> tuple[ExpansionContext, list[str]]:
    path = tmp_path / "message"
    path.write_bytes(data)
    ctx = ExpansionContext(config=conf(tmp_path, text), now=lambda: WHEN)
    notices = load_bem_message(str(path), ctx, **kw)  # type: ignore[arg-type]
    return ctx, notices


def test_missing_headers_are_added(tmp_path: Path) -> None:
    ctx, notices = load(tmp_path, b"To: bob\n\nbody\n")
    assert notices == []
    assert ctx.message is not None
    raw = expand_string("$message_headers_raw", ctx)
    name = V.originator_name(ctx)
    login = V.caller_login()
    message_id = ctx.variables["message_exim_id"]
    assert is_message_id(message_id) and id_time(message_id) == int(WHEN)
    from_line = f"From: {name} <{login}@example.org>" if name else f"From: {login}@example.org"
    assert raw == (
        "To: bob@example.org\n"
        f"Message-Id: <E{message_id}@mail.example.org>\n"
        f"{from_line}\n"
        "Date: Tue, 24 Nov 2026 16:03:05 +0000\n"
    )
    assert expand_string("$message_id $received_time $message_age $received_count", ctx) == (
        f"{message_id} {int(WHEN)} 0 1"
    )
    assert (
        expand_string("$message_size/$message_body_size/$message_linecount/$body_linecount", ctx)
        == "14/5/3/1"
    )
    assert expand_string("[$message_body]", ctx) == "[body ]"
    assert is_tainted(expand_string("$message_body", ctx))


def test_message_id_options(tmp_path: Path) -> None:
    text = "message_id_header_domain = ids.example\nmessage_id_header_text = x y\n"
    ctx, _ = load(tmp_path, b"Subject: s\n\n", text)
    message_id = ctx.variables["message_id"]
    assert expand_string("$h_message-id:", ctx) == f"<E{message_id}.x-y@ids.example>"


def test_present_headers_are_not_added(tmp_path: Path) -> None:
    ctx, _ = load(tmp_path, b"message-id:\nDATE: x\nFrom: a@b\n\n")
    assert expand_string("$message_headers_raw", ctx) == "message-id:\nDATE: x\nFrom: a@b\n"


def test_resent_headers(tmp_path: Path) -> None:
    ctx, _ = load(tmp_path, b"Subject: r\nResent-To: x@example.org\nMessage-ID: <m@x>\n\nb\n")
    names = [h.name for h in ctx.message.visible_headers]  # type: ignore[union-attr]
    assert names == ["Resent-Date", "Resent-Message-Id", "Subject", "Resent-To", "Message-ID", "Resent-From"]


def test_uucp_from_line(tmp_path: Path) -> None:
    data = b"From someone@example.net Mon Jan  5 10:00:00 2026\nSubject: uucp\n\nbody\n"
    ctx, notices = load(tmp_path, data)
    assert notices == ['Sender taken from "From " line']
    assert (
        expand_string("$sender_address|$h_from:|$message_size", ctx)
        == "someone@example.net|someone@example.net|70"
    )
    assert is_tainted(ctx.variables["sender_address"])


def test_no_headers_notice(tmp_path: Path) -> None:
    _, notices = load(tmp_path, b"not a header\n\nbody\n")
    assert notices == ["Warning: no message headers read"]


def test_sender_given_with_f(tmp_path: Path) -> None:
    ctx, _ = load(tmp_path, b"Subject: s\n\n", sender="someone@example.net")
    assert expand_string("$h_from: $sender_address", ctx) == "someone@example.net someone@example.net"


def test_full_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx, _ = load(tmp_path, b"Subject: s\n\n", full_name="Ann O. Nymous")
    assert expand_string("$h_from:", ctx) == f'"Ann O. Nymous" <{V.caller_login()}@example.org>'
    monkeypatch.setattr(
        V.pwd, "getpwuid", lambda uid: type("P", (), {"pw_gecos": "& Smith,Room 1", "pw_name": "jo"})
    )
    assert V.originator_name(None) == "Jo Smith,Room 1"
    config = conf(tmp_path, "gecos_pattern = ^([^,]*)\ngecos_name = $1\n")
    assert V.originator_name(ExpansionContext(config=config)) == "Jo Smith"


def test_untrusted_callers_lose_their_sender_headers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # checked with exim4 -bem run as "nobody"
    monkeypatch.setattr(V, "caller_is_trusted", lambda ctx: False)
    monkeypatch.setattr(V, "caller_login", lambda: "joe")
    monkeypatch.setattr(V, "originator_name", lambda ctx: "Joe Bloggs")
    ctx, _ = load(tmp_path, b"From: boss@example.org\nSender: fake@example.org\n\n")
    assert expand_string("[$h_sender:][$h_from:]", ctx) == "[][boss@example.org]"
    kept, _ = load(tmp_path, b"Sender: fake@example.org\n\n", "local_sender_retain\nno_local_from_check\n")
    assert expand_string("[$h_sender:][$h_from:]", kept) == "[fake@example.org][Joe Bloggs <joe@example.org>]"
    # -bem takes the sender from a "From " line whoever calls
    uucp, notices = load(tmp_path, b"From ann Mon Jan  5 10:00:00 2026\nSubject: x\n\n")
    assert notices == ['Sender taken from "From " line']
    assert expand_string("$h_from: $sender_address", uucp) == "ann@example.org ann@example.org"


def test_header_variables_after_loading(tmp_path: Path) -> None:
    ctx, _ = load(tmp_path, b"To: a, b@x\nTo: c\nX: =?utf-8?q?caf=C3=A9?=\n\n")
    assert expand_string("$h_to:", ctx) == "a@example.org, b@x,\nc@example.org"
    assert expand_string("$h_x: $rh_x:", ctx) == "café  =?utf-8?q?caf=C3=A9?=\n"
    # the lines that were qualified are kept, marked, but never seen
    assert [h.type for h in ctx.message.headers][:4] == ["*", "T", "*", "T"]  # type: ignore[union-attr]


def test_message_ids_in_order(tmp_path: Path) -> None:
    ctx, _ = load(tmp_path, b"Subject: s\n\n")
    assert re.fullmatch(r"[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}", ctx.variables["message_exim_id"])

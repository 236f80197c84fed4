"""transport_write_message (pyxim.delivery.write) and the pipe transport's command splitting."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pyxim.config import load_config
from pyxim.delivery import TransportCall
from pyxim.delivery.write import (
    TransportWriteError,
    WriteSpec,
    header_removed,
    parse_size,
    spec_for,
    transport_message,
    write_message,
)
from pyxim.expand.context import ExpansionContext
from pyxim.expand.taint import Tainted
from pyxim.spool.format import Recipient, SpoolHeader, SpoolMessage
from pyxim.transports.pipe import split_command

RECEIVED = (
    "Received: from root by oracle.example with local (Exim 4.96)\n"
    "\t(envelope-from <sender@x.example>)\n"
    "\tid 1xYnKZ-0006nO-1k\n"
    "\tfor mbox1@local.example;\n"
    "\tWed, 02 Dec 2026 16:37:19 +0000\n"
)
HEADERS = [
    RECEIVED,
    "From: A <a@x.example>\n",
    "To: mbox1@local.example\n",
    "Subject: hi\n",
    "X-Remove-Me: 1\n",
    "X-Keep: 2\n",
    "Message-Id: <abc@x.example>\n",
    "Date: Wed, 02 Dec 2026 16:37:19 +0000\n",
]
BODY = b"From the start\nline two\n>From escaped already\n\nFrom again\n.\nend\n"

# What Exim 4.96 wrote (appendfile, file=, return_path_add, envelope_to_add,
# delivery_date_add, headers_add = X-Added: yes $local_part\nX-Second: two,
# headers_remove = X-Rem*:Subject) for this message, sent with
# `exim4 -C conf -odi -oi -f sender@x.example mbox1@local.example`.
EXIM_MBOX = (
    b"From sender@x.example Wed Dec 02 16:37:19 2026\n"
    b"Return-path: <sender@x.example>\n"
    b"Envelope-to: mbox1@local.example\n"
    b"Delivery-date: Wed, 02 Dec 2026 16:37:19 +0000\n" + RECEIVED.encode() + b"From: A <a@x.example>\n"
    b"To: mbox1@local.example\n"
    b"X-Keep: 2\n"
    b"Message-Id: <abc@x.example>\n"
    b"Date: Wed, 02 Dec 2026 16:37:19 +0000\n"
    b"X-Added: yes mbox1\n"
    b"X-Second: two\n"
    b"\n"
    b">From the start\n"
    b"line two\n"
    b">From escaped already\n"
    b"\n"
    b">From again\n"
    b".\n"
    b"end\n"
    b"\n"
)


def headers(texts: list[str] = HEADERS) -> list[SpoolHeader]:
    return [SpoolHeader.of(t) for t in texts]


def mask_dates(data: bytes) -> bytes:
    data = re.sub(rb"^(From \S+) .*$", rb"\1 DATE", data, flags=re.M)
    return re.sub(rb"^Delivery-date: .*$", b"Delivery-date: DATE", data, flags=re.M)


def make_call(tmp_path: Path, transport_text: str, sender: str = "sender@x.example") -> TransportCall:
    conf = tmp_path / "exim.conf"
    conf.write_text("primary_hostname = oracle.example\nbegin transports\nt:\n" + transport_text)
    config = load_config(str(conf))
    tp = config.transports[0]
    message = SpoolMessage(
        "1xYnKZ-0006nO-1k", sender, [Recipient("mbox1@local.example")], headers(), 1796229439.0
    )
    ctx = ExpansionContext(
        config=config,
        variables={
            "local_part": Tainted("mbox1"),
            "domain": Tainted("local.example"),
            "return_path": Tainted(sender),
            "sender_address": Tainted(sender),
            "message_exim_id": "1xYnKZ-0006nO-1k",
        },
        now=lambda: 1796229439.0,
    )
    return TransportCall(config, tp, message, BODY, "mbox1@local.example", "mbox1@local.example", ctx)


def test_same_bytes_as_exim_for_an_mbox_delivery(tmp_path: Path) -> None:
    call = make_call(
        tmp_path,
        "  driver = appendfile\n  file = /tmp/never-written\n  return_path_add\n  envelope_to_add\n"
        "  delivery_date_add\n  headers_add = X-Added: yes $local_part\\nX-Second: two\n"
        "  headers_remove = X-Rem*:Subject\n",
    )
    assert mask_dates(transport_message(call)) == mask_dates(EXIM_MBOX)


def test_bounce_gets_mailer_daemon_and_empty_return_path(tmp_path: Path) -> None:
    call = make_call(tmp_path, "  driver = appendfile\n  file = /tmp/x\n  return_path_add\n", sender="")
    data = transport_message(call)
    assert data.startswith(b"From MAILER-DAEMON ")
    assert data.split(b"\n")[1] == b"Return-path: <>"


def test_return_path_option_replaces_the_sender(tmp_path: Path) -> None:
    call = make_call(
        tmp_path,
        "  driver = appendfile\n  file = /tmp/x\n  return_path_add\n  return_path = bounces+$local_part@x.example\n",
    )
    data = transport_message(call)
    assert data.startswith(b"From bounces+mbox1@x.example ")
    assert b"\nReturn-path: <bounces+mbox1@x.example>\n" in data


def test_deleted_headers_are_not_written() -> None:
    hs = headers(["Subject: a\n", "Bcc: secret@x\n", "To: b@c\n"])
    hs[1].type = "*"
    assert write_message(hs, b"body\n", WriteSpec()) == b"Subject: a\nTo: b@c\n\nbody\n"


def test_headers_remove_names_and_wildcards() -> None:
    assert header_removed("Subject: x\n", ["subject"])
    assert header_removed("Subject  : x\n", ["Subject"])
    assert not header_removed("Subjects: x\n", ["Subject"])
    assert header_removed("X-Spam-Score: 1\n", ["x-spam-*"])
    assert not header_removed("X-Ham: 1\n", ["x-spam-*"])
    assert not header_removed("Subject: x\n", [""])


def test_headers_add_order_and_newlines() -> None:
    spec = WriteSpec(headers_add=["X-A: 1", "X-B: 2\nX-C: 3\n", ""])
    assert write_message(headers(["To: a@b\n"]), b"", spec) == b"To: a@b\nX-A: 1\nX-B: 2\nX-C: 3\n\n"


def test_added_lines_order_and_envelope_to_list() -> None:
    spec = WriteSpec(return_path="s@x", envelope_to=["a@b", "c@d", "a@b"], delivery_date="DATE")
    out = write_message(headers(["To: a@b\n"]), b"x\n", spec)
    assert out == b"Return-path: <s@x>\nEnvelope-to: a@b,\n c@d\nDelivery-date: DATE\nTo: a@b\n\nx\n"


def test_escaping_applies_to_body_lines_only_by_default() -> None:
    spec = WriteSpec(check_string="From ", escape_string=">From ")
    out = write_message(headers(["From : odd header\n"]), b"From a\nxFrom b\nFrom c", spec)
    assert out == b"From : odd header\n\n>From a\nxFrom b\n>From c"
    spec.escape_headers = True
    out = write_message(headers(["From x\n"]), b"", spec)
    assert out == b">From x\n\n"


def test_dot_stuffing_and_crlf() -> None:
    spec = WriteSpec(check_string=".", escape_string="..", use_crlf=True)
    out = write_message(headers(["To: a@b\n"]), b".\n..x\nok\n", spec)
    assert out == b"To: a@b\r\n\r\n..\r\n...x\r\nok\r\n"


def test_check_string_without_escape_string_does_nothing() -> None:
    out = write_message([], b"From x\n", WriteSpec(check_string="From ", body_only=True))
    assert out == b"From x\n"


def test_body_only_and_headers_only() -> None:
    hs = headers(["To: a@b\n"])
    spec = WriteSpec(body_only=True, return_path="s@x", check_string="From ", escape_string=">From ")
    assert write_message(hs, b"From me\n", spec) == b">From me\n"
    assert write_message(hs, b"body\n", WriteSpec(headers_only=True)) == b"To: a@b\n\n"


def test_bytes_survive_unchanged() -> None:
    raw = "Subject: caf\udce9 \u00e9\n"  # a Latin-1 byte kept by surrogateescape, and real UTF-8
    out = write_message([SpoolHeader.of(raw)], b"\xff\xfe\n", WriteSpec())
    assert out == b"Subject: caf\xe9 \xc3\xa9\n\n\xff\xfe\n"


def test_headers_expansion_failure_is_reported(tmp_path: Path) -> None:
    call = make_call(tmp_path, "  driver = appendfile\n  file = /tmp/x\n  headers_add = X-A: ${if bad}\n")
    with pytest.raises(TransportWriteError) as info:
        spec_for(call)
    assert info.value.what == "headers"


def test_forced_failure_in_headers_add_adds_nothing(tmp_path: Path) -> None:
    call = make_call(
        tmp_path, "  driver = appendfile\n  file = /tmp/x\n  headers_add = ${if eq{1}{2}{X-A: 1}fail}\n"
    )
    assert spec_for(call).headers_add == []


def test_pipe_defaults_give_a_from_line_but_no_escaping(tmp_path: Path) -> None:
    call = make_call(tmp_path, "  driver = pipe\n  command = /bin/cat\n")
    data = transport_message(call)
    assert data.startswith(b"From sender@x.example ")
    assert b"\nFrom the start\n" in data and data.endswith(b"end\n\n")


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("1000", 1000),
        ("10K", 10240),
        ("10M", 10485760),
        ("1.5G", 1610612736),
        (" 7 ", 7),
        ("x", None),
        ("", None),
    ],
)
def test_parse_size(text: str, size: int | None) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize(
    ("cmd", "argv"),
    [
        ("/bin/cmd a  b\tc", ["/bin/cmd", "a", "b", "c"]),
        ("  /bin/cmd 'a b' \"c d\"  ", ["/bin/cmd", "a b", "c d"]),
        ('/bin/sh -c "kill -9 \\$\\$"', ["/bin/sh", "-c", "kill -9 $$"]),
        ("/x 'no \\escape'", ["/x", "no \\escape"]),
        ('/x "tab\\there" "q\\"uote" "\\101"', ["/x", "tab\there", 'q"uote', "A"]),
        ('/x "a"b', ["/x", "a", "b"]),
        ('/x ab"c d"', ["/x", 'ab"c', 'd"']),
        ("/x $local_part", ["/x", "$local_part"]),
        ("", []),
    ],
)
def test_pipe_command_splitting(cmd: str, argv: list[str]) -> None:
    assert split_command(cmd) == argv

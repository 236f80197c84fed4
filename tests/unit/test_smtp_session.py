"""The SMTP session and reader, driven without sockets: hostile and awkward input."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from pyxim.config import load_config
from pyxim.smtp.protocol import MessageData, SmtpReader
from pyxim.smtp.session import Peer, SmtpSession
from pyxim.spool.ids import MessageIdGenerator

CONF = """\
primary_hostname = mail.example.org
domainlist local_domains = example.org
acl_smtp_rcpt = check
begin acl
check:
  accept domains = +local_domains
"""


def session(tmp_path: Path, stored: list | None = None) -> SmtpSession:
    (tmp_path / "c.conf").write_text(CONF)
    config = load_config(str(tmp_path / "c.conf"))

    def store(message, body):  # type: ignore[no-untyped-def]
        if stored is not None:
            stored.append((message, body))
        return message.message_id

    return SmtpSession(config, Peer("127.0.0.1", 4000), store, MessageIdGenerator().new_id)


def talk(s: SmtpSession, data: bytes) -> str:
    return "".join(s.feed(data).replies)


def test_smuggling_attempts_do_not_end_the_message(tmp_path: Path) -> None:
    stored: list = []
    s = session(tmp_path, stored)
    s.greeting()
    talk(s, b"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<x@example.org>\r\nDATA\r\n")
    reply = talk(s, b"Subject: s\r\n\r\nbody\n.\nMAIL FROM:<evil@x>\r\nfoo\r.\r\nbar\r\n.\r\n")
    assert reply.startswith("250 OK id=")
    assert len(stored) == 1
    body = stored[0][1]
    assert b"MAIL FROM:<evil@x>" in body  # the smuggled command stayed inside the message


def test_dot_unstuffing_and_pipelined_commands(tmp_path: Path) -> None:
    stored: list = []
    s = session(tmp_path, stored)
    s.greeting()
    reply = talk(
        s,
        b"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<x@example.org>\r\nDATA\r\nSubject: s\r\n\r\n..dot\r\n.\r\nQUIT\r\n",
    )
    assert reply.count("250 OK id=") == 1 and reply.endswith("221 mail.example.org closing connection\r\n")
    assert stored[0][1] == b".dot\n"


def test_broken_chunking_needs_rset(tmp_path: Path) -> None:
    s = session(tmp_path)
    s.greeting()
    talk(s, b"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<x@example.org>\r\nBDAT 3\r\nabc")
    assert talk(s, b"NOOP\r\n").startswith("250 OK")
    assert talk(s, b"MAIL FROM:<a@b>\r\n").startswith("503 only BDAT permissible after non-LAST BDAT")
    assert talk(s, b"BDAT 0 LAST\r\n").startswith("503 only RSET accepted now")
    assert talk(s, b"RSET\r\n") == "250 Reset OK\r\n"
    assert talk(s, b"MAIL FROM:<a@b>\r\n") == "250 OK\r\n"


def test_overlong_command_line(tmp_path: Path) -> None:
    s = session(tmp_path)
    s.greeting()
    assert talk(s, b"HELO " + b"x" * 20000 + b"\r\n").startswith("500 Command line too long")


def test_message_size_limit(tmp_path: Path) -> None:
    (tmp_path / "c.conf").write_text(CONF.replace("primary_hostname", "message_size_limit = 1K\nprimary_hostname"))
    config = load_config(str(tmp_path / "c.conf"))
    s = SmtpSession(config, Peer("127.0.0.1", 1), lambda m, b: m.message_id, MessageIdGenerator().new_id)
    s.greeting()
    assert "552" in talk(s, b"EHLO c\r\nMAIL FROM:<a@b> SIZE=5000\r\n")
    talk(s, b"MAIL FROM:<a@b>\r\nRCPT TO:<x@example.org>\r\nDATA\r\n")
    assert talk(s, b"x" * 3000 + b"\r\n.\r\n").startswith("552 Message size exceeds maximum permitted")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_reader_survives_garbage(data: bytes) -> None:
    reader = SmtpReader()
    reader.feed(data)
    for _ in range(1000):
        event = reader.next_event()
        if event is None:
            break
        if isinstance(event, MessageData):
            break


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([b"EHLO c\r\n", b"MAIL FROM:<a@b>\r\n", b"RCPT TO:<x@example.org>\r\n", b"DATA\r\n",
                                 b".\r\n", b"BDAT 2\r\n", b"BDAT 0 LAST\r\n", b"RSET\r\n", b"\x00\xff\r\n", b"\n",
                                 b"RCPT TO:<>\r\n", b"HELO\r\n", b"x" * 50]), max_size=30))
def test_session_survives_any_command_sequence(tmp_path_factory, chunks) -> None:  # type: ignore[no-untyped-def]
    s = session(tmp_path_factory.mktemp("s"))
    s.greeting()
    for chunk in chunks:
        out = s.feed(chunk)
        for reply in out.replies:
            assert reply[:3].isdigit() and reply.endswith("\r\n")
        if out.close:
            break


def test_synchronization_is_enforced_on_tcp_sessions(tmp_path: Path) -> None:
    s = session(tmp_path)
    s.enforce_sync = True
    s.greeting()
    out = s.feed(b"EHLO c\r\nMAIL FROM:<a@b>\r\n")
    assert out.replies == ["554 SMTP synchronization error\r\n"] and out.close
    # after EHLO with PIPELINING, MAIL and RCPT may be sent together
    s = session(tmp_path)
    s.enforce_sync = True
    s.greeting()
    assert s.feed(b"EHLO c\r\n").replies[0].startswith("250-")
    out = s.feed(b"MAIL FROM:<a@b>\r\nRCPT TO:<x@example.org>\r\nDATA\r\n")
    assert "".join(out.replies) == "250 OK\r\n250 Accepted\r\n354 Enter message, ending with \".\" on a line by itself\r\n"
    # after HELO (no PIPELINING), they may not
    s = session(tmp_path)
    s.enforce_sync = True
    s.greeting()
    s.feed(b"HELO c\r\n")
    out = s.feed(b"MAIL FROM:<a@b>\r\nRCPT TO:<x@example.org>\r\n")
    assert out.replies[-1] == "554 SMTP synchronization error\r\n" and out.close


def test_messages_per_connection_limit(tmp_path: Path) -> None:
    (tmp_path / "c.conf").write_text(CONF.replace("primary_hostname", "smtp_accept_max_per_connection = 1\nprimary_hostname"))
    config = load_config(str(tmp_path / "c.conf"))
    s = SmtpSession(config, Peer("127.0.0.1", 1), lambda m, b: m.message_id, MessageIdGenerator().new_id)
    s.greeting()
    reply = talk(s, b"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<x@example.org>\r\nDATA\r\nSubject: 1\r\n\r\nx\r\n.\r\n")
    assert "250 OK id=" in reply
    assert talk(s, b"MAIL FROM:<a@b>\r\n") == "421 too many messages in this connection\r\n"
    assert talk(s, b"QUIT\r\n").startswith("221")


def test_notquit_acl_sees_why(tmp_path: Path) -> None:
    (tmp_path / "c.conf").write_text(
        CONF.replace("acl_smtp_rcpt = check", "acl_smtp_rcpt = check\nacl_smtp_notquit = gone")
        + "gone:\n  accept logwrite = gone because $smtp_notquit_reason\n"
    )
    config = load_config(str(tmp_path / "c.conf"))
    lines: list[str] = []
    s = SmtpSession(config, Peer("127.0.0.1", 1), lambda m, b: m.message_id, MessageIdGenerator().new_id, lines.append)
    s.greeting()
    s.feed(b"EHLO c\r\n")
    out = s.eof()
    assert out.close and out.replies == ["421 mail.example.org lost input connection\r\n"]
    assert lines == ["gone because connection-lost"]


def test_connection_controls(tmp_path: Path) -> None:
    (tmp_path / "c.conf").write_text(
        "primary_hostname = mail.example.org\nacl_smtp_connect = connect\nacl_smtp_rcpt = rcpt\n"
        "begin acl\nconnect:\n  accept control = no_pipelining\n         control = no_enforce_sync\n"
        "rcpt:\n  accept local_parts = ^other\n  accept control = caseful_local_part\n"
        "         condition = ${if eq{$local_part}{Mixed.Case}}\n"
    )
    config = load_config(str(tmp_path / "c.conf"))
    stored: list = []

    def store(message, body):  # type: ignore[no-untyped-def]
        stored.append(message)
        return message.message_id

    s = SmtpSession(config, Peer("127.0.0.1", 1), store, MessageIdGenerator().new_id)
    s.enforce_sync = True
    s.greeting()
    assert "PIPELINING" not in talk(s, b"EHLO c\r\n")
    # no_enforce_sync: commands sent together are accepted although pipelining was not offered
    reply = talk(s, b"MAIL FROM:<a@b>\r\nRCPT TO:<Mixed.Case@Example.ORG>\r\nRCPT TO:<Other@example.org>\r\n")
    assert reply == "250 OK\r\n250 Accepted\r\n250 Accepted\r\n"
    talk(s, b"DATA\r\n")
    talk(s, b"Subject: s\r\n\r\nx\r\n.\r\n")
    # $local_part was lower-cased for the ACL (^other matched "Other"), caseful_local_part restored it for
    # the rest of the ACL; the recipients keep the case the client used
    assert [r.address for r in stored[0].recipients] == ["Mixed.Case@Example.ORG", "Other@example.org"]

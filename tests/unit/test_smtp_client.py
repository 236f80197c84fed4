"""The sans-I/O SMTP client against scripted replies."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pyxim.smtp.client import (
    ClientAuth,
    ClientOptions,
    Envelope,
    RcptSpec,
    SmtpClient,
    parse_ehlo,
    printing,
    smtp_data,
)

EHLO = b"250-mx.example\r\n250-PIPELINING\r\n250-SIZE 1000000\r\n250-8BITMIME\r\n250-DSN\r\n250 STARTTLS\r\n"
MESSAGE = b"Subject: t\n\n.dot line\nbody\n"


def client(rcpts: tuple[str, ...] = ("a@b.example",), **kw: object) -> SmtpClient:
    env_kw = {k: kw.pop(k) for k in list(kw) if k in ("eight_bit", "size", "dsn_ret", "dsn_envid")}
    opts = ClientOptions(helo="me.example", chunking=False, **kw)  # type: ignore[arg-type]
    return SmtpClient(opts, Envelope("s@x.example", [RcptSpec(r) for r in rcpts], **env_kw), MESSAGE)  # type: ignore[arg-type]


def talk(c: SmtpClient, *replies: bytes) -> list[bytes]:
    """Feed replies one by one; return what the client sent after each."""
    sent = [c.data_to_send()]
    for r in replies:
        c.receive(r)
        sent.append(c.data_to_send())
    return sent


def test_pipelined_flight_and_confirmation() -> None:
    c = client(("a@b.example", "c@b.example"))
    sent = talk(c, b"220 mx ESMTP\r\n", EHLO, b"250 OK\r\n250 Accepted\r\n250 Accepted\r\n354 go\r\n",
                b"250 OK id=X\r\n")
    assert sent[0] == b""
    assert sent[1] == b"EHLO me.example\r\n"
    assert sent[2] == (b"MAIL FROM:<s@x.example> SIZE=1024\r\nRCPT TO:<a@b.example>\r\n"
                       b"RCPT TO:<c@b.example>\r\nDATA\r\n")
    assert sent[3] == b"Subject: t\r\n\r\n..dot line\r\nbody\r\n.\r\n"
    assert sent[4] == b"QUIT\r\n"
    assert c.done and [o.status for o in c.outcomes] == ["ok", "ok"]
    assert c.confirmation is not None and c.confirmation.text == "250 OK id=X"


def test_no_pipelining_sends_one_command_at_a_time() -> None:
    c = client(("a@b.example", "bad@b.example"), pipelining=False)
    sent = talk(c, b"220 mx\r\n", EHLO, b"250 OK\r\n", b"250 Accepted\r\n", b"550 5.1.1 unknown user\r\n",
                b"354 go\r\n", b"250 OK\r\n")
    assert sent[2] == b"MAIL FROM:<s@x.example> SIZE=1024\r\n"
    assert sent[3] == b"RCPT TO:<a@b.example>\r\n"
    assert sent[4] == b"RCPT TO:<bad@b.example>\r\n"
    assert sent[5] == b"DATA\r\n"
    assert c.outcomes[0].status == "ok"
    assert c.outcomes[1].status == "fail"
    assert c.outcomes[1].message == (
        "SMTP error from remote mail server after RCPT TO:<bad@b.example>: 550 5.1.1 unknown user")


def test_rcpt_4xx_defers_that_address_only() -> None:
    c = client(("a@b.example", "later@b.example"))
    talk(c, b"220 mx\r\n", EHLO, b"250 OK\r\n250 Accepted\r\n451 4.2.0 later\r\n354 go\r\n", b"250 OK\r\n")
    assert [o.status for o in c.outcomes] == ["ok", "defer"]
    assert c.outcomes[1].errno == -44


def test_helo_fallback_on_ehlo_5xx() -> None:
    c = client()
    sent = talk(c, b"220 mx\r\n", b"500 unrecognized\r\n", b"250 mx\r\n", b"250 OK\r\n")
    assert sent[2] == b"HELO me.example\r\n"
    assert sent[3] == b"MAIL FROM:<s@x.example>\r\n"  # no ESMTP: no SIZE, no pipelining
    assert c.helo_verb == "HELO"


def test_avoid_esmtp_uses_helo() -> None:
    c = client(esmtp=False)
    assert talk(c, b"220 mx\r\n")[1] == b"HELO me.example\r\n"


def test_ehlo_keywords() -> None:
    from pyxim.smtp.client import Reply

    f = parse_ehlo(Reply(250, ["250-mx", "250-SIZE 52428800", "250-8BITMIME", "250-SMTPUTF8", "250-CHUNKING",
                               "250-AUTH PLAIN LOGIN", "250-PRDR", "250-DSN", "250 PIPELINING"]))
    assert (f.size, f.eight_bit, f.smtputf8, f.chunking, f.auth, f.prdr, f.dsn, f.pipelining) == (
        52428800, True, True, True, ["PLAIN", "LOGIN"], True, True, True)
    assert not f.starttls


def test_8bitmime_and_dsn_parameters() -> None:
    c = SmtpClient(ClientOptions(helo="me"),
                   Envelope("s@x", [RcptSpec("a@b", "SUCCESS,DELAY", "rfc822;a@b")], size=10, eight_bit=True,
                            dsn_ret="HDRS", dsn_envid="E1"), b"x\n")
    sent = talk(c, b"220 mx\r\n", EHLO)
    assert sent[2].startswith(b"MAIL FROM:<s@x> SIZE=1034 BODY=8BITMIME RET=HDRS ENVID=E1\r\n"
                              b"RCPT TO:<a@b> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;a@b\r\n")


def test_data_4xx_is_a_host_error() -> None:
    c = client()
    talk(c, b"220 mx\r\n", EHLO, b"250 OK\r\n250 OK\r\n354 go\r\n", b"451 4.3.0 try again\r\n")
    assert c.outcomes[0].status == ""
    assert c.host_error is not None and c.host_error.status == "defer" and c.host_error.errno == -46
    assert c.host_error.message == "SMTP error from remote mail server after end of data: 451 4.3.0 try again"


def test_mail_5xx_fails_everyone_pipelined() -> None:
    c = client(("a@b", "c@b"))
    talk(c, b"220 mx\r\n", EHLO, b"550 5.7.1 no\r\n")
    assert [o.status for o in c.outcomes] == ["fail", "fail"]
    assert c.outcomes[0].message == "SMTP error from remote mail server after pipelined MAIL FROM:<s@x.example> " \
        "SIZE=1024: 550 5.7.1 no"


def test_multiline_reply_and_malformed_continuation() -> None:
    c = client()
    talk(c, b"220-mx\r\n220-still\r\n220 ready\r\n")
    assert c.greeting is not None and c.greeting.lines == ["220-mx", "220-still", "220 ready"]
    c = client()
    talk(c, b"220-mx\r\n250 ready\r\n")
    assert c.host_error is not None and c.host_error.errno == -19
    assert c.host_error.message == "Malformed SMTP reply in response to initial connection: 250 ready"


def test_garbage_overlong_and_close() -> None:
    c = client()
    talk(c, b"hello there\r\n")
    assert c.host_error is not None
    assert c.host_error.message == "Malformed SMTP reply in response to initial connection: hello there"
    c = client()
    talk(c, b"2" * 5000)
    assert c.host_error is not None and c.host_error.errno == -19
    c = client()
    talk(c, b"220 mx\r\n")
    c.connection_closed()
    assert c.host_error is not None
    assert c.host_error.message == "Remote host closed connection in response to EHLO me.example"
    c = client()
    talk(c, b"220 mx\r\n", EHLO)
    c.timed_out()
    assert c.host_error is not None and c.host_error.errno == 110
    assert c.host_error.message.startswith("SMTP timeout after pipelined MAIL FROM:<s@x.example>")


def test_greeting_5xx_fails_4xx_defers() -> None:
    c = client()
    assert talk(c, b"554 go away\r\n")[1] == b"QUIT\r\n"
    assert c.host_error is not None and c.host_error.status == "fail"
    c = client()
    talk(c, b"421 busy\r\n")
    assert c.host_error is not None and c.host_error.status == "defer"


def test_all_rcpts_refused_ends_data_with_a_dot() -> None:
    c = client()
    sent = talk(c, b"220 mx\r\n", EHLO, b"250 OK\r\n550 no\r\n354 go\r\n")
    assert sent[3] == b".\r\nQUIT\r\n"
    assert c.outcomes[0].status == "fail"


def test_starttls_then_ehlo_again() -> None:
    c = client(try_tls=True)
    sent = talk(c, b"220 mx\r\n", EHLO, b"220 go ahead\r\n")
    assert sent[2] == b"STARTTLS\r\n" and c.tls_wanted
    c.tls_started()
    assert c.data_to_send() == b"EHLO me.example\r\n"
    c.receive(EHLO)
    assert c.data_to_send().startswith(b"MAIL FROM:")


def test_require_tls_without_offer_defers() -> None:
    c = client(require_tls=True)
    talk(c, b"220 mx\r\n", b"250-mx\r\n250 PIPELINING\r\n")
    assert c.host_error is not None and c.host_error.errno == -38


def test_chunking_sends_bdat_without_dot_stuffing() -> None:
    c = SmtpClient(ClientOptions(helo="me"), Envelope("s@x", [RcptSpec("a@b")]), MESSAGE)
    sent = talk(c, b"220 mx\r\n", b"250-mx\r\n250-PIPELINING\r\n250 CHUNKING\r\n", b"250 OK\r\n250 OK\r\n",
                b"250 OK id=1\r\n")
    body = b"Subject: t\r\n\r\n.dot line\r\nbody\r\n"
    assert sent[2] == b"MAIL FROM:<s@x>\r\nRCPT TO:<a@b>\r\n"
    assert sent[3] == b"BDAT %d LAST\r\n" % len(body) + body
    assert c.used_chunking and c.outcomes[0].status == "ok"


def test_dot_stuffing_and_crlf() -> None:
    assert smtp_data(b".a\n..b\nc\r\nd") == b"..a\r\n...b\r\nc\r\nd\r\n"
    assert printing("a\nb\x01") == "a\\nb\\001"


def test_auth_plain_then_cram_md5_fallback() -> None:
    import base64
    import hmac

    plain = ClientAuth("pl", "PLAIN", [b"\0user\0wrong"])
    cram = ClientAuth("cr", "CRAM-MD5", cram_md5=("user", "secret"))
    c = client(authenticators=[plain, cram])
    sent = talk(c, b"220 mx\r\n", b"250-mx\r\n250 AUTH PLAIN CRAM-MD5\r\n", b"535 bad\r\n",
                b"334 " + base64.b64encode(b"<1.2@mx>") + b"\r\n", b"235 ok\r\n")
    assert sent[2] == b"AUTH PLAIN " + base64.b64encode(b"\0user\0wrong") + b"\r\n"
    assert sent[3] == b"AUTH CRAM-MD5\r\n"
    digest = hmac.new(b"secret", b"<1.2@mx>", "md5").hexdigest()
    assert sent[4] == base64.b64encode(f"user {digest}".encode()) + b"\r\n"
    assert sent[5] == b"MAIL FROM:<s@x.example>\r\n"
    assert c.auth_used is cram and c.auth_failures == [("pl", "535 bad")]


def test_auth_login_prompts_and_required_failure() -> None:
    login = ClientAuth("lo", "LOGIN", [b"", b"user", b"secret"])
    c = client(authenticators=[login], require_auth=True)
    sent = talk(c, b"220 mx\r\n", b"250-mx\r\n250 AUTH LOGIN\r\n", b"334 VXNlcm5hbWU6\r\n",
                b"334 UGFzc3dvcmQ6\r\n", b"535 no\r\n")
    assert sent[2:5] == [b"AUTH LOGIN\r\n", b"dXNlcg==\r\n", b"c2VjcmV0\r\n"]
    assert c.host_error is not None and c.host_error.errno == -42
    assert c.host_error.message == "authentication required but authentication attempt(s) failed"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=12), st.booleans())
def test_fuzz_replies_never_raise(chunks: list[bytes], pipelining: bool) -> None:
    c = client(("a@b", "c@d"), pipelining=pipelining, try_tls=True,
               authenticators=[ClientAuth("lo", "LOGIN", [b"", b"u"]), ClientAuth("cr", "CRAM-MD5", cram_md5=("u", "s"))])
    c.data_to_send()
    for chunk in chunks:
        c.receive(chunk)
        c.data_to_send()
        if c.tls_wanted:
            c.tls_started()
    c.connection_closed()
    assert c.done
    assert c.host_error is not None or all(o.status for o in c.outcomes)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([b"220 x\r\n", b"250 ok\r\n", b"250-x\r\n", b"354 go\r\n", b"451 no\r\n",
                                 b"550 no\r\n", b"250 PIPELINING\r\n", b"221 bye\r\n", b"\r\n", b"220 go\r\n",
                                 b"250-AUTH LOGIN CRAM-MD5\r\n", b"334 !!\r\n", b"334 VXNlcg==\r\n",
                                 b"250-STARTTLS\r\n", b"250-CHUNKING\r\n", b"235 ok\r\n"]),
                max_size=20))
def test_fuzz_plausible_replies(replies: list[bytes]) -> None:
    c = SmtpClient(ClientOptions(helo="me", try_tls=True, authenticators=[
        ClientAuth("lo", "LOGIN", [b"", b"u"]), ClientAuth("cr", "CRAM-MD5", cram_md5=("u", "s"))]),
        Envelope("s@x", [RcptSpec("a@b"), RcptSpec("c@d")]), MESSAGE)
    for r in replies:
        c.receive(r)
        c.data_to_send()
        if c.tls_wanted:
            c.tls_started()
    c.timed_out()
    assert c.done


def test_lmtp_one_reply_per_recipient_after_the_data() -> None:
    c = client(("a@b.example", "c@b.example", "d@b.example"), lmtp=True)
    sent = talk(c, b"220 lmtp\r\n", b"250-lmtp\r\n250 PIPELINING\r\n",
                b"250 OK\r\n250 Accepted\r\n550 no such user\r\n250 Accepted\r\n354 go\r\n",
                b"250 2.0.0 delivered to a\r\n", b"452 mailbox full\r\n")
    assert sent[1] == b"LHLO me.example\r\n"
    assert c.done
    assert [o.status for o in c.outcomes] == ["ok", "fail", "defer"]
    assert c.outcomes[2].message == "LMTP error after end of data: 452 mailbox full"


def test_callout_stops_after_rcpt() -> None:
    c = client(("a@b.example",), verify_only=True)
    sent = talk(c, b"220 mx\r\n", EHLO, b"250 OK\r\n250 Accepted\r\n")
    assert b"DATA" not in b"".join(sent) and sent[-1] == b"QUIT\r\n"
    assert c.done and c.outcomes[0].status == "ok"

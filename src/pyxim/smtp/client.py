"""The SMTP client as a sans-I/O state machine (Exim's smtp transport dialogue).

    client = SmtpClient(ClientOptions(helo="me.example"), Envelope(sender, [RcptSpec(a) …]), message)
    sock.sendall(client.data_to_send())        # nothing before the greeting
    client.receive(sock.recv(4096))             # feed reply bytes; repeat
    client.data_to_send()                        # commands (pipelined flights) / the message
    client.tls_wanted                            # STARTTLS accepted: do the handshake, then tls_started()
    client.done, client.outcomes, client.host_error

No sockets, no clock: the adapter (transports/smtp_delivery.py) reports
`timed_out()` and `connection_closed()`. Nothing a server sends makes it
raise: garbage, overlong lines, wrong codes and early closes become
outcomes worded as Exim words them ("Malformed SMTP reply in response to …",
"Remote host closed connection in response to …", "SMTP error from remote
mail server after …"). Misuse by the caller raises SmtpClientError.

Outcomes: `outcomes[i]` per recipient (status "ok", "defer", "fail", or
"" while unknown); `host_error` is set when the failure concerns the whole
connection (greeting, EHLO, MAIL, DATA, timeouts, closes): it applies to
every recipient without an outcome of its own.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections import deque
from dataclasses import dataclass, field

MAX_REPLY_LINE = 4096  # Exim's response buffer
MAX_REPLY_LINES = 200

# Exim's negative errno values (exim.h)
ERRNO_SMTPCLOSED = -18
ERRNO_SMTPFORMAT = -19
ERRNO_TLSFAILURE = -37
ERRNO_TLSREQUIRED = -38
ERRNO_AUTHFAIL = -42
ERRNO_RCPT4XX = -44
ERRNO_MAIL4XX = -45
ERRNO_DATA4XX = -46
ETIMEDOUT = 110

_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f", "\v": "\\v", "\x1b": "\\e"}


class SmtpClientError(Exception):
    """The caller used the client wrongly (never raised for anything a server sends)."""


def printing(text: str) -> str:
    """Exim's string_printing(): non-printing characters as C escapes or octal."""
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif " " <= ch <= "~" or ord(ch) > 0xFF:
            out.append(ch)
        else:
            out.append(f"\\{ord(ch) & 0xFF:03o}")
    return "".join(out)


@dataclass(slots=True)
class Reply:
    code: int
    lines: list[str]  # each whole line as received, code included, without the line end

    @property
    def text(self) -> str:
        """The reply as Exim quotes it in log lines and bounces (lines joined by newline)."""
        return "\n".join(self.lines)

    @property
    def kind(self) -> int:
        return self.code // 100


@dataclass(slots=True)
class RcptSpec:
    address: str
    notify: str = ""  # "NEVER" or a comma list of SUCCESS,FAILURE,DELAY; "" for none
    orcpt: str = ""  # ORCPT value, as received ("rfc822;a@b")


@dataclass(slots=True)
class Envelope:
    sender: str
    recipients: list[RcptSpec]
    size: int = 0  # the message size for SIZE= (before size_addition)
    eight_bit: bool = False
    dsn_ret: str = ""  # FULL / HDRS
    dsn_envid: str = ""
    smtputf8: bool = False


@dataclass(slots=True)
class ClientOptions:
    helo: str = "localhost"
    esmtp: bool = True  # False: hosts_avoid_esmtp matched (HELO only)
    pipelining: bool = True  # False: hosts_avoid_pipelining matched
    chunking: bool = True  # hosts_try_chunking matched
    try_tls: bool = False  # STARTTLS when offered (the adapter has a TLS stack)
    require_tls: bool = False  # hosts_require_tls
    max_rcpt: int = 100
    size_addition: int = 1024
    prdr: bool = False  # not yet used: PRDR is noted, never requested
    verify_only: bool = False  # a callout: MAIL and RCPT, then QUIT (no DATA)
    lmtp: bool = False  # RFC 2033: LHLO, and after the data one reply per accepted recipient
    authenticators: list[ClientAuth] = field(default_factory=list)  # hosts_try_auth/require_auth matched
    require_auth: bool = False  # hosts_require_auth
    # after a delivered message, RSET instead of QUIT: the connection is kept for another message
    # to the same host (Exim's continued delivery, "*" after the host in the log)
    keep_open: bool = False


@dataclass(slots=True)
class ClientAuth:
    """A client authenticator, reduced to data: `responses` are the plain (not yet
    base64) answers, the first sent with AUTH (None: no initial response) and one per
    334 challenge; `cram_md5` = (name, secret) computes the answer from the challenge."""

    name: str  # the instance name (A= in the log)
    public_name: str
    responses: list[bytes | None] = field(default_factory=list)
    cram_md5: tuple[str, str] | None = None
    set_id: str = ""  # client_set_id (A=name:id)


@dataclass(slots=True)
class Outcome:
    status: str = ""  # ok, defer, fail ("" not known yet)
    message: str = ""  # Exim's wording, for the log line
    errno: int = 0
    after: str = ""  # "RCPT TO:<a@b>" … (for the bounce: "SMTP error from remote mail server after X:")
    reply: Reply | None = None
    log_host: bool = False  # Exim logs a separate "H=… : message" line for this (host errors)

    @property
    def reply_text(self) -> str:
        return printing(self.reply.text) if self.reply is not None else ""


@dataclass(slots=True)
class _Pending:
    kind: str  # greeting, ehlo, helo, starttls, mail, rcpt, data, end, bdat, quit
    label: str  # as Exim names it in messages ("EHLO x", "MAIL FROM:<s>", "end of data")
    index: int = -1  # recipient index for rcpt
    pipelined: bool = False


@dataclass(slots=True)
class ServerFeatures:
    esmtp: bool = False
    pipelining: bool = False
    size: int | None = None
    eight_bit: bool = False
    smtputf8: bool = False
    chunking: bool = False
    starttls: bool = False
    auth: list[str] = field(default_factory=list)
    dsn: bool = False
    prdr: bool = False


def parse_ehlo(reply: Reply) -> ServerFeatures:
    """The EHLO keywords of a 250 reply (the first line is the greeting text)."""
    f = ServerFeatures(esmtp=True)
    for line in reply.lines[1:]:
        words = line[4:].split()
        if not words:
            continue
        key = words[0].upper()
        if key == "PIPELINING":
            f.pipelining = True
        elif key == "SIZE":
            f.size = int(words[1]) if len(words) > 1 and words[1].isdigit() and len(words[1]) < 19 else 0
        elif key == "8BITMIME":
            f.eight_bit = True
        elif key == "SMTPUTF8":
            f.smtputf8 = True
        elif key == "CHUNKING":
            f.chunking = True
        elif key == "STARTTLS":
            f.starttls = True
        elif key == "AUTH" or key.startswith("AUTH="):
            f.auth.extend(w.upper() for w in (words[1:] if key == "AUTH" else [key[5:], *words[1:]]))
        elif key == "DSN":
            f.dsn = True
        elif key == "PRDR":
            f.prdr = True
    return f


def smtp_data(message: bytes, dot_stuff: bool = True) -> bytes:
    """The message with CRLF line ends (and dot-stuffing for DATA), ending in CRLF."""
    if message and not message.endswith(b"\n"):
        message += b"\n"
    lines = message.split(b"\n")[:-1] if message else []
    out = bytearray()
    for line in lines:
        if line.endswith(b"\r"):
            line = line[:-1]
        if dot_stuff and line.startswith(b"."):
            out += b"."
        out += line + b"\r\n"
    return bytes(out)


class SmtpClient:
    """One SMTP transaction over one connection, from greeting to QUIT."""

    def __init__(self, options: ClientOptions, envelope: Envelope, message: bytes,
                 continued: ServerFeatures | None = None) -> None:
        """`continued`: the connection is one kept open after an earlier message (its server's
        features as EHLO gave them): the transaction starts with MAIL at once."""
        if not envelope.recipients:
            raise SmtpClientError("no recipients")
        self.options = options
        self.envelope = envelope
        self.message = message
        self.features = ServerFeatures()
        self.outcomes = [Outcome() for _ in envelope.recipients]
        self.host_error: Outcome | None = None
        self.confirmation: Reply | None = None  # the final 250 after the data
        self.greeting: Reply | None = None
        self.helo_response: Reply | None = None  # the server's answer to EHLO/HELO/LHLO (DSN extra info)
        self.done = False
        self.tls_wanted = False  # STARTTLS got 220: the adapter must hand-shake, then call tls_started()
        self.tls_active = False
        self.used_chunking = False
        self.used_pipelining = False
        self.helo_verb = "EHLO"
        self.auth_used: ClientAuth | None = None
        self.auth_failures: list[tuple[str, str]] = []  # (authenticator name, reply text)
        self._auth_queue: list[ClientAuth] = []
        self._auth_step = 0
        self._out = bytearray()
        self._buf = bytearray()
        self._lines: list[str] = []
        self._pending: deque[_Pending] = deque([_Pending("greeting", "initial connection")])
        self._accepted: list[int] = []
        self._tried_helo = False
        self._data_sent = False
        self._data_bytes = 0
        self.kept_open = False  # keep_open: the server took RSET, the connection may carry another message
        if continued is not None:
            self.features = continued
            self._pending.clear()
            self._start_transaction()

    # -- what the adapter asks ---------------------------------------------------------

    def data_to_send(self) -> bytes:
        data = bytes(self._out)
        self._out.clear()
        return data

    @property
    def waiting_for(self) -> str:
        """What the next reply answers: "command", "final" (after the data) or "" (nothing)."""
        if self.done or not self._pending:
            return ""
        return "final" if self._pending[0].kind in ("end", "bdat") else "command"

    @property
    def waiting_label(self) -> str:
        return self._pending[0].label if self._pending else ""

    def receive(self, data: bytes) -> None:
        if self.done or self.tls_wanted:
            return
        self._buf += data
        while not self.done and not self.tls_wanted:
            nl = self._buf.find(b"\n")
            if nl < 0:
                if len(self._buf) > MAX_REPLY_LINE:
                    self._malformed(self._buf[:MAX_REPLY_LINE].decode("latin-1"))
                return
            raw = bytes(self._buf[:nl])
            del self._buf[: nl + 1]
            if raw.endswith(b"\r"):
                raw = raw[:-1]
            line = raw.decode("utf-8", "surrogateescape")
            if len(raw) > MAX_REPLY_LINE:
                self._malformed(raw[:MAX_REPLY_LINE].decode("latin-1"))
                return
            if not self._pending:
                continue  # a reply nobody asked for (after QUIT): ignored
            if not _well_formed(line) or (self._lines and line[:3] != self._lines[0][:3]):
                self._malformed(line.encode("utf-8", "surrogateescape").decode("latin-1"))
                return
            self._lines.append(line)
            if len(self._lines) > MAX_REPLY_LINES:
                self._malformed(line)
                return
            if len(line) > 3 and line[3] == "-":
                continue
            reply = Reply(int(line[:3]), self._lines)
            self._lines = []
            self._handle(self._pending.popleft(), reply)

    def connection_closed(self) -> None:
        if self.done:
            return
        p = self._pending[0] if self._pending else None
        label = _in_response(p) if p else "QUIT"
        self._host_failure("defer", f"Remote host closed connection in response to {label}", ERRNO_SMTPCLOSED,
                           quit_=False)

    def timed_out(self) -> None:
        if self.done:
            return
        label = _in_response(self._pending[0]) if self._pending else "QUIT"
        if self._pending and self._pending[0].kind == "end" and self._data_sent:
            label += f" ({self._data_bytes} bytes written)"  # as Exim says how much of the data went
        self._host_failure("defer", f"SMTP timeout after {label}", ETIMEDOUT, quit_=False)

    def tls_started(self) -> None:
        """The TLS handshake succeeded: EHLO again, over TLS."""
        if not self.tls_wanted:
            raise SmtpClientError("no STARTTLS in progress")
        self.tls_wanted = False
        self.tls_active = True
        self._buf.clear()
        self.features = ServerFeatures()
        self._send(_Pending("ehlo", f"EHLO {self.options.helo}"), f"EHLO {self.options.helo}")

    def tls_failed(self, reason: str) -> None:
        """The TLS handshake failed; the connection is unusable."""
        self.tls_wanted = False
        # Exim's wording: "TLS session: (SSL_connect): <why>", in the == line only
        if not reason.startswith("("):
            reason = f"(SSL_connect): {reason}"
        self._host_failure("defer", f"TLS session: {reason}", ERRNO_TLSFAILURE, quit_=False, log_host=False)

    # -- internals --------------------------------------------------------------------

    def _send(self, p: _Pending, command: str) -> None:
        self._pending.append(p)
        self._out += command.encode("utf-8", "surrogateescape") + b"\r\n"

    def _malformed(self, text: str) -> None:
        p = self._pending[0] if self._pending else _Pending("quit", "QUIT")
        self._host_failure("defer", f"Malformed SMTP reply in response to {_in_response(p)}: {printing(text)}",
                           ERRNO_SMTPFORMAT, quit_=False)

    def _host_failure(self, status: str, message: str, errno: int, reply: Reply | None = None,
                      after: str = "", quit_: bool = True, log_host: bool = True) -> None:
        self.host_error = Outcome(status, message, errno, after, reply, log_host)
        self._pending.clear()
        self._finish(quit_)

    def _finish(self, quit_: bool = True) -> None:
        if quit_:
            self._out += b"QUIT\r\n"
        self._pending.clear()
        self.done = True

    def _smtp_error(self, p: _Pending, reply: Reply) -> str:
        return f"SMTP error from remote mail server after {_after(p)}: {printing(reply.text)}"

    def _handle(self, p: _Pending, reply: Reply) -> None:
        handler = getattr(self, f"_on_{p.kind}")
        handler(p, reply)

    def _on_greeting(self, p: _Pending, reply: Reply) -> None:
        self.greeting = reply
        if reply.code != 220:
            self._connection_error(p, reply)
            return
        self._hello()

    def _hello(self) -> None:
        if self.options.lmtp:
            self.helo_verb = "LHLO"
            self._send(_Pending("ehlo", f"LHLO {self.options.helo}"), f"LHLO {self.options.helo}")
            return
        if self.options.esmtp and not self._tried_helo:
            self.helo_verb = "EHLO"
            self._send(_Pending("ehlo", f"EHLO {self.options.helo}"), f"EHLO {self.options.helo}")
        else:
            self.helo_verb = "HELO"
            self._send(_Pending("helo", f"HELO {self.options.helo}"), f"HELO {self.options.helo}")

    def _connection_error(self, p: _Pending, reply: Reply) -> None:
        status = "fail" if reply.kind == 5 else "defer"
        self._host_failure(status, self._smtp_error(p, reply), 0, reply, _after(p))

    def _on_ehlo(self, p: _Pending, reply: Reply) -> None:
        if reply.kind == 5 and not self.tls_active and not self.options.lmtp:
            self._tried_helo = True  # Exim falls back to HELO when EHLO is refused
            self._hello()
            return
        if reply.kind != 2:
            self._connection_error(p, reply)
            return
        self.helo_response = reply
        self.features = parse_ehlo(reply)
        self._after_hello()

    def _on_helo(self, p: _Pending, reply: Reply) -> None:
        self.helo_response = reply
        if reply.kind != 2:
            self._connection_error(p, reply)
            return
        self.features = ServerFeatures()
        self._after_hello()

    def _after_hello(self, tls_done: bool = False) -> None:
        if not self.tls_active and not tls_done:
            if self.options.try_tls and self.features.starttls:
                self._send(_Pending("starttls", "STARTTLS"), "STARTTLS")
                return
            if self.options.require_tls:
                self._host_failure("defer", "a TLS session is required, but the server did not offer TLS support"
                                   if not self.features.starttls else
                                   "a TLS session is required, but an attempt to start TLS failed",
                                   ERRNO_TLSREQUIRED)
                return
        self._auth_queue = [a for a in self.options.authenticators if a.public_name.upper() in self.features.auth]
        self._next_auth()

    def _next_auth(self) -> None:
        if self._auth_queue:
            auth = self._auth_queue.pop(0)
            self._auth_step = 0
            initial = auth.responses[0] if auth.responses and auth.cram_md5 is None else None
            cmd = f"AUTH {auth.public_name}"
            if initial:  # an empty first client_send string: AUTH without data (LOGIN)
                cmd += " " + base64.b64encode(initial).decode("ascii")
            self._auth_step = 1
            self._send(_Pending("auth", cmd, index=self.options.authenticators.index(auth)), cmd)
            return
        if self.options.require_auth and self.auth_used is None:
            why = ("authentication attempt(s) failed" if self.auth_failures
                   else "no common mechanisms were found")
            self._host_failure("defer", f"authentication required but {why}", ERRNO_AUTHFAIL, log_host=False)
            return
        self._start_transaction()

    def _on_auth(self, p: _Pending, reply: Reply) -> None:
        auth = self.options.authenticators[p.index]
        if reply.code == 235:
            self.auth_used = auth
            self._start_transaction()
            return
        if reply.code == 334:
            challenge = reply.lines[-1][4:].strip()
            answer: bytes | None
            if auth.cram_md5 is not None:
                try:
                    raw = base64.b64decode(challenge, validate=True)
                except ValueError:
                    raw = b""
                name, secret = auth.cram_md5
                digest = hmac.new(secret.encode("utf-8", "surrogateescape"), raw, hashlib.md5).hexdigest()
                answer = f"{name} {digest}".encode("utf-8", "surrogateescape")
            elif self._auth_step < len(auth.responses):
                answer = auth.responses[self._auth_step]
            else:
                answer = None
            self._auth_step += 1
            if answer is None:
                self._pending.appendleft(_Pending("auth", "AUTH cancel", index=p.index))
                self._out += b"*\r\n"
            else:
                self._pending.appendleft(_Pending("auth", p.label, index=p.index))
                self._out += base64.b64encode(answer) + b"\r\n"
            return
        self.auth_failures.append((auth.name, printing(reply.text)))
        if reply.kind == 4 and self.options.require_auth:
            self._host_failure("defer", self._smtp_error(p, reply), ERRNO_AUTHFAIL, reply, _after(p))
            return
        self._next_auth()

    def _on_starttls(self, p: _Pending, reply: Reply) -> None:
        if reply.code == 220:
            self.tls_wanted = True
            self._buf.clear()
            return
        if self.options.require_tls:
            self._host_failure("defer", self._smtp_error(p, reply), ERRNO_TLSREQUIRED, reply, _after(p))
            return
        self._after_hello(tls_done=True)  # opportunistic TLS refused: carry on in clear

    def _start_transaction(self) -> None:
        f, env, opts = self.features, self.envelope, self.options
        params = ""
        if f.size is not None and opts.size_addition >= 0:  # a negative size_addition: no SIZE=
            params += f" SIZE={env.size + opts.size_addition}"
        if env.eight_bit and f.eight_bit:
            params += " BODY=8BITMIME"
        if env.smtputf8 and f.smtputf8:
            params += " SMTPUTF8"
        if f.dsn:
            if env.dsn_ret:
                params += f" RET={env.dsn_ret}"
            if env.dsn_envid:
                params += f" ENVID={env.dsn_envid}"
        pipelining = f.pipelining and opts.pipelining
        self.used_pipelining = pipelining
        self.used_chunking = f.chunking and opts.chunking and f.esmtp
        mail = f"MAIL FROM:<{env.sender}>{params}"
        self._send(_Pending("mail", mail, pipelined=pipelining), mail)
        if not pipelining:
            return
        self._send_rcpts()

    def _send_rcpts(self) -> None:
        pipelining = self.used_pipelining
        for i, r in enumerate(self.envelope.recipients[: max(1, self.options.max_rcpt)]):
            self._send_rcpt(i, r, pipelining)
            if not pipelining:
                return
        if not self.used_chunking and not self.options.verify_only:
            self._send(_Pending("data", "DATA", pipelined=True), "DATA")

    def _send_rcpt(self, i: int, r: RcptSpec, pipelined: bool) -> None:
        params = ""
        if self.features.dsn:
            if r.notify:
                params += f" NOTIFY={r.notify}"
            if r.orcpt:
                params += f" ORCPT={r.orcpt}"
        cmd = f"RCPT TO:<{r.address}>{params}"
        self._send(_Pending("rcpt", cmd, i, pipelined), cmd)

    def _on_mail(self, p: _Pending, reply: Reply) -> None:
        if reply.kind == 2:
            if not self.used_pipelining:
                self._send_rcpts()
            return
        if reply.kind == 5:
            # every recipient fails with the MAIL error; the pipelined rest is ignored
            for o in self.outcomes:
                o.status, o.message, o.after, o.reply = "fail", self._smtp_error(p, reply), _after(p), reply
            self._finish()
            return
        self._host_failure("defer", self._smtp_error(p, reply), ERRNO_MAIL4XX, reply, _after(p))

    def _on_rcpt(self, p: _Pending, reply: Reply) -> None:
        o = self.outcomes[p.index]
        if reply.kind == 2:
            self._accepted.append(p.index)
        else:
            o.status = "fail" if reply.kind == 5 else "defer"
            o.errno = ERRNO_RCPT4XX if reply.kind != 5 else 0
            o.after = f"RCPT TO:<{self.envelope.recipients[p.index].address}>"
            o.message = f"SMTP error from remote mail server after {o.after}: {printing(reply.text)}"
            o.reply = reply
        last = min(len(self.outcomes), max(1, self.options.max_rcpt)) - 1
        if not self.used_pipelining and p.index < last:
            self._send_rcpt(p.index + 1, self.envelope.recipients[p.index + 1], False)
            return
        if p.index < last:
            return
        if self.options.verify_only:
            # a callout ends here: what the RCPT replies said is the answer
            for i in self._accepted:
                self.outcomes[i].status, self.outcomes[i].reply = "ok", reply
            self._finish()
            return
        # the last RCPT reply: DATA (already in flight when pipelining) or BDAT
        if not self._accepted:
            if not self.used_pipelining or self.used_chunking:
                self._finish()
            return  # the pipelined DATA's reply is still to come
        if self.used_chunking:
            data = smtp_data(self.message, dot_stuff=False)
            label = f"BDAT {len(data)} LAST"
            self._pending.append(_Pending("bdat", "end of data"))
            self._out += label.encode() + b"\r\n" + data
            self._data_sent = True
        elif not self.used_pipelining:
            self._send(_Pending("data", "DATA"), "DATA")

    def _on_data(self, p: _Pending, reply: Reply) -> None:
        if reply.code == 354:
            if not self._accepted:
                self._out += b".\r\n"  # RFC 2920: end the data nobody will take
                self._finish()
                return
            data = smtp_data(self.message)
            self._out += data + b".\r\n"
            self._data_sent = True
            self._data_bytes = len(data) + 3  # the closing ".\r\n" counts, as in Exim
            if self.options.lmtp:
                # LMTP answers the end of the data once for each recipient it accepted, in order
                for i in self._accepted:
                    self._pending.append(_Pending("lmtp_end", "end of data", i))
                return
            self._pending.append(_Pending("end", "end of data"))
            return
        if not self._accepted:
            self._finish()  # every RCPT failed: DATA's refusal says nothing new
            return
        status = "fail" if reply.kind == 5 else "defer"
        self._data_failure(p, reply, status)

    def _data_failure(self, p: _Pending, reply: Reply, status: str) -> None:
        message = self._smtp_error(p, reply)
        if status == "defer":
            self._host_failure("defer", message, ERRNO_DATA4XX, reply, _after(p))
            return
        for i in self._accepted:
            o = self.outcomes[i]
            o.status, o.message, o.after, o.reply = "fail", message, _after(p), reply
        self._finish()

    def _on_end(self, p: _Pending, reply: Reply) -> None:
        if reply.kind == 2:
            self.confirmation = reply
            for i in self._accepted:
                self.outcomes[i].status = "ok"
                self.outcomes[i].reply = reply
            if self.options.keep_open and not self.options.lmtp:
                self._send(_Pending("rset", "RSET"), "RSET")
                return
            self._finish()
            return
        self._data_failure(p, reply, "fail" if reply.kind == 5 else "defer")

    _on_bdat = _on_end

    def _on_lmtp_end(self, p: _Pending, reply: Reply) -> None:
        o = self.outcomes[p.index]
        o.reply = reply
        if reply.kind == 2:
            o.status = "ok"
            self.confirmation = reply
        else:
            o.status = "fail" if reply.kind == 5 else "defer"
            o.errno = 0 if reply.kind == 5 else ERRNO_DATA4XX
            o.after = "end of data"
            o.message = f"LMTP error after end of data: {printing(reply.text)}"
        if not any(q.kind == "lmtp_end" for q in self._pending):
            self._finish()

    def _on_rset(self, p: _Pending, reply: Reply) -> None:
        # the message is delivered whatever RSET gets; only a 2xx leaves the connection usable
        self.kept_open = reply.kind == 2
        self._finish(quit_=not self.kept_open)

    def _on_quit(self, p: _Pending, reply: Reply) -> None:  # pragma: no cover - QUIT is never awaited
        self.done = True


def _well_formed(line: str) -> bool:
    return (len(line) >= 3 and line[0] in "12345" and line[1].isdigit() and line[2].isdigit()
            and line[:3].isascii() and (len(line) == 3 or line[3] in " -"))


def _after(p: _Pending) -> str:
    if p.kind in ("mail", "data") and p.pipelined:
        return f"pipelined {p.label}"
    return p.label


def _in_response(p: _Pending) -> str:
    """The label in "in response to X" (closed, malformed): a pipelined RCPT says so too."""
    if p.pipelined:
        return f"pipelined {p.label}"
    return p.label

"""One SMTP session's logic: commands in, Exim's replies out.

The session never touches a socket: `-bs`, `-bh` and the daemon feed it the
events of an SmtpReader (protocol.py) and send what it returns. ACLs run
through the ACL engine; an accepted message goes to `store`, which must make
it durable before returning its id — only then is "250 OK id=…" produced.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pyxim import EXIM_COMPAT_VERSION
from pyxim.acl.engine import (
    ORIGINAL_LOCAL_PART,  # noqa: E402
    AclResult,
    AclState,
    run_acl,
)
from pyxim.config.model import Config
from pyxim.config.options import read_size
from pyxim.errors import ExpansionError, LookupDefer
from pyxim.expand import ExpansionContext, expand_string
from pyxim.expand.taint import Tainted
from pyxim.lists import match_domain_list, match_host_list
from pyxim.policy import DkimResults
from pyxim.smtp.protocol import Chunk, Command, LineTooLong, MessageData, SmtpReader
from pyxim.spool.format import Recipient, SpoolHeader, SpoolMessage

# Exim's DSN NOTIFY bits, as stored in the spool
_NOTIFY_NEVER, _NOTIFY_SUCCESS, _NOTIFY_FAILURE, _NOTIFY_DELAY = 0x02, 0x04, 0x08, 0x10

_MAIL = re.compile(r"^FROM:\s*(.*)$", re.I)
_RCPT = re.compile(r"^TO:\s*(.*)$", re.I)


@dataclass
class Envelope:
    sender: str | None = None
    recipients: list[Recipient] = field(default_factory=list)
    mail_params: dict[str, str] = field(default_factory=dict)
    rcpt_count: int = 0  # RCPT commands seen, accepted or not
    chunks: bytearray | None = None  # BDAT data so far


@dataclass
class Peer:
    address: str
    port: int
    local_address: str = "127.0.0.1"
    local_port: int = 25


@dataclass
class SessionOutput:
    replies: list[str] = field(default_factory=list)  # each a full reply, CRLF-terminated lines
    close: bool = False
    start_tls: bool = False  # send the replies, then run the TLS handshake and call tls_started()


class SmtpSession:
    def __init__(
        self,
        config: Config,
        peer: Peer,
        store: Callable[[SpoolMessage, bytes], str],
        new_id: Callable[[], str],
        log: Callable[[str], None] = lambda line: None,
        reject_log: Callable[[str], None] | None = None,
        protocol_name: str = "smtp",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.peer = peer
        self.store = store
        self.new_id = new_id
        self.log = log
        # rejections go to the main log and the reject log (Exim's rejectlog)
        self.reject_log = reject_log or log
        self.clock = clock
        self.sleep: Callable[[float], None] | None = time.sleep  # ACL `delay`; None disables (-bh)
        self.host_checking = False  # -bh: nothing is run for ETRN
        self.reader = SmtpReader(self._size_limit() or None)
        self.ctx = ExpansionContext(config=config, now=clock)
        self.ctx.variables.update(
            {
                "sender_host_address": Tainted(peer.address) if peer.address else "",
                "sender_host_port": str(peer.port),
                "received_ip_address": peer.local_address,
                "received_port": str(peer.local_port),
                "interface_address": peer.local_address,
                "interface_port": str(peer.local_port),
            }
        )
        from pyxim import logselector
        from pyxim.acl.engine import acl_runner

        self.ctx.acl_runner = acl_runner(config, self.ctx)
        self.selectors = logselector.parse(str(config.main.get("log_selector") or ""))
        self.last_message_id = ""
        self.helo: str | None = None
        self.esmtp = False
        self.envelope = Envelope()
        self.errors = 0
        self.unknown = 0
        self.nonmail_count = 0  # smtp_accept_max_nonmail
        self.nonmail_seen: set[str] = set()
        self.count_nonmail: bool | None = None
        self.messages_received = 0
        self.session_controls: set[str] = set()
        # (message id, deliver at once?) for each message stored; the caller drains it
        self.received: list[tuple[str, bool]] = []
        self.current_message_id = ""  # set while a message is being received (log lines carry it)
        # Exim's smtp_enforce_sync applies to TCP sessions only (not -bs/-bh on a pipe)
        self.enforce_sync = False
        self.pipelining_advertised = False
        self.auth_advertised = False
        self.tls_active = False
        self.tls_advertised = False
        # Non-SMTP local submission (-bm, -t) sets these; see pyxim.submission.
        self.protocol_override: str | None = None
        self.originator_name: str | None = None
        self.extra_options: dict[str, str | None] = {}
        self.deleted_headers: set[str] = set()
        self.authenticated: str | None = None  # the authenticator's name, once AUTH succeeded
        self.auth_exchange = None  # a running AUTH exchange (generator) waiting for a response
        self.auth_mechanism = None
        self.protocol_name = protocol_name
        self.acl_state = AclState()
        self.bdat_failed = False

    # -- helpers ----------------------------------------------------------------

    @property
    def hostname(self) -> str:
        return str(self.config.main.get("smtp_active_hostname") or self._primary())

    def _primary(self) -> str:
        from pyxim.expand.variables import resolve_variable

        return resolve_variable(_Ev(self.ctx), "primary_hostname")

    def _size_limit(self) -> int:
        # message_size_limit is an expanded string in Exim 4.9x ("50M", or
        # something depending on $sender_host_address); before the context
        # exists only a literal value can be read.
        text = str(self.config.main.get("message_size_limit") or "0")
        if "$" in text:
            if getattr(self, "ctx", None) is None:
                return 0
            try:
                text = expand_string(text, self.ctx)
            except ExpansionError:
                return 0
        return read_size(str(text)) or 0

    def _host_in(self, option: str) -> bool:
        value = self.config.main.get(option)
        if not value:
            return False
        try:
            return match_host_list(self.ctx, self.peer.address, expand_string(str(value), self.ctx))
        except ExpansionError:
            return False

    def _reply(self, code: str, text: str) -> str:
        lines = text.split("\n")
        out = [f"{code}-{line}" for line in lines[:-1]]
        out.append(f"{code} {lines[-1]}")
        return "\r\n".join(out) + "\r\n"

    def _protocol_error(self, out: SessionOutput, code: str, text: str) -> SessionOutput:
        self.errors += 1
        limit = int(self.config.main.get("smtp_max_synprot_errors") or 3)
        if self.errors > limit:
            out.replies.append(self._reply(code, f"{text}\nToo many syntax or protocol errors"))
            out.close = True
            return out
        out.replies.append(self._reply(code, text))
        return out

    # Controls that last for the whole connection once an ACL sets them.
    _SESSION_CONTROLS = frozenset({"no_pipelining", "enforce_sync", "no_enforce_sync", "allow_auth_unadvertised",
                                   "no_multiline_responses"})

    def _acl(self, option: str, default: str) -> AclResult:
        self.acl_state.where = option
        result = run_acl(self.config, self.config.main.get(option), self.ctx, self.acl_state, default)
        for control in self.acl_state.controls:
            name = control.split("/", 1)[0]
            if name in self._SESSION_CONTROLS:
                self.session_controls.add(name)
                if name in ("enforce_sync", "no_enforce_sync"):
                    self.session_controls.discard("no_enforce_sync" if name == "enforce_sync" else "enforce_sync")
        # logwrite lines and delays asked for by the ACL happen now
        prefix = f"{self.current_message_id} " if self.current_message_id else ""
        for about_client, line in self.acl_state.log_lines:
            self.log(f"{prefix}{self._host_id()} {line}" if about_client else prefix + line)
        self.acl_state.log_lines.clear()
        if self.acl_state.delay:
            delay, self.acl_state.delay = self.acl_state.delay, 0.0
            if self.sleep is not None:
                self.sleep(delay)
        return result

    def _dkim_acl(self, data: bytes) -> AclResult | None:
        """acl_smtp_dkim once per signer in dkim_verify_signers (Exim's order:
        before the MIME and DATA ACLs); None when there is nothing to run."""
        if any(c.split("/", 1)[0] == "dkim_disable_verify" for c in self.acl_state.controls):
            return None
        from pyxim.policy import dkim_verify, ensure_dkim_verifier

        ensure_dkim_verifier()
        # Exim verifies every signature whether or not there is a DKIM ACL ($dkim_*, ${authresults}, DKIM=)
        found = dkim_verify(self.ctx, data)
        self.dkim_passed = found.passed
        self.ctx.lookup_cache[("pyxim", "dkim-signatures")] = found.signatures  # for ${authresults}
        for line in found.log:
            self.log(f"{self.current_message_id} {line}")
        logged: set[int] = set()
        try:
            return self._dkim_acl_signers(found, logged)
        finally:
            # dkim_verbose: one line per signature, after its ACL run; the rest (no ACL run for them) now
            for index, line in enumerate(found.after_acl):
                if index not in logged:
                    self.log(f"{self.current_message_id} {line}")

    def _dkim_acl_signers(self, found: DkimResults, logged: set[int]) -> AclResult | None:
        from pyxim.lists import iterate_list
        from pyxim.policy import UNSIGNED

        if not self.config.main.get("acl_smtp_dkim"):
            return None
        self.ctx.variables["dkim_signers"] = Tainted(":".join(found.signers)) if found.signers else ""
        try:
            wanted = expand_string(str(self.config.main.get("dkim_verify_signers") or ""), self.ctx)
        except ExpansionError as exc:
            return AclResult("defer", defer_reason=f"expansion of dkim_verify_signers failed: {exc.message}")
        result: AclResult | None = None
        seen: set[str] = set()
        for signer in iterate_list(wanted):
            if not signer or signer.lower() in seen:
                continue  # an empty item names nobody; a repeated one is run once (as Exim weeds them out)
            seen.add(signer.lower())
            self.ctx.variables["dkim_cur_signer"] = signer
            # As Exim: the ACL runs once per signature by this signer (domain or identity), else once unsigned
            matching = [i for i, v in enumerate(found.signatures)
                        if signer.lower() in (v.get("dkim_domain", "").lower(), v.get("dkim_identity", "").lower())]
            for index in matching or [-1]:
                values = found.signatures[index] if index >= 0 else found.variables.get(signer.lower(), UNSIGNED)
                self.ctx.variables.update(values)
                result = self._acl("acl_smtp_dkim", "accept")
                if 0 <= index < len(found.after_acl) and index not in logged:
                    logged.add(index)
                    self.log(f"{self.current_message_id} {found.after_acl[index]}")
                if result.verdict != "accept":
                    return result
        return result

    def _acl_refusal(self, result: AclResult, temp: bool = False, prdr: bool = False) -> tuple[str, str]:
        message = result.message
        if message and "no_multiline_responses" in self.session_controls:
            # for clients that cannot read a multi-line reply: the first line only (Exim's smtp_respond)
            message = message.split("\n", 1)[0]
        if result.verdict == "defer":
            if message:
                # an ACL's own defer message: 451, but 450 in a PRDR per-recipient reply (as Exim)
                return ("450" if prdr else "451"), message
            return "451", "Temporary local problem - please try later"
        return ("450" if temp else "550"), message or "Administrative prohibition"

    # -- the session ------------------------------------------------------------

    def greeting(self) -> SessionOutput:
        out = SessionOutput()
        if "smtp_connection" in self.selectors and not self.local:
            self.log(f"SMTP connection from {self._client_text(with_helo=False)}")
        if self._host_in("host_lookup"):
            self._look_up_host_name()
        self._set_sender_hosts()
        result = self._acl("acl_smtp_connect", "accept")
        if result.verdict != "accept":
            code, text = self._acl_refusal(result)
            if result.verdict != "discard" and not self.local:
                self._log_refusal(f"H=[{self.peer.address}]", code, 'connection in "connect" ACL', result)
            out.replies.append(self._reply("554" if code == "550" else code, text))
            out.close = True
            return out
        try:
            banner = expand_string(str(self.config.main.get("smtp_banner") or ""), self.ctx)
        except ExpansionError:
            banner = f"{self.hostname} ESMTP Exim {EXIM_COMPAT_VERSION}"
        out.replies.append(self._reply("220", banner))
        return out

    def feed(self, data: bytes) -> SessionOutput:
        """Bytes from the client; returns what to send (and whether to close)."""
        out = SessionOutput()
        self.reader.feed(data)
        while not out.close:
            event = self.reader.next_event()
            if event is None:
                break
            self._event(event, out)
        return out

    def notquit(self, reason: str) -> None:
        """acl_smtp_notquit, for a session that ends other than by QUIT (its result only logs)."""
        self.ctx.variables["smtp_notquit_reason"] = reason
        result = self._acl("acl_smtp_notquit", "accept")
        if result.log_message:
            self.log(result.log_message)

    def eof(self) -> SessionOutput:
        """The client went away without QUIT."""
        self.notquit("connection-lost")
        out = SessionOutput(close=True)
        if self.reader.mode == "data":
            out.replies.append(self._reply("421", "Lost incoming connection"))
        else:
            out.replies.append(self._reply("421", f"{self.hostname} lost input connection"))
        return out

    def _event(self, event, out: SessionOutput) -> None:  # type: ignore[no-untyped-def]
        if isinstance(event, LineTooLong):
            self._protocol_error(out, "500", "Command line too long")
            return
        if isinstance(event, MessageData):
            self._message_done(out, bytes(event.data), event.max_line_length)
            return
        if isinstance(event, Chunk):
            self._chunk(out, event)
            return
        assert isinstance(event, Command)
        line = event.line
        if self.auth_exchange is not None:
            self._auth_step(out, line)
            return
        verb, _, arg = line.partition(" ")
        verb = verb.upper()
        self.ctx.variables["smtp_command"] = Tainted(line)
        if self._too_many_nonmail(verb):
            out.replies.append(self._reply("554", "Too many nonmail commands"))
            out.close = True
            prefix = f"{self.last_message_id} " if self.last_message_id else ""
            self.reject_log(f"{prefix}SMTP call from {self._client_text(with_helo=True)} dropped: too many nonmail "
                            f'commands (last was "{_printable(line[:len(verb)].encode("utf-8", "surrogateescape"))}")')
            return
        if self.bdat_failed and verb not in ("RSET", "QUIT"):
            self._protocol_error(out, "503", "only RSET accepted now")
            return
        if self.envelope.chunks is not None and verb not in ("BDAT", "RSET", "QUIT", "NOOP"):
            # a broken chunked transaction: only RSET can clear it (Exim's rule)
            self.bdat_failed = True
            self._protocol_error(out, "503", "only BDAT permissible after non-LAST BDAT")
            return
        if self._sync_violation(verb):
            reason = (
                "next input sent too soon: pipelining was not advertised"
                if not self.pipelining_advertised
                else "next input sent too soon"
            )
            self.log(
                f"SMTP protocol synchronization error ({reason}): rejected \"{line}\" "
                f"H=[{self.peer.address}] next input=\"{_printable(bytes(self.reader.buffer[:40]))}\""
            )
            out.replies.append(self._reply("554", "SMTP synchronization error"))
            out.close = True
            return
        handler = getattr(self, "cmd_" + verb.lower(), None) if verb.isalpha() else None
        if handler is None:
            self.unknown += 1
            if self.unknown > int(self.config.main.get("smtp_max_unknown_commands") or 3):
                out.replies.append(self._reply("500", "Too many unrecognized commands"))
                out.close = True
                self.log(f"SMTP call from {self._client_text(with_helo=True)} dropped: too many unrecognized "
                         f'commands (last was "{_printable(line.encode("utf-8", "surrogateescape"))}")')
                return
            out.replies.append(self._reply("500", "unrecognized command"))
            return
        handler(out, arg.strip())

    # -- commands -----------------------------------------------------------------

    # Commands after which the client must wait for the reply: always for
    # HELO/EHLO and friends; every command when PIPELINING was not offered.
    _ALWAYS_SYNC = frozenset({"HELO", "EHLO", "VRFY", "EXPN", "ETRN", "NOOP", "STARTTLS", "AUTH"})

    def _sync_violation(self, verb: str) -> bool:
        if not self.enforce_sync or not self.reader.pending() or "no_enforce_sync" in self.session_controls:
            return False
        if not self.config.main.get("smtp_enforce_sync", True) and "enforce_sync" not in self.session_controls:
            return False
        if verb in self._ALWAYS_SYNC:
            return True
        if verb == "QUIT":
            return False
        return not self.pipelining_advertised

    # Commands Exim counts against smtp_accept_max_nonmail; the first HELO/EHLO and the first RSET of a
    # session are free
    _NONMAIL = frozenset({"HELO", "EHLO", "RSET", "NOOP", "HELP", "VRFY", "EXPN", "ETRN", "STARTTLS"})

    def _too_many_nonmail(self, verb: str) -> bool:
        if verb not in self._NONMAIL:
            return False
        first = "HELO" if verb in ("HELO", "EHLO") else verb
        if first in ("HELO", "RSET") and first not in self.nonmail_seen:
            self.nonmail_seen.add(first)
            return False
        if self.count_nonmail is None:
            # smtp_accept_max_nonmail_hosts (default: every host) is looked at once, when first needed
            self.count_nonmail = self._host_in("smtp_accept_max_nonmail_hosts")
        if not self.count_nonmail:
            return False
        self.nonmail_count += 1
        return self.nonmail_count > int(self.config.main.get("smtp_accept_max_nonmail") or 0)

    def _look_up_host_name(self) -> None:
        """The client's name by reverse lookup, confirmed forward ($sender_host_name), as Exim looks it up
        for host_lookup and helo_lookup_domains; a failure is logged once."""
        if self.local or not self.peer.address or self.ctx.variables.get("host_lookup_failed") == "1":
            return
        from pyxim.expand.variables import resolve_variable

        if not resolve_variable(_Ev(self.ctx), "sender_host_name") and \
                self.ctx.variables.get("host_lookup_failed") == "1" and "host_lookup_failed" in self.selectors:
            self.log(f"no host name found for IP address {self.peer.address}")

    def _helo_syntax_ok(self, name: str) -> bool:
        """Exim's HELO check: an address literal ("[1.2.3.4]", "[IPv6:…]" or "[…]" with an IPv6
        address), or letters, digits, dots, hyphens and the characters of helo_allow_chars."""
        from pyxim.expand.operators import string_is_ip_address

        if name.startswith("["):
            inner = name[1:-1] if name.endswith("]") else ""
            if inner[:5].lower() == "ipv6:":
                return string_is_ip_address(inner[5:], False)[0] == 6
            return string_is_ip_address(inner, False)[0] != 0
        allowed = str(self.config.main.get("helo_allow_chars") or "")
        return all((c.isascii() and c.isalnum()) or c in ".-" or c in allowed for c in name)

    def _helo(self, out: SessionOutput, arg: str, esmtp: bool) -> None:
        name = arg.strip()
        verb = "EHLO" if esmtp else "HELO"
        if not name or not (self._helo_syntax_ok(name) or self._host_in("helo_accept_junk_hosts")):
            self.reject_log(f"rejected {verb} from {self._client_text(with_helo=True)}: syntactically invalid "
                            f"argument(s): " + (name or "(no argument given)"))
            self._protocol_error(out, "501", f"Syntactically invalid {verb} argument(s)")
            return
        if not self.local and "sender_host_name" not in self.ctx.variables:
            # a client that names this host (or one of its addresses) in HELO: Exim finds its real name
            lookup = str(self.config.main.get("helo_lookup_domains") or "")
            try:
                if lookup and match_domain_list(self.ctx, name.lower(), expand_string(lookup, self.ctx), record=False):
                    self._look_up_host_name()
            except (ExpansionError, LookupDefer):
                pass
        self.ctx.variables["sender_helo_name"] = Tainted(name)
        result = self._acl("acl_smtp_helo", "accept")
        if result.verdict != "accept":
            code, text = self._acl_refusal(result)
            out.replies.append(self._reply(code, text))
            self._log_refusal(f"H=({name}) [{self.peer.address}]", code, f"EHLO or HELO {name}", result)
            return
        self.helo = name
        self._set_sender_hosts()
        self.esmtp = esmtp
        self.pipelining_advertised = False
        self._reset()
        if self.local:
            greeting = f"{self.hostname} Hello {_login()} at {name}"
        else:
            # Exim's: the ident (-oMt) "at" the verified host name, else the HELO name
            ident = str(self.ctx.variables.get("sender_ident") or "")
            known = str(self.ctx.variables.get("sender_host_name") or "") or name
            greeting = f"{self.hostname} Hello {ident + ' at ' if ident else ''}{known} [{self.peer.address}]"
        if not esmtp:
            out.replies.append(self._reply("250", greeting))
            return
        lines = [greeting]
        limit = self._size_limit()
        if limit:
            lines.append(f"SIZE {limit}")
        if self.config.main.get("accept_8bitmime"):
            lines.append("8BITMIME")
        if self._host_in("dsn_advertise_hosts"):
            lines.append("DSN")
        if self._host_in("pipelining_advertise_hosts") and "no_pipelining" not in self.session_controls:
            lines.append("PIPELINING")
            self.pipelining_advertised = True
            if not self.local and self._host_in("pipelining_connect_advertise_hosts"):
                # early pipelining (RFC draft "PIPECONNECT"): the client may send its next EHLO before our
                # banner; the daemon reads such input as it reads any pipelined command
                lines.append("PIPECONNECT")
        mechanisms = self._auth_mechanisms()
        self.auth_advertised = bool(mechanisms)
        if mechanisms:
            lines.append("AUTH " + " ".join((m.options.get("public_name") or m.name).upper() for m in mechanisms))
        if self._host_in("chunking_advertise_hosts"):
            lines.append("CHUNKING")
        self.tls_advertised = (
            not self.tls_active and bool(self.config.main.get("tls_certificate")) and self._host_in("tls_advertise_hosts")
        )
        if self.tls_advertised:
            lines.append("STARTTLS")
        if self.config.main.get("prdr_enable"):
            lines.append("PRDR")
        if self._host_in("smtputf8_advertise_hosts"):
            lines.append("SMTPUTF8")
        lines.append("HELP")
        out.replies.append(self._reply("250", "\n".join(lines)))

    def cmd_helo(self, out: SessionOutput, arg: str) -> None:
        self._helo(out, arg, esmtp=False)

    def cmd_ehlo(self, out: SessionOutput, arg: str) -> None:
        self._helo(out, arg, esmtp=True)

    def _reset(self) -> None:
        self.bdat_failed = False
        self.dkim_passed = ""
        self.current_message_id = ""
        self.envelope = Envelope()
        self.acl_state = AclState()
        for var in ("sender_address", "local_part", "domain", "recipient", "message_exim_id", "message_id",
                    "message_size", "recipients", "recipients_count"):
            self.ctx.variables.pop(var, None)
        # nothing of the last message may leak into the next one's ACLs ($h_…, DKIM results)
        self.ctx.message = None
        from pyxim.policy.dkim import SIGNATURES_KEY

        self.ctx.lookup_cache.pop(SIGNATURES_KEY, None)
        for name in [n for n in self.ctx.acl_vars if n.startswith("acl_m")]:
            del self.ctx.acl_vars[name]

    # -- AUTH ---------------------------------------------------------------------

    def _auth_mechanisms(self):  # type: ignore[no-untyped-def]
        from pyxim.auth.server import server_mechanisms

        if not self._host_in("auth_advertise_hosts"):
            return []
        out = []
        for inst in server_mechanisms(self.config):
            cond = inst.options.get("server_advertise_condition")
            if cond:
                try:
                    from pyxim.expand.conditions import cond_bool_lax

                    if not cond_bool_lax(None, [expand_string(str(cond), self.ctx)]):  # type: ignore[arg-type]
                        continue
                except ExpansionError:
                    continue
            out.append(inst)
        return out

    def cmd_auth(self, out: SessionOutput, arg: str) -> None:
        from pyxim.auth.server import DRIVERS

        if not self.auth_advertised and not (
            "allow_auth_unadvertised" in self.session_controls and self._auth_mechanisms()
        ):
            self._protocol_error(out, "503", "AUTH command used when not advertised")
            return
        if self.authenticated:
            self._protocol_error(out, "503", "already authenticated")
            return
        mech, _, initial = arg.partition(" ")
        inst = next((m for m in self._auth_mechanisms()
                     if (m.options.get("public_name") or m.name).upper() == mech.upper()), None)
        if inst is None:
            self._protocol_error(out, "504", f"{mech} authentication mechanism not supported")
            return
        result = self._acl("acl_smtp_auth", "accept")
        if result.verdict != "accept":
            code, text = self._acl_refusal(result)
            out.replies.append(self._reply(code, text))
            return
        for n in range(1, 4):
            self.ctx.variables.pop(f"auth{n}", None)
        self.auth_mechanism = inst
        self.auth_exchange = DRIVERS[inst.driver](inst, self.ctx, initial.strip() or None)
        self._auth_advance(out, None, first=True)

    def _auth_step(self, out: SessionOutput, line: str) -> None:
        self._auth_advance(out, line, first=False)

    def _auth_advance(self, out: SessionOutput, response: str | None, first: bool) -> None:
        import base64

        exchange = self.auth_exchange
        try:
            challenge = next(exchange) if first else exchange.send(response)
        except StopIteration as stop:
            self.auth_exchange = None
            self._auth_done(out, stop.value)
            return
        out.replies.append(f"334 {base64.b64encode(challenge.encode()).decode()}\r\n")

    def _auth_done(self, out: SessionOutput, result: str) -> None:
        inst = self.auth_mechanism
        if result == "OK":
            set_id = inst.options.get("server_set_id")
            try:
                auth_id = expand_string(str(set_id), self.ctx) if set_id else ""
            except ExpansionError:
                auth_id = ""
            self.authenticated = inst.name
            self.ctx.variables["authenticated_id"] = auth_id
            self.ctx.variables["sender_host_authenticated"] = inst.name
            out.replies.append(self._reply("235", "Authentication succeeded"))
            return
        if result == "CANCELLED":
            self._protocol_error(out, "501", "Authentication cancelled")
            return
        if result == "BAD64":
            self._protocol_error(out, "501", "Invalid base64 data")
            return
        if result == "DEFER":
            out.replies.append(self._reply("435", "Unable to authenticate at present"))
            return
        set_id = self.ctx.variables.get("auth1", "")
        self.log(f"{inst.name} authenticator failed for ({self.helo}) [{self.peer.address}]: "
                 f"535 Incorrect authentication data (set_id={set_id})")
        out.replies.append(self._reply("535", "Incorrect authentication data"))

    # -- STARTTLS -----------------------------------------------------------------

    def cmd_starttls(self, out: SessionOutput, arg: str) -> None:
        if not self.tls_advertised:
            self._protocol_error(out, "503", "STARTTLS command used when not advertised")
            return
        if self.reader.pending():
            # commands pipelined after STARTTLS would be injected into the TLS session
            out.replies.append(self._reply("554", "SMTP synchronization error"))
            out.close = True
            return
        result = self._acl("acl_smtp_starttls", "accept")
        if result.verdict != "accept":
            code, text = self._acl_refusal(result)
            out.replies.append(self._reply(code, text))
            return
        out.replies.append(self._reply("220", "TLS go ahead"))
        out.start_tls = True

    def tls_verify_mode(self) -> str:
        """"require" (tls_verify_hosts), "try" (tls_try_verify_hosts) or "none" for this client."""
        if self._host_in("tls_verify_hosts"):
            return "require"
        if self._host_in("tls_try_verify_hosts"):
            return "try"
        return "none"

    def tls_certificate_files(self) -> tuple[str, str]:
        cert = expand_string(str(self.config.main.get("tls_certificate") or ""), self.ctx)
        key = expand_string(str(self.config.main.get("tls_privatekey") or ""), self.ctx) or cert
        return cert, key

    def tls_started(self, info: dict[str, str]) -> None:
        """The handshake succeeded: the client starts again with EHLO (RFC 3207)."""
        self.tls_active = True
        self.tls_advertised = False
        self.helo = None
        self.esmtp = False
        self._reset()
        self.ctx.variables.update(info)

    def cmd_rset(self, out: SessionOutput, arg: str) -> None:
        self._reset()
        self.reader.mode = "command"
        out.replies.append(self._reply("250", "Reset OK"))

    def cmd_noop(self, out: SessionOutput, arg: str) -> None:
        out.replies.append(self._reply("250", "OK"))

    def cmd_quit(self, out: SessionOutput, arg: str) -> None:
        result = self._acl("acl_smtp_quit", "accept")
        if result.verdict == "defer" and result.verb is None and result.defer_reason:
            # an error in the QUIT ACL changes nothing for the client; Exim logs it
            prefix = f"{self.last_message_id} " if self.last_message_id else ""
            self.log(f"{prefix}ACL for QUIT returned ERROR: {result.defer_reason}")
        if "smtp_connection" in self.selectors and not self.local:
            prefix = f"{self.last_message_id} " if self.last_message_id else ""
            self.log(f"{prefix}SMTP connection from {self._client_text(with_helo=True)} closed by QUIT")
        out.replies.append(self._reply("221", f"{self.hostname} closing connection"))
        out.close = True

    def cmd_help(self, out: SessionOutput, arg: str) -> None:
        # Exim's list: AUTH always, STARTTLS where it would be offered, ETRN/EXPN/VRFY when their ACL is set
        words = ["AUTH"]
        if not self.tls_active and self._host_in("tls_advertise_hosts"):
            words.append("STARTTLS")
        words += "HELO EHLO MAIL RCPT DATA BDAT NOOP QUIT RSET HELP".split()
        words += [w for w in ("ETRN", "EXPN", "VRFY") if self.config.main.get(f"acl_smtp_{w.lower()}")]
        out.replies.append(self._reply("214", "Commands supported:\n" + " ".join(words)))

    def _refuse_command(self, out: SessionOutput, verb: str, arg: str, result: AclResult, refused_code: str) -> None:
        """A VRFY/EXPN/ETRN refused by its ACL: Exim's reply (252 for VRFY, 458 for ETRN instead of
        550) and its reject-log line."""
        code, text = self._acl_refusal(result)
        self._log_refusal(self._host_id(), code, f"{verb} {arg}".rstrip(), result)
        out.replies.append(self._reply(refused_code if code == "550" else code, text))

    def cmd_vrfy(self, out: SessionOutput, arg: str) -> None:
        from pyxim.address import parse_address
        from pyxim.routers.engine import route_address

        result = self._acl("acl_smtp_vrfy", "deny")
        if result.verdict != "accept":
            self._refuse_command(out, "VRFY", arg, result, "252")
            return
        parsed = parse_address(arg)
        if not parsed:
            out.replies.append(self._reply("501", str(getattr(parsed, "message", "malformed address"))))
            return
        address = parsed.address  # type: ignore[union-attr]
        if "@" not in address:
            out.replies.append(self._reply("501", f"{arg}: recipient address must contain a domain"))
            return
        results = route_address(self.config, address, verifying=True)
        failed = next((r for r in results if r.outcome == "failed"), None)
        deferred = next((r for r in results if r.outcome == "deferred"), None)
        if failed is not None:
            self.log(f"VRFY failed for {arg} {self._host_id()}")
            out.replies.append(self._reply("550", f"<{address}> {failed.message or 'is not deliverable'}"))
        elif deferred is not None:
            out.replies.append(self._reply("451", f"Cannot resolve <{address}> at this time"))
        else:
            out.replies.append(self._reply("250", f"<{address}> is deliverable"))

    def cmd_expn(self, out: SessionOutput, arg: str) -> None:
        from pyxim.routers.engine import route_address

        result = self._acl("acl_smtp_expn", "deny")
        if result.verdict != "accept":
            self._refuse_command(out, "EXPN", arg, result, "550")
            return
        address = arg if "@" in arg else f"{arg}@{self._qualify_recipient()}"
        results = route_address(self.config, address, verifying=True)
        # one level of expansion only, as Exim's EXPN: the original's own children
        children: list[str] = []
        for r in sorted(results, key=lambda r: r.order):
            chain = [r.address, *r.parents]
            if len(chain) >= 2 and chain[-2] not in children:
                children.append(chain[-2])
        if children:
            out.replies.append(self._reply("250", "\n".join(f"<{child}>" for child in children)))
        elif any(r.outcome == "failed" for r in results) or not results:
            out.replies.append(self._reply("553", f"{address} is undeliverable"))
        elif any(r.outcome == "deferred" for r in results):
            out.replies.append(self._reply("553", f"{address} cannot be resolved at this time"))
        else:
            out.replies.append(self._reply("250", f"<{address}>"))

    def cmd_etrn(self, out: SessionOutput, arg: str) -> None:
        if self.envelope.sender is not None:
            self._protocol_error(out, "503", "ETRN is not permitted inside a transaction")
            return
        if "etrn" in self.selectors:
            self.log(f"ETRN {arg} received from {self._client_text(with_helo=True)}")
        result = self._acl("acl_smtp_etrn", "deny")
        if result.verdict != "accept":
            self._refuse_command(out, "ETRN", arg, result, "458")
            return
        from pyxim.smtp.etrn import run_etrn

        command = self.config.main.get("smtp_etrn_command")
        if not command and not arg.startswith("#"):
            # without smtp_etrn_command only the RFC's "#" form can be served (a queue run for the domain)
            self._protocol_error(out, "501", "argument must begin with #")
            return
        if self.host_checking:
            out.replies.append(self._reply("250", "OK"))  # -bh: nothing is run
            return
        out.replies.append(self._reply(*run_etrn(self.config, self.ctx, arg, str(command or ""))))

    def cmd_mail(self, out: SessionOutput, arg: str) -> None:
        if self.helo is None and self._host_in("hosts_require_helo"):
            self.reject_log(f"rejected MAIL from [{self.peer.address}]: no HELO/EHLO given")
            self._protocol_error(out, "503", "HELO or EHLO required")
            return
        if self.envelope.sender is not None:
            self._protocol_error(out, "503", "sender already given")
            return
        per_connection = int(self.config.main.get("smtp_accept_max_per_connection") or 0)
        if per_connection and self.messages_received >= per_connection:
            out.replies.append(self._reply("421", "too many messages in this connection"))
            return
        m = _MAIL.match(arg)
        if not m:
            self._protocol_error(out, "501", 'MAIL must have an address operand')
            return
        allowed = ("SIZE", "BODY", "SMTPUTF8", "RET", "ENVID") + (("AUTH",) if self.auth_advertised else ())
        if self.config.main.get("prdr_enable"):
            allowed += ("PRDR",)
        address, params, error = _split_address(self._smtp_rewrite(m.group(1)), allow_empty=True, esmtp=self.esmtp,
                                                allowed=allowed)
        if error:
            self._protocol_error(out, "501", error)
            return
        if "RET" in params and params["RET"].upper() not in ("FULL", "HDRS"):
            self._protocol_error(out, "501", "Value for RET is invalid")
            return
        limit = self._size_limit()
        if "SIZE" in params and limit and params["SIZE"].isdigit() and int(params["SIZE"]) > limit:
            size = min(int(params["SIZE"]), 2147483647)  # Exim reads it as a C int
            self.reject_log(f"rejected MAIL FROM:<{address}> {self._host_id()}: "
                            f"message too big: size>={size} max={limit}")
            out.replies.append(self._reply("552", "Message size exceeds maximum permitted"))
            return
        self.ctx.variables["sender_address"] = Tainted(address)
        result = self._acl("acl_smtp_mail", "accept")
        if result.verdict != "accept":
            self.ctx.variables.pop("sender_address", None)
            code, text = self._acl_refusal(result)
            out.replies.append(self._reply(code, text))
            self._log_refusal(self._host_id(), code, f"MAIL <{address}>", result)
            return
        self.envelope.sender = address
        self.envelope.mail_params = params
        if "PRDR" in params:
            self.ctx.variables["prdr_requested"] = "yes"
            out.replies.append(self._reply("250", "OK, PRDR Requested"))
            return
        out.replies.append(self._reply("250", "OK"))

    def cmd_rcpt(self, out: SessionOutput, arg: str) -> None:
        if self.envelope.sender is None:
            self._protocol_error(out, "503", "sender not yet given")
            return
        m = _RCPT.match(arg)
        if not m:
            self._protocol_error(out, "501", "RCPT must have an address operand")
            return
        address, params, error = _split_address(self._smtp_rewrite(m.group(1)), allow_empty=False, esmtp=self.esmtp,
                                                allowed=("NOTIFY", "ORCPT") if self._host_in("dsn_advertise_hosts") else ())
        if error:
            self._protocol_error(out, "501", error)
            return
        dsn_flags = 0
        if "NOTIFY" in params:
            words = [w.upper() for w in params["NOTIFY"].split(",")]
            bits = {"NEVER": _NOTIFY_NEVER, "SUCCESS": _NOTIFY_SUCCESS, "FAILURE": _NOTIFY_FAILURE,
                    "DELAY": _NOTIFY_DELAY}
            if not words or any(w not in bits for w in words) or ("NEVER" in words and len(words) > 1):
                self._protocol_error(out, "501", "Invalid value for NOTIFY parameter")
                return
            for w in words:
                dsn_flags |= bits[w]
        if "@" not in address:
            address = f"{address}@{self._qualify_recipient()}"
        self.envelope.rcpt_count += 1
        rmax = int(self.config.main.get("recipients_max") or 0)
        if rmax and len(self.envelope.recipients) >= rmax:
            out.replies.append(self._reply("452", "too many recipients"))
            return
        local, _, domain = address.rpartition("@")
        # $local_part is lower-cased in the RCPT ACL unless control = caseful_local_part (Exim's rule);
        # the recipient itself keeps its case
        self.ctx.variables.update(
            {"local_part": Tainted(local.lower()), "domain": Tainted(domain), "recipient": Tainted(address),
             ORIGINAL_LOCAL_PART: Tainted(local)}
        )
        before = set(self.acl_state.controls)
        result = self._acl("acl_smtp_rcpt", "deny")
        # caseful/caselower_local_part concern this recipient's ACL run only
        self.acl_state.controls -= {c for c in self.acl_state.controls - before
                                    if c.split("/", 1)[0] in ("caselower_local_part", "caseful_local_part")}
        self.ctx.variables.pop(ORIGINAL_LOCAL_PART, None)
        if result.verdict in ("accept", "discard"):
            if result.verdict == "accept":
                self.envelope.recipients.append(Recipient(address, orcpt=params.get("ORCPT", ""), dsn_flags=dsn_flags))
            out.replies.append(self._reply("250", "Accepted"))
            return
        code, text = self._acl_refusal(result)
        out.replies.append(self._reply(code, text))
        # Exim logs log_message, or a deny statement's own message; nothing for require or the ACL's end
        reason = result.defer_reason or result.log_message or (result.message if result.verb in ("deny", "defer") else None)
        verb = "temporarily rejected" if code.startswith("4") else "rejected"
        auth = ""
        if self.authenticated:
            auth_id = self.ctx.variables.get("authenticated_id", "")
            auth = f" A={self.authenticated}" + (f":{auth_id}" if auth_id else "")
        self.reject_log(f"{self._host_id()} F=<{self.envelope.sender}>{auth} {verb} RCPT <{address}>"
                 + (f": {reason}" if reason else ""))
        if result.verdict == "drop":
            out.close = True

    def _smtp_rewrite(self, text: str) -> str:
        """The rewrite rules with the S flag, over MAIL/RCPT data as the client sent it."""
        if not self.config.rewrite_rules:
            return text
        from pyxim.rewrite import panic_writer, smtp_command

        return smtp_command(self.config, self.ctx, text, log=self.log, panic=panic_writer(self.log, self.local))

    def _qualify_recipient(self) -> str:
        from pyxim.expand.variables import resolve_variable

        return resolve_variable(_Ev(self.ctx), "qualify_recipient")

    def cmd_data(self, out: SessionOutput, arg: str) -> None:
        if not self.envelope.recipients:
            self._protocol_error(out, "503", "valid RCPT command must precede DATA")
            return
        result = self._acl("acl_smtp_predata", "accept")
        if result.verdict != "accept":
            code, text = self._acl_refusal(result)
            self._log_refusal(self._host_id(), code, "DATA", result)
            out.replies.append(self._reply("554" if code == "550" else code, text))
            return
        self.reader.start_data()
        out.replies.append(self._reply("354", 'Enter message, ending with "." on a line by itself'))

    def cmd_bdat(self, out: SessionOutput, arg: str) -> None:
        parts = arg.split()
        if not self.esmtp or not self._host_in("chunking_advertise_hosts"):
            self._protocol_error(out, "503", "BDAT command used when CHUNKING not advertised")
            return
        if not parts or not parts[0].isdigit() or len(parts) > 2 or (len(parts) == 2 and parts[1].upper() != "LAST"):
            self._protocol_error(out, "501", "missing size for BDAT command")
            return
        if not self.envelope.recipients:
            self._protocol_error(out, "503", "valid RCPT command must precede BDAT")
            return
        if self.envelope.chunks is None:
            self.envelope.chunks = bytearray()
        self.reader.start_chunk(int(parts[0]), len(parts) == 2)

    def _chunk(self, out: SessionOutput, chunk: Chunk) -> None:
        assert self.envelope.chunks is not None
        self.envelope.chunks += chunk.data
        if not chunk.last:
            out.replies.append(self._reply("250", f"{len(chunk.data)} byte chunk received"))
            return
        data = bytes(self.envelope.chunks).replace(b"\r\n", b"\n")
        longest = max((len(x) for x in data.split(b"\n")), default=0)
        total = len(self.envelope.chunks)
        self.envelope.chunks = None
        before = len(out.replies)
        self._message_done(out, data, longest)
        if len(out.replies) > before and out.replies[-1].startswith("250 "):
            # Exim reports the last chunk in front of the final answer
            out.replies[-1] = f"250- {len(chunk.data)} byte chunk, total {total}\r\n" + out.replies[-1]

    # -- the message --------------------------------------------------------------

    def _message_done(self, out: SessionOutput, data: bytes, max_line: int) -> None:
        # a new transaction starts after a message was read (Exim's smtp_setup_msg): its first RSET is free
        self.nonmail_seen.discard("RSET")
        if self.reader.data_too_big:
            out.replies.append(self._reply("552", "Message size exceeds maximum permitted"))
            self._reset()
            return
        header_text, body = _split_message(data)
        message_id = self.new_id()
        now = self.clock()
        self.ctx.variables.update(
            {
                "message_exim_id": message_id,
                "message_id": message_id,
                "received_protocol": self._received_protocol(),
                "max_received_linelength": str(max_line),
                "message_size": str(len(data)),
            }
        )
        headers = [SpoolHeader.of(h) for h in header_text]
        # Exim's reception rewrites (envelope, then headers) come before the Received: line
        from pyxim.rewrite import panic_writer, rewrite_reception

        self.envelope.sender, rewrote = rewrite_reception(
            self.config, self.ctx, self.envelope.sender, self.envelope.recipients, headers,
            allow_unqualified_sender=self.local or self._host_in("sender_unqualified_hosts"),
            allow_unqualified_recipient=self.local or self._host_in("recipient_unqualified_hosts"),
            skip=self.deleted_headers, log=self.log, panic=panic_writer(self.log, self.local), prefix=f"{message_id} ")
        if self.envelope.sender is not None:
            self.ctx.variables["sender_address"] = Tainted(self.envelope.sender)
        from pyxim.expand.message import HeaderLine, Message

        # The Received: line exists before the DATA ACL runs (it can see and match it)
        received = self._received_header()
        if received:
            headers.insert(0, SpoolHeader(received, "P"))
        self.ctx.message = Message([HeaderLine(h.text.split(":", 1)[0], h.text) for h in headers if h.type != "*"],
                                   body.decode("utf-8", "surrogateescape"))
        self.ctx.variables["recipients"] = ", ".join(r.address for r in self.envelope.recipients)
        self.ctx.variables["recipients_count"] = str(len(self.envelope.recipients))
        self.current_message_id = message_id
        result = None
        dkim = self._dkim_acl(data)
        if dkim is not None and dkim.verdict not in ("accept", "discard"):
            code, text = self._acl_refusal(dkim)
            out.replies.append(self._reply(code, text))
            reason = dkim.defer_reason or dkim.log_message or (dkim.message if dkim.verb in ("deny", "defer") else None)
            # Exim's line for this stage has no F=<sender>
            self.reject_log(f"{message_id} {self._host_id()} "
                            f"{'temporarily rejected' if code.startswith('4') else 'rejected'} DKIM"
                            + (f" : {reason}" if reason else ""))
            self._reset()
            return
        if self.config.main.get("acl_smtp_mime"):
            from pyxim.acl.mime import is_mime, run_mime_acl

            if is_mime(header_text):
                result = run_mime_acl(self.ctx, lambda: self._acl("acl_smtp_mime", "accept"), data)
        stage = "during MIME ACL checks" if result is not None else "after DATA"
        if result is None:
            result = self._acl("acl_smtp_data", "accept")
        if result.verdict not in ("accept", "discard"):
            code, text = self._acl_refusal(result)
            out.replies.append(self._reply(code, text))
            reason = result.defer_reason or result.log_message or (result.message if result.verb in ("deny", "defer") else None)
            self.reject_log(f"{message_id} {self._host_id()} F=<{self.envelope.sender}> "
                            f"{'temporarily rejected' if code.startswith('4') else 'rejected'} {stage}"
                            + (f": {reason}" if reason else ""))
            self._reset()
            return
        sender = self.envelope.sender or ""
        # id= in the log names the message's own Message-ID, not one added here
        own_msgid = next((h.text.split(":", 1)[1].strip() for h in headers if h.type == "I"), "")
        controls = {c.split("/", 1)[0] for c in self.acl_state.controls}
        # Exim's fixups (Message-Id, From, Date) for local submissions and for
        # control = submission, unless control = suppress_local_fixups
        fixups = (self._local_fixups(headers, message_id, sender)
                  if (self.local or "submission" in controls) and "suppress_local_fixups" not in controls else [])
        if _resent(headers):
            # a resent message: Exim puts its Resent- fixups at the top (below its own Received:), each
            # above the one before, and the original Message-ID is no longer the message's id
            top = 1 if received and headers and headers[0].text == received else 0
            for fixup in fixups:
                headers.insert(top, fixup)
            for h in headers:
                if h.type == "I" and not h.text.lower().startswith("resent-"):
                    h.type = " "
            headers.extend(rewrote)
        else:
            # Exim files its X-rewrote-… records after a Message-Id fixup, before the From: and Date: ones
            cut = 1 if fixups and fixups[0].type == "I" else 0
            headers.extend(fixups[:cut] + rewrote + fixups[cut:])
        # ACL-added headers come last; ACL-removed ones stay in the spool marked deleted
        from pyxim.acl.engine import place_added_headers

        place_added_headers(headers, self.acl_state.add_headers, SpoolHeader.of)
        removed = {name.lower() for name in self.acl_state.remove_headers}
        for h in headers:
            if h.text.split(":", 1)[0].strip().lower() in removed:
                h.type = "*"
        options: dict[str, str | None] = {}
        if self.helo:
            options["helo_name"] = Tainted(self.helo)
        if self.local:
            options["ident"] = _login()
        else:
            # Exim 4.96's forms; what the delivery needs of the reception ($sender_host_name …)
            options["host_address"] = Tainted(f"[{self.peer.address}]:{self.peer.port}")
            if self.ctx.variables.get("sender_host_name"):
                options["host_name"] = Tainted(str(self.ctx.variables["sender_host_name"]))
            if self.authenticated:
                options["host_auth"] = Tainted(self.authenticated)
            if self.peer.local_address:
                options["interface_address"] = Tainted(f"[{self.peer.local_address}]:{self.peer.local_port}")
            if self.ctx.variables.get("sender_ident"):
                options["ident"] = Tainted(str(self.ctx.variables["sender_ident"]))
        options.update(
            {
                "received_protocol": self._received_protocol(),
                "body_linecount": str(body.count(b"\n")),
                "max_received_linelength": str(max_line),
            }
        )
        for name, variable in (("auth_id", "authenticated_id"), ("auth_sender", "authenticated_sender")):
            if name in self.extra_options:
                options[name] = self.extra_options[name]
            elif self.ctx.variables.get(variable) and (self.authenticated or variable == "authenticated_sender"):
                options[name] = Tainted(str(self.ctx.variables[variable]))
        if self.local or self.protocol_override:  # a local submission (-oMa or not)
            options["allow_unqualified_recipient"] = None
            options["allow_unqualified_sender"] = None
        options["deliver_firsttime"] = None
        if "local" in self.extra_options:
            options["local"] = None
        frozen = any(c.split("/", 1)[0] == "freeze" for c in self.acl_state.controls)
        if frozen:
            options["frozen"] = str(int(now))
        mail_params = self.envelope.mail_params
        if "ENVID" in mail_params:
            options["dsn_envid"] = str(mail_params["ENVID"])  # Exim writes it with one dash
        if "RET" in mail_params:
            options["dsn_ret"] = "1" if mail_params["RET"].upper() == "FULL" else "2"
        for h in headers:
            if h.text.split(":", 1)[0].strip().lower() in self.deleted_headers:
                h.type = "*"
        import os

        message = SpoolMessage(message_id, sender, list(self.envelope.recipients), headers, now,
                               caller=_login() if self.local else str(self.config.main.get("exim_user") or _login()),
                               uid=os.getuid(), gid=os.getgid(),
                               options=options, acl_vars={k[4:]: v for k, v in self.ctx.acl_vars.items()
                                                          if k.startswith("acl_m")})
        if result.verdict == "discard":
            out.replies.append(self._reply("250", f"OK id={message_id}"))
            self._reset()
            return
        prdr = "PRDR" in self.envelope.mail_params and len(self.envelope.recipients) > 1
        prdr_final = ""
        if prdr:
            accepted = self._prdr(out, message_id)
            some = "" if len(accepted) == len(self.envelope.recipients) else " for some recipients"
            prdr_final = f"id={message_id} message accepted{some}"
            if not accepted:
                # Exim still answers 250 when every recipient was refused; nothing is kept
                out.replies.append(self._reply("250", prdr_final))
                self._reset()
                return
            message.recipients = accepted
        try:
            stored_id = self.store(message, body)
            # the daemon (or -bs) starts a delivery for it unless the ACLs asked to queue it
            self.received.append((stored_id, not (controls & {"queue", "queue_only"}) and not frozen))
        except OSError as exc:
            out.replies.append(self._reply("451", "Temporary local problem - please try later"))
            self.log(f"spool write failed: {exc}")
            self._reset()
            return
        size = sum(len(h.text.encode("utf-8", "surrogateescape")) for h in headers if h.type != "*") + 1 + len(body)
        # Exim's sender_fullhost: the verified host name, the HELO name where it differs, the address
        host = f"H={self._sender_hosts()[0]}"
        if "incoming_interface" in self.selectors and not self.local and self.peer.local_address:
            host += f" I=[{self.peer.local_address}]:{self.peer.local_port}"
        if self.ctx.variables.get("sender_ident") and not self.local:
            host += f" U={self.ctx.variables['sender_ident']}"  # the ident a trusted caller gave (-oMt)
        if not self.peer.address:
            host = f"U={_login()}"
        msgid_part = f" id={own_msgid.strip('<>')}" if own_msgid else ""
        auth_part = ""
        if self.authenticated:
            auth_id = self.ctx.variables.get("authenticated_id", "")
            auth_part = f" A={self.authenticated}" + (f":{auth_id}" if auth_id else "")
        proto = self._received_protocol()
        if self.tls_active:
            tls_part = ""
            if "tls_cipher" in self.selectors:
                tls_part += f" X={self.ctx.variables.get('tls_in_cipher', '')}"
            if "tls_certificate_verified" in self.selectors:
                verified = "yes" if self.ctx.variables.get("tls_in_certificate_verified") == "1" else "no"
                tls_part += f" CV={verified}"
            if "tls_peerdn" in self.selectors and self.ctx.variables.get("tls_in_peerdn"):
                tls_part += f' DN="{self.ctx.variables["tls_in_peerdn"]}"'
            auth_part = tls_part + auth_part
        extra = ""
        if "subject" in self.selectors:
            subject = next((h.text.split(":", 1)[1].strip() for h in headers
                            if h.text.split(":", 1)[0].strip().lower() == "subject" and h.type != "*"), None)
            if subject is not None:
                from pyxim.expand.rfc2047 import decode_header_words
                from pyxim.logselector import quote_subject

                extra += f" T={quote_subject(decode_header_words(' '.join(subject.split())))}"
        if "received_recipients" in self.selectors:
            extra += " for " + " ".join(r.address for r in self.envelope.recipients)
        prdr_part = " PRDR" if prdr else ""
        if "proxy" in self.selectors and self.ctx.variables.get("proxy_session") == "yes":
            # +proxy: the proxy's own address, after P= (Exim's order)
            prdr_part += f" PRX={self.ctx.variables.get('proxy_local_address', '')}"
        dkim_part = f" DKIM={self.dkim_passed}" if getattr(self, "dkim_passed", "") else ""
        from pyxim.policy.arc import receive_log_tag

        dkim_part += receive_log_tag(self.ctx)  # Exim tags the line "ARC" after a chain that passed
        self.log(f"{stored_id} <= {sender or '<>'} {host} P={proto}{prdr_part}{auth_part} S={size}{dkim_part}"
                 f"{msgid_part}{extra}")
        self.last_message_id = stored_id
        if frozen:
            self.log(f"{stored_id} frozen by ACL")
        out.replies.append(self._reply("250", prdr_final if prdr else f"OK id={stored_id}"))
        self.messages_received += 1
        self._reset()

    def _local_fixups(self, headers: list[SpoolHeader], message_id: str, sender: str) -> list[SpoolHeader]:
        """Locally submitted messages get Message-Id, From and Date when they lack them (Exim's fixups)."""
        have = {h.text.split(":", 1)[0].strip().lower() for h in headers}
        # with Resent- headers present, the fixups are the Resent- forms (RFC 5322 section 3.6.6)
        prefix = "Resent-" if _resent(headers) else ""
        low = prefix.lower()
        added: list[SpoolHeader] = []
        if f"{low}message-id" not in have:
            added.append(SpoolHeader(f"{prefix}Message-Id: <E{message_id}@{self._primary()}>\n", "I"))
        if f"{low}from" not in have and sender:
            name = self.originator_name
            added.append(SpoolHeader(f"{prefix}From: {name} <{sender}>\n" if name else f"{prefix}From: {sender}\n",
                                     "F"))
        if f"{low}date" not in have:
            added.append(SpoolHeader(f"{prefix}Date: {expand_string('$tod_full', self.ctx)}\n", " "))
        return added

    @property
    def local(self) -> bool:
        """A session on standard input (-bs): no remote host."""
        return not self.peer.address

    def _log_refusal(self, who: str, code: str, what: str, result: AclResult) -> None:
        """Exim's "… rejected MAIL <x>: reason" lines (reason: log_message, or a deny's own message)."""
        reason = result.defer_reason or result.log_message or (result.message if result.verb in ("deny", "defer") else None)
        verb = "temporarily rejected" if code.startswith("4") else "rejected"
        self.reject_log(f"{who} {verb} {what}" + (f": {reason}" if reason else ""))

    def _client_text(self, with_helo: bool) -> str:
        port = f":{self.peer.port}" if "incoming_port" in self.selectors and self.peer.port else ""
        helo = f"({self.helo}) " if with_helo and self.helo else ""
        return f"{helo}[{self.peer.address}]{port}"

    def _host_id(self) -> str:
        """How the client appears in log lines: H=(helo) [ip], or U=login for local sessions."""
        if self.local:
            return f"U={_login()}"
        if self.ctx.variables.get("sender_host_name"):
            # a verified name: Exim's sender_fullhost (the HELO name only where it differs)
            return "H=" + self._sender_hosts()[0].replace(f"]:{self.peer.port}", "]")
        helo = f"({self.helo}) " if self.helo else ""
        return f"H={helo}[{self.peer.address}]"

    def _prdr(self, out: SessionOutput, message_id: str) -> list[Recipient]:
        """Per-recipient data ACL (PRDR): one reply per recipient after a 353; returns those accepted."""
        out.replies.append(self._reply("353", "PRDR content analysis beginning"))
        accepted: list[Recipient] = []
        for rcpt in self.envelope.recipients:
            local, _, domain = rcpt.address.rpartition("@")
            self.ctx.variables.update(
                {"local_part": Tainted(local), "domain": Tainted(domain), "recipient": Tainted(rcpt.address)}
            )
            result = self._acl("acl_smtp_data_prdr", "accept")
            if result.verdict in ("accept", "discard"):
                accepted.append(rcpt)
                text = f"PRDR R=<{rcpt.address}> acceptance"
                out.replies.append(self._reply("250", text))
                self.log(f"{message_id} {text}")
                continue
            code, text = self._acl_refusal(result, prdr=True)
            out.replies.append(self._reply(code, text))
            self.log(f"{message_id} PRDR {rcpt.address} {text}")
        return accepted

    def _received_protocol(self) -> str:
        """smtp, esmtp, esmtps (TLS), esmtpa (AUTH), esmtpsa (both), local-esmtp … as Exim names them."""
        if self.protocol_override:
            return self.protocol_override
        name = ("e" if self.esmtp else "") + "smtp"
        if self.tls_active:
            name += "s"
        if self.authenticated and not getattr(self, "origin_auth", False):
            name += "a"  # (not for an authentication a trusted caller stated with -oMaa)
        return f"local-{name}" if self.local else name

    def _sender_hosts(self) -> tuple[str, str]:
        """Exim's $sender_fullhost and $sender_rcvhost: the host name when it was looked up and
        verified, the HELO name unless it says the same (the name, or the client's own address as a
        literal), the port with log_selector +incoming_port, the ident."""
        import ipaddress

        if not self.peer.address:
            return "", ""
        address = f"[{self.peer.address}]"
        port = str(self.peer.port) if "incoming_port" in self.selectors and self.peer.port else ""
        helo = self.helo
        ident = str(self.ctx.variables.get("sender_ident") or "")
        show_helo = bool(helo)
        if helo and helo.startswith("[") and helo.endswith("]"):
            literal = helo[1:-1]
            literal = literal[5:] if literal[:5].lower() == "ipv6:" else literal
            try:
                show_helo = ipaddress.ip_address(literal) != ipaddress.ip_address(self.peer.address.split("%")[0])
            except ValueError:
                pass
        name = str(self.ctx.variables.get("sender_host_name") or "")
        with_port = f"{address}:{port}" if port else address
        if not name:
            fullhost = f"({helo}) {with_port}" if helo else with_port
            extra = [f"port={port}"] if port else []
            extra += [f"helo={helo}"] if show_helo else []
            extra += [f"ident={ident}"] if ident else []
            return fullhost, address + (f" ({' '.join(extra)})" if extra else "")
        if show_helo and name.lower() == (helo or "").lower():
            show_helo = False
        if show_helo:
            rcvhost = (f"{name}\n\t({with_port} helo={helo} ident={ident})" if ident
                       else f"{name} ({with_port} helo={helo})")
            return f"{name} ({helo}) {with_port}", rcvhost
        return f"{name} {with_port}", f"{name} ({with_port} ident={ident})" if ident else f"{name} ({with_port})"

    def _set_sender_hosts(self) -> None:
        fullhost, rcvhost = self._sender_hosts()
        self.ctx.variables["sender_fullhost"] = Tainted(fullhost) if fullhost else ""
        self.ctx.variables["sender_rcvhost"] = Tainted(rcvhost) if rcvhost else ""

    def _received_header(self) -> str:
        self._set_sender_hosts()
        if self.local:
            self.ctx.variables.setdefault("sender_ident", _login())
        self.ctx.variables["received_for"] = (
            self.envelope.recipients[0].address if len(self.envelope.recipients) == 1 else ""
        )
        self.ctx.variables["sender_address"] = self.envelope.sender or ""
        try:
            text = expand_string(str(self.config.main.get("received_header_text") or ""), self.ctx)
            stamp = expand_string("$tod_full", self.ctx)
        except ExpansionError:
            return ""
        if not text:
            return ""
        # Exim adds the date itself, after a semicolon
        return text.rstrip("\n") + f";\n\t{stamp}\n"


def _printable(data: bytes) -> str:
    from pyxim.expand.operators import string_printing

    return string_printing(data)


def _login() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


class _Ev:
    """The smallest Evaluation stand-in variables.resolve_variable needs."""

    def __init__(self, ctx: ExpansionContext) -> None:
        self.ctx = ctx


def _split_message(data: bytes) -> tuple[list[str], bytes]:
    """Split at the first empty line into header fields (continuations joined) and body."""
    text = data
    headers: list[str] = []
    pos = 0
    while pos < len(text):
        end = text.find(b"\n", pos)
        line = text[pos:] if end < 0 else text[pos : end + 1]
        if line in (b"\n", b""):
            pos = pos + len(line)
            break
        if line[:1] in (b" ", b"\t") and headers:
            headers[-1] += line.decode("utf-8", "surrogateescape")
        elif b":" in line.split(b"\n")[0] and not line.startswith((b" ", b"\t")) and b" " not in line.split(b":")[0].strip():
            headers.append(line.decode("utf-8", "surrogateescape"))
        else:
            break  # not a header line: the body starts here
        pos = pos + len(line)
    return [h if h.endswith("\n") else h + "\n" for h in headers], text[pos:]


def _split_address(text: str, allow_empty: bool, esmtp: bool, allowed: tuple[str, ...]) -> tuple[str, dict[str, str], str | None]:
    """Parse `<address> PARAM=value…` as Exim does; return (address, params, error)."""
    text = text.strip()
    if text.startswith("<"):
        end = text.find(">")
        if end < 0:
            return "", {}, f"{text}: '>' missing at end of address"
        address, rest = text[1:end].strip(), text[end + 1 :].strip()
        if address.startswith("@") and ":" in address:
            address = address.split(":", 1)[1]
    else:
        address, _, rest = text.partition(" ")
        if rest and "=" not in rest.split()[0]:
            return "", {}, f'{text}: missing or malformed local part (expected word or "<")'
    params: dict[str, str] = {}
    if rest:
        for word in rest.split():
            name, _, value = word.partition("=")
            if not esmtp or name.upper() not in allowed:
                return "", {}, f"{text}: malformed address: {rest} may not follow <{address}> "
            if name.upper() in params:
                return "", {}, f"{name.upper()} can be specified once only"
            params[name.upper()] = value
    if address == "":
        if allow_empty:
            return "", params, None
        return "", {}, "<>: missing or malformed local part"
    if " " in address or address.startswith("@") or address.endswith("@") or address.count("@") > 1 and '"' not in address:
        return "", {}, f"{text}: missing or malformed local part (expected word or \"<\")"
    return address, params, None


def _resent(headers: list[SpoolHeader]) -> bool:
    return any(h.type != "*" and h.text[:7].lower() == "resent-" for h in headers)

"""The smtp transport's delivery: a thin blocking-socket adapter around the sans-I/O client.

Delivery runs in a worker (thread or -odi process), so plain blocking sockets
with timeouts are used: connect_timeout for the connection, command_timeout
for each command reply, data_timeout for writing the message, final_timeout
for the reply after the data. Hosts are tried in order (hosts_randomize,
hosts_max_try); a connection-level temporary failure moves on to the next
host; when every host failed the address is deferred with the last error.

STARTTLS is opportunistic (unless hosts_avoid_tls), through pyOpenSSL memory
BIOs; hosts_require_tls defers when TLS cannot be had; a failed handshake is
retried in clear when tls_tempfail_tryclear allows.

Log wording follows Exim 4.96 (checked against exim4 on loopback):
  => a@b R=r T=t H=name [ip] [X=… CV=…] [K] C="250 …"
  ** a@b R=r T=t H=name [ip]: SMTP error from remote mail server after RCPT TO:<a@b>: 550 …
  == a@b R=r T=t defer (-44) H=name [ip]: SMTP error from remote mail server after RCPT TO:<a@b>: 451 …
  == a@b R=r T=t defer (111): Connection refused
The text after "defer (n)" / "T=t" is `SmtpResult.log_text`; the engine uses it
when present (see the lead's note), `message` holds Exim's message alone.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import os
import random
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from pyxim import logselector
from pyxim.delivery import CONNECTION_CLOSERS, CONTINUE_HOSTS, DeliveryResult, TransportCall
from pyxim.delivery.write import TransportWriteError, spec_for, write_message
from pyxim.errors import ExpansionError, ForcedFail, LookupDefer
from pyxim.expand import expand_string
from pyxim.lists import iterate_list
from pyxim.smtp.client import (
    ERRNO_AUTHFAIL,
    ERRNO_DATA4XX,
    ERRNO_MAIL4XX,
    ERRNO_SMTPCLOSED,
    ERRNO_SMTPFORMAT,
    ERRNO_TLSFAILURE,
    ClientAuth,
    ClientOptions,
    Envelope,
    Outcome,
    RcptSpec,
    ServerFeatures,
    SmtpClient,
    printing,
)

ERRNO_EXPANDFAIL = -27
ERRNO_UNKNOWNHOST = -32
ERRNO_HOST_IS_LOCAL = -50
ERRNO_HRETRY = -54  # every host waits for its retry time

_NOTIFY_BITS = ((0x02, "NEVER"), (0x04, "SUCCESS"), (0x08, "FAILURE"), (0x10, "DELAY"))


@dataclass(slots=True)
class SmtpResult(DeliveryResult):
    """errno: Exim's basic_errno; log_text: what follows "defer (n)" or "T=name" in the
    == / ** line (H=… included); user_message: the bounce's wording."""

    errno: int = 0
    user_message: str = ""
    log_errno: int | None = None  # the n of "defer (n)" when not errno (a refusal at connection: 0)
    log_text: str | None = None
    waiting_host: str = ""  # a deferral: the (first) host the address waits for (the "wait" hints)


@dataclass(slots=True)
class Target:
    name: str
    address: str
    port: int
    from_transport: bool = False  # from the transport's `hosts` option (allow_localhost applies)


class _Failed(Exception):
    """A connection-level failure before the SMTP dialogue (connect, TLS)."""

    def __init__(self, text: str, errno: int, log_line: str) -> None:
        super().__init__(text)
        self.text, self.errno, self.log_line = text, errno, log_line


# -- options ---------------------------------------------------------------------------


def _expand(call: TransportCall, name: str) -> str | None:
    value = call.transport.options.get(name)
    if value is None:
        return None
    try:
        return expand_string(str(value), call.ctx)
    except ForcedFail:
        return None


def _host_matches(call: TransportCall, option: str, target: Target) -> bool:
    text = call.transport.options.get(option)
    if not text:
        return False
    from pyxim.lists import match_host_list

    try:
        return match_host_list(call.ctx, target.address, str(text), target.name)
    except (ExpansionError, LookupDefer):
        return False


def _port(text: str) -> int:
    text = text.strip()
    if text.isdigit():
        return int(text)
    try:
        return socket.getservbyname(text, "tcp")
    except OSError:
        return 25 if text == "smtp" else 0


def _targets(call: TransportCall, port: int) -> list[Target]:
    opts = call.transport.options
    hosts = list(call.hosts)
    option = _expand(call, "hosts")
    targets: list[Target] = []
    if option and (not hosts or opts.get("hosts_override")):
        targets = _host_list(call, option, port)
    else:
        for h in hosts:
            if h.address:  # a route_list "host::port" overrides the transport's port
                targets.append(Target(h.name, h.address, getattr(h, "port", None) or port))
    if opts.get("hosts_randomize"):
        random.shuffle(targets)
    limit = opts.get("hosts_max_try")
    if isinstance(limit, int) and limit > 0:
        targets = targets[:limit]
    return targets


def _host_list(call: TransportCall, text: str, port: int) -> list[Target]:
    """The hosts of a host list (IP addresses, or names looked up; "name:port" items)."""
    targets: list[Target] = []
    for item in iterate_list(text):
        name, hport = item, port
        if item.count(":") == 1 and item.rsplit(":", 1)[1].isdigit():
            name, hport = item.rsplit(":", 1)[0], int(item.rsplit(":", 1)[1])
        bare = name.strip("[]")
        try:
            ipaddress.ip_address(bare)
            targets.append(Target(bare, bare, hport, True))
            continue
        except ValueError:
            pass
        try:
            addresses = call.ctx.get_resolver().addresses_for_name(name)
        except LookupDefer:
            addresses = []
        targets.extend(Target(name, a, hport, True) for a in addresses)
    return targets


def _fallback_targets(call: TransportCall, port: int) -> list[Target]:
    """fallback_hosts: the router's (when it set them) or else the transport's, tried once every regular
    host has deferred the address (not expanded, as in Exim)."""
    text = ""
    if call.config is not None and call.router:
        router = next((r for r in call.config.routers if r.name == call.router), None)
        if router is not None:
            text = str(router.options.get("fallback_hosts") or "")
    text = text or str(call.transport.options.get("fallback_hosts") or "")
    if not text:
        return []
    targets = _host_list(call, text, port)
    if call.transport.options.get("hosts_randomize"):
        random.shuffle(targets)
    return targets


def _is_local(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if ip.is_loopback or ip.is_unspecified:
        return True
    from pyxim.lists import _interface_addresses

    return address in _interface_addresses()


def _helo(call: TransportCall) -> str:
    try:
        value = _expand(call, "helo_data")
    except ExpansionError:
        value = None
    if value:
        return value
    from pyxim.transports.local import primary_hostname

    return primary_hostname(call)


def _rcpt(call: TransportCall, address: str, original: str) -> RcptSpec:
    rcpt = RcptSpec(address)
    spooled = next((r for r in call.message.recipients if r.address == original), None)
    if spooled is not None and not call.no_dsn:
        rcpt.orcpt = spooled.orcpt
        words = [name for bit, name in _NOTIFY_BITS if spooled.dsn_flags & bit]
        rcpt.notify = "NEVER" if "NEVER" in words else ",".join(words)
    return rcpt


def _envelope(call: TransportCall, data: bytes) -> Envelope:
    msg = call.message
    rcpts = [_rcpt(call, call.address, call.original)] + [_rcpt(call, a, o) for a, o in call.batch]
    ret = "" if call.no_dsn else {"1": "FULL", "2": "HDRS"}.get(str(msg.options.get("dsn_ret") or ""), "")
    envid = "" if call.no_dsn else str(msg.options.get("dsn_envid") or "")
    size = sum(len(h.text.encode("utf-8", "surrogateescape")) for h in msg.headers) + len(call.body)
    return Envelope(
        sender=str(call.ctx.variables.get("return_path", msg.sender) if call.transport.options.get("return_path")
                   else msg.sender),
        recipients=rcpts,
        size=size + call.body.count(b"\n"),
        eight_bit=any(b > 0x7F for b in data),
        dsn_ret=ret,
        dsn_envid=envid,
    )


# -- AUTH as a client ---------------------------------------------------------------------


def _caret(text: str) -> bytes:
    """client_send: "^" stands for a binary zero, "^^" for a caret."""
    return text.replace("^^", "\x00CARET\x00").replace("^", "\x00").replace("\x00CARET\x00", "^").encode(
        "utf-8", "surrogateescape")


def _authenticators(call: TransportCall) -> list[ClientAuth]:
    """The configured client authenticators (plaintext, cram_md5), in order, options expanded."""
    out: list[ClientAuth] = []
    for inst in getattr(call.config, "authenticators", None) or []:
        o = inst.options
        public = str(o.get("public_name") or inst.name)
        try:
            set_id = expand_string(str(o["client_set_id"]), call.ctx) if o.get("client_set_id") else ""
            if inst.driver == "plaintext" and o.get("client_send") is not None:
                responses: list[bytes | None] = [
                    _caret(expand_string(item, call.ctx)) for item in iterate_list(str(o["client_send"]))]
                out.append(ClientAuth(inst.name, public, responses, set_id=set_id))
            elif inst.driver == "cram_md5" and o.get("client_name") is not None and o.get("client_secret"):
                name = expand_string(str(o["client_name"]), call.ctx)
                secret = expand_string(str(o["client_secret"]), call.ctx)
                out.append(ClientAuth(inst.name, public, cram_md5=(name, secret), set_id=set_id))
        except (ExpansionError, ForcedFail):
            continue  # Exim: a failed client expansion skips that authenticator
    return out


# -- TLS --------------------------------------------------------------------------------


def _client_context(call: TransportCall, verify: str) -> object:
    from OpenSSL import SSL

    ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
    ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
    ctx.set_options(SSL.OP_NO_COMPRESSION)
    cert = _expand(call, "tls_certificate")
    if cert:
        ctx.use_certificate_chain_file(cert)
        ctx.use_privatekey_file(_expand(call, "tls_privatekey") or cert)
    ciphers = _expand(call, "tls_require_ciphers")
    if ciphers:
        ctx.set_cipher_list(ciphers.encode())
    if verify != "none":
        where = _expand(call, "tls_verify_certificates") or "system"
        if where == "system":
            ctx.set_default_verify_paths()
        elif os.path.isdir(where):
            ctx.load_verify_locations(None, where)
        else:
            ctx.load_verify_locations(where)
        failed: list[bool] = []

        def check(conn, cert, errno, depth, ok):  # type: ignore[no-untyped-def]
            if not ok:
                failed.append(True)
            return bool(ok) or verify == "try"

        ctx.set_verify(SSL.VERIFY_PEER, check)
        ctx.set_app_data(failed)
    return ctx


class _Channel:
    """A blocking socket, plain or (after STARTTLS) through pyOpenSSL memory BIOs."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.tls = None  # type: ignore[var-annotated]
        self.verified = False

    def _flush(self) -> None:
        from OpenSSL import SSL

        while True:
            try:
                data = self.tls.bio_read(65536)  # type: ignore[union-attr]
            except SSL.WantReadError:
                return
            if not data:
                return
            self.sock.sendall(data)

    def send(self, data: bytes) -> None:
        if self.tls is None:
            self.sock.sendall(data)
            return
        self.tls.sendall(data)
        self._flush()

    def recv(self) -> bytes:
        if self.tls is None:
            return self.sock.recv(65536)
        from OpenSSL import SSL

        while True:
            try:
                return self.tls.recv(65536)
            except SSL.WantReadError:
                self._flush()
                data = self.sock.recv(65536)
                if not data:
                    return b""
                self.tls.bio_write(data)
            except (SSL.ZeroReturnError, SSL.SysCallError):
                return b""
            except SSL.Error:
                return b""

    def start_tls(self, context: object, sni: str | None, verify: str = "none",
                  check_name: str | None = None) -> None:
        from OpenSSL import SSL

        conn = SSL.Connection(context, None)  # type: ignore[arg-type]
        conn.set_connect_state()
        if sni:
            conn.set_tlsext_host_name(sni.encode("idna"))
        while True:
            try:
                conn.do_handshake()
                break
            except SSL.WantReadError:
                self.tls = conn
                self._flush()
                data = self.sock.recv(65536)
                if not data:
                    raise _Failed("connection closed during the TLS handshake", ERRNO_TLSFAILURE, "") from None
                conn.bio_write(data)
            except SSL.Error as exc:
                self.tls = conn
                self._flush()
                raise _Failed(f"TLS error on connection (SSL_connect): {_ssl_reason(exc)}", ERRNO_TLSFAILURE,
                              "") from None
        self.tls = conn
        self._flush()
        failed = context.get_app_data()  # type: ignore[attr-defined]
        peer = conn.get_peer_certificate()
        self.verified = peer is not None and not failed
        if isinstance(failed, list):
            failed.clear()
        if self.verified and check_name is not None and not _name_matches(peer, check_name):
            self.verified = False
        if verify == "require" and not self.verified:
            raise _Failed("certificate verification failed", ERRNO_TLSFAILURE, "")

    def tls_fields(self, selectors: frozenset[str]) -> str:
        if self.tls is None:
            return ""
        out = ""
        if "tls_cipher" in selectors:
            version = self.tls.get_protocol_version_name() or ""
            version = version.replace("TLSv", "TLS")  # Exim (OpenSSL builds) writes TLS1.3
            out += f" X={version}:{self.tls.get_cipher_name() or ''}:{self.tls.get_cipher_bits() or 0}"
        if "tls_certificate_verified" in selectors:
            out += f" CV={'yes' if self.verified else 'no'}"
        return out

    def close(self) -> None:
        if self.tls is not None:
            try:  # close_notify, as Exim's tls_close() sends it
                self.tls.shutdown()
                self._flush()
            except Exception:  # noqa: BLE001,S110 — the peer may be gone already
                pass
        try:
            self.sock.close()
        except OSError:
            pass


def _name_matches(peer: object, name: str) -> bool:
    """tls_verify_cert_hostnames: the certificate's subjectAltName (or CN) names the host."""
    from cryptography import x509

    try:
        cert = peer.to_cryptography()  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001
        return False
    name = name.lower().rstrip(".")
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        ip = None
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns_names = [n.lower() for n in san.get_values_for_type(x509.DNSName)]
        ips = san.get_values_for_type(x509.IPAddress)
    except x509.ExtensionNotFound:
        dns_names = [str(a.value).lower() for a in cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)]
        ips = []
    if ip is not None:
        return ip in ips
    for pattern in dns_names:
        if pattern == name:
            return True
        if pattern.startswith("*.") and "." in name and name.split(".", 1)[1] == pattern[2:]:
            return True
    return False


def _ssl_reason(exc: Exception) -> str:
    try:
        parts = exc.args[0]
        if isinstance(parts, list) and parts and isinstance(parts[-1], tuple):
            return str(parts[-1][-1])
    except (IndexError, TypeError):
        pass
    return str(exc) or type(exc).__name__


# -- one connection ---------------------------------------------------------------------


def _connect(call: TransportCall, t: Target, timeout: float) -> socket.socket:
    family = socket.AF_INET6 if ":" in t.address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        interface = _expand(call, "interface")
        if interface:
            for item in iterate_list(interface):
                if (":" in item) == (family == socket.AF_INET6):
                    sock.bind((item, 0))
                    break
        sock.settimeout(timeout or None)
        sock.connect((t.address, t.port))
    except TimeoutError:
        sock.close()
        raise _Failed(os.strerror(110), 110, f"H={t.name} [{t.address}] Connection timed out") from None
    except OSError as exc:
        sock.close()
        code = exc.errno or 0
        text = os.strerror(code) if code else str(exc)
        raise _Failed(text, code, f"H={t.name} [{t.address}] {text}") from None
    return sock


def _converse(call: TransportCall, t: Target, client: SmtpClient, chan: _Channel) -> None:
    opts = call.transport.options
    command_timeout = float(opts.get("command_timeout") or 300)
    data_timeout = float(opts.get("data_timeout") or 300)
    final_timeout = float(opts.get("final_timeout") or 600)
    verify = "none"
    if _host_matches(call, "tls_verify_hosts", t):
        verify = "require"
    elif _host_matches(call, "tls_try_verify_hosts", t):
        verify = "try"
    while not client.done:
        out = client.data_to_send()
        if out:
            chan.sock.settimeout(data_timeout if len(out) > 4096 else command_timeout)
            try:
                chan.send(out)
            except TimeoutError:
                client.timed_out()
                break
            except OSError:
                client.connection_closed()
                break
        if client.done:
            break
        if client.tls_wanted:
            try:
                chan.sock.settimeout(command_timeout)
                check = t.name if _host_matches(call, "tls_verify_cert_hostnames", t) else None
                chan.start_tls(_client_context(call, verify), _expand(call, "tls_sni"), verify, check)
            except _Failed as exc:
                client.tls_failed(exc.text.removeprefix("TLS error on connection (SSL_connect): "))
                break
            except (OSError, TimeoutError) as exc:
                client.tls_failed(str(exc) or "timed out")
                break
            except Exception as exc:  # noqa: BLE001 — pyOpenSSL setup errors (files, ciphers)
                client.tls_failed(_ssl_reason(exc))
                break
            client.tls_started()
            continue
        chan.sock.settimeout(final_timeout if client.waiting_for == "final" else command_timeout)
        try:
            data = chan.recv()
        except TimeoutError:
            client.timed_out()
            break
        except OSError:
            client.connection_closed()
            break
        if not data:
            client.connection_closed()
            break
        client.receive(data)
    rest = client.data_to_send()  # QUIT
    if rest:
        try:
            chan.sock.settimeout(min(command_timeout, 5))
            chan.send(rest)
            # read what is left (pipelined replies, 221) so closing does not reset the connection
            for _ in range(64):
                if not chan.recv():
                    break
        except (OSError, TimeoutError):
            pass


# -- the delivery function ----------------------------------------------------------------


def deliver(call: TransportCall) -> DeliveryResult:
    opts = call.transport.options
    tname = call.transport.name
    selectors = logselector.parse(str(call.config.main.get("log_selector") or "")) if call.config else \
        logselector.DEFAULT_ON
    lmtp = str(opts.get("protocol") or "smtp").lower() == "lmtp"
    try:
        # with protocol = lmtp the default port is the "lmtp" service, as in Exim
        port_text = (_expand(call, "port") if "port" in call.transport.explicit or not lmtp else "lmtp") or "smtp"
    except ExpansionError as exc:
        return SmtpResult("defer", f'failed to expand "port" in {tname} transport: {exc}', errno=ERRNO_EXPANDFAIL)
    port = _port(port_text)
    if not port:
        return SmtpResult("defer", f'TCP port "{port_text}" is not defined for {tname} transport')
    try:
        targets = _targets(call, port)
    except ExpansionError as exc:
        return SmtpResult("defer", f'failed to expand "hosts" in {tname} transport: {exc}', errno=ERRNO_EXPANDFAIL)
    if not targets:
        # neither the router nor the transport gave hosts: Exim keeps no retry record for it
        return SmtpResult("defer", f"{tname} transport called with no hosts set", errno=-1, host_retry=True)
    try:
        spec = spec_for(call, use_crlf=False, escape_headers=False)
        spec.check_string = spec.escape_string = None
        data = write_message(call.message.headers, call.body, spec)
    except TransportWriteError as exc:
        return SmtpResult("defer", f"failed to expand headers_add or headers_remove: {exc.reason}",
                          errno=ERRNO_EXPANDFAIL)
    from pyxim.transports.dkim_sign import DkimSignError, sign

    sign_log: list[str] = []  # DKIM: why a message went unsigned, or was deferred (dkim_strict)
    try:
        data = sign(call, data, sign_log)  # DKIM signatures go first, over what is sent
    except DkimSignError as exc:
        return SmtpResult("defer", str(exc), errno=13, log_text=f": {exc}", log=sign_log)
    from pyxim.transports.arc_sign import ArcSignError, arc_sign

    try:
        data = arc_sign(call, data, sign_log)  # Exim seals after DKIM signing: the ARC set goes on top
    except ArcSignError as exc:
        return SmtpResult("defer", str(exc), errno=ERRNO_EXPANDFAIL, log=sign_log)
    envelope = _envelope(call, data)
    base = ClientOptions(
        helo=_helo(call),
        lmtp=str(opts.get("protocol") or "smtp").lower() == "lmtp",  # the smtp transport speaking LMTP
        max_rcpt=int(opts.get("max_rcpt") or 100),
        size_addition=int(opts.get("size_addition") if opts.get("size_addition") is not None else 1024),
    )
    last: SmtpResult | None = None
    log_lines: list[str] = sign_log
    retry = _HostRetry(call)
    skipped = serialized = 0
    # every regular host having deferred the address, the fallback hosts get their turn
    fallback = [f for f in _fallback_targets(call, port) if (f.address, f.port) not in
                {(t.address, t.port) for t in targets}]
    for t in targets + fallback:
        if t.from_transport and not opts.get("allow_localhost") and _is_local(t.address):
            # only the transport's own hosts: for a router's hosts its `self` option decides
            last = SmtpResult("defer", f"{tname} transport found host {t.name} to be local",
                              errno=ERRNO_HOST_IS_LOCAL)
            continue
        if not retry.due(t):
            skipped += 1  # a host that failed lately waits for its retry time (other hosts are tried)
            continue
        with _serialized(call, t) as free:
            if not free:
                serialized += 1  # serialize_hosts: another delivery is talking to this host
                continue
            final, result = _try_host(call, t, envelope, data, base, selectors, log_lines)
        if final:
            retry.succeeded(t)  # the host answered: whatever it said of the address, the host is well
            result.log = log_lines + result.log
            return result
        retry.failed(t, result)
        last = result
    if last is None and serialized:
        # no retry record (as in Exim): the address waits for the next queue run
        domain = call.address.rpartition("@")[2]
        last = SmtpResult("defer", f"connection limit reached for all hosts for '{domain}'", errno=ERRNO_HRETRY,
                          host_retry=True, log=log_lines)
        return last
    if last is None and skipped:
        domain = call.address.rpartition("@")[2]
        last = SmtpResult("defer", f"retry time not reached for any host for '{domain}'", errno=ERRNO_HRETRY)
    if last is None:
        last = SmtpResult("defer", "all hosts failed")
    if retry.recorded or skipped:
        # the hosts' records decide when this address is tried again: it gets none of its own
        last.host_retry = True
        last.retry_expired = retry.recorded and retry.all_expired and not skipped
    last.log = log_lines
    last.waiting_host = targets[0].address
    return last


@contextlib.contextmanager
def _serialized(call: TransportCall, t: Target) -> Iterator[bool]:
    """serialize_hosts: a matching host gets one connection at a time across every process on this
    spool (Exim's "host-serialize-<name>" key); yields False while another delivery holds it."""
    if not call.transport.options.get("serialize_hosts") or not _host_matches(call, "serialize_hosts", t):
        yield True
        return
    from pyxim.delivery.serialize import slot

    spool = str(call.config.main.get("spool_directory") or "") if call.config is not None else ""
    with slot(spool, f"host-serialize-{t.name}", 1) as free:
        yield free


class _HostRetry:
    """Per-host retry state, as Exim keeps it: a host that failed at connection level (refused,
    timed out, dropped, 4xx greeting or EHLO) gets a record "T:name:ip" (":port" added when not
    25) that every message to that host respects until its retry time; a 4xx after MAIL or the
    data is about this message only ("T:name:ip:message-id"). A forced delivery (-M, -qf) tries
    every host."""

    def __init__(self, call: TransportCall) -> None:
        self.call = call
        self.now = call.now or time.time()
        self.message_id = call.message.message_id
        self.db = None
        if call.config is not None and call.config.main.get("spool_directory") and self.message_id:
            from pyxim.queue.retry import RetryDb

            self.db = RetryDb(call.config)
        self.recorded = False  # some host's failure was recorded in this delivery
        self.all_expired = True  # every recorded host is past its retry rule's last cutoff

    @staticmethod
    def key(t: Target) -> str:
        return f"T:{t.name}:{t.address}" + (f":{t.port}" if t.port != 25 else "")

    def due(self, t: Target) -> bool:
        if self.db is None or self.call.ignore_retry:
            return True
        for key in (self.key(t), f"{self.key(t)}:{self.message_id}"):
            state = self.db.get(key)
            # a host past its last cutoff is tried once more: if it fails again the address times out
            if state is not None and not state.expired and state.next_try > self.now:
                return False
        return True

    def succeeded(self, t: Target) -> None:
        if self.db is None:
            return
        for key in (self.key(t), f"{self.key(t)}:{self.message_id}"):
            if self.db.get(key) is not None:  # a read is cheap; most hosts have no record to delete
                self.db.succeeded(key)

    def failed(self, t: Target, result: SmtpResult) -> None:
        if self.db is None or result.status != "defer":
            return
        key = self.key(t)
        if result.errno in (ERRNO_MAIL4XX, ERRNO_DATA4XX):
            key += f":{self.message_id}"
        state = self.db.failed(key, t.name, self.now, result.message)
        self.recorded = True
        self.all_expired = self.all_expired and state.expired


@dataclass(slots=True)
class _Kept:
    chan: _Channel
    features: ServerFeatures
    auth: ClientAuth | None  # the session is authenticated already (A= on the continued delivery too)
    messages: int = 1  # messages sent down this connection so far (connection_max_messages)


# connections kept open for the next message to the same host (see CONTINUE_HOSTS), by
# (transport, host name, address, port); taken by whichever delivery comes next, closed with QUIT
# when the queue run ends
_KEPT: dict[tuple[str, str, str, int], _Kept] = {}
_KEPT_LOCK = threading.Lock()


def _take_kept(call: TransportCall, t: Target) -> _Kept | None:
    with _KEPT_LOCK:
        return _KEPT.pop((call.transport.name, t.name, t.address, t.port), None)


def _keep_or_close(call: TransportCall, t: Target, client: SmtpClient, chan: _Channel, messages: int = 1) -> None:
    if not client.kept_open:
        chan.close()
        return
    with _KEPT_LOCK:
        old = _KEPT.pop((call.transport.name, t.name, t.address, t.port), None)
        _KEPT[(call.transport.name, t.name, t.address, t.port)] = _Kept(chan, client.features, client.auth_used,
                                                                        messages)
    if old is not None:
        _quit(old.chan)


def _quit(chan: _Channel) -> None:
    try:
        chan.sock.settimeout(5)
        chan.send(b"QUIT\r\n")
        chan.recv()
    except (OSError, TimeoutError):
        pass
    chan.close()


def close_kept_connections() -> None:
    """The queue run is over: QUIT on every connection still kept open."""
    with _KEPT_LOCK:
        kept = list(_KEPT.values())
        _KEPT.clear()
    for k in kept:
        _quit(k.chan)


CONNECTION_CLOSERS.append(close_kept_connections)


def _hostpart(t: Target) -> str:
    return f" H={t.name} [{t.address}]"


def _try_host(call: TransportCall, t: Target, envelope: Envelope, data: bytes, base: ClientOptions,
              selectors: frozenset[str], log_lines: list[str]) -> tuple[bool, SmtpResult]:
    """Deliver through one host: (True, the result) when settled, (False, the
    temporary failure) when the next host should be tried."""
    opts = call.transport.options
    require_tls = _host_matches(call, "hosts_require_tls", t)
    try_tls = not _host_matches(call, "hosts_avoid_tls", t)
    for attempt in ("tls", "clear"):
        require_auth = _host_matches(call, "hosts_require_auth", t)
        options = ClientOptions(
            authenticators=_authenticators(call) if require_auth or _host_matches(call, "hosts_try_auth", t) else [],
            require_auth=require_auth,
            helo=base.helo,
            esmtp=not _host_matches(call, "hosts_avoid_esmtp", t),
            pipelining=not _host_matches(call, "hosts_avoid_pipelining", t),
            chunking=_host_matches(call, "hosts_try_chunking", t) and not base.lmtp,
            try_tls=try_tls and attempt == "tls",
            require_tls=require_tls,
            max_rcpt=base.max_rcpt,
            size_addition=base.size_addition,
            verify_only=base.verify_only,
            lmtp=base.lmtp,
        )
        wanted = CONTINUE_HOSTS.get()
        kept = _take_kept(call, t) if not base.verify_only else None
        # connection_max_messages: after that many messages the connection is closed (0: no limit)
        limit = int(opts.get("connection_max_messages") or 0)
        sent = kept.messages + 1 if kept is not None else 1
        options.keep_open = (wanted is not None and t.address in wanted and not base.verify_only
                             and (limit == 0 or sent < limit))
        if kept is not None:
            # a connection left open by the previous message to this host: straight to MAIL
            client = SmtpClient(options, envelope, data, continued=kept.features)
            client.auth_used = kept.auth
            try:
                _converse(call, t, client, kept.chan)
            finally:
                _keep_or_close(call, t, client, kept.chan, sent)
            if not (client.host_error is not None and not client.greeting and client.host_error.errno in
                    (ERRNO_SMTPCLOSED, ERRNO_SMTPFORMAT) and all(not o.status for o in client.outcomes)):
                return _result(t, client, kept.chan, selectors, log_lines, continued=True)
            # the server dropped the idle connection: a new one, as for a first message
        try:
            sock = _connect(call, t, float(opts.get("connect_timeout") or 300))
        except _Failed as exc:
            log_lines.append(exc.log_line)
            return False, SmtpResult("defer", exc.text, errno=exc.errno, log_text=f": {exc.text}")
        chan = _Channel(sock)
        client = SmtpClient(options, envelope, data)
        try:
            _converse(call, t, client, chan)
        finally:
            _keep_or_close(call, t, client, chan)
        err = client.host_error
        if (err is not None and err.errno == ERRNO_TLSFAILURE and attempt == "tls" and not require_tls
                and opts.get("tls_tempfail_tryclear", True)):
            reason = err.message.removeprefix("TLS session: ")
            if "certificate verif" in reason:
                reason = "(certificate verification failed): certificate invalid"
            log_lines.append(f"TLS session: {reason}: delivering unencrypted to H={t.name} [{t.address}] "
                             "(not in hosts_require_tls)")
            continue  # Exim tries the same host again in clear
        return _result(t, client, chan, selectors, log_lines)
    return False, SmtpResult("defer", "TLS session failure", errno=ERRNO_TLSFAILURE)  # pragma: no cover


def _result(t: Target, client: SmtpClient, chan: _Channel, selectors: frozenset[str],
            log_lines: list[str], continued: bool = False) -> tuple[bool, SmtpResult]:
    for name, text in client.auth_failures:
        log_lines.append(f"{name} authenticator failed H={t.name} [{t.address}] {text}")
    host = _hostpart(t) + ("*" if continued else "")  # Exim marks a delivery down a kept connection
    first_final, first = _address_result(client.outcomes[0], t, client, chan, selectors, log_lines, host)
    for i, outcome in enumerate(client.outcomes[1:], 1):
        # a batch: each further address gets its own result (the engine logs them with ->)
        _final, other = _address_result(outcome, t, client, chan, selectors, [], host)
        first.per_address[client.envelope.recipients[i].address] = other
    return first_final, first


def _address_result(outcome: Outcome, t: Target, client: SmtpClient, chan: _Channel, selectors: frozenset[str],
                    log_lines: list[str], host: str) -> tuple[bool, SmtpResult]:
    if outcome.status == "ok":
        detail = host + (f":{t.port}" if "outgoing_port" in selectors else "") + chan.tls_fields(selectors)
        if client.auth_used is not None:
            a = client.auth_used
            detail += f" A={a.name}" + (f":{a.set_id}" if a.set_id else "")
        if client.used_chunking:
            detail += " K"
        if "smtp_confirmation" in selectors and client.confirmation is not None:
            detail += f' C="{_quote(printing(client.confirmation.text))}"'
        ok = SmtpResult("ok", detail=detail)
        if client.options.verify_only and outcome.reply is not None:
            ok.message = printing(outcome.reply.text)  # a callout's answer (its caller may quote it)
        if not client.features.dsn:
            ok.relayed_to_non_dsn = t.name
        return True, ok
    if outcome.status:
        return True, _with_info(_failure(outcome, t, host), t, client, outcome)
    err = client.host_error
    if err is None:  # not reached: the client always says why
        err = Outcome("defer", "SMTP dialogue ended without an outcome", -1)
    if err.log_host:
        text = f"{err.message}: {os.strerror(err.errno)}" if err.errno > 0 else err.message
        log_lines.append(f"H={t.name} [{t.address}]: {text}")
    result = _with_info(_failure(err, t, host), t, client, err)
    return result.status != "defer", result  # a host's temporary problem: the next host may do better


def _with_info(result: SmtpResult, t: Target, client: SmtpClient, outcome: Outcome) -> SmtpResult:
    """What the experimental DSN extra information puts in a bounce about this server."""
    result.dsn_info = {
        "ip": t.address,
        "port": str(t.port),
        "greeting": printing(client.greeting.lines[0]) if client.greeting is not None and client.greeting.lines else "",
        "helo_response": printing(client.helo_response.lines[0])
        if client.helo_response is not None and client.helo_response.lines else "",
        "diagnostic": outcome.message,
    }
    return result


def _failure(o: Outcome, t: Target, host: str) -> SmtpResult:
    if o.errno == ERRNO_AUTHFAIL:
        host = ""  # Exim names no host for "authentication required but …"
    if o.errno > 0:
        log_text = f": {os.strerror(o.errno)}{host}: {o.message}"
    else:
        log_text = f"{host}: {o.message}"
    if o.after and o.reply is not None:
        bounce = (f"host {t.name} [{t.address}]\n    SMTP error from remote mail server after {o.after}:\n"
                  f"    {o.reply_text}")
    else:
        bounce = f"host {t.name} [{t.address}]\n    {o.message}"
    return SmtpResult(o.status, o.message, errno=o.errno or -1, user_message=bounce, log_text=log_text,
                      log_errno=0 if not o.errno and o.reply is not None else None)


def _quote(text: str) -> str:
    out = []
    for ch in text[:1024]:
        if ch in '"\\':
            out.append("\\")
        out.append(ch)
    return "".join(out)


def callout(call: TransportCall, timeout: float, sender: str = "", rcpt: str | None = None,
            connect_timeout: float | None = None) -> tuple[str, str]:
    """A callout for verify = …/callout: connect to the address's hosts as the transport would, and
    ask MAIL FROM:<sender> and RCPT TO:<rcpt> (default: the address) without sending a message.
    The callout options (random, postmaster, use_sender …) are worked out in acl/callout.py.

    Returns (status, text): "ok"; "fail" or "defer" with Exim's "<host> [<ip>] : <error>" text."""
    opts = call.transport.options
    try:
        port = _port(_expand(call, "port") or "smtp")
        targets = _targets(call, port)
    except ExpansionError as exc:
        return "defer", str(exc)
    if not targets:
        return "defer", f"No hosts found for {call.transport.name} transport"
    envelope = Envelope(sender=sender, recipients=[RcptSpec(rcpt or call.address)])
    base = ClientOptions(helo=_helo(call), max_rcpt=1, verify_only=True)
    timed = dataclasses.replace(call, transport=dataclasses.replace(
        call.transport, options={**opts, "connect_timeout": connect_timeout or timeout, "command_timeout": timeout}))
    last = ("defer", "all hosts failed")
    for t in targets:
        final, result = _try_host(timed, t, envelope, b"", base, frozenset(), [])
        if result.status == "ok":
            return "ok", result.message  # the RCPT reply, e.g. "250 Accepted"
        last = (result.status, f"{t.name} [{t.address}] : {result.message}")
        if final:
            return last
    return last

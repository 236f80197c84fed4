"""The listening daemon: asyncio sockets around SmtpSession.

One process serves every connection; a session's protocol work happens in
the session object, and anything that may block (ACL lookups, the spool's
fsync) runs in worker threads so that other sessions are not held up.
SIGTERM stops accepting and lets sessions in progress finish (bounded);
SIGHUP re-reads the configuration for new sessions.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path

from pyxim import __version__
from pyxim.config import load_config
from pyxim.config.model import Config
from pyxim.errors import ConfigError, ExpansionError
from pyxim.log import Logger
from pyxim.smtp.session import Peer, SmtpSession
from pyxim.spool.format import SpoolMessage
from pyxim.spool.ids import MessageIdGenerator
from pyxim.spool.store import Spool

DRAIN_SECONDS = 30


@dataclass
class Listener:
    address: str
    port: int


def parse_listeners(config: Config, override: str | None) -> list[Listener]:
    """-oX or local_interfaces + daemon_smtp_ports, as Exim reads them."""
    from pyxim.lists import iterate_list

    ports_text = str(config.main.get("daemon_smtp_ports") or "smtp")
    interfaces_text = str(config.main.get("local_interfaces") or "<; ::0 ; 0.0.0.0")
    if override:
        if override.replace(":", "").replace(",", "").isdigit():
            ports_text = override
        else:
            interfaces_text = override
    ports = []
    for p in iterate_list(ports_text.replace(",", ":")):
        ports.append(25 if p == "smtp" else 465 if p == "smtps" else int(p))
    listeners: list[Listener] = []
    for item in iterate_list(interfaces_text):
        address, port = item, None
        if item.count(".") == 4 or (":" in item and "." in item and item.rsplit(".", 1)[1].isdigit()):
            address, _, port_s = item.rpartition(".")
            port = int(port_s)
        for p in [port] if port is not None else ports:
            listeners.append(Listener(address.strip("[]"), p))
    return listeners


def listening_text(listeners: list[Listener]) -> str:
    """Where the daemon listens, worded as Exim's "daemon started" line words it."""
    wildcard = {"0.0.0.0": "IPv4", "::0": "IPv6", "::": "IPv6"}
    if listeners and all(lst.address in wildcard for lst in listeners):
        ports = sorted({lst.port for lst in listeners})
        kinds = {wildcard[lst.address] for lst in listeners}
        families = "IPv6 and IPv4" if len(kinds) == 2 else kinds.pop()
        label = "port" if len(ports) == 1 else "ports"
        return f"{label} {' '.join(str(p) for p in ports)} ({families})"
    return " ".join(f"[{lst.address}]:{lst.port}" for lst in listeners)


@dataclass
class Daemon:
    config_path: str | None
    macros: dict[str, str]
    listen_override: str | None = None
    config: Config = field(init=False)
    sessions: set[asyncio.Task] = field(default_factory=set)
    per_host: dict[str, int] = field(default_factory=dict)
    servers: list[asyncio.base_events.Server] = field(default_factory=list)
    queue_interval: float | None = None  # -q<time>: seconds between queue runs
    deliveries: set[asyncio.Task] = field(default_factory=set)
    resolver: object = None  # pyxim.dns.Resolver shared by the sessions; made again after a reload
    resolver_config: object = None

    def __post_init__(self) -> None:
        self.config = load_config(self.config_path, self.macros)
        self.ids = MessageIdGenerator()
        self._setup()

    def _setup(self) -> None:
        spool_dir = str(self.config.main["spool_directory"])
        from pyxim.spool.store import GroupCommit

        Path(spool_dir).mkdir(parents=True, exist_ok=True)
        self.spool = Spool(Path(spool_dir), bool(self.config.main.get("split_spool_directory")),
                           GroupCommit(Path(spool_dir)))
        self.logger = Logger(str(self.config.main.get("log_file_path") or ""), spool_dir)

    def reload(self) -> None:
        try:
            self.config = load_config(self.config_path, self.macros)
            self._setup()
            self.logger.main(f"pid {os.getpid()}: SIGHUP received: re-reading configuration")
        except ConfigError as exc:
            self.logger.panic(f"configuration reload failed, keeping the old one: {exc}")

    queue_flag: str = ""

    def queue_text(self) -> str:
        return self.queue_flag if self.queue_interval else "no queue runs"

    def start_deliveries(self, received: list[tuple[str, bool]]) -> None:
        """Deliver what was just received, in the background (Exim forks a delivery process;
        here a bounded number of worker threads), unless queue_only or an ACL said to queue it."""
        from pyxim.delivery.runner import immediate_delivery_wanted

        if not immediate_delivery_wanted(self.config):
            return
        for message_id, wanted in received:
            if wanted:
                task = asyncio.get_running_loop().create_task(self.deliver(message_id))
                self.deliveries.add(task)
                task.add_done_callback(self.deliveries.discard)

    async def deliver(self, message_id: str) -> None:
        from pyxim.delivery.runner import deliver_now

        async with self.delivery_slots:
            try:
                await asyncio.to_thread(deliver_now, self.config, self.spool, message_id, self.logger.main)
            except Exception as exc:  # noqa: BLE001 — the message stays queued for the next queue run
                self.logger.panic(f"{message_id} delivery failed: {type(exc).__name__}: {exc}")

    queue_run_flags: str = "-q"  # -q, -qq, -qf, -qff, -qi … as given with the interval

    async def queue_runner(self, interval: float) -> None:
        """-q<time> with -bd: a queue run starts every interval (Exim forks a queue-runner process),
        while fewer than queue_run_max runs are going (0: no limit); a run still busy when the next
        is due goes on beside it, and the two pass each other's locked messages by."""
        self.queue_runs: set[asyncio.Task[None]] = set()
        while True:
            await asyncio.sleep(interval)
            limit = self._queue_run_max()
            if limit and len(self.queue_runs) >= limit:
                continue
            task = asyncio.get_running_loop().create_task(self._one_queue_run())
            self.queue_runs.add(task)
            task.add_done_callback(self.queue_runs.discard)

    def _queue_run_max(self) -> int:
        from pyxim.expand import ExpansionContext, expand_string

        value = self.config.main.get("queue_run_max")
        try:
            text = expand_string(str(value if value is not None else "5"), ExpansionContext(config=self.config))
            return max(0, int(text.strip() or 0))
        except Exception:  # noqa: BLE001 — an unusable value: Exim's default
            return 5

    async def _one_queue_run(self) -> None:
        from pyxim.delivery.runner import queue_run

        flags = self.queue_run_flags
        try:
            await asyncio.to_thread(queue_run, self.config, self.spool, self.logger.main, force="f" in flags,
                                    frozen="ff" in flags, flag="" if flags == "-q" else flags,
                                    two_stage=flags.startswith("-qq"), initial_only="i" in flags[2:])
        except Exception as exc:  # noqa: BLE001
            self.logger.panic(f"queue run failed: {type(exc).__name__}: {exc}")

    def store(self, message: SpoolMessage, body: bytes) -> str:
        self.spool.write(message, body)
        return message.message_id

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.sessions.add(task)
        peer_addr = writer.get_extra_info("peername") or ("", 0)
        local = writer.get_extra_info("sockname") or ("", 0)
        config = self.config
        timeout = float(config.main.get("smtp_receive_timeout") or 300)
        client = str(peer_addr[0])
        self.per_host[client] = self.per_host.get(client, 0) + 1
        try:
            proxied = None
            early = b""
            if self.must_proxy(config, client):
                proxied, early = await self.read_proxy_header(reader, config, client)
                if proxied is None:
                    return
            peer = Peer(str(peer_addr[0]), int(peer_addr[1]), str(local[0]), int(local[1]))
            if proxied is not None and proxied.source is not None:
                peer = Peer(proxied.source, proxied.source_port, str(local[0]), int(local[1]))
            refusal = self.admission(config, peer.address)
            if refusal:
                writer.write(f"421 {refusal}\r\n".encode())
                await writer.drain()
                self.logger.main(f"Connection from [{peer.address}] refused: {refusal.split(';')[0]}")
                return
            session = SmtpSession(config, peer, self.store, self.ids.new_id, self.logger.main, self.logger.reject)
            session.enforce_sync = True
            # one resolver (and so one DNS cache, which honours TTLs) for every session of this configuration
            if self.resolver_config is not config:
                from pyxim.dns import Resolver

                self.resolver, self.resolver_config = Resolver.from_config(config.main), config
            session.ctx.resolver = self.resolver
            if proxied is not None:
                session.ctx.variables.update({
                    "proxy_session": "yes",
                    "proxy_local_address": client,
                    "proxy_local_port": str(peer_addr[1]),
                    "proxy_external_address": proxied.destination or str(local[0]),
                    "proxy_external_port": str(proxied.destination_port or local[1]),
                })
            if early:
                session.reader.feed(early)  # bytes the client sent right after the PROXY header
            tls = None
            if self.tls_on_connect(config, int(local[1])):
                # tls_on_connect_ports: TLS first, then the banner (the old "smtps")
                tls = await self.start_tls(session, reader, writer, peer_addr)
                if tls is None:
                    return
            out = await asyncio.to_thread(session.greeting)
            greeting = "".join(out.replies).encode("utf-8", "surrogateescape")
            if tls is not None:
                await tls.write(greeting)
            else:
                writer.write(greeting)
                await writer.drain()
            if out.close:
                return

            async def send(text: str) -> None:
                data = text.encode("utf-8", "surrogateescape")
                if tls is not None:
                    await tls.write(data)
                else:
                    writer.write(data)
                    await writer.drain()

            while True:
                try:
                    source = tls.read(65536) if tls is not None else reader.read(65536)
                    data = await asyncio.wait_for(source, timeout)
                except TimeoutError:
                    in_data = session.reader.mode != "command"
                    await asyncio.to_thread(session.notquit, "data-timeout" if in_data else "command-timeout")
                    tls_word = " TLS" if tls is not None else ""
                    client = session._client_text(with_helo=True)
                    if in_data:
                        reply = f"421 {session.hostname}: SMTP incoming data timeout - closing connection.\r\n"
                        self.logger.main(f"SMTP data timeout (message abandoned) on{tls_word} connection from "
                                         f"{client} F=<{session.envelope.sender or ''}>")
                    else:
                        reply = f"421 {session.hostname}: SMTP command timeout - closing connection\r\n"
                        self.logger.main(f"SMTP command timeout on{tls_word} connection from {client}")
                    await send(reply)
                    return
                if not data:
                    session.eof()
                    return
                out = await asyncio.to_thread(session.feed, data)
                if out.replies:
                    await send("".join(out.replies))
                if session.received:
                    self.start_deliveries(session.received)
                    session.received = []
                if out.close:
                    return
                if out.start_tls:
                    tls = await self.start_tls(session, reader, writer, peer_addr)
                    if tls is None:
                        return
        except (ConnectionError, OSError):
            return
        except Exception as exc:  # noqa: BLE001 — one session's bug must not reach the others
            import traceback

            self.logger.panic(f"unexpected error in SMTP session from [{client}]: {exc!r}: "
                              + traceback.format_exc().replace("\n", " | "))
            return
        finally:
            self.sessions.discard(task)
            self.per_host[client] -= 1
            if not self.per_host[client]:
                del self.per_host[client]
            with contextlib.suppress(Exception):
                writer.close()

    def must_proxy(self, config: Config, client: str) -> bool:
        from pyxim.expand import ExpansionContext
        from pyxim.lists import match_host_list

        hosts = str(config.main.get("hosts_proxy") or "")
        return bool(hosts) and match_host_list(ExpansionContext(config=config), client, hosts)

    async def read_proxy_header(self, reader, config: Config, client: str):  # type: ignore[no-untyped-def]
        """Read a PROXY v1/v2 header within proxy_protocol_timeout: (header, bytes after it) or (None, b"")."""
        from pyxim.smtp.proxy import ProxyError, parse

        timeout = float(config.main.get("proxy_protocol_timeout") or 3)
        data = b""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    header = parse(data) if data else None
                    if header is not None:
                        return header, data[header.length:]
                    chunk = await reader.read(4096)
                    if not chunk:
                        raise ProxyError("connection closed before the PROXY header")
                    data += chunk
        except TimeoutError:
            self.logger.main(f"proxy protocol timeout from [{client}]")
        except ProxyError as exc:
            self.logger.main(f"proxy protocol error from [{client}]: {exc}")
        return None, b""

    @staticmethod
    def tls_on_connect(config: Config, port: int) -> bool:
        from pyxim.lists import iterate_list

        ports = str(config.main.get("tls_on_connect_ports") or "")
        return any(p.strip() == str(port) for p in iterate_list(ports.replace(",", ":")))

    def admission(self, config: Config, client: str) -> str | None:
        """Exim's connection limits: smtp_accept_max (less the reserve) and smtp_accept_max_per_host."""
        from pyxim.expand import ExpansionContext
        from pyxim.lists import match_host_list

        active = len(self.sessions)
        max_sessions = int(config.main.get("smtp_accept_max") or 0)
        if max_sessions and active > max_sessions:
            return "Too many concurrent SMTP connections; please try again later."
        reserve = int(config.main.get("smtp_accept_reserve") or 0)
        if max_sessions and reserve and active > max_sessions - reserve:
            hosts = str(config.main.get("smtp_reserve_hosts") or "")
            if not (hosts and match_host_list(ExpansionContext(config=config), client, hosts)):
                return "Too many concurrent SMTP connections; please try again later."
        per_host = config.main.get("smtp_accept_max_per_host")
        if per_host:
            from pyxim.expand import expand_string

            try:
                limit = int(expand_string(str(per_host), ExpansionContext(config=config,
                                                                          variables={"sender_host_address": client})))
            except (ValueError, ExpansionError):
                limit = 0
            if limit and self.per_host.get(client, 0) > limit:
                return "Too many concurrent SMTP connections from this IP address; please try again later."
        return None

    async def start_tls(self, session: SmtpSession, reader, writer, peer_addr):  # type: ignore[no-untyped-def]
        from pyxim.expand import expand_string
        from pyxim.tls.context import server_context
        from pyxim.tls.stream import TlsFailed, TlsStream

        main = self.config.main
        verify = session.tls_verify_mode()

        def context_for_session():  # type: ignore[no-untyped-def]
            cert, key = session.tls_certificate_files()
            cas = expand_string(str(main.get("tls_verify_certificates") or ""), session.ctx) if verify != "none" else ""
            return server_context(cert, key, str(main.get("tls_require_ciphers") or ""),
                                  str(main.get("tls_dhparam") or ""), cas, verify)

        try:
            context = context_for_session()

            def on_sni(conn, name: str) -> None:  # type: ignore[no-untyped-def]
                # tls_certificate may depend on $tls_in_sni: switch context when it does
                session.ctx.variables["tls_in_sni"] = name
                chosen = context_for_session()
                if chosen is not context:
                    conn.set_context(chosen)

            stream = TlsStream(context, reader, writer)
            stream.conn.set_app_data(on_sni)
            await stream.handshake(float(main.get("smtp_receive_timeout") or 300))
        except (TlsFailed, ConfigError, ExpansionError) as exc:
            self.logger.main(f"TLS error on connection from [{peer_addr[0]}]: {exc}")
            return None
        session.tls_started(stream.info())
        return stream

    async def serve(self) -> None:
        listeners = parse_listeners(self.config, self.listen_override)
        backlog = int(self.config.main.get("smtp_connect_backlog") or 20)
        for lst in listeners:
            host = None if lst.address in ("0.0.0.0", "::0", "::") else lst.address
            if lst.address in ("0.0.0.0", "::0", "::"):
                host = "0.0.0.0" if lst.address == "0.0.0.0" else "::"
            try:
                server = await asyncio.start_server(self.handle, host, lst.port, backlog=backlog, reuse_address=True)
            except OSError as exc:
                if lst.address in ("::0", "::"):
                    continue  # no IPv6 here: the IPv4 wildcard still listens
                raise ConfigError(f"failed to listen on {lst.address} port {lst.port}: {exc.strerror}") from None
            self.servers.append(server)
        self.logger.main(
            f"pyxim {__version__} daemon started: pid={os.getpid()}, {self.queue_text()}, "
            f"listening for SMTP on {listening_text(listeners)}"
        )
        pid_file = str(self.config.main.get("pid_file_path") or "")
        if pid_file:
            with contextlib.suppress(OSError):
                Path(pid_file).parent.mkdir(parents=True, exist_ok=True)
                Path(pid_file).write_text(f"{os.getpid()}\n")
        # at most remote_max_parallel (default 4) deliveries at once, like Exim's parallel deliveries
        self.delivery_slots = asyncio.Semaphore(max(1, int(self.config.main.get("remote_max_parallel") or 4)))
        runner = None
        if self.queue_interval:
            runner = asyncio.get_running_loop().create_task(self.queue_runner(self.queue_interval))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        await stop.wait()
        for server in self.servers:
            server.close()
        if runner is not None:
            runner.cancel()
        if self.sessions:
            await asyncio.wait(list(self.sessions), timeout=DRAIN_SECONDS)
        if self.deliveries:
            # a delivery cut short leaves the message queued: it is tried again later
            await asyncio.wait(list(self.deliveries), timeout=DRAIN_SECONDS)
        self.logger.main(f"pid {os.getpid()}: SIGTERM received: daemon terminating")


def run_daemon(config_path: str | None, macros: dict[str, str], listen: str | None, detach: bool,
               queue_interval: str | None = None, queue_flags: str = "-q") -> int:
    daemon = Daemon(config_path, macros, listen)
    daemon.queue_run_flags = queue_flags or "-q"
    if queue_interval:
        from pyxim.config.options import read_time

        seconds = read_time(queue_interval)
        if not seconds or seconds <= 0:
            raise ConfigError(f"bad time value {queue_interval} for -q")
        daemon.queue_interval = float(seconds)
        daemon.queue_flag = f"{daemon.queue_run_flags}{queue_interval}"
    elif daemon.config.main.get("queue_run_interval"):
        # the configuration's own interval (the embedded default has one): as if -q<time> was given
        from pyxim.config.options import print_time

        seconds = int(daemon.config.main["queue_run_interval"])
        daemon.queue_interval = float(seconds)
        daemon.queue_flag = f"-q{print_time(seconds)}"
    if detach:
        if os.fork():
            return 0
        os.setsid()
        if os.fork():
            os._exit(0)
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
    try:
        import uvloop  # type: ignore[import-not-found]

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(daemon.serve())
    return 0

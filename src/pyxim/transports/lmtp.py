"""The lmtp transport: its option table (Exim 4.96 names, types and defaults)."""

from __future__ import annotations

import os
import select
import socket
import subprocess

from pyxim.config.drivers import register
from pyxim.config.options import OptionDef, opt
from pyxim.delivery import DeliveryResult, TransportCall, transport
from pyxim.errors import ExpansionError
from pyxim.expand import expand_string
from pyxim.expand.taint import is_tainted

OPTIONS: list[OptionDef] = [
    opt("batch_id"),
    opt("batch_max", "int", 1),
    opt("command"),
    opt("ignore_quota", "bool", False),
    opt("socket"),
    opt("timeout", "time", 300),
]

register("transport", "lmtp", OPTIONS)


@transport("lmtp")
def lmtp_deliver(call: TransportCall) -> DeliveryResult:
    """LMTP (RFC 2033) to a local server: over a Unix socket (`socket`) or a command's standard
    input and output (`command`, split into arguments before expansion, no shell)."""
    from pyxim.delivery.write import spec_for, write_message
    from pyxim.smtp.client import ClientOptions, Envelope, RcptSpec, SmtpClient

    opts = call.transport.options
    name = call.transport.name
    timeout = float(opts.get("timeout") or 300)
    try:
        path = expand_string(str(opts["socket"]), call.ctx) if opts.get("socket") else None
    except ExpansionError as exc:
        return DeliveryResult("defer", f"Expansion of \"{opts['socket']}\" (socket setting for {name} transport) "
                                       f"failed: {exc.message}")
    if path is not None and is_tainted(path):
        return DeliveryResult("defer", f"Tainted '{path}' (socket for {name} transport) not permitted")
    spec = spec_for(call, use_crlf=False)
    spec.check_string = spec.escape_string = None
    data = write_message(call.message.headers, call.body, spec)
    host = str(call.config.main.get("primary_hostname") or socket.gethostname())
    client = SmtpClient(ClientOptions(helo=host, lmtp=True, chunking=False),
                        Envelope(sender=call.message.sender, recipients=[RcptSpec(call.address)], size=len(data)),
                        data)
    proc = None
    try:
        if path is not None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            try:
                sock.connect(path)
            except OSError as exc:
                sock.close()
                return DeliveryResult("defer", f"Failed to connect to socket {path} for {name} transport: "
                                               f"{exc.strerror}")
            send, recv = sock.sendall, lambda: sock.recv(65536)
            close = sock.close
        elif opts.get("command"):
            from pyxim.transports.pipe import command_argv

            argv = command_argv(call, str(opts["command"]), True)
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            assert proc.stdin is not None and proc.stdout is not None
            fd_in, fd_out = proc.stdin, proc.stdout

            def send(b: bytes) -> None:
                fd_in.write(b)
                fd_in.flush()

            def recv() -> bytes:
                ready, _, _ = select.select([fd_out], [], [], timeout)
                if not ready:
                    raise TimeoutError
                return os.read(fd_out.fileno(), 65536)

            def close() -> None:
                fd_in.close()
        else:
            return DeliveryResult("defer", f"either socket or command must be set for {name} transport")
        try:
            while not client.done:
                out = client.data_to_send()
                if out:
                    send(out)
                if client.done:
                    break
                try:
                    chunk = recv()
                except TimeoutError:
                    client.timed_out()
                    continue
                if not chunk:
                    client.connection_closed()
                    continue
                client.receive(chunk)
            out = client.data_to_send()
            if out:
                try:
                    send(out)
                except OSError:
                    pass
        finally:
            close()
    except OSError as exc:
        return DeliveryResult("defer", f"{name} transport: {exc.strerror or exc}")
    finally:
        if proc is not None:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
    outcome = client.outcomes[0]
    if outcome.status == "ok":
        from pyxim import logselector
        from pyxim.smtp.client import printing

        detail = ""
        selectors = logselector.parse(str(call.config.main.get("log_selector") or ""))
        if "smtp_confirmation" in selectors and outcome.reply is not None:
            text = printing(outcome.reply.text).replace("\\", "\\\\").replace('"', '\\"')
            detail = f' C="{text}"'
        return DeliveryResult("ok", detail=detail)
    if not outcome.status and client.host_error is not None:
        outcome = client.host_error
    return DeliveryResult(outcome.status or "defer", outcome.message or "LMTP dialogue ended without an outcome")

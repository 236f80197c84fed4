"""A tiny SMTP receiver for delivery tests: accepts everything on a loopback port and records each
connection's transactions (sender, recipients, data), optionally pausing before it answers the
data, so tests can see how a sender batches recipients and shares connections."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass(slots=True)
class Transaction:
    sender: str = ""
    recipients: list[str] = field(default_factory=list)
    data: bytes = b""


@dataclass(slots=True)
class Sink:
    port: int
    delay: float = 0.0  # seconds before the reply to the data
    connections: list[list[Transaction]] = field(default_factory=list)
    active: int = 0
    most_active: int = 0  # the largest number of connections open at once
    lock: threading.Lock = field(default_factory=threading.Lock)


def _serve(sink: Sink, conn: socket.socket) -> None:
    transactions: list[Transaction] = []
    with sink.lock:
        sink.connections.append(transactions)
        sink.active += 1
        sink.most_active = max(sink.most_active, sink.active)
    current = Transaction()
    reader = conn.makefile("rb")
    try:
        conn.sendall(b"220 sink.example ESMTP\r\n")
        while True:
            line = reader.readline()
            if not line:
                break
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                conn.sendall(b"250-sink.example\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
            elif verb == b"MAIL":
                current = Transaction(sender=line[10:].strip().decode().strip("<>"))
                conn.sendall(b"250 OK\r\n")
            elif verb == b"RCPT":
                current.recipients.append(line[8:].strip().decode().strip("<>"))
                conn.sendall(b"250 Accepted\r\n")
            elif verb == b"DATA":
                conn.sendall(b"354 Go ahead\r\n")
                chunks = []
                while (part := reader.readline()) not in (b".\r\n", b""):
                    chunks.append(part)
                current.data = b"".join(chunks)
                transactions.append(current)
                if sink.delay:
                    time.sleep(sink.delay)
                conn.sendall(b"250 OK id=sunk\r\n")
            elif verb == b"QUIT":
                conn.sendall(b"221 bye\r\n")
                break
            elif verb == b"RSET":
                current = Transaction()
                conn.sendall(b"250 Reset\r\n")
            else:
                conn.sendall(b"250 OK\r\n")
    except OSError:
        pass
    finally:
        with sink.lock:
            sink.active -= 1
        reader.close()
        conn.close()


@contextmanager
def smtp_sink(host: str = "127.0.0.1", delay: float = 0.0, port: int = 0) -> Iterator[Sink]:
    """A running sink on `port` (default: a free one) of `host`; stopped (and its connections closed)
    on exit."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(16)
    listener.settimeout(0.2)
    sink = Sink(listener.getsockname()[1], delay)
    stop = threading.Event()
    workers: list[threading.Thread] = []

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(30)
            worker = threading.Thread(target=_serve, args=(sink, conn), daemon=True)
            worker.start()
            workers.append(worker)

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        yield sink
    finally:
        stop.set()
        acceptor.join(5)
        listener.close()
        for worker in workers:
            worker.join(5)

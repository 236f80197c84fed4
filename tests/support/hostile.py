"""A scripted SMTP server on loopback for tests of the smtp transport against servers that
misbehave: each connection plays the same script of steps, in an asyncio loop on its own thread.

Steps (tuples):
  ("send", b"...")   write these bytes
  ("read",)          read one command line (recorded in `commands`)
  ("serve", {...})    answer commands from a table until the client goes (see _serve)
  ("sleep", seconds) stall
  ("close",)         drop the connection
At the end of the script the server reads until the client goes away."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator

Step = tuple  # type: ignore[type-arg]


class ScriptedServer:
    def __init__(self, script: list[Step], host: str = "127.0.0.1") -> None:
        self.script = script
        self.host = host
        self.port = 0
        self.commands: list[str] = []
        self.connections = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._handle, self.host, 0))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        self.connections += 1
        try:
            if await self._play(self.script, reader, writer):
                while await reader.read(65536):
                    pass
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()
            if task is not None:
                self._tasks.discard(task)

    async def _play(
        self, steps: list[Step], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Play steps; False when the connection is to be dropped."""
        for step in steps:
            kind = step[0]
            if kind == "send":
                writer.write(step[1])
                await writer.drain()
            elif kind == "read":
                line = await reader.readline()
                if not line:
                    return False
                self.commands.append(line.decode("latin-1").rstrip("\r\n"))
            elif kind == "sleep":
                await asyncio.sleep(step[1])
            elif kind == "close":
                return False
            elif kind == "serve":
                return await self._serve(step[1], reader, writer)
        return True

    async def _serve(
        self, table: dict[str, bytes | list[Step]], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Answer each command by the first key it starts with ("." is the end of the data; a
        354 for DATA makes the lines up to "." the message)."""
        in_data = False
        while True:
            line = await reader.readline()
            if not line:
                return False
            text = line.decode("latin-1").rstrip("\r\n")
            if in_data and text != ".":
                continue
            in_data = False
            self.commands.append(text)
            key = "." if text == "." else next((k for k in table if text.upper().startswith(k)), "")
            reply = table.get(key, b"500 unrecognized command\r\n")
            if isinstance(reply, bytes):
                in_data = key == "DATA" and reply.startswith(b"354")
                writer.write(reply)
                await writer.drain()
            elif not await self._play(reply, reader, writer):
                return False

    def start(self) -> ScriptedServer:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            for task in list(self._tasks):
                task.cancel()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@contextlib.contextmanager
def scripted_server(script: list[Step], host: str = "127.0.0.1") -> Iterator[ScriptedServer]:
    server = ScriptedServer(script, host).start()
    try:
        yield server
    finally:
        server.stop()


def ehlo_reply(*extensions: str) -> bytes:
    lines = ["hostile.example", *extensions]
    return b"".join(
        f"250{'-' if i < len(lines) - 1 else ' '}{text}\r\n".encode() for i, text in enumerate(lines)
    )


# a well-behaved server's answers, for ("serve", SERVE_TABLE)
SERVE_TABLE: dict[str, bytes | list[Step]] = {
    "EHLO": ehlo_reply("8BITMIME"),
    "HELO": b"250 hello\r\n",
    "MAIL": b"250 OK\r\n",
    "RCPT": b"250 OK\r\n",
    "DATA": b"354 go ahead\r\n",
    ".": b"250 OK queued\r\n",
    "RSET": b"250 OK\r\n",
    "QUIT": [("send", b"221 bye\r\n"), ("close",)],
}

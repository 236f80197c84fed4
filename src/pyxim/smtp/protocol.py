"""SMTP input as a sans-I/O reader: bytes in, commands and message data out.

No sockets, no clock: the daemon, `-bs` and `-bh` all feed bytes into an
SmtpReader and act on what comes out. It knows three modes:

* command mode: lines end with CRLF (a bare LF is accepted, as Exim does);
  an over-long line is reported, not buffered without bound;
* DATA mode: the message ends only at CRLF "." CRLF. A lone LF or CR next to
  the dot never ends it (the SMTP smuggling class of CVE-2023-51766), and
  leading dots are unstuffed;
* BDAT mode: exactly N bytes, whatever they contain.

`pending()` tells whether input is already waiting: the session uses it for
Exim's synchronization check (input sent before a reply where pipelining is
not allowed).
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_COMMAND_LINE = 16384  # generous for AUTH blobs; anything longer is an error


@dataclass(slots=True, frozen=True)
class Command:
    line: str  # without the line ending; bytes above 0x7F kept as surrogate escapes


@dataclass(slots=True, frozen=True)
class LineTooLong:
    pass


@dataclass(slots=True, frozen=True)
class MessageData:
    data: bytes  # the message, dot-unstuffed, lines ending in LF
    max_line_length: int
    bare_cr_or_lf: bool  # a lone CR or LF was seen inside (kept as data, logged by the caller)


@dataclass(slots=True, frozen=True)
class Chunk:
    data: bytes
    last: bool


class SmtpReader:
    def __init__(self, max_message_bytes: int | None = None) -> None:
        self.buffer = bytearray()
        self.mode = "command"
        self.max_message_bytes = max_message_bytes
        # DATA mode state
        self._data = bytearray()
        self._data_max_line = 0
        self._data_bare = False
        self._data_too_big = False
        # BDAT mode state
        self._chunk_left = 0
        self._chunk_last = False
        self._chunk = bytearray()
        self.eof = False

    # -- mode switches, driven by the session ---------------------------------

    def start_data(self) -> None:
        self.mode = "data"
        self._data = bytearray()
        self._data_max_line = 0
        self._data_bare = False
        self._data_too_big = False

    def start_chunk(self, size: int, last: bool) -> None:
        self.mode = "bdat"
        self._chunk_left = size
        self._chunk_last = last
        self._chunk = bytearray()

    @property
    def data_too_big(self) -> bool:
        return self._data_too_big

    # -- input ----------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        self.buffer += data

    def pending(self) -> bool:
        return bool(self.buffer)

    def next_event(self) -> Command | LineTooLong | MessageData | Chunk | None:
        """The next complete thing in the input, or None until more bytes arrive."""
        if self.mode == "command":
            return self._command()
        if self.mode == "data":
            return self._message()
        return self._bdat()

    def _command(self) -> Command | LineTooLong | None:
        end = self.buffer.find(b"\n")
        if end < 0:
            if len(self.buffer) > MAX_COMMAND_LINE:
                self.buffer.clear()
                return LineTooLong()
            return None
        raw = bytes(self.buffer[:end])
        del self.buffer[: end + 1]
        if len(raw) > MAX_COMMAND_LINE:
            return LineTooLong()
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        return Command(raw.decode("utf-8", "surrogateescape"))

    def _message(self) -> MessageData | None:
        while True:
            end = self.buffer.find(b"\n")
            if end < 0:
                if len(self.buffer) > 1024 * 1024:
                    # a megabyte without a newline: keep it as data, don't hold it forever
                    self._add_line(bytes(self.buffer), ended=False)
                    self.buffer.clear()
                return None
            line = bytes(self.buffer[: end + 1])
            del self.buffer[: end + 1]
            crlf = line.endswith(b"\r\n")
            content = line[:-2] if crlf else line[:-1]
            if not crlf:
                self._data_bare = True
            if content == b"." and crlf:
                self.mode = "command"
                return MessageData(bytes(self._data), self._data_max_line, self._data_bare)
            if b"\r" in content:
                self._data_bare = True
            if content.startswith(b"."):
                content = content[1:]
            self._add_line(content, ended=True)

    def _add_line(self, content: bytes, ended: bool) -> None:
        self._data_max_line = max(self._data_max_line, len(content))
        if self.max_message_bytes is not None and len(self._data) + len(content) > self.max_message_bytes:
            self._data_too_big = True
            return  # keep reading to the end, storing nothing more
        self._data += content
        if ended:
            self._data += b"\n"

    def _bdat(self) -> Chunk | None:
        if self._chunk_left:
            take = min(self._chunk_left, len(self.buffer))
            self._chunk += self.buffer[:take]
            del self.buffer[:take]
            self._chunk_left -= take
        if self._chunk_left:
            return None
        self.mode = "command"
        return Chunk(bytes(self._chunk), self._chunk_last)

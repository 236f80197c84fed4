"""The message as expansion sees it: header lines in order, and the body.

Built from an RFC 5322 message (bytes) — for `-bem FILE` and, later, from the
spool. Header values keep their raw text (continuation lines included);
$h_ trims and decodes, $rh_ gives them raw (see variables.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class HeaderLine:
    name: str  # as written
    raw: str  # the whole header line(s) including the name and the final newline

    @property
    def value(self) -> str:
        """Everything after the colon, continuation lines included, final newline kept."""
        return self.raw.split(":", 1)[1] if ":" in self.raw else ""


@dataclass(slots=True)
class Message:
    headers: list[HeaderLine] = field(default_factory=list)
    body: str = ""

    @classmethod
    def from_bytes(cls, data: bytes) -> Message:
        text = data.decode("utf-8", "surrogateescape").replace("\r\n", "\n")
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        headers: list[HeaderLine] = []
        i = 0
        while i < len(lines):
            line = lines[i]
            if line == "":
                i += 1
                break
            if line[:1] in (" ", "\t") and headers:
                headers[-1].raw += line + "\n"
            elif ":" in line and " " not in line.split(":", 1)[0]:
                headers.append(HeaderLine(line.split(":", 1)[0], line + "\n"))
            else:
                break  # not a header: the body starts here (no blank line)
            i += 1
        body_lines = lines[i:]
        body = "\n".join(body_lines) + ("\n" if body_lines else "")
        return cls(headers, body)

    @classmethod
    def from_file(cls, path: str) -> Message:
        with open(path, "rb") as f:
            return cls.from_bytes(f.read())

    def has_header(self, name: str) -> bool:
        lname = name.lower()
        return any(h.name.lower() == lname for h in self.headers)

    def header_values(self, name: str) -> list[str]:
        lname = name.lower()
        return [h.value for h in self.headers if h.name.lower() == lname]

    def headers_text(self, raw: bool = False) -> str:
        text = "".join(h.raw for h in self.headers)
        return text.rstrip("\n")

    def body_visible(self, limit: int, from_end: bool = False) -> str:
        part = self.body[-limit:] if from_end else self.body[:limit]
        # Exim turns newlines into spaces in $message_body so it fits in one line
        return part.replace("\n", " ")

    @property
    def size(self) -> int:
        return len(self.headers_text().encode("utf-8", "surrogateescape")) + 1 + len(
            self.body.encode("utf-8", "surrogateescape")
        )

    @property
    def body_linecount(self) -> int:
        return self.body.count("\n")

    @property
    def body_zerocount(self) -> int:
        return self.body.count("\0")

    @property
    def linecount(self) -> int:
        return sum(h.raw.count("\n") for h in self.headers) + 1 + self.body_linecount

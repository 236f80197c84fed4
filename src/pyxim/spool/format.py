"""Exim's spool file format (the "Format of spool files" chapter), read and written.

ID-H holds the envelope, the message's state and its headers; ID-D holds the
body. Both start with their own file name. Each header line is stored as
"NNNc text" — NNN its length (newline included), c its type (Exim's letters:
P Received, F From, T To, C Cc, B Bcc, R Reply-To, S Sender, I Message-Id,
* deleted, space for the rest). Values from outside are marked tainted with a
doubled dash ("--helo_name"), as Exim 4.93+ writes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pyxim.expand.taint import Tainted

HEADER_TYPES = {
    "received": "P",
    "from": "F",
    "to": "T",
    "cc": "C",
    "bcc": "B",
    "reply-to": "R",
    "sender": "S",
    "message-id": "I",
}


class SpoolFormatError(ValueError):
    """A spool file that does not parse: the message is left alone and reported."""


@dataclass(slots=True)
class SpoolHeader:
    text: str  # the whole header, name, colon and continuation lines, final newline included
    type: str = " "

    @classmethod
    def of(cls, text: str) -> SpoolHeader:
        from pyxim.expand.message import header_type  # Resent-To/From/… typed like To/From/…

        return cls(text, header_type(text))


@dataclass(slots=True)
class Recipient:
    address: str
    orcpt: str = ""  # DSN ORCPT=, as given
    dsn_flags: int = 0  # Exim's rf_notify* bits
    errors_to: str = ""
    pno: int = -1  # parent number for one_time aliases; -1 none

    def line(self) -> str:
        if self.pno < 0 and not self.errors_to and self.dsn_flags == 0 and not self.orcpt:
            return self.address
        return (
            f"{self.address} {self.orcpt} {len(self.orcpt)},{self.dsn_flags} "
            f"{self.errors_to} {len(self.errors_to)},{self.pno}#3"
        )

    @classmethod
    def parse(cls, line: str) -> Recipient:
        if not line.endswith("#3") and not line.endswith("#1"):
            return cls(line)
        body = line[:-2]
        # from the right: "<errors_to> <len>,<pno>" then "<orcpt> <len>,<flags>"
        head, _, tail = body.rpartition(" ")
        elen_s, _, pno_s = tail.partition(",")
        elen = int(elen_s)
        errors_to = head[len(head) - elen :] if elen else ""
        head = head[: len(head) - elen].rstrip(" ") if elen else head.rstrip(" ")
        head2, _, tail2 = head.rpartition(" ")
        olen_s, _, flags_s = tail2.partition(",")
        olen = int(olen_s)
        orcpt = head2[len(head2) - olen :] if olen else ""
        address = head2[: len(head2) - olen].rstrip(" ") if olen else head2.rstrip(" ")
        return cls(address, orcpt, int(flags_s), errors_to, int(pno_s))


@dataclass(slots=True)
class SpoolMessage:
    message_id: str
    sender: str  # "" for bounces
    recipients: list[Recipient]
    headers: list[SpoolHeader]
    received_time: float
    caller: str = "pyxim"
    uid: int = 0
    gid: int = 0
    warning_count: int = 0
    # "-name value" and "-flag" lines, in order; a Tainted value is written with "--"
    options: dict[str, str | None] = field(default_factory=dict)
    acl_vars: dict[str, str] = field(default_factory=dict)  # "c0", "m_foo" …
    non_recipients: list[str] = field(default_factory=list)  # delivered already

    # -- writing -------------------------------------------------------------

    def header_file(self) -> bytes:
        out = [f"{self.message_id}-H\n", f"{self.caller} {self.uid} {self.gid}\n", f"<{self.sender}>\n"]
        out.append(f"{int(self.received_time)} {self.warning_count}\n")
        usec = int(round((self.received_time - int(self.received_time)) * 1_000_000))
        out.append(f"-received_time_usec .{usec:06d}\n")
        for name, value in sorted(self.acl_vars.items()):
            kind, rest = name[0], name[1:]
            out.append(f"-acl{kind} {rest} {len(value.encode('utf-8', 'surrogateescape'))}\n{value}\n")
        for name, value in self.options.items():
            dash = "--" if isinstance(value, Tainted) else "-"
            out.append(f"{dash}{name}\n" if value is None else f"{dash}{name} {value}\n")
        out.append(_tree(sorted(self.non_recipients)))
        out.append(f"{len(self.recipients)}\n")
        out.extend(r.line() + "\n" for r in self.recipients)
        out.append("\n")
        for h in self.headers:
            out.append(f"{len(h.text.encode('utf-8', 'surrogateescape')):03d}{h.type} {h.text}")
        return "".join(out).encode("utf-8", "surrogateescape")

    def data_file_prefix(self) -> bytes:
        return f"{self.message_id}-D\n".encode("ascii")

    # -- reading -------------------------------------------------------------

    @classmethod
    def parse_header_file(cls, data: bytes) -> SpoolMessage:
        text = data.decode("utf-8", "surrogateescape")
        lines = text.split("\n")
        try:
            first = lines[0]
            if not first.endswith("-H"):
                raise SpoolFormatError("first line is not the -H file's own name")
            message_id = first[:-2]
            caller, uid, gid = lines[1].split(" ")
            sender = lines[2]
            if not (sender.startswith("<") and sender.endswith(">")):
                raise SpoolFormatError("sender line is not in <>")
            t, warnings = lines[3].split(" ")
            received = float(t)
            i = 4
            options: dict[str, str | None] = {}
            acl_vars: dict[str, str] = {}
            while lines[i].startswith("-"):
                line = lines[i]
                tainted = line.startswith("--")
                name, has_value, value = line.lstrip("-").partition(" ")
                if name in ("aclc", "aclm"):
                    var, length = value.rsplit(" ", 1)
                    # the value may contain newlines: take `length` characters
                    rest = "\n".join(lines[i + 1 :])
                    acl_vars[name[3] + var] = rest[: int(length)]
                    i += 1 + rest[: int(length)].count("\n")
                elif name == "received_time_usec":
                    received = int(received) + float(value)
                else:
                    options[name] = (Tainted(value) if tainted else value) if has_value else None
                i += 1
            non_recipients, i = _read_tree(lines, i)
            count = int(lines[i])
            recipients = [Recipient.parse(lines[i + 1 + k]) for k in range(count)]
            i += 1 + count
            if lines[i] != "":
                raise SpoolFormatError("no blank line after the recipients")
            headers_text = "\n".join(lines[i + 1 :])
        except (IndexError, ValueError) as exc:
            if isinstance(exc, SpoolFormatError):
                raise
            raise SpoolFormatError(f"malformed -H file: {exc}") from None
        headers: list[SpoolHeader] = []
        pos = 0
        raw = headers_text.encode("utf-8", "surrogateescape")
        while pos < len(raw):
            try:
                length = int(raw[pos : pos + 3])
            except ValueError:
                raise SpoolFormatError("bad header length") from None
            htype = chr(raw[pos + 3])
            start = pos + 5
            headers.append(SpoolHeader(raw[start : start + length].decode("utf-8", "surrogateescape"), htype))
            pos = start + length
        return cls(
            message_id, sender[1:-1], recipients, headers, received, caller, int(uid), int(gid), int(warnings),
            options, acl_vars, non_recipients,
        )


def _tree(addresses: list[str]) -> str:
    """Exim writes the non-recipients as a balanced tree in pre-order: 'XX' when empty."""
    if not addresses:
        return "XX\n"
    mid = len(addresses) // 2
    left, right = addresses[:mid], addresses[mid + 1 :]
    out = f"{'Y' if left else 'N'}{'Y' if right else 'N'} {addresses[mid]}\n"
    if left:
        out += _tree(left)
    if right:
        out += _tree(right)
    return out


def _read_tree(lines: list[str], i: int) -> tuple[list[str], int]:
    if lines[i] == "XX":
        return [], i + 1
    out: list[str] = []

    def node(j: int) -> int:
        flags, _, address = lines[j].partition(" ")
        if len(flags) != 2 or flags[0] not in "YN" or flags[1] not in "YN":
            raise SpoolFormatError("bad non-recipients tree")
        j += 1
        if flags[0] == "Y":
            j = node(j)
        out.append(address)
        if flags[1] == "Y":
            j = node(j)
        return j

    return out, node(i)


def split_host_port(text: str) -> tuple[str, int]:
    """An address with its port, as -H files keep them ("[ip]:port"; "ip.port" from older Exims) and as
    -oMa/-oMi give them ("ip.port" or "ip:port"): (address, port), port 0 when none is given."""
    import ipaddress

    text = text.strip()
    if text.startswith("[") and "]" in text:
        address, _, rest = text[1:].partition("]")
        return address, int(rest[1:]) if rest[1:].isdigit() else 0
    for sep in (".", ":"):
        head, _, tail = text.rpartition(sep)
        if head and tail.isdigit():
            try:
                ipaddress.ip_address(head)
                return head, int(tail)
            except ValueError:
                pass
    return text, 0

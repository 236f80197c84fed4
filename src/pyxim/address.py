"""RFC 2822 addresses the way Exim reads them (parse_extract_address and friends).

`extract_address("Joe <joe@example.org> (work)")` → joe@example.org. Used by
the ${address:} family now; the SMTP server and routers reuse it later.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True, frozen=True)
class ParsedAddress:
    address: str
    local_part: str
    domain: str


def _strip_comments(text: str) -> str:
    out = []
    depth = 0
    quoted = False
    i = 0
    while i < len(text):
        ch = text[i]
        if quoted:
            out.append(ch)
            if ch == "\\" and i + 1 < len(text):
                out.append(text[i + 1])
                i += 1
            elif ch == '"':
                quoted = False
        elif ch == "(":
            depth += 1
        elif ch == ")" and depth:
            depth -= 1
        elif depth:
            pass
        else:
            if ch == '"':
                quoted = True
            out.append(ch)
        i += 1
    return "".join(out)


def split_address_list(text: str) -> list[str]:
    """Split a header-style address list at commas outside quotes, angles and comments."""
    parts: list[str] = []
    buf: list[str] = []
    depth = angle = 0
    quoted = False
    i = 0
    while i < len(text):
        ch = text[i]
        if quoted:
            if ch == "\\" and i + 1 < len(text):
                buf.append(ch)
                i += 1
                ch = text[i]
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch == "(":
            depth += 1
        elif ch == ")" and depth:
            depth -= 1
        elif ch == "<" and not depth:
            angle += 1
        elif ch == ">" and angle and not depth:
            angle -= 1
        elif ch == "," and not depth and not angle:
            parts.append("".join(buf))
            buf = []
            i += 1
            continue
        buf.append(ch)
        i += 1
    parts.append("".join(buf))
    return [p for p in parts if p.strip()]


def extract_address(text: str) -> ParsedAddress | None:
    """The address in `text` (route-addr or bare addr-spec), or None when it does not parse."""
    cleaned = _strip_comments(text).strip()
    if "<" in cleaned:
        start = cleaned.rfind("<")
        end = cleaned.find(">", start)
        if end < 0:
            return None
        inner = cleaned[start + 1 : end].strip()
        if inner.startswith("@") and ":" in inner:  # source route
            inner = inner.split(":", 1)[1]
        cleaned = inner
    cleaned = "".join(cleaned.split()) if '"' not in cleaned else cleaned.strip()
    if cleaned == "":
        return ParsedAddress("", "", "")
    at = cleaned.rfind("@")
    if at < 0:
        return ParsedAddress(cleaned, cleaned, "")
    local, domain = cleaned[:at], cleaned[at + 1 :]
    if not local or not domain:
        return None
    return ParsedAddress(cleaned, local, domain)

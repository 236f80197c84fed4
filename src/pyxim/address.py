"""RFC 2822 addresses read the way Exim reads them (its parse.c).

    parse_address('Joe <joe@example.org> (work)')   -> ParsedAddress('joe@example.org', ...)
    parse_address('Joe Smith')                       -> AddressError('"@" or "." expected …')

The rules are Exim's, not the RFC's: a phrase may contain dots, quoted pairs
are allowed in unquoted local parts, source routes are accepted and dropped,
empty words between dots are tolerated, domains are letters, digits and
hyphens (UTF-8 too with allow_utf8_domains), and a domain literal is
anything printable but [ ] and backslash. Errors carry Exim's wording.

Exim works on bytes; so does this module. Text that arrives as `str`
(bytes above 0x7F carried as surrogate escapes, as everywhere in pyxim) is
encoded to UTF-8 first and the results are decoded back.

Entry points:
  parse_address(text, ...)     one address (parse_extract_address)
  find_address_end(text, i)    where the address starting at i ends (parse_find_address_end)
  extract_addresses(text)      every address of a header-style list, groups allowed (${addresses})
  extract_address(text)        compatibility wrapper: ParsedAddress or None
  split_address_list(text)     the pieces of a comma-separated list
"""

from __future__ import annotations

from dataclasses import dataclass, field

# RFC 5321 limits local parts to 64 and domains to 255 characters; Exim
# refuses an address whose text (comments included) is longer than this.
ADDRESS_MAXLENGTH = 256

_SPACE = b" \t\n\v\f\r"
_SPECIALS = b' ()<>@,;:\\".[]'
_ALNUM = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_XDIGIT = frozenset(b"0123456789abcdefABCDEF")


@dataclass(slots=True, frozen=True)
class ParsedAddress:
    """An extracted address. `domain` is "" for an unqualified local part.

    `start` and `end` delimit, in the input text, the part that held the
    address (what a rewrite replaces); `local_part` keeps any quotes, as in
    Exim's ${local_part:}.
    """

    address: str
    local_part: str
    domain: str
    start: int = 0
    end: int = 0


@dataclass(slots=True, frozen=True)
class AddressError:
    """Why an address did not parse, in Exim's words."""

    message: str

    def __bool__(self) -> bool:  # so that `if parsed:` reads naturally
        return False


@dataclass(slots=True)
class ParseOptions:
    """The main options that change how Exim parses addresses."""

    allow_utf8_domains: bool = False
    strip_trailing_dot: bool = False
    strip_excess_angle_brackets: bool = False


@dataclass(slots=True)
class GroupState:
    """RFC 2822 group syntax ("name: a@b, c@d;") is recognised while scanning a header's list.

    Exim keeps this state between the calls for the addresses of one list.
    """

    allow_group: bool = False
    found_group: bool = False


_DEFAULT_OPTIONS = ParseOptions()


def _b(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _s(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def _is_special(c: int) -> bool:
    """Exim's mac_iscntrl_or_special(); the end of the text (-1) counts as special."""
    return c < 32 or c == 127 or c in _SPECIALS


class _Failed(Exception):
    """A parse failure: Exim's message and the index where parsing stopped."""

    def __init__(self, message: str, at: int) -> None:
        self.message = message
        self.at = at


@dataclass(slots=True)
class _Parser:
    s: bytes
    options: ParseOptions
    last_comment: int = 0
    error: str | None = field(default=None)

    def at(self, i: int) -> int:
        return self.s[i] if i < len(self.s) else -1

    def skip_comment(self, i: int) -> int:
        """Skip white space and (nested) comments; remember where this started."""
        self.last_comment = i
        s = self.s
        while i < len(s):
            while i < len(s) and s[i] in _SPACE:
                i += 1
            if i >= len(s) or s[i] != ord("("):
                break
            level = 1
            i += 1
            while i < len(s):
                c = s[i]
                if c == ord("("):
                    level += 1
                elif c == ord(")"):
                    level -= 1
                    if level <= 0:
                        i += 1
                        break
                elif c == ord("\\") and i + 1 < len(s):
                    i += 1
                i += 1
        return i

    def read_domain(self, i: int) -> tuple[bytes, int]:
        """A domain or a domain literal; the text is empty (and self.error set) when malformed."""
        s = self.s
        i = self.skip_comment(i)
        if self.at(i) == ord("["):
            out = bytearray(b"[")
            i += 1
            while i < len(s) and 33 <= s[i] <= 126 and s[i] not in b"[]\\":
                out.append(s[i])
                i += 1
            if self.at(i) == ord("]"):
                out.append(s[i])
                i += 1
            else:
                self.error = "malformed domain literal"
                out = bytearray()
            return bytes(out), self.skip_comment(i)
        out = bytearray()
        while True:
            before = len(out)
            if self.at(i) != ord("-"):
                i = self._read_subdomain(i, out)
                if i < 0:
                    return b"", -i - 1
            i = self.skip_comment(i)
            if len(out) == before:  # empty component
                if self.options.strip_trailing_dot and out and self.at(i) != ord("."):
                    del out[-1:]
                else:
                    self.error = "domain missing or malformed"
                    out = bytearray()
                return bytes(out), i
            if self.at(i) != ord("."):
                return bytes(out), i
            out.append(s[i])
            i = self.skip_comment(i + 1)

    def _read_subdomain(self, i: int, out: bytearray) -> int:
        """Letters, digits, hyphens (and UTF-8 if allowed); returns -(i+1) after a UTF-8 error."""
        s = self.s
        while i < len(s):
            c = s[i]
            if c in _ALNUM or c == ord("-"):
                out.append(c)
                i += 1
                continue
            if not self.options.allow_utf8_domains or c & 0xC0 != 0xC0:
                break
            extra = 1
            d = (c << 2) & 0xFF
            while extra < 6 and d & 0x80:
                d = (d << 1) & 0xFF
                extra += 1
            if extra == 6:
                self.error = "invalid UTF-8 byte sequence"
                return -(i + 1)
            out.append(c)
            i += 1
            for _ in range(extra):
                if i >= len(s) or s[i] & 0xC0 != 0x80:
                    self.error = "invalid UTF-8 byte sequence"
                    return -(i + 1)
                out.append(s[i])
                i += 1
        return i

    def read_local_part(self, i: int, allow_null: bool) -> tuple[bytes, int]:
        """Dot-separated words (quoted strings or atoms with quoted pairs)."""
        s = self.s
        out = bytearray()
        self.error = None
        while True:
            before = len(out)
            i = self.skip_comment(i)
            if self.at(i) == ord('"'):
                out.append(s[i])
                i += 1
                while i < len(s) and s[i] != ord('"'):
                    out.append(s[i])
                    if s[i] == ord("\\") and i + 1 < len(s):
                        i += 1
                        out.append(s[i])
                    i += 1
                if i >= len(s):
                    self.error = "unmatched doublequote in local part"
                    return bytes(out), i
                out.append(s[i])
                i += 1
            else:
                while i < len(s) and (not _is_special(s[i]) or s[i] == ord("\\")):
                    out.append(s[i])
                    i += 1
                    if s[i - 1] == ord("\\") and i < len(s):
                        out.append(s[i])
                        i += 1
            i = self.skip_comment(i)
            if len(out) == before and self.at(i) != ord("."):
                if not out and not allow_null:
                    self.error = "missing or malformed local part"
                return bytes(out), i
            if self.at(i) != ord("."):
                return bytes(out), i
            while self.at(i) == ord("."):  # several dots count as one separator
                out.append(s[i])
                i += 1

    def read_route(self, i: int) -> int:
        """Skip "@dom1,@dom2:" (source routes are recognised and dropped)."""
        commas = False
        self.error = None
        while self.at(i) == ord("@"):
            domain, i = self.read_domain(i + 1)
            if not domain:
                return i
            if self.at(i) != ord(","):
                break
            commas = True
            i = self.skip_comment(i + 1)
        if self.at(i) == ord(":"):
            i += 1
        else:
            self.error = "colon expected after route list" if commas else "no local part"
        return self.skip_comment(i)

    def read_addr_spec(self, i: int, term: int) -> tuple[bytes, int, int]:
        """local-part[@domain] ending at `term`: (text, index, offset of the domain or 0)."""
        local, i = self.read_local_part(i, False)
        if self.error is not None or self.at(i) == term:
            return local, i, 0
        if self.at(i) != ord("@"):
            self.error = f'"@" or "." expected after "{_s(local)}"'
            return local, i, 0
        domain, i = self.read_domain(i + 1)
        return local + b"@" + domain, i, len(local) + 1


def _malformed(s: bytes, i: int, upto: int) -> str:
    return f"malformed address: {_s(s[i : i + 32])} may not follow {_s(s[:upto])}"


def _extract(p: _Parser, allow_null: bool, group: GroupState) -> tuple[bytes, int, int, int]:
    """Exim's parse_extract_address() proper: (address, domain offset, start, end) or raise _Failed."""
    s = p.s
    i = 0
    while True:  # comes round again after a group name
        i = p.skip_comment(i)
        start = i
        text, i = p.read_local_part(i, True)
        if p.error is not None:
            raise _Failed(p.error, i)
        if p.at(i) in (ord("@"), ord("<")):
            break
        if p.at(i) in (-1, ord(";")):
            if not text:
                raise _Failed("empty address", i)
            return _finish(p, text, 0, start, p.last_comment, i, group)
        # a phrase before <route-addr>, or before ":" when groups are allowed
        while p.at(i) != ord("<") and not (group.allow_group and p.at(i) == ord(":")):
            _, i = p.read_local_part(i, False)
            if p.error is not None:
                raise _Failed(f'{p.error} (expected word or "<")', i)
        if p.at(i) == ord(":"):
            group.found_group = True
            group.allow_group = False
            i += 1
            continue
        break

    if p.at(i) == ord("<"):
        brackets = 1
        i += 1
        if p.options.strip_excess_angle_brackets:
            while p.at(i) == ord("<"):
                brackets += 1
                i += 1
        start = i
        i = p.skip_comment(i)
        routed = False
        if p.at(i) == ord("@"):
            i = p.read_route(i)
            if p.error is not None:
                raise _Failed(p.error, i)
            routed = True
        if allow_null and not routed and p.at(i) == ord(">"):
            text, domain = b"", 0
        else:
            text, i, domain = p.read_addr_spec(i, ord(">"))
            if p.error is not None:
                raise _Failed(p.error, i)
            if routed and domain == 0:
                raise _Failed("domain missing in source-routed address", i)
        end = i
        for _ in range(brackets):
            if p.at(i) != ord(">"):
                if i >= len(s):
                    raise _Failed("'>' missing at end of address", i + 1)
                raise _Failed(_malformed(s, i, i), i + 1)
            i += 1
        i = p.skip_comment(i)
        return _finish(p, text, domain, start, end, i, group)

    if not text:
        # "@route:local@domain" without angle brackets: the route is dropped
        i = p.read_route(i)
        if p.error is not None:
            raise _Failed(p.error, i)
        text, i, domain = p.read_addr_spec(i, -1)
        if p.error is not None:
            raise _Failed(p.error, i)
        if domain == 0:
            raise _Failed("domain missing in source-routed address", i)
        return _finish(p, text, domain, start, p.last_comment, i, group)

    # the strict case, local-part@domain
    dom, i = p.read_domain(i + 1)
    if not dom:
        raise _Failed(p.error or "domain missing or malformed", i)
    return _finish(p, text + b"@" + dom, len(text) + 1, start, p.last_comment, i, group)


def _finish(
    p: _Parser, text: bytes, domain: int, start: int, end: int, i: int, group: GroupState
) -> tuple[bytes, int, int, int]:
    s = p.s
    if i < len(s):
        if group.found_group and s[i] == ord(";"):
            group.found_group = False
            group.allow_group = True
        else:
            raise _Failed(_malformed(s, i, i), i)
    while end > 0 and s[end - 1] in _SPACE:
        end -= 1
    if end - start > ADDRESS_MAXLENGTH:
        raise _Failed(f"address is ridiculously long: {_s(text[:64])}...", i)
    return text, domain, start, end


def parse_address(
    text: str,
    *,
    allow_null: bool = False,
    options: ParseOptions | None = None,
    group: GroupState | None = None,
) -> ParsedAddress | AddressError:
    """Exim's parse_extract_address(): the operative address of an RFC 2822 mailbox.

    `allow_null` accepts "<>" (yielding an empty address); `group` carries the
    group-syntax state across the addresses of one header (see GroupState).
    """
    data = _b(text)
    p = _Parser(data, options or _DEFAULT_OPTIONS)
    state = group if group is not None else GroupState()
    try:
        address, domain, start, end = _extract(p, allow_null, state)
    except _Failed as exc:
        if state.found_group and p.at(exc.at) == ord(";"):
            state.found_group = False
            state.allow_group = True
        return AddressError(exc.message)
    local = address[: domain - 1] if domain else address
    return ParsedAddress(
        _s(address),
        _s(local),
        _s(address[domain:]) if domain else "",
        len(_s(data[:start])),
        len(_s(data[:end])),
    )


def find_address_end(text: str, start: int = 0, nl_ends: bool = False) -> int:
    """Exim's parse_find_address_end(): the index of the comma (or end) that ends the address at `start`."""
    s = text
    i = start
    source_routing = s[i : i + 1] == "@"
    no_term = 1 if source_routing else 0
    n = len(s)
    while i < n and (s[i] != "," or no_term > 0) and (s[i] != "\n" or not nl_ends):
        c = s[i]
        if c == "\\" and i + 1 < n:
            i += 2
        elif c == '"':
            i += 1
            while i < n and (s[i] != "\n" or not nl_ends):
                if s[i] == "\\" and i + 1 < n:
                    i += 1
                elif s[i] == '"':
                    i += 1
                    break
                i += 1
        elif c == "(":
            level = 1
            i += 1
            while i < n and (s[i] != "\n" or not nl_ends):
                if s[i] == "\\" and i + 1 < n:
                    i += 1
                elif s[i] == "(":
                    level += 1
                elif s[i] == ")":
                    level -= 1
                    if level <= 0:
                        i += 1
                        break
                i += 1
        else:
            if c == "<":
                source_routing = s[i + 1 : i + 2] == "@"
                no_term = 2 if source_routing else 1
            elif c == ">":
                no_term -= 1
            elif source_routing and c == ":":
                no_term -= 1
            i += 1
    return i


def split_address_list(text: str) -> list[str]:
    """The comma-separated pieces of an address list (quotes, comments and routes respected), blanks dropped."""
    pieces: list[str] = []
    i = 0
    while True:
        end = find_address_end(text, i)
        piece = text[i:end]
        if piece.strip():
            pieces.append(piece)
        if end >= len(text):
            return pieces
        i = end + 1


def extract_addresses(text: str, options: ParseOptions | None = None) -> list[ParsedAddress]:
    """Every address in a header-style list, group syntax allowed, unparsable items skipped (${addresses:})."""
    group = GroupState(allow_group=True)
    found: list[ParsedAddress] = []
    i = 0
    while True:
        end = find_address_end(text, i)
        parsed = parse_address(text[i:end], options=options, group=group)
        if isinstance(parsed, ParsedAddress):
            found.append(parsed)
        if end >= len(text):
            return found
        i = end + 1


def extract_address(text: str, options: ParseOptions | None = None) -> ParsedAddress | None:
    """The address in `text`, or None when it does not parse; "<>" gives an empty address."""
    parsed = parse_address(text, allow_null=True, options=options)
    return parsed if isinstance(parsed, ParsedAddress) else None


def find_at(address: str) -> int:
    """Exim's parse_find_at(): index of the @ that starts the domain, -1 if none (quotes and \\@ respected)."""
    i = len(address) - 1
    while i >= 0:
        c = address[i]
        if c == "@":
            backslashes = 0
            j = i - 1
            while j > 0 and address[j] == "\\":
                backslashes += 1
                j -= 1
            if backslashes % 2 == 0:
                return i
        elif c == '"':
            return -1
        i -= 1
    return -1

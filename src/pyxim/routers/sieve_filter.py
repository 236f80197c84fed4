"""Sieve filter files (`# Sieve filter`), as Exim 4.96 implements RFC 5228 and its extensions.

Exim obeys a Sieve script while it reads it: what comes before a syntax error has already
been done, a syntax error in code that is skipped still counts, and nothing after an obeyed
"stop" is read at all. Here the script is read whole first into a command tree; where the
reader stopped at an error, an error node stands in the tree, and obeying the tree reaches it
(or skips over it, which also reports it) exactly where Exim's combined reading and obeying
would have stopped. The result mirrors exim_filter.FilterResult so that the redirect router
turns it into addresses, files and replies with the same plumbing.

Capabilities: envelope, fileinto, copy, vacation, subaddress, encoded-character,
comparator-i;ascii-numeric (i;octet and i;ascii-casemap need no require), enotify (only when
the router names a mailto owner, as in Exim).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from pyxim.expand import ExpansionContext
from pyxim.routers.exim_filter import FilterResult, Generated, Reply

_CAPABILITIES = {
    "envelope", "fileinto", "copy", "vacation", "subaddress", "encoded-character", "enotify",
    "comparator-i;ascii-numeric", "comparator-i;octet", "comparator-i;ascii-casemap",
}
_COMPARATORS = ("i;ascii-casemap", "i;octet", "i;ascii-numeric")
_ADDRESS_PARTS = (":localpart", ":domain", ":all", ":user", ":detail")
_MATCH_TYPES = (":is", ":contains", ":matches")
# the header fields the address test may look into (Exim refuses others as invalid)
_ADDRESS_HEADERS = {"from", "to", "cc", "bcc", "sender", "resent-from", "resent-to"}
_ULONG_MAX = 2**64 - 1


class SieveError(Exception):
    """An error in a Sieve script: Exim reports it with the line where its reader stood."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


@dataclass(slots=True)
class SieveOptions:
    """What the redirect router (or -bf) passes to the script."""

    useraddress: str | None = None  # :user of the envelope recipient (default: the local part)
    subaddress: str | None = None  # :detail of the envelope recipient
    vacation_directory: str | None = None
    enotify_mailto_owner: str | None = None
    test_mode: bool = False  # -bf: vacation is known without a directory


@dataclass(slots=True)
class Node:
    kind: str  # a command name, "if" or "error"
    line: int
    args: dict[str, Any] = field(default_factory=dict)
    # for "if": [(test or None where reading it failed, block)], the else block last with test True
    branches: list[tuple[Any, list[Node]]] = field(default_factory=list)


@dataclass(slots=True)
class SieveOutcome:
    """What the script did: the generated deliveries (as an Exim filter's), the implicit keep,
    and the error that stopped it (the message is then kept in "inbox" too)."""

    result: FilterResult
    keep: bool = True
    error: SieveError | None = None


# -- reading the script ---------------------------------------------------------------------


class _Reader:
    def __init__(self, text: str, options: SieveOptions) -> None:
        self.s = text
        self.i = 0
        self.line = 1
        self.options = options
        self.required: set[str] = set()
        self.error: SieveError | None = None

    def fail(self, message: str) -> SieveError:
        return SieveError(message, self.line)

    def white(self) -> None:
        """Skip white space, "#" comments (which need their newline) and bracketed comments."""
        s, n = self.s, len(self.s)
        while self.i < n:
            c = s[self.i]
            if c in " \t":
                self.i += 1
            elif c == "\n":
                self.line += 1
                self.i += 1
            elif c == "#":
                end = s.find("\n", self.i)
                if end < 0:
                    raise self.fail("missing end of comment")
                self.i = end
            elif s.startswith("/*", self.i):
                end = s.find("*/", self.i + 2)
                if end < 0:
                    self.line += s.count("\n", self.i)
                    raise self.fail("missing end of comment")
                self.line += s.count("\n", self.i, end)
                self.i = end + 2
            else:
                return

    def peek(self) -> str:
        return self.s[self.i] if self.i < len(self.s) else ""

    def identifier(self, word: str) -> bool:
        """The word here, in any case, and not just the start of a longer one."""
        end = self.i + len(word)
        if self.s[self.i : end].lower() != word:
            return False
        if end < len(self.s) and (self.s[end].isalnum() or self.s[end] == "_"):
            return False
        self.i = end
        return True

    def tag(self, words: tuple[str, ...]) -> str | None:
        for word in words:
            if self.identifier(word):
                return word
        return None

    def require(self, capability: str) -> None:
        if capability not in self.required:
            raise self.fail(f'missing previous require "{capability}";')

    def string(self) -> str | None:
        """A quoted string or a text: multi-line string; None when neither is here."""
        s, n = self.s, len(self.s)
        if self.peek() == '"':
            self.i += 1
            out: list[str] = []
            while True:
                if self.i >= n:
                    raise self.fail("missing end of string")
                c = s[self.i]
                if c == '"':
                    self.i += 1
                    break
                if c == "\\" and self.i + 1 < n:
                    self.i += 1
                    c = s[self.i]
                    if c == "0":
                        c = "\0"  # Exim's extension: \0 is NUL, to match decoded header NULs
                if c == "\n":
                    self.line += 1
                out.append(c)
                self.i += 1
            return self.decode("".join(out))
        if s[self.i : self.i + 5].lower() == "text:":
            self.i += 5
            while self.peek() in (" ", "\t") and self.peek():
                self.i += 1
            if self.peek() == "#":
                end = s.find("\n", self.i)
                self.i = n if end < 0 else end
            if self.peek() != "\n":
                raise self.fail("syntax error")
            self.i += 1
            self.line += 1
            lines: list[str] = []
            while True:
                end = s.find("\n", self.i)
                if end < 0:
                    self.i = n
                    raise self.fail("missing end of multi line string")
                text = s[self.i : end]
                self.i = end + 1
                self.line += 1
                if text == ".":
                    break
                lines.append(text[1:] + "\n" if text.startswith("..") else text + "\n")
            return self.decode("".join(lines))
        return None

    def decode(self, text: str) -> str:
        """encoded-character: ${hex:…} and ${unicode:…}, once required; malformed ones stay."""
        if "encoded-character" not in self.required or "${" not in text:
            return text

        def one(m: re.Match[str]) -> str:
            kind, body = m.group(1).lower(), m.group(2).split()
            try:
                if kind == "hex":
                    return bytes(int(h, 16) for h in body).decode("utf-8", "surrogateescape")
                return "".join(chr(int(h, 16)) for h in body)
            except ValueError:
                return m.group(0)

        return re.sub(r"\$\{(hex|unicode):([0-9a-fA-F \t\n]*)\}", one, text, flags=re.IGNORECASE)

    def string_list(self) -> list[str] | None:
        if self.peek() != "[":
            one = self.string()
            return None if one is None else [one]
        self.i += 1
        items: list[str] = []
        while True:
            self.white()
            item = self.string()
            if item is None:
                if items:
                    raise self.fail("missing string list")
                break
            items.append(item)
            self.white()
            if self.peek() != ",":
                break
            self.i += 1
        if self.peek() != "]":
            raise self.fail("missing string list")
        self.i += 1
        return items

    def number(self) -> int | None:
        m = re.compile(r"[0-9]+").match(self.s, self.i)
        if m is None:
            return None
        value = int(m.group(0))
        self.i = m.end()
        unit = self.peek()
        if unit in ("K", "M", "G"):
            value *= {"K": 1024, "M": 1024**2, "G": 1024**3}[unit]
            self.i += 1
        if value > _ULONG_MAX:
            raise self.fail("Numerical result out of range")
        return value

    def semicolon(self) -> None:
        self.white()
        if self.peek() != ";":
            raise self.fail("missing semicolon")
        self.i += 1


def parse(text: str, options: SieveOptions) -> list[Node]:
    """The command tree; where reading failed, an "error" node (it is always the last thing read)."""
    r = _Reader(text, options)
    top: list[Node] = []
    stack: list[list[Node]] = [top]
    try:
        r.white()
        if r.identifier("require"):
            r.white()
            names = r.string_list()
            if names is None:
                raise r.fail("capability string list expected")
            for name in names:
                name = name.lower()  # compared with :is and i;ascii-casemap, as Exim does
                if name not in _CAPABILITIES:
                    raise r.fail("unknown capability")
                if name == "enotify" and not options.enotify_mailto_owner:
                    raise r.fail("enotify disabled")
                if name == "vacation" and not (options.vacation_directory or options.test_mode):
                    raise r.fail("vacation disabled")
                r.required.add(name)
            r.semicolon()
        _commands(r, stack)
        r.white()
        if r.i < len(r.s):
            raise r.fail("syntax error")
    except SieveError as exc:
        stack[-1].append(Node("error", exc.line, {"error": exc}))
    return top


def _commands(r: _Reader, stack: list[list[Node]]) -> None:
    into = stack[-1]
    while True:
        r.white()
        if r.identifier("if"):
            node = Node("if", r.line)
            into.append(node)
            _if(r, node, stack)
            continue
        name = r.tag(("stop", "keep", "discard", "redirect", "fileinto", "vacation", "notify"))
        if name is None:
            return
        node = Node(name, r.line)
        if name in ("stop", "keep", "discard"):
            r.semicolon()
            node.line = r.line
            into.append(node)
            continue
        if name in ("fileinto", "vacation"):
            r.require(name)
        elif name == "notify":
            r.require("enotify")
        _action(r, node)
        node.line = r.line  # where Exim obeys it: after its arguments, before the semicolon
        into.append(node)
        r.semicolon()


def _action(r: _Reader, node: Node) -> None:
    args = node.args
    while True:
        r.white()
        if node.kind in ("redirect", "fileinto") and r.identifier(":copy"):
            r.require("copy")
            args["copy"] = True
            continue
        if node.kind == "vacation":
            tag = r.tag((":days", ":subject", ":from", ":addresses", ":mime", ":handle"))
            if tag is not None:
                r.white()
                if tag == ":days":
                    days = r.number()
                    if days is None:
                        raise r.fail("missing number")
                    args["days"] = days
                elif tag == ":mime":
                    args["mime"] = True
                elif tag == ":addresses":
                    found = r.string_list()
                    if found is None:
                        raise r.fail("address string list expected")
                    args["addresses"] = found
                else:
                    value = r.string()
                    if value is None:
                        raise r.fail(f"{tag[1:]} string expected")
                    args[tag[1:]] = value
                continue
        if node.kind == "notify":
            tag = r.tag((":from", ":importance", ":options", ":message"))
            if tag is not None:
                r.white()
                found = r.string_list() if tag == ":options" else r.string()
                if found is None:
                    raise r.fail(f"{tag[1:]} string expected")
                args[tag[1:]] = found
                continue
        break
    value = r.string()
    if value is None:
        raise r.fail({"redirect": "missing redirect recipient string", "fileinto": "missing fileinto folder string",
                      "vacation": "missing reason string", "notify": "missing method string"}[node.kind])
    args["value"] = value


def _block(r: _Reader, stack: list[list[Node]], body: list[Node]) -> None:
    r.white()
    if r.peek() != "{":
        raise r.fail("missing block")
    r.i += 1
    stack.append(body)
    _commands(r, stack)
    r.white()
    if r.peek() != "}":
        raise r.fail("expecting command or closing brace")
    r.i += 1
    stack.pop()


def _if(r: _Reader, node: Node, stack: list[list[Node]]) -> None:
    def branch(with_test: bool) -> None:
        body: list[Node] = []
        node.branches.append((None, body))  # the test is filled in once it has been read whole
        test: Any = True
        if with_test:
            test = _test(r)
            if test is None:
                raise r.fail("missing test")
        node.branches[-1] = (test, body)
        _block(r, stack, body)

    branch(True)
    while True:
        r.white()
        if r.identifier("elsif"):
            branch(True)
        elif r.identifier("else"):
            branch(False)
            return
        else:
            return


def _test(r: _Reader) -> Any:
    r.white()
    if r.identifier("true"):
        return ("true",)
    if r.identifier("false"):
        return ("false",)
    if r.identifier("not"):
        inner = _test(r)
        if inner is None:
            raise r.fail("missing test")
        return ("not", inner)
    for word in ("allof", "anyof"):
        if r.identifier(word):
            r.white()
            if r.peek() != "(":
                raise r.fail("missing test list")
            r.i += 1
            tests = []
            while True:
                inner = _test(r)
                if inner is None:
                    raise r.fail("missing test")
                tests.append(inner)
                r.white()
                if r.peek() != ",":
                    break
                r.i += 1
            if r.peek() != ")":
                raise r.fail("missing closing paren")
            r.i += 1
            return (word, tests)
    if r.identifier("size"):
        r.white()
        which = r.tag((":over", ":under"))
        if which is None:
            raise r.fail("missing :over or :under")
        r.white()
        limit = r.number()
        if limit is None:
            raise r.fail("missing number")
        return ("size", which, limit)
    if r.identifier("exists"):
        r.white()
        names = r.string_list()
        if names is None:
            raise r.fail("header string list expected")
        for name in names:
            _check_header_name(r, name)
        return ("exists", names)
    if r.identifier("valid_notify_method"):
        r.require("enotify")
        r.white()
        uris = r.string_list()
        if uris is None:
            raise r.fail("URI string list expected")
        return ("valid_notify_method", uris)
    for word in ("address", "envelope", "header"):
        if r.identifier(word):
            if word == "envelope":
                r.require("envelope")
            return _compare_test(r, word)
    return None


def _compare_test(r: _Reader, kind: str) -> Any:
    part = comparator = match = None
    while True:
        r.white()
        if kind != "header" and (tag := r.tag(_ADDRESS_PARTS)) is not None:
            if part is not None:
                raise r.fail("address part already specified")
            if tag in (":user", ":detail"):
                r.require("subaddress")
            part = tag
        elif r.identifier(":comparator"):
            if comparator is not None:
                raise r.fail("comparator already specified")
            r.white()
            name = r.string()
            if name is None:
                raise r.fail("missing comparator")
            name = name.lower()
            if name not in _COMPARATORS:
                raise r.fail("invalid comparator")
            comparator = name
        elif (tag := r.tag(_MATCH_TYPES)) is not None:
            if match is not None:
                raise r.fail("match type already specified")
            match = tag
        else:
            break
    names = r.string_list()
    if names is None:
        raise r.fail("header string list expected")
    r.white()
    keys = r.string_list()
    if keys is None:
        raise r.fail("key string list expected")
    comparator, match = comparator or "i;ascii-casemap", match or ":is"
    if comparator == "i;ascii-numeric" and match != ":is":
        raise r.fail("comparator does not offer specified matchtype")
    if comparator == "i;ascii-numeric":
        r.require("comparator-i;ascii-numeric")  # checked once the whole test has been read
    for name in names:
        if kind == "envelope":
            if name.lower() not in ("from", "to"):
                raise r.fail("invalid envelope string")
        else:
            _check_header_name(r, name)
            if kind == "address" and name.lower() not in _ADDRESS_HEADERS:
                raise r.fail("invalid header field")
    return (kind, part or ":all", comparator, match, names, keys)


def _check_header_name(r: _Reader, name: str) -> None:
    if not name or any(c == ":" or ord(c) <= 32 or ord(c) == 127 for c in name):
        raise r.fail("invalid header field")


# -- obeying it ------------------------------------------------------------------------------


class _Stop(Exception):
    pass


@dataclass
class _State:
    ctx: ExpansionContext
    options: SieveOptions
    outcome: SieveOutcome


def run(tree: list[Node], ctx: ExpansionContext, options: SieveOptions) -> SieveOutcome:
    outcome = SieveOutcome(FilterResult())
    state = _State(ctx, options, outcome)
    try:
        _obey(tree, state)
    except _Stop:
        pass
    except SieveError as exc:
        outcome.error = exc
    # a broken script keeps the message, as RFC 5228 asks (on top of what it already did)
    if outcome.keep or outcome.error is not None:
        outcome.result.items.append(Generated("file", "inbox"))
    outcome.result.significant = True
    return outcome


def _raise_if_broken(nodes: list[Node]) -> None:
    """Code that is skipped was still read: an error in it stops the script there."""
    for node in nodes:
        if node.kind == "error":
            raise node.args["error"]
        # (a test that could not be read is followed by its error node, next to the if)
        for _test, body in node.branches:
            _raise_if_broken(body)


def _obey(nodes: list[Node], state: _State) -> None:
    outcome = state.outcome
    items = outcome.result.items
    for node in nodes:
        kind, args = node.kind, node.args
        if kind == "error":
            raise args["error"]
        if kind == "if":
            _obey_if(node, state)
        elif kind == "stop":
            raise _Stop
        elif kind == "keep":
            items.append(Generated("file", "inbox"))
            outcome.keep = False
        elif kind == "discard":
            outcome.keep = False
        elif kind == "redirect":
            items.append(Generated("address", _recipient(args["value"], node.line)))
            outcome.keep = outcome.keep and bool(args.get("copy"))
        elif kind == "fileinto":
            folder = args["value"]
            if not folder or ".." in folder.split("/"):
                raise SieveError("invalid folder", node.line)
            items.append(Generated("file", folder))
            outcome.keep = outcome.keep and bool(args.get("copy"))
        elif kind == "vacation":
            reply = _vacation(args, state)
            if reply is not None:
                items.append(reply)
        elif kind == "notify":
            reply = _notify(args, state)
            if reply is not None:
                items.append(reply)


def _obey_if(node: Node, state: _State) -> None:
    for position, (test, body) in enumerate(node.branches):
        if test is None:
            return  # reading its test failed: the error node that follows the if says so
        if test is True or _test_true(test, state):
            _obey(body, state)
            for _later, later_body in node.branches[position + 1 :]:
                _raise_if_broken(later_body)
            return
        _raise_if_broken(body)


def _recipient(value: str, line: int) -> str:
    from pyxim.address import extract_address

    parsed = extract_address(value)
    address = parsed.address if parsed is not None else value.strip()
    if parsed is not None and not parsed.domain or parsed is None and "@" not in address:
        # Sieve is meant to be portable: there is no default domain to add (Exim's rule)
        raise SieveError("unqualified recipient address", line)
    return address


def _test_true(test: Any, state: _State) -> bool:
    kind = test[0]
    if kind == "true":
        return True
    if kind == "false":
        return False
    if kind == "not":
        return not _test_true(test[1], state)
    if kind == "allof":
        return all(_test_true(t, state) for t in test[1])  # shortcut evaluation, as Exim's
    if kind == "anyof":
        return any(_test_true(t, state) for t in test[1])
    if kind == "size":
        size = _message_size(state)
        return size > test[2] if test[1] == ":over" else size < test[2]
    if kind == "exists":
        return all(_header_values(state, name) for name in test[1])
    if kind == "valid_notify_method":
        return all(uri.lower().startswith("mailto:") for uri in test[1])
    _kind, part, comparator, match, names, keys = test
    for value in _subjects(state, kind, part, names):
        if value is None:
            continue
        if any(_compare(value, key, comparator, match) for key in keys):
            return True
    return False


def _subjects(state: _State, kind: str, part: str, names: list[str]) -> list[str | None]:
    """The strings a header/address/envelope test compares with its keys."""
    from pyxim.address import extract_addresses

    if kind == "header":
        return [v for name in names for v in _header_values(state, name)]
    found: list[str | None] = []
    variables = state.ctx.variables
    if kind == "envelope":
        for name in names:
            if name.lower() == "from":
                sender = str(variables.get("sender_address") or "")
                found.append(_address_part(sender, part) if sender or part == ":all" else None)
            else:
                local = str(variables.get("local_part") or "")
                full = (f"{variables.get('local_part_prefix') or ''}{local}"
                        f"{variables.get('local_part_suffix') or ''}@{variables.get('domain') or ''}")
                if part == ":user":
                    found.append(state.options.useraddress if state.options.useraddress is not None else local)
                elif part == ":detail":
                    found.append(state.options.subaddress)
                else:
                    found.append(_address_part(full, part))
        return found
    for name in names:
        for value in _header_values(state, name):
            for parsed in extract_addresses(value):
                found.append(_address_part(parsed.address, part))
    return found


def _address_part(address: str, part: str) -> str | None:
    local, at, domain = address.rpartition("@")
    if not at:
        local, domain = address, ""
    if part == ":all":
        return address
    if part == ":localpart":
        return local
    if part == ":domain":
        return domain
    user, plus, detail = local.partition("+")
    if part == ":user":
        return user
    return detail if plus else None  # no separator: there is no detail to match


def _header_values(state: _State, name: str) -> list[str]:
    """Each header line of that name, unfolded and with RFC 2047 words decoded."""
    from pyxim.expand.rfc2047 import decode_header_words

    message = state.ctx.message
    if message is None:
        return []
    values = []
    for h in message.visible_headers:
        if h.is_named(name):
            text = re.sub(r"\n(?=[ \t])", "", h.value).strip(" \t\n")
            values.append(decode_header_words(text))
    return values


def _message_size(state: _State) -> int:
    from pyxim.expand import expand_string

    try:
        return int(expand_string("$message_size", state.ctx) or "0")
    except (ValueError, Exception):  # noqa: BLE001 - no message: size 0
        return 0


def _compare(value: str, key: str, comparator: str, match: str) -> bool:
    if comparator == "i;ascii-numeric":
        return _numeric(value) == _numeric(key)
    if comparator == "i;ascii-casemap":
        value, key = _casemap(value), _casemap(key)
    if match == ":is":
        return value == key
    if match == ":contains":
        return key in value
    return _wildcard(key).fullmatch(value) is not None


def _casemap(text: str) -> str:
    # only ASCII letters fold: i;ascii-casemap leaves every other character alone
    return "".join(c.lower() if "A" <= c <= "Z" else c for c in text)


def _numeric(text: str) -> int | None:
    """i;ascii-numeric: the leading digits; a string without them is "infinity" (None)."""
    m = re.match(r"[0-9]+", text)
    return int(m.group(0)) if m else None


def _wildcard(pattern: str) -> re.Pattern[str]:
    out: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        elif c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out), re.DOTALL)


def _vacation(args: dict[str, Any], state: _State) -> Generated | None:
    """RFC 5230's vacation: a reply to the sender, at most once per :days per sender (the
    autoreply transport's once file in sieve_vacation_directory), never to bounces or lists."""
    ctx = state.ctx
    sender = str(ctx.variables.get("return_path") or ctx.variables.get("sender_address") or "")
    if not sender or state.options.vacation_directory is None:
        return None
    message = ctx.message
    if message is not None:
        for h in message.visible_headers:
            lowered = h.name.lower()
            if lowered.startswith("list-") or lowered == "auto-submitted" and h.value.strip().lower() != "no":
                return None
            if lowered == "precedence" and h.value.strip().lower() in ("bulk", "list", "junk"):
                return None
    reason = args["value"]
    subject = args.get("subject")
    if subject is None:
        original = _header_values(state, "subject")
        subject = "Auto: " + (original[0] if original else "")
    fields = {"to": sender, "subject": subject}
    if "from" in args:
        fields["from"] = args["from"]
    if args.get("mime"):
        head, _sep, body = reason.partition("\n\n")
        fields["extra_headers"] = "MIME-Version: 1.0\n" + head.rstrip("\n")
        fields["text"] = body
    else:
        fields["extra_headers"] = ("MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n"
                                   "Content-Transfer-Encoding: quoted-printable")
        fields["text"] = reason
    handle = args.get("handle")
    if handle is None:
        seed = f"{reason}\0{args.get('subject', '')}\0{bool(args.get('mime'))}\0{args.get('from', '')}"
        handle = hashlib.md5(seed.encode("utf-8", "surrogateescape"), usedforsecurity=False).hexdigest()
    if "/" in handle or handle.startswith("."):
        handle = hashlib.md5(handle.encode("utf-8", "surrogateescape"), usedforsecurity=False).hexdigest()
    days = min(max(int(args.get("days", 7)), 1), 31)
    fields["once"] = f"{state.options.vacation_directory.rstrip('/')}/{handle}"
    fields["once_repeat"] = f"{days}d"
    return Generated("reply", sender, unseen=True, reply=Reply(fields, vacation=True))


def _notify(args: dict[str, Any], state: _State) -> Generated | None:
    """enotify with a mailto: URI: a short message to the URI's address, from the mailto owner."""
    from urllib.parse import unquote

    method = args["value"]
    if not method.lower().startswith("mailto:"):
        return None
    to = unquote(method[7:].split("?", 1)[0])
    if not to:
        return None
    subject = args.get("message") or "Notification"
    fields = {"to": to, "subject": subject, "text": subject + "\n"}
    if state.options.enotify_mailto_owner:
        fields["from"] = state.options.enotify_mailto_owner
    return Generated("reply", to, unseen=True, reply=Reply(fields))


def interpret(text: str, ctx: ExpansionContext, options: SieveOptions) -> SieveOutcome:
    return run(parse(text, options), ctx, options)

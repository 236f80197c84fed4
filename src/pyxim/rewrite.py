"""Address rewriting: the `begin rewrite` rules and a transport's headers_rewrite.

Exim 4.96's "Address rewriting" chapter, rule by rule as its rewrite.c does it:

* A rule is `pattern replacement flags`. Without an S flag the pattern is one
  address-list item (expanded first, so regexes want `\\N…\\N`); it sets $0
  (the address, or a regex's match), $1… (the `*` wildcards of the local part
  and the domain, a partial lookup's wild and fixed parts, regex groups). The
  replacement is expanded with those and $local_part/$domain; "*" alone, or a
  forced failure, means "no rewrite here" (`*` also ends the scan).
* Flags say where a rule applies: E/F/T envelope, h/s/f/t/c/b/r headers (none:
  everywhere); S rules see the raw MAIL/RCPT data, angle brackets included. Q
  lets a rule yield an unqualified address (then qualified), R repeats a rule
  up to ten times, q stops after it, w replaces a header's whole mailbox.
  There is no X flag in 4.96: the config reader refuses it, as Exim does.
* Failures are Exim's: a failed expansion or an unusable result is logged
  (main and panic logs) and the address stays as it was; nothing raises.

At reception the envelope rewrites leave `X-rewrote-sender:` and
`X-rewrote-original-recipient:` records in the spool (type `*`, never
delivered), and a rewritten header is added right after its original, which
is marked replaced — exactly Exim's -H file.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pyxim.address import AddressError, GroupState, find_address_end, parse_address

if TYPE_CHECKING:
    from pyxim.config.model import Config, RewriteRule
    from pyxim.expand.context import ExpansionContext
    from pyxim.spool.format import Recipient, SpoolHeader

# Exim's rewrite_* bits (macros.h), so the -brw order and the masks read the same.
SENDER, FROM, TO, CC, BCC, REPLYTO = 0x1, 0x2, 0x4, 0x8, 0x10, 0x20
ALL_HEADERS = 0x3F
ENVFROM, ENVTO = 0x40, 0x80
ALL_ENVELOPE = 0xC0
ALL = 0xFF
SMTP, SMTP_SENDER = 0x100, 0x200
QUALIFY, REPEAT, WHOLE, QUIT = 0x400, 0x800, 0x1000, 0x2000

_LETTERS = {
    "s": SENDER,
    "f": FROM,
    "t": TO,
    "c": CC,
    "b": BCC,
    "r": REPLYTO,
    "h": ALL_HEADERS,
    "F": ENVFROM,
    "T": ENVTO,
    "E": ALL_ENVELOPE,
    "S": SMTP,
    "Q": QUALIFY,
    "R": REPEAT,
    "w": WHOLE,
    "q": QUIT,
}

# spool header type letter -> the flag its rewrites need
HEADER_FLAGS = {"S": SENDER, "F": FROM, "T": TO, "C": CC, "B": BCC, "R": REPLYTO}

# How the address_rewrite log line names where the address came from.
_WHERE = {
    SENDER: "sender:",
    FROM: "from:",
    TO: "to:",
    CC: "cc:",
    BCC: "bcc:",
    REPLYTO: "reply-to:",
    ENVFROM: "env-from",
    ENVTO: "env-to",
    SMTP: "smtp recipient",
    SMTP | SMTP_SENDER: "smtp sender",
}

# -brw's lines, one per flag bit from SENDER to ENVTO, right-aligned as Exim prints them
_TEST_NAMES = ("  sender", "    from", "      to", "      cc", "     bcc", "reply-to", "env-from", "  env-to")

_MAX_REPEATS = 10  # the R flag: Exim gives up after this many repeats of one rule
_LOOKUP_ITEM = re.compile(r"[A-Za-z0-9-]*\*?@?;")
_C_SPACE = " \t\n\v\f\r"


@dataclass(slots=True, frozen=True)
class Rule:
    key: str
    replacement: str
    flags: int
    number: int  # 1-based, for the log line


def rule_bits(letters: str) -> int:
    """The flag letters as Exim's bits; no action letter at all means every header and envelope field."""
    bits = 0
    for ch in letters:
        bits |= _LETTERS.get(ch, 0)
    if not bits & (ALL | SMTP):
        bits |= ALL
    return bits


@dataclass(slots=True, frozen=True)
class RuleSet:
    rules: tuple[Rule, ...] = ()
    exist: int = 0  # the union of every rule's flags: cheap "could anything apply?" tests

    @classmethod
    def of(cls, rules: Iterable[RewriteRule]) -> RuleSet:
        built = tuple(Rule(r.pattern, r.replacement, rule_bits(r.flags), n) for n, r in enumerate(rules, 1))
        exist = 0
        for rule in built:
            exist |= rule.flags
        return cls(built, exist)

    @classmethod
    def from_option(cls, text: str | None) -> RuleSet:
        """A transport's headers_rewrite: a colon list of rules (checked when the config was read)."""
        if not text:
            return cls()
        from pyxim.config.sections import parse_rewrite_rule
        from pyxim.lists import list_items

        return cls.of(parse_rewrite_rule(item) for item in list_items(text))

    def __bool__(self) -> bool:
        return bool(self.rules)


def _now_stamp() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")


def _stderr_log(line: str) -> None:
    sys.stderr.write(f"{_now_stamp()} {line}\n")


@dataclass(slots=True)
class Outcome:
    """What rewrite_one() made of an address: the result, whether a rule fired, whether
    `address` is a whole mailbox (w flag in a header), and the subjects each firing rule saw."""

    address: str
    changed: bool = False
    whole: bool = False
    before: list[str] = field(default_factory=list)


class Rewriter:
    """Applies one rule set. `log` gets the address_rewrite lines (main log), `panic` the
    failures Exim writes to its main and panic logs; both are given the text after the stamp."""

    def __init__(
        self,
        config: Config | None,
        rules: RuleSet,
        ctx: ExpansionContext | None = None,
        *,
        log: Callable[[str], None] | None = None,
        panic: Callable[[str], None] | None = None,
        prefix: str = "",
    ) -> None:
        from pyxim.expand.context import ExpansionContext

        self.config = config
        self.rules = rules
        self.ctx = ctx if ctx is not None else ExpansionContext(config=config)
        self.log = log
        self.prefix = prefix  # "<message id> " for lines logged while a message is received
        self._panic_out = panic or _stderr_log
        self.log_rewrites = False
        if config is not None and log is not None:
            from pyxim import logselector
            from pyxim.errors import ConfigError

            try:
                self.log_rewrites = "address_rewrite" in logselector.parse(
                    str(config.main.get("log_selector") or "")
                )
            except ConfigError:
                self.log_rewrites = False

    def panic(self, line: str) -> None:
        self._panic_out(self.prefix + line)

    def _main_log(self, line: str) -> None:
        (self.log or self._panic_out)(self.prefix + line)

    # -- qualification ----------------------------------------------------------------

    def qualify_domain(self, recipient: bool) -> str:
        from pyxim.expand.evaluate import Evaluation
        from pyxim.expand.variables import resolve_variable

        return resolve_variable(Evaluation(self.ctx), "qualify_recipient" if recipient else "qualify_domain")

    # -- one address --------------------------------------------------------------------

    def rewrite_one(self, subject: str, flag: int, whole_ok: bool = False) -> Outcome:
        """Exim's rewrite_one(): run the rules that carry `flag` over one bare address
        (for S rules: the raw MAIL/RCPT data)."""
        out = Outcome(subject)
        for rule in self.rules.rules:
            if not rule.flags & flag:
                continue
            repeats = 0
            while True:
                captures = self._match(rule, subject, flag)
                if captures is None:
                    break
                if rule.replacement == "*":
                    return out  # "*" means: leave this address alone, and look no further
                step = self._apply(rule, subject, captures, flag, out)
                if step is None:
                    return out  # logged: the address stays as it was
                if step is False:
                    if rule.flags & QUIT:
                        return out
                    break  # a forced failure: on to the next rule
                new, parsed = step
                out.before.append(subject)
                out.changed = True
                if whole_ok and flag & ALL_HEADERS and rule.flags & WHOLE:
                    out.address, out.whole = new, True
                else:
                    out.address, out.whole = parsed, False
                subject = parsed
                if rule.flags & REPEAT:
                    if repeats < _MAX_REPEATS:
                        repeats += 1
                        continue
                    self._main_log("rewrite rule repeat ignored after 10 times")
                if rule.flags & QUIT:
                    return out
                break
        return out

    def _apply(
        self, rule: Rule, subject: str, captures: list[str], flag: int, out: Outcome
    ) -> tuple[str, str] | bool | None:
        """Expand the replacement and check it: (new text, its bare address); False for a
        forced failure; None when Exim logs a failure and gives up on the address."""
        from pyxim.errors import ExpansionError, ForcedFail

        try:
            new = self._expand_replacement(rule.replacement, subject, captures)
        except ForcedFail:
            return False
        except ExpansionError as exc:
            self.panic(f"Expansion of {rule.replacement} failed while rewriting: {exc.message}")
            return None
        except RecursionError:
            self.panic(f"Expansion of {rule.replacement} failed while rewriting: expansion nested too deeply")
            return None
        except Exception as exc:  # noqa: BLE001 — a bug must cost this address its rewrite, not the message
            self.panic(f"Expansion of {rule.replacement} failed while rewriting: internal error: {exc!r}")
            return None
        allow_null = flag in (ENVFROM, SMTP | SMTP_SENDER)  # only a sender may become <>
        parsed = parse_address(new, allow_null=allow_null)
        if isinstance(parsed, AddressError):
            self.panic(f"Rewrite of {subject} yielded unparseable address: {parsed.message} in address {new}")
            return None
        address = parsed.address
        if not parsed.domain and (address or not allow_null):
            if not rule.flags & QUALIFY:
                self.panic(f'Rewrite of {subject} yielded unqualified address "{new}"')
                return None
            address = f"{address}@{self.qualify_domain(True)}"
            new = new[: parsed.start] + address + new[parsed.end :]
        if self.log_rewrites and self.log is not None:
            self.log(
                f'{self.prefix}"{out.address}" from {_WHERE.get(flag, "?")} rewritten as "{new}" '
                f"by rule {rule.number}"
            )
        return new, address

    def _expand_replacement(self, text: str, subject: str, captures: list[str]) -> str:
        if "$" not in text and "\\" not in text:
            return text
        from pyxim.expand.evaluate import Evaluation
        from pyxim.expand.parser import parse

        variables = self.ctx.variables
        saved = {name: variables.get(name) for name in ("local_part", "domain")}
        at = subject.rfind("@")
        variables["local_part"] = subject[:at] if at >= 0 else subject
        variables["domain"] = subject[at + 1 :] if at >= 0 else ""
        try:
            ev = Evaluation(self.ctx)
            ev.set_captures(captures)
            return ev.eval_seq(parse(text))
        finally:
            for name, value in saved.items():
                if value is None:
                    variables.pop(name, None)
                else:
                    variables[name] = value

    # -- matching a rule's pattern -----------------------------------------------------------

    def _expand_key(self, key: str) -> str | None:
        if "$" not in key and "\\" not in key:
            return key
        from pyxim.errors import ExpansionError, ForcedFail
        from pyxim.expand import expand_string

        try:
            return expand_string(key, self.ctx)
        except ForcedFail:
            return None
        except ExpansionError as exc:
            self.panic(f'failed to expand "{key}" while checking a list: {exc.message}')
            return None

    def _match(self, rule: Rule, subject: str, flag: int) -> list[str] | None:
        """$0, $1… when the rule's pattern matches `subject`, else None."""
        key = self._expand_key(rule.key)
        if key is None:
            return None
        try:
            if flag & SMTP:
                return _regex(key, subject)
            return self._match_items([key], subject)
        except RecursionError:
            return None
        except Exception as exc:  # noqa: BLE001 — a lookup or list that cannot complete is "no match"
            message = getattr(exc, "message", None) or str(exc)
            self.panic(f"rewrite rule {rule.number}: unable to match {subject}: {message}")
            return None

    def _match_items(self, items: Sequence[str], subject: str, depth: int = 0) -> list[str] | None:
        """Exim's match_check_list() over address-list items, keeping the numeric captures of
        the item that decides: a matching `!item` fails the list; running off the end after
        a `!item` matches it, with no captures at all."""
        negative_last = False
        for raw in items:
            item = raw.strip(_C_SPACE)
            if item == "+caseful":
                continue
            positive = not item.startswith("!")
            if not positive:
                item = item[1:].lstrip(_C_SPACE)
            negative_last = not positive
            if item.startswith("+"):
                captures = self._named(item, subject, depth)
            else:
                captures = self._match_item(item, subject)
            if captures is not None:
                return captures if positive else None
        return [] if negative_last else None

    def _named(self, item: str, subject: str, depth: int) -> list[str] | None:
        from pyxim.lists import list_items

        named = self.config.named_lists.get(item[1:]) if self.config is not None else None
        if named is None or named.kind != "address" or depth > 20:
            self.panic(f'unknown named address list "{item}"')
            return None
        text: str | None = named.value
        if "$" in named.value or "\\" in named.value:
            text = self._expand_key(named.value)
        return None if text is None else self._match_items(list_items(text), subject, depth + 1)

    def _match_item(self, item: str, subject: str) -> list[str] | None:
        """One positive address-list item, as match_address_list() with numeric setup sees
        it: the local part caseful, the domain lower-cased."""
        at = subject.rfind("@")
        if at < 0:
            return None
        address = subject[: at + 1] + subject[at + 1 :].lower()
        if item.startswith("^"):
            return _regex(item, address)
        if item.startswith("/") or "@@" in item:
            from pyxim.lists import check_address_list

            return [address] if check_address_list(self.ctx, address, item, False).matched else None
        if _LOOKUP_ITEM.match(item):
            from pyxim.lists import check_string

            hit = check_string(
                self.ctx, address, item, caseless=False, at_special=False, use_partial=False, setup=True
            )
            return None if hit is None else []  # a whole-address lookup sets no $0
        local, domain = address[:at], address[at + 1 :]
        captures = [address]
        pat_at = item.rfind("@")
        dpattern = item
        if pat_at >= 0:
            lpat, dpattern = item[:pat_at], item[pat_at + 1 :]
            if lpat.startswith("*"):
                tail = lpat[1:]
                if len(local) < len(tail) or not local.endswith(tail):
                    return None
                captures.append(local[: len(local) - len(tail)])
            elif local != lpat:
                return None
        dpattern = dpattern.strip(_C_SPACE)
        if not dpattern:
            return None
        from pyxim.lists import _run_list, _StringMatcher

        matcher = _StringMatcher(self.ctx, "domain", domain, True, setup=True)
        matched, _ = _run_list(self.ctx, [dpattern], matcher)
        if not matched:
            return None
        captures.extend((matcher.slots.captures or [domain])[1:])
        return captures

    # -- envelope and headers ---------------------------------------------------------------

    def envelope(self, address: str, recipient: bool) -> Outcome:
        """Exim's rewrite_address(): qualify, then the F or T rules."""
        if address and "@" not in address:
            address = f"{address}@{self.qualify_domain(recipient)}"
        flag = ENVTO if recipient else ENVFROM
        if not self.rules.exist & flag:
            return Outcome(address)
        return self.rewrite_one(address, flag)

    def header(
        self,
        text: str,
        htype: str,
        allow_unqualified_sender: bool,
        allow_unqualified_recipient: bool,
        routed: tuple[str, str] | None = None,
    ) -> str | None:
        """Exim's rewrite_one_header(): the new text of header line `text` (type letter
        `htype`), or None when no address in it is qualified or rewritten."""
        flag = HEADER_FLAGS.get(htype)
        colon = text.find(":")
        if flag is None or colon < 0:
            return None
        is_recipient = not flag & (SENDER | FROM | REPLYTO)
        allowed = allow_unqualified_recipient if is_recipient else allow_unqualified_sender
        # The new text is built in pieces (a header may hold thousands of addresses);
        # `copied` is how much of the original is already in them, `length` their size.
        pieces: list[str] = []
        copied = length = 0
        s = _skip_space(text, colon + 1)
        group = GroupState(allow_group=True)
        last_newline = 0
        while s < len(text):
            ss = find_address_end(text, s)
            piece = text[s:ss]
            parsed = parse_address(piece, group=group)
            sprev = s
            s = _skip_space(text, ss + 1 if ss < len(text) else ss)
            if isinstance(parsed, AddressError):
                # Exim leaves what it cannot parse alone, and says so when it has rules at all
                if self.rules.rules:
                    self._main_log(f"rewrite: {parsed.message}")
                continue
            address, start, end = parsed.address, parsed.start, parsed.end
            changed = False
            if routed is not None:
                # a router's rewrite_headers: only the domain it widened or qualified changes
                if not parsed.domain or parsed.domain.lower() != routed[0].lower():
                    continue
                address = f"{parsed.local_part}@{routed[1]}"
            elif not parsed.domain:
                if not allowed:
                    continue  # unqualified from a host not allowed to send that: not even rewritten
                address = f"{address}@{self.qualify_domain(is_recipient)}"
                changed = True
            if routed is not None:
                changed = True
            elif self.rules.exist & flag:
                outcome = self.rewrite_one(address, flag, whole_ok=True)
                if outcome.changed:
                    changed = True
                    address = outcome.address
                    if outcome.whole:
                        start, end = 0, ss - sprev
                        if end > 0 and piece[end - 1] == "\n":
                            end -= 1
            if not changed:
                continue
            added = (text[copied : sprev + start], address, text[sprev + end : s])
            pieces.extend(added)
            length += sum(len(x) for x in added)
            copied = s
            # A longer address far along the line gets a fold after it (Exim's rule of thumb).
            if len(address) > end - start and length - last_newline > 40:
                p = s - 1
                while p >= 0 and text[p] in " \t":
                    p -= 1
                if p < 0 or text[p] != "\n":
                    last_newline = length
                    pieces.append("\n\t")
                    length += 2
        if not pieces:
            return None
        pieces.append(text[copied:])
        return "".join(pieces)


def _skip_space(text: str, i: int) -> int:
    while i < len(text) and text[i] in _C_SPACE:
        i += 1
    return i


def _regex(pattern: str, subject: str) -> list[str] | None:
    from pyxim.expand.regex import compile_pcre

    m = compile_pcre(pattern).search(subject)
    return None if m is None else m.captures()


# -- the places that use it ------------------------------------------------------------------


def rules_of(config: Config) -> RuleSet:
    return RuleSet.of(config.rewrite_rules)


def rewrite_test(
    config: Config, address: str, out: Callable[[str], None], log: Callable[[str], None] | None = None
) -> None:
    """-brw: what every kind of rewrite makes of `address`, in Exim's words and order."""
    rules = rules_of(config)
    if not rules.exist:
        out("No rewrite rules are defined\n")
        return
    rw = Rewriter(config, rules, log=log or _stderr_log)
    if rules.exist & SMTP:
        outcome = rw.rewrite_one(address, SMTP | SMTP_SENDER)
        if outcome.changed:
            out(f"    SMTP: {outcome.address or '<>'}\n")
    if "@" not in address:
        address = f"{address}@{rw.qualify_domain(True)}"
    parsed = parse_address(address)
    if isinstance(parsed, AddressError):
        message = parsed.message
        out(f"Syntax error in {address}\n{message[:1].upper()}{message[1:]}\n")
        return
    for bit, name in enumerate(_TEST_NAMES):
        flag = 1 << bit
        outcome = rw.rewrite_one(parsed.address, flag, whole_ok=True)
        new = outcome.address
        if not new:
            out(f"{name}: <>\n")
        elif outcome.whole or not flag & ALL_HEADERS:
            out(f"{name}: {new}\n")
        else:
            out(f"{name}: {address[: parsed.start]}{new}{address[parsed.end :]}\n")


def smtp_command(
    config: Config,
    ctx: ExpansionContext,
    text: str,
    log: Callable[[str], None] | None = None,
    panic: Callable[[str], None] | None = None,
) -> str:
    """The S rules over MAIL/RCPT data (`text` after "FROM:"/"TO:"): they see the address as
    sent, angle brackets and all, before any syntax check; ESMTP parameters are kept."""
    rules = rules_of(config)
    if not rules.exist & SMTP:
        return text
    body = text.strip(_C_SPACE)
    if body.startswith("<"):
        close = body.find(">")
        cut = close + 1 if close >= 0 else len(body)
    else:
        cut = next((i for i, ch in enumerate(body) if ch in " \t"), len(body))
    token, rest = body[:cut], body[cut:]
    outcome = Rewriter(config, rules, ctx, log=log, panic=panic).rewrite_one(token, SMTP)
    if not outcome.changed:
        return text
    return f"<{outcome.address}>{rest}"


def rewrite_reception(
    config: Config,
    ctx: ExpansionContext,
    sender: str | None,
    recipients: Sequence[Recipient],
    headers: list[SpoolHeader],
    *,
    allow_unqualified_sender: bool,
    allow_unqualified_recipient: bool,
    skip: Iterable[str] = (),
    log: Callable[[str], None] | None = None,
    panic: Callable[[str], None] | None = None,
    prefix: str = "",
) -> tuple[str | None, list[SpoolHeader]]:
    """The rewrites Exim makes when it receives a message: envelope recipients (T), the
    sender (F), then every Sender/From/To/Cc/Bcc/Reply-To header (unqualified addresses
    qualified when allowed). Recipients and `headers` change in place (a rewritten header
    follows its original, which becomes type "*"). Returns the new sender and the
    X-rewrote-… records, which the caller files after its Message-Id fixup."""
    from pyxim.spool.format import SpoolHeader

    rules = rules_of(config)
    rw = Rewriter(config, rules, ctx, log=log, panic=panic, prefix=prefix)
    records: list[SpoolHeader] = []
    if rules.exist & ALL_ENVELOPE:
        for rcpt in recipients:
            outcome = rw.envelope(rcpt.address, True)
            records.extend(SpoolHeader(f"X-rewrote-original-recipient: {b}\n", "*") for b in outcome.before)
            rcpt.address = outcome.address
        if sender:
            outcome = rw.envelope(sender, False)
            records.extend(SpoolHeader(f"X-rewrote-sender: {b}\n", "*") for b in outcome.before)
            sender = outcome.address
    if not rules and not (allow_unqualified_sender or allow_unqualified_recipient):
        return sender, records  # nothing could change: spare the daemon the parsing
    from pyxim.expand.message import header_type

    dropped = {name.lower() for name in skip}
    i = 0
    while i < len(headers):
        h = headers[i]
        i += 1
        # Exim types Resent-To: like To: (and so on), so those are rewritten too
        htype = h.type if h.type != " " else header_type(h.text)
        if htype not in HEADER_FLAGS or h.text.split(":", 1)[0].strip().lower() in dropped:
            continue
        new = rw.header(h.text, htype, allow_unqualified_sender, allow_unqualified_recipient)
        if new is not None:
            headers.insert(i, SpoolHeader(new, htype))
            h.type = "*"
            i += 1
    return sender, records


def transport_rewriter(
    option: str | None, config: Config | None, ctx: ExpansionContext, allow_unqualified: bool = False
) -> Callable[[SpoolHeader], str | None] | None:
    """headers_rewrite: a function giving a header's text as the transport should write it
    (None: unchanged), or None when the option is unset. The spool is not touched."""
    if not option:
        return None
    rules = RuleSet.from_option(option)
    if not rules:
        return None
    rw = Rewriter(config, rules, ctx)

    def rewrite(h: SpoolHeader) -> str | None:
        from pyxim.expand.message import header_type

        htype = h.type if h.type != " " else header_type(h.text)
        return rw.header(h.text, htype, allow_unqualified, allow_unqualified)

    return rewrite


def panic_writer(log: Callable[[str], None], to_stderr: bool) -> Callable[[str], None]:
    """Where a reception-time rewrite failure goes: Exim writes it to the main and panic logs
    (and, in a session on standard input, to stderr). `log` is the session's main-log writer;
    when it belongs to a Logger, that Logger's panic() writes both files."""
    owner = getattr(log, "__self__", None)
    write = getattr(owner, "panic", None) if owner is not None else None

    def panic(line: str) -> None:
        try:
            (write if callable(write) else log)(line)
        except OSError:
            pass
        if to_stderr:
            _stderr_log(line)

    return panic


def bem_rewriter(ctx: ExpansionContext) -> Callable[[str, str], str | None] | None:
    """-bem reads its message as a local submission: address headers are qualified and
    rewritten by the configuration's rules (log lines on stderr). None: no rules."""
    config = ctx.config
    if config is None or not config.rewrite_rules:
        return None
    rw = Rewriter(config, rules_of(config), ctx, log=_stderr_log)

    def rewrite(text: str, htype: str) -> str | None:
        return rw.header(text, htype, True, True)

    return rewrite


def rewrite_routed_domain(headers: Sequence[SpoolHeader], old: str, new: str) -> list[SpoolHeader]:
    """A router's rewrite_headers (dnslookup, when DNS widened or qualified `old` to `new`):
    the header lines with every address in `old` moved to `new`; a changed line is kept,
    marked replaced, with its new form after it. The list given is not changed."""
    from pyxim.expand.message import header_type
    from pyxim.spool.format import SpoolHeader

    rw = Rewriter(None, RuleSet())
    result: list[SpoolHeader] = []
    for h in headers:
        htype = h.type if h.type != " " else header_type(h.text)
        text = rw.header(h.text, htype, False, False, routed=(old, new)) if htype in HEADER_FLAGS else None
        if text is None:
            result.append(h)
        else:
            result.extend((SpoolHeader(h.text, "*"), SpoolHeader(text, htype)))
    return result

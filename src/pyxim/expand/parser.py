"""Expansion strings → parse trees (nodes.py), following Exim's grammar.

Exim interprets expansion strings in one pass; we parse once and cache the
tree, then evaluate it as often as needed. The grammar and the error texts
follow Exim 4.96 (`exim -be` is the oracle), including its quirks:

* inside a brace argument a literal `{` is plain text and the first
  unescaped `}` ends the argument — braces only nest through `${…}`;
* `$h_name:` header references run to the colon;
* `${name}` is a variable, `${name:…}` an operator, `${name{…}…}` an item;
* operators whose name is not known whole are split at the first
  underscore (`length_3`, `substr_1_2`, `sha2_256`).

A syntax error raises ExpansionError with Exim's message. Errors Exim only
detects when it reaches a construct at run time (unknown operator, unknown
variable…) are left to the evaluator, which checks them even in branches it
skips, as Exim does.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from pyxim.errors import ExpansionError
from pyxim.expand import nodes as N
from pyxim.expand.registry import CONDITIONS, ITEMS, OPERATORS, ConditionSpec

HEADER_PREFIXES = ("h", "header", "rh", "rheader", "bh", "bheader", "lh", "lheader")

# Items whose syntax the parser knows itself (special argument shapes).
SPECIAL_ITEMS = frozenset(
    {"if", "lookup", "extract", "filter", "map", "reduce", "sort", "acl", "certextract", "authresults"}
)

_LIST_MATCH_CONDITIONS = frozenset({"match_address", "match_domain", "match_ip", "match_local_part"})

FORALL_KINDS = frozenset({"forall", "forany", "forall_json", "forany_json", "forall_jsons", "forany_jsons"})

_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_SPACE = frozenset(" \t\n\r\f\v")
_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}


class CurlyError(ExpansionError):
    """Exim's EXPAND_FAILED_CURLY: a bracketing problem."""


def _header_prefix(name: str) -> str | None:
    head, sep, _ = name.partition("_")
    if sep and head in HEADER_PREFIXES:
        return head
    return None


def _byte(value: int) -> str:
    """One byte as text: bytes above 0x7F are carried as surrogate escapes (see operators._b)."""
    return chr(value) if value < 0x80 else chr(0xDC00 + value)


def interpret_escape(text: str, i: int) -> tuple[str, int]:
    """Interpret the backslash escape starting at text[i] == '\\'; return (char, next index)."""
    i += 1
    ch = text[i]
    if ch in "01234567":
        j = i
        value = 0
        while j < len(text) and j < i + 3 and text[j] in "01234567":
            value = value * 8 + int(text[j])
            j += 1
        return _byte(value & 0xFF), j
    if ch == "x":
        j = i + 1
        value = 0
        while j < len(text) and j < i + 3 and text[j] in "0123456789abcdefABCDEF":
            value = value * 16 + int(text[j], 16)
            j += 1
        if j == i + 1:
            return "x", j
        return _byte(value), j
    return _ESCAPES.get(ch, ch), i + 1


class Parser:
    def __init__(self, text: str) -> None:
        self.s = text
        self.n = len(text)
        self.malformed_header = False
        # Where brace arguments began, newest last (for messages that quote the rest).
        self._arg_starts: list[int] = []

    # -- errors -------------------------------------------------------------

    def curly(self, message: str = "") -> CurlyError:
        if self.malformed_header:
            return CurlyError("missing or misplaced { or } - could be header name not terminated by colon")
        return CurlyError(message or "missing or misplaced { or }")

    def yesno_curly(self, where: str, i: int) -> CurlyError:
        if self.malformed_header:
            return self.curly()
        return CurlyError(
            f"curly-bracket problem in conditional yes/no parsing: {where}\n remaining string is '{self.s[i:]}'"
        )

    # -- small readers ------------------------------------------------------

    def skip_ws(self, i: int) -> int:
        s, n = self.s, self.n
        while i < n and s[i] in _SPACE:
            i += 1
        return i

    def peek(self, i: int) -> str:
        return self.s[i] if i < self.n else ""

    def read_name(self, i: int, extra: str) -> tuple[str, int]:
        s, n = self.s, self.n
        j = i
        while j < n and (s[j] in _NAME_CHARS or s[j] in extra):
            j += 1
        return s[i:j], j

    def read_number(self, i: int) -> tuple[int, int]:
        j = i
        while j < self.n and self.s[j].isdigit() and self.s[j].isascii():
            j += 1
        return int(self.s[i:j]), j

    def read_header_name(self, i: int) -> tuple[str, int]:
        s, n = self.s, self.n
        j = i
        while j < n and s[j] != ":" and 0x20 < ord(s[j]) < 0x7F:
            j += 1
        text = s[i:j]
        if j < n and s[j] == ":":
            j += 1
        return text, j

    # -- strings ------------------------------------------------------------

    def parse_top(self) -> N.Seq:
        seq, _ = self.parse_seq(0, brace_ends=False)
        return seq

    def parse_seq(self, i: int, brace_ends: bool, honour_dollar: bool = True) -> tuple[N.Seq, int]:
        """Parse text up to the end (or an unescaped `}` when brace_ends)."""
        s, n = self.s, self.n
        parts: list[Any] = []
        buf: list[str] = []
        while i < n:
            ch = s[i]
            if ch == "\\":
                if i + 1 >= n:
                    raise ExpansionError("\\ at end of string")
                if s[i + 1] == "N":
                    end = s.find("\\N", i + 2)
                    if end < 0:
                        buf.append(s[i + 2 :])
                        i = n
                    else:
                        buf.append(s[i + 2 : end])
                        i = end + 2
                    continue
                c, i = interpret_escape(s, i)
                buf.append(c)
                continue
            if brace_ends and ch == "}":
                break
            if ch != "$" or not honour_dollar:
                j = i + 1
                while j < n and s[j] not in "$}\\":
                    j += 1
                buf.append(s[i:j])
                i = j
                continue
            if buf:
                parts.append(N.Text("".join(buf)))
                buf = []
            node, i = self.parse_dollar(i + 1)
            if node is not None:
                parts.append(node)
        else:
            if brace_ends:
                if self.malformed_header:
                    raise ExpansionError(
                        "missing } at end of string - could be header name not terminated by colon"
                    )
                raise ExpansionError("missing } at end of string")
        if buf:
            parts.append(N.Text("".join(buf)))
        return N.Seq(tuple(parts)), i

    def parse_brace_arg(self, i: int, honour_dollar: bool = True) -> tuple[N.Seq, int]:
        """s[i] is '{': parse the argument and return the index after its '}'."""
        self._arg_starts.append(i)
        seq, j = self.parse_seq(i + 1, brace_ends=True, honour_dollar=honour_dollar)
        return seq, j + 1  # parse_seq stops only at '}' when brace_ends

    def parse_dollar(self, i: int) -> tuple[Any, int]:
        ch = self.peek(i)
        if ch.isascii() and ch.isalpha():
            name, i = self.read_name(i, "_")
            prefix = _header_prefix(name)
            if prefix is not None:
                rest, i = self.read_header_name(i)
                hname = name[len(prefix) + 1 :] + rest
                malformed = "}" in hname
                if malformed:
                    self.malformed_header = True
                return N.Header(prefix, hname, malformed), i
            return N.Var(name, braced=False), i
        if ch.isascii() and ch.isdigit():
            num, i = self.read_number(i)
            return N.Capture(num), i
        if ch != "{":
            raise ExpansionError("$ not followed by letter, digit, or {")
        i += 1
        ch = self.peek(i)
        if ch.isascii() and ch.isdigit():
            num, i = self.read_number(i)
            if self.peek(i) != "}":
                raise ExpansionError("} expected after number")
            return N.Capture(num), i + 1
        if not (ch.isascii() and ch.isalpha()):
            raise ExpansionError("letter or digit expected after ${")
        name, i = self.read_name(i, "_-")
        if name in SPECIAL_ITEMS:
            return getattr(self, "item_" + name)(i)
        spec = ITEMS.get(name)
        if spec is not None:
            if spec.parse is not None:
                return spec.parse(self, i, spec)
            args, i = self.read_subs(i, spec.max_args, spec.min_args, name)
            return N.Item(spec, tuple(args)), i
        nxt = self.peek(i)
        if nxt == ":":
            return self.parse_operator(name, i)
        if nxt == "}":
            return N.Var(name, braced=True), i + 1
        raise ExpansionError(
            f'"${{{name}" is not a known operator (or a }} is missing in a variable reference)'
        )

    def parse_operator(self, name: str, i: int) -> tuple[N.Op, int]:
        spec = OPERATORS.get(name)
        sub = None
        if spec is None and "_" in name:
            head, sub = name.split("_", 1)
            spec = OPERATORS.get(head)
        arg, i = self.parse_seq(i + 1, brace_ends=True)
        return N.Op(name, spec, sub if spec is not None else None, arg), i + 1

    def read_subs(
        self, i: int, max_args: int, min_args: int, name: str, check_end: bool = True
    ) -> tuple[list[N.Seq], int]:
        """Exim's read_subs(): brace arguments of an item, then its closing brace."""
        i = self.skip_ws(i)
        args: list[N.Seq] = []
        for k in range(max_args):
            if self.peek(i) != "{":
                if k < min_args:
                    raise self.curly(f"Not enough arguments for '{name}' (min is {min_args})")
                break
            arg, i = self.parse_brace_arg(i)
            args.append(arg)
            i = self.skip_ws(i)
        if check_end:
            ch = self.peek(i)
            if ch != "}":
                if ch == "{":
                    raise ExpansionError(f"Too many arguments for '{name}' (max is {max_args})")
                raise self.curly(f"missing '}}' after '{name}'")
            i += 1
        return args, i

    # -- yes/no strings -----------------------------------------------------

    def parse_yesno(self, i: int, kind: str) -> tuple[N.YesNo, int]:
        i = self.skip_ws(i)
        if self.peek(i) == "}":
            return N.YesNo(kind, None, None, False), i + 1
        if self.peek(i) != "{":
            raise self.yesno_curly("'yes' part did not start with '{'", i)
        yes, i = self.parse_brace_arg(i)
        i = self.skip_ws(i)
        no = None
        fail = False
        if self.peek(i) == "{":
            no, i = self.parse_brace_arg(i)
        elif self.peek(i) != "}":
            word, j = self.read_name(i, "_")
            if word != "fail":
                raise ExpansionError(f'syntax error in "{kind}" item - "fail" expected')
            fail = True
            i = j
        i = self.skip_ws(i)
        if self.peek(i) != "}":
            where = "did not close with '}' after forcedfail" if fail else "did not close with '}'"
            raise self.yesno_curly(where, i)
        return N.YesNo(kind, yes, no, fail), i + 1

    # -- special items ------------------------------------------------------

    def item_if(self, i: int) -> tuple[N.If, int]:
        i = self.skip_ws(i)
        cond, i = self.parse_condition(i)
        try:
            yesno, i = self.parse_yesno(i, "if")
        except ExpansionError:
            # Exim evaluates the condition before it reads the yes/no part, so
            # an error the condition is bound to raise is reported first.
            _check_literal_condition(cond)
            raise
        return N.If(cond, yesno), i

    def item_lookup(self, i: int) -> tuple[N.Lookup, int]:
        i = self.skip_ws(i)
        key = None
        if self.peek(i) == "{":
            key, i = self.parse_brace_arg(i)
            i = self.skip_ws(i)
        if not (self.peek(i).isascii() and self.peek(i).isalpha()):
            raise ExpansionError("missing lookup type")
        j = i
        while j < self.n and self.s[j] != "{" and self.s[j] not in _SPACE:
            j += 1
        type_spec = self.s[i:j]
        i = self.skip_ws(j)
        if self.peek(i) != "{":
            # Exim checks the type before it looks for the argument.
            from pyxim.lookups import lookup_type_for_spec

            lookup_type_for_spec(type_spec)
            raise self.curly("missing '{' for lookup file-or-query arg")
        arg, i = self.parse_brace_arg(i)
        yesno, i = self.parse_yesno(i, "lookup")
        return N.Lookup(key, type_spec, key is None, arg, yesno), i

    def item_extract(self, i: int) -> tuple[N.Extract, int]:
        i = self.skip_ws(i)
        fmt = ""
        if self.peek(i) != "{" and self.s.startswith("json", i):
            i += 4
            fmt = "json"
            if self.peek(i) == "s":
                fmt = "jsons"
                i += 1
        i = self.skip_ws(i)
        args: list[N.Seq] = []
        while len(args) < 5 and self.peek(i) == "{":
            arg, i = self.parse_brace_arg(i)
            args.append(arg)
            i = self.skip_ws(i)
        # How many arguments are data depends on the first one (a number means
        # three); when it is literal text we know now and can check the yes/no
        # part the way Exim does, with its messages.
        ndata = 2
        if fmt == "" and args and all(isinstance(p, N.Text) for p in args[0].parts):
            first = "".join(p.value for p in args[0].parts).strip()
            digits = first[1:] if first.startswith("-") else first
            if first and (digits == "" or digits.isdigit()):
                ndata = 3
        if len(args) < ndata:
            raise self.curly(f"missing '{{' for arg {len(args) + 1} of extract")
        fail = False
        if len(args) > ndata + 2:
            raise self.yesno_curly("did not close with '}'", self._arg_starts[ndata + 2])
        if self.peek(i) != "}":
            if len(args) == ndata:
                raise self.yesno_curly("'yes' part did not start with '{'", i)
            if len(args) == ndata + 2:
                raise self.yesno_curly("did not close with '}'", i)
            word, j = self.read_name(i, "_")
            if word != "fail":
                raise ExpansionError('syntax error in "extract" item - "fail" expected')
            fail = True
            i = self.skip_ws(j)
            if self.peek(i) != "}":
                raise self.yesno_curly("did not close with '}' after forcedfail", i)
        return N.Extract(fmt, tuple(args), fail), i + 1

    def _iter_first(self, i: int, name: str) -> tuple[N.Seq, int]:
        i = self.skip_ws(i)
        if self.peek(i) != "{":
            raise self.curly(f"missing '{{' for first arg of {name}")
        return self.parse_brace_arg(i)

    def _iter_close(self, i: int, name: str) -> int:
        i = self.skip_ws(i)
        if self.peek(i) != "}":
            raise self.curly(
                f'missing }} at end of condition or expression inside "{name}"; could be an unquoted }} in the content'
            )
        i = self.skip_ws(i + 1)
        if self.peek(i) != "}":
            raise ExpansionError(f'missing }} at end of "{name}"')
        return i + 1

    def item_filter(self, i: int) -> tuple[N.ListIter, int]:
        source, i = self._iter_first(i, "filter")
        i = self.skip_ws(i)
        if self.peek(i) != "{":
            raise self.curly("missing '{' for last arg of filter")
        try:
            cond, i = self.parse_condition(i + 1)
        except ExpansionError as exc:
            raise ExpansionError(f'{exc.message} inside "filter" item') from exc
        return N.ListIter("filter", source, None, cond), self._iter_close(i, "filter")

    def item_map(self, i: int, name: str = "map") -> tuple[N.ListIter, int]:
        source, i = self._iter_first(i, name)
        initial = None
        if name == "reduce":
            i = self.skip_ws(i)
            if self.peek(i) != "{":
                raise self.curly("missing '{' for second arg of reduce")
            initial, i = self.parse_brace_arg(i)
        i = self.skip_ws(i)
        if self.peek(i) != "{":
            raise self.curly(f"missing '{{' for last arg of {name}")
        body, i = self.parse_seq(i + 1, brace_ends=True)
        return N.ListIter(name, source, initial, body), self._iter_close(i, name)

    def item_reduce(self, i: int) -> tuple[N.ListIter, int]:
        return self.item_map(i, "reduce")

    def item_sort(self, i: int) -> tuple[N.Sort, int]:
        parts: list[N.Seq] = []
        for what, honour in (("list", True), ("comparator", False), ("extractor", True)):
            i = self.skip_ws(i)
            if self.peek(i) != "{":
                raise self.curly(f"missing '{{' for {what} arg of sort")
            arg, i = self.parse_brace_arg(i, honour_dollar=honour)
            parts.append(arg)
        if self.peek(i) != "}":
            raise ExpansionError('missing } at end of "sort"')
        return N.Sort(parts[0], parts[1], parts[2]), i + 1

    def item_acl(self, i: int) -> tuple[N.Special, int]:
        args, i = self.read_subs(i, 10, 1, "acl")
        return N.Special("acl", tuple(args)), i

    def item_authresults(self, i: int) -> tuple[N.Special, int]:
        args, i = self.read_subs(i, 1, 1, "authresults")
        return N.Special("authresults", tuple(args)), i

    def item_certextract(self, i: int) -> tuple[N.Special, int]:
        args, i = self.read_subs(i, 2, 2, "certextract", check_end=False)
        yesno, i = self.parse_yesno(i, "certextract")
        return N.Special("certextract", (*args, yesno)), i  # type: ignore[arg-type]

    # -- conditions ---------------------------------------------------------

    def parse_condition(self, i: int) -> tuple[Any, int]:
        negate = False
        while True:
            i = self.skip_ws(i)
            if self.peek(i) == "!":
                negate = not negate
                i += 1
            else:
                break
        ch = self.peek(i)
        if ch and ch in "<=>":
            # Exim: one of = < > and at most one = after it ("<==" is "<=" then junk)
            j = i + 1
            if self.peek(j) == "=":
                j += 1
            opname, i = self.s[i:j], j
        elif ch.isascii() and ch.isalnum():
            opname, i = self.read_name(i, "_")
        else:
            opname = ""
        if not opname:
            raise ExpansionError(f'condition name expected, but found "{self.s[i : i + 16]}"')
        if opname == "def":
            return self.cond_def(i, negate)
        if opname in ("and", "or"):
            return self.cond_group(i, opname, negate)
        if opname in FORALL_KINDS:
            return self.cond_forall(i, opname, negate)
        if opname == "acl":
            i = self.skip_ws(i)
            if self.peek(i) != "{":
                raise ExpansionError('missing { after "acl"')
            try:
                args, i = self.read_subs(i + 1, 10, 1, "acl")
            except CurlyError as exc:
                raise ExpansionError("too few arguments or bracketing error for acl") from exc
            return N.AclCond(tuple(args), negate), i
        spec = CONDITIONS.get(opname)
        if spec is None:
            raise ExpansionError(f'unknown condition "{opname}"')
        return self.cond_args(i, spec, opname, negate)

    def cond_args(self, i: int, spec: ConditionSpec, opname: str, negate: bool) -> tuple[N.Cond, int]:
        args: list[N.Seq] = []
        for k in range(spec.nargs):
            i = self.skip_ws(i)
            if self.peek(i) != "{":
                if k == 0:
                    raise ExpansionError(f'missing {{ after "{opname}"')
                raise ExpansionError(f'missing 2nd string in {{}} after "{opname}"')
            # Exim does not expand the list of the match_* conditions
            # (EXPAND_LISTMATCH_RHS is off): "$" stays literal there.
            honour = not (k == 1 and opname in _LIST_MATCH_CONDITIONS)
            arg, i = self.parse_brace_arg(i, honour_dollar=honour)
            args.append(arg)
        return N.Cond(spec, opname, tuple(args), negate), i

    def cond_def(self, i: int, negate: bool) -> tuple[N.Def, int]:
        if self.peek(i) != ":":
            raise ExpansionError('":" expected after "def"')
        name, i = self.read_name(i + 1, "_")
        prefix = _header_prefix(name)
        if prefix is not None:
            rest, i = self.read_header_name(i)
            hname = name[len(prefix) + 1 :] + rest
            if "}" in hname:
                self.malformed_header = True
            return N.Def(hname, prefix, negate), i
        # Exim checks the name as it reads it, even in a branch it skips.
        if not name:
            raise ExpansionError('variable name omitted after "def:"')
        from pyxim.expand.variables import is_known_variable, resolve_variable

        if not is_known_variable(name):
            try:
                resolve_variable(None, name)  # type: ignore[arg-type]
            except ExpansionError as exc:
                raise ExpansionError(
                    exc.message.replace(
                        f'unknown variable name "{name}"', f'unknown variable "{name}" after "def:"'
                    )
                ) from None
            raise ExpansionError(f'unknown variable "{name}" after "def:"')
        return N.Def(name, None, negate), i

    def cond_group(self, i: int, opname: str, negate: bool) -> tuple[N.BoolGroup, int]:
        i = self.skip_ws(i)
        if self.peek(i) != "{":
            raise ExpansionError(f'missing {{ after "{opname}"')
        i += 1
        conds: list[Any] = []
        while True:
            i = self.skip_ws(i)
            if self.peek(i) == "}":
                break
            if self.peek(i) != "{":
                raise ExpansionError(
                    f'each subcondition inside an "{opname}{{...}}" condition must be in its own {{}}'
                )
            try:
                cond, i = self.parse_condition(i + 1)
            except ExpansionError as exc:
                raise ExpansionError(f'{exc.message} inside "{opname}{{...}}" condition') from exc
            conds.append(cond)
            i = self.skip_ws(i)
            if self.peek(i) != "}":
                raise ExpansionError(f'missing }} at end of condition inside "{opname}" group')
            i += 1
        return N.BoolGroup(opname, tuple(conds), negate), i + 1

    def cond_forall(self, i: int, opname: str, negate: bool) -> tuple[N.ForAny, int]:
        i = self.skip_ws(i)
        if self.peek(i) != "{":
            raise ExpansionError(f'missing {{ after "{opname}"')
        source, i = self.parse_brace_arg(i)
        i = self.skip_ws(i)
        if self.peek(i) != "{":
            raise ExpansionError(f'missing {{ after "{opname}"')
        try:
            cond, i = self.parse_condition(i + 1)
        except ExpansionError as exc:
            raise ExpansionError(f'{exc.message} inside "{opname}" condition') from exc
        i = self.skip_ws(i)
        if self.peek(i) != "}":
            raise ExpansionError(f'missing }} at end of "{opname}" condition')
        return N.ForAny(opname, source, cond, negate), i + 1


@lru_cache(maxsize=4096)
def parse(text: str) -> N.Seq:
    """Parse an expansion string (cached: configuration strings are expanded over and over)."""
    return Parser(text).parse_top()


def _check_literal_condition(cond: Any) -> None:
    if isinstance(cond, N.Cond) and all(all(isinstance(p, N.Text) for p in a.parts) for a in cond.args):
        from pyxim.expand.conditions import check_when_skipped

        check_when_skipped(cond.opname, ["".join(p.value for p in a.parts) for a in cond.args])


def parse_condition_text(text: str) -> Any:
    """Parse a bare condition (as in an ACL `condition =` or ${filter} body)."""
    cond, _ = Parser(text).parse_condition(0)
    return cond

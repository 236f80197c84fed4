"""Evaluation of expansion parse trees.

An Evaluation is one run of the expander over one context: it carries the
numeric captures ($0…$9), the bound values ($value, $item…) and gives
registered operators, conditions and items what they need (see registry.py).

Every node is either evaluated or *skipped*. Skipping walks a branch that is
not taken and performs only the checks Exim performs there (unknown variables
and operators are still errors), never the work (no lookups, no commands).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from pyxim.errors import ExpansionError, ForcedFail, LookupDefer
from pyxim.expand import nodes as N
from pyxim.expand.context import ExpansionContext
from pyxim.expand.taint import carry, join
from pyxim.lists import iterate_list, list_separator

# Names the evaluator binds itself; everything else goes to variables.py.
_BOUND = ("value", "item")


class Evaluation:
    __slots__ = ("ctx", "captures", "bound", "depth")

    def __init__(self, ctx: ExpansionContext) -> None:
        self.ctx = ctx
        self.captures: list[str] = []
        self.bound: dict[str, str | None] = {}
        self.depth = 0

    # -- API for registered functions --------------------------------------

    def expand(self, text: str) -> str:
        from pyxim.expand.parser import parse

        if "$" not in text and "\\" not in text:
            return text
        return self.eval(parse(text))

    def set_captures(self, groups: Sequence[str]) -> None:
        self.captures = list(groups)

    @contextmanager
    def bind(self, name: str, value: str | None) -> Iterator[None]:
        missing = object()
        old = self.bound.get(name, missing)
        self.bound[name] = value
        try:
            yield
        finally:
            if old is missing:
                del self.bound[name]
            else:
                self.bound[name] = old  # type: ignore[assignment]

    def variable(self, name: str) -> str:
        if name in self.bound:
            return self.bound[name] or ""
        from pyxim.expand.variables import resolve_variable

        return resolve_variable(self, name)

    # -- strings -----------------------------------------------------------

    def eval(self, node: Any) -> str:
        method = _EVAL[type(node)]
        return method(self, node)

    def skip(self, node: Any) -> None:
        method = _SKIP[type(node)]
        method(self, node)

    def eval_seq(self, seq: N.Seq) -> str:
        parts = seq.parts
        if len(parts) == 1:
            return self.eval(parts[0])
        return join(self.eval(p) for p in parts)

    def skip_seq(self, seq: N.Seq) -> None:
        for p in seq.parts:
            self.skip(p)

    def eval_text(self, node: N.Text) -> str:
        return node.value

    def eval_var(self, node: N.Var) -> str:
        try:
            return self.variable(node.name)
        except ExpansionError as exc:
            raise _braced_message(exc, node) from None

    def skip_var(self, node: N.Var) -> None:
        if node.name in self.bound:
            return
        from pyxim.expand.variables import is_known_variable

        if not is_known_variable(node.name):
            self.eval_var(node)  # raises with the right message

    def eval_header(self, node: N.Header) -> str:
        from pyxim.expand.variables import header_variable

        return header_variable(self, node.prefix, node.name)

    def eval_capture(self, node: N.Capture) -> str:
        if node.number < len(self.captures):
            return self.captures[node.number]
        return ""

    def eval_op(self, node: N.Op) -> str:
        arg = self.eval_seq(node.arg)
        if node.spec is None:
            raise ExpansionError(f'unknown expansion operator "{node.name}"')
        return carry(node.spec.func(self, arg, node.sub), arg)

    def skip_op(self, node: N.Op) -> None:
        self.skip_seq(node.arg)
        if node.spec is None:
            raise ExpansionError(f'unknown expansion operator "{node.name}"')

    def eval_item(self, node: N.Item) -> str:
        # each item checks ctx.forbidden itself, with Exim's own wording
        if node.spec.lazy:
            return node.spec.func(self, list(node.args))
        return node.spec.func(self, [self.eval_seq(a) for a in node.args if isinstance(a, N.Seq)])

    def skip_item(self, node: N.Item) -> None:
        if node.spec.skip is not None:
            node.spec.skip(self, list(node.args))
            return
        for a in node.args:
            if isinstance(a, N.Seq):
                self.skip_seq(a)

    # -- yes/no ------------------------------------------------------------

    def yesno(self, yn: N.YesNo, ok: bool, value: str | None, saved_value: str | None) -> str:
        """Exim's process_yesno: choose and expand the yes or no string."""
        if yn.yes is None:
            if yn.kind == "if":
                return "true" if ok else ""
            return (value or "") if ok else ""
        if ok:
            with self.bind("value", value):
                result = self.eval_seq(yn.yes)
            if yn.no is not None:
                with self.bind("value", saved_value):
                    self.skip_seq(yn.no)
            return result
        with self.bind("value", value):
            self.skip_seq(yn.yes)
        if yn.fail:
            raise ForcedFail(f'"{yn.kind}" failed and "fail" requested')
        if yn.no is None:
            return ""
        with self.bind("value", saved_value):
            return self.eval_seq(yn.no)

    def skip_yesno(self, yn: N.YesNo) -> None:
        if yn.yes is not None:
            self.skip_seq(yn.yes)
        if yn.no is not None:
            self.skip_seq(yn.no)

    # -- if ----------------------------------------------------------------

    def eval_if(self, node: N.If) -> str:
        saved = self.captures
        had_value = "value" in self.bound
        saved_value = self.bound.get("value")
        try:
            ok = self.test(node.cond)
            # an acl condition sets $value (its message) for the yes/no strings
            value = self.bound.get("value")
            return self.yesno(node.yesno, ok, value, value)
        finally:
            self.captures = saved
            if had_value:
                self.bound["value"] = saved_value
            else:
                self.bound.pop("value", None)

    def skip_if(self, node: N.If) -> None:
        self.skip_cond(node.cond)
        self.skip_yesno(node.yesno)

    # -- lookup ------------------------------------------------------------

    def eval_lookup(self, node: N.Lookup) -> str:
        from pyxim import lookups

        if "lookup" in self.ctx.forbidden:  # a filter run with forbid_filter_lookup
            raise ExpansionError("lookup expansions are not permitted")

        key = self.eval_seq(node.key) if node.key is not None else None
        self._check_lookup_type(node, key)
        arg = self.eval_seq(node.file_or_query)
        filename: str | None
        if key is None:
            key, filename = arg, None
        else:
            filename = arg
        saved = self.captures
        saved_value = self.bound.get("value")
        try:
            try:
                result = lookups.search(self.ctx, node.type_spec, filename, key)
            except LookupDefer as exc:
                raise LookupDefer(f'lookup of "{_printing(key)}" gave DEFER: {exc.message}') from None
            if result.captures is not None:
                # a partial or default (*) match: $1 is the wild part, $2 the fixed part
                zero = saved[0] if saved else ""
                self.set_captures([zero, *result.captures])
            value = result.value
            return self.yesno(node.yesno, value is not None, value, saved_value)
        finally:
            self.captures = saved

    def _check_lookup_type(self, node: N.Lookup, key: str | None) -> Any:
        from pyxim import lookups

        ltype = lookups.lookup_type_for_spec(node.type_spec)
        if not ltype.query_style:
            if key is None and node.key is None:
                raise ExpansionError(f'missing {{key}} for single-key "{node.type_spec}" lookup')
        elif node.key is not None:
            raise ExpansionError(
                f'a single key was given for lookup type "{node.type_spec}", which is not a single-key lookup type'
            )
        return ltype

    def skip_lookup(self, node: N.Lookup) -> None:
        if node.key is not None:
            self.skip_seq(node.key)
        self._check_lookup_type(node, None if node.key is None else "")
        self.skip_seq(node.file_or_query)
        self.skip_yesno(node.yesno)

    # -- extract -----------------------------------------------------------

    def eval_extract(self, node: N.Extract) -> str:
        args = node.args
        first = self.eval_seq(args[0]).strip()
        numeric = False
        number = 0
        if node.fmt == "":
            if not first:
                raise ExpansionError('first argument of "extract" must not be empty')
            digits = first[1:] if first.startswith("-") else first
            if digits == "" or digits.isdigit():
                numeric = True
                number = -int(digits or "0") if first.startswith("-") else int(digits)
        ndata = 3 if numeric else 2
        if len(args) < ndata:
            raise ExpansionError(f"missing '{{' for arg {len(args) + 1} of extract")
        data = [self.eval_seq(a) for a in args[1:ndata]]
        if node.fmt == "":
            value = _extract_numbered(number, data[0], data[1]) if numeric else _extract_keyed(first, data[0])
        else:
            value = _extract_json(first, data[0], node.fmt == "jsons")
        rest = args[ndata:]
        yn = N.YesNo(
            "extract",
            rest[0] if rest else None,
            rest[1] if len(rest) > 1 else None,
            node.fail,
        )
        saved = self.captures
        try:
            return self.yesno(yn, value is not None, value, self.bound.get("value"))
        finally:
            self.captures = saved

    def skip_extract(self, node: N.Extract) -> None:
        for a in node.args:
            self.skip_seq(a)

    # -- map / filter / reduce / sort ---------------------------------------

    def eval_listiter(self, node: N.ListIter) -> str:
        source = self.eval_seq(node.source)
        sep, _ = list_separator(source)
        if node.kind == "reduce":
            assert node.initial is not None
            acc: str | None = self.eval_seq(node.initial)
            for item in iterate_list(source):
                with self.bind("item", item), self.bind("value", acc):
                    try:
                        acc = self.eval_seq(node.body)
                    except ExpansionError as exc:
                        raise type(exc)(f'{exc.message} inside "reduce" item') from None
            return acc or ""
        out: list[str] = []
        for item in iterate_list(source):
            with self.bind("item", item):
                if node.kind == "filter":
                    try:
                        keep = self.test(node.body)
                    except ExpansionError as exc:
                        raise type(exc)(f'{exc.message} inside "filter" condition') from None
                    if keep:
                        out.append(item)
                else:
                    try:
                        out.append(self.eval_seq(node.body))
                    except ExpansionError as exc:
                        raise type(exc)(f'{exc.message} inside "map" item') from None
        return build_list(out, sep)

    def skip_listiter(self, node: N.ListIter) -> None:
        self.skip_seq(node.source)
        if node.initial is not None:
            self.skip_seq(node.initial)
        if node.kind == "filter":
            self.skip_cond(node.body)
        else:
            self.skip_seq(node.body)

    def eval_sort(self, node: N.Sort) -> str:
        from pyxim.expand.parser import Parser
        from pyxim.expand.registry import CONDITIONS

        source = self.eval_seq(node.source)
        cmp_text = self.eval_seq(node.comparator)
        p = Parser(cmp_text)
        i = p.skip_ws(0)
        ch = p.peek(i)
        if ch.isascii() and ch.isalpha():
            opname, _ = p.read_name(i, "_")
        else:
            j = i
            while j < p.n and cmp_text[j] in "<=>":
                j += 1
            opname = cmp_text[i:j]
        if not opname:
            raise ExpansionError(f'condition name expected, but found "{cmp_text[i : i + 16]}"')
        spec = CONDITIONS.get(opname)
        if spec is None and opname not in ("def", "and", "or", "acl", *FORALL):
            # Exim leaves its message empty here and prints just "Failed: ".
            raise ExpansionError("")
        if opname not in _SORT_COMPARATORS or spec is None:
            raise ExpansionError("comparator not handled for sort")
        sep, _ = list_separator(source)
        keyed: list[tuple[str, str]] = []
        for item in iterate_list(source):
            with self.bind("item", item):
                key = self.eval_seq(node.extractor)
            # insertion sort, as Exim does, so equal keys keep their order
            pos = len(keyed)
            for idx, (k, _) in enumerate(keyed):
                try:
                    before = spec.func(self, [key, k])
                except ExpansionError:
                    # Exim's sortsbefore() treats a failed numeric conversion as
                    # "not before" and carries on; the error is never reported.
                    before = False
                if before:
                    pos = idx
                    break
            keyed.insert(pos, (key, item))
        return build_list([item for _, item in keyed], sep)

    def skip_sort(self, node: N.Sort) -> None:
        self.skip_seq(node.source)
        self.skip_seq(node.comparator)
        self.skip_seq(node.extractor)

    # -- items for later subsystems ----------------------------------------

    def eval_special(self, node: N.Special) -> str:
        if node.name == "acl":
            args = [self.eval_seq(a) for a in node.args]
            runner = self.ctx.acl_runner
            if runner is None:
                raise ExpansionError(f'ERROR from acl "{args[0]}"')
            verdict, message = runner(args[0], args[1:])
            if verdict in ("accept", "deny"):
                return message or ""
            if verdict == "defer":
                raise ForcedFail(f'DEFER from acl "{args[0]}"')
            raise ExpansionError(f'{verdict.upper()} from acl "{args[0]}"')
        if node.name == "authresults":
            from pyxim.expand.authres import authentication_results

            return authentication_results(self, self.eval_seq(node.args[0]))
        if node.name == "certextract":
            for a in node.args[:2]:
                self.eval_seq(a)
            raise ExpansionError("certextract: no certificate support yet (TLS arrives with the SMTP server)")
        raise ExpansionError(f"unsupported item {node.name}")  # pragma: no cover

    def skip_special(self, node: N.Special) -> None:
        for a in node.args:
            if isinstance(a, N.YesNo):
                self.skip_yesno(a)
            else:
                self.skip_seq(a)

    # -- conditions --------------------------------------------------------

    def test(self, cond: Any) -> bool:
        return _TEST[type(cond)](self, cond)

    def skip_cond(self, cond: Any) -> None:
        _SKIP[type(cond)](self, cond)

    def test_cond(self, c: N.Cond) -> bool:
        args = [self.eval_seq(a) for a in c.args] if not c.spec.lazy else list(c.args)
        return c.spec.func(self, args) != c.negate

    def skip_condnode(self, c: N.Cond) -> None:
        for a in c.args:
            self.skip_seq(a)
        # Exim still builds a skipped condition's arguments from their literal
        # text (variables and items give nothing) and checks some of them.
        from pyxim.expand.conditions import check_when_skipped

        check_when_skipped(
            c.opname, ["".join(p.value for p in a.parts if isinstance(p, N.Text)) for a in c.args]
        )

    def test_group(self, g: N.BoolGroup) -> bool:
        want_all = g.kind == "and"
        result = want_all
        decided = False
        for sub in g.conds:
            try:
                if decided:
                    self.skip_cond(sub)
                    continue
                r = self.test(sub)
            except ExpansionError as exc:
                raise type(exc)(f'{exc.message} inside "{g.kind}{{...}}" condition') from None
            if r != want_all:
                result = r
                decided = True
        return result != g.negate

    def skip_group(self, g: N.BoolGroup) -> None:
        for sub in g.conds:
            try:
                self.skip_cond(sub)
            except ExpansionError as exc:
                raise type(exc)(f'{exc.message} inside "{g.kind}{{...}}" condition') from None

    def test_def(self, d: N.Def) -> bool:
        if d.header_prefix is not None:
            msg = self.ctx.message
            exists = msg is not None and msg.has_header(d.name)
            return exists != d.negate
        # The variable name itself was checked when the string was parsed.
        return (self.variable(d.name) != "") != d.negate

    def test_forany(self, f: N.ForAny) -> bool:
        source = self.eval_seq(f.source)
        is_any = f.kind.startswith("forany")
        if f.kind.endswith("_jsons") or f.kind.endswith("_json"):
            items = _json_list_items(source, strings=f.kind.endswith("_jsons"))
        else:
            items = iterate_list(source)
        # Exim's result is the last condition evaluated, false for an empty
        # list — so forall over nothing is false.
        result = False
        # Exim reads the condition once in skip mode first (to find its end),
        # so a bad bool{} fails even over an empty list.
        try:
            self.skip_cond(f.cond)
        except ExpansionError as exc:
            raise type(exc)(f'{exc.message} inside "{f.kind}" condition') from None
        for item in items:
            with self.bind("item", item):
                try:
                    result = self.test(f.cond)
                except ExpansionError as exc:
                    raise type(exc)(f'{exc.message} inside "{f.kind}" condition') from None
            if result == is_any:
                break
        return result != f.negate

    def skip_forany(self, f: N.ForAny) -> None:
        self.skip_seq(f.source)
        self.skip_cond(f.cond)

    def test_acl(self, a: N.AclCond) -> bool:
        args = [self.eval_seq(x) for x in a.args]
        runner = self.ctx.acl_runner
        if runner is None:
            raise ExpansionError(f'ERROR from acl "{args[0]}"')
        verdict, message = runner(args[0], args[1:])
        if verdict in ("accept", "deny"):
            self.bound["value"] = message
            return (verdict == "accept") != a.negate
        if verdict == "defer":
            raise ForcedFail(f'DEFER from acl "{args[0]}"')
        raise ExpansionError(f'{verdict.upper()} from acl "{args[0]}"')

    def skip_acl(self, a: N.AclCond) -> None:
        for x in a.args:
            self.skip_seq(x)


FORALL = ("forall", "forany", "forall_json", "forany_json", "forall_jsons", "forany_jsons")
_SORT_COMPARATORS = frozenset({"<", "<=", ">", ">=", "lt", "lti", "le", "lei", "gt", "gti", "ge", "gei"})


def _noop(ev: Evaluation, node: Any) -> None:
    return None


_EVAL = {
    N.Seq: Evaluation.eval_seq,
    N.Text: Evaluation.eval_text,
    N.Var: Evaluation.eval_var,
    N.Header: Evaluation.eval_header,
    N.Capture: Evaluation.eval_capture,
    N.Op: Evaluation.eval_op,
    N.Item: Evaluation.eval_item,
    N.If: Evaluation.eval_if,
    N.Lookup: Evaluation.eval_lookup,
    N.Extract: Evaluation.eval_extract,
    N.ListIter: Evaluation.eval_listiter,
    N.Sort: Evaluation.eval_sort,
    N.Special: Evaluation.eval_special,
}

_SKIP = {
    N.Seq: Evaluation.skip_seq,
    N.Text: _noop,
    N.Var: Evaluation.skip_var,
    N.Header: _noop,
    N.Capture: _noop,
    N.Op: Evaluation.skip_op,
    N.Item: Evaluation.skip_item,
    N.If: Evaluation.skip_if,
    N.Lookup: Evaluation.skip_lookup,
    N.Extract: Evaluation.skip_extract,
    N.ListIter: Evaluation.skip_listiter,
    N.Sort: Evaluation.skip_sort,
    N.Special: Evaluation.skip_special,
    N.Cond: Evaluation.skip_condnode,
    N.BoolGroup: Evaluation.skip_group,
    N.Def: _noop,
    N.ForAny: Evaluation.skip_forany,
    N.AclCond: Evaluation.skip_acl,
}

_TEST = {
    N.Cond: Evaluation.test_cond,
    N.BoolGroup: Evaluation.test_group,
    N.Def: Evaluation.test_def,
    N.ForAny: Evaluation.test_forany,
    N.AclCond: Evaluation.test_acl,
}


def _braced_message(exc: ExpansionError, node: N.Var) -> ExpansionError:
    if node.braced:
        msg = exc.message.replace(
            f'unknown variable name "{node.name}"', f'unknown variable in "${{{node.name}}}"'
        )
        return type(exc)(msg)
    return exc


def _printing(text: str) -> str:
    """Exim's string_printing(): make control characters visible for messages."""
    out = []
    for ch in text:
        o = ord(ch)
        if ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif o < 0x20 or o == 0x7F:
            out.append(f"\\x{o:02x}")
        else:
            out.append(ch)
    return "".join(out)


def build_list(items: Sequence[str], sep: str) -> str:
    """Join list items with `sep`, doubling separators inside items (Exim's string_append_listele).

    An item that is empty or starts with the separator gets a leading space
    so that the result splits back into the same items.
    """
    out: list[str] = []
    for idx, item in enumerate(items):
        if idx:
            out.append(sep)
            if item == "" or item.startswith(sep):
                out.append(" ")
        out.append(item.replace(sep, sep + sep))
    return join(out)


# -- extract helpers -------------------------------------------------------


def _extract_keyed(key: str, data: str) -> str | None:
    """${extract{key}{data}}: find key=value in a list of such pairs (Exim's expand_getkeyed)."""
    s = data
    i = 0
    n = len(s)
    while i < n:
        while i < n and (s[i].isspace() or s[i] in ";,"):
            i += 1  # Exim skips white space and separators between pairs
        j = i
        while j < n and not s[j].isspace() and s[j] != "=":
            j += 1
        name = s[i:j]
        k = j
        while k < n and s[k].isspace():
            k += 1
        has_eq = k < n and s[k] == "="
        if has_eq:
            k += 1
            while k < n and s[k].isspace():
                k += 1
        value_start = k
        if k < n and s[k] == '"':
            buf = []
            k += 1
            while k < n and s[k] != '"':
                if s[k] == "\\" and k + 1 < n:
                    from pyxim.expand.parser import interpret_escape

                    ch, k = interpret_escape(s, k)
                    buf.append(ch)
                    continue
                buf.append(s[k])
                k += 1
            value = "".join(buf)
            if k < n:
                k += 1
        else:
            while k < n and not s[k].isspace():
                k += 1
            value = s[value_start:k]
        if not has_eq:
            value = ""
            k = j
        if name and name.lower() == key.lower():
            return carry(value, data)
        if k == i:
            k += 1
        i = k
    return None


def _extract_numbered(number: int, separators: str, data: str) -> str | None:
    """${extract{N}{seps}{data}}: field N, counting from the end when negative (expand_gettokened)."""
    if number == 0:
        return data
    fields: list[str] = []
    buf: list[str] = []
    for ch in data:
        if ch in separators:
            fields.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
    fields.append("".join(buf))
    if number > 0:
        if number > len(fields):
            return None
        return carry(fields[number - 1], data)
    if -number > len(fields):
        return None
    return carry(fields[number], data)


def _json_list_items(text: str, strings: bool) -> list[str]:
    try:
        value = json.loads(text)
    except ValueError:
        return []
    if not isinstance(value, list):
        return []
    out = []
    for v in value:
        if strings:
            if not isinstance(v, str):
                raise ExpansionError("missing '\"' wrapping string result for extract jsons")
            out.append(carry(v, text))
        else:
            out.append(carry(json.dumps(v, separators=(",", ":")), text))
    return out


def _extract_json(key: str, data: str, strings: bool) -> str | None:
    try:
        value = json.loads(data)
    except ValueError:
        stripped = data.strip()
        if not stripped.startswith("{") and not stripped.startswith("["):
            raise ExpansionError("missing '{' wrapping object for extract json") from None
        raise ExpansionError("missing '}' wrapping object for extract json") from None
    found: Any
    if isinstance(value, list) and key.isdigit():
        idx = int(key)
        if idx < 1 or idx > len(value):
            return None
        found = value[idx - 1]
    elif isinstance(value, dict):
        if key not in value:
            return None
        found = value[key]
    else:
        return None
    if strings:
        if not isinstance(found, str):
            return None
        return carry(found, data)
    return carry(json.dumps(found, separators=(",", ":")), data)


def expand_tree(tree: N.Seq, ctx: ExpansionContext) -> str:
    return Evaluation(ctx).eval_seq(tree)

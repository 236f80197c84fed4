"""The parse tree of an expansion string.

The parser (parser.py) turns a string into these nodes once; evaluate.py walks
them. Every node can be *evaluated* (producing text) or *skipped*: Exim still
checks what lies in a branch that is not taken (unknown variables, unknown
operators, the syntax) without doing the work, and so do we.

Nodes are plain frozen records; behaviour lives in the evaluator so the tree
stays cheap to build and to cache.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pyxim.expand.registry import ConditionSpec, ItemSpec, OperatorSpec


@dataclass(slots=True, frozen=True)
class Seq:
    """A run of parts whose results are concatenated."""

    parts: tuple[Any, ...]


@dataclass(slots=True, frozen=True)
class Text:
    value: str


@dataclass(slots=True, frozen=True)
class Var:
    name: str
    braced: bool  # ${name} (error wording differs from $name)


@dataclass(slots=True, frozen=True)
class Header:
    prefix: str  # h, header, rh, rheader, bh, bheader, lh, lheader
    name: str  # without the colon
    malformed: bool  # contains "}" (probably a missing colon)


@dataclass(slots=True, frozen=True)
class Capture:
    number: int


@dataclass(slots=True, frozen=True)
class Op:
    name: str  # as written, for messages
    spec: OperatorSpec | None  # None: unknown operator (an error once the argument is expanded)
    sub: str | None
    arg: Seq


@dataclass(slots=True, frozen=True)
class FailMarker:
    """`fail` written in place of an item's no-string (e.g. ${run{…}{yes}fail})."""


@dataclass(slots=True, frozen=True)
class Item:
    spec: ItemSpec
    args: tuple[Seq, ...]


@dataclass(slots=True, frozen=True)
class YesNo:
    """The yes/no strings shared by if, lookup, extract (Exim's process_yesno)."""

    kind: str  # "if", "lookup", "extract" — used in messages
    yes: Seq | None  # None: no strings at all
    no: Seq | None
    fail: bool  # "fail" in place of the no-string


@dataclass(slots=True, frozen=True)
class If:
    cond: Any
    yesno: YesNo


@dataclass(slots=True, frozen=True)
class Lookup:
    key: Seq | None
    type_spec: str
    query_style: bool
    file_or_query: Seq
    yesno: YesNo


@dataclass(slots=True, frozen=True)
class Extract:
    fmt: str  # "", "json", "jsons"
    # Every brace argument in order. Whether the first three or the first two
    # are data depends on the value of the first (a number or a key), so the
    # split into data and yes/no strings happens when it is evaluated.
    args: tuple[Seq, ...]
    fail: bool  # "fail" given in place of the no-string


@dataclass(slots=True, frozen=True)
class ListIter:
    """${map}, ${filter}, ${reduce}."""

    kind: str
    source: Seq
    initial: Seq | None
    body: Any  # Seq for map/reduce, a condition for filter


@dataclass(slots=True, frozen=True)
class Sort:
    source: Seq
    comparator: Seq
    extractor: Seq


@dataclass(slots=True, frozen=True)
class Special:
    """An item whose work belongs to a later subsystem (acl, certextract, authresults …)."""

    name: str
    args: tuple[Seq, ...]


# Conditions


@dataclass(slots=True, frozen=True)
class Cond:
    spec: ConditionSpec
    opname: str
    args: tuple[Seq, ...]
    negate: bool


@dataclass(slots=True, frozen=True)
class BoolGroup:
    kind: str  # "and" / "or"
    conds: tuple[Any, ...]
    negate: bool


@dataclass(slots=True, frozen=True)
class Def:
    name: str
    header_prefix: str | None
    negate: bool


@dataclass(slots=True, frozen=True)
class ForAny:
    kind: str  # forall, forany, forall_json, …
    source: Seq
    cond: Any
    negate: bool


@dataclass(slots=True, frozen=True)
class AclCond:
    args: tuple[Seq, ...]
    negate: bool

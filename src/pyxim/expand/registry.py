"""Registries for expansion operators, conditions and items.

Modules register with decorators keyed by Exim's names; the parser looks names
up here, so a later module (policy/srs.py, acl/…) adds `${srs_encode}` or a
condition without editing the engine. Registration happens at import time;
`pyxim.expand` imports the built-in modules.

What a registered function receives is an `Evaluation` (see evaluate.py): the
running expansion, with its context (`ev.ctx`), `ev.expand(text)` to expand a
further string, `ev.eval(node)` to evaluate a lazily passed argument,
`ev.set_captures(groups)` for $0..$9, and `ev.bind(name, value)` for $item,
$value and friends.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from pyxim.expand.evaluate import Evaluation

# ${name:arg} and ${name_sub:arg}. `sub` is the text after the first underscore
# (e.g. "3" for length_3, "1_2" for substr_1_2, "256" for sha2_256), or None.
OperatorFunc = Callable[["Evaluation", str, "str | None"], str]


@dataclass(slots=True, frozen=True)
class OperatorSpec:
    name: str
    func: OperatorFunc
    takes_sub: bool  # whether name_xxx forms are allowed


OPERATORS: dict[str, OperatorSpec] = {}


def operator(*names: str, takes_sub: bool = False) -> Callable[[OperatorFunc], OperatorFunc]:
    """Register an expansion operator under one or more names.

    Names that themselves contain an underscore (local_part, time_eval…) are
    matched whole before the name is split at its first underscore.
    """

    def register(func: OperatorFunc) -> OperatorFunc:
        for name in names:
            OPERATORS[name] = OperatorSpec(name, func, takes_sub)
        return func

    return register


# Conditions: ${if name {arg1}{arg2}…}. Arguments arrive already expanded,
# in order; `nargs` is how many brace arguments the condition takes.
ConditionFunc = Callable[["Evaluation", list[str]], bool]


@dataclass(slots=True, frozen=True)
class ConditionSpec:
    name: str
    nargs: int
    func: ConditionFunc
    # Arguments whose expansion is handled by the condition itself (e.g. the
    # pattern of `match` is expanded normally; nothing needs this yet, but
    # lazy conditions receive Node objects instead of strings).
    lazy: bool = False


CONDITIONS: dict[str, ConditionSpec] = {}


def condition(*names: str, nargs: int, lazy: bool = False) -> Callable[[ConditionFunc], ConditionFunc]:
    def register(func: ConditionFunc) -> ConditionFunc:
        for name in names:
            CONDITIONS[name] = ConditionSpec(name, nargs, func, lazy)
        return func

    return register


# Items: ${name{arg1}{arg2}…}. `min_args`/`max_args` count brace arguments.
# A non-lazy item receives expanded strings; a lazy one receives parse-tree
# nodes and evaluates them itself with ev.eval(node) (used by map, filter,
# reduce, sort, which bind $item/$value first).
ItemFunc = Callable[["Evaluation", list[Any]], str]


@dataclass(slots=True, frozen=True)
class ItemSpec:
    name: str
    min_args: int
    max_args: int
    func: ItemFunc
    lazy: bool = False
    # parse(parser, i, spec) -> (node, i): items with a syntax of their own
    # (options after the name, a yes/no part with "fail"), called after the name.
    parse: Callable[..., Any] | None = None
    # skip(evaluation, args): what an item still checks in a branch not taken
    skip: Callable[..., None] | None = None


ITEMS: dict[str, ItemSpec] = {}


def item(
    name: str,
    min_args: int,
    max_args: int | None = None,
    lazy: bool = False,
    parse: Callable[..., Any] | None = None,
    skip: Callable[..., None] | None = None,
) -> Callable[[ItemFunc], ItemFunc]:
    def register(func: ItemFunc) -> ItemFunc:
        ITEMS[name] = ItemSpec(
            name, min_args, max_args if max_args is not None else min_args, func, lazy, parse, skip
        )
        return func

    return register

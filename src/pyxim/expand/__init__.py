"""String expansion, to Exim 4.9x's "String expansions" chapter.

    expand_string("${lc:$sender_address}", ctx)

Strings are parsed once into trees (parser.py, cached) and evaluated against
an ExpansionContext (context.py). Operators, conditions and items are found
through registries (registry.py), filled by the modules imported below and by
later subsystems (policy modules add `${srs_encode}`, `inbound_srs`, …).
"""

from __future__ import annotations

from pyxim.errors import ExpansionError, ForcedFail, LookupDefer
from pyxim.expand import conditions as _conditions  # noqa: F401  (registers conditions)
from pyxim.expand import items as _items  # noqa: F401  (registers items)
from pyxim.expand import operators as _operators  # noqa: F401  (registers operators)
from pyxim.expand.context import ExpansionContext
from pyxim.expand.evaluate import Evaluation
from pyxim.expand.parser import parse, parse_condition_text
from pyxim.expand.taint import Tainted, is_tainted
from pyxim.policy import srs as _srs  # noqa: F401,E402  (${srs_encode}, inbound_srs)

__all__ = [
    "ExpansionContext",
    "ExpansionError",
    "ForcedFail",
    "LookupDefer",
    "expand_string",
    "expand_condition",
    "Tainted",
    "is_tainted",
]


def expand_string(text: str, ctx: ExpansionContext | None = None) -> str:
    """Expand `text`; raise ExpansionError (ForcedFail for a forced failure)."""
    if is_tainted(text):
        raise ExpansionError(f"attempt to expand tainted string '{text}'")
    if "$" not in text and "\\" not in text:
        return text
    return Evaluation(ctx or ExpansionContext()).eval_seq(parse(text))


def expand_condition(text: str, ctx: ExpansionContext | None = None) -> bool:
    """Evaluate a bare condition such as `eq{$domain}{example.org}` (used by ACLs and ${filter})."""
    return Evaluation(ctx or ExpansionContext()).test(parse_condition_text(text))

"""Hostile expansion strings: whatever the input, the expander answers or raises ExpansionError."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyxim.errors import ExpansionError
from pyxim.expand import ExpansionContext, expand_string

PIECES = [
    "$", "{", "}", "\\", "\\N", ":", "_", "${", "${if ", "${lookup", "${extract", "${sg{", "${map{", "${reduce{",
    "${filter{", "${sort{", "${lc:", "${substr_", "${hash_", "${eval:", "eq{", "def:", "and{", "or{", "forall{",
    "!", "fail", "{y}", "{n}", "$h_", "$1", "a", "1", "-1", " ", "\n", "\x00", "é", "\udcff", "<;", "json", "${length{",
    "${if match{", "(", ")", "*", "${readfile{", "${run{", "${env{", "${listextract{", "${base64d:", "${mask:",
]

settings.register_profile("ci", max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci")


@given(st.lists(st.sampled_from(PIECES), min_size=1, max_size=25).map("".join))
def test_expander_never_crashes(text: str) -> None:
    ctx = ExpansionContext(forbidden=frozenset({"run", "readfile", "readsocket"}))
    try:
        result = expand_string(text, ctx)
    except ExpansionError:
        return
    assert isinstance(result, str)


@given(st.text(max_size=60))
def test_arbitrary_text_never_crashes(text: str) -> None:
    try:
        expand_string(text, ExpansionContext(forbidden=frozenset({"run", "readfile", "readsocket"})))
    except ExpansionError:
        pass

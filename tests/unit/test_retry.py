"""Retry rules: the intervals Exim's default rule gives, and timing out past the last cutoff."""

from __future__ import annotations

from pyxim.config.model import RetryRule
from pyxim.queue.retry import next_state

# *  *  F,2h,15m; G,16h,1h,1.5; F,4d,6h  (Exim's default retry rule), as the parser stores it
DEFAULT = RetryRule("*", "*", "F,2h,15m; G,16h,1h,1.5; F,4d,6h",
                    items=[("F", 7200, 900, 0), ("G", 57600, 3600, 1500), ("F", 345600, 21600, 0)])


def schedule(rule: RetryRule | None) -> tuple[list[int], float]:
    state, now, steps = None, 0.0, []
    while True:
        state = next_state(rule, state, now, "defer")
        if state.expired:
            return steps, now
        steps.append(int(state.next_try - now))
        now = state.next_try


def test_default_rule_intervals() -> None:
    steps, gave_up = schedule(DEFAULT)
    assert steps[:8] == [900] * 8  # every 15 minutes for the first 2 hours
    assert steps[8:12] == [3600, 5400, 8100, 12150]  # then from 1 hour, growing by 1.5
    assert steps[-1] == 21600  # every 6 hours up to 4 days
    assert 4 * 86400 <= gave_up < 4 * 86400 + 21600  # the first try after the 4-day cutoff gives up


def test_no_rule_means_no_retry() -> None:
    assert schedule(None) == ([], 0.0)

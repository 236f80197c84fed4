"""Retry rules and the retry hints database: when to try a deferred address again, and when to give up.

The retry section's first rule whose pattern matches the address (and whose
error field allows the failure) applies. Its items are read in order: the
first whose cutoff lies beyond the time since the first failure gives the
next interval — F fixed, G growing geometrically, H growing by a random
factor up to the multiplier. Past the last cutoff the address has timed
out and fails ("retry timeout exceeded"), as in Exim.

Records live in spool_directory/db/retry (pyxim.queue.hints), keyed as Exim
keys them: "R:<address>" for routing (and a remote server's 4xx to RCPT),
"T:<address>" for a local delivery, "T:<host>:<ip>[:<port>]" for a remote host
that failed at connection level and "T:<host>:<ip>[:<port>]:<message id>" for a
4xx after MAIL or the data (transports/smtp_delivery.py keeps the host ones).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from pyxim.config.model import Config, RetryRule
from pyxim.queue.hints import HintsDb


@dataclass(slots=True)
class RetryState:
    first_failed: float
    last_try: float
    next_try: float
    interval: float  # the last interval used (G and H rules grow it)
    expired: bool = False
    text: str = ""


def find_rule(config: Config, address: str) -> RetryRule | None:
    from pyxim.expand import ExpansionContext
    from pyxim.lists import match_address_list, match_domain_list

    ctx = ExpansionContext(config=config)
    domain = address.rpartition("@")[2]
    for rule in config.retry_rules:
        pattern = rule.pattern
        try:
            if "@" in pattern:
                if match_address_list(ctx, address, pattern):
                    return rule
            elif match_domain_list(ctx, domain, pattern):
                return rule
        except Exception:  # noqa: BLE001 — a rule that cannot be matched is skipped, as a non-match
            continue
    return None


def next_state(rule: RetryRule | None, old: RetryState | None, now: float, text: str) -> RetryState:
    """The record after one more failure at `now`."""
    first = old.first_failed if old is not None else now
    elapsed = now - first
    items = rule.items if rule is not None else []
    for letter, cutoff, interval, multiplier in items:
        if elapsed >= cutoff:
            continue
        if letter == "F" or old is None or old.interval <= 0:
            step = float(interval)
        else:
            factor = multiplier / 1000 if multiplier else 1.0
            grown = old.interval * factor
            step = random.uniform(old.interval, grown) if letter == "H" else grown
            step = max(step, float(interval))
        return RetryState(first, now, now + step, step, False, text)
    # beyond every cutoff (or no rule at all): the address has timed out
    return RetryState(first, now, now, old.interval if old else 0.0, True, text)


class RetryDb:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.db = HintsDb(str(config.main["spool_directory"]), "retry")

    def get(self, key: str) -> RetryState | None:
        record = self.db.get(key)
        if not isinstance(record, dict):
            return None
        try:
            return RetryState(**record)
        except TypeError:
            return None

    def failed(self, key: str, address: str, now: float, text: str) -> RetryState:
        state = next_state(find_rule(self.config, address), self.get(key), now, text)
        self.db.put(key, {"first_failed": state.first_failed, "last_try": state.last_try,
                          "next_try": state.next_try, "interval": state.interval, "expired": state.expired,
                          "text": state.text})
        return state

    def succeeded(self, key: str) -> None:
        self.db.delete(key)

    def due(self, key: str, now: float) -> bool:
        state = self.get(key)
        return state is None or state.next_try <= now

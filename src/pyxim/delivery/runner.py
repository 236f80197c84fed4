"""Starting deliveries: right after reception, for chosen messages (-M), and queue runs (-q…)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from pyxim.config.model import Config
from pyxim.delivery.engine import AttemptOutcome, deliver_message
from pyxim.spool.store import Spool

LogFunc = Callable[[str], None]


def spool_for(config: Config) -> Spool:
    return Spool(Path(str(config.main["spool_directory"])), bool(config.main.get("split_spool_directory")))


def deliver_now(config: Config, spool: Spool, message_id: str, log: LogFunc, force: bool = False,
                ignore_retry: bool | None = None) -> AttemptOutcome:
    """Deliver one message and, when it produced a bounce, that bounce too (as Exim's delivery process does)."""
    outcome = deliver_message(config, spool, message_id, log, force=force, ignore_retry=ignore_retry)
    for bounce_id in outcome.bounces:
        deliver_message(config, spool, bounce_id, log)
    return outcome


def _selected(spool: Spool, message_id: str, selection: tuple[str, str] | None) -> bool:
    """-R text: some undelivered recipient contains text; -S text: the sender does (both caseless)."""
    if selection is None:
        return True
    from pyxim.spool.format import SpoolFormatError

    try:
        message = spool.read(message_id)[0]
    except (OSError, SpoolFormatError):
        return False
    kind, text = selection
    text = text.lower()
    if kind == "S":
        return text in message.sender.lower()
    done = set(message.non_recipients)
    return any(text in r.address.lower() for r in message.recipients if r.address not in done)


def queue_run(config: Config, spool: Spool, log: LogFunc, *, force: bool = False, frozen: bool = False,
              flag: str = "", selection: tuple[str, str] | None = None) -> list[AttemptOutcome]:
    """One pass over the queue, oldest first (Exim's -q, -qf, -qff; -R/-S select messages)."""
    pid = os.getpid()
    log(f"Start queue run: pid={pid}{(' ' + flag) if flag else ''}")
    outcomes = []
    for message_id in list(spool.message_ids()):
        if not _selected(spool, message_id, selection):
            continue
        outcomes.append(deliver_now(config, spool, message_id, log, force=frozen, ignore_retry=force))
    log(f"End queue run: pid={pid}{(' ' + flag) if flag else ''}")
    return outcomes


def immediate_delivery_wanted(config: Config, controls: set[str] | None = None) -> bool:
    """Exim delivers at once unless queue_only is set or an ACL said control = queue/queue_only."""
    if config.main.get("queue_only"):
        return False
    words = {c.split("/", 1)[0] for c in controls or ()}
    return not words & {"queue", "queue_only"}

"""Starting deliveries: right after reception, for chosen messages (-M), and queue runs (-q…)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from pyxim.config.model import Config
from pyxim.delivery import CONNECTION_CLOSERS, CONTINUE_HOSTS
from pyxim.delivery.engine import AttemptOutcome, deliver_message, waiting_hosts
from pyxim.spool.store import Spool

LogFunc = Callable[[str], None]


def spool_for(config: Config) -> Spool:
    return Spool(Path(str(config.main["spool_directory"])), bool(config.main.get("split_spool_directory")))


def deliver_now(config: Config, spool: Spool, message_id: str, log: LogFunc, force: bool = False,
                ignore_retry: bool | None = None, remote: bool = True, queue_running: bool = False) -> AttemptOutcome:
    """Deliver one message and, when it produced a bounce, that bounce too (as Exim's delivery process does).

    Outside a queue run (`queue_running` False: right after reception, -M) addresses are tried whatever
    their retry times say, as in Exim; a remote host's retry time still counts."""
    outcome = deliver_message(config, spool, message_id, log, force=force, ignore_retry=ignore_retry, remote=remote,
                              queue_running=queue_running)
    for bounce_id in outcome.bounces:
        deliver_message(config, spool, bounce_id, log, queue_running=queue_running)
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


def _first_time(spool: Spool, message_id: str) -> bool:
    """-qi: a message no delivery has been tried for yet (its -H still says deliver_firsttime)."""
    from pyxim.spool.format import SpoolFormatError

    try:
        return "deliver_firsttime" in spool.read(message_id)[0].options
    except (OSError, SpoolFormatError):
        return False


def queue_run(config: Config, spool: Spool, log: LogFunc, *, force: bool = False, frozen: bool = False,
              flag: str = "", selection: tuple[str, str] | None = None, two_stage: bool = False,
              initial_only: bool = False) -> list[AttemptOutcome]:
    """One pass over the queue in order of arrival (Exim's -q, -qf, -qff; -R/-S select messages).

    Exim's order is arbitrary unless queue_run_in_order is set; arrival order is one such order, so
    both settings give it. `two_stage` (-qq): a first pass routes every message and makes its local
    deliveries only, then a second pass delivers, so messages for one host are tried together.
    `initial_only` (-qi): only messages never tried before."""
    pid = os.getpid()
    log(f"Start queue run: pid={pid}{(' ' + flag) if flag else ''}")
    wanted = [m for m in spool.message_ids() if _selected(spool, m, selection)
              and (not initial_only or _first_time(spool, m))]
    hosts: dict[str, str] = {}
    if two_stage:
        for message_id in wanted:
            first = deliver_now(config, spool, message_id, log, force=frozen, ignore_retry=force, remote=False,
                                queue_running=True)
            if first.remote_hosts:
                hosts[message_id] = first.remote_hosts[0]
        wanted = _by_host([m for m in wanted if spool.paths(m)[0].exists()], hosts)
    else:
        # messages whose deliveries wait for a host since an earlier attempt: one connection to that
        # host serves them one after another (Exim's continued delivery from its wait database)
        hosts = waiting_hosts(config, wanted)
        if len(hosts) > len(set(hosts.values())):
            wanted = _by_host(wanted, hosts)
    outcomes = []
    from pyxim import logselector

    skip_logged = "skip_delivery" in logselector.parse(str(config.main.get("log_selector") or ""))
    try:
        for i, message_id in enumerate(wanted):
            # the hosts later messages go to: a connection to one of them is kept for them
            token = CONTINUE_HOSTS.set(frozenset(hosts[m] for m in wanted[i + 1 :] if m in hosts) if hosts else None)
            try:
                outcome = deliver_now(config, spool, message_id, log, force=frozen, ignore_retry=force,
                                      queue_running=True)
            finally:
                CONTINUE_HOSTS.reset(token)
            outcomes.append(outcome)
            if skip_logged and outcome.state in _SKIPPED:
                log(f"{message_id} {_SKIPPED[outcome.state]}")
    finally:
        for close in CONNECTION_CLOSERS:
            close()
    log(f"End queue run: pid={pid}{(' ' + flag) if flag else ''}")
    return outcomes


# what a queue run says of a message it passes by (log_selector skip_delivery, on by default)
_SKIPPED = {"frozen": "Message is frozen", "locked": "Spool file is locked (another process is handling this message)"}


def _by_host(message_ids: list[str], hosts: dict[str, str]) -> list[str]:
    """The second pass of -qq: messages whose remote addresses go first to the same host next to each
    other (in order of arrival otherwise), so that one connection serves them one after another."""
    first_seen: dict[str, int] = {}
    for i, message_id in enumerate(message_ids):
        first_seen.setdefault(hosts.get(message_id, message_id), i)
    return sorted(message_ids, key=lambda m: (first_seen[hosts.get(m, m)], message_ids.index(m)))


def immediate_delivery_wanted(config: Config, controls: set[str] | None = None) -> bool:
    """Exim delivers at once unless queue_only is set or an ACL said control = queue/queue_only."""
    if config.main.get("queue_only"):
        return False
    words = {c.split("/", 1)[0] for c in controls or ()}
    return not words & {"queue", "queue_only"}

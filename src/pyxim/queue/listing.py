"""-bp, -bpc, -bpu: the queue listed as Exim lists it."""

from __future__ import annotations

import time

from pyxim.spool.format import SpoolFormatError
from pyxim.spool.store import Spool


def format_age(seconds: float) -> str:
    minutes = int(seconds) // 60
    if minutes > 60 * 24 * 2:
        return f"{minutes // (60 * 24):2d}d"
    if minutes > 60 * 2:
        return f"{minutes // 60:2d}h"
    return f"{minutes:2d}m"


def format_size(size: int) -> str:
    """Exim's string_format_size(): five columns, K and M rounded."""
    if size == 0:
        return "     "
    if size < 1024:
        return f"{size:5d}"
    if size < 10 * 1024:
        return f"{size / 1024:4.1f}K"
    if size < 1024 * 1024:
        return f"{(size + 512) // 1024:4d}K"
    if size < 10 * 1024 * 1024:
        return f"{size / (1024 * 1024):4.1f}M"
    return f"{(size + 512 * 1024) // (1024 * 1024):4d}M"


def queue_listing(spool: Spool, undelivered_only: bool = False, now: float | None = None) -> str:
    now = time.time() if now is None else now
    out: list[str] = []
    for message_id in spool.message_ids():
        try:
            message, body = spool.read(message_id)
        except (OSError, SpoolFormatError):
            out.append(f"{message_id} spool format error\n\n")
            continue
        size = sum(len(h.text.encode("utf-8", "surrogateescape")) for h in message.headers if h.type != "*")
        size += 1 + len(body)
        frozen = " *** frozen ***" if "frozen" in message.options else ""
        out.append(f"{format_age(now - message.received_time)} {format_size(size)} {message_id} <{message.sender}>{frozen}\n")
        done = set(message.non_recipients)
        for r in message.recipients:
            if r.address in done:
                if not undelivered_only:
                    out.append(f"        D {r.address}\n")
            else:
                out.append(f"          {r.address}\n")
        out.append("\n")
    return "".join(out)


def queue_count(spool: Spool) -> int:
    return sum(1 for _ in spool.message_ids())

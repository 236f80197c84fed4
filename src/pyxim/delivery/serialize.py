"""Concurrency limits shared by every pyxim process on one spool: the generic transport option
max_parallel (Exim's "tpt-serialize-<transport>" key).

A limit of N is N lock files under <spool>/db; a delivery holds one of them (flock, non-blocking)
while the transport runs. The kernel drops a lock when its holder dies, so a crashed delivery never
leaves a slot taken — unlike a counter in a database. Locks on separate opens of a file conflict
between threads of one process too, so the daemon's worker threads are counted as Exim's processes.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
from collections.abc import Iterator
from pathlib import Path

ERRNO_TRETRY = -57  # Exim's basic_errno for "concurrency limit reached": logged as "defer (-57)"


@contextlib.contextmanager
def slot(spool_directory: str, key: str, limit: int) -> Iterator[bool]:
    """Hold one of `limit` slots named key while the block runs; yields False when all are taken."""
    if limit <= 0:
        yield True
        return
    folder = Path(spool_directory) / "db"
    folder.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", key)  # a transport name never reaches the file system raw
    for n in range(limit):
        fd = os.open(folder / f"serialize-{safe}.{n}", os.O_RDWR | os.O_CREAT, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        return
    yield False

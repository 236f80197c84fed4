"""Message ids in Exim 4.96's format: TTTTTT-PPPPPP-FF (base 62).

TTTTTT is the time in seconds, PPPPPP the process id, FF the fraction of the
second in units of 1/2000 s (or, with localhost_number set, 1/200 s plus
localhost_number * 200). One pyxim process receives many messages at once,
so the generator hands out each (second, fraction) pair only once and waits
for the next tick when a second's fractions are used up — the uniqueness
Exim gets from its one-process-per-message design.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
MESSAGE_ID = re.compile(r"^[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}$")


def base62(n: int, width: int) -> str:
    out = []
    for _ in range(width):
        out.append(BASE62[n % 62])
        n //= 62
    return "".join(reversed(out))


def is_message_id(text: str) -> bool:
    return bool(MESSAGE_ID.match(text))


def id_time(message_id: str) -> int:
    """The receive time (seconds) encoded in a message id."""
    n = 0
    for ch in message_id[:6]:
        n = n * 62 + BASE62.index(ch)
    return n


class MessageIdGenerator:
    def __init__(
        self,
        localhost_number: int | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        pid: int | None = None,
    ) -> None:
        self.localhost_number = localhost_number
        self.clock = clock
        self.sleep = sleep
        self.pid = os.getpid() if pid is None else pid
        self._last: tuple[int, int] = (-1, -1)
        self._lock = threading.Lock()

    def _fraction(self, usec: int) -> tuple[int, int]:
        """(fraction, exclusive upper bound) for this microsecond value."""
        if self.localhost_number is None:
            return usec // 500, 2000
        return usec // 5000 + self.localhost_number * 200, self.localhost_number * 200 + 200

    def new_id(self) -> str:
        with self._lock:
            while True:
                now = self.clock()
                sec = int(now)
                frac, limit = self._fraction(int((now - sec) * 1_000_000))
                last_sec, last_frac = self._last
                if sec == last_sec and frac <= last_frac:
                    frac = last_frac + 1
                if sec < last_sec or frac >= limit:
                    self.sleep(0.001)  # wait for the next tick, as Exim does
                    continue
                self._last = (sec, frac)
                return f"{base62(sec, 6)}-{base62(self.pid, 6)}-{base62(frac, 2)}"

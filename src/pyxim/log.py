"""Exim-format log files: mainlog, rejectlog, paniclog under log_file_path.

Each line is "YYYY-MM-DD HH:MM:SS " followed by the entry, as Exim writes
them, so eximstats and grep work. log_file_path's %s becomes main, reject or
panic; %D the date (daily files); "syslog" and empty entries are skipped.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable


class Logger:
    def __init__(self, log_file_path: str, spool_directory: str, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.lock = threading.Lock()
        paths = [p.strip() for p in (log_file_path or "").split(":") if p.strip() and p.strip() != "syslog"]
        self.template = paths[0] if paths else os.path.join(spool_directory, "log", "%slog")

    def path(self, which: str) -> str:
        now = time.localtime(self.clock())
        return self.template.replace("%s", which).replace("%D", time.strftime("%Y%m%d", now))

    def write(self, line: str, which: str = "main") -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.clock()))
        text = f"{stamp} {line}\n"
        path = self.path(which)
        with self.lock:
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            with open(path, "a", encoding="utf-8", errors="surrogateescape") as f:
                f.write(text)

    def main(self, line: str) -> None:
        self.write(line, "main")

    def reject(self, line: str) -> None:
        self.write(line, "main")
        self.write(line, "reject")

    def panic(self, line: str) -> None:
        self.write(line, "main")
        self.write(line, "panic")

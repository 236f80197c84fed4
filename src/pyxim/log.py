"""Exim-format log files: mainlog, rejectlog, paniclog under log_file_path.

Each line is "YYYY-MM-DD HH:MM:SS " followed by the entry, as Exim writes
them, so eximstats and grep work. log_file_path's %s becomes main, reject or
panic; %D the date (daily files); "syslog" and empty entries are skipped.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable


class Logger:
    def __init__(self, log_file_path: str, spool_directory: str, clock: Callable[[], float] = time.time,
                 preserve_message_logs: bool = False) -> None:
        self.clock = clock
        self.spool_directory = spool_directory
        self.preserve_message_logs = preserve_message_logs
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
        self.message_log(line)

    def message_log(self, line: str) -> None:
        """Exim's per-message log (spool/msglog/ID): the lines about a message on the queue, its
        arrival as "Received from …"; removed when the message is completed."""
        from pyxim.spool.ids import is_message_id

        message_id, _, rest = line.partition(" ")
        if not self.spool_directory or not is_message_id(message_id):
            return
        split = os.path.join(self.spool_directory, "input", message_id[5], f"{message_id}-D")
        flat = os.path.join(self.spool_directory, "input", f"{message_id}-D")
        subdir = message_id[5] if os.path.exists(split) else ""
        path = os.path.join(self.spool_directory, "msglog", subdir, message_id)
        if rest == "Completed":
            if not self.preserve_message_logs:
                with self.lock, contextlib.suppress(OSError):
                    os.unlink(path)
            return
        if not rest.startswith(("<= ", "=> ", "-> ", "*> ", "** ", "== ")):
            return  # only the arrival and delivery lines go there (not "frozen by root" …)
        if not (os.path.exists(flat) or os.path.exists(split)):
            return  # not (or no longer) on the queue: nothing to keep a log for
        if rest.startswith("<= "):
            rest = "Received from " + rest[3:]
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.clock()))
        with self.lock:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "a", encoding="utf-8", errors="surrogateescape") as f:
                f.write(f"{stamp} {rest}\n")

    def reject(self, line: str) -> None:
        self.write(line, "main")
        self.write(line, "reject")

    def panic(self, line: str) -> None:
        self.write(line, "main")
        self.write(line, "panic")

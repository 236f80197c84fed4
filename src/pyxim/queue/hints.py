"""Hints databases (Exim's db/ directory) as SQLite files: retry, ratelimit, callout …

Each database is one file under spool_directory/db, a key/value table of JSON
records; writers take SQLite's own lock, so concurrent sessions and separate
processes see one consistent state.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

_local = threading.local()
# Opening a database switches it to WAL and may create its table: both need a lock SQLite does not
# wait for through its busy timeout, so threads of one process open databases one at a time and
# retry while another process holds it.
_opening = threading.Lock()


class HintsDb:
    def __init__(self, spool_directory: str, name: str) -> None:
        directory = Path(spool_directory) / "db"
        directory.mkdir(parents=True, exist_ok=True, mode=0o750)
        self.path = str(directory / f"{name}.sqlite")

    def _conn(self) -> sqlite3.Connection:
        cache = getattr(_local, "conns", None)
        if cache is None:
            cache = _local.conns = {}
        conn = cache.get((os.getpid(), self.path))
        if conn is None:
            with _opening:
                conn = sqlite3.connect(self.path, timeout=10, isolation_level=None)
                for attempt in range(100):
                    try:
                        conn.execute("pragma journal_mode=wal")
                        conn.execute("create table if not exists hints (key text primary key, value text)")
                        break
                    except sqlite3.OperationalError as exc:
                        if "locked" not in str(exc) or attempt == 99:
                            raise
                        time.sleep(0.05)
            cache[(os.getpid(), self.path)] = conn
        return conn

    def get(self, key: str) -> Any | None:
        row = self._conn().execute("select value from hints where key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, value: Any) -> None:
        self._conn().execute("insert or replace into hints (key, value) values (?, ?)", (key, json.dumps(value)))

    def delete(self, key: str) -> None:
        self._conn().execute("delete from hints where key = ?", (key,))

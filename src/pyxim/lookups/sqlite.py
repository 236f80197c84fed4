"""sqlite: query-style lookups in an SQLite database (stdlib sqlite3).

The database is the main option `sqlite_dbfile`, or a file name at the start
of the query (`${lookup sqlite{/path/db select …}}`) as in older Exim.
Several columns come back as `name=value` pairs, several rows one per line.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

from pyxim.errors import ExpansionError, LookupDefer
from pyxim.expand.taint import check_untainted
from pyxim.lookups import register_lookup

if TYPE_CHECKING:  # pragma: no cover
    from pyxim.expand.context import ExpansionContext


def _quote_value(value: str) -> str:
    if value and not any(ch.isspace() or ch in "\"'\\=" for ch in value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class SqliteLookup:
    name = "sqlite"
    query_style = True

    def find(self, ctx: ExpansionContext, filename: str | None, key: str, options: dict[str, str]) -> str | None:
        query = key.strip()
        dbfile = options.get("file")
        if dbfile is None and query.startswith("/"):
            dbfile, _, query = query.partition(" ")
        if dbfile is None and ctx.config is not None:
            dbfile = ctx.config.main.get("sqlite_dbfile") or None
        if not dbfile:
            raise ExpansionError("sqlite: no database file given")
        check_untainted(dbfile, "Tainted filename for search: '%s'")
        try:
            conn = ctx.lookup_cache.get(("sqlite", dbfile))
            if conn is None:
                conn = sqlite3.connect(f"file:{dbfile}?mode=ro", uri=True, timeout=5)
                ctx.lookup_cache[("sqlite", dbfile)] = conn
            cur = conn.execute(query)
            rows = cur.fetchall()
            names = [d[0] for d in cur.description] if cur.description else []
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc):
                raise LookupDefer(str(exc)) from None
            raise ExpansionError(str(exc)) from None
        except sqlite3.Error as exc:
            raise ExpansionError(str(exc)) from None
        if not rows:
            return None
        lines = []
        for row in rows:
            if len(row) == 1:
                lines.append("" if row[0] is None else str(row[0]))
            else:
                lines.append(
                    " ".join(f"{n}={_quote_value('' if v is None else str(v))}" for n, v in zip(names, row, strict=True))
                )
        return "\n".join(lines)

    def quote(self, value: str, option: str | None) -> str:
        return value.replace("'", "''")


register_lookup(SqliteLookup())

"""sqlite: query-style lookups in an SQLite database (stdlib sqlite3).

The database file is, in Exim's order of preference: the `file=` option
(`${lookup sqlite,file=/db/users {select …}}`), a file name at the start of the
query (`${lookup sqlite{/db/users select …}}`), or the main option
`sqlite_dbfile`. It must be an absolute path.

The result is what Exim's sqlite3_exec() callback builds: one row per line; a
single column as its bare text, several as `name=value ` pairs (each followed
by a space, values quoted when empty or holding white space); NULL is
`<NULL>`; numbers in SQLite's own text form. A query that fails, or returns
no rows, finds nothing. The database is opened read-write, as Exim does, so
an INSERT or UPDATE works (and finds nothing).
"""

from __future__ import annotations

import os
import sqlite3
from typing import TYPE_CHECKING

from pyxim.errors import ExpansionError
from pyxim.expand.taint import carry, check_untainted
from pyxim.lookups import register_lookup

if TYPE_CHECKING:  # pragma: no cover
    from pyxim.expand.context import ExpansionContext

_SPACE = " \t\n\v\f\r"


def quote_field(name: str, value: str) -> str:
    """Exim's lf_quote(): `name=value ` with the value quoted when it must be."""
    if value == "" or any(c in value for c in " \t\n\r") or value.startswith('"'):
        value = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{name}={value} "


def _split_statements(sql: str) -> list[str]:
    """Cut a query into statements, as sqlite3_exec() runs them one after another."""
    statements: list[str] = []
    start = 0
    for i, ch in enumerate(sql):
        if ch == ";" and sqlite3.complete_statement(sql[start : i + 1]):
            statements.append(sql[start : i + 1])
            start = i + 1
    if sql[start:].strip(_SPACE):
        statements.append(sql[start:])
    return statements


class SqliteLookup:
    name = "sqlite"
    query_style = True

    def _database(self, ctx: ExpansionContext, key: str, options: dict[str, str]) -> tuple[str, str]:
        query = key
        dbfile = options.get("file")
        if dbfile is None:
            if query.lstrip(_SPACE).startswith("/"):
                query = query.lstrip(_SPACE)
                end = 0
                while end < len(query) and query[end] not in _SPACE:
                    end += 1
                # taken from the query, the name is as tainted as the query
                dbfile, query = carry(query[:end], key), query[end:].lstrip(_SPACE)
            elif ctx.config is not None:
                dbfile = str(ctx.config.main.get("sqlite_dbfile") or "") or None
        if not dbfile or not dbfile.startswith("/"):
            raise ExpansionError('absolute file name expected for "sqlite" lookup')
        check_untainted(dbfile, "Tainted filename for search: '%s'")
        return dbfile, query

    def _connection(self, ctx: ExpansionContext, dbfile: str) -> sqlite3.Connection | None:
        # One connection per file for the context's life, opened again when the
        # file is replaced (a new inode) so a rebuilt database is seen.
        try:
            inode: int | None = os.stat(dbfile).st_ino
        except OSError:
            inode = None
        cached = ctx.lookup_cache.get(("sqlite", dbfile))
        conn = cached[1] if cached is not None and cached[0] == inode else None
        if conn is None:
            timeout = 5.0
            if ctx.config is not None:
                try:
                    timeout = float(ctx.config.main.get("sqlite_lock_timeout") or 5)
                except (TypeError, ValueError):
                    pass
            try:
                conn = sqlite3.connect(dbfile, timeout=timeout, isolation_level=None, check_same_thread=False)
            except sqlite3.Error:
                return None
            conn.text_factory = lambda b: b.decode("utf-8", "surrogateescape")
            if inode is None:  # sqlite3 creates a missing file, as Exim's open does
                try:
                    inode = os.stat(dbfile).st_ino
                except OSError:
                    inode = None
            ctx.lookup_cache[("sqlite", dbfile)] = (inode, conn)
        return conn

    def find(
        self, ctx: ExpansionContext, filename: str | None, key: str, options: dict[str, str]
    ) -> str | None:
        dbfile, query = self._database(ctx, key, options)
        conn = self._connection(ctx, dbfile)
        if conn is None:
            return None
        rows: list[str] = []
        try:
            for statement in _split_statements(query):
                cur = conn.execute(statement)
                names = [d[0] for d in cur.description] if cur.description else []
                for row in cur:
                    values = [self._text(conn, v) for v in row]
                    if len(values) > 1:
                        rows.append("".join(quote_field(n, v) for n, v in zip(names, values, strict=True)))
                    else:
                        rows.append(values[0] if values else "")
        except sqlite3.Error:
            return None  # Exim: the query failed, so nothing was found
        return "\n".join(rows) if rows else None

    @staticmethod
    def _text(conn: sqlite3.Connection, value: object) -> str:
        if value is None:
            return "<NULL>"
        if isinstance(value, float):
            # SQLite's own text form of a REAL (1.0e+20, 0.333333333333333, Inf).
            return str(conn.execute("select cast(? as text)", (value,)).fetchone()[0])
        if isinstance(value, bytes):
            value = value.split(b"\x00", 1)[0].decode("utf-8", "surrogateescape")  # a C string
        text = str(value)
        return text.split("\x00", 1)[0]

    def quote(self, value: str, option: str | None) -> str | None:
        if option is not None:
            return None
        return value.replace("'", "''")


register_lookup(SqliteLookup())

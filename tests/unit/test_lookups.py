"""Lookups: the registry, the generic search (partial matching, defaults, options)
and each file and database type. The differential corpus (tests/interop/expansions/
lookups.txt) compares the common cases with Exim; these tests cover what it cannot:
taint, caching, files that change, symlinks, the sqlite_dbfile option."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyxim import lookups
from pyxim.config import load_config
from pyxim.errors import ExpansionError, LookupDefer, TaintError
from pyxim.expand import ExpansionContext, expand_string
from pyxim.expand.taint import Tainted, is_tainted


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "aliases").write_text("postmaster: root\nAbuse: security@example.org\n*: catchall\n")
    (tmp_path / "domains").write_text(
        "example.com: top\n*.example.com: wild\n*.c.d: star cd\n*@example.org: at\n"
    )
    (tmp_path / "wild").write_text(
        '*.example.com: wild\n^mail[0-9]+\\.test: numbered\n"*.$domain": expanded\n!no.example: negated\n'
    )
    (tmp_path / "ips").write_text('192.168.0.0/16: private\n"::1": loop6\n10.0.0.1: one\n*: any\n')
    return tmp_path


def ctx_with(tmp_path: Path, config_text: str = "") -> ExpansionContext:
    conf = tmp_path / "c.conf"
    conf.write_text(config_text)
    return ExpansionContext(config=load_config(str(conf)))


# -- the registry ---------------------------------------------------------------------


class _Echo:
    """A query-style type that answers with its query (for the registry tests)."""

    name = "echo-test"
    query_style = True

    def __init__(self) -> None:
        self.seen: list[tuple[str | None, str, dict[str, str]]] = []

    def find(
        self, ctx: ExpansionContext, filename: str | None, key: str, options: dict[str, str]
    ) -> str | None:
        self.seen.append((filename, key, options))
        return None if key == "missing" else f"<{key}>"


@pytest.fixture
def echo() -> Iterator[_Echo]:
    lookup = _Echo()
    lookups.register_lookup(lookup)
    yield lookup
    del lookups._TYPES[lookup.name]  # leave the registry as the program has it


def test_registered_types_are_found_and_used(echo: _Echo) -> None:
    assert lookups.find_lookup_type("echo-test") is echo
    ctx = ExpansionContext()
    assert lookups.lookup(ctx, "echo-test,a=1,b", None, "q") == "<q>"
    assert echo.seen[-1] == (None, "q", {"a": "1", "b": ""})
    assert lookups.lookup(ctx, "echo-test", None, "missing") is None
    # an empty key or query never reaches the type
    assert lookups.lookup(ctx, "echo-test", None, "") is None
    assert len(echo.seen) == 2


def test_every_module_of_the_package_registers_itself() -> None:
    for name in ("lsearch", "wildlsearch", "nwildlsearch", "iplsearch", "dsearch", "sqlite", "dnsdb"):
        assert lookups.find_lookup_type(name) is not None, name


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nosuch", 'unknown lookup type "nosuch"'),
        ("partialx-lsearch", 'format error in lookup type "partialx-lsearch"'),
        ("partial(ab)lsearch", 'format error in lookup type "partial(ab)lsearch"'),
        ("lsearch,ret=full*", 'unknown lookup type "lsearch,ret=full"'),
        ("partial-dnsdb", '"partial" is not permitted for lookup type "dnsdb"'),
        ("dnsdb*@", 'defaults using "*" or "*@" are not permitted for lookup type "dnsdb*@"'),
    ],
)
def test_bad_lookup_types(spec: str, message: str) -> None:
    with pytest.raises(ExpansionError) as info:
        lookups.parse_spec(spec)
    assert info.value.message == message


def test_lookup_type_parsing() -> None:
    spec = lookups.parse_spec("partial3(*)lsearch*@,ret=full")
    assert (spec.ltype.name, spec.partial, spec.affix, spec.star, spec.star_at) == (
        "lsearch",
        3,
        "*",
        False,
        True,
    )
    assert spec.options == (("ret", "full"),)
    assert lookups.parse_spec("partial-lsearch").affix == "*."
    assert lookups.parse_spec("partial-lsearch").partial == 2
    assert lookups.parse_spec("lsearch*junk").star  # Exim ignores what follows the *
    assert lookups.parse_spec("lsearch,ret=key").ret_key


# -- partial matching and defaults ------------------------------------------------------


def test_partial_matching_reports_the_wild_and_fixed_parts(files: Path) -> None:
    ctx = ExpansionContext()
    f = str(files / "domains")
    hit = lookups.search(ctx, "partial-lsearch", f, "x.y.c.d")
    assert (hit.value, hit.captures) == ("star cd", ("x.y", "c.d"))
    hit = lookups.search(ctx, "partial-lsearch", f, "example.com")
    assert (hit.value, hit.captures) == ("top", ("", "example.com"))
    hit = lookups.search(ctx, "partial-lsearch", f, "www.example.com")
    assert (hit.value, hit.captures) == ("wild", ("www", "example.com"))
    hit = lookups.search(ctx, "partial-lsearch", f, "a.b.c.d")
    assert (hit.value, hit.captures) == ("star cd", ("a.b", "c.d"))
    assert lookups.search(ctx, "partial3-lsearch", f, "x.c.d").value is None
    assert lookups.search(ctx, "lsearch", f, "x.c.d").captures is None


def test_defaults(files: Path) -> None:
    ctx = ExpansionContext()
    f = str(files / "aliases")
    assert lookups.lookup(ctx, "lsearch", f, "nobody") is None
    hit = lookups.search(ctx, "lsearch*", f, "nobody")
    assert (hit.value, hit.captures) == ("catchall", ("nobody", ""))
    hit = lookups.search(ctx, "lsearch*@", str(files / "domains"), "joe@example.org")
    assert (hit.value, hit.captures) == ("at", ("joe", ""))
    assert lookups.lookup(ctx, "lsearch*@", f, "@example.org") == "catchall"


def test_ret_key_gives_an_untainted_key(files: Path) -> None:
    ctx = ExpansionContext()
    value = lookups.lookup(ctx, "lsearch,ret=key", str(files / "aliases"), Tainted("ABUSE"))
    assert value == "ABUSE" and not is_tainted(value)


def test_file_data_is_untainted_even_for_a_tainted_key(files: Path) -> None:
    ctx = ExpansionContext(variables={"local_part": Tainted("postmaster")})
    result = expand_string(f"${{lookup{{$local_part}}lsearch{{{files / 'aliases'}}}}}", ctx)
    assert result == "root" and not is_tainted(result)


def test_tainted_file_names_are_refused(files: Path) -> None:
    ctx = ExpansionContext(variables={"local_part": Tainted(str(files / "aliases"))})
    with pytest.raises(TaintError, match="Tainted filename for search"):
        expand_string("${lookup{postmaster}lsearch{$local_part}}", ctx)


def test_the_last_search_error_is_remembered(files: Path) -> None:
    # Exim quotes this stale message when a list match defers without one of its own.
    ctx = ExpansionContext()
    assert lookups.last_search_error(ctx) == "NULL"
    lookups.lookup(ctx, "lsearch", str(files / "aliases"), "x")
    assert lookups.last_search_error(ctx) == ""
    with pytest.raises(LookupDefer):
        lookups.lookup(ctx, "dsearch", str(files), "a/b")
    assert lookups.last_search_error(ctx) == "key for dsearch lookup contains a slash: a/b"


# -- lsearch and friends ------------------------------------------------------------------


def test_lsearch_file_is_read_again_when_it_changes(files: Path) -> None:
    ctx = ExpansionContext()
    f = files / "aliases"
    assert lookups.lookup(ctx, "lsearch", str(f), "postmaster") == "root"
    f.write_text("postmaster: admin\n")
    os.utime(f, (1, 1))
    assert lookups.lookup(ctx, "lsearch", str(f), "postmaster") == "admin"


def test_lsearch_last_line_without_newline_keeps_its_spaces(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"a: one  \nb: two  ")
    ctx = ExpansionContext()
    assert lookups.lookup(ctx, "lsearch", str(tmp_path / "f"), "a") == "one"
    assert lookups.lookup(ctx, "lsearch", str(tmp_path / "f"), "b") == "two  "


def test_lsearch_file_errors(tmp_path: Path) -> None:
    ctx = ExpansionContext()
    with pytest.raises(
        ExpansionError, match=f"^failed to open {tmp_path}/no for linear search: No such file"
    ):
        lookups.lookup(ctx, "lsearch", str(tmp_path / "no"), "x")
    with pytest.raises(ExpansionError, match=f"^{tmp_path} is not a regular file \\(lsearch lookup\\)$"):
        lookups.lookup(ctx, "wildlsearch", str(tmp_path), "x")


def test_wildlsearch_keys_are_expanded_in_the_callers_context(files: Path) -> None:
    ctx = ExpansionContext(variables={"domain": "example.net"})
    f = str(files / "wild")
    assert lookups.lookup(ctx, "wildlsearch", f, "a.example.net") == "expanded"
    assert lookups.lookup(ctx, "nwildlsearch", f, "a.example.net") == "negated"  # "*.$domain" is literal
    assert lookups.lookup(ctx, "wildlsearch", f, "MAIL12.test") == "numbered"
    assert lookups.lookup(ctx, "wildlsearch", f, "no.example") is None


def test_wildlsearch_defers_when_a_key_cannot_be_expanded(tmp_path: Path) -> None:
    (tmp_path / "w").write_text('"${if eq{a}{b}{x}fail}": forced\n"${nosuch:x}": broken\nz: zed\n')
    ctx = ExpansionContext()
    with pytest.raises(LookupDefer) as info:
        lookups.lookup(ctx, "wildlsearch", str(tmp_path / "w"), "z")
    assert info.value.message == ""
    assert lookups.lookup(ctx, "nwildlsearch", str(tmp_path / "w"), "z") == "zed"


def test_iplsearch(files: Path) -> None:
    ctx = ExpansionContext()
    f = str(files / "ips")
    assert lookups.lookup(ctx, "iplsearch", f, "192.168.3.4") == "private"
    assert lookups.lookup(ctx, "iplsearch", f, "::ffff:192.168.3.4") == "private"
    assert lookups.lookup(ctx, "iplsearch", f, "::1") == "loop6"
    assert lookups.lookup(ctx, "iplsearch", f, "10.0.0.2") is None  # "*" matches only the key "*"
    assert lookups.lookup(ctx, "iplsearch*", f, "10.0.0.2") == "any"
    with pytest.raises(LookupDefer, match='"name" is not a valid iplsearch key'):
        lookups.lookup(ctx, "iplsearch", f, "name")


# -- dsearch ---------------------------------------------------------------------------


def test_dsearch_filters_look_at_the_entry_not_its_target(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    (tmp_path / "dir").mkdir()
    (tmp_path / "link").symlink_to("file")
    (tmp_path / "dirlink").symlink_to("dir")
    (tmp_path / "dangling").symlink_to("nowhere")
    ctx = ExpansionContext()
    d = str(tmp_path)

    def find(spec: str, key: str) -> str | None:
        return lookups.lookup(ctx, spec, d, key)

    assert find("dsearch", "dangling") == "dangling"
    assert find("dsearch,filter=file", "link") is None
    assert find("dsearch,filter=file", "file") == "file"
    assert find("dsearch,filter=dir", "dirlink") is None
    assert find("dsearch,filter=subdir", "dir") == "dir"
    assert find("dsearch,filter=subdir", "..") is None
    assert find("dsearch,ret=full", "file") == f"{d}/file"


def test_dsearch_detaints_the_name(tmp_path: Path) -> None:
    (tmp_path / "joe").mkdir()
    ctx = ExpansionContext(variables={"local_part": Tainted("joe")})
    result = expand_string(f"${{lookup{{$local_part}}dsearch{{{tmp_path}}}}}", ctx)
    assert result == "joe" and not is_tainted(result)


def test_dsearch_errors(tmp_path: Path) -> None:
    ctx = ExpansionContext()
    with pytest.raises(ExpansionError, match="for directory search: No such file or directory"):
        lookups.lookup(ctx, "dsearch", str(tmp_path / "none"), "x")
    with pytest.raises(LookupDefer, match="^key for dsearch lookup contains a slash: a/b$"):
        lookups.lookup(ctx, "dsearch", str(tmp_path), "a/b")


# -- sqlite ------------------------------------------------------------------------------


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "users.db"
    db = sqlite3.connect(path)
    db.execute("create table users (name text, home text, quota int)")
    db.executemany("insert into users values (?,?,?)", [("ann", "/home/ann", 10), ("bob", "/home/b o b", 20)])
    db.commit()
    db.close()
    return path


def test_sqlite_results_are_formatted_as_exim_does(database: Path) -> None:
    ctx = ExpansionContext()

    def q(sql: str) -> str:
        return expand_string(f"${{lookup sqlite{{{database} {sql}}}{{$value}}{{NONE}}}}", ctx)

    assert q("select home from users where name='ann'") == "/home/ann"
    assert q("select name,home from users where name='bob'") == 'name=bob home="/home/b o b" '
    assert q("select name from users order by name") == "ann\nbob"
    assert q("select null") == "<NULL>"
    assert q("select 1.0/3") == "0.333333333333333"  # SQLite's own text for a REAL
    assert q("select name from users where name='x'") == "NONE"
    assert q("select * from nothere") == "NONE"  # a failing query finds nothing


def test_sqlite_database_file_sources(tmp_path: Path, database: Path) -> None:
    ctx = ctx_with(tmp_path, f"sqlite_dbfile = {database}\n")
    assert expand_string("${lookup sqlite{select quota from users where name='bob'}}", ctx) == "20"
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("create table users (quota int)").connection.commit()
    # a file name in the query, or the file= option, beats sqlite_dbfile
    assert expand_string(f"${{lookup sqlite{{{other} select count(*) from users}}}}", ctx) == "0"
    assert expand_string(f"${{lookup sqlite,file={other}{{select count(*) from users}}}}", ctx) == "0"
    bare = ExpansionContext()
    with pytest.raises(ExpansionError, match='^absolute file name expected for "sqlite" lookup$'):
        expand_string("${lookup sqlite{select 1}}", bare)


def test_sqlite_file_name_may_not_be_tainted(database: Path) -> None:
    ctx = ExpansionContext(variables={"local_part": Tainted(str(database))})
    with pytest.raises(TaintError, match="Tainted filename for search"):
        expand_string("${lookup sqlite{$local_part select 1}}", ctx)


def test_sqlite_runs_every_statement_and_may_write(database: Path) -> None:
    ctx = ExpansionContext()
    assert lookups.lookup(ctx, "sqlite", None, f"{database} select 1; select 2") == "1\n2"
    assert lookups.lookup(ctx, "sqlite", None, f"{database} insert into users values ('cy', '/h', 1)") is None
    assert lookups.lookup(ctx, "sqlite", None, f"{database} select count(*) from users") == "3"


def test_quote_sqlite() -> None:
    ctx = ExpansionContext()
    assert expand_string("${quote_sqlite:it's}", ctx) == "it''s"
    with pytest.raises(ExpansionError, match='^"x" unrecognized after "\\$\\{quote_sqlite"$'):
        expand_string("${quote_sqlite_x:a}", ctx)


# -- cdb and passwd ---------------------------------------------------------------------


def write_cdb(path: Path, records: list[tuple[bytes, bytes]]) -> None:
    """Build a cdb file as cdbmake does (tests/interop/fixtures/aliases.cdb was made with this)."""
    import struct

    from pyxim.lookups.cdb import HEADER_SIZE, cdb_hash

    body = bytearray()
    tables: list[list[tuple[int, int]]] = [[] for _ in range(256)]
    for key, data in records:
        h = cdb_hash(key)
        tables[h & 255].append((h, HEADER_SIZE + len(body)))
        body += struct.pack("<II", len(key), len(data)) + key + data
    header = bytearray()
    hashes = bytearray()
    for entries in tables:
        slots: list[tuple[int, int]] = [(0, 0)] * (2 * len(entries))
        for h, pos in entries:
            i = (h >> 8) % len(slots)
            while slots[i][1]:
                i = (i + 1) % len(slots)
            slots[i] = (h, pos)
        header += struct.pack("<II", HEADER_SIZE + len(body) + len(hashes), len(slots))
        for h, pos in slots:
            hashes += struct.pack("<II", h, pos)
    path.write_bytes(bytes(header + body + hashes))


def test_cdb(tmp_path: Path) -> None:
    db = tmp_path / "t.cdb"
    write_cdb(
        db, [(b"alice", b"Alice data"), (b"dup", b"first"), (b"dup", b"second"), (b"*.c.d", b"star cd")]
    )
    ctx = ExpansionContext()
    assert lookups.lookup(ctx, "cdb", str(db), "alice") == "Alice data"
    assert lookups.lookup(ctx, "cdb", str(db), "ALICE") is None  # keys are exact
    assert lookups.lookup(ctx, "cdb", str(db), "dup") == "first"
    assert lookups.lookup(ctx, "partial-cdb", str(db), "x.c.d") == "star cd"
    (tmp_path / "short").write_bytes(b"abc")
    with pytest.raises(ExpansionError, match="too short for cdb lookup"):
        lookups.lookup(ctx, "cdb", str(tmp_path / "short"), "x")
    with pytest.raises(ExpansionError, match="for cdb lookup: No such file or directory$"):
        lookups.lookup(ctx, "cdb", str(tmp_path / "none"), "x")


def test_passwd() -> None:
    import pwd

    root = pwd.getpwuid(0)
    ctx = ExpansionContext()
    assert lookups.lookup(ctx, "passwd", None, root.pw_name) == (
        f"*:0:{root.pw_gid}:{root.pw_gecos}:{root.pw_dir}:{root.pw_shell}"
    )
    assert lookups.lookup(ctx, "passwd", None, "no-such-user-here") is None

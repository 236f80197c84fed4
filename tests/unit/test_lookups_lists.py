"""Lookups and list matching beyond what the differential corpus covers."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from pyxim import lookups
from pyxim.config import load_config
from pyxim.errors import ExpansionError, LookupDefer, TaintError
from pyxim.expand import ExpansionContext, expand_string
from pyxim.expand.taint import Tainted
from pyxim.lists import (
    iterate_list,
    match_address_list,
    match_domain_list,
    match_host_list,
    match_ip_list,
    match_localpart_list,
    split_list,
)


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "aliases").write_text("postmaster: root\nAbuse: security@example.org\n*: catchall\n")
    (tmp_path / "wild").write_text("*.example.com: wild\n^mail[0-9]+\\.test$: numbered\n")
    (tmp_path / "ips").write_text("192.168.0.0/16: private\n\"::1\": loop6\n")
    db = sqlite3.connect(tmp_path / "users.db")
    db.execute("create table users (name text, home text, quota int)")
    db.executemany("insert into users values (?,?,?)", [("ann", "/home/ann", 10), ("bob", "/home/b o b", 20)])
    db.commit()
    db.close()
    return tmp_path


def test_list_splitting() -> None:
    assert split_list("a : b::c : ") == (":", ["a", "b:c"])
    assert split_list("<; 1.2.3.4 ; ::1") == (";", ["1.2.3.4", "::1"])
    assert list(iterate_list("")) == []
    assert list(iterate_list(" : a")) == ["", "a"]


def test_lsearch_and_defaults(files: Path) -> None:
    ctx = ExpansionContext()
    f = str(files / "aliases")
    assert lookups.lookup(ctx, "lsearch", f, "abuse") == "security@example.org"
    assert lookups.lookup(ctx, "lsearch", f, "nobody") is None
    assert lookups.lookup(ctx, "lsearch*", f, "nobody") == "catchall"
    assert lookups.lookup(ctx, "lsearch,ret=full", f, "postmaster") == "postmaster: root"


def test_lsearch_file_is_reread_when_it_changes(files: Path) -> None:
    ctx = ExpansionContext()
    f = files / "aliases"
    assert lookups.lookup(ctx, "lsearch", str(f), "postmaster") == "root"
    f.write_text("postmaster: admin\n")
    os.utime(f, (1, 1))
    assert lookups.lookup(ctx, "lsearch", str(f), "postmaster") == "admin"


def test_wildlsearch_and_iplsearch(files: Path) -> None:
    ctx = ExpansionContext()
    assert lookups.lookup(ctx, "wildlsearch", str(files / "wild"), "a.example.com") == "wild"
    assert lookups.lookup(ctx, "nwildlsearch", str(files / "wild"), "MAIL12.test") == "numbered"
    assert lookups.lookup(ctx, "iplsearch", str(files / "ips"), "192.168.3.4") == "private"
    assert lookups.lookup(ctx, "iplsearch", str(files / "ips"), "::1") == "loop6"
    with pytest.raises(LookupDefer, match="not a valid iplsearch key"):
        lookups.lookup(ctx, "iplsearch", str(files / "ips"), "name")


def test_sqlite(files: Path) -> None:
    ctx = ExpansionContext()
    db = files / "users.db"
    assert expand_string(f"${{lookup sqlite{{{db} select home from users where name='ann'}}}}", ctx) == "/home/ann"
    assert (
        expand_string(f"${{lookup sqlite{{{db} select name,home from users where name='bob'}}}}", ctx)
        == 'name=bob home="/home/b o b"'
    )
    assert expand_string(f"${{lookup sqlite{{{db} select name from users order by name}}}}", ctx) == "ann\nbob"
    assert expand_string(f"${{lookup sqlite{{{db} select name from users where name='x'}}{{y}}{{n}}}}", ctx) == "n"
    assert expand_string("${quote_sqlite:it's}", ctx) == "it''s"
    with pytest.raises(ExpansionError, match="no such table"):
        expand_string(f"${{lookup sqlite{{{db} select * from nothere}}}}", ctx)


def test_sqlite_dbfile_option(files: Path) -> None:
    (files / "c.conf").write_text(f"sqlite_dbfile = {files / 'users.db'}\n")
    ctx = ExpansionContext(config=load_config(str(files / "c.conf")))
    assert expand_string("${lookup sqlite{select quota from users where name='bob'}}", ctx) == "20"


def test_tainted_file_names_are_refused(files: Path) -> None:
    ctx = ExpansionContext(variables={"local_part": Tainted(str(files / "aliases"))})
    with pytest.raises(TaintError, match="Tainted filename for search"):
        expand_string("${lookup{postmaster}lsearch{$local_part}}", ctx)
    with pytest.raises(TaintError, match="Tainted name .* for file read not permitted"):
        expand_string("${readfile{$local_part}}", ctx)


def test_tainted_key_gives_untainted_data(files: Path) -> None:
    """The classic de-tainting: a lookup keyed by outside data returns the file's own data."""
    ctx = ExpansionContext(variables={"local_part": Tainted("postmaster")})
    result = expand_string(f"${{lookup{{$local_part}}lsearch{{{files / 'aliases'}}}}}", ctx)
    assert result == "root"
    assert not isinstance(result, Tainted)


def test_unknown_lookup_type() -> None:
    with pytest.raises(ExpansionError, match='unknown lookup type "nosuch"'):
        lookups.parse_spec("nosuch")
    spec = lookups.parse_spec("partial3(*)lsearch*@,ret=full")
    assert (spec.partial, spec.affix, spec.star_at, spec.options) == (3, "*", True, (("ret", "full"),))


def test_domain_lists(files: Path) -> None:
    (files / "c.conf").write_text(
        "primary_hostname = mail.example.org\ndomainlist_cache local = @ : example.org\n"
    )
    ctx = ExpansionContext(config=load_config(str(files / "c.conf")))
    assert match_domain_list(ctx, "mail.example.org", "@")
    assert match_domain_list(ctx, "EXAMPLE.org", "+local")
    assert not match_domain_list(ctx, "example.org", "! +local")
    assert match_domain_list(ctx, "other.net", "!+local")  # ends negative: everything else matches
    assert match_domain_list(ctx, "x.example.com", f"wildlsearch;{files / 'wild'}")
    assert match_domain_list(ctx, "[127.0.0.1]", "@[]")
    with pytest.raises(ExpansionError, match='unknown named domain list "\\+nosuch"'):
        match_domain_list(ctx, "a", "+nosuch")


def test_local_part_and_address_lists(files: Path) -> None:
    ctx = ExpansionContext()
    assert match_localpart_list(ctx, "postmaster", f"lsearch;{files / 'aliases'}")
    assert ctx.variables["local_part_data"] == "root"
    assert not match_localpart_list(ctx, "Root", "root")
    assert match_localpart_list(ctx, "Root", "root", caseless=True)
    assert match_address_list(ctx, "joe@spam.example", "*@spam.example")
    assert match_address_list(ctx, "joe@spam.example", "^joe@")
    assert match_address_list(ctx, "joe@spam.example", "spam.example")
    assert not match_address_list(ctx, "joe@spam.example", "!joe@spam.example : *@*")


def test_host_and_ip_lists() -> None:
    ctx = ExpansionContext()
    assert match_ip_list(ctx, "10.1.2.3", "10.0.0.0/8")
    assert match_ip_list(ctx, "::ffff:10.1.2.3", "10.0.0.0/8")
    assert match_ip_list(ctx, "2001:db8::5", "<; 2001:db8::/32")
    assert not match_ip_list(ctx, "10.1.2.3", "!10.1.2.3 : *")
    assert match_host_list(ctx, "192.0.2.1", "*")
    assert match_host_list(ctx, "", ":")  # the empty item matches a local (non-SMTP) sender
    assert not match_host_list(ctx, "192.0.2.1", "")


def test_named_lists_are_expanded_and_cached(files: Path) -> None:
    (files / "c.conf").write_text(
        f"domainlist dyn = ${{lookup{{postmaster}}lsearch{{{files / 'aliases'}}}}}.example\n"
        "domainlist plain = a.example : b.example\n"
    )
    ctx = ExpansionContext(config=load_config(str(files / "c.conf")))
    assert match_domain_list(ctx, "root.example", "+dyn")
    assert match_domain_list(ctx, "b.example", "+plain")
    assert ctx.lookup_cache[("namedlist", "domain", "plain", "b.example")] is True
    assert ("namedlist", "domain", "dyn", "root.example") not in ctx.lookup_cache

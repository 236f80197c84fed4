"""List splitting and matching. The differential corpus (tests/interop/expansions/
lists.txt) compares what `exim -be` can show; these tests cover the rest: the
values left for $domain_data and friends, named-list caching, host lists that need
the DNS (through a fake resolver with the facade's three methods), @mx_*, defers."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyxim.config import load_config
from pyxim.errors import ExpansionError, LookupDefer
from pyxim.expand import ExpansionContext
from pyxim.expand.taint import Tainted, is_tainted
from pyxim.lists import (
    ListDefer,
    check_address_list,
    check_domain_list,
    check_host_list,
    check_ip_list,
    check_localpart_list,
    host_is_in_net,
    ip_address_kind,
    iterate_fixed,
    iterate_list,
    list_log,
    match_address_list,
    match_domain_list,
    match_host_list,
    match_ip_list,
    match_localpart_list,
    quote_list_item,
    split_list,
)


class FakeResolver:
    """The DNS facade's three methods, answering from dictionaries."""

    def __init__(
        self,
        ptr: dict[str, list[str]] | None = None,
        addresses: dict[str, list[str]] | None = None,
        mx: dict[str, list[tuple[int, str]]] | None = None,
        defer: set[str] | None = None,
    ) -> None:
        self.ptr = ptr or {}
        self.addresses = addresses or {}
        self.mx = mx or {}
        self.defer = defer or set()
        self.asked: list[str] = []

    def _check(self, name: str) -> None:
        self.asked.append(name)
        if name in self.defer:
            raise LookupDefer(f"DNS lookup of {name} deferred")

    def host_names_for_ip(self, ip: str) -> list[str]:
        self._check(ip)
        return self.ptr.get(ip, [])

    def addresses_for_name(self, name: str) -> list[str]:
        self._check(name)
        return self.addresses.get(name, [])

    def mx_hosts(self, domain: str) -> list[tuple[int, str]]:
        self._check(domain)
        return self.mx.get(domain, [])


def make_ctx(tmp_path: Path, config_text: str = "", resolver: FakeResolver | None = None) -> ExpansionContext:
    conf = tmp_path / "c.conf"
    conf.write_text("primary_hostname = mail.example.org\n" + config_text)
    return ExpansionContext(config=load_config(str(conf)), resolver=resolver)  # type: ignore[arg-type]


# -- splitting -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "items"),
    [
        ("a : b::c : ", ["a", "b:c"]),
        ("<; 1.2.3.4 ; ::1", ["1.2.3.4", "::1"]),
        ("", []),
        (" ", []),
        (":", [""]),
        (" : a", ["", "a"]),
        ("::a", [":a"]),
        ("a: :b", ["a", "", "b"]),
        ("<", []),  # `<` and the end of the string: a NUL separator, no items
        ("< a", ["< a"]),  # a space is no separator
        ("<;;", [""]),
        ("<\n a\n\n x", ["a", "", "x"]),  # a control-character separator is never doubled
        ("<\ta\t\tx", ["a", "", "x"]),
        ("<-a-x--y", ["a", "x-y"]),
    ],
)
def test_list_splitting(text: str, items: list[str]) -> None:
    assert list(iterate_list(text)) == items


def test_splitting_helpers() -> None:
    assert split_list("<, a,b") == (",", ["a", "b"])
    assert list(iterate_fixed("ret=full,,x,filter=dir", ",")) == ["ret=full,x", "filter=dir"]
    assert quote_list_item("a:b") == "a::b"
    assert all(is_tainted(item) for item in iterate_list(Tainted("a : b")))


# -- domain lists ---------------------------------------------------------------------------


def test_domain_list_basics(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, "domainlist_cache local = @ : example.org\n")
    assert match_domain_list(ctx, "MAIL.example.org", "@")
    assert match_domain_list(ctx, "EXAMPLE.org", "+local")
    assert not match_domain_list(ctx, "example.org", "! +local")
    assert match_domain_list(ctx, "other.net", "!+local")  # ends negative: everything else matches
    assert match_domain_list(ctx, "[127.0.0.1]", "@[]")
    assert not match_domain_list(ctx, "x", "")


def test_domain_data_is_recorded_as_exim_does(tmp_path: Path) -> None:
    (tmp_path / "relay").write_text("relay.example: yes\n")
    ctx = make_ctx(tmp_path, "domainlist local = *.example.net\n")
    assert match_domain_list(ctx, "relay.example", f"lsearch;{tmp_path / 'relay'}")
    assert ctx.variables["domain_data"] == "yes"
    assert match_domain_list(ctx, "a.example.net", "+local")
    assert ctx.variables["domain_data"] == "*.example.net"  # since 4.94: the matching item
    assert not match_domain_list(ctx, "zzz", "+local")
    assert ctx.variables["domain_data"] == ""


def test_list_matches_report_value_and_captures(tmp_path: Path) -> None:
    # `value` None means "leave $value alone"; captures None, "leave $0… alone".
    ctx = make_ctx(tmp_path)
    result = check_domain_list(ctx, "ABC.y", "^(a)(b)c")
    assert (result.matched, result.value, result.captures) == (True, "^(a)(b)c", ["ABC.y", "A", "B"])
    result = check_domain_list(ctx, "x.y", "z : *.y")
    assert (result.matched, result.value, result.captures) == (True, "*.y", ["x.y", "x"])
    result = check_domain_list(ctx, "c.d", "!a.b")
    assert (result.matched, result.value, result.captures) == (True, "", [])
    result = check_domain_list(ctx, "c.d", "!c.d")  # the negative item's value stays
    assert (result.matched, result.value, result.captures) == (False, "c.d", ["c.d"])
    result = check_domain_list(ctx, "c.d", "")
    assert (result.matched, result.value, result.captures) == (False, "", None)
    # IP items and address regexes do not touch $value; lookups and domains do
    assert check_ip_list(ctx, "1.2.3.4", "1.2.3.4").value is None
    assert check_address_list(ctx, "a@b.c", "^a@").value is None
    assert check_address_list(ctx, "a@b.c", "x@b.c").value is None  # the local part failed first
    assert check_address_list(ctx, "a@b.c", "*@b.c").value == "*@b.c"
    assert check_address_list(ctx, "a@b.c", "other.example").value == ""


def test_named_lists_are_expanded_and_cached(tmp_path: Path) -> None:
    (tmp_path / "aliases").write_text("postmaster: root\n")
    ctx = make_ctx(
        tmp_path,
        f"domainlist dyn = ${{lookup{{postmaster}}lsearch{{{tmp_path / 'aliases'}}}}}.example\n"
        "domainlist plain = a.example : b.example\n"
        "domainlist bydomain = ${if eq{$domain}{x.example}{x.example}{y.example}}\n",
    )
    assert match_domain_list(ctx, "root.example", "+dyn")
    assert match_domain_list(ctx, "b.example", "+plain")
    cached = [k for k in ctx.lookup_cache if isinstance(k, tuple) and k[:1] == ("namedlist",)]
    assert [k[2] for k in cached] == ["plain"]  # lists that need expanding are not cached
    # while a named domain list is expanded, $domain is the domain being matched
    assert match_domain_list(ctx, "x.example", "+bydomain")
    assert "domain" not in ctx.variables


def test_unknown_named_list_defers(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path)
    with pytest.raises(ListDefer) as info:
        match_domain_list(ctx, "a", "x : +nosuch")
    assert info.value.message == 'unable to complete match against "x : +nosuch": NULL'
    assert 'unknown named domain list "+nosuch"' in list_log(ctx)


def test_lookup_defer_in_a_list(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path)
    with pytest.raises(ListDefer) as info:
        match_localpart_list(ctx, "a/b", f"dsearch;{tmp_path}")
    assert info.value.detail == "key for dsearch lookup contains a slash: a/b"
    assert isinstance(info.value, LookupDefer)


def test_list_file_errors(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path)
    with pytest.raises(ExpansionError, match="failed to open .*/none when checking"):
        match_domain_list(ctx, "a", str(tmp_path / "none"))


def test_bad_regex_in_a_list(tmp_path: Path) -> None:
    with pytest.raises(ExpansionError, match="^regular expression error: .* while compiling \\^\\[$"):
        match_domain_list(make_ctx(tmp_path), "a", "^[")


def test_local_interfaces_decide_at_brackets(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, "local_interfaces = <; 192.0.2.1.25 ; [2001:db8::1]:587\n")
    assert match_domain_list(ctx, "[192.0.2.1]", "@[]")
    assert match_domain_list(ctx, "[2001:db8::1]", "@[]")
    assert not match_domain_list(ctx, "[127.0.0.1]", "@[]")
    assert match_ip_list(ctx, "192.0.2.1", "@[]")


# -- local parts and addresses --------------------------------------------------------------


def test_local_part_lists(tmp_path: Path) -> None:
    (tmp_path / "aliases").write_text("postmaster: root\n")
    ctx = make_ctx(tmp_path)
    assert match_localpart_list(ctx, "Postmaster", f"lsearch;{tmp_path / 'aliases'}")
    assert ctx.variables["local_part_data"] == "root"
    assert match_localpart_list(ctx, "Root", "root")  # caseless, as everywhere in Exim
    assert not match_localpart_list(ctx, "Root", "root", caseless=False)
    assert not match_localpart_list(ctx, "Root", "+caseful : root")
    assert check_localpart_list(ctx, "ROOT", "^root").captures == ["ROOT"]


def test_address_lists(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, "domainlist local = example.org\n")
    assert match_address_list(ctx, "joe@spam.example", "*@spam.example")
    assert match_address_list(ctx, "joe@spam.example", "^joe@")
    assert match_address_list(ctx, "joe@spam.example", "spam.example")
    assert not match_address_list(ctx, "joe@spam.example", "!joe@spam.example : *@*")
    assert not match_address_list(ctx, "joe@spam.example", "@spam.example")  # an empty local part
    assert match_address_list(ctx, "Joe@example.org", "joe@+local")
    assert not match_address_list(ctx, "Joe@example.org", "joe@+local", caseless_localpart=False)
    assert check_address_list(ctx, "x@example.org", "example.org").value == "@example.org"
    assert not match_address_list(ctx, "noat", "noat")


def test_split_address_lookup(tmp_path: Path) -> None:
    (tmp_path / "lp").write_text("a.example: ann : !bob : ^c : >b.example\nb.example: bob : dan\n")
    ctx = make_ctx(tmp_path)
    spec = f"@@lsearch;{tmp_path / 'lp'}"
    assert [
        match_address_list(ctx, f"{lp}@a.example", spec) for lp in ("ann", "bob", "cy", "dan", "eve")
    ] == [
        True,
        False,
        True,
        True,
        False,
    ]


# -- IP addresses and hosts ---------------------------------------------------------------


def test_ip_helpers() -> None:
    assert ip_address_kind("1.2.3.4") == 4
    assert ip_address_kind("fe80::1%eth0") == 6
    assert ip_address_kind("1.2.3.4/24") is None
    assert ip_address_kind("1.2.3.4/24", allow_mask=True) == 4
    assert ip_address_kind("1.2.3.4/-1", allow_mask=True) is None
    assert ip_address_kind("010.1.2.3") is None
    assert host_is_in_net("::ffff:10.1.2.3", "10.0.0.0/8")
    assert not host_is_in_net("10.1.2.3", "::ffff:10.1.2.3")
    assert host_is_in_net("1.2.3.4", "1.2.3.4/99")
    assert host_is_in_net("1.2.3.4", "9.9.9.9/")  # an empty mask is 0 bits


def test_match_ip(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path)
    assert match_ip_list(ctx, "10.1.2.3", "10.0.0.0/8")
    assert match_ip_list(ctx, "2001:db8::5", "<; 2001:db8::/32")
    assert not match_ip_list(ctx, "10.1.2.3", "!10.1.2.3 : *")
    assert not match_ip_list(ctx, "10.1.2.3", "a.name : 10.1.2.3")  # a name ends an IP-only match
    assert match_ip_list(ctx, "10.1.2.3", "+ignore_unknown : a.name : 10.1.2.3")
    with pytest.raises(ExpansionError, match='^"nope" is not an IP address$'):
        match_ip_list(ctx, "nope", "*")


def test_host_names_are_found_and_confirmed(tmp_path: Path) -> None:
    dns = FakeResolver(
        ptr={"192.0.2.10": ["mx1.example.test.", "alias.example.test"], "192.0.2.66": ["liar.example.test"]},
        addresses={
            "mx1.example.test": ["192.0.2.10"],
            "alias.example.test": ["192.0.2.10"],
            "liar.example.test": ["198.51.100.1"],
        },
    )
    ctx = make_ctx(tmp_path, resolver=dns)
    ctx.variables["sender_host_address"] = "192.0.2.10"
    assert match_host_list(ctx, "192.0.2.10", "*.example.test")
    assert ctx.variables["sender_host_name"] == "mx1.example.test"
    assert match_host_list(ctx, "192.0.2.10", "^alias\\.")  # aliases count too
    assert match_host_list(ctx, "192.0.2.10", "mx1.example.test")  # a plain name: its addresses
    assert not match_host_list(ctx, "192.0.2.11", "mx1.example.test")
    # the reverse name does not lead back to the address: no name at all, the list fails
    assert not match_host_list(ctx, "192.0.2.66", "*.example.test : 192.0.2.66")
    assert match_host_list(ctx, "192.0.2.66", "+include_unknown : *.example.test")
    assert match_host_list(ctx, "192.0.2.66", "+ignore_unknown : *.example.test : 192.0.2.66")
    # a known name is used as it is, without DNS
    dns.asked.clear()
    assert match_host_list(ctx, "192.0.2.99", "*.given.example", host_name="host.given.example")
    assert dns.asked == []


def test_host_list_name_lookup_failures(tmp_path: Path) -> None:
    dns = FakeResolver(defer={"slow.example.test", "192.0.2.1"})
    ctx = make_ctx(tmp_path, resolver=dns)
    with pytest.raises(ListDefer):
        match_host_list(ctx, "192.0.2.2", "slow.example.test")
    assert match_host_list(ctx, "192.0.2.2", "+include_defer : slow.example.test")
    assert not match_host_list(ctx, "192.0.2.2", "+ignore_defer : slow.example.test")
    assert not match_host_list(ctx, "192.0.2.2", "unknown.example.test")  # no address: the list fails
    assert not match_host_list(ctx, "192.0.2.1", "*.example")  # the reverse lookup failed
    assert not match_host_list(ctx, "192.0.2.2", "1.2.3")  # malformed: fails the list


def test_host_list_specials(tmp_path: Path) -> None:
    dns = FakeResolver(addresses={"mail.example.org": ["192.0.2.25"]})
    ctx = make_ctx(tmp_path, resolver=dns)
    assert match_host_list(ctx, "192.0.2.25", "@")  # the primary host name's addresses
    assert match_host_list(ctx, "", ":")  # the empty item matches a local (non-SMTP) caller
    assert not match_host_list(ctx, "192.0.2.1", "")
    assert match_host_list(ctx, "", "*")


def test_host_list_lookups(tmp_path: Path) -> None:
    (tmp_path / "nets").write_text("192.0.2.0/24: net\n0000.0000.0000.0000.0000.0000.0000.0001: v6\n")
    (tmp_path / "names").write_text("host.example.test: named\n")
    dns = FakeResolver(
        ptr={"192.0.2.7": ["host.example.test"]}, addresses={"host.example.test": ["192.0.2.7"]}
    )
    ctx = make_ctx(tmp_path, resolver=dns)
    assert check_host_list(ctx, "192.0.2.7", f"net24-lsearch;{tmp_path / 'nets'}").value == "net"
    assert check_host_list(ctx, "::1", f"<, net-lsearch;{tmp_path / 'nets'}").value == "v6"
    assert check_host_list(ctx, "192.0.2.7", f"lsearch;{tmp_path / 'names'}").value == "named"


def test_localhost_is_found_in_etc_hosts(tmp_path: Path) -> None:
    hosts = Path("/etc/hosts").read_text() if Path("/etc/hosts").exists() else ""
    if not any(
        "localhost" in line.split()[1:] and line.startswith("127.0.0.1") for line in hosts.splitlines()
    ):
        pytest.skip("no 127.0.0.1 localhost line in /etc/hosts")
    ctx = make_ctx(tmp_path, resolver=FakeResolver())
    assert match_host_list(ctx, "127.0.0.1", "localhost")


def test_mx_specials(tmp_path: Path) -> None:
    dns = FakeResolver(
        mx={
            "primary.example": [(10, "mail.example.org"), (20, "other.example")],
            "secondary.example": [(10, "other.example"), (20, "mail.example.org")],
            "none.example": [(10, "other.example")],
            "byip.example": [(5, "alias.example")],
        },
        addresses={
            "mail.example.org": ["192.0.2.25"],
            "other.example": ["198.51.100.1"],
            "alias.example": ["192.0.2.1"],
        },
        defer={"slow.example"},
    )
    ctx = make_ctx(tmp_path, "local_interfaces = 192.0.2.1\n", resolver=dns)
    results = {
        d: [match_domain_list(ctx, d, f"@mx_{w}") for w in ("any", "primary", "secondary")]
        for d in ("primary.example", "secondary.example", "none.example", "byip.example")
    }
    assert results == {
        "primary.example": [True, True, False],
        "secondary.example": [True, False, True],
        "none.example": [False, False, False],
        "byip.example": [True, True, False],  # an address of a local interface
    }
    assert not match_domain_list(ctx, "byip.example", "@mx_any/ignore=192.0.2.1")
    with pytest.raises(ListDefer) as info:
        match_domain_list(ctx, "slow.example", "@mx_any")
    assert info.value.detail == 'DNS lookup of "slow.example" deferred'

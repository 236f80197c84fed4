"""-bP and -bV through the API (the byte-for-byte comparison with exim4 is tests/interop/test_config_bp.py)."""

from __future__ import annotations

from pathlib import Path

from pyxim.config import load_config
from pyxim.config.model import Config
from pyxim.config.printing import bp_output, bv_output, config_listing, driver_listing, main_option_line

CONF = """\
primary_hostname = x.example
MAC = v
hide smtp_banner = secret
domainlist local_domains = a : b
hostlist relays = 127.0.0.1
begin routers
r1:
  driver = accept
  transport = t1
  hide address_data = hidden
begin transports
t1:
  driver = pipe
  command = /bin/true
"""


def load(tmp_path: Path, text: str = CONF) -> Config:
    path = tmp_path / "exim.conf"
    path.write_text(text)
    return load_config(str(path))


def test_named_items_and_exit_status(tmp_path: Path) -> None:
    c = load(tmp_path)
    text, status = bp_output(
        c, ["primary_hostname", "+local_domains", "+relays", "router_list", "macro", "MAC", "nosuch"]
    )
    assert text == (
        "primary_hostname = x.example\ndomainlist local_domains = a : b\nhostlist relays = 127.0.0.1\n"
        "r1\nMAC=v\nnosuch is not a known option\n"
    )
    assert status == 1
    # the status is the last item's, as in Exim
    assert bp_output(c, ["nosuch", "primary_hostname"])[1] == 0
    assert bp_output(c, ["router", "nope"]) == ("router nope not found\n", 1)
    assert bp_output(c, ["+nope"]) == (
        'no address, domain, host, or local part list called "nope" exists\n',
        1,
    )
    assert bp_output(c, ["config_file"]) == (f"{tmp_path}/exim.conf\n", 0)
    assert bp_output(c, ["local_scan"]) == ("local_scan() options are not supported\n", 1)


def test_all_main_options(tmp_path: Path) -> None:
    c = load(tmp_path)
    text, status = bp_output(c, [])
    lines = text.splitlines()
    assert status == 0 and len(lines) > 270
    assert lines[0] == "accept_8bitmime"
    assert "daemon_smtp_port = smtp" not in lines  # Exim's hidden synonyms are not listed
    assert "primary_hostname = x.example" in lines and "qualify_domain = x.example" in lines
    assert bp_output(c, ["all"])[0] == text


def test_no_labels(tmp_path: Path) -> None:
    c = load(tmp_path)
    assert bp_output(c, ["primary_hostname", "+local_domains", "accept_8bitmime"], no_labels=True)[0] == (
        "x.example\na : b\naccept_8bitmime\n"
    )


def test_hidden_values(tmp_path: Path) -> None:
    c = load(tmp_path)
    from pyxim.config import main_options

    opt = main_options()["smtp_banner"]
    assert main_option_line(c, opt, admin=True) == "smtp_banner = secret"
    assert main_option_line(c, opt, admin=False) == "smtp_banner = <value not displayable>"
    assert "address_data = <value not displayable>" in driver_listing(c.routers[0], admin=False)
    assert "address_data = hidden" in driver_listing(c.routers[0], admin=True)
    listing = config_listing(c, admin=False)
    assert "MAC = <value not displayable>" in listing
    assert "hide smtp_banner = <value not displayable>" in listing


def test_driver_listing_order(tmp_path: Path) -> None:
    c = load(tmp_path)
    lines = driver_listing(c.transports[0], admin=True)
    names = [line.removeprefix("no_").split(" =")[0] for line in lines]
    generic = names[: names.index("user") + 1]
    assert generic == sorted(generic) and "driver" in generic
    private = names[len(generic) :]
    assert private == sorted(private) and "command" in private
    assert "command = /bin/true" in lines


def test_config_listing(tmp_path: Path) -> None:
    c = load(
        tmp_path,
        "# c\nprimary_hostname =   x\nbegin acl\na:\n  accept   hosts = :\nbegin retry\n*   *   F,1h,10m\n",
    )
    assert config_listing(c, admin=True) == [
        "# Exim Configuration (4.96)",
        f'# 1 "{tmp_path}/exim.conf"',
        "primary_hostname = x",
        "",
        "begin acl",
        "",
        "  a:",
        "    accept hosts = :",
        "",
        "begin retry",
        "  * * F,1h,10m",
    ]
    assert config_listing(c, terse=True, admin=True)[3:6] == ["begin acl", "a:", "accept hosts = :"]


def test_bv(tmp_path: Path) -> None:
    c = load(tmp_path)
    text = bv_output(c)
    assert text.endswith(f"Configuration file is {tmp_path}/exim.conf\n")
    assert "Routers: accept dnslookup ipliteral iplookup manualroute queryprogram redirect\n" in text

"""-bP and -bV output, in Exim's format."""

from __future__ import annotations

import os
import re

from pyxim import EXIM_COMPAT_VERSION, __version__
from pyxim.config.model import Config, DriverInstance
from pyxim.config.options import OptionDef, format_option

HIDDEN_TEXT = "<value not displayable>"
_KIND_LISTS = {"router": "routers", "transport": "transports", "authenticator": "authenticators"}
_NAMED_LIST_WORDS = {"address": "address", "domain": "domain", "host": "host", "localpart": "localpart"}


def is_admin() -> bool:
    """Who may see hidden values and macros: root here (Exim: root, exim user, admin_groups)."""
    return os.geteuid() == 0


def _main_value(config: Config, opt: OptionDef) -> object:
    """A main option's value as Exim shows it after reading the file (host names filled in)."""
    value = config.main.get(opt.name, opt.default)
    if opt.name in ("primary_hostname", "qualify_domain", "qualify_recipient") and not value:
        from pyxim.config import primary_hostname

        value = config.main.get("primary_hostname") or primary_hostname()
        if opt.name == "qualify_recipient":
            value = config.main.get("qualify_domain") or value
    return value


def main_option_line(
    config: Config, opt: OptionDef, no_labels: bool = False, admin: bool | None = None
) -> str:
    if opt.name in config.hidden and not (is_admin() if admin is None else admin):
        return HIDDEN_TEXT if no_labels else f"{opt.name} = {HIDDEN_TEXT}"
    return format_option(opt, _main_value(config, opt), no_labels)


def driver_listing(inst: DriverInstance, no_labels: bool = False, admin: bool | None = None) -> list[str]:
    """The options of one driver instance: generic ones first, then the driver's own, each sorted."""
    from pyxim.config.drivers import generic_option_names, options_for

    table = dict(options_for(inst.kind, inst.driver) or {})
    table["driver"] = OptionDef("driver", "string", inst.driver)
    generic = generic_option_names(inst.kind)
    admin = is_admin() if admin is None else admin
    lines = []
    for name in sorted(table, key=lambda n: (n not in generic, n)):
        opt = table[name]
        if opt.hidden:
            continue
        if name.startswith("*expand_"):
            base = inst.options.get(name[len("*expand_") :])
            value: object = base if isinstance(base, str) else None
        else:
            value = inst.driver if name == "driver" else inst.options.get(name, opt.default)
        if name in inst.hidden and not admin:
            lines.append(HIDDEN_TEXT if no_labels else f"{name} = {HIDDEN_TEXT}")
            continue
        lines.append(format_option(opt, value, no_labels))
    return lines


def bp_output(config: Config, names: list[str], no_labels: bool = False) -> tuple[str, int]:
    """-bP: the text to print and the exit status (that of the last item, as in Exim)."""
    from pyxim.config import main_options

    table = main_options()
    out: list[str] = []
    if not names:
        names = ["all"]
    status = 0
    i = 0
    while i < len(names):
        name = names[i]
        i += 1
        status = 0
        if name in ("router", "transport", "authenticator", "macro") and i < len(names):
            wanted = names[i]
            i += 1
            status = _print_named(config, name, wanted, out, no_labels)
        elif name == "all":
            out.extend(main_option_line(config, o, no_labels) for o in table.values() if not o.hidden)
        elif name in ("config_file", "configure_file"):
            out.append(config.filename)
        elif name == "config":
            out.extend(config_listing(config, terse=no_labels))
        elif name in ("macros", "macro_list"):
            if not is_admin():
                return "".join(x + "\n" for x in out), _permission_denied()
            for key, value in config.macro_table.all_items():
                out.append(key if name == "macro_list" else f"{key}={value}")
        elif name in ("router_list", "transport_list", "authenticator_list"):
            out.extend(inst.name for inst in getattr(config, _KIND_LISTS[name[: -len("_list")]]))
        elif name in ("routers", "transports", "authenticators"):
            kind = name[:-1]
            for inst in getattr(config, name):
                out.append("")
                out.append(f"{inst.name} {kind}:")
                out.extend(driver_listing(inst, no_labels))
        elif name == "environment":
            for key in sorted(os.environ):
                out.append(key if no_labels else f"{key}={os.environ[key]}")
        elif name == "local_scan":
            out.append("local_scan() options are not supported")
            status = 1
        elif name.startswith("+"):
            nl = config.named_lists.get(name[1:])
            if nl is None:
                out.append(f'no address, domain, host, or local part list called "{name[1:]}" exists')
                status = 1
            else:
                out.append(
                    nl.value if no_labels else f"{_NAMED_LIST_WORDS[nl.kind]}list {nl.name} = {nl.value}"
                )
        elif name in table and not name.startswith("*"):
            out.append(main_option_line(config, table[name], no_labels))
        else:
            out.append(f"{name} is not a known option")
            status = 1
    return "".join(line + "\n" for line in out), status


def _permission_denied() -> int:
    import sys

    print("exim: permission denied", file=sys.stderr)
    return 1


def _print_named(config: Config, kind: str, wanted: str, out: list[str], no_labels: bool) -> int:
    if kind == "macro":
        if not is_admin():
            return _permission_denied()
        for key, value in config.macro_table.all_items():
            if key == wanted:
                out.append(f"{key}={value}")
                return 0
        out.append(f"macro {wanted} not found")
        return 1
    for inst in getattr(config, _KIND_LISTS[kind]):
        if inst.name == wanted:
            out.extend(driver_listing(inst, no_labels))
            return 0
    out.append(f"{kind} {wanted} not found")
    return 1


_COLLAPSE_STOP = ('"', "'", "$")


def _collapse_spaces(line: str) -> str:
    """Runs of white space become one space, as Exim's print_config does it.

    Exim stops collapsing when the character now at the old end of a run is a
    quote or "$" (meant to keep careful formatting; it looks after the shift),
    and that is reproduced here so the output is the same.
    """
    chars = list(line)
    p = 0
    while p < len(chars):
        if not chars[p].isspace():
            p += 1
            continue
        chars[p] = " "
        end = p
        while end < len(chars) and chars[end].isspace():
            end += 1
        if end - p > 1:
            del chars[p + 1 : end]
        if end < len(chars) and chars[end] in _COLLAPSE_STOP:
            break
        p += 1
    return "".join(chars)


def config_listing(config: Config, terse: bool = False, admin: bool | None = None) -> list[str]:
    """-bP config: the logical lines as read, macros replaced, comments gone, indented by section."""
    admin = is_admin() if admin is None else admin
    step = 0 if terse else 2
    indent = 0
    out: list[str] = []
    for raw in config.listing:
        line = _collapse_spaces(raw.lstrip())
        if not line:
            continue
        if line.startswith("#"):
            out.append(line)
        elif re.match(r"begin\s", line):
            if not terse:
                out.append("")
            out.append(line)
            indent = step
        elif line.endswith(":") and "=" not in line:
            if not terse:
                out.append("")
            out.append(" " * step + line)
            indent = 2 * step
        elif not admin and (line[0].isupper() or re.match(r"hide\s", line)):
            if "=" in line:
                out.append(" " * indent + line[: line.index("=")] + "= " + HIDDEN_TEXT)
            else:
                out.append(" " * indent + HIDDEN_TEXT)
        else:
            out.append(" " * indent + line)
    return out


def bv_output(config: Config) -> str:
    from pyxim.config.drivers import drivers_of
    from pyxim.lookups import _TYPES, _load_all

    _load_all()
    return (
        f"pyxim version {__version__} (Exim {EXIM_COMPAT_VERSION} compatible)\n"
        # only what this version really does (more arrives with each issue)
        "Support for: IPv6 TLS PRDR DNSSEC\n"
        f"Lookups (built-in): {' '.join(sorted(_TYPES))}\n"
        "Authenticators: " + " ".join(drivers_of("authenticator")) + "\n"
        "Routers: " + " ".join(drivers_of("router")) + "\n"
        "Transports: " + " ".join(drivers_of("transport")) + "\n"
        f"Configuration file is {config.filename}\n"
    )

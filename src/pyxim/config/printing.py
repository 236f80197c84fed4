"""-bP and -bV output, in Exim's format."""

from __future__ import annotations

import getpass
import os

from pyxim import EXIM_COMPAT_VERSION, __version__
from pyxim.config.model import Config, DriverInstance
from pyxim.config.options import OptionDef, format_option


def _sort_key(name: str) -> str:
    return name


def _main_line(config: Config, opt: OptionDef) -> str:
    from pyxim.config import main_options  # noqa: F401  (table already loaded)

    value = config.main.get(opt.name, opt.default)
    if value in (None, "") and opt.name in ("qualify_domain", "qualify_recipient"):
        value = config.main.get("qualify_domain") or config.main.get("primary_hostname") or ""
        from pyxim.expand import ExpansionContext
        from pyxim.expand.evaluate import Evaluation
        from pyxim.expand.variables import resolve_variable

        value = resolve_variable(Evaluation(ExpansionContext(config=config)), "qualify_domain")
    if opt.name in config.hidden and os.geteuid() != 0 and getpass.getuser() != "root":
        return f"{opt.name} = <value not displayable>"
    return format_option(opt, value)


def _driver_listing(inst: DriverInstance) -> list[str]:
    from pyxim.config.drivers import generic_option_names, options_for

    table = dict(options_for(inst.kind, inst.driver) or {})
    table["driver"] = OptionDef("driver", "string", inst.driver)
    generic = generic_option_names(inst.kind)
    lines = []
    # Exim lists the generic options first, then the driver's own, each sorted.
    for name in sorted(table, key=lambda n: (n not in generic, n)):
        opt = table[name]
        value = inst.options.get(name, opt.default)
        if name == "retry_use_local_part" and name not in inst.options and inst.kind == "router":
            # Exim: defaults to true for routers that check for a local user
            value = bool(inst.options.get("check_local_user"))
        lines.append(format_option(opt, value))
    return lines


_KIND_LISTS = {"router": "routers", "transport": "transports", "authenticator": "authenticators"}


def bp_output(config: Config, names: list[str]) -> tuple[str, int]:
    from pyxim.config import main_options

    table = main_options()
    out: list[str] = []
    status = 0
    if not names:
        return "".join(_main_line(config, opt) + "\n" for opt in table.values()), 0
    i = 0
    while i < len(names):
        name = names[i]
        i += 1
        if name == "config_file":
            out.append(config.filename)
        elif name == "macros":
            out.extend(f"{k}={v}" for k, v in config.macros.items())
        elif name == "macro" and i < len(names):
            key = names[i]
            i += 1
            if key in config.macros:
                out.append(f"{key}={config.macros[key]}")
            else:
                out.append(f"macro {key} not found")
                status = 1
        elif name in ("router_list", "transport_list", "authenticator_list"):
            kind = name[: -len("_list")]
            out.extend(inst.name for inst in getattr(config, _KIND_LISTS[kind]))
        elif name in ("routers", "transports", "authenticators"):
            kind = name[:-1]
            for inst in getattr(config, name):
                out.append("")
                out.append(f"{inst.name} {kind}:")
                out.extend(_driver_listing(inst))
        elif name in ("router", "transport", "authenticator") and i < len(names):
            wanted = names[i]
            i += 1
            found = [inst for inst in getattr(config, _KIND_LISTS[name]) if inst.name == wanted]
            if not found:
                out.append(f"{name} {wanted} not found")
                status = 1
            else:
                out.extend(_driver_listing(found[0]))
        elif name.startswith("+"):
            nl = config.named_lists.get(name[1:])
            if nl is None:
                out.append(f'no address, domain, host, or local part list called "{name[1:]}" exists')
                status = 1
            else:
                word = {"localpart": "localpartlist"}.get(nl.kind, nl.kind + "list")
                out.append(f"{word} {nl.name} = {nl.value}")
        elif name in table:
            out.append(_main_line(config, table[name]))
        else:
            out.append(f"{name} is not a known option")
            status = 1
    return "".join(line + "\n" for line in out), status


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

"""The runtime configuration: load_config() reads an Exim-style file into a Config.

    config = load_config("/etc/exim4/exim4.conf", {"MACRO": "value"})

Errors are ConfigError with the file and line, worded as Exim words them,
with a suggestion where pyxim can make one.
"""

from __future__ import annotations

import difflib
import os
from functools import lru_cache
from importlib import resources

from pyxim.config.model import Acl, AclStatement, Config, DriverInstance, NamedList, RetryRule, RewriteRule
from pyxim.config.options import OptionDef, load_table, parse_value
from pyxim.config.syntax import Line, Macros, Reader
from pyxim.errors import ConfigError

SECTIONS = ("acl", "authenticators", "local_scan", "retry", "rewrite", "routers", "transports")
LIST_KINDS = {"domainlist": "domain", "hostlist": "host", "addresslist": "address", "localpartlist": "localpart"}
ACL_VERBS = ("accept", "defer", "deny", "discard", "drop", "require", "warn")

# Older names from the seed documents → current names (SPEC-NOTES.md).
MAIN_ALIASES = {"proxy_required_hosts": "hosts_proxy", "acl_data_smtp_prdr": "acl_smtp_data_prdr"}
DRIVER_ALIASES = {
    "tls_verify_cert_hostname": "tls_verify_cert_hostnames",
    "tpda_delivery_action": "event_action",
}
DRIVER_EXTRA = {"tpda_host_defer_action": OptionDef("tpda_host_defer_action", "string", None)}


@lru_cache(maxsize=1)
def main_options() -> dict[str, OptionDef]:
    table = load_table("main.txt")
    table.update(load_table("main-pyxim.txt"))
    return dict(sorted(table.items()))


def default_config_path() -> str:
    return str(resources.files("pyxim").joinpath("defaults", "default.conf"))


def _suggest(name: str, names: list[str]) -> str:
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.75)
    return f"\n  (did you mean \"{close[0]}\"?)" if close else ""


def _split_option(text: str) -> tuple[str, str | None]:
    name, eq, value = text.partition("=")
    return name.strip(), (value.strip() if eq else None)


def _set_option(
    table: dict[str, OptionDef], store: dict, text: str, where: str, line: Line, config: Config,
    aliases: dict[str, str], seen: set[str],
) -> None:
    hide = False
    if text.startswith("hide "):
        hide = True
        text = text[5:].strip()
    name, value = _split_option(text)
    negated = False
    if name not in table and name not in aliases:
        for prefix in ("no_", "not_"):
            if name.startswith(prefix) and (name[len(prefix):] in table or name[len(prefix):] in aliases):
                negated = True
                name = name[len(prefix):]
                break
    if name in aliases:
        config.deprecations.append(
            f'{line.file}:{line.number}: option "{name}" is deprecated; use "{aliases[name]}"'
        )
        name = aliases[name]
    opt = table.get(name)
    if opt is None:
        raise ConfigError(f'{where} option "{name}" unknown' + _suggest(name, list(table)), line.file, line.number)
    if name in seen and where == "main":
        raise ConfigError(f'"{name}" option set for the second time', line.file, line.number)
    seen.add(name)
    try:
        store[name] = parse_value(opt, value, negated)
    except ConfigError as exc:
        raise ConfigError(exc.message, line.file, line.number) from None
    if hide:
        config.hidden.add(name)


def _parse_main(lines: list[Line], config: Config) -> int:
    table = main_options()
    seen: set[str] = set()
    for idx, line in enumerate(lines):
        text = line.text
        word = text.split(None, 1)[0]
        if word == "begin":
            return idx
        kind_word = word.removesuffix("_cache")
        if kind_word in LIST_KINDS:
            rest = text[len(word):].strip()
            lname, eq, value = rest.partition("=")
            lname = lname.strip()
            if not eq or not lname:
                raise ConfigError(f"missing or malformed name for {kind_word}", line.file, line.number)
            config.named_lists[lname] = NamedList(
                LIST_KINDS[kind_word], lname, value.strip(), word.endswith("_cache"), line.file, line.number
            )
            continue
        _set_option(table, config.main, text, "main", line, config, MAIN_ALIASES, seen)
    return len(lines)


def _parse_drivers(lines: list[Line], kind: str, out: list[DriverInstance], config: Config) -> None:
    current: tuple[str, Line, list[Line]] | None = None
    instances: list[tuple[str, Line, list[Line]]] = []
    for line in lines:
        if line.text.endswith(":") and "=" not in line.text and " " not in line.text.strip(":"):
            current = (line.text[:-1].strip(), line, [])
            instances.append(current)
            continue
        if current is None:
            raise ConfigError(f"{kind} name missing", line.file, line.number)
        current[2].append(line)
    from pyxim.config.drivers import drivers_of, options_for

    for name, head, body in instances:
        driver = None
        for line in body:
            oname, value = _split_option(line.text)
            if oname == "driver":
                driver = (value or "").strip()
        if driver is None:
            raise ConfigError(f'no driver defined for {kind} "{name}"', head.file, head.number)
        table = options_for(kind, driver)
        if table is None:
            raise ConfigError(
                f'{kind} {name}: cannot find {kind} driver "{driver}"' + _suggest(driver, drivers_of(kind)),
                head.file, head.number,
            )
        table = {**table, **DRIVER_EXTRA}
        options: dict = {}
        seen: set[str] = set()
        for line in body:
            if _split_option(line.text)[0] == "driver":
                continue
            _set_option(table, options, line.text, f"{kind} {name}:", line, config, DRIVER_ALIASES, seen)
        out.append(DriverInstance(kind, name, driver, options, head.file, head.number))


def _parse_acls(lines: list[Line], config: Config) -> None:
    current: Acl | None = None
    statement: AclStatement | None = None
    for line in lines:
        text = line.text
        if text.endswith(":") and " " not in text and "=" not in text:
            current = Acl(text[:-1], [], line.file, line.number)
            config.acls[current.name] = current
            statement = None
            continue
        if current is None:
            raise ConfigError("ACL name missing", line.file, line.number)
        word, _, rest = text.partition(" ")
        word = word.strip()
        if word in ACL_VERBS:
            statement = AclStatement(word, [], line.number)
            current.statements.append(statement)
            rest = rest.strip()
            if rest:
                statement.items.append(_acl_item(rest, line))
            continue
        if statement is None:
            raise ConfigError(f'unknown ACL verb "{word}" in "{text}"', line.file, line.number)
        statement.items.append(_acl_item(text, line))


def _acl_item(text: str, line: Line) -> tuple[str, str, int]:
    """`name = value`, `!name = value`, `set acl_m_x = value`, `endpass`."""
    import re

    m = re.match(r"(!?\s*[A-Za-z_][A-Za-z0-9_]*)\s*(.*)$", text, re.S)
    if not m:
        raise ConfigError(f'malformed ACL line "{text}"', line.file, line.number)
    name, rest = m.group(1).replace(" ", ""), m.group(2)
    if name == "set":
        return name, rest.strip(), line.number
    if rest.startswith("="):
        return name, rest[1:].strip(), line.number
    if rest.strip():
        raise ConfigError(f'"=" missing after ACL "{name}" condition or modifier', line.file, line.number)
    return name, "", line.number


def _parse_retry(lines: list[Line], config: Config) -> None:
    for line in lines:
        parts = line.text.split(None, 2)
        if len(parts) < 2:
            raise ConfigError("malformed retry rule", line.file, line.number)
        config.retry_rules.append(RetryRule(parts[0], parts[1], parts[2] if len(parts) > 2 else "", line.number))


def _parse_rewrite(lines: list[Line], config: Config) -> None:
    for line in lines:
        parts = line.text.split(None, 2)
        if len(parts) < 2:
            raise ConfigError("malformed rewriting rule", line.file, line.number)
        config.rewrite_rules.append(RewriteRule(parts[0], parts[1], parts[2] if len(parts) > 2 else "", line.number))


def parse_lines(lines: list[Line], config: Config) -> None:
    idx = _parse_main(lines, config)
    seen_sections: set[str] = set()
    while idx < len(lines):
        head = lines[idx]
        section = head.text.split(None, 1)[1].strip() if " " in head.text else ""
        if section not in SECTIONS:
            raise ConfigError(f'"{section}" is not a known configuration section name', head.file, head.number)
        if section in seen_sections:
            raise ConfigError(f'"{section}" section is repeated', head.file, head.number)
        seen_sections.add(section)
        end = idx + 1
        while end < len(lines) and lines[end].text.split(None, 1)[0] != "begin":
            end += 1
        body = lines[idx + 1 : end]
        if section == "routers":
            _parse_drivers(body, "router", config.routers, config)
        elif section == "transports":
            _parse_drivers(body, "transport", config.transports, config)
        elif section == "authenticators":
            _parse_drivers(body, "authenticator", config.authenticators, config)
        elif section == "acl":
            _parse_acls(body, config)
        elif section == "retry":
            _parse_retry(body, config)
        elif section == "rewrite":
            _parse_rewrite(body, config)
        idx = end


def load_config(path: str | None, macros: dict[str, str] | None = None) -> Config:
    """Read a configuration file (None: the embedded default) into a Config."""
    filename = path or default_config_path()
    table = Macros(macros)
    config = Config(filename=os.path.abspath(filename), macro_table=table)
    for name, opt in main_options().items():
        config.main[name] = opt.default
    reader = Reader(table)
    reader.read_file(filename)
    parse_lines(reader.lines, config)
    _check(config)
    return config


def _check(config: Config) -> None:
    from pyxim import logselector

    logselector.parse(str(config.main.get("log_selector") or ""))
    transports = {t.name for t in config.transports}
    for r in config.routers:
        t = r.options.get("transport")
        if t and "$" not in t and t not in transports:
            raise ConfigError(f'transport "{t}" not found in {r.name} router', r.file, r.line)


__all__ = ["Config", "ConfigError", "load_config", "main_options"]

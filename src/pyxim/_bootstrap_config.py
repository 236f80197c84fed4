"""TEMPORARY stand-in used only until pyxim.config lands (deleted at integration)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass
class NamedList:
    kind: str
    name: str
    value: str
    cached: bool = False


@dataclass
class BootConfig:
    filename: str = ""
    main: dict = field(default_factory=dict)
    named_lists: dict = field(default_factory=dict)
    macros: dict = field(default_factory=dict)

    def substitute_macros(self, line: str) -> str:
        for name, value in sorted(self.macros.items(), key=lambda kv: -len(kv[0])):
            line = re.sub(r"(?<![A-Za-z0-9_])" + re.escape(name) + r"(?![A-Za-z0-9_])", lambda m, v=value: v, line)
        return line

    def define_macro_from_line(self, line: str) -> None:
        m = re.match(r"([A-Z][A-Za-z0-9_]*)\s*==?\s*(.*)$", line)
        if not m:
            from pyxim.errors import ConfigError

            raise ConfigError("malformed macro definition")
        self.macros[m.group(1)] = m.group(2)


def load(path: str | None, macros: dict[str, str]) -> BootConfig:
    cfg = BootConfig(filename=path or "", macros=dict(macros))
    if path is None:
        return cfg
    for raw in open(path, encoding="utf-8"):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("begin "):
            break
        m = re.match(r"([A-Z][A-Za-z0-9_]*)\s*==?\s*(.*)$", line)
        if m:
            cfg.macros.setdefault(m.group(1), cfg.substitute_macros(m.group(2)))
            continue
        line = cfg.substitute_macros(line)
        m = re.match(r"(domain|host|address|localpart)list(_cache)?\s+(\S+)\s*=\s*(.*)$", line)
        if m:
            cfg.named_lists[m.group(3)] = NamedList(m.group(1), m.group(3), m.group(4), bool(m.group(2)))
            continue
        name, _, value = line.partition("=")
        cfg.main[name.strip()] = value.strip()
    return cfg

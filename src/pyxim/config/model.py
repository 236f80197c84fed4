"""The loaded configuration: what every other part of pyxim reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pyxim.config.syntax import Macros


@dataclass(slots=True)
class NamedList:
    kind: str  # domain, host, address, localpart
    name: str
    value: str
    cached: bool = False
    file: str = ""
    line: int = 0


@dataclass(slots=True)
class DriverInstance:
    """A router, transport or authenticator: `name:` followed by its options."""

    kind: str  # router, transport, authenticator
    name: str
    driver: str
    options: dict[str, Any]
    file: str = ""
    line: int = 0


@dataclass(slots=True)
class AclStatement:
    verb: str
    items: list[tuple[str, str, int]]  # (condition or modifier name, raw value, line)
    line: int = 0


@dataclass(slots=True)
class Acl:
    name: str
    statements: list[AclStatement]
    file: str = ""
    line: int = 0


@dataclass(slots=True)
class RetryRule:
    pattern: str
    error: str
    rules: str
    line: int = 0


@dataclass(slots=True)
class RewriteRule:
    pattern: str
    replacement: str
    flags: str
    line: int = 0


@dataclass
class Config:
    filename: str = ""
    main: dict[str, Any] = field(default_factory=dict)
    hidden: set[str] = field(default_factory=set)
    named_lists: dict[str, NamedList] = field(default_factory=dict)
    macro_table: Macros = field(default_factory=Macros)
    acls: dict[str, Acl] = field(default_factory=dict)
    routers: list[DriverInstance] = field(default_factory=list)
    transports: list[DriverInstance] = field(default_factory=list)
    authenticators: list[DriverInstance] = field(default_factory=list)
    retry_rules: list[RetryRule] = field(default_factory=list)
    rewrite_rules: list[RewriteRule] = field(default_factory=list)
    deprecations: list[str] = field(default_factory=list)

    @property
    def macros(self) -> dict[str, str]:
        return self.macro_table.values

    def substitute_macros(self, line: str) -> str:
        return self.macro_table.substitute(line)

    def define_macro_from_line(self, line: str) -> None:
        self.macro_table.define_from_line(line)

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
    """A router, transport or authenticator: `name:` followed by its options.

    options holds every option of the driver (defaults included), typed as
    pyxim.config.options describes; explicit names the options the
    configuration set; hidden the ones set with `hide`.
    """

    kind: str  # router, transport, authenticator
    name: str
    driver: str
    options: dict[str, Any]
    file: str = ""
    line: int = 0
    hidden: set[str] = field(default_factory=set)
    explicit: set[str] = field(default_factory=set)


@dataclass(slots=True)
class AclStatement:
    verb: str
    # (condition or modifier name, "!" first when negated; its raw text; its line).
    # `set` keeps "acl_m_x = value" as its text; `endpass` has "".
    items: list[tuple[str, str, int]]
    line: int = 0


@dataclass(slots=True)
class Acl:
    name: str
    statements: list[AclStatement]
    file: str = ""
    line: int = 0


@dataclass(slots=True)
class RetryRule:
    """One line of the retry section.

    rules is the text of the retry items; items has them parsed as
    (letter F/G/H, cutoff seconds, interval seconds, multiplier in thousandths).
    """

    pattern: str
    error: str
    rules: str
    line: int = 0
    senders: str | None = None
    items: list[tuple[str, int, int, int]] = field(default_factory=list)
    file: str = ""


@dataclass(slots=True)
class RewriteRule:
    pattern: str
    replacement: str
    flags: str  # the flag letters as written (none: every header and envelope field)
    line: int = 0
    file: str = ""


@dataclass
class Config:
    filename: str = ""
    main: dict[str, Any] = field(default_factory=dict)
    hidden: set[str] = field(default_factory=set)  # main options set with `hide`
    named_lists: dict[str, NamedList] = field(default_factory=dict)
    macro_table: Macros = field(default_factory=Macros)
    acls: dict[str, Acl] = field(default_factory=dict)
    routers: list[DriverInstance] = field(default_factory=list)
    transports: list[DriverInstance] = field(default_factory=list)
    authenticators: list[DriverInstance] = field(default_factory=list)
    retry_rules: list[RetryRule] = field(default_factory=list)
    rewrite_rules: list[RewriteRule] = field(default_factory=list)
    deprecations: list[str] = field(default_factory=list)  # "file:line: option "x" is deprecated; use "y""
    listing: list[str] = field(default_factory=list)  # the file as read, for -bP config

    @property
    def macros(self) -> dict[str, str]:
        """User macros (command line first), in definition order."""
        return self.macro_table.values

    def substitute_macros(self, line: str) -> str:
        """Exim's macro replacement on one line (as for -be input)."""
        return self.macro_table.substitute_line(line)

    def define_macro_from_line(self, line: str) -> None:
        """A -be input line starting with an upper-case letter: `NAME = value` (or ==).

        Exim 4.96 lets such lines redefine a macro freely; a line that is not a
        definition raises ConfigError("malformed macro definition").
        """
        text = line.strip()  # the caller has replaced macros already (substitute_macros)
        from pyxim.config.sections import read_name
        from pyxim.errors import ConfigError

        name, rest = read_name(text)
        if not name or not rest.startswith("="):
            raise ConfigError("malformed macro definition")
        value = rest[2:] if rest.startswith("==") else rest[1:]
        self.macro_table.values[name] = value.strip()

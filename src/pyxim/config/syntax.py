"""The lexical layer of Exim's runtime configuration: lines, macros, directives.

Turns a file into logical lines, each with its file and line number, the way
Exim's get_config_line() does:

- each physical line has its leading white space removed and macros replaced
  (not in the name of a macro being defined), then
- a line starting with "#" is a comment (even inside a continuation),
- `.ifdef`/`.ifndef`/`.elifdef`/`.elifndef`/`.else`/`.endif` are physical lines;
  `.ifdef ANYTHING` is true when a macro was replaced somewhere in the line,
- `.include` / `.include_if_exists` need an absolute path (quotes allowed),
- a line ending in a backslash continues on the next one, whose leading white
  space is dropped; trailing white space is always dropped,
- empty logical lines are ignored.

Macro definitions are recorded by the section readers (they are logical lines
starting with an upper-case letter); this module only provides the table.
"""

from __future__ import annotations

import os
import pwd
import re
from dataclasses import dataclass

from pyxim import EXIM_COMPAT_VERSION
from pyxim.errors import ConfigError

MACRO_NAME_MAX = 63
_CONDITIONALS = ("ifdef", "ifndef", "elifdef", "elifndef", "else", "endif")
_NESTING_MAX = 10  # Exim's conditional stack size


@dataclass(slots=True)
class Line:
    file: str
    number: int  # the last physical line of the logical line, as Exim reports it
    text: str
    is_macro: bool = False  # a macro definition, already recorded by the reader


class Macros:
    """Macros in definition order, command-line ones first; builtins (`_HAVE_*`, `_OPT_*`) on demand.

    Substitution follows Exim 4.96: each macro in turn replaces every occurrence
    of its name from the first upper-case letter (or `_X`) in the line onward,
    anywhere in a word; text put in by one macro is scanned by the macros after
    it, never by itself. Builtins are tried only when that first candidate is `_`.
    """

    def __init__(self, initial: dict[str, str] | None = None) -> None:
        self.values: dict[str, str] = {}
        self.from_command_line: set[str] = set()
        self._builtins: dict[str, str] | None = None
        for name, value in (initial or {}).items():
            self.values[name] = value
            self.from_command_line.add(name)

    # -- definitions ---------------------------------------------------------

    def define(self, name: str, value: str, redefine: bool) -> None:
        """Record NAME = value (redefine: the `==` form). Raises ConfigError in Exim's words."""
        if len(name) > MACRO_NAME_MAX:
            raise ConfigError(f"macro name too long (maximum is {MACRO_NAME_MAX} characters)")
        existing = name in self.values
        if existing and name not in self.from_command_line and not redefine:
            raise ConfigError(f'macro "{name}" is already defined (use "==" if you want to redefine it)')
        if not existing:
            for other in self.values:
                if len(other) < len(name) and other in name:
                    raise ConfigError(
                        f'"{name}" cannot be defined as a macro because previously defined macro "{other}" '
                        "is a substring"
                    )
        if name in self.from_command_line:
            return  # -D on the command line wins over the file
        if redefine and not existing:
            raise ConfigError(f'can\'t redefine an undefined macro "{name}"')
        self.values[name] = value

    def define_from_line(self, text: str) -> str:
        """A logical line `NAME = value` or `NAME == value` (macros in the value already replaced)."""
        m = re.match(r"([A-Za-z0-9_]*)\s*", text)
        assert m is not None
        name, rest = m.group(1), text[m.end() :]
        if not rest.startswith("="):
            raise ConfigError("malformed macro definition")
        redefine = rest.startswith("==")
        value = rest[2 if redefine else 1 :].lstrip()
        self.define(name, value, redefine)
        return name

    # -- builtins ------------------------------------------------------------

    @property
    def builtins(self) -> dict[str, str]:
        if self._builtins is None:
            self._builtins = builtin_macros()
        return self._builtins

    def all_items(self) -> list[tuple[str, str]]:
        """Builtins then user macros, the order `-bP macros` prints them in."""
        return list(self.builtins.items()) + list(self.values.items())

    def lookup(self, name: str) -> str | None:
        if name in self.values:
            return self.values[name]
        if name.startswith("_"):
            return self.builtins.get(name)
        return None

    # -- substitution --------------------------------------------------------

    def substitute(self, text: str, start: int = 0) -> tuple[str, bool]:
        """Replace macros in text[start:]; returns the new text and whether anything was replaced."""
        pos = _next_candidate(text, start)
        if pos >= len(text):
            return text, False
        items = list(self.values.items())
        if text[pos] == "_":
            items = list(self.builtins.items()) + items
        found = False
        for name, value in items:
            pos = _next_candidate(text, pos)
            if pos >= len(text):
                break
            if name in text[pos:]:
                text = text[:pos] + text[pos:].replace(name, value)
                found = True
        return text, found

    def substitute_line(self, text: str) -> str:
        """A whole logical line as -be input sees it: macros replaced, a definition's name kept."""
        return self.substitute(text, _definition_value_start(text))[0]


def _next_candidate(text: str, pos: int) -> int:
    n = len(text)
    while pos < n:
        ch = text[pos]
        if "A" <= ch <= "Z" or (ch == "_" and pos + 1 < n and "A" <= text[pos + 1] <= "Z"):
            return pos
        pos += 1
    return n


def _definition_value_start(text: str) -> int:
    """Where substitution may start: after `NAME` when the line defines a macro, else 0."""
    if not text or not ("A" <= text[0] <= "Z"):
        return 0
    m = re.match(r"[A-Za-z0-9_]*\s*", text)
    assert m is not None
    return m.end() if text[m.end() : m.end() + 1] == "=" else 0


def builtin_macros() -> dict[str, str]:
    """pyxim's `_HAVE_*`, `_DRIVER_*` and `_OPT_*` macros (what this build offers).

    Longer names come first so that a name that is a leading part of another
    never replaces it (Exim gets the same effect from reverse-alphabetic order).
    """
    from pyxim.config.drivers import drivers_of, generic_options, options_for
    from pyxim.config.main_table import MAIN_TABLE

    names: list[str] = [
        f"_HAVE_{f}"
        for f in (
            "DNSSEC",
            "EVENT",
            "IPV6",
            "OCSP",
            "PRDR",
            "PROXY",
            "SRS",
            "TLS",
            "LKUP_DNSDB",
            "LKUP_DSEARCH",
            "LKUP_LSEARCH",
            "LKUP_SQLITE",
        )
    ]
    names += [f"_OPT_MAIN_{o.upper()}" for o in MAIN_TABLE if not o.startswith("*")]
    from pyxim.config.sections import ACL_CONDITIONS, ACL_MODIFIERS

    names += [f"_ACL_COND_{c.upper()}" for c in ACL_CONDITIONS] + [
        f"_ACL_MOD_{m.upper()}" for m in ACL_MODIFIERS
    ]
    groups = {"router": "ROUTER", "transport": "TRANSPORT", "authenticator": "AUTHENTICATOR"}
    for kind, word in groups.items():
        names += [f"_OPT_{word}S_{o.upper()}" for o in list(generic_options(kind)) + ["driver"]]
        for driver in drivers_of(kind):
            names.append(f"_DRIVER_{word}_{driver.upper()}")
            private = set(options_for(kind, driver) or {}) - set(generic_options(kind))
            names += [f"_OPT_{word}_{driver.upper()}_{o.upper()}" for o in private if not o.startswith("*")]
    macros = {name: "y" for name in sorted(set(names), reverse=True)}
    macros.update(_running_macros())
    return dict(sorted(macros.items(), reverse=True))


def data_directory() -> str:
    """Where an unprivileged pyxim keeps its spool, logs and mailboxes: $XDG_DATA_HOME/pyxim."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "pyxim")


def _running_macros() -> dict[str, str]:
    """Builtins that describe how pyxim runs. `_HAVE_PYXIM` lets one file serve Exim and pyxim
    (`.ifdef` around pyxim's own options); the others are for the embedded default
    configuration: without root it cannot use system paths, port 25 or system mailboxes."""
    if os.geteuid() == 0:
        return {"_HAVE_PYXIM": "y"}
    try:
        user = pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        user = str(os.geteuid())
    return {"_HAVE_PYXIM": "y", "_PYXIM_UNPRIVILEGED": "y", "_PYXIM_DATA_DIR": data_directory(), "_PYXIM_USER": user}


class Reader:
    """Reads a file (and what it includes) into logical lines."""

    def __init__(self, macros: Macros, main_directory: str = ".") -> None:
        self.macros = macros
        self.main_directory = main_directory  # relative .include paths start here (Exim 4.96)
        self.lines: list[Line] = []
        # What -bP config prints: the logical lines as read, and file positions.
        self.listing: list[str] = [f"# Exim Configuration ({EXIM_COMPAT_VERSION})"]
        self._depth = 0
        self._section = ""  # macro definitions are recognised as the section reading them does

    def read_file(self, path: str) -> None:
        try:
            with open(path, encoding="utf-8", errors="surrogateescape") as f:
                raw = f.read()
        except OSError as exc:
            raise ConfigError(f"failed to open configuration file {path}: {exc.strerror}") from None
        self._read(path, raw)

    def _read(self, path: str, raw: str) -> None:
        physical = raw.split("\n")
        if physical and physical[-1] == "":
            physical.pop()
        # Conditional state as Exim keeps it: 0 reading, 1 skipping to .else/.elif, 2 skipping to .endif.
        state = 0
        stack: list[int] = []
        parts: list[str] = []  # physical pieces of the logical line being built
        for index, raw_line in enumerate(physical):
            number = index + 1
            if number == 1:
                self.listing.append(f'# 1 "{path}"')
            text = raw_line.lstrip()
            start = _definition_value_start(text) if not parts else 0
            text, found = self.macros.substitute(text, start)
            text = text.lstrip()
            if text.startswith("#"):
                continue
            if text.startswith("."):
                word = re.match(r"\.([a-z]+)(?=[ \t]|$)", text)
                if word and word.group(1) in _CONDITIONALS:
                    state = self._conditional(word.group(1), found, state, stack, path, number)
                    continue
            if state != 0:
                continue
            include = re.match(r"\.include(_if_exists)?\s", text)
            if include:
                self._include(text[include.end() :], bool(include.group(1)), path, number)
                continue
            text = text.rstrip()
            if not text:
                if parts:  # an empty line ends a continued line
                    self._logical("".join(parts), path, number)
                    parts = []
                continue
            if text.endswith("\\"):
                parts.append(text[:-1])
                continue
            parts.append(text)
            self._logical("".join(parts), path, number)
            parts = []
        if stack:
            raise ConfigError("Unexpected end of configuration file: .endif missing", path, len(physical))
        if parts:
            self._logical("".join(parts), path, len(physical))

    def _conditional(
        self, word: str, found: bool, state: int, stack: list[int], path: str, number: int
    ) -> int:
        # Transitions of Exim's table: the column is "true", "false", "elif true/else", "elif false".
        table = ((0, 1, 2, 2), (2, 2, 0, 1), (2, 2, 2, 2))
        if word in ("ifdef", "ifndef"):
            if len(stack) >= _NESTING_MAX:
                raise ConfigError(f".{word} nested too deeply", path, number)
            stack.append(state)
            truth = found if word == "ifdef" else not found
            return table[state][0 if truth else 1]
        if not stack:
            raise ConfigError(f".{word} without matching .ifdef", path, number)
        if word == "endif":
            return stack.pop()
        if word == "else":
            return table[state][2]
        truth = found if word == "elifdef" else not found
        return table[state][2 if truth else 3]

    def _include(self, arg: str, if_exists: bool, path: str, number: int) -> None:
        target = arg.strip()
        if len(target) >= 2 and target.startswith('"') and target.endswith('"'):
            target = target[1:-1]
        if not target.startswith("/"):
            target = f"{self.main_directory}/{target}"
        if if_exists and not os.path.exists(target):
            return
        self._depth += 1
        if self._depth > 20:  # Exim has no limit but would run out of file descriptors
            raise ConfigError(".include nested too deeply", path, number)
        try:
            with open(target, encoding="utf-8", errors="surrogateescape") as f:
                raw = f.read()
        except OSError:
            raise ConfigError(f"failed to open included configuration file {target}", path, number) from None
        self.listing.append(f'# {number} "{path}"')
        self._read(target, raw)
        self.listing.append(f'# {number} "{path}"')
        self._depth -= 1

    def _logical(self, text: str, path: str, number: int) -> None:
        self.listing.append(text)
        line = Line(path, number, text)
        if text[:6].lower() == "begin ":
            self._section = text[6:].strip().lower()
        elif self._is_definition(text):
            line.is_macro = True
            try:
                self.macros.define_from_line(text)
            except ConfigError as exc:
                raise ConfigError(exc.message, path, number) from None
        self.lines.append(line)

    def _is_definition(self, text: str) -> bool:
        """In the main section any line starting in upper case; in ACL and driver sections `NAME =`."""
        if not self._section:
            return text[0].isupper()
        if self._section.rstrip("s") in ("acl", "router", "transport", "authenticator"):
            m = re.match(r"([A-Za-z][A-Za-z0-9_]*)\s*=", text)
            return bool(m) and text[0].isupper()
        return False


def unquote(value: str) -> str:
    """A value in double quotes has its escapes interpreted and the quotes removed (no errors)."""
    if len(value) >= 2 and value.startswith('"') and value.endswith('"'):
        from pyxim.config.options import read_string

        try:
            return read_string("", value)
        except ConfigError:
            return value
    return value

"""The lexical layer of Exim's runtime configuration: lines, macros, directives.

Turns a file into logical lines (each with its file and line number):
comments and blank lines dropped, backslash continuations joined, `.include`
and `.include_if_exists` followed, `.ifdef`/`.ifndef`/`.elifdef`/
`.elifndef`/`.else`/`.endif` applied, macro definitions recorded and macros
substituted. What the lines mean is parse.py's business.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from pyxim.errors import ConfigError

MACRO_DEF = re.compile(r"([A-Z][A-Za-z0-9_]*)\s*(==?)\s*(.*)$", re.S)
_NAME_CHAR = re.compile(r"[A-Za-z0-9_]")


@dataclass(slots=True)
class Line:
    file: str
    number: int
    text: str


class Macros:
    """Macro table in definition order; substitution as Exim does it."""

    def __init__(self, initial: dict[str, str] | None = None) -> None:
        self.values: dict[str, str] = {}
        self.from_command_line: set[str] = set()
        for name, value in (initial or {}).items():
            self.values[name] = value
            self.from_command_line.add(name)

    def define(self, name: str, value: str, redefine: bool, file: str | None = None, line: int | None = None) -> None:
        if name in self.from_command_line:
            return  # -D on the command line wins over the file
        if name in self.values and not redefine:
            raise ConfigError(f'macro "{name}" is already defined (use "==" if you want to redefine it)')
        self.values[name] = value

    def define_from_line(self, text: str) -> str:
        m = MACRO_DEF.match(text.strip())
        if not m:
            raise ConfigError("malformed macro definition")
        name, op, value = m.groups()
        # -be input may redefine freely (the config file already loaded)
        del op
        self.define(name, self.substitute(value.strip()), redefine=True)
        return name

    def substitute(self, text: str) -> str:
        if not self.values or not any(ch.isupper() for ch in text):
            return text
        names = sorted(self.values, key=len, reverse=True)
        out: list[str] = []
        i = 0
        n = len(text)
        while i < n:
            ch = text[i]
            if ch.isupper() and (i == 0 or not _NAME_CHAR.match(text[i - 1])):
                for name in names:
                    if text.startswith(name, i):
                        out.append(self.values[name])
                        i += len(name)
                        break
                else:
                    out.append(ch)
                    i += 1
                continue
            out.append(ch)
            i += 1
        return "".join(out)


class Reader:
    def __init__(self, macros: Macros) -> None:
        self.macros = macros
        self.lines: list[Line] = []
        self.depth = 0

    def read_file(self, path: str, must_exist: bool = True, from_line: Line | None = None) -> None:
        self.depth += 1
        if self.depth > 20:
            raise ConfigError(".include nested too deeply", from_line.file if from_line else path,
                              from_line.number if from_line else None)
        try:
            with open(path, encoding="utf-8", errors="surrogateescape") as f:
                raw_lines = f.read().split("\n")
        except OSError:
            self.depth -= 1
            if not must_exist:
                return
            if from_line is not None:
                raise ConfigError(f"failed to open included configuration file {path}", from_line.file,
                                  from_line.number) from None
            raise ConfigError(f"configuration file {path} not found", path) from None
        # conditional state: list of (active, taken_already, parent_active)
        stack: list[tuple[bool, bool]] = []
        active = True
        i = 0
        total = len(raw_lines)
        while i < total:
            number = i + 1
            text = raw_lines[i].strip()
            i += 1
            # backslash continuation; comment lines inside a continuation are skipped
            while text.endswith("\\") and i < total:
                nxt = raw_lines[i].strip()
                i += 1
                if nxt.startswith("#"):
                    continue
                text = text[:-1] + nxt
            if not text or text.startswith("#"):
                continue
            if text.startswith("."):
                word, _, arg = text.partition(" ")
                arg = arg.strip()
                here = Line(path, number, text)
                if word in (".ifdef", ".ifndef"):
                    defined = self.macros.substitute(arg) != arg or arg in self.macros.values
                    cond = defined if word == ".ifdef" else not defined
                    stack.append((active, cond and active))
                    active = active and cond
                    continue
                if word in (".elifdef", ".elifndef", ".else"):
                    if not stack:
                        raise ConfigError(f"{word} without matching .ifdef", path, number)
                    parent, taken = stack[-1]
                    if word == ".else":
                        cond = True
                    else:
                        defined = arg in self.macros.values or self.macros.substitute(arg) != arg
                        cond = defined if word == ".elifdef" else not defined
                    active = parent and not taken and cond
                    stack[-1] = (parent, taken or active)
                    continue
                if word == ".endif":
                    if not stack:
                        raise ConfigError(".endif without matching .ifdef", path, number)
                    active = stack.pop()[0]
                    continue
                if not active:
                    continue
                if word in (".include", ".include_if_exists"):
                    target = self.macros.substitute(arg)
                    if not target.startswith("/"):
                        target = os.path.join(os.path.dirname(os.path.abspath(path)), target)
                    self.read_file(target, must_exist=(word == ".include"), from_line=here)
                    continue
                raise ConfigError(f'unknown directive "{word}"', path, number)
            if not active:
                continue
            m = MACRO_DEF.match(text)
            if m and not text.lower().startswith("begin "):
                name, op, value = m.groups()
                try:
                    self.macros.define(name, self.macros.substitute(value.strip()), redefine=(op == "=="))
                except ConfigError as exc:
                    raise ConfigError(exc.message) from None
                continue
            self.lines.append(Line(path, number, self.macros.substitute(text)))
        if stack:
            last = total - 1 if raw_lines and raw_lines[-1] == "" else total
            raise ConfigError("Unexpected end of configuration file: .endif missing", path, last)
        self.depth -= 1


def unquote(value: str) -> str:
    """A value in double quotes has its escapes interpreted and the quotes removed."""
    if len(value) >= 2 and value.startswith('"') and value.endswith('"'):
        from pyxim.expand.parser import interpret_escape

        inner = value[1:-1]
        out: list[str] = []
        i = 0
        while i < len(inner):
            if inner[i] == "\\" and i + 1 < len(inner):
                ch, i = interpret_escape(inner, i)
                out.append(ch)
            else:
                out.append(inner[i])
                i += 1
        return "".join(out)
    return value

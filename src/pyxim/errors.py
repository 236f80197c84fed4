"""Errors a user can read.

Nothing reaches a user as a Python traceback: every failure is one of these,
carrying Exim's wording (and, for configuration errors, the file and line).
"""

from __future__ import annotations


class PyximError(Exception):
    """Base class for every error pyxim reports to a user."""


class ConfigError(PyximError):
    """A configuration error, located at a file and line when it has one."""

    def __init__(self, message: str, file: str | None = None, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line

    def __str__(self) -> str:
        # Exim: "Exim configuration error in line 3 of /etc/exim.conf:\n  <message>"
        if self.file is not None and self.line is not None:
            return f"Exim configuration error in line {self.line} of {self.file}:\n  {self.message}"
        if self.file is not None:
            return f"Exim configuration error in {self.file}:\n  {self.message}"
        return f"Exim configuration error:\n  {self.message}"


class ExpansionError(PyximError):
    """A string expansion failed; `message` is Exim's expand_string_message."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ForcedFail(ExpansionError):
    """A forced failure (`fail` in ${if}/${lookup}, a failed ${acl}, …).

    Callers that treat forced failure differently from an error (Exim's
    f.expand_string_forcedfail) catch this subclass first.
    """


class LookupDefer(ExpansionError):
    """A lookup could not complete (DNS timeout, unreachable server…).

    Exim's search_find_defer: the caller usually turns this into a temporary error.
    """


class TaintError(ExpansionError):
    """Tainted data was about to be used where Exim refuses it (file names, commands)."""

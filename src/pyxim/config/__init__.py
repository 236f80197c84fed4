"""The runtime configuration: load_config() reads an Exim-style file into a Config.

    config = load_config("/etc/exim4/exim4.conf", {"MACRO": "value"})

Layers: syntax.py (lines, macros, .include/.ifdef), options.py (typed
values), main_table.py and the driver packages (option tables),
sections.py (what the lines mean), printing.py (-bP, -bV). Errors are
ConfigError with the file and line, worded as Exim words them, with a
suggestion where pyxim can make one.
"""

from __future__ import annotations

import os
import socket
from importlib import resources

from pyxim.config.model import Config
from pyxim.config.options import OptionDef
from pyxim.config.syntax import Macros, Reader
from pyxim.errors import ConfigError


def main_options() -> dict[str, OptionDef]:
    """Every main option by name (sorted), hidden synonyms included."""
    from pyxim.config.main_table import MAIN_TABLE

    return MAIN_TABLE


def default_config_path() -> str:
    return str(resources.files("pyxim").joinpath("defaults", "default.conf"))


def load_config(path: str | None, macros: dict[str, str] | None = None) -> Config:
    """Read a configuration file (None: the embedded default) into a Config."""
    from pyxim.config.sections import read_sections

    filename = path or default_config_path()
    table = Macros(macros)
    config = Config(filename=os.path.abspath(filename) if path is None else filename, macro_table=table)
    main = main_options()
    for name, opt in main.items():
        if not opt.alias_of:
            config.main[name] = opt.default
    reader = Reader(table, os.path.dirname(filename) or ".")
    try:
        reader.read_file(filename)
    except ConfigError as exc:
        if exc.file is None and exc.message.startswith("failed to open configuration file"):
            raise ConfigError(exc.message) from None
        raise
    config.listing = reader.listing
    read_sections(reader.lines, config, main)
    _settle_main(config)
    _check(config)
    return config


def _settle_main(config: Config) -> None:
    """What Exim adjusts after reading the main section (readconf_main)."""
    main = config.main
    if main.get("timezone") == "":
        main["timezone"] = None
    if int(main.get("retry_interval_max") or 0) > 86400:
        main["retry_interval_max"] = 86400
    if int(main.get("remote_max_parallel") or 0) <= 0:
        main["remote_max_parallel"] = 1
    if main.get("local_sender_retain") and main.get("local_from_check"):
        raise ConfigError(
            "both local_from_check and local_sender_retain are set; this combination is not allowed"
        )


def primary_hostname() -> str:
    """The host's name as Exim finds it when primary_hostname is unset: uname, made fully qualified."""
    name = socket.gethostname()
    if "." not in name:
        try:
            name = socket.getaddrinfo(name, None, flags=socket.AI_CANONNAME)[0][3] or name
        except OSError:
            pass
    return name


def _check(config: Config) -> None:
    from pyxim import logselector

    try:
        logselector.parse(str(config.main.get("log_selector") or ""))
    except ConfigError as exc:
        raise ConfigError(exc.message) from None
    # A router naming a transport that does not exist is not an error here: Exim finds out when it routes.


__all__ = ["Config", "ConfigError", "load_config", "main_options"]

"""Driver option tables, found by Exim's driver names.

Each router, transport and authenticator module registers its private
options; the generic options of each kind live in that kind's package
(pyxim.routers, pyxim.transports, pyxim.auth). A later module adds a driver
(`driver = queuefile`) by calling register() when it is imported.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from pyxim.config.options import OptionDef

PACKAGES = {"router": "pyxim.routers", "transport": "pyxim.transports", "authenticator": "pyxim.auth"}

_PRIVATE: dict[tuple[str, str], dict[str, OptionDef]] = {}
_GENERIC_DEFAULTS: dict[tuple[str, str], dict[str, object]] = {}
_MERGED: dict[tuple[str, str], dict[str, OptionDef]] = {}
_INIT: dict[tuple[str, str], Callable[[dict[str, object], set[str]], None]] = {}


def register(
    kind: str,
    driver: str,
    options: list[OptionDef] | dict[str, OptionDef],
    generic_defaults: dict[str, object] | None = None,
    init: Callable[[dict[str, object], set[str]], None] | None = None,
) -> None:
    """Make `driver = NAME` known for routers, transports or authenticators.

    options: the driver's private options; generic_defaults: where this driver
    starts a generic option from another default (accept's log_as_local);
    init(options, explicit): settles defaults that depend on other options once
    an instance is read (explicit: the names the configuration set).
    """
    if kind not in PACKAGES:
        raise ValueError(f"unknown driver kind {kind!r}")
    values = options.values() if isinstance(options, dict) else options
    _PRIVATE[(kind, driver)] = {o.name: o for o in values}
    _GENERIC_DEFAULTS[(kind, driver)] = dict(generic_defaults or {})
    if init is not None:
        _INIT[(kind, driver)] = init
    else:
        _INIT.pop((kind, driver), None)
    _MERGED.pop((kind, driver), None)


def _load(kind: str) -> None:
    importlib.import_module(PACKAGES[kind])  # its modules register themselves


def generic_options(kind: str) -> dict[str, OptionDef]:
    """The options every driver of this kind takes (without `driver` itself)."""
    module = importlib.import_module(PACKAGES[kind])
    return {o.name: o for o in module.GENERIC_OPTIONS}


def generic_option_names(kind: str) -> frozenset[str]:
    """Names Exim lists first in -bP (generic ones), `driver` included."""
    return frozenset(generic_options(kind)) | {"driver"}


def options_for(kind: str, driver: str) -> dict[str, OptionDef] | None:
    """Generic and private options of one driver, or None when no such driver exists."""
    _load(kind)
    key = (kind, driver)
    if key not in _PRIVATE:
        return None
    if key not in _MERGED:
        merged = generic_options(kind)
        for name, default in _GENERIC_DEFAULTS[key].items():
            o = merged[name]
            merged[name] = OptionDef(o.name, o.kind, default, o.hidden, o.alias_of, o.deprecated, o.repeat)
        merged.update(_PRIVATE[key])
        _MERGED[key] = merged
    return _MERGED[key]


def init_instance(kind: str, driver: str, options: dict[str, object], explicit: set[str]) -> None:
    """Run the driver's init(), if it has one."""
    init = _INIT.get((kind, driver))
    if init is not None:
        init(options, explicit)


def private_option_names(kind: str, driver: str) -> frozenset[str]:
    _load(kind)
    return frozenset(_PRIVATE.get((kind, driver), {}))


def drivers_of(kind: str) -> list[str]:
    _load(kind)
    return sorted(d for k, d in _PRIVATE if k == kind)

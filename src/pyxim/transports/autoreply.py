"""The autoreply transport: its option table (Exim 4.96 names, types and defaults)."""

from __future__ import annotations

from pyxim.config.drivers import register
from pyxim.config.options import OptionDef, opt

OPTIONS: list[OptionDef] = [
    opt("bcc"),
    opt("cc"),
    opt("file"),
    opt("file_expand", "bool", False),
    opt("file_optional", "bool", False),
    opt("from"),
    opt("headers"),
    opt("log"),
    opt("mode", "octint", 384),
    opt("never_mail"),
    opt("once"),
    opt("once_file_size", "int", 0),
    opt("once_repeat"),
    opt("reply_to"),
    opt("return_message", "bool", False),
    opt("subject"),
    opt("text"),
    opt("to"),
]

register("transport", "autoreply", OPTIONS)

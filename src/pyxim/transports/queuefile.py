"""The queuefile transport (Exim's experimental one): its option table.

It copies the spool files into `directory`; the generic transport options
are accepted and ignored, as in Exim.
"""

from __future__ import annotations

from pyxim.config.drivers import register
from pyxim.config.options import OptionDef, opt

OPTIONS: list[OptionDef] = [
    opt("directory"),
]

register("transport", "queuefile", OPTIONS)

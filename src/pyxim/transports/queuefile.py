"""The queuefile transport (Exim's experimental one): its option table.

It copies the spool files into `directory`; the generic transport options
are accepted and ignored, as in Exim.
"""

from __future__ import annotations

import os
import shutil

from pyxim.config.drivers import register
from pyxim.config.options import OptionDef, opt
from pyxim.delivery import DeliveryResult, TransportCall, transport
from pyxim.errors import ExpansionError
from pyxim.expand import expand_string
from pyxim.expand.taint import is_tainted

OPTIONS: list[OptionDef] = [
    opt("directory"),
]

register("transport", "queuefile", OPTIONS)


@transport("queuefile")
def queuefile_deliver(call: TransportCall) -> DeliveryResult:
    """Copy the message's -H and -D files, unchanged, into `directory` (hard links when they can be)."""
    name = call.transport.name
    option = call.transport.options.get("directory")
    if not option:
        return DeliveryResult("defer", f"{name} transport: directory not set")
    try:
        directory = expand_string(str(option), call.ctx)
    except ExpansionError as exc:
        return DeliveryResult("defer", f"Expansion of \"{option}\" (directory for {name} transport) failed: "
                                       f"{exc.message}")
    if is_tainted(directory):
        return DeliveryResult("defer", f"Tainted '{directory}' (file or directory name for {name} transport) "
                                       "not permitted")
    if not directory.startswith("/"):
        return DeliveryResult("defer", f"{name} transport directory: '{directory}' is not absolute")
    if not os.path.isdir(directory):
        return DeliveryResult("defer", f"{name} transport: failed to open directory {directory}")
    for source in call.spool_files:
        if not source:
            return DeliveryResult("defer", f"{name} transport: spool files not known")
        target = os.path.join(directory, os.path.basename(source))
        try:
            if os.path.exists(target):
                os.unlink(target)
            try:
                os.link(source, target)
            except OSError:
                shutil.copy2(source, target)
        except OSError as exc:
            return DeliveryResult("defer", f"{name} transport: failed to copy {source} to {directory}: "
                                           f"{exc.strerror}")
    return DeliveryResult("ok")

"""Exim's message commands: -Mf, -Mt, -Mrm, -Mg, -Mar, -Mmd, -Mvh, -Mvb.

Each works on the spool under the message's lock (as a delivery would) and
answers with Exim's own sentences; each change is logged "… by <user>".
"""

from __future__ import annotations

import os
import pwd
import time
from collections.abc import Callable

from pyxim.config.model import Config
from pyxim.delivery.engine import _locked
from pyxim.spool.format import Recipient, SpoolFormatError, SpoolMessage
from pyxim.spool.store import Spool

LogFunc = Callable[[str], None]


def _user() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


def _read(spool: Spool, message_id: str) -> SpoolMessage | None:
    try:
        return spool.read(message_id)[0]
    except (OSError, SpoolFormatError):
        return None


def message_command(
    config: Config, spool: Spool, command: str, message_id: str, args: list[str], log: LogFunc
) -> tuple[str, int]:
    """Run one -M command on one message: (what to print, exit status)."""
    hpath, dpath = spool.paths(message_id)
    if command == "-Mvh":
        try:
            return hpath.read_text("utf-8", "surrogateescape"), 0
        except OSError:
            return f"Spool read error for {message_id}-H: No such file or directory\n", 1
    if command == "-Mvb":
        try:
            return dpath.read_text("utf-8", "surrogateescape"), 0
        except OSError:
            return f"Failed to open {message_id}-D: No such file or directory\n", 1
    if command == "-Mvl":
        for path in (spool.directory / "msglog" / message_id, spool.directory / "msglog" / message_id[5] / message_id):
            try:
                return path.read_text("utf-8", "surrogateescape"), 0
            except OSError:
                continue
        return f"Failed to open msglog file for {message_id}: No such file or directory\n", 1
    if command == "-Mrm":
        return _remove(spool, message_id, log)
    if not dpath.exists():
        return f"Spool data file for {message_id} does not exist\n", 1
    with _locked(spool, message_id) as mine:
        if not mine:
            return f"Spool file is locked (another process is handling this message): {message_id}\n", 1
        message = _read(spool, message_id)
        if message is None:
            return f"Spool read error for {message_id}-H: No such file or directory\n", 1
        user = _user()
        if command == "-Mf":
            if "frozen" in message.options:
                return f"Message {message_id} is already frozen\n", 1
            message.options.pop("manual_thaw", None)
            message.options["frozen"] = str(int(time.time()))
            spool.update_header(message)
            log(f"{message_id} frozen by {user}")
            return f"Message {message_id} is now frozen\n", 0
        if command == "-Mt":
            if "frozen" not in message.options:
                return f"Message {message_id} is not frozen\n", 1
            del message.options["frozen"]
            message.options["manual_thaw"] = None
            spool.update_header(message)
            log(f"{message_id} unfrozen by {user}")
            return f"Message {message_id} is no longer frozen\n", 0
        if command in ("-Mar", "-Mmd"):
            if not args:
                return f"exim: no recipients given after {command}\n", 1
            for address in args:
                if command == "-Mar":
                    message.recipients.append(Recipient(address))
                    log(f"{message_id} recipient <{address}> added by {user}")
                elif any(r.address == address for r in message.recipients):
                    if address not in message.non_recipients:
                        message.non_recipients.append(address)
                    log(f"{message_id} address <{address}> marked delivered by {user}")
                else:
                    return (f"Message {message_id} - error while marking as delivered:\n"
                            f"  {address} is not a recipient: message not updated\n", 1)
            spool.update_header(message)
            return f"Message {message_id} has been modified\n", 0
        if command == "-Mg":
            body = spool.read(message_id)[1]
            pending = [r.address for r in message.recipients if r.address not in message.non_recipients]
            log(f"{message_id} cancelled by {user}")
            if pending and message.sender:
                from pyxim.delivery.bounce import send_bounce

                send_bounce(config, spool, message, body, [(a, "", a) for a in pending], log)
            spool.remove(message_id)
            log(f"{message_id} Completed")
            return "", 0
    return f"exim: unknown message command {command}\n", 1


def _remove(spool: Spool, message_id: str, log: LogFunc) -> tuple[str, int]:
    hpath, dpath = spool.paths(message_id)
    if not hpath.exists() and not dpath.exists():
        return (f"Spool data file for {message_id} does not exist\nContinuing, to ensure all files removed\n"
                f"Spool read error for {message_id}-H: No such file or directory\n"
                f"Continuing to ensure all files removed\nMessage {message_id} has been removed or did not exist\n",
                1)
    with _locked(spool, message_id) as mine:
        if not mine and dpath.exists():
            return f"Spool file is locked (another process is handling this message): {message_id}\n", 1
        spool.remove(message_id)
    log(f"{message_id} removed by {_user()}")
    log(f"{message_id} Completed")
    return f"Message {message_id} has been removed\n", 0

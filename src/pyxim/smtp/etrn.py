"""What an accepted ETRN runs: smtp_etrn_command when it is set (split into arguments first, then each
expanded with $domain set to the ETRN argument — no shell, so the client's text never reaches one),
else a queue run for the domain after "#" (`pyxim -R <domain>`, Exim's `exim -R`). The command runs
in the background; with smtp_etrn_serialize (the default) only one run per argument at a time, and
another ETRN for the same argument meanwhile gets 458 "Already processing"."""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import sys
import threading

from pyxim.config.model import Config
from pyxim.errors import ExpansionError
from pyxim.expand import ExpansionContext, expand_string
from pyxim.expand.taint import Tainted


def etrn_argv(config: Config, ctx: ExpansionContext, argument: str, command: str) -> list[str]:
    """The program and arguments; raises ExpansionError."""
    if not command:
        # "#domain": a queue run for that domain, with this configuration
        argv = [sys.executable, "-m", "pyxim"]
        if config.filename:
            argv += ["-C", config.filename]
        return [*argv, "-R", argument[1:]]
    from pyxim.transports.pipe import split_command

    saved = ctx.variables.get("domain")
    ctx.variables["domain"] = Tainted(argument)
    try:
        return [str(expand_string(word, ctx)) for word in split_command(command)]
    finally:
        if saved is None:
            ctx.variables.pop("domain", None)
        else:
            ctx.variables["domain"] = saved


def run_etrn(config: Config, ctx: ExpansionContext, argument: str, command: str) -> tuple[str, str]:
    """Start the command; returns the reply (code, text)."""
    try:
        argv = etrn_argv(config, ctx, argument, command)
    except ExpansionError as exc:
        return "458", f"Internal failure: {exc}"  # Exim: 458 Internal failure
    if not argv or not argv[0]:
        return "458", "Internal failure"
    spool = str(config.main.get("spool_directory") or "")
    held = contextlib.ExitStack()  # the serialization slot, kept until the command ends
    if config.main.get("smtp_etrn_serialize", True):
        from pyxim.delivery.serialize import slot

        # the key names the argument by a hash: a client's text never becomes a file name
        key = "etrn-" + hashlib.sha256(argument.encode("utf-8", "surrogateescape")).hexdigest()[:24]
        if not held.enter_context(slot(spool, key, 1)):
            held.close()
            return "458", f"Already processing {argument}"
    try:
        child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True,
                                 cwd=spool if os.path.isdir(spool) else "/")
    except OSError:
        held.close()
        return "458", "Unable to fork process"

    def reap() -> None:
        child.wait()
        held.close()  # the next ETRN for this argument may run

    threading.Thread(target=reap, name="etrn", daemon=True).start()
    return "250", "OK"

"""The pipe transport: its option table (Exim 4.96 names, types and defaults)."""

from __future__ import annotations

from pyxim.config.drivers import register
from pyxim.config.options import OptionDef, opt

MBOX_FROM_LINE = "From ${if def:return_path{$return_path}{MAILER-DAEMON}} ${tod_bsdinbox}\n"

OPTIONS: list[OptionDef] = [
    opt("allow_commands"),
    opt("batch_id"),
    opt("batch_max", "int", 1),
    opt("check_string"),  # default settled by init()
    opt("command"),
    opt("environment"),
    opt("escape_string"),
    opt("force_command", "bool", False),
    opt("freeze_exec_fail", "bool", False),
    opt("freeze_signal", "bool", False),
    opt("ignore_status", "bool", False),
    opt("log_defer_output", "bool", False),
    opt("log_fail_output", "bool", False),
    opt("log_output", "bool", False),
    opt("max_output", "mkint", 20480),
    opt("message_prefix"),
    opt("message_suffix"),
    opt("path", "string", "/bin:/usr/bin"),
    opt("permit_coredump", "bool", False),
    opt("pipe_as_creator", "bool", False),
    opt("restrict_to_path", "bool", False),
    opt("return_fail_output", "bool", False),
    opt("return_output", "bool", False),
    opt("temp_errors", "string", "75:73"),
    opt("timeout", "time", 3600),
    opt("timeout_defer", "bool", False),
    opt("umask", "octint", 18),
    opt("use_bsmtp", "bool", False),
    opt("use_crlf", "bool", False),
    opt("use_shell", "bool", False),
]


def init(options: dict[str, object], explicit: set[str]) -> None:
    """Defaults that depend on use_bsmtp, as Exim's pipe transport settles them."""
    if options.get("use_bsmtp"):
        defaults: dict[str, object] = {
            "check_string": ".",
            "escape_string": "..",
            "message_prefix": "",
            "message_suffix": "",
        }
    else:
        defaults = {"message_prefix": MBOX_FROM_LINE, "message_suffix": "\n"}
    for name, value in defaults.items():
        if name not in explicit:
            options[name] = value
    if options.get("use_bsmtp"):  # batched SMTP needs dot-stuffing whatever was set
        options["check_string"], options["escape_string"] = ".", ".."


register("transport", "pipe", OPTIONS, init=init)

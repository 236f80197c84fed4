"""The appendfile transport: its option table (Exim 4.96 names, types and defaults)."""

from __future__ import annotations

from pyxim.config.drivers import register
from pyxim.config.options import OptionDef, opt

MBOX_FROM_LINE = "From ${if def:return_path{$return_path}{MAILER-DAEMON}} ${tod_bsdinbox}\n"

OPTIONS: list[OptionDef] = [
    opt("allow_fifo", "bool", False),
    opt("allow_symlink", "bool", False),
    opt("batch_id"),
    opt("batch_max", "int", 1),
    opt("check_group", "bool", False),
    opt("check_owner", "bool", True),
    opt("check_string"),  # default settled by init()
    opt("create_directory", "bool", True),
    opt("create_file", "string", "anywhere"),
    opt("directory"),
    opt("directory_file", "string", "q${base62:$tod_epoch}-$inode"),
    opt("directory_mode", "octint", 448),
    opt("escape_string"),
    opt("file"),
    opt("file_format"),
    opt("file_must_exist", "bool", False),
    opt("lock_fcntl_timeout", "time", 0),
    opt("lock_flock_timeout", "time", 0),
    opt("lock_interval", "time", 3),
    opt("lock_retries", "int", 10),
    opt("lockfile_mode", "octint", 384),
    opt("lockfile_timeout", "time", 1800),
    opt("mailbox_filecount"),
    opt("mailbox_size"),
    opt("maildir_format", "bool", False),
    opt("maildir_quota_directory_regex", "string", "^(?:cur|new|\\..*)$"),
    opt("maildir_retries", "int", 10),
    opt("maildir_tag"),
    opt("maildir_use_size_file", "expand_bool", False),
    opt("maildirfolder_create_regex"),
    opt("mailstore_format", "bool", False),
    opt("mailstore_prefix"),
    opt("mailstore_suffix"),
    opt("mbx_format", "bool", False),
    opt("message_prefix"),
    opt("message_suffix"),
    opt("mode", "octint", 384),
    opt("mode_fail_narrower", "bool", True),
    opt("notify_comsat", "bool", False),
    opt("quota"),
    opt("quota_directory"),
    opt("quota_filecount"),
    opt("quota_is_inclusive", "bool", True),
    opt("quota_size_regex"),
    opt("quota_warn_message"),
    opt("quota_warn_threshold"),
    opt("use_bsmtp", "bool", False),
    opt("use_crlf", "bool", False),
    opt("use_fcntl_lock", "bool", True),
    opt("use_flock_lock", "bool", False),
    opt("use_lockfile", "bool", True),
    opt("use_mbx_lock", "bool", False),
    # Exim 4.96 lists this internal entry too (the expansion behind maildir_use_size_file)
    opt("*expand_maildir_use_size_file"),
]


def init(options: dict[str, object], explicit: set[str]) -> None:
    """Defaults that depend on the delivery format, as Exim's appendfile settles them."""
    if options.get("use_bsmtp"):
        defaults: dict[str, object] = {
            "check_string": ".",
            "escape_string": "..",
            "message_prefix": "",
            "message_suffix": "",
        }
    elif options.get("file") and not options.get("maildir_format") and not options.get("mailstore_format"):
        defaults = {
            "check_string": "From ",
            "escape_string": ">From ",
            "message_prefix": MBOX_FROM_LINE,
            "message_suffix": "\n",
        }
    else:
        defaults = {}
    for name, value in defaults.items():
        if name not in explicit:
            options[name] = value
    if options.get("use_bsmtp"):  # batched SMTP needs dot-stuffing whatever was set
        options["check_string"], options["escape_string"] = ".", ".."
    locks = ("use_fcntl_lock", "use_flock_lock", "use_lockfile", "use_mbx_lock")
    if options.get("mbx_format") and not explicit.intersection(locks):
        options["use_lockfile"], options["use_mbx_lock"] = False, True


register("transport", "appendfile", OPTIONS, init=init)

"""The appendfile transport: its option table (Exim 4.96 names, types and defaults) and its delivery."""

from __future__ import annotations

import contextlib
import errno as _errno
import fcntl
import os
import re
import stat
import threading
import time

from pyxim.config.drivers import register
from pyxim.config.options import OptionDef, opt
from pyxim.delivery import DeliveryResult, TransportCall, transport
from pyxim.delivery.write import TransportWriteError, expand_affix, parse_size, spec_for, write_message
from pyxim.errors import ExpansionError, ForcedFail
from pyxim.expand import expand_string
from pyxim.expand.taint import is_tainted
from pyxim.transports.local import (
    ERRNO_BADMODE,
    ERRNO_BADUGID,
    ERRNO_EXIMQUOTA,
    ERRNO_EXPANDFAIL,
    ERRNO_INODECHANGED,
    ERRNO_LOCKFAILED,
    ERRNO_NOTABSOLUTE,
    ERRNO_NOTREGULAR,
    ERRNO_TAINT,
    LocalResult,
    delivery_ids,
    os_error,
    primary_hostname,
    run_as,
)

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
    elif not options.get("directory") and not options.get("maildir_format") and not options.get("mailstore_format"):
        # a file (or no path yet: address_file gets one from a redirection) is an mbox
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


# -- delivery -------------------------------------------------------------------
#
# mbox (`file`), maildir (`directory` + maildir_format), mailstore (`directory` +
# mailstore_format) and one file per message (`directory` alone), with Exim's checks,
# locks and wording (appendfile.c); quota_warn_threshold/quota_warn_message.
# Not done yet: mbx_format, batch_max > 1 (use_bsmtp: one envelope per address), quota_filecount, maildirsize files,
# quota_size_regex, notify_comsat, check_group on the lock file, allow_fifo.


class _Refused(Exception):
    """Ends a delivery attempt with a ready result."""

    def __init__(self, result: LocalResult) -> None:
        super().__init__(result.message)
        self.result = result


@transport("appendfile")
def appendfile_deliver(call: TransportCall) -> DeliveryResult:
    """The appendfile transport: the entry point the delivery engine calls."""
    threshold = _warn_threshold(call) if call.transport.options.get("quota_warn_threshold") else 0
    where = _mailbox(call) if threshold else None
    regex = call.transport.options.get("maildir_quota_directory_regex") \
        if call.transport.options.get("maildir_format") else None
    before = _mailbox_size(*where, regex) if where else 0
    result = run_as(call, lambda: _deliver(call))
    if result.status == "ok":
        result.log_address = file_item_path(call)
    if where and result.status == "ok":
        after = _mailbox_size(*where, regex)
        if before <= threshold < after:
            _warn(call, result)
    return result


def file_item_path(call: TransportCall) -> str:
    """A file item from redirection that the transport's `file` option sends elsewhere: where it goes,
    which Exim's delivery line names ("" otherwise)."""
    # a Sieve folder ("inbox", "lists.x") is a file item too, though not an absolute path
    file_item = call.address.startswith("/") or call.address == call.ctx.variables.get("address_file")
    if not file_item or not call.transport.options.get("file"):
        return ""
    mailbox = _mailbox(call)
    return mailbox[0] if mailbox is not None else ""


def _warn_threshold(call: TransportCall) -> int:
    """quota_warn_threshold in bytes: a size, or a percentage of the quota (no quota: no warning)."""
    option = str(call.transport.options.get("quota_warn_threshold") or "")
    try:
        text = expand_string(option, call.ctx).strip()
    except ExpansionError:
        return 0
    if text.endswith("%"):
        try:
            quota = _quota(call)
        except _Refused:
            return 0
        size = parse_size(text[:-1].strip())
        return quota * size // 100 if quota and size else 0
    return parse_size(text) or 0


def _mailbox(call: TransportCall) -> tuple[str, bool] | None:
    """The mailbox the delivery writes to (a file, or a directory), for the size before and after."""
    opts = call.transport.options
    try:
        if opts.get("file"):
            return _path(call, opts["file"]), False
        if opts.get("directory"):
            return _path(call, opts["directory"]), True
    except _Refused:
        return None
    address_file = str(call.ctx.variables.get("address_file") or "")
    return (address_file.rstrip("/") or "/", address_file.endswith("/")) if address_file else None


def _mailbox_size(path: str, is_dir: bool, regex: str | None = None) -> int:
    if is_dir:
        return _dir_size(path, regex)
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _warn(call: TransportCall, result: DeliveryResult) -> None:
    """The delivery took the mailbox over quota_warn_threshold: quota_warn_message goes to the user."""
    from pyxim.delivery.bounce import QUOTA_WARN_MESSAGE, send_quota_warning
    from pyxim.delivery.runner import spool_for

    option = str(call.transport.options.get("quota_warn_message") or QUOTA_WARN_MESSAGE)
    try:
        text = expand_string(option, call.ctx)
    except ExpansionError as exc:
        result.log.append(f"Expansion of {option!r} (quota_warn_message for {call.transport.name} transport) "
                          f"failed: {exc}")
        return
    if call.config is None:
        return
    new_id = send_quota_warning(call.config, spool_for(call.config), call.message, str(text), result.log.append)
    if new_id is not None:
        result.new_messages.append(new_id)


def _deliver(call: TransportCall) -> DeliveryResult:
    opts = call.transport.options
    name = call.transport.name
    try:
        if opts.get("file"):
            path = _path(call, opts["file"])
            is_dir = False
        elif opts.get("directory"):
            path = _path(call, opts["directory"])
            is_dir = True
        else:
            address_file = call.ctx.variables.get("address_file") or ""
            if not address_file:
                return LocalResult(
                    "defer", f"Mandatory file or directory option missing from {name} transport"
                )
            path = address_file
            is_dir = address_file.endswith("/")
            if is_dir:
                path = address_file.rstrip("/") or "/"
            if not os.path.isabs(path):
                raise _Refused(
                    LocalResult(
                        "defer",
                        f'appendfile: file or directory name "{path}" is not absolute',
                        errno=ERRNO_NOTABSOLUTE,
                    )
                )
        if (
            opts.get("maildir_format") or opts.get("mailstore_format") or opts.get("mbx_format")
        ) and not is_dir:
            if opts.get("maildir_format") or opts.get("mailstore_format"):
                fmt = "dir" if opts.get("maildir_format") else "store"
                return LocalResult(
                    "defer", f'mail{fmt}_format requires "directory" to be specified for the {name} transport'
                )
        if opts.get("mbx_format"):
            return LocalResult("defer", f"mbx_format is not supported by pyxim's {name} transport yet")
        if opts.get("mailstore_format"):
            return _deliver_mailstore(call, path)
        if not is_dir:
            return _deliver_mbox(call, path)
        if opts.get("maildir_format"):
            return _deliver_maildir(call, path)
        return _deliver_dirfile(call, path)
    except _Refused as r:
        return r.result


def _path(call: TransportCall, option: str) -> str:
    """The expanded file or directory name; tainted or relative names are refused."""
    name = call.transport.name
    try:
        path = expand_string(option, call.ctx)
    except ForcedFail as e:
        raise _Refused(
            LocalResult(
                "defer",
                f'Expansion of "{option}" (file or directory name for {name} transport) failed: {e}',
                errno=ERRNO_EXPANDFAIL,
            )
        ) from e
    except ExpansionError as e:
        raise _Refused(
            LocalResult(
                "defer",
                f'Expansion of "{option}" (file or directory name for {name} transport) failed: {e}',
                errno=ERRNO_EXPANDFAIL,
            )
        ) from e
    if is_tainted(path):
        raise _Refused(
            LocalResult(
                "defer",
                f"Tainted '{path}' (file or directory name for {name} transport) not permitted",
                errno=ERRNO_TAINT,
            )
        )
    if not path.startswith("/"):
        raise _Refused(
            LocalResult(
                "defer",
                f'appendfile: file or directory name "{path}" is not absolute',
                errno=ERRNO_NOTABSOLUTE,
            )
        )
    return str(path)


def _content(call: TransportCall, where: str) -> tuple[bytes, bytes, bytes]:
    """(prefix, message, suffix) to write, or a deferral with Exim's wording."""
    name = call.transport.name
    try:
        spec = spec_for(call)
    except TransportWriteError as e:
        raise _Refused(
            LocalResult(
                "defer",
                f"failed to expand headers_add or headers_remove while writing to {where}: {e.reason}",
                errno=-25,
            )
        ) from e
    body = write_message(call.message.headers, call.body, spec)
    try:
        prefix = expand_affix(call, "message_prefix")
    except TransportWriteError as e:
        raise _Refused(
            LocalResult(
                "defer",
                f'Expansion of "{e.source}" (prefix for {name} transport) failed',
                errno=ERRNO_EXPANDFAIL,
            )
        ) from e
    try:
        suffix = expand_affix(call, "message_suffix")
    except TransportWriteError as e:
        raise _Refused(
            LocalResult(
                "defer",
                f'Expansion of "{e.source}" (suffix for {name} transport) failed',
                errno=ERRNO_EXPANDFAIL,
            )
        ) from e
    if call.transport.options.get("use_bsmtp"):
        # batched SMTP: the envelope as SMTP commands around the dot-stuffed message
        envelope = f"MAIL FROM:<{call.message.sender}>\nRCPT TO:<{call.address}>\nDATA\n"
        prefix = envelope.encode("utf-8", "surrogateescape") + prefix
        suffix = suffix + b".\n"
    return prefix, body, suffix


def _quota(call: TransportCall) -> int:
    """The quota in bytes (0: none)."""
    option = call.transport.options.get("quota")
    if not option:
        return 0
    name = call.transport.name
    try:
        text = expand_string(option, call.ctx)
    except ExpansionError as e:
        raise _Refused(
            LocalResult(
                "defer", f'Expansion of "{option}" in {name} transport failed: {e}', errno=ERRNO_EXPANDFAIL
            )
        ) from e
    size = parse_size(text)
    if size is None:
        raise _Refused(
            LocalResult("defer", f'Malformed value "{text}" (expansion of "{option}") in {name} transport')
        )
    return size


def _over_quota(where: str) -> LocalResult:
    return LocalResult(
        "defer",
        f"mailbox is full (MTA-imposed quota exceeded while writing to {where})",
        errno=ERRNO_EXIMQUOTA,
    )


def _make_dirs(path: str, mode: int) -> None:
    """mkdir -p with `mode` for each directory created (Exim's directory_make)."""
    if os.path.isdir(path):
        return
    parent = os.path.dirname(path.rstrip("/"))
    if parent and parent != path:
        _make_dirs(parent, mode)
    try:
        os.mkdir(path, mode)
    except FileExistsError:
        return
    os.chmod(path, mode)


def _create_allowed(call: TransportCall, path: str) -> bool:
    """create_file: anywhere, inhome, belowhome or an absolute directory."""
    setting = str(call.transport.options.get("create_file") or "anywhere")
    if setting == "anywhere":
        return True
    base = setting if setting.startswith("/") else call.ctx.variables.get("home") or ""
    if not base:
        return False
    base = base.rstrip("/")
    if not path.startswith(base + "/"):
        return False
    rest = path[len(base) + 1 :]
    if setting == "inhome":
        return "/" not in rest
    return "/../" not in "/" + rest + "/"


# -- mbox ----------------------------------------------------------------------


def _hitch_lock(call: TransportCall, lockname: str) -> tuple[bool, LocalResult | None]:
    """Take `lockname` with Exim's hitching-post dance (create a unique file,
    link it to the lock name, check the link count). (taken?, fatal error)."""
    opts = call.transport.options
    hitch = f"{lockname}.{primary_hostname(call)}.{int(time.time()) & 0xFFFFFFFF:08x}.{os.getpid():08x}"
    tid = threading.get_native_id()
    if tid != os.getpid():  # deliveries in threads of one process need their own posts
        hitch += f".{tid:x}"
    try:
        fd = os.open(hitch, os.O_WRONLY | os.O_CREAT | os.O_EXCL, int(opts.get("lockfile_mode") or 0o600))
    except OSError as e:
        return False, os_error(
            e, f"creating lock file hitching post {hitch} (euid={os.geteuid()} egid={os.getegid()})"
        )
    os.close(fd)
    try:
        try:
            os.link(hitch, lockname)
        except FileExistsError:
            pass
        except OSError:
            pass
        taken = os.stat(hitch).st_nlink == 2
    finally:
        try:
            os.unlink(hitch)
        except OSError:
            pass
    if taken:
        return True, None
    # a stale lock file (older than lockfile_timeout) is removed and the next try may take it
    timeout = int(opts.get("lockfile_timeout") or 0)
    if timeout > 0:
        try:
            st = os.lstat(lockname)
            if time.time() - st.st_mtime > timeout:
                os.unlink(lockname)
        except OSError:
            pass
    return False, None


def _fcntl_lock(call: TransportCall, fd: int) -> bool:
    opts = call.transport.options
    try:
        if opts.get("use_fcntl_lock"):
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if opts.get("use_flock_lock"):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _check_existing(call: TransportCall, path: str, st: os.stat_result, link: str) -> LocalResult | None:
    """Exim's checks on an existing mailbox (ownership, links, type, mode)."""
    opts = call.transport.options
    uid, gid = delivery_ids(call)
    if opts.get("check_owner") and st.st_uid != uid:
        return LocalResult(
            "defer", f"mailbox {path}{link} has wrong uid ({st.st_uid} != {uid})", errno=ERRNO_BADUGID
        )
    if opts.get("check_group") and st.st_gid != gid:
        return LocalResult(
            "defer", f"mailbox {path}{link} has wrong gid ({st.st_gid} != {gid})", errno=ERRNO_BADUGID
        )
    if st.st_nlink != 1 and stat.S_ISREG(st.st_mode):
        return LocalResult(
            "defer", f"mailbox {path}{link} has too many links ({st.st_nlink})", errno=ERRNO_NOTREGULAR
        )
    if not stat.S_ISREG(st.st_mode):
        return LocalResult("defer", f"mailbox {path} is not a regular file", errno=ERRNO_NOTREGULAR)
    mode = int(opts.get("mode") or 0o600)
    have = st.st_mode & 0o7777
    if have != mode:
        if have & ~mode:  # wider: reduce to the configured mode
            try:
                os.chmod(path, mode)
            except OSError as e:
                return os_error(e, f"attempting to chmod mailbox {path}")
        elif opts.get("mode_fail_narrower", True):
            return LocalResult(
                "defer",
                f"mailbox {path} has the wrong mode {have:o} ({mode:o} expected)",
                errno=ERRNO_BADMODE,
            )
    return None


def _open_mailbox(call: TransportCall, path: str) -> tuple[int | None, LocalResult | None]:
    """Open (creating when allowed) the mailbox for appending: (fd, error)."""
    opts = call.transport.options
    mode = int(opts.get("mode") or 0o600)
    link = ""
    try:
        st = os.lstat(path)
    except FileNotFoundError as e:
        if opts.get("file_must_exist"):
            return None, os_error(e, f"mailbox {path} does not exist, but file_must_exist is set")
        if not _create_allowed(call, path):
            return None, os_error(
                e, f"mailbox {path} does not exist, but creation outside the home directory is not permitted"
            )
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, mode)
        except FileExistsError:
            return None, None  # created by someone else meanwhile: try again
        except OSError as e:
            return None, os_error(e, f"while creating mailbox {path}")
        try:
            os.fchmod(fd, mode)
        except OSError as e:
            os.close(fd)
            return None, os_error(e, f"while setting perms on mailbox {path}")
        return fd, None
    except OSError as e:
        return None, os_error(e, f"attempting to stat mailbox {path}")
    if stat.S_ISLNK(st.st_mode):
        if opts.get("check_owner"):
            uid, _ = delivery_ids(call)
            if st.st_uid != uid:
                return None, LocalResult(
                    "defer",
                    f"mailbox {path} (symlink) has wrong uid ({st.st_uid} != {uid})",
                    errno=ERRNO_BADUGID,
                )
        if not opts.get("allow_symlink"):
            return None, LocalResult("defer", f"mailbox {path} is not a regular file", errno=ERRNO_NOTREGULAR)
        link = " (symlink)"
        try:
            st = os.stat(path)
        except OSError as e:
            return None, os_error(e, f"attempting to stat mailbox {path}")
    bad = _check_existing(call, path, st, link)
    if bad is not None:
        return None, bad
    flags = os.O_WRONLY | os.O_APPEND
    if not link:
        flags |= os.O_NOFOLLOW
    try:
        fd = os.open(path, flags)
    except OSError as e:
        return None, os_error(e, f"while opening mailbox {path}")
    fst = os.fstat(fd)
    if fst.st_ino != st.st_ino:
        os.close(fd)
        return None, LocalResult(
            "defer",
            f"opened mailbox {path} inode number changed from {st.st_ino} to {fst.st_ino}",
            errno=ERRNO_INODECHANGED,
        )
    return fd, None


def _deliver_mbox(call: TransportCall, path: str) -> DeliveryResult:
    opts = call.transport.options
    if opts.get("create_directory"):
        parent = os.path.dirname(path)
        if parent and not os.path.isdir(parent) and _create_allowed(call, path):
            try:
                _make_dirs(parent, int(opts.get("directory_mode") or 0o700))
            except OSError as e:
                # Exim's wording: strerror, then the mailbox path (not the directory), then strerror again
                why = os.strerror(e.errno or 0)
                return LocalResult(
                    "defer", f"{why}: failed to create directories for {path}: {why}", errno=e.errno or 0
                )
    prefix, body, suffix = _content(call, path)
    quota = _quota(call)
    lockname = f"{path}.lock"
    use_lockfile = bool(opts.get("use_lockfile"))
    retries = max(int(opts.get("lock_retries") or 0), 1)
    interval = float(opts.get("lock_interval") or 0)
    fd: int | None = None
    lock_held = False
    failed_on = "lock file"
    for attempt in range(retries):
        if attempt:
            time.sleep(interval)
        if use_lockfile:
            taken, err = _hitch_lock(call, lockname)
            if err is not None:
                return err
            if not taken:
                failed_on = "lock file"
                continue
            lock_held = True
        fd, err = _open_mailbox(call, path)
        if err is not None:
            _drop_lockfile(lockname, lock_held)
            return err
        if fd is None:
            _drop_lockfile(lockname, lock_held)
            lock_held = False
            continue
        if _fcntl_lock(call, fd):
            break
        failed_on = "fcntl/flock"
        os.close(fd)
        fd = None
        _drop_lockfile(lockname, lock_held)
        lock_held = False
    if fd is None:
        return LocalResult("defer", f"failed to lock mailbox {path} ({failed_on})", errno=ERRNO_LOCKFAILED)
    try:
        size = os.fstat(fd).st_size
        data = prefix + body + suffix
        if quota and size + len(data) > quota:
            return _over_quota(path)
        try:
            _write_all(fd, data)
            os.fsync(fd)
        except OSError as e:
            try:
                os.ftruncate(fd, size)
            except OSError:
                pass
            if e.errno in (_errno.ENOSPC, _errno.EDQUOT):
                return LocalResult(
                    "defer", f"{os.strerror(e.errno)}: error while writing to {path}", errno=e.errno
                )
            return os_error(e, f"error while writing to {path}")
    finally:
        os.close(fd)
        _drop_lockfile(lockname, lock_held)
    return LocalResult("ok")


def _drop_lockfile(lockname: str, held: bool) -> None:
    if held:
        try:
            os.unlink(lockname)
        except OSError:
            pass


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


# -- maildir and one file per message ------------------------------------------


def _dir_size(path: str, regex: str | None) -> int:
    """Bytes in the files of a maildir (cur, new and the subfolders the regex selects)."""
    total = 0
    pattern = re.compile(regex) if regex else None
    try:
        entries = list(os.scandir(path))
    except OSError:
        return 0
    for entry in entries:
        try:
            if entry.is_dir(follow_symlinks=False):
                if entry.name == "tmp":
                    continue
                if pattern is not None and not pattern.search(entry.name):
                    continue
                total += _dir_size(entry.path, None)
            elif entry.is_file(follow_symlinks=False):
                total += entry.stat(follow_symlinks=False).st_size
        except OSError:
            continue
    return total


def _maildir_tag(call: TransportCall, size: int) -> str:
    option = call.transport.options.get("maildir_tag")
    if not option:
        return ""
    call.ctx.variables["message_size"] = str(size)
    try:
        tag = expand_string(option, call.ctx)
    except ForcedFail:
        return ""
    except ExpansionError as e:
        raise _Refused(
            LocalResult(
                "defer",
                f'Expansion of "{option}" (maildir_tag for {call.transport.name} transport) failed: {e}',
                errno=ERRNO_EXPANDFAIL,
            )
        ) from e
    tag = "".join(c for c in tag if c.isprintable())
    if "/" in tag or not tag:
        return ""
    if tag[0].isalnum():
        tag = ":" + tag
    return tag


def _deliver_maildir(call: TransportCall, path: str) -> DeliveryResult:
    opts = call.transport.options
    dmode = int(opts.get("directory_mode") or 0o700)
    mode = int(opts.get("mode") or 0o600)
    for sub in ("", "/tmp", "/new", "/cur"):
        d = path + sub
        if os.path.isdir(d):
            continue
        if not opts.get("create_directory") or (sub == "" and not _create_allowed(call, path)):
            return LocalResult(
                "defer", f"{os.strerror(_errno.ENOENT)}: while creating file {d}", errno=_errno.ENOENT
            )
        try:
            _make_dirs(d, dmode)
        except OSError as e:
            return os_error(e, f"while creating file {d}")
    regex = opts.get("maildirfolder_create_regex")
    if regex and re.search(str(regex), path) and not os.path.exists(path + "/maildirfolder"):
        try:
            os.close(os.open(path + "/maildirfolder", os.O_WRONLY | os.O_CREAT, mode))
        except OSError as e:
            return os_error(e, f"while creating file {path}/maildirfolder")
    prefix, body, suffix = _content(call, path)
    data = prefix + body + suffix
    host = primary_hostname(call)
    retries = max(int(opts.get("maildir_retries") or 0), 1)
    fd = None
    name = ""
    for attempt in range(retries):
        now = time.time()
        sec, usec = int(now), int((now - int(now)) * 1_000_000)
        name = f"{sec}.M{usec}P{os.getpid()}.{host}"
        try:
            fd = os.open(f"{path}/tmp/{name}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
            break
        except FileExistsError:
            time.sleep(0.001 if attempt < 3 else 2)  # Exim sleeps 2s; a microsecond tick usually suffices
        except OSError as e:
            return os_error(e, f"while creating file {path}/tmp/{name}")
    if fd is None:
        return LocalResult(
            "defer",
            f"{os.strerror(_errno.EEXIST)}: while creating file {path}/tmp/{name}",
            errno=_errno.EEXIST,
        )
    tmpname = f"{path}/tmp/{name}"
    ok = False
    try:
        quota = _quota(call)
        if quota and _dir_size(path, opts.get("maildir_quota_directory_regex")) + len(data) > quota:
            return _over_quota(f"tmp/{name}")
        try:
            os.fchmod(fd, mode)
            _write_all(fd, data)
            os.fsync(fd)
        except OSError as e:
            return os_error(e, f"error while writing to tmp/{name}")
        tag = _maildir_tag(call, len(data))
        final = f"{path}/new/{name}{tag}"
        try:
            os.rename(tmpname, final)
        except OSError as e:
            return os_error(e, f"while renaming {tmpname} as {final}")
        ok = True
    finally:
        os.close(fd)
        if not ok:
            try:
                os.unlink(tmpname)
            except OSError:
                pass
    _fsync_dir(path + "/new")
    return LocalResult("ok")


def _fsync_dir(path: str) -> None:
    try:
        dfd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


def _deliver_mailstore(call: TransportCall, path: str) -> DeliveryResult:
    """mailstore_format: the message in <id>-<n>.msg, its envelope (mailstore_prefix, the sender, the
    recipient, mailstore_suffix; a line each) written as .tmp first and renamed to .env once the message
    is complete, as Exim does; readers wait for the .env file."""
    from pyxim.spool.ids import base62

    opts = call.transport.options
    mode = int(opts.get("mode") or 0o600)
    if not os.path.isdir(path):
        if not opts.get("create_directory") or not _create_allowed(call, path):
            return LocalResult(
                "defer", f"{os.strerror(_errno.ENOENT)}: while creating file {path}", errno=_errno.ENOENT
            )
        try:
            _make_dirs(path, int(opts.get("directory_mode") or 0o700))
        except OSError as e:
            return os_error(e, f"while creating file {path}")
    envelope = []
    for option in ("mailstore_prefix", None, "mailstore_suffix"):
        if option is None:
            envelope.append(f"{call.message.sender}\n{call.address}\n")
            continue
        text = opts.get(option)
        if not text:
            continue
        try:
            line = expand_string(str(text), call.ctx)
        except ExpansionError:
            return LocalResult("defer", f'Expansion of "{text}" ({option} for {call.transport.name} transport) '
                                        "failed", errno=ERRNO_EXPANDFAIL)
        if line:
            envelope.append(line if line.endswith("\n") else line + "\n")
    env_data = "".join(envelope).encode("utf-8", "surrogateescape")
    prefix, body, suffix = _content(call, path)
    data = prefix + body + suffix
    quota = _quota(call)
    if quota and _dir_size(path, None) + len(data) + len(env_data) > quota:
        return _over_quota(path)
    # Exim names the pair after the message and its delivery process; a counter keeps two deliveries
    # of one process apart
    stem = f"{path}/{call.message.message_id}-{base62(os.getpid(), 6)}"
    for n in range(100):
        base = stem if n == 0 else f"{stem}.{n}"
        try:
            env_fd = os.open(f"{base}.tmp", os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
            break
        except FileExistsError:
            continue
        except OSError as e:
            return os_error(e, f"while creating file {base}.tmp")
    else:
        return LocalResult("defer", f"{os.strerror(_errno.EEXIST)}: while creating file {stem}.tmp",
                           errno=_errno.EEXIST)
    done = False
    try:
        msg_fd = os.open(f"{base}.msg", os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        try:
            os.fchmod(env_fd, mode)
            os.fchmod(msg_fd, mode)
            _write_all(env_fd, env_data)
            os.fsync(env_fd)
            _write_all(msg_fd, data)
            os.fsync(msg_fd)
        finally:
            os.close(msg_fd)
        os.rename(f"{base}.tmp", f"{base}.env")
        done = True
    except OSError as e:
        return os_error(e, f"error while writing to {base}.msg")
    finally:
        os.close(env_fd)
        if not done:
            for leftover in (f"{base}.tmp", f"{base}.msg"):
                with contextlib.suppress(OSError):
                    os.unlink(leftover)
    _fsync_dir(path)
    return LocalResult("ok")


def _deliver_dirfile(call: TransportCall, path: str) -> DeliveryResult:
    """`directory` without a format: each message in a new file named by directory_file."""
    opts = call.transport.options
    mode = int(opts.get("mode") or 0o600)
    if not os.path.isdir(path):
        if not opts.get("create_directory") or not _create_allowed(call, path):
            return LocalResult(
                "defer", f"{os.strerror(_errno.ENOENT)}: while creating file {path}", errno=_errno.ENOENT
            )
        try:
            _make_dirs(path, int(opts.get("directory_mode") or 0o700))
        except OSError as e:
            return os_error(e, f"while creating file {path}")
    prefix, body, suffix = _content(call, path)
    data = prefix + body + suffix
    tmpname = f"{path}/temp.{os.getpid()}.{primary_hostname(call)}"
    try:
        fd = os.open(tmpname, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except OSError as e:
        return os_error(e, f"while creating file {tmpname}")
    try:
        quota = _quota(call)
        if quota and _dir_size(path, None) + len(data) > quota:
            return _over_quota(tmpname)
        try:
            os.fchmod(fd, mode)
            _write_all(fd, data)
            os.fsync(fd)
        except OSError as e:
            return os_error(e, f"error while writing to {tmpname}")
        call.ctx.variables["inode"] = str(os.fstat(fd).st_ino)
        option = str(opts.get("directory_file") or "q${base62:$tod_epoch}-$inode")
        try:
            leaf = expand_string(option, call.ctx)
        except ExpansionError as e:
            return LocalResult(
                "defer",
                f'Expansion of "{option}" (directory_file for {call.transport.name} transport) failed: {e}',
                errno=ERRNO_EXPANDFAIL,
            )
        final = f"{path}/{leaf}"
        try:
            os.link(tmpname, final)
        except OSError as e:
            return os_error(e, f"while renaming {tmpname} as {final}")
    finally:
        os.close(fd)
        try:
            os.unlink(tmpname)
        except OSError:
            pass
    _fsync_dir(path)
    return LocalResult("ok")

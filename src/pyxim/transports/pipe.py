"""The pipe transport: its option table (Exim 4.96 names, types and defaults) and its delivery."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import threading
import time

from pyxim.config.drivers import register
from pyxim.config.options import OptionDef, opt
from pyxim.delivery import DeliveryResult, TransportCall, transport
from pyxim.delivery.write import TransportWriteError, expand_affix, spec_for, write_message
from pyxim.errors import ExpansionError
from pyxim.expand import expand_string
from pyxim.expand.taint import carry, is_tainted
from pyxim.lists import iterate_list
from pyxim.transports.local import (
    ERRNO_CHHEADER_FAIL,
    ERRNO_EXPANDFAIL,
    LocalResult,
    delivery_ids,
    primary_hostname,
)

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


# -- delivery -------------------------------------------------------------------
#
# As Exim's pipe.c and transport_set_up_command(): the command is split into
# arguments first and each argument expanded on its own (so an expansion can
# never add arguments, and no shell sees it); use_shell hands the expanded
# line to /bin/sh -c instead. The message goes to the command's standard input;
# its standard output and error are read together, up to max_output.
# Not done yet: batch_max > 1 (use_bsmtp writes one envelope per address) ($pipe_addresses gives just this
# address), force_command with $address_pipe splitting, freeze_signal and
# freeze_exec_fail freeze nothing (they defer), transport_filter.

_EXIT_MEANINGS = {
    64: "usage or syntax error",
    65: "error in input data",
    66: "input data missing",
    67: "user nonexistent",
    68: "host nonexistent",
    69: "service or program unavailable",
    70: "internal software error",
    71: "internal operating system error",
    72: "system file missing",
    73: "can't create output file",
    74: "input/output error",
    75: "temporary error",
    76: "protocol error",
    77: "permission denied",
    78: "configuration error",
    127: "unable to exec or command does not exist",
}

TOO_MUCH_OUTPUT = b"\n\n*** Too much output - remainder discarded ***\n"


class CommandError(Exception):
    """The command could not be set up; carries the result for the address."""

    def __init__(self, result: LocalResult) -> None:
        super().__init__(result.message)
        self.result = result


def _escape_char(text: str, i: int) -> tuple[str, int]:
    """Exim's string_interpret_escape: `text[i]` is a backslash; (char, index of its last character)."""
    i += 1
    if i >= len(text):
        return "\\", i - 1
    ch = text[i]
    if ch in "01234567":
        j = i
        while j < len(text) and j < i + 3 and text[j] in "01234567":
            j += 1
        return chr(int(text[i:j], 8)), j - 1
    if ch == "x" and i + 1 < len(text) and text[i + 1] in "0123456789abcdefABCDEF":
        j = i + 1
        while j < len(text) and j < i + 3 and text[j] in "0123456789abcdefABCDEF":
            j += 1
        return chr(int(text[i + 1 : j], 16)), j - 1
    return {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}.get(ch, ch), i


def split_command(cmd: str) -> list[str]:
    """Split a command line into arguments as Exim does before expanding them:
    white space separates; an argument starting with ' runs to the next ' verbatim;
    one starting with " runs to the next unescaped " with backslash escapes."""
    args: list[str] = []
    i, n = 0, len(cmd)
    while i < n and cmd[i].isspace():
        i += 1
    while i < n:
        if cmd[i] == "'":
            j = cmd.find("'", i + 1)
            if j < 0:
                args.append(cmd[i + 1 :])
                i = n
            else:
                args.append(cmd[i + 1 : j])
                i = j + 1
        elif cmd[i] == '"':
            out: list[str] = []
            i += 1
            while i < n and cmd[i] != '"':
                if cmd[i] == "\\":
                    ch, i = _escape_char(cmd, i)
                    out.append(ch)
                else:
                    out.append(cmd[i])
                i += 1
            if i < n:
                i += 1
            args.append("".join(out))
        else:
            j = i
            while j < n and not cmd[j].isspace():
                j += 1
            args.append(cmd[i:j])
            i = j
        while i < n and cmd[i].isspace():
            i += 1
    return args


def command_argv(call: TransportCall, cmd: str, expand: bool) -> list[str]:
    """The argument vector for a direct (no shell) command, each argument expanded
    separately; a tainted argument is refused as Exim 4.96 does."""
    opts = call.transport.options
    tname = call.transport.name
    etext = f"{tname[:50]} transport"
    argv = split_command(cmd)
    if not argv:
        raise CommandError(LocalResult("defer", f"no command specified for {tname} transport"))
    if expand:
        out: list[str] = []
        for i, arg in enumerate(argv):
            if arg in ("$pipe_addresses", "${pipe_addresses}"):
                out.append(call.address)
                continue
            try:
                value = expand_string(arg, call.ctx)
            except ExpansionError as e:
                raise CommandError(
                    LocalResult("defer", f'Expansion of "{arg}" from command "{cmd}" in {etext} failed: {e}')
                ) from e
            if is_tainted(value):
                raise CommandError(LocalResult("fail", f"Tainted arg {i} for {etext} command: '{value}'"))
            out.append(value)
        argv = out
    permitted = False
    allow = opts.get("allow_commands")
    if allow:
        try:
            allowed = expand_string(allow, call.ctx)
        except ExpansionError as e:
            raise CommandError(
                LocalResult("defer", f'failed to expand string "{allow}" for {tname} transport: {e}')
            ) from e
        permitted = argv[0] in list(iterate_list(allowed))
    if not permitted:
        if opts.get("restrict_to_path"):
            if "/" in argv[0]:
                raise CommandError(
                    LocalResult(
                        "fail",
                        f'"/" found in "{cmd}" (command for {tname} transport) - failed for security reasons',
                    )
                )
        elif allow:
            raise CommandError(LocalResult("fail", f'"{argv[0]}" command not permitted by {tname} transport'))
    if not argv[0].startswith("/"):
        for d in iterate_list(_path_option(call)):
            candidate = f"{d[:256]}/{argv[0][:256]}"
            if os.path.exists(candidate):
                argv[0] = candidate
                break
        else:
            raise CommandError(LocalResult("fail", f'"{argv[0]}" command not found for {tname} transport'))
    return argv


def shell_argv(call: TransportCall, cmd: str, expand: bool) -> list[str]:
    """use_shell: /bin/sh -c with the whole command expanded as one string."""
    tname = call.transport.name
    if not expand:
        return ["/bin/sh", "-c", cmd]
    text = cmd
    for form in ("${pipe_addresses}", "$pipe_addresses"):
        text = text.replace(form, call.address)
    try:
        line = expand_string(text, call.ctx)
    except ExpansionError as e:
        raise CommandError(
            LocalResult("defer", f'Expansion of command "{text}" in {tname} transport failed: {e}')
        ) from e
    return ["/bin/sh", "-c", str(line)]


def _path_option(call: TransportCall) -> str:
    path = str(call.transport.options.get("path") or "/bin:/usr/bin")
    try:
        return str(expand_string(path, call.ctx))
    except ExpansionError:
        return path


def command_environment(call: TransportCall) -> dict[str, str]:
    """The environment Exim gives a pipe command (nothing inherited), plus `environment`."""
    v = call.ctx.variables
    opts = call.transport.options
    local_part = v.get("local_part", "")
    prefix = v.get("local_part_prefix", "")
    suffix = v.get("local_part_suffix", "")
    domain = v.get("domain", "")
    home = v.get("home", "")
    if opts.get("home_directory"):
        try:
            home = expand_string(opts["home_directory"], call.ctx)
        except ExpansionError:
            pass
    main = call.config.main if call.config is not None else {}
    qualify = main.get("qualify_domain") or primary_hostname(call)
    env = {
        "LOCAL_PART": local_part,
        "LOGNAME": local_part,
        "USER": local_part,
        "LOCAL_PART_PREFIX": prefix,
        "LOCAL_PART_SUFFIX": suffix,
        "DOMAIN": domain,
        "HOME": home,
        "MESSAGE_ID": v.get("message_exim_id") or call.message.message_id,
        "PATH": _path_option(call),
        "RECIPIENT": f"{prefix}{local_part}{suffix}@{domain}",
        "QUALIFY_DOMAIN": str(qualify),
        "SENDER": v.get("sender_address", call.message.sender),
        "SHELL": "/bin/sh",
    }
    if v.get("host"):
        env["HOST"] = v["host"]
    if main.get("timestamps_utc"):
        env["TZ"] = "UTC"
    elif main.get("timezone"):
        env["TZ"] = str(main["timezone"])
    extra = opts.get("environment")
    if extra:
        try:
            text = expand_string(extra, call.ctx)
        except ExpansionError as e:
            raise CommandError(
                LocalResult(
                    "defer", f'failed to expand string "{extra}" for {call.transport.name} transport: {e}'
                )
            ) from e
        for item in iterate_list(text):
            name, _, value = item.partition("=")
            if name:
                env[name] = value
    return {k: str(val).replace("\x00", "") for k, val in env.items()}


def _working_directory(call: TransportCall, home: str) -> str:
    option = call.transport.options.get("current_directory")
    if option:
        try:
            d = expand_string(option, call.ctx)
            if os.path.isdir(d):
                return str(d)
        except ExpansionError:
            pass
    if home and os.path.isdir(home):
        return home
    return "/"


@transport("pipe")
def pipe_deliver(call: TransportCall) -> DeliveryResult:
    """The pipe transport: the entry point the delivery engine calls."""
    opts = call.transport.options
    tname = call.transport.name
    if call.address.startswith("|") and not opts.get("force_command"):
        cmd = carry(call.address[1:].lstrip(), call.address)
        expand = bool(call.ctx.variables.get("expand_pipe"))
    else:
        cmd = opts.get("command") or ""
        expand = True
    if not cmd:
        return LocalResult("defer", f"no command specified for {tname} transport")
    if is_tainted(cmd):
        return LocalResult("defer", f"Tainted '{cmd}' (command for {tname} transport) not permitted")
    try:
        argv = shell_argv(call, cmd, expand) if opts.get("use_shell") else command_argv(call, cmd, expand)
        env = command_environment(call)
    except CommandError as e:
        e.result.user_message = "local delivery failed"
        return e.result
    try:
        spec = spec_for(call)
        data = write_message(call.message.headers, call.body, spec)
        prefix = expand_affix(call, "message_prefix")
        suffix = expand_affix(call, "message_suffix")
    except TransportWriteError as e:
        if e.what == "prefix":
            why = f'Expansion of "{e.source}" (prefix for {tname} transport) failed: {e.reason}'
        elif e.what == "suffix":
            why = f'Expansion of "{e.source}" (suffix for {tname} transport) failed: {e.reason}'
        else:
            why = f"Failed to expand headers_add or headers_remove: {e.reason}"
        errno = ERRNO_CHHEADER_FAIL if e.what == "headers" else ERRNO_EXPANDFAIL
        return LocalResult("defer", why, errno=errno, user_message="local delivery failed")
    if opts.get("use_bsmtp"):
        # batched SMTP: the envelope as SMTP commands around the dot-stuffed message (check_string "."
        # and escape_string ".." are forced on for it)
        envelope = f"MAIL FROM:<{call.message.sender}>\nRCPT TO:<{call.address}>\nDATA\n"
        prefix = envelope.encode("utf-8", "surrogateescape") + prefix
        suffix = suffix + b".\n"
    result = _run(call, argv, env, prefix + data + suffix, cmd)
    return _handle_output(call, result)


def _run(call: TransportCall, argv: list[str], env: dict[str, str], data: bytes, cmd: str) -> LocalResult:
    opts = call.transport.options
    tname = call.transport.name
    timeout = int(opts.get("timeout") or 0)
    max_output = int(opts.get("max_output") or 0)
    uid, gid = delivery_ids(call)
    switch: dict[str, object] = {}
    if call.uid is not None and (uid != os.geteuid() or gid != os.getegid()):
        if os.geteuid() != 0:
            return LocalResult(
                "defer",
                f"unable to set gid={gid} or uid={uid} (euid={os.geteuid()}): "
                f"local delivery to {call.address} transport={tname}",
                errno=-1,
            )
        switch = {"user": uid, "group": gid, "extra_groups": []}
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=_working_directory(call, env.get("HOME", "")),
            umask=int(opts.get("umask") if opts.get("umask") is not None else 0o022),
            process_group=0,
            close_fds=True,
            **switch,  # type: ignore[arg-type]
        )
    except OSError:
        # Exim's child process reports a failed exec (or a failed setuid) as status 127
        return _status(call, 127, argv, cmd, "")
    except subprocess.SubprocessError as e:
        return LocalResult("defer", f"Failed to create child process for {tname} transport: {e}")

    assert proc.stdin is not None and proc.stdout is not None

    def feed() -> None:
        try:
            view = memoryview(data)
            while view:
                n = os.write(proc.stdin.fileno(), view[:65536])  # type: ignore[union-attr]
                view = view[n:]
        except OSError:
            pass  # EPIPE: the command did not read it all, which Exim ignores
        finally:
            try:
                proc.stdin.close()  # type: ignore[union-attr]
            except OSError:
                pass

    writer = threading.Thread(target=feed, name=f"pipe-{tname}-writer", daemon=True)
    writer.start()
    deadline = time.monotonic() + timeout if timeout > 0 else None
    output = bytearray()
    timed_out = False
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    try:
        while True:
            wait = None if deadline is None else deadline - time.monotonic()
            if wait is not None and wait <= 0:
                timed_out = True
                break
            if not sel.select(wait):
                continue
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            output += chunk
            if max_output and len(output) > max_output:
                output += TOO_MUCH_OUTPUT
                _killpg(proc.pid)
                break
    finally:
        sel.close()
    rc: int | None = None
    if not timed_out:
        try:
            wait = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            rc = proc.wait(wait)
        except subprocess.TimeoutExpired:
            timed_out = True
    if timed_out:
        _killpg(proc.pid)
        proc.wait()
    proc.stdout.close()
    writer.join(5)
    if timed_out:
        status = "defer" if opts.get("timeout_defer") else "fail"
        return LocalResult(status, "pipe delivery process timed out", output=bytes(output))
    assert rc is not None
    return _status(call, rc, argv, cmd, bytes(output))


def _killpg(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass


def _status(call: TransportCall, rc: int, argv: list[str], cmd: str, output: bytes) -> LocalResult:
    """Exim's reading of the command's exit status (subprocess: a negative rc is a signal)."""
    opts = call.transport.options
    tname = call.transport.name
    if rc == 0:
        return LocalResult("ok", output=output)
    if rc < 0:
        sig = -rc
        name = signal.strsignal(sig) or f"signal {sig}"
        text = f'Child process of {tname} transport (running command "{cmd}") was terminated by signal {sig} ({name})'
        if opts.get("freeze_signal"):
            return LocalResult("defer", text, output=output)
        if opts.get("ignore_status"):
            return LocalResult("ok", output=output)
        return LocalResult("fail", text, output=output)
    if opts.get("freeze_exec_fail") and rc == 127:
        return LocalResult("defer", f'pipe process failed to exec "{cmd}"', output=output)
    if opts.get("ignore_status"):
        return LocalResult("ok", output=output)
    temp = str(opts.get("temp_errors") or "")
    if temp.strip().startswith("*"):
        status = "defer"
    else:
        status = "fail"
        for item in iterate_list(temp):
            try:
                if int(item) == rc:
                    status = "defer"
                    break
            except ValueError:
                continue
    text = f"Child process of {tname} transport returned {rc}"
    if rc > 128:
        sig = rc - 128
        text += f" (could mean shell command ended by signal {sig} ({signal.strsignal(sig) or sig}))"
    elif rc in _EXIT_MEANINGS:
        text += f" (could mean {_EXIT_MEANINGS[rc]})"
    # Exim 4.96 means to list every argument here but its loop stops after argv[0]
    arg0 = argv[0]
    text += " from command: " + (f'"{arg0}"' if (" " in arg0 or "\t" in arg0) else arg0)
    return LocalResult(status, text, output=output)


def _printing(text: str) -> str:
    """Exim's string_printing(): non-printing characters as escapes."""
    out = []
    for ch in text:
        if ch.isprintable() or ch == " ":
            out.append(ch)
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        else:
            out.append(f"\\x{ord(ch):02x}")
    return "".join(out)


def _handle_output(call: TransportCall, result: LocalResult) -> LocalResult:
    """What deliver.c does with a local transport's output: log_output, return_output."""
    opts = call.transport.options
    output = result.output
    result.output = b""
    if output:
        if (
            opts.get("log_output")
            or (result.status == "fail" and opts.get("log_fail_output"))
            or (result.status == "defer" and opts.get("log_defer_output"))
        ):
            first = output.split(b"\n", 1)[0].decode("utf-8", "surrogateescape").rstrip()
            result.log.append(f"<{call.address}>: {call.transport.name} transport output: {_printing(first)}")
        if call.message.sender or call.ctx.variables.get("errors_address"):
            if opts.get("return_output"):
                if not result.message and result.errno == 0:
                    result.message = "return message generated"
                result.status = "fail"
                result.output = output
            elif opts.get("return_fail_output") and result.status == "fail":
                result.output = output
    if result.status != "ok" and not result.user_message:
        result.user_message = "local delivery failed"
    return result

"""Exim's command line → one function per mode.

Exim's options are not getopt-shaped (`-DNAME=value`, `-bem FILE`, `-oX 25`,
`-q30m`…), so they are read by hand here into a CommandLine record, then the
mode function runs. Every failure reaches the user as Exim's message and a
non-zero exit status, never a traceback.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TextIO

from pyxim.errors import ConfigError, ExpansionError, PyximError

PROG = "pyxim"


class UsageError(PyximError):
    pass


@dataclass
class CommandLine:
    mode: str = ""  # "-bV", "-bP", "-be", …
    config_path: str | None = None
    macros: dict[str, str] = field(default_factory=dict)
    message_file: str | None = None  # -bem FILE
    args: list[str] = field(default_factory=list)  # what follows the options
    sender: str | None = None  # -f
    listen: str | None = None  # -oX
    extract: bool = False  # -t
    dot_ends: bool = True  # cleared by -i / -oi
    full_name: str | None = None  # -F
    delivery_mode: str = "b"  # -odb (background, the default), -odi/-odf (foreground), -odq (queue only)
    queue_run: str | None = None  # "-q", "-qf", "-qff" …; with -bd, the interval in queue_interval
    queue_interval: str | None = None
    selection: tuple[str, str] | None = None  # -R text (recipients) or -S text (sender)
    callouts: bool = False  # -bhc
    # -oMa -oMaa -oMai -oMas -oMi -oMr -oMs -oMt: a trusted caller says where a message came from
    origin: dict[str, str] = field(default_factory=dict)
    dont_deliver: bool = False  # -N


# Options that take the next word as their value.
_WITH_VALUE = {"-C", "-bem", "-f", "-F", "-oX", "-oMa", "-oMs", "-oMr", "-oMt", "-oMi", "-oMaa", "-oMai", "-oMas",
               "-oMm", "-R", "-S", "-Rf", "-Rff", "-Sf", "-Sff"}


_MESSAGE_COMMANDS = ("-Mf", "-Mt", "-Mrm", "-Mg", "-Mar", "-Mmd", "-Mvh", "-Mvb", "-Mvl")

# -q, -qq, -qf, -qff, -qi … optionally followed by a time (with -bd: the interval between runs)
# (Exim reads the letters in the order q, i, f, f: -qqif, -qiff; -qfi is taken too)
_QUEUE_RUN = re.compile(r"-q(q?(?:i?f{0,2}|f{1,2}i))(\d+[smhdw]?(?:\d+[smhdw])*)?")


def parse_command_line(argv: Sequence[str]) -> CommandLine:
    cl = CommandLine()
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            i += 1
            break
        if not arg.startswith("-") or arg == "-":
            break
        if arg == "--version":
            cl.mode = "-bV"
        elif arg == "--help":
            cl.mode = "--help"
        elif arg.startswith("-D"):
            body = arg[2:]
            name, eq, value = body.partition("=")
            if not name or not (name[0].isupper() and name.replace("_", "").isalnum()):
                raise UsageError(f"macro name set by -D must start with an upper case letter: {arg}")
            cl.macros[name] = value if eq else ""
        elif arg in _WITH_VALUE:
            if i + 1 >= len(argv):
                raise UsageError(f"string expected after {arg}")
            value = argv[i + 1]
            if arg == "-C":
                cl.config_path = value
            elif arg == "-bem":
                cl.mode = "-be"
                cl.message_file = value
            elif arg == "-f":
                cl.sender = value
            elif arg == "-oX":
                cl.listen = value
            elif arg == "-F":
                cl.full_name = value
            elif arg.startswith("-oM"):
                cl.origin[arg] = value
            elif arg.startswith(("-R", "-S")):
                # -R/-S: a queue run for messages with a matching recipient / sender
                cl.selection = (arg[1], value)
                cl.queue_run = "-q" + arg[2:]
                if cl.mode == "":
                    cl.mode = "-q"
            i += 1
        elif arg.startswith("-C") and len(arg) > 2:
            cl.config_path = arg[2:]
        elif arg in ("-bV", "-bP", "-be", "-bd", "-bdf", "-bs", "-bt", "-bv", "-bvs", "-bh", "-bp", "-bpc", "-bpu", "-brw"):
            cl.mode = arg
        elif arg == "-bhc":
            cl.mode, cl.callouts = "-bh", True  # -bh that makes verify callouts for real
        elif arg.startswith("-q") and _QUEUE_RUN.fullmatch(arg):
            m = _QUEUE_RUN.fullmatch(arg)
            assert m is not None
            cl.queue_run = "-q" + m.group(1)
            cl.queue_interval = m.group(2) or None
            if cl.mode == "":
                cl.mode = "-q"
        elif arg in ("-M", "-Mc") or arg in _MESSAGE_COMMANDS:
            cl.mode = arg
        elif arg in ("-odq", "-odqs"):
            cl.delivery_mode = "q"
        elif arg in ("-odi", "-odf"):
            cl.delivery_mode = "i"
        elif arg == "-odb":
            cl.delivery_mode = "b"
        elif arg == "-bm":
            cl.mode = "-bm"
        elif arg == "-t":
            cl.extract = True
        elif arg in ("-i", "-oi"):
            cl.dot_ends = False
        elif arg == "-N":
            cl.dont_deliver = True  # deliveries logged "*>" without running the transports
        elif arg in ("-oem", "-oee", "-oep", "-oeq", "-oew", "-v", "-m", "-om"):
            pass  # sendmail compatibility options that change nothing here yet
        elif arg.startswith("-f") and len(arg) > 2:
            cl.sender = arg[2:]
        elif arg.startswith("-F") and len(arg) > 2:
            cl.full_name = arg[2:]
        elif arg.startswith("-b"):
            raise UsageError(f"unknown, malformed, or incomplete option {arg}")
        else:
            raise UsageError(f"unknown, malformed, or incomplete option {arg}")
        i += 1
    cl.args = list(argv[i:])
    return cl


def _load(cl: CommandLine):  # -> Config
    from pyxim.config import load_config

    return load_config(cl.config_path, cl.macros)


def run_bv(cl: CommandLine, out: TextIO) -> int:
    from pyxim.config.printing import bv_output

    config = _load(cl)  # a ConfigError reaches main(): message on stderr, exit 1
    out.write(bv_output(config))
    return 0


def run_bp(cl: CommandLine, out: TextIO) -> int:
    from pyxim.config.printing import bp_output

    config = _load(cl)
    text, status = bp_output(config, cl.args)
    out.write(text)
    return status


def run_be(cl: CommandLine, out: TextIO, inp: TextIO) -> int:
    """-be / -bem: expand strings from the arguments, or from stdin one per line."""
    from pyxim.expand import ExpansionContext, expand_string

    config = _load(cl)
    ctx = ExpansionContext(config=config)
    from pyxim.acl.engine import acl_runner

    ctx.acl_runner = acl_runner(config, ctx)
    if cl.message_file is not None:
        from pyxim.expand.message import load_bem_message

        try:
            notices = load_bem_message(
                cl.message_file, ctx, dot_ends=cl.dot_ends, sender=cl.sender, full_name=cl.full_name
            )
        except OSError as exc:
            raise UsageError(f"failed to open {cl.message_file}: {exc.strerror}") from None
        # exim -bem prints its notices on stdout, before the first prompt
        for notice in notices:
            out.write(notice + "\n")
    elif cl.sender is not None:
        ctx.variables["sender_address"] = cl.sender

    def one(line: str) -> str:
        try:
            return expand_string(line, ctx)
        except ExpansionError as exc:
            return f"Failed: {exc.message}"
        except RecursionError:
            return "Failed: expansion nested too deeply"
        except Exception as exc:  # noqa: BLE001 — a bug must not end the session with a traceback
            return f"Failed: internal error in pyxim: {type(exc).__name__}: {exc}"

    if cl.args:
        for arg in cl.args:
            out.write(one(arg) + "\n")
        return 0

    for line in _prompted_lines(out, inp):
        line = line.rstrip("\n")
        # A trailing backslash continues the line; the continuation's leading
        # white space is dropped (Exim's -be input reader).
        while line.endswith("\\"):
            more = inp.readline()
            if not more:
                break
            line = line[:-1] + more.rstrip("\n").lstrip()
        # Macros are substituted first; what still starts with an upper-case
        # letter is a macro definition (Exim's -be reader does the same).
        line = config.substitute_macros(line)
        if line[:1].isupper():
            # Exim -be: a line starting with an upper-case letter defines a macro.
            # A malformed one is reported on stderr and the session goes on.
            try:
                config.define_macro_from_line(line)
            except ConfigError as exc:
                print(str(exc), file=sys.stderr)
                continue
            name = re.match(r"[A-Za-z0-9_]*", line)
            out.write(f"Defined macro '{name.group(0) if name else line}'\n")
            continue
        out.write(one(line) + "\n")
    return 0


def _prompted_lines(out: TextIO, inp: TextIO):  # type: ignore[no-untyped-def]
    """Exim's interactive readers (-be, -bt): a "> " prompt before each line, a newline at the end."""
    while True:
        out.write("> ")
        out.flush()
        line = inp.readline()
        if not line:
            out.write("\n")
            return
        yield line


def run_bp_queue(cl: CommandLine, out: TextIO) -> int:
    """-bp, -bpc, -bpu: list or count the queue."""
    from pathlib import Path

    from pyxim.queue.listing import queue_count, queue_listing
    from pyxim.spool.store import Spool

    config = _load(cl)
    spool = Spool(Path(str(config.main["spool_directory"])), bool(config.main.get("split_spool_directory")))
    if cl.mode == "-bpc":
        out.write(f"{queue_count(spool)}\n")
    else:
        out.write(queue_listing(spool, undelivered_only=cl.mode == "-bpu"))
    return 0


def run_smtp_stdio(cl: CommandLine, out: TextIO, inp) -> int:  # type: ignore[no-untyped-def]
    """-bs (a real SMTP session on stdin/stdout) and -bh IP (a test session: nothing is spooled)."""
    from pathlib import Path

    from pyxim.smtp.session import Peer, SmtpSession
    from pyxim.spool.ids import MessageIdGenerator
    from pyxim.spool.store import Spool

    config = _load(cl)
    ids = MessageIdGenerator()
    testing = cl.mode == "-bh"
    if testing:
        if not cl.args:
            raise UsageError("-bh requires an IP address")
        address = cl.args[0]
        peer = Peer(address, 0, "", 0)  # -bh: no real connection, so no port or interface
        # Exim writes these notes on standard output, among the replies
        out.write(
            f"\n**** SMTP testing session as if from host {address}\n"
            "**** but without any ident (RFC 1413) callback.\n**** This is not for real!\n\n"
        )
        out.flush()

        def store(message, body):  # type: ignore[no-untyped-def]
            out.write("\n**** SMTP testing: that is not a real message id!\n\n")
            out.flush()
            return message.message_id

        def log(line: str) -> None:
            sys.stderr.write(f"LOG: {line}\n")

        session = SmtpSession(config, peer, store, ids.new_id, log)
        session.sleep = None  # -bh reports delays instead of waiting (as Exim does)
        session.host_checking = True  # -bh: ETRN runs nothing
        if not cl.callouts:
            from pyxim.acl.engine import NO_CALLOUTS

            session.ctx.variables[NO_CALLOUTS] = "1"
        from pyxim.acl.engine import AclTracer

        # Exim's ">>> " debugging of the ACLs it runs, on standard error
        session.ctx.acl_trace = AclTracer.for_config(config, lambda line: sys.stderr.write(line + "\n"))
    else:
        spool = Spool(Path(str(config.main["spool_directory"])), bool(config.main.get("split_spool_directory")))

        def store(message, body):  # type: ignore[no-untyped-def]
            spool.write(message, body)
            return message.message_id

        from pyxim.log import Logger

        logger = Logger(str(config.main.get("log_file_path") or ""), str(config.main["spool_directory"]))
        _drop_untrusted_origin(cl, config)
        session = SmtpSession(config, origin_peer(cl.origin), store, ids.new_id, logger.main, logger.reject)
        # (-oMas does not outlive MAIL, which says the authenticated sender itself in SMTP)
        apply_origin(session, {k: v for k, v in cl.origin.items() if k != "-oMas"})
    binary_out = out.buffer if hasattr(out, "buffer") else None
    binary_in = inp.buffer if hasattr(inp, "buffer") else inp

    def send(result) -> bool:  # type: ignore[no-untyped-def]
        text = "".join(result.replies)
        if binary_out is not None:
            binary_out.write(text.encode("utf-8", "surrogateescape"))
            binary_out.flush()
        else:
            out.write(text)
        return result.close

    def converse() -> None:
        if send(session.greeting()):
            return
        while True:
            data = binary_in.readline() if hasattr(binary_in, "readline") else b""
            if not data:
                send(session.eof())
                return
            if send(session.feed(data)):
                return

    converse()
    if not testing:
        _deliver_after_reception(cl, config, [mid for mid, wanted in session.received if wanted])
    return 0


def _drop_untrusted_origin(cl: CommandLine, config) -> None:  # type: ignore[no-untyped-def]
    """-oM… are for trusted callers; from anyone else Exim ignores them without a word."""
    from pyxim.expand import ExpansionContext
    from pyxim.expand.variables import caller_is_trusted

    if cl.origin and not caller_is_trusted(ExpansionContext(config=config)):
        cl.origin = {}


def origin_peer(origin: dict[str, str]):  # type: ignore[no-untyped-def]
    """The client a -bs session or a submission stands for: -oMa (and -oMi), else none (a local caller)."""
    from pyxim.smtp.session import Peer
    from pyxim.spool.format import split_host_port

    if not origin.get("-oMa"):
        return Peer("", 0)
    address, port = split_host_port(origin["-oMa"])
    local_address, local_port = split_host_port(origin.get("-oMi", ""))
    return Peer(address, port, local_address, local_port)


def apply_origin(session, origin: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    """-oMs (the host's verified name), -oMt (ident), -oMaa/-oMai/-oMas (how it authenticated), -oMi (the
    interface) on a session or submission (-oMr is the submission's own: SMTP names its protocol)."""
    from pyxim.expand.taint import Tainted

    variables = session.ctx.variables
    if origin.get("-oMs"):
        variables["sender_host_name"] = Tainted(origin["-oMs"])
    if origin.get("-oMt"):
        variables["sender_ident"] = Tainted(origin["-oMt"])
    if origin.get("-oMaa"):
        session.authenticated = origin["-oMaa"]
        session.origin_auth = True
        variables["sender_host_authenticated"] = origin["-oMaa"]
    if origin.get("-oMai"):
        variables["authenticated_id"] = Tainted(origin["-oMai"])
    if origin.get("-oMas"):
        variables["authenticated_sender"] = Tainted(origin["-oMas"])
    if origin.get("-oMi"):
        from pyxim.spool.format import split_host_port

        address, port = split_host_port(origin["-oMi"])
        variables.update({"received_ip_address": address, "interface_address": address,
                          "received_port": str(port), "interface_port": str(port)})
    session._set_sender_hosts()


def _delivery_logger(config):  # type: ignore[no-untyped-def]
    from pyxim.log import Logger

    return Logger(str(config.main.get("log_file_path") or ""), str(config.main["spool_directory"]))


def _deliver_after_reception(cl: CommandLine, config, message_ids: list[str]) -> None:  # type: ignore[no-untyped-def]
    """Exim starts a delivery for a message it has just received: in the foreground with -odi,
    in a detached process with -odb (the default), not at all with -odq or queue_only."""
    from pyxim.delivery.runner import deliver_now, immediate_delivery_wanted, spool_for

    if cl.delivery_mode == "q" or not message_ids or not immediate_delivery_wanted(config):
        return
    if cl.delivery_mode == "b":
        if os.fork():
            return
        os.setsid()
        if os.fork():
            os._exit(0)
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        try:
            spool, logger = spool_for(config), _delivery_logger(config)
            for message_id in message_ids:
                deliver_now(config, spool, message_id, logger.main)
        finally:
            os._exit(0)
    spool, logger = spool_for(config), _delivery_logger(config)
    for message_id in message_ids:
        deliver_now(config, spool, message_id, logger.main)


def run_delivery(cl: CommandLine) -> int:
    """-M ids (deliver these now, frozen or not), -q/-qf/-qff (a queue run)."""
    from pyxim.delivery.runner import deliver_now, queue_run, spool_for
    from pyxim.spool.ids import is_message_id

    config = _load(cl)
    spool, logger = spool_for(config), _delivery_logger(config)
    if cl.mode == "-q":
        flags = cl.queue_run or "-q"
        queue_run(config, spool, logger.main, force="f" in flags, frozen="ff" in flags,
                  flag="" if flags == "-q" and cl.selection is None else
                  (f"-{cl.selection[0]}{flags[2:]} {cl.selection[1]}" if cl.selection else flags),
                  selection=cl.selection, two_stage=flags.startswith("-qq"), initial_only="i" in flags[2:])
        return 0
    if not cl.args:
        raise UsageError(f"no message ids given after {cl.mode} option")
    status = 0
    for message_id in cl.args:
        if not is_message_id(message_id):
            print(f"{PROG}: malformed message id: {message_id}", file=sys.stderr)
            status = 1
            continue
        outcome = deliver_now(config, spool, message_id, logger.main, force=True)
        if outcome.state == "missing":
            print(f"Spool file not found: {message_id}-H", file=sys.stderr)
            status = 1
        elif outcome.state == "locked":
            print(f"Spool file is locked (another process is handling this message): {message_id}", file=sys.stderr)
            status = 1
    return status


def run_message_command(cl: CommandLine, out: TextIO) -> int:
    """-Mf/-Mt/-Mrm/-Mg ids…, -Mar/-Mmd id addresses…, -Mvh/-Mvb id."""
    from pyxim.delivery.runner import spool_for
    from pyxim.queue.admin import message_command
    from pyxim.spool.ids import is_message_id

    config = _load(cl)
    spool, logger = spool_for(config), _delivery_logger(config)
    if not cl.args:
        raise UsageError(f"no message ids given after {cl.mode} option")
    with_addresses = cl.mode in ("-Mar", "-Mmd")
    ids = cl.args[:1] if with_addresses else cl.args
    status = 0
    for message_id in ids:
        if not is_message_id(message_id):
            print(f"{PROG}: malformed message id {message_id} after {cl.mode} option", file=sys.stderr)
            return 1
        text, rc = message_command(config, spool, cl.mode, message_id,
                                   cl.args[1:] if with_addresses else [], logger.main)
        out.write(text)
        status = max(status, rc)
    return status


def run_bt(cl: CommandLine, out: TextIO, inp: TextIO) -> int:
    """-bt (show routing) and -bv (verify): addresses from the arguments, or one per line on stdin."""
    from pyxim.address import extract_address
    from pyxim.expand import ExpansionContext
    from pyxim.expand.evaluate import Evaluation
    from pyxim.expand.variables import resolve_variable
    from pyxim.routers.engine import format_bt, route_address, test_mode_log_line

    config = _load(cl)
    qualify = resolve_variable(Evaluation(ExpansionContext(config=config)), "qualify_recipient")
    status = 0
    routed_before: set[str] = set()  # one -bt run: a second routing of an address is a duplicate

    def one(text: str) -> str:
        nonlocal status
        text = text.strip()
        parsed = extract_address(text)
        if parsed is None or not parsed.address or " " in parsed.address:
            status = 2
            word = text.lstrip("<").split("@")[0]
            return f'syntax error: "@" or "." expected after "{word}"\n'
        address = parsed.address if "@" in parsed.address else f"{parsed.address}@{qualify}"
        verifying: bool | str = "sender" if cl.mode == "-bvs" else cl.mode == "-bv"
        results = route_address(config, address, verifying=verifying)
        for line in (test_mode_log_line(line, r.address) for r in results for line in r.log_lines):
            # what a router writes to the main log (self = freeze, host_find_failed …) goes there
            # under -bt/-bv too, and Exim shows it on stderr as well
            sys.stderr.write(f"LOG: MAIN\n  {line}\n")
            sys.stderr.flush()
            with contextlib.suppress(OSError):
                _delivery_logger(config).main(line)
        if cl.mode in ("-bv", "-bvs"):
            lines = []
            for r in results:
                if r.outcome in ("routed", "discarded"):
                    lines.append(f"{address} verified")
                elif r.outcome == "deferred":
                    lines.append(f"{address} cannot be resolved at this time: {r.message}")
                    status = max(status, 1)
                else:
                    lines.append(f"{address} failed to verify: {r.message}")
                    status = 2
            return "".join(line + "\n" for line in lines[:1])
        text_out, code = format_bt(results, address, routed_before)
        status = max(status, code)
        return text_out

    if cl.args:
        for arg in cl.args:
            out.write(one(arg))
        return status
    for line in _prompted_lines(out, inp):
        if line.strip():
            out.write(one(line))
    return status


def run_brw(cl: CommandLine, out: TextIO) -> int:
    """-brw ADDRESS: what the rewrite rules make of it in each header and the envelope."""
    from pyxim.rewrite import rewrite_test

    if not cl.args:
        out.write("-brw needs an address argument\n")
        return 1
    config = _load(cl)
    rewrite_test(config, cl.args[0], out.write)  # its log lines go to stderr, as Exim's do here
    return 0


def run_bf(argv: Sequence[str], out: TextIO) -> int:
    """-bf FILE / -bF FILE (with -bfd/-bfl/-bfp/-bfs): test a user's or the system filter."""
    from pyxim.filter_test import run_filter_test, split_filter_options

    try:
        wanted, rest = split_filter_options(argv)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    cl = parse_command_line(rest)
    try:
        return run_filter_test(_load(cl), wanted, cl.sender, sys.stdin.buffer, out)
    except OSError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1


def run_help(cl: CommandLine, out: TextIO) -> int:
    out.write(
        "usage: pyxim [-C file] [-DNAME=value] -bV | -bP [names] | -be [strings] | -bem file\n"
        "pyxim takes Exim's command line; see docs/configuration.md.\n"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if "-bf" in argv or "-bF" in argv:
            return run_bf(argv, sys.stdout)
        cl = parse_command_line(argv)
        if cl.dont_deliver:
            from pyxim.delivery import DONT_DELIVER

            DONT_DELIVER.set(True)
        if cl.mode == "-bV":
            return run_bv(cl, sys.stdout)
        if cl.mode == "-bP":
            return run_bp(cl, sys.stdout)
        if cl.mode == "-be":
            return run_be(cl, sys.stdout, sys.stdin)
        if cl.mode in ("-bp", "-bpc", "-bpu"):
            return run_bp_queue(cl, sys.stdout)
        if cl.mode in ("-bd", "-bdf"):
            from pyxim.smtp.daemon import run_daemon

            return run_daemon(cl.config_path, cl.macros, cl.listen, detach=cl.mode == "-bd",
                              queue_interval=cl.queue_interval, queue_flags=cl.queue_run or "-q")
        if cl.mode in ("-q", "-M", "-Mc"):
            return run_delivery(cl)
        if cl.mode in _MESSAGE_COMMANDS:
            return run_message_command(cl, sys.stdout)
        if cl.mode in ("-bt", "-bv", "-bvs"):
            return run_bt(cl, sys.stdout, sys.stdin)
        if cl.mode in ("-bs", "-bh"):
            return run_smtp_stdio(cl, sys.stdout, sys.stdin)
        if cl.mode == "-brw":
            return run_brw(cl, sys.stdout)
        if cl.mode == "--help":
            return run_help(cl, sys.stdout)
        if cl.mode == "-bm" or (cl.mode == "" and (cl.args or cl.extract)):
            from pyxim.submission import submit

            config = _load(cl)
            sender = cl.sender
            if sender is not None and sender.startswith("<") and sender.endswith(">"):
                sender = sender[1:-1]
            _drop_untrusted_origin(cl, config)
            message_id, wanted = submit(config, sys.stdin.buffer, cl.args, cl.extract, cl.dot_ends, sender,
                                        cl.full_name, origin=cl.origin)
            if wanted:
                _deliver_after_reception(cl, config, [message_id])
            return 0
        if cl.mode == "":
            raise UsageError("no mode given (try -bV, -bP, -be or --help)")
        raise UsageError(f"{cl.mode} is not available in this version of pyxim yet")
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    except UsageError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    except PyximError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 1
    except Exception as exc:  # noqa: BLE001 — a bug is reported in one line, never as a traceback
        print(f"{PROG}: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


def sendmail_main() -> int:
    """The `sendmail` entry point: Exim's command line, where addresses alone mean -bm."""
    return main()


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

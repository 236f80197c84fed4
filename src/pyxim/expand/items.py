"""Expansion items with ordinary brace arguments: ${name{arg}{arg}…}.

The items with a syntax of their own (if, lookup, extract, map, filter,
reduce, sort, acl, authresults, certextract) live in the parser and
evaluator. Items that touch the outside world (readfile, readsocket, run)
refuse tainted file names and commands, and can be locked out of a context
through ExpansionContext.forbidden.
"""

from __future__ import annotations

import hashlib
import hmac as _hmac
import os
import re
import shlex
import socket
import subprocess
import time
from typing import TYPE_CHECKING, Any

from pyxim.errors import ExpansionError, ForcedFail
from pyxim.expand.nodes import FailMarker
from pyxim.expand.operators import _b, _s, numeric_hash, substring, text_hash
from pyxim.expand.registry import item
from pyxim.expand.taint import Tainted, carry, check_untainted, taint
from pyxim.lists import iterate_list

if TYPE_CHECKING:  # pragma: no cover
    from pyxim.expand.evaluate import Evaluation


def _positive(text: str, what: str) -> int:
    t = text.strip()
    if not re.fullmatch(r"\d+", t):
        raise ExpansionError(f'"{text}" is not a positive number (in "{what}" expansion)')
    return int(t)


def _number(text: str, what: str) -> int:
    t = text.strip()
    if not re.fullmatch(r"-?\d+", t):
        raise ExpansionError(f'"{text}" is not a number (in "{what}" expansion)')
    return int(t)


@item("length", 2)
def item_length(ev: Evaluation, args: list[str]) -> str:
    n = _positive(args[0], "length")
    return carry(_s(_b(args[1])[:n]), args[1])


@item("substr", 2, 3)
def item_substr(ev: Evaluation, args: list[str]) -> str:
    start = _number(args[0], "substr")
    length = _number(args[1], "substr") if len(args) == 3 else None
    subject = args[-1]
    return carry(_s(substring(_b(subject), start, length)), subject)


@item("hash", 2, 3)
def item_hash(ev: Evaluation, args: list[str]) -> str:
    length = _positive(args[0], "hash")
    limit = _positive(args[1], "hash") if len(args) == 3 else 26
    return carry(_s(text_hash(_b(args[-1]), length, limit)), args[-1])


@item("nhash", 2, 3)
def item_nhash(ev: Evaluation, args: list[str]) -> str:
    v1 = _positive(args[0], "nhash")
    v2 = _positive(args[1], "nhash") if len(args) == 3 else None
    if v1 == 0:
        raise ExpansionError('"0" is not a positive number (in "nhash" expansion)')
    return numeric_hash(_b(args[-1]), v1, v2)


@item("hmac", 3)
def item_hmac(ev: Evaluation, args: list[str]) -> str:
    algo = args[0]
    if algo not in ("md5", "sha1"):
        raise ExpansionError(f'hmac algorithm "{algo}" is not recognised')
    return _hmac.new(_b(args[1]), _b(args[2]), getattr(hashlib, algo)).hexdigest()


@item("tr", 3)
def item_tr(ev: Evaluation, args: list[str]) -> str:
    subject, chars, repl = _b(args[0]), _b(args[1]), _b(args[2])
    if not repl:
        return args[0]
    table = {}
    for i, c in enumerate(chars):
        table[c] = repl[i] if i < len(repl) else repl[-1]  # Exim repeats the last replacement
    return carry(_s(bytes(table.get(c, c) for c in subject)), args[0])


@item("sg", 3)
def item_sg(ev: Evaluation, args: list[str]) -> str:
    from pyxim.expand.regex import compile_pcre

    subject, pattern, replacement = args
    regex = compile_pcre(pattern)
    out: list[str] = []
    pos = 0
    for m in regex.finditer(subject):
        out.append(subject[pos : m.start()])
        groups = [m.group(0), *(g if g is not None else "" for g in m.groups())]
        saved = ev.captures
        ev.set_captures(groups)
        try:
            out.append(ev.expand(replacement))
        finally:
            ev.captures = saved
        pos = m.end()
        if m.start() == m.end() and pos >= len(subject):
            break
    out.append(subject[pos:])
    return carry("".join(out), subject)


@item("listextract", 2, 4, lazy=True)
def item_listextract(ev: Evaluation, args: list[Any]) -> str:
    number_text = ev.eval(args[0]).strip()
    if not re.fullmatch(r"-?\d+", number_text):
        raise ExpansionError('first argument of "listextract" must be numeric')
    source = ev.eval(args[1])
    items = list(iterate_list(source))
    n = int(number_text)
    value: str | None = None
    if n > 0 and n <= len(items):
        value = items[n - 1]
    elif n < 0 and -n <= len(items):
        value = items[n]
    if len(args) == 2:
        return value or ""
    if value is not None:
        with ev.bind("value", value):
            return ev.eval(args[2])
    return ev.eval(args[3]) if len(args) > 3 else ""


@item("listquote", 2)
def item_listquote(ev: Evaluation, args: list[str]) -> str:
    sep = args[0][:1] or ":"
    return carry(args[1].replace(sep, sep + sep), args[1])


@item("readfile", 1, 2)
def item_readfile(ev: Evaluation, args: list[str]) -> str:
    path = args[0]
    check_untainted(path, "Tainted name '%s' for file read not permitted")
    try:
        with open(path, encoding="utf-8", errors="surrogateescape", newline="") as f:
            data = f.read()
    except OSError as exc:
        raise ExpansionError(f"failed to open {path}: {exc.strerror}") from None
    if len(args) > 1:
        data = "".join(line[:-1] + args[1] if line.endswith("\n") else line for line in data.splitlines(True))
    return data


def _clean_environment(ev: Evaluation) -> dict[str, str]:
    """The environment Exim would have: only what keep_environment/add_environment allow."""
    env: dict[str, str] = {}
    config = ev.ctx.config
    keep = str(config.main.get("keep_environment") or "") if config is not None else ""
    for pattern in iterate_list(keep):
        for name, value in os.environ.items():
            if name == pattern or (pattern.startswith("^") and re.search(pattern, name)):
                env[name] = value
    add = str(config.main.get("add_environment") or "") if config is not None else ""
    for entry in iterate_list(add):
        name, eq, value = entry.partition("=")
        if eq:
            env[name] = value
    return env


@item("env", 1, 3, lazy=True)
def item_env(ev: Evaluation, args: list[Any]) -> str:
    name = ev.eval(args[0])
    value = _clean_environment(ev).get(name)
    if len(args) == 1:
        return value or ""
    if value is not None:
        with ev.bind("value", value):
            return ev.eval(args[1])
    return ev.eval(args[2]) if len(args) > 2 else ""


@item("run", 1, 3, lazy=True)
def item_run(ev: Evaluation, args: list[Any]) -> str:
    command_text = ev.eval(args[0])
    try:
        argv = shlex.split(command_text)
    except ValueError as exc:
        raise ExpansionError(f"failed to parse run command: {exc}") from None
    for n, arg in enumerate(argv):
        check_untainted(arg, f"Tainted arg {n} for run command: '%s'")
    output = ""
    runrc = 127
    if argv and argv[0].startswith("/"):
        try:
            proc = subprocess.run(argv, capture_output=True, timeout=60, env=_clean_environment(ev), stdin=subprocess.DEVNULL)
            output = proc.stdout.decode("utf-8", "surrogateescape")
            runrc = proc.returncode
        except subprocess.TimeoutExpired:
            raise ExpansionError(f"command timed out: {command_text}") from None
        except OSError as exc:
            raise ExpansionError(f"couldn't create child process: {exc.strerror}") from None
    ev.ctx.variables["runrc"] = str(runrc)
    ok = runrc == 0
    if len(args) == 1:
        return taint(output) if ok else ""
    with ev.bind("value", taint(output)):
        if ok:
            return ev.eval(args[1])
        if len(args) > 2:
            if isinstance(args[2], FailMarker):
                raise ForcedFail('"run" failed and "fail" requested')
            return ev.eval(args[2])
    return ""


@item("readsocket", 2, 5, lazy=True)
def item_readsocket(ev: Evaluation, args: list[Any]) -> str:
    spec = ev.eval(args[0])
    request = ev.eval(args[1])
    timeout = 5.0
    if len(args) > 2:
        from pyxim.expand.operators import readconf_time

        t = readconf_time(ev.eval(args[2]).strip() or "5s")
        timeout = float(t if t is not None else 5)
    eol = ev.eval(args[3]) if len(args) > 3 else None
    check_untainted(spec, "Tainted name '%s' for readsocket not permitted")
    try:
        if spec.startswith("inet:"):
            _, host, port = spec.split(":", 2)
            sock = socket.create_connection((host.strip("[]"), int(port)), timeout=timeout)
        else:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            sock.connect(spec)
        with sock:
            if request:
                sock.sendall(_b(request))
            sock.shutdown(socket.SHUT_WR)
            chunks = []
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                data = sock.recv(65536)
                if not data:
                    break
                chunks.append(data)
        text = _s(b"".join(chunks))
    except (OSError, ValueError) as exc:
        if len(args) > 4:
            return ev.eval(args[4])
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ExpansionError(f"failed to connect to socket {spec}: {reason}") from None
    if eol is not None:
        text = text.replace("\n", eol)
    return Tainted(text)


def _prvs_day(ev: Evaluation, offset: int = 0) -> str:
    days = str(int(ev.ctx.now() + offset * 86400) // 86400)
    return days[-3:] if len(days) >= 3 else "100"


def _prvs_hash(address: str, key: str, keynum: str, day: str) -> str | None:
    if len(_b(key)) > 64:
        return None
    digest = _hmac.new(_b(key), _b(keynum[:1] + day + address), hashlib.sha1).digest()
    return digest[:3].hex()


@item("prvs", 2, 3)
def item_prvs(ev: Evaluation, args: list[str]) -> str:
    address, key = args[0], args[1]
    keynum = args[2] if len(args) > 2 else "0"
    if not re.fullmatch(r"\d", keynum):
        raise ExpansionError("prvs second argument must be a single digit")
    local, at, domain = address.rpartition("@")
    if not at or not local:
        raise ExpansionError("prvs first argument must be a qualified email address")
    day = _prvs_day(ev, 7)
    digest = _prvs_hash(address, key, keynum, day)
    if digest is None:
        raise ExpansionError("prvs hmac-sha1 conversion failed")
    return f"prvs={keynum}{day}{digest}={address}"


_PRVS = re.compile(r"^prvs=(\d)(\d{3})([A-Fa-f0-9]{6})=(.+)@(.+)$", re.IGNORECASE)


@item("prvscheck", 2, 3, lazy=True)
def item_prvscheck(ev: Evaluation, args: list[Any]) -> str:
    address = ev.eval(args[0])
    m = _PRVS.match(address)
    if m is None:
        return ""  # not a prvs address: empty, as Exim
    keynum, day, digest, local, domain = m.groups()
    plain = f"{local}@{domain}"
    with ev.bind("prvscheck_address", plain), ev.bind("prvscheck_keynum", keynum):
        ev.ctx.variables["prvscheck_address"] = plain
        ev.ctx.variables["prvscheck_keynum"] = keynum
        key = ev.eval(args[1])
        expected = _prvs_hash(plain, key, keynum, day)
        result = ""
        if expected is not None and expected.lower() == digest.lower():
            today = int(_prvs_day(ev))
            if (int(day) - today) % 1000 <= 7:  # not expired (days counted mod 1000)
                result = "1"
        ev.ctx.variables["prvscheck_result"] = result
        if len(args) > 2:
            with ev.bind("prvscheck_result", result):
                return ev.eval(args[2])
        return plain


@item("perl", 1, 9)
def item_perl(ev: Evaluation, args: list[str]) -> str:
    raise ExpansionError("pyxim has no embedded Perl interpreter: ${perl} is not available")


@item("dlfunc", 2, 9)
def item_dlfunc(ev: Evaluation, args: list[str]) -> str:
    raise ExpansionError("pyxim cannot load shared objects: ${dlfunc} is not available")


@item("imapfolder", 1, 3)
def item_imapfolder(ev: Evaluation, args: list[str]) -> str:
    name = args[0]
    sep = args[1] if len(args) > 1 else "/"
    if len(sep) != 1:
        raise ExpansionError(f'IMAP folder separator must be one character, found "{sep}"')
    specials = args[2] if len(args) > 2 else ""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            raw = "".join(pending).encode("utf-16-be")
            import base64

            out.append("&" + base64.b64encode(raw).decode().rstrip("=").replace("/", ",") + "-")
            pending.clear()

    # The doc's rule: <sep> becomes ".", while "." and "/" that are neither
    # <sep> nor listed in <specials> are encoded.
    for ch in name:
        if ch == sep:
            flush()
            out.append(".")
        elif ch in "./" and ch not in specials:
            pending.append(ch)
        elif ch == "&":
            flush()
            out.append("&-")
        elif 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append(ch)
        else:
            pending.append(ch)
    flush()
    return "".join(out)


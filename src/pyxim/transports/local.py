"""What the local transports (appendfile, pipe) share: results carrying Exim's
errno, running as the delivery user, the primary host name.

Exim never writes a mailbox as root on behalf of another user: a local
delivery runs in a subprocess that has given up root for the transport's
uid/gid. `run_as()` does the same: when the call names a uid other than ours
it forks, the child calls setgroups([])/setgid/setuid and runs the delivery,
and the result comes back through a pipe.
"""

from __future__ import annotations

import base64
import json
import os
import pwd
from collections.abc import Callable
from dataclasses import dataclass

from pyxim.delivery import DeliveryResult, TransportCall

# Exim's negative errno values (exim.h), printed as "defer (n)" in log lines.
ERRNO_UNKNOWNERROR = -1
ERRNO_NOTREGULAR = -4
ERRNO_NOTDIRECTORY = -5
ERRNO_BADUGID = -6
ERRNO_BADMODE = -7
ERRNO_INODECHANGED = -8
ERRNO_LOCKFAILED = -9
ERRNO_NOTABSOLUTE = -21
ERRNO_EXIMQUOTA = -22
ERRNO_CHHEADER_FAIL = -25
ERRNO_EXPANDFAIL = -27
ERRNO_TAINT = -1  # Exim 4.96 logs a tainted file name as "defer (-1)"


@dataclass(slots=True)
class LocalResult(DeliveryResult):
    """A DeliveryResult with what Exim's address_item keeps besides the message.

    errno: Exim's basic_errno (the "(n)" in "defer (n): …"); when positive the
      message already starts with strerror(errno) as Exim logs it.
    output: what a pipe command wrote, for the bounce (return_output,
      return_fail_output); empty otherwise.
    user_message: the bland text for the bounce when the log message must not
      reach the sender (pipe: "local delivery failed")."""

    errno: int = 0
    output: bytes = b""
    user_message: str = ""


def os_error(err: OSError, what: str, status: str = "defer") -> LocalResult:
    """An OS error the way Exim logs it: "<strerror>: <what>", with errno."""
    code = err.errno or 0
    text = os.strerror(code) if code else str(err)
    return LocalResult(status, f"{text}: {what}", errno=code)


def primary_hostname(call: TransportCall) -> str:
    name = None
    if call.config is not None:
        name = call.config.main.get("primary_hostname")
    if not name:
        from pyxim.config import primary_hostname as uname_host

        name = uname_host()
    return str(name)


def delivery_ids(call: TransportCall) -> tuple[int, int]:
    """The uid/gid the delivery runs as."""
    uid = os.geteuid() if call.uid is None else call.uid
    if call.gid is not None:
        gid = call.gid
    elif call.uid is not None:
        try:
            gid = pwd.getpwuid(call.uid).pw_gid
        except KeyError:
            gid = os.getegid()
    else:
        gid = os.getegid()
    return uid, gid


def needs_switch(call: TransportCall) -> bool:
    if call.uid is None:
        return False
    uid, gid = delivery_ids(call)
    return uid != os.geteuid() or gid != os.getegid()


def _encode(result: DeliveryResult) -> bytes:
    data = {
        "status": result.status,
        "message": result.message,
        "detail": result.detail,
        "log": result.log,
        "errno": getattr(result, "errno", 0),
        "output": base64.b64encode(getattr(result, "output", b"")).decode("ascii"),
        "user_message": getattr(result, "user_message", ""),
    }
    return json.dumps(data, ensure_ascii=True).encode("ascii")


def _decode(raw: bytes) -> LocalResult:
    data = json.loads(raw.decode("ascii"))
    return LocalResult(
        data["status"],
        data["message"],
        data["detail"],
        list(data["log"]),
        errno=int(data["errno"]),
        output=base64.b64decode(data["output"]),
        user_message=data["user_message"],
    )


def run_as(call: TransportCall, func: Callable[[], DeliveryResult]) -> DeliveryResult:
    """Run `func` as the call's uid/gid: in-process when no switch is needed,
    otherwise in a forked child that drops privilege first."""
    if not needs_switch(call):
        return func()
    uid, gid = delivery_ids(call)
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 0
        try:
            os.close(rfd)
            try:
                os.setgroups([])
                os.setgid(gid)
                os.setuid(uid)
            except OSError:
                result: DeliveryResult = LocalResult(
                    "defer",
                    f"unable to set gid={gid} or uid={uid} (euid={os.geteuid()}): "
                    f"local delivery to {call.address} transport={call.transport.name}",
                    errno=ERRNO_UNKNOWNERROR,
                )
            else:
                try:
                    result = func()
                except Exception as e:  # noqa: BLE001 - reported, never a traceback
                    result = LocalResult(
                        "defer", f"{call.transport.name} transport: {e}", errno=ERRNO_UNKNOWNERROR
                    )
            payload = _encode(result)
            view = memoryview(payload)
            while view:
                n = os.write(wfd, view)
                view = view[n:]
            os.close(wfd)
        except BaseException:  # noqa: BLE001
            code = 1
        os._exit(code)
    os.close(wfd)
    chunks: list[bytes] = []
    try:
        while True:
            chunk = os.read(rfd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(rfd)
    _, status = os.waitpid(pid, 0)
    raw = b"".join(chunks)
    if raw:
        try:
            return _decode(raw)
        except (ValueError, KeyError):
            pass
    code = os.waitstatus_to_exitcode(status)
    return LocalResult(
        "defer",
        f"{call.transport.driver} transport process returned non-zero status 0x{status:04x}: "
        + (f"exit code {code}" if code >= 0 else f"terminated by signal {-code}"),
        errno=ERRNO_UNKNOWNERROR,
    )

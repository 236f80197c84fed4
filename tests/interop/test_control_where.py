"""Which controls each SMTP ACL accepts, compared with exim4: a control used where Exim does not allow
it ("control = freeze" in the HELO ACL, "control = caseful_local_part" outside RCPT,
"control = dkim_disable_verify" in the DATA ACL …) is an error of the statement, logged as
`cannot use "control=X" in <where> ACL`, and a warn statement goes on to the next one. One -bh session
per ACL where the ACL runs once per control (a condition picks one), else one run per refusal."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.interop import oracle

pytestmark = pytest.mark.skipif(oracle.EXIM is None, reason="needs exim4")

CONTROLS = [
    "allow_auth_unadvertised", "caseful_local_part", "caselower_local_part", "dkim_disable_verify",
    "enforce_sync", "no_enforce_sync", "freeze", "no_multiline_responses", "no_pipelining", "queue",
    "queue_only", "submission", "suppress_local_fixups", "fakedefer", "fakereject", "no_mbox_unspool",
    "debug", "cutthrough_delivery", "no_delay_flush", "no_callout_flush", "utf8_downconvert",
]
WHERES = ["connect", "helo", "mail", "rcpt", "predata", "data", "quit"]
REFUSED = re.compile(r'cannot use "control=([a-z_0-9]+)" in ([A-Za-z -]+) ACL')
# Where one session can run the ACL once per control, a condition picks the control by the HELO name,
# the sender's or the recipient's local part; the connect and QUIT ACLs run once a session
SELECTOR = {"helo": "$sender_helo_name", "mail": "${local_part:$sender_address}", "rcpt": "$local_part",
            "predata": "${local_part:$sender_address}", "data": "${local_part:$sender_address}"}


def _config(where: str, controls: list[str]) -> str:
    lines = ["primary_hostname = t.example", "smtp_max_unknown_commands = 1000", "helo_allow_chars = _"]
    lines += [f"acl_smtp_{w} = {'x' if w == where else 'accept'}" for w in WHERES]
    lines += ["begin acl", "x:"]
    for control in controls:
        lines.append("  warn")
        if where in SELECTOR:
            lines.append(f"    condition = ${{if eq{{{SELECTOR[where]}}}{{{control}}}}}")
        lines.append(f"    control = {control}")
    lines += ["  accept"]
    return "\n".join(lines) + "\n"


def _session(where: str, controls: list[str]) -> bytes:
    if where == "helo":
        script = "".join(f"HELO {c}\r\n" for c in controls)
    elif where == "rcpt":
        script = "HELO x\r\nMAIL FROM:<s@x.example>\r\n" + "".join(f"RCPT TO:<{c}@t.example>\r\n" for c in controls)
    elif where in SELECTOR:
        # a refused DATA leaves the lone "." as an unknown command; an accepted one ends an empty message
        script = "HELO x\r\n" + "".join(f"MAIL FROM:<{c}@x.example>\r\nRCPT TO:<r@t.example>\r\nDATA\r\n.\r\nRSET\r\n"
                                        for c in controls)
    else:
        script = "HELO x\r\nMAIL FROM:<s@x.example>\r\nRCPT TO:<r@t.example>\r\nDATA\r\n.\r\n"
    return (script + "QUIT\r\n").encode()


def _run(command: list[str], work: Path, where: str, controls: list[str]) -> set[tuple[str, str]]:
    conf = work / f"{where}.conf"
    conf.write_text(_config(where, controls))
    os.chmod(conf, 0o644)
    proc = subprocess.run(command + ["-C", str(conf), "-bh", "10.0.0.1"], input=_session(where, controls),
                          capture_output=True, timeout=120)
    # each refusal is logged (LOG: on stderr under -bh)
    return set(REFUSED.findall((proc.stdout + proc.stderr).decode(errors="replace")))


def _refused(command: list[str], work: Path) -> dict[str, list[tuple[str, str]]]:
    out = {}
    for where in WHERES:
        if where in SELECTOR:
            out[where] = sorted(_run(command, work, where, CONTROLS))
            continue
        # an error ends the ACL: take each refused control out and run again
        left, found = list(CONTROLS), []
        while refused := _run(command, work, where, left):
            (name, label), = refused
            found.append((name, label))
            # the first control left that is logged under this name (queue_only is logged as "queue")
            left.remove(next(c for c in left if c == name or c.startswith(name + "_")))
        out[where] = found
    return out


def test_controls_are_refused_where_exim_refuses_them() -> None:
    work = Path(tempfile.mkdtemp(prefix="pyxim-ctlwhere-"))
    os.chmod(work, 0o755)
    try:
        mine = _refused([sys.executable, "-m", "pyxim"], work)
        assert ("freeze", "EHLO or HELO") in mine["helo"]
        assert ("dkim_disable_verify", "DATA") in mine["data"]
        assert ("caseful_local_part", "MAIL") in mine["mail"] and not any(c == "caseful_local_part"
                                                                            for c, _ in mine["rcpt"])
        assert mine == _refused([oracle.EXIM], work)
    finally:
        shutil.rmtree(work, ignore_errors=True)

"""Exim's filter test mode, side by side: `exim4 -bf FILE` (and -bF) against `pyxim -bf FILE`.

Each filter under fixtures/filters/ is run by both with the same message on standard input and
the same -f/-bfd/-bfl options; standard output and the exit status must be byte-identical.
Nothing is delivered in this mode, so no configuration beyond Debian's own is involved.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
FILTERS = HERE / "fixtures" / "filters"
EXIM = shutil.which("exim4") or shutil.which("exim")
ROOT = HERE.parent.parent

pytestmark = pytest.mark.skipif(EXIM is None, reason="exim4 is not installed")

MESSAGE = (
    "From: Bob <bob@example.com>\n"
    "To: alice@example.org, Carol <carol@example.net>\n"
    "Subject: hello there\n"
    "Message-Id: <abc@example.com>\n"
    "\n"
    "body line 1\n"
    "body line 2\n"
)

# (name, options after the filter file, message)
RUNS = [
    ("user", ["-f", "sender@example.com", "-bfd", "example.org", "-bfl", "alice"], MESSAGE),
    ("bounce", ["-f", "<>", "-bfd", "example.org", "-bfl", "alice"], MESSAGE),
    ("defaults", [], MESSAGE),
]


def _run(command: list[str], message: str) -> tuple[str, int]:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    done = subprocess.run(command, input=message.encode(), capture_output=True, timeout=60, env=env, check=False)
    return done.stdout.decode("utf-8", "surrogateescape"), done.returncode


def _both(mode: str, path: Path, options: list[str], message: str) -> tuple[tuple[str, int], tuple[str, int]]:
    assert EXIM is not None
    exim = _run([EXIM, mode, str(path), *options], message)
    pyxim = _run([sys.executable, "-m", "pyxim", mode, str(path), *options], message)
    return exim, pyxim


@pytest.mark.parametrize("run", RUNS, ids=[r[0] for r in RUNS])
@pytest.mark.parametrize("path", sorted(FILTERS.glob("*.filter")), ids=lambda p: p.stem)
def test_bf_output_is_exims(path: Path, run: tuple[str, list[str], str]) -> None:
    _name, options, message = run
    exim, pyxim = _both("-bf", path, options, message)
    assert pyxim == exim


@pytest.mark.parametrize("path", sorted(FILTERS.glob("*.filter")), ids=lambda p: p.stem)
def test_system_filter_bF_output_is_exims(path: Path) -> None:
    """-bF: fail, freeze and headers add/remove are allowed; personal is never true."""
    exim, pyxim = _both("-bF", path, ["-f", "sender@example.com"], MESSAGE)
    assert pyxim == exim


MESSAGES = {
    "from_line": "From someone@x.example Mon Jan  1 00:00:00 2024\nSubject: a\n\nbody\n",
    "return_path": "Return-path: <rp@x.example>\nReply-To: r@r.example\nSubject: a\n\nbody\n",
    "no_headers": "\nbody only\n",
    "list": "From: a@b.example\nTo: alice@example.org\nList-Id: <x.example>\nSubject: s\n\nb\n",
    "bulk": "From: a@b.example\nTo: alice@example.org\nPrecedence: bulk\n\nb\n",
    "auto": "From: a@b.example\nTo: alice@example.org\nAuto-Submitted: auto-replied\n\nb\n",
    "daemon": "From: mailer-daemon@b.example\nTo: alice@example.org\n\nb\n",
}


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_bf_envelope_and_personal_follow_the_message(name: str) -> None:
    """The envelope lines Exim prints (From line, Return-path:, prefix/suffix) and personal."""
    path = FILTERS / "personal.filter"
    options = ["-bfd", "example.org", "-bfl", "alice", "-bfp", "pre-", "-bfs", "-suf"]
    if name != "from_line":
        options = ["-f", "s@t.example", *options]
    exim, pyxim = _both("-bf", path, options, MESSAGES[name])
    assert pyxim == exim

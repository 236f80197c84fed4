"""Exim's filter test mode for Sieve scripts, side by side: `exim4 -bf FILE` against `pyxim -bf FILE`.

Each script under fixtures/sieve/ is run by both with the same message on standard input and the
same -f/-bfd/-bfl options; standard output and the exit status must be byte-identical. Exim says
only how a Sieve script ended ("Implicit keep", "No implicit keep" or "Sieve error: … in line N"),
so the corpus leans on the tests' outcomes and on the exact error texts and line numbers.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SCRIPTS = HERE / "fixtures" / "sieve"
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

RUNS = [
    ("user", ["-f", "sender@example.com", "-bfd", "example.org", "-bfl", "alice"]),
    ("bounce", ["-f", "<>", "-bfd", "example.org", "-bfl", "alice"]),
]


def _run(command: list[str]) -> tuple[str, int]:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    done = subprocess.run(command, input=MESSAGE.encode(), capture_output=True, timeout=60, env=env, check=False)
    return done.stdout.decode("utf-8", "surrogateescape"), done.returncode


def test_corpus_is_large_enough() -> None:
    assert len(list(SCRIPTS.glob("*.sieve"))) >= 30


@pytest.mark.parametrize("run", RUNS, ids=[r[0] for r in RUNS])
@pytest.mark.parametrize("path", sorted(SCRIPTS.glob("*.sieve")), ids=lambda p: p.stem)
def test_sieve_bf_output_is_exims(path: Path, run: tuple[str, list[str]]) -> None:
    assert EXIM is not None
    _name, options = run
    exim = _run([EXIM, "-bf", str(path), *options])
    pyxim = _run([sys.executable, "-m", "pyxim", "-bf", str(path), *options])
    assert pyxim == exim

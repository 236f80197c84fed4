"""Header variables with -bem: pyxim and the real Exim read the same message file.

Only the header variables are compared here. Exim's -bem also adds Message-Id
and Date headers of the moment and counts the body its own way; those are
covered by unit tests instead (tests/unit/test_variables.py).
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tests.interop import oracle

pytestmark = pytest.mark.skipif(oracle.EXIM is None, reason="exim4 not installed")

EXPANSIONS = [
    "$h_subject:",
    "$rh_subject:",
    "$bh_subject:",
    "$lh_x-multi:",
    "$h_x-multi:",
    "$h_to:",
    "$rh_to:",
    "$lh_to:",
    "$h_nosuch:",
    "$header_from:",
    "$h_From:",
    "$h_empty:",
    "${if def:h_empty:{y}{n}}",
    "${if def:h_nosuch:{y}{n}}",
    "$h_subject",
    "$h_received:",
    "${lc:$h_subject:}",
    "${if eq{$h_x-multi:}{one}{same}{different}}",
]


def run(command: list[str], message: str, work) -> list[str]:  # type: ignore[no-untyped-def]
    feed = ("\n" + oracle.MARKER + "\n").join(EXPANSIONS) + "\n"
    proc = subprocess.run(
        command + ["-C", str(work / "fixtures" / "expand.conf"), *oracle._macros(work), "-bem", message, "-be"],
        input=feed.encode(),
        capture_output=True,
        timeout=120,
        cwd=work,
    )
    return oracle._split(proc.stdout.decode("utf-8", "surrogateescape"), len(EXPANSIONS))


def test_header_variables_match_exim() -> None:
    work = oracle._workdir()
    try:
        message = str(work / "fixtures" / "messages" / "m1.eml")
        exim = run(oracle.exim_command(), message, work)
        pyxim = run([sys.executable, "-m", "pyxim"], message, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    assert list(zip(EXPANSIONS, pyxim, strict=True)) == list(zip(EXPANSIONS, exim, strict=True))

"""Exim's filter test mode for Sieve scripts, side by side: `exim4 -bf FILE` against `pyxim -bf FILE`.

Each script under fixtures/sieve/ is run by both with the same message on standard input and the
same -f/-bfd/-bfl options; standard output and the exit status must be byte-identical. Exim says
only how a Sieve script ended ("Implicit keep", "No implicit keep" or "Sieve error: … in line N"),
so the corpus leans on the tests' outcomes and on the exact error texts and line numbers.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.interop.test_exim_filter_bf import EXIM, MESSAGE, _both

SCRIPTS = Path(__file__).resolve().parent / "fixtures" / "sieve"

pytestmark = pytest.mark.skipif(EXIM is None, reason="exim4 is not installed")

RUNS = [
    ("user", ["-f", "sender@example.com", "-bfd", "example.org", "-bfl", "alice"]),
    ("bounce", ["-f", "<>", "-bfd", "example.org", "-bfl", "alice"]),
]


def test_corpus_is_large_enough() -> None:
    assert len(list(SCRIPTS.glob("*.sieve"))) >= 30


@pytest.mark.parametrize("run", RUNS, ids=[r[0] for r in RUNS])
@pytest.mark.parametrize("path", sorted(SCRIPTS.glob("*.sieve")), ids=lambda p: p.stem)
def test_sieve_bf_output_is_exims(path: Path, run: tuple[str, list[str]]) -> None:
    _name, options = run
    exim, pyxim = _both("-bf", path, options, MESSAGE)
    assert pyxim == exim

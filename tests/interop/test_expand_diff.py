"""Differential test: every corpus expansion through the real Exim 4.96 and through pyxim.

The corpus lives in tests/interop/expansions/*.txt (one expansion per line).
Both programs get the same configuration (fixtures/expand.conf) and macros;
their outputs must be equal byte for byte. Strings whose result depends on
the build or the moment (version, paths, pid, time, randomness) are not in
the corpus: unit tests cover them.
"""

from __future__ import annotations

import pytest

from tests.interop import oracle

pytestmark = pytest.mark.skipif(oracle.EXIM is None, reason="exim4 not installed (scripts/install-test-deps)")

CASES = oracle.load_corpus()


@pytest.fixture(scope="module")
def outputs() -> dict[str, tuple[str, str]]:
    work = oracle._workdir()
    try:
        texts = [c.text for c in CASES]
        exim_out = oracle.run_be(oracle.exim_command(), texts, work)
        pyxim_out = oracle.run_be(oracle.pyxim_command(), texts, work)
    finally:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return {c.source: (e, p) for c, e, p in zip(CASES, exim_out, pyxim_out, strict=True)}


def test_corpus_is_large_enough() -> None:
    distinct = {c.text for c in CASES}
    assert len(distinct) >= 400, f"only {len(distinct)} distinct expansion strings in the corpus"


@pytest.mark.parametrize("case", CASES, ids=[c.source for c in CASES])
def test_same_output_as_exim(case: oracle.Case, outputs: dict[str, tuple[str, str]]) -> None:
    exim_out, pyxim_out = outputs[case.source]
    assert pyxim_out == exim_out, f"{case.text!r}: exim gave {exim_out!r}, pyxim gave {pyxim_out!r}"

"""Run expansion strings through the real Exim (`exim4 -be`) and through pyxim.

Both get the same configuration file (fixtures/expand.conf) and the same -D
macros, so differences are differences of behaviour. Each corpus line is fed
as one -be input line, separated by a marker line whose result is known, so
multi-line results stay attributable to their input.

Command line, for people working on the expander:
    python3 tests/interop/oracle.py tests/interop/expansions/operators.txt
prints every line whose outputs differ.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
FIXTURES = HERE / "fixtures"
CORPUS_DIR = HERE / "expansions"
CONFIG = FIXTURES / "expand.conf"
MARKER = "@@PYXIM-MARK@@"
EXIM = shutil.which("exim4") or shutil.which("exim")


@dataclass(slots=True)
class Case:
    source: str  # "file:line"
    text: str


def load_corpus(paths: list[Path] | None = None) -> list[Case]:
    """Read corpus files: one expansion per line; '#' comments and blank lines skipped."""
    cases: list[Case] = []
    for path in paths or sorted(CORPUS_DIR.glob("*.txt")):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip() or line.startswith("#"):
                continue
            cases.append(Case(f"{path.name}:{n}", line))
    return cases


def _workdir() -> Path:
    # Exim drops privilege to its own user when given -C as root, so the
    # fixture tree must be world-readable and the log/spool dirs writable.
    work = Path(tempfile.mkdtemp(prefix="pyxim-oracle-"))
    os.chmod(work, 0o755)
    fixtures = work / "fixtures"
    shutil.copytree(FIXTURES, fixtures)
    for sub in ("spool", "log"):
        (work / sub).mkdir()
        os.chmod(work / sub, 0o777)
    for dirpath, dirnames, filenames in os.walk(work):
        for d in dirnames:
            os.chmod(os.path.join(dirpath, d), 0o777 if d in ("spool", "log") else 0o755)
        for f in filenames:
            os.chmod(os.path.join(dirpath, f), 0o644)
    return work


def _macros(work: Path) -> list[str]:
    return [f"-DFIXTURES={work / 'fixtures'}", f"-DSPOOL={work / 'spool'}", f"-DLOGDIR={work / 'log'}"]


def _split(output: str, count: int) -> list[str]:
    """Undo the interleaving: '> r1\\n> MARK\\n> r2\\n…> \\n' → [r1, r2, …]."""
    sep = f"\n> {MARKER}\n"
    if output.startswith("> "):
        output = output[2:]
    if output.endswith("> \n"):
        output = output[:-3]
    if output.endswith("\n"):
        output = output[:-1]
    parts = output.split(sep)
    parts = [p[2:] if i and p.startswith("> ") else p for i, p in enumerate(parts)]
    if len(parts) != count:
        raise RuntimeError(f"expected {count} results, got {len(parts)}:\n{output[:2000]}")
    return parts


def run_be(command: list[str], lines: list[str], work: Path) -> list[str]:
    feed = ("\n" + MARKER + "\n").join(lines) + "\n"
    env = dict(os.environ, TZ="UTC", LANG="C")
    proc = subprocess.run(
        command + ["-C", str(work / "fixtures" / "expand.conf"), *_macros(work), "-be"],
        input=feed.encode("utf-8", "surrogateescape"),
        capture_output=True,
        env=env,
        timeout=300,
        cwd=work,
    )
    out = proc.stdout.decode("utf-8", "surrogateescape")
    if proc.returncode != 0 and not out:
        raise RuntimeError(f"{command[0]} failed ({proc.returncode}): {proc.stderr.decode(errors='replace')}")
    return _split(out, len(lines))


def exim_command() -> list[str]:
    if EXIM is None:
        raise RuntimeError("exim4 is not installed (apt-get install exim4-daemon-heavy)")
    return [EXIM]


def pyxim_command() -> list[str]:
    return [sys.executable, "-m", "pyxim"]


def compare(cases: list[Case]) -> list[tuple[Case, str, str]]:
    """Return (case, exim_output, pyxim_output) for every case that differs."""
    work = _workdir()
    try:
        texts = [c.text for c in cases]
        exim_out = run_be(exim_command(), texts, work)
        pyxim_out = run_be(pyxim_command(), texts, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return [(c, e, p) for c, e, p in zip(cases, exim_out, pyxim_out, strict=True) if e != p]


def main(argv: list[str]) -> int:
    cases = load_corpus([Path(a) for a in argv] or None)
    diffs = compare(cases)
    for case, exim_out, pyxim_out in diffs:
        print(f"{case.source}: {case.text}\n  exim : {exim_out!r}\n  pyxim: {pyxim_out!r}")
    print(f"{len(cases) - len(diffs)} passed, {len(diffs)} failed")
    return 1 if diffs else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

"""The built wheel carries everything pyxim reads at run time (option tables, the default configuration)."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_contains_the_data_files() -> None:
    with tempfile.TemporaryDirectory() as out:
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", out,
                        str(ROOT)], check=True, capture_output=True, timeout=300)
        wheel = next(Path(out).glob("pyxim-*.whl"))
        names = set(zipfile.ZipFile(wheel).namelist())
    assert "pyxim/defaults/default.conf" in names
    data = {p.name for p in (ROOT / "src" / "pyxim" / "config" / "data").glob("*.txt")}
    assert data and all(f"pyxim/config/data/{name}" in names for name in data)

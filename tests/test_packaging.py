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
    # the option tables are Python modules; a driver missing from the wheel
    # would make every configuration that names it fail to load
    for table in ("pyxim/config/main_table.py", "pyxim/transports/smtp.py", "pyxim/routers/dnslookup.py"):
        assert table in names

"""Where the daemon listens: -oX / local_interfaces read as Exim reads them, and its start line's wording."""

from __future__ import annotations

from pathlib import Path

from pyxim.config import load_config
from pyxim.smtp.daemon import listening_text, parse_listeners


def listeners(tmp_path: Path, override: str | None, extra: str = ""):  # type: ignore[no-untyped-def]
    (tmp_path / "c.conf").write_text("primary_hostname = t.example\n" + extra)
    return parse_listeners(load_config(str(tmp_path / "c.conf")), override)


def test_wording_matches_exims_daemon_started_line(tmp_path: Path) -> None:
    # the texts exim4 -bdf wrote for the same -oX values
    assert listening_text(listeners(tmp_path, "<; ::1.2625 ; 127.0.0.1.2626")) == "[::1]:2625 [127.0.0.1]:2626"
    assert listening_text(listeners(tmp_path, "2627")) == "port 2627 (IPv6 and IPv4)"
    assert listening_text(listeners(tmp_path, None, "local_interfaces = 0.0.0.0\n")) == "port 25 (IPv4)"


def test_ports_apply_to_every_interface(tmp_path: Path) -> None:
    found = listeners(tmp_path, None, "local_interfaces = <; 127.0.0.1 ; ::1\ndaemon_smtp_ports = 25 : 587\n")
    assert [(lst.address, lst.port) for lst in found] == [
        ("127.0.0.1", 25), ("127.0.0.1", 587), ("::1", 25), ("::1", 587)
    ]

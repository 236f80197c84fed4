"""The DMARC history file read by OpenDMARC's own tools: opendmarc-import loads the blocks
pyxim wrote into OpenDMARC's database schema (MariaDB, started here on a private socket in
a temporary folder, no network), and the rows say what the messages were.

Messages come through the real daemon of tests/integration/test_dmarc.py.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_dmarc import BAD_IP, GOOD_IP, dmarc_dns, message, send, sign, site  # noqa: F401

SCHEMA = Path("/usr/share/dbconfig-common/data/opendmarc/install/mysql")
TOOLS = ("opendmarc-import", "mariadbd", "mariadb-install-db", "mariadb")

pytestmark = pytest.mark.skipif(
    any(shutil.which(t) is None and not Path("/usr/sbin", t).exists() for t in TOOLS) or not SCHEMA.exists(),
    reason="needs opendmarc, mariadb-server and libdbd-mysql-perl (scripts/install-test-deps)",
)


def _tool(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


@pytest.fixture(scope="module")
def database() -> Iterator[Path]:
    """A throw-away MariaDB with OpenDMARC's schema; yields its socket path."""
    work = Path(tempfile.mkdtemp(prefix="pyxim-odmarc-"))
    data, sock = work / "data", work / "mysqld.sock"
    user = ["--user=root"] if os.geteuid() == 0 else []
    subprocess.run(
        [
            _tool("mariadb-install-db"),
            "--no-defaults",
            f"--datadir={data}",
            "--skip-test-db",
            "--auth-root-authentication-method=normal",
            *user,
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    server = subprocess.Popen(
        [
            _tool("mariadbd"),
            "--no-defaults",
            f"--datadir={data}",
            f"--socket={sock}",
            "--skip-networking",
            f"--pid-file={work / 'pid'}",
            f"--log-error={work / 'err.log'}",
            *user,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 30
        while not sock.exists() and time.time() < deadline and server.poll() is None:
            time.sleep(0.05)
        assert sock.exists(), (work / "err.log").read_text() if (work / "err.log").exists() else "no socket"
        setup = (
            SCHEMA.read_text()
            + "\nCREATE USER IF NOT EXISTS 'opendmarc'@'localhost' IDENTIFIED BY 'opendmarc';"
            "\nGRANT ALL ON opendmarc.* TO 'opendmarc'@'localhost';\n"
        )
        subprocess.run(
            [_tool("mariadb"), "--no-defaults", "-S", str(sock), "-uroot"],
            input=setup.encode(),
            check=True,
            capture_output=True,
            timeout=60,
        )
        yield sock
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        shutil.rmtree(work, ignore_errors=True)


def _sql(sock: Path, query: str) -> list[list[str]]:
    out = subprocess.run(
        [_tool("mariadb"), "--no-defaults", "-S", str(sock), "-uroot", "-N", "-B", "opendmarc", "-e", query],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    return [line.split("\t") for line in out.splitlines()]


def test_opendmarc_import_reads_the_history_file(site, database: Path) -> None:  # noqa: F811
    port, root = site
    jobs = {}
    for name, args in {
        "pass": (GOOD_IP, "x@norec.dmarc.test", sign(message("a@reject.dmarc.test"), "reject.dmarc.test")),
        "quarantine": (BAD_IP, "x@norec.dmarc.test", message("a@quarantine.dmarc.test")),
        "reject": (BAD_IP, "x@norec.dmarc.test", message("a@reject.dmarc.test")),
    }.items():
        code, reply = send(port, *args, rcpt="noforensic@example.org")
        jobs[name] = re.search(r"id=(\S+)", reply).group(1) if code == 250 else None
    history = root / "dmarc.history"
    env = dict(os.environ, MYSQL_UNIX_PORT=str(database))
    proc = subprocess.run(
        [_tool("opendmarc-import"), "--dbhost=localhost", f"--input={history}", "--verbose"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    # nothing the importer did not understand, nothing it failed to insert
    assert "unknown key" not in proc.stderr and "failed" not in proc.stderr, proc.stderr
    blocks = history.read_text().count("job ")
    rows = _sql(
        database,
        "SELECT m.jobid, m.policy, m.disp, f.name, e.name, p.name, m.spf, m.align_dkim, "
        "m.align_spf, m.sigcount FROM messages m JOIN domains f ON f.id = m.from_domain "
        "JOIN domains e ON e.id = m.env_domain JOIN domains p ON p.id = m.policy_domain",
    )
    assert len(rows) == blocks
    by_job = {row[0]: row[1:] for row in rows}
    assert by_job[jobs["pass"]] == [
        "15",
        "2",
        "reject.dmarc.test",
        "norec.dmarc.test",
        "reject.dmarc.test",
        "0",
        "4",
        "5",
        "1",
    ]
    assert by_job[jobs["quarantine"]] == [
        "17",
        "4",
        "quarantine.dmarc.test",
        "norec.dmarc.test",
        "quarantine.dmarc.test",
        "7",
        "5",
        "5",
        "0",
    ]
    # the rejected message has no id of its own in the reply; find it by its disposition
    assert any(r[1:3] == ["16", "0"] and r[3] == "reject.dmarc.test" for r in rows)
    signatures = _sql(
        database,
        "SELECT d.name, s.name, g.pass, g.error FROM signatures g "
        "JOIN domains d ON d.id = g.domain JOIN selectors s ON s.id = g.selector",
    )
    assert ["reject.dmarc.test", "sel", "0", "0"] in signatures
    requests = _sql(
        database,
        "SELECT d.name, r.policy, r.spolicy, r.pct, r.adkim, r.repuri FROM requests r "
        "JOIN domains d ON d.id = r.domain",
    )
    assert ["reject.dmarc.test", str(ord("r")), "0", "100", "0", "mailto:agg@reject.dmarc.test"] in requests

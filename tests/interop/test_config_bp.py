"""-bP, -bV and configuration errors against the real Exim on the same files.

Lines that legitimately differ are left out of the comparison: paths (Debian's
Exim lives in /var/spool/exim4, pyxim in its own places), the Exim user and
group Debian compiles in, the malware scanner Debian configures, pyxim's own
additions (DMARC, DCC, Brightmail, dns_nameservers, LIMITS, ARC signing,
dovecot's server_tls), which Debian's Exim does not have, and the builtin
macros, which describe each program's own build.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.interop import oracle

pytestmark = pytest.mark.skipif(oracle.EXIM is None, reason="exim4 not installed")

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "config"
DEFAULT_CONF = Path(__file__).resolve().parents[2] / "src" / "pyxim" / "defaults" / "default.conf"
BUILD_DEPENDENT = (
    "av_scanner",
    "exim_group",
    "exim_path",
    "exim_user",
    "log_file_path",
    "pid_file_path",
    "process_log_path",
    "spool_directory",
)
PYXIM_ONLY = (
    "bmi_config_file",
    "dcc_direct_add_header",
    "dccifd_address",
    "dccifd_options",
    "dmarc_forensic_sender",
    "dmarc_history_file",
    "dmarc_tld_file",
    "dns_nameservers",
    "limits_advertise_hosts",
    "dsn_extra_info",
    "queue_run_interval",
    "srs_use_srs1",
    "arc_sign",
    "server_tls",
)
PYXIM = [sys.executable, "-m", "pyxim"]


def _comparable(line: str) -> bool:
    name = line.removeprefix("no_").split(" =")[0]
    return name not in BUILD_DEPENDENT + PYXIM_ONLY and not line.startswith("_")


def bp(command: list[str], conf: Path, *names: str) -> tuple[list[str], int]:
    proc = subprocess.run(
        command + ["-C", str(conf), "-bP", *names], capture_output=True, text=True, timeout=120
    )
    return [line for line in proc.stdout.splitlines() if _comparable(line)], proc.returncode


@pytest.fixture(scope="module")
def confdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture files where Exim accepts them: not writable by group or others."""
    d = tmp_path_factory.mktemp("bpconf")
    d.chmod(0o755)
    for f in [*FIXTURES.iterdir(), DEFAULT_CONF]:
        shutil.copy(f, d / f.name)
        (d / f.name).chmod(0o644)
    return d


@pytest.mark.parametrize("fixture", ["full.conf", "macros.conf", "transports.conf", "default.conf"])
@pytest.mark.parametrize(
    "names",
    [
        (),
        ("routers",),
        ("transports",),
        ("authenticators",),
        ("router_list",),
        ("transport_list",),
        ("authenticator_list",),
        ("config",),
        ("config_file",),
        ("+local_domains",),
        ("router", "dnslookup"),
        ("router", "r"),
        ("transport", "remote_smtp"),
        ("authenticator", "plain"),
        ("primary_hostname", "qualify_domain", "smtp_banner", "delay_warning", "check_spool_space", "nosuch"),
        ("nosuch", "primary_hostname"),
        ("+nosuch",),
        ("macro", "HOST"),
        ("macro", "NOPE"),
        ("local_scan",),
    ],
)
def test_bp_is_exims(confdir: Path, fixture: str, names: tuple[str, ...]) -> None:
    conf = confdir / fixture
    assert bp(PYXIM, conf, *names) == bp(oracle.exim_command(), conf, *names)


def test_user_macros_are_listed_after_the_builtins(confdir: Path) -> None:
    conf = confdir / "macros.conf"
    assert bp(PYXIM, conf, "macros") == bp(oracle.exim_command(), conf, "macros")


def test_bp_config_with_macros_and_includes(tmp_path_factory: pytest.TempPathFactory) -> None:
    d = tmp_path_factory.mktemp("bpconfig")
    d.chmod(0o755)
    (d / "inc.conf").write_text("qualify_domain = y.example\n")
    (d / "main.conf").write_text(
        f"# comment\nprimary_hostname = x.example\nMAC = val\nsmtp_banner = MAC here\n.include {d}/inc.conf\n"
        ".ifdef NOPE\nignored_option = 1\n.endif\nbegin acl\na:\n  accept hosts = :\n         message = x\n  deny\n"
        "begin routers\n\nr:\n  driver = accept\n  # inner comment\n  transport = t\n"
        "begin transports\nt:\n  driver = pipe\n  command = /bin/true\n"
    )
    for f in ("inc.conf", "main.conf"):
        (d / f).chmod(0o644)
    conf = d / "main.conf"
    pyxim = subprocess.run(
        PYXIM + ["-C", str(conf), "-bP", "config"], capture_output=True, text=True, timeout=60
    )
    exim = subprocess.run(
        [oracle.EXIM, "-C", str(conf), "-bP", "config"], capture_output=True, text=True, timeout=60
    )
    assert pyxim.stdout == exim.stdout


# Errors: Exim's message, and the line Exim names. (Where Exim names no line pyxim still does; those cases and
# pyxim's "did you mean" line are tested in tests/unit/test_config_sections.py.)
ERROR_CASES = [
    "foo = 1\n",
    "accept_8bitmime = maybe\n",
    "smtp_accept_max = 12x\n",
    "smtp_accept_max = 99999999999\n",
    "auto_thaw = nonsense\n",
    "deliver_queue_load_max = abc\n",
    "no_primary_hostname\n",
    "smtp_accept_max\n",
    "primary_hostname = a\nprimary_hostname = b\n",
    'smtp_banner = "abc" def\n',
    "exim_user = nosuchuser-pyxim\n",
    "begin foo\n",
    "begin acl\nbegin acl\n",
    ".ifdef X\n",
    ".endif\n",
    ".include /nonexistent/pyxim.conf\n",
    ".foo bar\n",
    "A-B = 1\n",
    "domainlist foo a\n",
    "domainlistx foo = a\n",
    "begin routers\nr:\n  data = x\n  driver = redirect\n",
    "begin routers\nr:\n  driver = redirect\n  data = x\n  data = y\n",
    "begin acl\na:\n  accept foo = x\n",
    "begin acl\na:\n  accept set foo = 1\n",
    "begin retry\n* * F,1h\n",
    "begin rewrite\na@b c@d Z\n",
    "primary_hostname = x\nbogus = a \\\n  b\n",
]


def _error(command: list[str], conf: Path) -> tuple[int, str]:
    proc = subprocess.run(command + ["-C", str(conf), "-bV"], capture_output=True, text=True, timeout=60)
    lines = [
        line
        for line in proc.stderr.splitlines()
        if "purging the environment" not in line and "use keep_environment" not in line
    ]
    # Exim stamps its log lines with the time; the message is what follows
    text = "\n".join(line[20:] if line[:4].isdigit() and line[19:20] == " " else line for line in lines)
    return proc.returncode, text.strip()


@pytest.mark.parametrize("text", ERROR_CASES)
def test_configuration_errors_are_exims(tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    d = tmp_path_factory.mktemp("err")
    d.chmod(0o755)
    conf = d / "exim.conf"
    conf.write_text(text)
    conf.chmod(0o644)
    assert _error(PYXIM, conf) == _error(oracle.exim_command(), conf)

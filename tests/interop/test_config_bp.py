"""-bP against the real Exim on the same configuration files.

Options whose defaults are legitimately different are left out of the
comparison: paths (Debian's Exim lives in /var/spool/exim4, pyxim in its own
places), the Exim user and group Debian compiles in, the malware scanner
Debian configures, and pyxim's own additions (DMARC, DCC, Brightmail,
dns_nameservers, LIMITS), which Debian's Exim does not have.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.interop import oracle

pytestmark = pytest.mark.skipif(oracle.EXIM is None, reason="exim4 not installed")

BUILD_DEPENDENT = (
    "av_scanner", "exim_group", "exim_path", "exim_user", "log_file_path", "pid_file_path",
    "process_log_path", "spool_directory",
)
PYXIM_ONLY = (
    "bmi_config_file", "dcc_direct_add_header", "dccifd_address", "dccifd_options", "dmarc_forensic_sender",
    "dmarc_history_file", "dmarc_tld_file", "dns_nameservers", "limits_advertise_hosts", "arc_sign", "server_tls",
)

CONFIG = """\
primary_hostname = mail.example.org
qualify_domain = example.org
message_size_limit = 20M
smtp_accept_max = 50
auto_thaw = 1h
no_accept_8bitmime
domainlist local_domains = @ : example.org
acl_smtp_rcpt = acl_check_rcpt
begin acl
acl_check_rcpt:
  accept
begin routers
dnslookup:
  driver = dnslookup
  domains = ! +local_domains
  transport = remote_smtp
  no_more
system_aliases:
  driver = redirect
  data = ${lookup{$local_part}lsearch{/etc/aliases}}
  allow_fail
localuser:
  driver = accept
  check_local_user
  transport = local_delivery
smart:
  driver = manualroute
  route_list = * smarthost.example.org
  transport = remote_smtp
begin transports
remote_smtp:
  driver = smtp
  hosts_try_prdr = *
  dkim_domain = example.org
local_delivery:
  driver = appendfile
  file = /var/mail/$local_part
  delivery_date_add
  mode = 0600
bsmtp:
  driver = pipe
  command = /usr/bin/true
  timeout = 1h
lmtp:
  driver = lmtp
  socket = /run/lmtp
reply:
  driver = autoreply
begin authenticators
plain:
  driver = plaintext
  public_name = PLAIN
  server_condition = ${if eq{$auth3}{secret}}
cram:
  driver = cram_md5
  public_name = CRAM-MD5
  server_secret = secret
"""


def bp(command: list[str], conf: Path, *names: str) -> list[str]:
    proc = subprocess.run(command + ["-C", str(conf), "-bP", *names], capture_output=True, text=True, timeout=120)
    return [
        line
        for line in proc.stdout.splitlines()
        if not any(line.lstrip("no_").startswith(name) for name in BUILD_DEPENDENT + PYXIM_ONLY)
    ]


@pytest.fixture(scope="module")
def conf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bp") / "exim.conf"
    path.write_text(CONFIG)
    path.chmod(0o644)
    path.parent.chmod(0o755)
    return path


PYXIM = [sys.executable, "-m", "pyxim"]


def test_all_main_options(conf: Path) -> None:
    assert bp(PYXIM, conf) == bp(oracle.exim_command(), conf)


@pytest.mark.parametrize(
    "names",
    [
        ("router_list",),
        ("transport_list",),
        ("authenticator_list",),
        ("routers",),
        ("transports",),
        ("router", "system_aliases"),
        ("transport", "remote_smtp"),
        ("authenticator", "plain"),
        ("+local_domains",),
        ("primary_hostname", "message_size_limit", "auto_thaw", "accept_8bitmime", "nosuch"),
        ("config_file",),
    ],
)
def test_selected_listings(conf: Path, names: tuple[str, ...]) -> None:
    assert bp(PYXIM, conf, *names) == bp(oracle.exim_command(), conf, *names)

"""$spf_used_domain, $spf_result_guessed, the HELO identity for an empty sender, RFC 7208's limits (10 DNS
lookups, 2 void lookups) and the older result names, through SMTP sessions against the tests' DNS server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_spf_rfc7208 import _session, _zone
from tests.support.dnsserver import DnsServer

ZONE = {
    "helo.example.net": [{"TXT": "v=spf1 ip4:192.0.2.10 -all"}, {"A": "192.0.2.10"}],
    "sender.example.com": [{"TXT": "v=spf1 ip4:192.0.2.20 -all"}],
    "nospf.example.com": [{"A": "192.0.2.30"}],
    "many.example.com": [{"TXT": "v=spf1 " + " ".join(f"a:h{i}.example.com" for i in range(11)) + " -all"}],
    "ten.example.com": [{"TXT": "v=spf1 " + " ".join(f"a:h{i}.example.com" for i in range(10)) + " -all"}],
    "void.example.com": [{"TXT": "v=spf1 a:v1.example.com a:v2.example.com a:v3.example.com -all"}],
    "twovoid.example.com": [{"TXT": "v=spf1 a:v1.example.com a:v2.example.com ?all"}],
    **{f"h{i}.example.com": [{"A": f"198.51.100.{i + 1}"}] for i in range(11)},
}

CONF = """\
primary_hostname = mail.example.org
qualify_domain = example.org
dns_nameservers = {dns}
dns_retrans = 1s
dns_retry = 1
acl_smtp_mail = mail
begin acl
mail:
  warn    spf_guess = pass : fail : softfail : neutral : none : permerror : temperror
          logwrite = RESULT $spf_result used=$spf_used_domain guessed=$spf_result_guessed
  warn    spf = err_perm
          logwrite = matched the old name
  accept
"""


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from pyxim.config import load_config

    with DnsServer(zone_files=[]) as server:
        zone, _ = _zone(ZONE)
        server.zones[:] = [zone]
        conf: Path = tmp_path_factory.mktemp("spf") / "spf.conf"
        conf.write_text(CONF.format(dns=server.option))
        yield load_config(str(conf))


def _result(config: object, host: str, helo: str, mailfrom: str) -> list[str]:
    _, logged = _session(config, {"host": host, "helo": helo, "mailfrom": mailfrom})
    return [
        line.split(" ", 1)[1] if line[:1].isdigit() and " " in line else line
        for line in logged
        if "RESULT" in line or "old name" in line or "deprecated" in line
    ]


def _lines(config: object, host: str, helo: str, mailfrom: str) -> list[str]:
    return [
        line[line.index("RESULT") :] if "RESULT" in line else line
        for line in _result(config, host, helo, mailfrom)
    ]


def test_used_domain_is_the_sender_domain(config: object) -> None:
    assert _lines(config, "192.0.2.20", "helo.example.net", "a@sender.example.com")[0] == (
        "RESULT pass used=sender.example.com guessed=no"
    )


def test_empty_sender_checks_the_helo_name(config: object) -> None:
    assert (
        _lines(config, "192.0.2.10", "helo.example.net", "")[0]
        == "RESULT pass used=helo.example.net guessed=no"
    )
    assert (
        _lines(config, "192.0.2.99", "helo.example.net", "")[0]
        == "RESULT fail used=helo.example.net guessed=no"
    )


def test_spf_guess_is_used_when_the_domain_has_no_record(config: object) -> None:
    # the default spf_guess record is "v=spf1 a/24 mx/24 ptr ?all": 192.0.2.31 is in nospf's /24
    assert _lines(config, "192.0.2.31", "helo.example.net", "a@nospf.example.com")[0] == (
        "RESULT pass used=nospf.example.com guessed=yes"
    )


def test_ten_lookups_are_allowed_eleven_are_a_permerror(config: object) -> None:
    assert _lines(config, "198.51.100.10", "x.example.net", "a@ten.example.com")[0].startswith("RESULT pass")
    lines = _lines(config, "198.51.100.11", "x.example.net", "a@many.example.com")
    assert lines[0].startswith("RESULT permerror")


def test_two_void_lookups_are_allowed_a_third_is_a_permerror(config: object) -> None:
    assert _lines(config, "203.0.113.1", "x.example.net", "a@twovoid.example.com")[0].startswith(
        "RESULT neutral"
    )
    lines = _lines(config, "203.0.113.1", "x.example.net", "a@void.example.com")
    assert lines[0].startswith("RESULT permerror")
    # err_perm, the older name of permerror, still matches, with a deprecation line in the main log
    assert any(line.endswith('spf result name "err_perm" is deprecated; use "permerror"') for line in lines)
    assert any(line.endswith("matched the old name") for line in lines)


EXIM_ACL = """\
primary_hostname = mail.example.org
qualify_domain = example.org
spool_directory = {work}/spool
log_file_path = {work}/%slog
{extra}acl_smtp_mail = mail
begin acl
mail:
  warn    spf = pass : fail : softfail : neutral : none : permerror : temperror
          logwrite = spf=$spf_result
  accept
"""


@pytest.mark.parametrize(
    ("client", "helo", "sender"),
    [
        ("198.51.100.9", "spf-pass.example.test", ""),  # empty sender: the HELO name is checked
        ("198.51.100.10", "spf-pass.example.test", ""),
        ("198.51.100.9", "spf-fail.example.test", "a@spf-pass.example.test"),
    ],
)
def test_identity_matches_exim(dns_server: DnsServer, client: str, helo: str, sender: str) -> None:
    """Exim (libspf2) and pyxim agree on the identity checked (the HELO name for an empty sender), asking the
    tests' DNS server. ($spf_used_domain is newer than Exim 4.96, which does not know it.)"""
    import os
    import shutil
    import subprocess
    import sys

    from tests.integration.test_dnsdb_exim import EXIM, ROOT, _can_use_namespaces, _workdir

    if not _can_use_namespaces():
        pytest.skip("needs root, unshare, ip and exim4")
    work = _workdir()
    try:
        exim_conf, pyxim_conf = work / "exim.conf", work / "pyxim.conf"
        exim_conf.write_text(EXIM_ACL.format(work=work, extra=""))
        pyxim_conf.write_text(EXIM_ACL.format(work=work, extra=f"dns_nameservers = {dns_server.option}\n"))
        os.chmod(exim_conf, 0o644)
        resolv = work / "resolv.conf"
        resolv.write_text("nameserver 127.0.0.1\n")
        os.chmod(resolv, 0o644)
        session = f"HELO {helo}\r\nMAIL FROM:<{sender}>\r\nQUIT\r\n"
        script = (
            f"ip link set lo up && mount --bind {resolv} /etc/resolv.conf && exec {sys.executable} -m "
            f"tests.support.dnsserver --port 53 -- {EXIM} -C {exim_conf} -bh {client}"
        )
        exim = subprocess.run(
            ["unshare", "--mount", "--net", "--", "sh", "-c", script],
            input=session,
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=120,
        )
        mine = subprocess.run(
            [sys.executable, "-m", "pyxim", "-C", str(pyxim_conf), "-bh", client],
            input=session,
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=120,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def lines(text: str) -> list[str]:
        return [line for line in text.split("\n") if line.startswith("LOG: spf=")]

    assert lines(exim.stdout + exim.stderr), exim.stdout + exim.stderr
    assert lines(mine.stdout + mine.stderr) == lines(exim.stdout + exim.stderr)

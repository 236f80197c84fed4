"""ratelimit with a clock the test controls and a real hints database."""

from __future__ import annotations

from pathlib import Path

from pyxim.acl.engine import AclState, run_acl
from pyxim.config import load_config
from pyxim.expand import ExpansionContext

CONF = """\
primary_hostname = mail.example.org
spool_directory = {spool}
begin acl
check:
  deny  ratelimit = 3 / 1h / per_rcpt / {mode}
        message = rate $sender_rate over $sender_rate_limit per $sender_rate_period
  accept
"""


def make(tmp_path: Path, mode: str):  # type: ignore[no-untyped-def]
    (tmp_path / "c.conf").write_text(CONF.replace("{spool}", str(tmp_path / "spool")).replace("{mode}", mode))
    config = load_config(str(tmp_path / "c.conf"))
    clock = [1_800_000_000.0]

    def attempt(host: str = "192.0.2.1"):  # type: ignore[no-untyped-def]
        ctx = ExpansionContext(config=config, variables={"sender_host_address": host}, now=lambda: clock[0])
        return run_acl(config, "check", ctx, AclState())

    return attempt, clock


def test_burst_is_limited_then_recovers(tmp_path: Path) -> None:
    attempt, clock = make(tmp_path, "leaky")
    verdicts = []
    for _ in range(10):
        clock[0] += 1
        verdicts.append(attempt().verdict)
    assert verdicts[:3] == ["accept"] * 3
    assert "deny" in verdicts
    denied = next(r for r in (attempt(),) if r.verdict == "deny")
    assert denied.message.startswith("rate ") and denied.message.endswith(" over 3 per 1h")
    assert attempt("192.0.2.99").verdict == "accept"  # another client has its own rate
    clock[0] += 6 * 3600  # hours later the rate has decayed
    assert attempt().verdict == "accept"


def test_strict_keeps_counting(tmp_path: Path) -> None:
    (tmp_path / "l").mkdir()
    (tmp_path / "s").mkdir()
    leaky, clock_l = make(tmp_path / "l", "leaky")
    strict, clock_s = make(tmp_path / "s", "strict")
    for _ in range(30):
        clock_l[0] += 10
        clock_s[0] += 10
        leaky()
        strict()
    # both are over the limit now; after 2h the leaky client is allowed again sooner
    clock_l[0] += 7200
    clock_s[0] += 7200
    assert leaky().verdict == "accept"
    assert strict().verdict == "deny"

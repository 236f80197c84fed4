"""Retries follow the retry section, with a clock the test controls: not before the interval,
again after it, and a bounce once the rule's last cutoff has passed."""

from __future__ import annotations

from pathlib import Path

from pyxim.config import load_config
from pyxim.delivery.engine import deliver_message
from pyxim.spool.format import Recipient, SpoolHeader, SpoolMessage
from pyxim.spool.ids import MessageIdGenerator
from pyxim.spool.store import Spool

CONF = """\
primary_hostname = t.example
qualify_domain = t.example
spool_directory = ROOT/spool
begin routers
later:
  driver = redirect
  local_parts = later
  allow_defer
  data = :defer: mailbox busy
hole:
  driver = redirect
  data = :blackhole:
begin retry
*   *   F,1h,10m
"""


def test_retry_schedule(tmp_path: Path) -> None:
    (tmp_path / "c.conf").write_text(CONF.replace("ROOT", str(tmp_path)))
    config = load_config(str(tmp_path / "c.conf"))
    spool = Spool(tmp_path / "spool")
    start = 1_800_000_000.0
    mid = MessageIdGenerator().new_id()
    spool.write(SpoolMessage(mid, "s@t.example", [Recipient("later@t.example")], [SpoolHeader.of("Subject: r\n")],
                             start), b"body\n")
    lines: list[str] = []

    def attempt(minutes: float) -> str:
        now = start + minutes * 60
        return deliver_message(config, spool, mid, lines.append, clock=lambda: now).state

    assert attempt(0) == "deferred"
    assert lines[-1] == f"{mid} == later@t.example R=later defer (-1): mailbox busy"
    assert attempt(5) == "deferred"  # 5 minutes later: the 10-minute interval has not passed
    assert lines[-1] == f"{mid} == later@t.example routing defer (-52): retry time not reached"
    assert attempt(11) == "deferred"  # past it: tried again
    assert lines[-1] == f"{mid} == later@t.example R=later defer (-1): mailbox busy"
    assert attempt(15) == "deferred" and lines[-1].endswith("retry time not reached")
    assert attempt(61) == "completed"  # past the rule's 1-hour cutoff: the address fails
    assert f"{mid} ** later@t.example: retry timeout exceeded" in lines
    assert any(" <= <> R=" + mid in line for line in lines)  # and the sender is told

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


HOST_CONF = """\
primary_hostname = t.example
qualify_domain = t.example
spool_directory = ROOT/spool
begin routers
hole:
  driver = redirect
  domains = t.example
  data = :blackhole:
dead:
  driver = manualroute
  route_list = * 127.0.0.3
  self = send
  transport = remote
begin transports
remote:
  driver = smtp
  port = PORT
  connect_timeout = 2s
begin retry
*   *   F,1h,10m
"""


def test_host_retry_schedule(tmp_path: Path) -> None:
    """A host that refuses connections: a second message waits for the host's retry time, a forced
    delivery tries it, and past the rule's cutoff the addresses fail."""
    from tests.support.dnsserver import free_port

    text = HOST_CONF.replace("ROOT", str(tmp_path)).replace("PORT", str(free_port("127.0.0.3")))
    (tmp_path / "c.conf").write_text(text)
    config = load_config(str(tmp_path / "c.conf"))
    spool = Spool(tmp_path / "spool")
    start = 1_800_000_000.0
    ids = []
    for n in range(2):
        mid = MessageIdGenerator().new_id()
        spool.write(SpoolMessage(mid, "s@t.example", [Recipient(f"r{n}@remote.example")],
                                 [SpoolHeader.of("Subject: r\n")], start), b"body\n")
        ids.append(mid)
    lines: list[str] = []

    def attempt(n: int, minutes: float, force: bool = False) -> str:
        now = start + minutes * 60
        return deliver_message(config, spool, ids[n], lines.append, clock=lambda: now, ignore_retry=force).state

    assert attempt(0, 0) == "deferred"
    assert lines[-1] == f"{ids[0]} == r0@remote.example R=dead T=remote defer (111): Connection refused"
    assert attempt(1, 1) == "deferred"  # the other message: the host is not tried
    assert lines[-1] == (f"{ids[1]} == r1@remote.example R=dead T=remote defer (-54): "
                         "retry time not reached for any host for 'remote.example'")
    assert attempt(1, 2, force=True) == "deferred"  # -M: tried all the same
    assert lines[-1].endswith("defer (111): Connection refused")
    # the forced try at 2 minutes set the next try to 12
    assert attempt(0, 11) == "deferred" and lines[-1].endswith("retry time not reached for any host for 'remote.example'")
    assert attempt(0, 13) == "deferred" and lines[-1].endswith("defer (111): Connection refused")
    assert attempt(0, 61) == "completed"  # past the 1-hour cutoff: the host has timed out
    assert f"{ids[0]} ** r0@remote.example: retry timeout exceeded" in lines

"""The spool format: Exim's own -H files parse and are written back byte for byte; ids are unique."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyxim.expand.taint import Tainted
from pyxim.spool.format import Recipient, SpoolFormatError, SpoolHeader, SpoolMessage
from pyxim.spool.ids import MessageIdGenerator, id_time, is_message_id
from pyxim.spool.store import Spool

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "spool"


def test_exims_own_header_file_round_trips() -> None:
    raw = (FIXTURES / "1xVsXb-0001n2-0G-H").read_bytes()
    message = SpoolMessage.parse_header_file(raw)
    assert message.message_id == "1xVsXb-0001n2-0G"
    assert message.sender == "alice@example.com"
    assert [r.address for r in message.recipients] == ["bob@example.org", "carol@example.net"]
    assert message.headers[0].type == "P" and message.headers[0].text.startswith("Received: from root")
    assert message.options["received_protocol"] == "local"
    assert message.options["deliver_firsttime"] is None
    assert message.header_file() == raw


def test_dsn_recipients_and_tainted_options() -> None:
    r = Recipient("bob@example.org", orcpt="rfc822;Bob@Example.ORG", dsn_flags=0x12, errors_to="", pno=-1)
    assert Recipient.parse(r.line()) == r
    message = SpoolMessage(
        "1xVsXb-0001n2-0H", "a@b", [r, Recipient("c@d")], [SpoolHeader.of("Subject: hi\n")], 1795534483.5,
        options={"helo_name": Tainted("client.example"), "received_protocol": "esmtp", "host_address": "127.0.0.1.40000"},
        acl_vars={"m_note": "two\nlines", "c0": "x"},
        non_recipients=["c@d"],
    )
    text = message.header_file().decode()
    assert "--helo_name client.example\n" in text and "-received_protocol esmtp\n" in text
    assert "-aclm _note 9\ntwo\nlines\n" in text
    back = SpoolMessage.parse_header_file(message.header_file())
    assert back.acl_vars == {"m_note": "two\nlines", "c0": "x"}
    assert isinstance(back.options["helo_name"], Tainted)
    assert back.non_recipients == ["c@d"]
    assert back.recipients == message.recipients
    assert back.header_file() == message.header_file()


@pytest.mark.parametrize("bad", [b"", b"garbage\n", b"1xVsXb-0001n2-0G-H\nroot 0 0\nnot-angled\n", b"x-H\na b c\n<>\n1 0\nXX\nnope\n"])
def test_damaged_header_files_are_reported(bad: bytes) -> None:
    with pytest.raises(SpoolFormatError):
        SpoolMessage.parse_header_file(bad)


def test_message_ids_are_unique_and_ordered() -> None:
    now = [1795534483.0]

    def clock() -> float:
        return now[0]

    def sleep(t: float) -> None:
        now[0] += 0.25

    gen = MessageIdGenerator(clock=clock, sleep=sleep, pid=4242)
    ids = [gen.new_id() for _ in range(5000)]
    assert len(set(ids)) == 5000
    assert all(is_message_id(i) for i in ids)
    assert id_time(ids[0]) == 1795534483
    assert ids[0].split("-")[1] == "00016Q"  # 4242 = 1*62^2 + 6*62 + 26


def test_store_writes_whole_messages(tmp_path: Path) -> None:
    spool = Spool(tmp_path, split=True)
    message = SpoolMessage("1xVsXb-0001n2-0G", "a@b", [Recipient("c@d")], [SpoolHeader.of("Subject: x\n")], 1.0)
    spool.write(message, b"body\n")
    assert (tmp_path / "input" / "b" / "1xVsXb-0001n2-0G-H").exists()
    back, body = spool.read("1xVsXb-0001n2-0G")
    assert body == b"body\n" and back.sender == "a@b"
    assert list(spool.message_ids()) == ["1xVsXb-0001n2-0G"]
    # a -D file without its -H (a crash before the rename) is not a message
    (tmp_path / "input" / "b" / "1xVsXc-0001n2-0G-D").write_bytes(b"x")
    assert list(spool.message_ids()) == ["1xVsXb-0001n2-0G"]
    spool.remove("1xVsXb-0001n2-0G")
    assert list(spool.message_ids()) == []


def test_group_commit_serves_concurrent_writers(tmp_path: Path) -> None:
    import threading

    from pyxim.spool.store import GroupCommit

    spool = Spool(tmp_path, group=GroupCommit(tmp_path))
    assert spool.group is not None and spool.group.available
    gen = MessageIdGenerator()
    errors: list[Exception] = []

    def writer(n: int) -> None:
        try:
            for k in range(10):
                message = SpoolMessage(gen.new_id(), f"s{n}@x", [Recipient("r@y")], [SpoolHeader.of(f"Subject: {n}.{k}\n")], 1.0)
                spool.write(message, b"body\n")
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    ids = list(spool.message_ids())
    assert len(ids) == 200
    assert not list((tmp_path / "input").glob("hdr.*"))

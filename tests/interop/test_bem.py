"""-bem: pyxim and the real Exim read the same message files and expand the same strings.

The messages (fixtures/messages/*.eml) cover encoded words, folded and
repeated headers, address headers that a local message gets qualified,
Resent- headers, CRLF line ends and binary zeros, a first line that is not a
header, a leading "From " line, and bodies whose empty lines Exim's line count
skips. Exim adds a Message-Id: and a Date: of the moment (and message ids are
made from the time and the pid), so those are masked before comparing; their
format is checked in tests/unit/test_message.py.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.interop import oracle

pytestmark = pytest.mark.skipif(oracle.EXIM is None, reason="exim4 not installed")

EXPANSIONS = [
    "[$message_headers_raw]",
    "[$message_headers]",
    "[$message_body]",
    "[$message_body_end]",
    "size=$message_size body=$message_body_size lines=$message_linecount body_lines=$body_linecount",
    "zeros=$body_zerocount received=$received_count age=$message_age",
    "[$sender_address][$reply_address]",
    "[$h_subject:][$rh_subject:][$bh_subject:][$lh_subject:]",
    "[$h_from:][$bh_from:][$lh_from:][$header_From:]",
    "[$h_to:][$rh_to:][$lh_to:][$h_cc:][$lh_cc:][$h_bcc:][$h_sender:]",
    "[$h_reply-to:][$rh_reply-to:]",
    "[$h_resent-to:][$h_resent-reply-to:][$h_resent-from:][$h_resent-message-id:]",
    "[$h_received:][$lh_received:]",
    "[$h_x-enc:][$bh_x-enc:][$lh_x-enc:][$h_x-pair:][$bh_x-pair:]",
    "[$h_x-bad-charset:][$bh_x-bad-charset:][$h_x-raw:][$bh_x-raw:][$h_x-zero:][$bh_x-zero:]",
    "[$h_x-long-word:][$h_x-malformed:]",
    "[$h_x-folded:][$rh_x-folded:][$lh_x-folded:]",
    "[$h_x-dup:][$rh_x-dup:][$lh_x-dup:][$bh_x-dup:][$lh_x-first-empty:][$h_x-first-empty:]",
    "[$h_x-lower:][$h_X-LOWER:][$h_x-sp:][$h_x:][$h_:]",
    "[$h_nosuch:][$rh_nosuch:][$lh_nosuch:][$h_subject][$h_x-dup: and more]",
    "[${if def:h_x-dup:{y}{n}}][${if def:h_nosuch:{y}{n}}][${if def:rh_x-sp:{y}{n}}][${if !def:h_to:{y}{n}}]",
    "[${if def:message_headers{y}{n}}][${if def:message_body{y}{n}}][${if def:message_headers_raw{y}{n}}]",
    "[${lc:$h_subject:}][${strlen:$rh_subject:}][${listcount:$lh_x-dup:}][${listextract{2}{$lh_to:}}]",
    "[${if eq{$message_exim_id}{$message_id}{same}{different}}][${strlen:$message_exim_id}]",
    "[$h_message-id:][$h_date:][$h_resent-date:]",
]

MESSAGES = sorted(p.name for p in (oracle.FIXTURES / "messages").glob("*.eml"))

# Message ids (time and pid) and the Date: of the moment differ from run to run.
_MESSAGE_ID = re.compile(r"(?<![0-9A-Za-z])E?[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}(?![0-9A-Za-z])")
_DATE = re.compile(r"[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d [-+]\d{4}")


def _mask(text: str) -> str:
    return _DATE.sub("<date>", _MESSAGE_ID.sub("<id>", text))


def run(command: list[str], message: Path, work: Path, options: list[str]) -> list[str]:
    feed = ("\n" + oracle.MARKER + "\n").join(EXPANSIONS) + "\n"
    proc = subprocess.run(
        [*command, "-C", str(work / "fixtures" / "expand.conf"), *oracle._macros(work), *options]
        + ["-bem", str(message), "-be"],
        input=feed.encode(),
        capture_output=True,
        timeout=120,
        cwd=work,
        env=dict(os.environ, TZ="UTC", LANG="C"),
    )
    out = _mask(proc.stdout.decode("utf-8", "surrogateescape"))
    return oracle._split(out, len(EXPANSIONS))


@pytest.fixture(scope="module")
def work() -> Path:  # type: ignore[misc]
    path = oracle._workdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_there_are_messages() -> None:
    assert len(MESSAGES) >= 8


@pytest.mark.parametrize("options", [[], ["-oi"]], ids=["dot-ends", "oi"])
@pytest.mark.parametrize("name", MESSAGES)
def test_message_variables_match_exim(work: Path, name: str, options: list[str]) -> None:
    message = work / "fixtures" / "messages" / name
    exim = run(oracle.exim_command(), message, work, options)
    pyxim = run(oracle.pyxim_command(), message, work, options)
    assert list(zip(EXPANSIONS, pyxim, strict=True)) == list(zip(EXPANSIONS, exim, strict=True))

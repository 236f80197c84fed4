"""acl_smtp_dkim as a hook point: run once per dkim_verify_signers item before the DATA ACL.

Without a DKIM verifier (the DKIM module comes later) every signer is seen
unsigned, exactly as Exim sees a message without signatures: compared with
exim4 -bh. A registered verifier's results reach the ACL's $dkim_* variables.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from pyxim.config import load_config
from pyxim.policy import DkimResults, register_dkim_verifier
from pyxim.smtp.session import Peer, SmtpSession
from pyxim.spool.ids import MessageIdGenerator
from tests.interop import oracle

CONF = """\
primary_hostname = t.example
acl_smtp_rcpt = accept
acl_smtp_dkim = dkim
acl_smtp_data = data
dkim_verify_signers = example.com : $sender_address_domain
begin acl
dkim:
  warn   logwrite = dkim acl for $dkim_cur_signer status $dkim_verify_status reason <$dkim_verify_reason>
  deny   condition = ${if eq{$dkim_cur_signer}{bad.example}}
         message = no signature from $dkim_cur_signer
  deny   condition = ${if eq{$dkim_verify_status}{fail}}
         message = bad signature: $dkim_verify_reason
  accept
data:
  warn logwrite = data acl signers <$dkim_signers>
  accept
"""


def run_bh(command: list[str], conf: Path, sender_domain: str) -> list[str]:
    script = (f"HELO x\r\nMAIL FROM:<a@{sender_domain}>\r\nRCPT TO:<u@t.example>\r\nDATA\r\n"
              "Subject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n")
    proc = subprocess.run(command + ["-C", str(conf), "-bh", "127.0.0.1"], input=script.encode(),
                          capture_output=True, timeout=60)
    text = (proc.stdout + proc.stderr).decode()
    lines = [line.rstrip("\r") for line in text.split("\n") if re.match(r"(LOG: |\d\d\d )", line)]
    return [re.sub(r"[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}", "ID", line) for line in lines
            if not line.startswith("220 ")]


@pytest.mark.skipif(oracle.EXIM is None, reason="exim4 not installed")
@pytest.mark.parametrize("sender_domain", ["good.example", "bad.example"])
def test_unsigned_message_matches_exim(tmp_path: Path, sender_domain: str) -> None:
    tmp_path.chmod(0o755)
    conf = tmp_path / "dkim.conf"
    conf.write_text(CONF)
    conf.chmod(0o644)
    exim = run_bh([oracle.EXIM], conf, sender_domain)
    assert any("dkim acl for example.com status none" in line for line in exim)
    assert run_bh([sys.executable, "-m", "pyxim"], conf, sender_domain) == exim


def test_registered_verifier_feeds_the_acl(tmp_path: Path) -> None:
    (tmp_path / "c.conf").write_text(CONF)
    config = load_config(str(tmp_path / "c.conf"))
    seen: list[bytes] = []

    def verifier(ctx, message):  # type: ignore[no-untyped-def]
        seen.append(message)
        return DkimResults(
            ["example.com", "good.example"],
            {"example.com": {"dkim_verify_status": "fail", "dkim_verify_reason": "signature_incorrect",
                             "dkim_domain": "example.com"}},
        )

    logged: list[str] = []
    register_dkim_verifier(verifier)
    try:
        s = SmtpSession(config, Peer("127.0.0.1", 4000), lambda m, b: m.message_id,
                        MessageIdGenerator().new_id, log=logged.append)
        replies = "".join(s.feed(b"HELO x\r\nMAIL FROM:<a@good.example>\r\nRCPT TO:<u@t.example>\r\nDATA\r\n"
                                 b"Subject: x\r\n\r\nbody\r\n.\r\n").replies)
    finally:
        register_dkim_verifier(None)
    assert "550 bad signature: signature_incorrect\r\n" in replies
    assert seen and b"Subject: x" in seen[0]
    assert any(line.endswith("dkim acl for example.com status fail reason <signature_incorrect>")
               for line in logged)
    assert any(line.endswith("rejected DKIM : bad signature: signature_incorrect") for line in logged)

"""The delivery-status part of a bounce for a remote refusal, with and without the DSN extra information."""

from __future__ import annotations

from pathlib import Path

from pyxim.config import load_config
from pyxim.delivery.bounce import bounce_text
from pyxim.spool.format import Recipient, SpoolHeader, SpoolMessage

REASON = ("host mx.example [192.0.2.7]\n    SMTP error from remote mail server after RCPT TO:<a@r.example>:\n"
          "    550 unknown user")
INFO = {"a@r.example": {"ip": "192.0.2.7", "port": "587", "greeting": "220 mx.example ESMTP",
                        "helo_response": "250-mx.example Hello",
                        "diagnostic": "SMTP error from remote mail server after RCPT TO:<a@r.example>: 550 unknown user"}}


def report(tmp_path: Path, extra: str) -> str:
    (tmp_path / "c.conf").write_text("primary_hostname = t.example\n" + extra)
    config = load_config(str(tmp_path / "c.conf"))
    message = SpoolMessage("1xYoAA-000000-AA", "s@t.example", [Recipient("a@r.example")],
                           [SpoolHeader.of("Subject: x\n")], 0.0)
    return bounce_text(config, message, b"body\n", [("a@r.example", REASON, "a@r.example")], "B", INFO).decode()


def test_extra_information_is_on_by_default(tmp_path: Path) -> None:
    text = report(tmp_path, "")
    assert ("Remote-MTA: dns; mx.example\nRemote-MTA: X-ip; [192.0.2.7]:587\n"
            "X-Remote-MTA-smtp-greeting: X-str; 220 mx.example ESMTP\n"
            "X-Remote-MTA-helo-response: X-str; 250-mx.example Hello\n"
            "X-Exim-Diagnostic: X-str; SMTP error from remote mail server after RCPT TO:<a@r.example>: "
            "550 unknown user\nDiagnostic-Code: smtp; 550 unknown user\n") in text


def test_a_main_option_turns_it_off(tmp_path: Path) -> None:
    text = report(tmp_path, "dsn_extra_info = false\n")
    assert "Remote-MTA: dns; mx.example\nDiagnostic-Code: smtp; 550 unknown user\n" in text
    assert "X-" not in text.split("message/delivery-status", 1)[1].split("--B", 1)[0]

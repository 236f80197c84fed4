"""A warn statement whose condition defers is skipped with Exim's log line; other verbs defer."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from pyxim.acl.engine import AclState, run_acl
from pyxim.config import load_config
from pyxim.expand import ExpansionContext

CONF = """\
primary_hostname = mail.example.org
begin acl
check:
  {verb} udpsend = unresolvable.example : 9 : payload
  accept
"""


@pytest.mark.parametrize("verb", ["warn", "deny"])
def test_udpsend_name_lookup_failure(tmp_path: Path, verb: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # The name must not reach a real resolver (tests talk only to loopback), so
    # the failed lookup is simulated at the socket layer.
    def no_address(*args: object, **kw: object) -> list:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_address)
    (tmp_path / "c.conf").write_text(CONF.replace("{verb}", verb))
    config = load_config(str(tmp_path / "c.conf"))
    state = AclState()
    result = run_acl(config, "check", ExpansionContext(config=config), state)
    if verb == "warn":
        assert result.verdict == "accept"
        assert state.log_lines == [
            (True, 'Warning: ACL "warn" statement skipped: condition test deferred: '
                   'DNS lookup failed in "udpsend" modifier')
        ]
    else:
        assert result.verdict == "defer"
        assert result.defer_reason == 'DNS lookup failed in "udpsend" modifier'

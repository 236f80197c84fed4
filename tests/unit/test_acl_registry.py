"""Later modules extend the ACL engine through its registries, without editing it."""

from __future__ import annotations

from pathlib import Path

from pyxim.acl.engine import (
    CONDITIONS,
    CONTROL_HANDLERS,
    CONTROLS,
    AclState,
    acl_condition,
    register_control,
    run_acl,
)
from pyxim.config import load_config
from pyxim.expand import ExpansionContext

CONF = """\
primary_hostname = mail.example.org
begin acl
check:
  warn   control = pyxim_test_mark/level=$acl_m_level
  deny   pyxim_test_odd = $acl_m_level
         message = odd level
  accept
"""


def test_condition_and_control_from_a_module(tmp_path: Path) -> None:
    marks: list[str] = []

    @acl_condition("pyxim_test_odd")
    def odd(run, value):  # type: ignore[no-untyped-def]
        return int(run.expand(value)) % 2 == 1

    register_control("pyxim_test_mark", lambda run, text: marks.append(text))
    try:
        (tmp_path / "c.conf").write_text(CONF)
        config = load_config(str(tmp_path / "c.conf"))
        results = []
        for level in ("3", "4"):
            ctx = ExpansionContext(config=config)
            ctx.acl_vars["acl_m_level"] = level
            state = AclState()
            results.append(run_acl(config, "check", ctx, state))
            assert f"pyxim_test_mark/level={level}" in state.controls
    finally:
        CONDITIONS.pop("pyxim_test_odd", None)
        CONTROLS.discard("pyxim_test_mark")
        CONTROL_HANDLERS.pop("pyxim_test_mark", None)
    assert [(r.verdict, r.message) for r in results] == [("deny", "odd level"), ("accept", None)]
    assert marks == ["pyxim_test_mark/level=3", "pyxim_test_mark/level=4"]

"""passwd: the system's user database, as getpwnam() sees it.

    ${lookup passwd{root}}    "*:0:0:root:/root:/bin/bash"

A query-style lookup: the query is a login name; the result is the password
entry with the password field always `*` (Exim never shows it).
"""

from __future__ import annotations

import pwd
from typing import TYPE_CHECKING

from pyxim.lookups import register_lookup

if TYPE_CHECKING:  # pragma: no cover
    from pyxim.expand.context import ExpansionContext


class PasswordLookup:
    name = "passwd"
    query_style = True

    def find(
        self, ctx: ExpansionContext, filename: str | None, key: str, options: dict[str, str]
    ) -> str | None:
        try:
            pw = pwd.getpwnam(key)
        except (KeyError, ValueError):
            return None
        return f"*:{pw.pw_uid}:{pw.pw_gid}:{pw.pw_gecos}:{pw.pw_dir}:{pw.pw_shell}"


register_lookup(PasswordLookup())

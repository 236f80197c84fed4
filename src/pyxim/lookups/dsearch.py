"""dsearch: is there a directory entry with this name?"""

from __future__ import annotations

import os
import stat
from typing import TYPE_CHECKING

from pyxim.errors import ExpansionError, LookupDefer
from pyxim.lookups import register_lookup

if TYPE_CHECKING:  # pragma: no cover
    from pyxim.expand.context import ExpansionContext


class DirectorySearch:
    name = "dsearch"
    query_style = False

    def find(self, ctx: ExpansionContext, filename: str | None, key: str, options: dict[str, str]) -> str | None:
        directory = filename or ""
        if not os.path.isdir(directory):
            raise ExpansionError(f"failed to open {directory} for directory search: No such file or directory")
        if "/" in key:
            raise LookupDefer(f"key for dsearch lookup contains a slash: {key}")
        path = os.path.join(directory, key)
        try:
            st = os.lstat(path)
        except OSError:
            return None
        wanted = options.get("filter")
        if wanted == "file" and not stat.S_ISREG(st.st_mode):
            return None
        if wanted == "dir" and not stat.S_ISDIR(st.st_mode):
            return None
        if wanted == "subdir" and (not stat.S_ISDIR(st.st_mode) or key in (".", "..")):
            return None
        return path if options.get("ret") == "full" else key


register_lookup(DirectorySearch())

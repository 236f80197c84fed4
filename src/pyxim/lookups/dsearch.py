"""dsearch: is there a directory entry with this name?

    ${lookup{$local_part}dsearch{/home}}                 the name itself (untainted)
    ${lookup{$local_part}dsearch,ret=full{/home}}        the directory and the name
    ${lookup{$local_part}dsearch,filter=subdir{/home}}   only directories, not . or ..

Entries are examined with lstat(), so a symbolic link is neither a file nor a
directory for the filters. The result is a fresh, untainted string: dsearch is
the usual way to de-taint a local part against the file system.
"""

from __future__ import annotations

import os
import stat
from typing import TYPE_CHECKING

from pyxim.errors import ExpansionError, LookupDefer
from pyxim.lookups import register_lookup

if TYPE_CHECKING:  # pragma: no cover
    from pyxim.expand.context import ExpansionContext


def _filter_ok(wanted: str | None, key: str, mode: int) -> bool:
    if wanted == "file":
        return stat.S_ISREG(mode)
    if wanted == "dir":
        return stat.S_ISDIR(mode)
    if wanted == "subdir":
        return stat.S_ISDIR(mode) and key not in (".", "..")
    return True  # no filter, or one Exim does not know


class DirectorySearch:
    name = "dsearch"
    query_style = False

    def find(
        self, ctx: ExpansionContext, filename: str | None, key: str, options: dict[str, str]
    ) -> str | None:
        directory = filename or ""
        try:
            os.scandir(directory).close()  # Exim opens the directory first: its error comes first
        except OSError as exc:
            raise ExpansionError(f"failed to open {directory} for directory search: {exc.strerror}") from None
        if "/" in key:
            raise LookupDefer(f"key for dsearch lookup contains a slash: {key}")
        path = f"{directory}/{key}"
        try:
            st = os.lstat(path)
        except OSError:
            return None
        if not _filter_ok(options.get("filter"), key, st.st_mode):
            return None
        return str(path) if options.get("ret") == "full" else str(key)


register_lookup(DirectorySearch())

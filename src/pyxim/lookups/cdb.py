"""cdb: D. J. Bernstein's constant database (the files cdbmake and exim_cdb… build).

    ${lookup{$local_part}cdb{/etc/mail/aliases.cdb}}

A cdb file starts with 256 (position, slot count) pairs pointing at hash
tables; each slot holds (hash, record position); a record is (key length,
data length, key, data). Keys are matched exactly (case matters); the first
record with the key wins. The file is read once per modification.
"""

from __future__ import annotations

import os
import struct
from typing import TYPE_CHECKING

from pyxim.errors import ExpansionError
from pyxim.lookups import cached_file, register_lookup

if TYPE_CHECKING:  # pragma: no cover
    from pyxim.expand.context import ExpansionContext

HEADER_SIZE = 2048
_PAIR = struct.Struct("<II")


def cdb_hash(key: bytes) -> int:
    h = 5381
    for byte in key:
        h = ((h << 5) + h) ^ byte
        h &= 0xFFFFFFFF
    return h


def cdb_get(data: bytes, key: bytes) -> bytes | None:
    """The data of the first record with `key`, or None."""
    h = cdb_hash(key)
    table, slots = _PAIR.unpack_from(data, (h & 255) * 8)
    if slots == 0:
        return None
    slot = (h >> 8) % slots
    for _ in range(slots):
        at = table + slot * 8
        if at + 8 > len(data):
            return None  # a damaged file: nothing more to find
        stored, rec = _PAIR.unpack_from(data, at)
        if rec == 0:
            return None
        if stored == h and rec + 8 <= len(data):
            klen, dlen = _PAIR.unpack_from(data, rec)
            if data[rec + 8 : rec + 8 + klen] == key:
                return data[rec + 8 + klen : rec + 8 + klen + dlen]
        slot = (slot + 1) % slots
    return None


class ConstantDatabase:
    name = "cdb"
    query_style = False

    def find(
        self, ctx: ExpansionContext, filename: str | None, key: str, options: dict[str, str]
    ) -> str | None:
        path = filename or ""
        if os.path.isdir(path):  # Exim opens it, then fails to read the header
            raise ExpansionError(
                f"failed to open cannot read header from {path} for cdb lookup: Is a directory"
            )
        data = cached_file(ctx, "cdb", path, "cdb lookup", "cdb", lambda raw: raw)
        assert isinstance(data, bytes)
        if len(data) < HEADER_SIZE:
            raise ExpansionError(f"failed to open {path} too short for cdb lookup: Invalid argument")
        found = cdb_get(data, key.encode("utf-8", "surrogateescape"))
        return None if found is None else found.split(b"\x00", 1)[0].decode("utf-8", "surrogateescape")


register_lookup(ConstantDatabase())

"""Password checks for the crypteq condition: {md5} {sha1} {sha256} {crypt} {crypt16} and plain crypt(3)."""

from __future__ import annotations

import base64
import binascii
import ctypes
import ctypes.util
import hashlib
import hmac
from functools import lru_cache


@lru_cache(maxsize=1)
def _libcrypt():  # type: ignore[no-untyped-def]
    name = ctypes.util.find_library("crypt")
    if not name:
        return None
    lib = ctypes.CDLL(name)
    lib.crypt.restype = ctypes.c_char_p
    lib.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    return lib


def _crypt(password: bytes, salt: bytes) -> bytes | None:
    lib = _libcrypt()
    if lib is None:
        return None
    result = lib.crypt(password, salt)
    return result


def _digest_matches(digest: bytes, encoded: str) -> bool:
    text = encoded.strip()
    if len(text) == 2 * len(digest) and all(c in "0123456789abcdefABCDEF" for c in text):
        return hmac.compare_digest(digest.hex(), text.lower())
    try:
        return hmac.compare_digest(base64.b64decode(text, validate=True), digest)
    except (binascii.Error, ValueError):
        return False


def crypteq(password: str, encrypted: str) -> bool:
    pw = password.encode("utf-8", "surrogateescape")
    low = encrypted.lower()
    if low.startswith("{md5}"):
        return _digest_matches(hashlib.md5(pw).digest(), encrypted[5:])
    if low.startswith("{sha1}"):
        return _digest_matches(hashlib.sha1(pw).digest(), encrypted[6:])
    if low.startswith("{sha256}"):
        return _digest_matches(hashlib.sha256(pw).digest(), encrypted[8:])
    if low.startswith("{crypt}"):
        encrypted = encrypted[7:]
    elif low.startswith(("{crypt16}", "{des}")):
        encrypted = encrypted[encrypted.index("}") + 1 :]
    enc = encrypted.encode("utf-8", "surrogateescape")
    if len(enc) < 2:
        return False
    result = _crypt(pw, enc)
    return result is not None and hmac.compare_digest(result, enc)

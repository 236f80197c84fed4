"""Password checks for the crypteq condition: ${if crypteq{password}{encrypted}…}.

The encrypted text says how it was made:

  {md5}…     MD5 of the password, as 24 characters of base64 (compared
             exactly) or 32 hex digits (either case). Any other length fails.
  {sha1}…    SHA-1, likewise as 28 base64 characters or 40 hex digits.
  {crypt}…   the system's crypt(3) with the rest as its setting, so DES,
             $1$ (MD5), $5$, $6$, yescrypt… whatever libcrypt knows.
  {crypt16}… Exim's crypt16: DES over the first 8 characters and, for a
             longer password, DES again over the next 8 with a salt taken
             from the first result.
  no prefix  as {crypt}.

Any other "{" prefix is an error (Exim 4.96 knows no {sha256} here), and the
prefix names are caseless. Fewer than two characters after the prefix never
match: crypt() would happily agree with an empty string.

Python 3.13 dropped the crypt module, so crypt(3) is called in libcrypt
through ctypes.
"""

from __future__ import annotations

import base64
import ctypes
import ctypes.util
import errno
import hashlib
import os
import threading
from collections.abc import Callable
from functools import cache
from typing import Any

from pyxim.errors import ExpansionError

_LOCK = threading.Lock()  # crypt() returns a pointer into a static buffer


@cache
def _libcrypt() -> Any:
    name = ctypes.util.find_library("crypt")
    if not name:
        return None
    try:
        lib = ctypes.CDLL(name, use_errno=True)
        func = lib.crypt
    except (OSError, AttributeError):
        return None
    func.restype = ctypes.c_char_p
    func.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    return func


def system_crypt(password: bytes, setting: bytes) -> bytes | None:
    """crypt(3); None where it returns NULL (errno then says why)."""
    func = _libcrypt()
    if func is None:
        # No libcrypt: as if crypt() failed with ENOSYS.
        raise ExpansionError(f"crypt error: {os.strerror(errno.ENOSYS)}\n")
    with _LOCK:
        ctypes.set_errno(0)
        result = func(password, setting)
        err = ctypes.get_errno()
    if result is None:
        if err in (0, errno.EINVAL):
            return None
        # Exim's message really does end in a newline.
        raise ExpansionError(f"crypt error: {os.strerror(err)}\n")
    return bytes(result)


def crypt16(password: bytes, setting: bytes) -> bytes | None:
    """Exim's own crypt16(): two DES blocks of the password, 24 characters in all."""
    first = system_crypt(password, setting)
    if first is None:
        return None
    result = first[:13]
    if len(password) > 8 and len(result) == 13:
        second = system_crypt(password[8:], result[2:4])
        if second is not None:
            result += second[2:13]
    return result


def _digest_matches(digest: bytes, coded: bytes, b64_length: int, hex_length: int) -> bool:
    if len(coded) == b64_length:
        return base64.b64encode(digest) == coded
    if len(coded) == hex_length:
        return digest.hex().encode() == coded.lower()
    return False


def _crypt_matches(password: bytes, coded: bytes, method: Callable[[bytes, bytes], bytes | None]) -> bool:
    result = method(password, coded)
    if result is None or len(coded) < 2:
        return False
    return result == coded


def crypteq(password: str, encrypted: str) -> bool:
    """True when `password` encrypts to `encrypted` (see the module's docstring for the forms)."""
    pw = password.encode("utf-8", "surrogateescape")
    enc = encrypted.encode("utf-8", "surrogateescape")
    prefix = enc[:9].lower()
    if prefix.startswith(b"{md5}"):
        return _digest_matches(hashlib.md5(pw).digest(), enc[5:], 24, 32)
    if prefix.startswith(b"{sha1}"):
        return _digest_matches(hashlib.sha1(pw).digest(), enc[6:], 28, 40)
    if prefix.startswith(b"{crypt}"):
        return _crypt_matches(pw, enc[7:], system_crypt)
    if prefix.startswith(b"{crypt16}"):
        return _crypt_matches(pw, enc[9:], crypt16)
    if enc.startswith(b"{"):
        raise ExpansionError(f'unknown encryption mechanism in "{encrypted}"')
    return _crypt_matches(pw, enc, system_crypt)

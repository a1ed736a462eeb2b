"""Password hashing with scrypt (RFC 7914), in a self-describing string.

Parameters follow the OWASP password-storage guidance for scrypt (N = 2^15, r = 8, p = 3,
about 32 MiB per hash); they are stored with each hash so they can be raised later without
invalidating old hashes: `verify_password` reads them back, `needs_rehash` says when a hash
was made with weaker ones.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from functools import cache
from typing import Final

SCHEME: Final = "scrypt"
N: Final = 2**15
R: Final = 8
P: Final = 3
SALT_BYTES: Final = 16
KEY_BYTES: Final = 32
MAX_MEMORY_BYTES: Final = 256 * 1024 * 1024


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _derive(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=MAX_MEMORY_BYTES,
        dklen=KEY_BYTES,
    )  # fmt: skip


def hash_password(password: str) -> str:
    """A new salted hash of `password`: `scrypt$N$r$p$salt$key` (base64 parts)."""
    salt = secrets.token_bytes(SALT_BYTES)
    key = _derive(password, salt, N, R, P)
    return f"{SCHEME}${N}${R}${P}${_b64(salt)}${_b64(key)}"


def _parse(stored: str) -> tuple[int, int, int, bytes, bytes] | None:
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != SCHEME:
        return None
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        return n, r, p, base64.b64decode(parts[4]), base64.b64decode(parts[5])
    except ValueError:
        return None


def verify_password(password: str, stored: str | None) -> bool:
    """True when `password` matches `stored`; False for a missing or unreadable hash."""
    if stored is None:
        return False
    parsed = _parse(stored)
    if parsed is None:
        return False
    n, r, p, salt, key = parsed
    try:
        derived = _derive(password, salt, n, r, p)
    except ValueError:  # parameters scrypt refuses (or that would need too much memory)
        return False
    return hmac.compare_digest(derived, key)


def needs_rehash(stored: str) -> bool:
    """True when `stored` was made with parameters weaker than the current ones."""
    parsed = _parse(stored)
    return parsed is None or parsed[:3] != (N, R, P)


@cache
def decoy_hash() -> str:
    """A hash to check unknown users' passwords against, so that a sign-in takes as long
    whether or not the username exists."""
    return hash_password(secrets.token_urlsafe(16))

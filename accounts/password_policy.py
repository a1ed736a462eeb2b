"""Which passwords a person may choose (NIST SP 800-63B §5.1.1.2).

A password is refused when it is shorter than `MIN_PASSWORD_LENGTH`, longer than
`MAX_PASSWORD_LENGTH`, made of fewer than `MIN_DISTINCT_CHARACTERS` different characters,
contains the username, or is a commonly used password: the bundled list
(`accounts/data/common_passwords.txt`) is compared case-insensitively, also after taking
digits and symbols off both ends ("Summer2024!" is "summer") and after undoing the usual
letter-for-digit swaps ("p@ssw0rd" is "password"). No other composition rules: length and
not being guessable are what make a password strong.
"""

from __future__ import annotations

import string
from functools import cache
from pathlib import Path
from typing import Final

MIN_PASSWORD_LENGTH: Final = 10
MAX_PASSWORD_LENGTH: Final = 200
MIN_DISTINCT_CHARACTERS: Final = 5
COMMON_PASSWORDS_FILE: Final = Path(__file__).parent / "data" / "common_passwords.txt"
_EDGES: Final = string.digits + string.punctuation + string.whitespace
_UNSWAP: Final = str.maketrans({"@": "a", "4": "a", "0": "o", "1": "i", "!": "i", "3": "e",
                                "$": "s", "5": "s", "7": "t", "+": "t"})  # fmt: skip


@cache
def common_passwords() -> frozenset[str]:
    """The bundled list of common passwords, lower case."""
    lines = COMMON_PASSWORDS_FILE.read_text(encoding="utf-8").splitlines()
    return frozenset(
        line.strip().lower() for line in lines if line.strip() and not line.startswith("#")
    )


def _is_common(password: str) -> bool:
    lowered = password.lower()
    core = lowered.strip(_EDGES)
    candidates = {lowered, core, lowered.translate(_UNSWAP), core.translate(_UNSWAP)}
    candidates |= {candidate.replace(" ", "") for candidate in candidates}
    return not candidates.isdisjoint(common_passwords())


def password_problem(password: str, *, username: str | None = None) -> str | None:
    """Why `password` may not be used, in a sentence; None when it may."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"a password needs at least {MIN_PASSWORD_LENGTH} characters"
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"a password has at most {MAX_PASSWORD_LENGTH} characters"
    if len(set(password)) < MIN_DISTINCT_CHARACTERS:
        return f"a password needs at least {MIN_DISTINCT_CHARACTERS} different characters"
    if username and len(username) >= 3 and username.lower() in password.lower():
        return "a password must not contain the username"
    if _is_common(password):
        return "this password is among the most commonly used ones; choose another"
    return None

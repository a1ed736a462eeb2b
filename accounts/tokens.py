"""Bearer tokens: JWTs (RFC 7519) signed with HS256 under the platform's JWT secret.

A token only says who the caller is (`sub`, the username) and until when; the role and the
sites are read from the database on every request, so deactivating a user or changing their
sites takes effect at once, without waiting for tokens to expire.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final

import jwt

ALGORITHM: Final = "HS256"
ISSUER: Final = "liftledger"
DEFAULT_TTL_S: Final = 8 * 3600  # one working shift


class TokenError(Exception):
    """A token that is malformed, expired or not signed by this platform."""


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """What a valid token asserts."""

    username: str
    expires_at: dt.datetime


def issue_token(username: str, *, secret: str, now: dt.datetime, ttl_s: int = DEFAULT_TTL_S) -> str:
    """A signed token for `username`, valid for `ttl_s` seconds from `now`."""
    claims = {
        "sub": username,
        "iss": ISSUER,
        "iat": int(now.timestamp()),
        "exp": int(now.timestamp()) + ttl_s,
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def read_token(token: str, *, secret: str) -> TokenClaims:
    """The claims of a valid token; raises `TokenError` otherwise."""
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            options={"require": ["sub", "exp", "iat", "iss"]},
        )
    except jwt.PyJWTError as exc:
        raise TokenError(str(exc)) from exc
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise TokenError("the token names no user")
    return TokenClaims(subject, dt.datetime.fromtimestamp(claims["exp"], dt.UTC))

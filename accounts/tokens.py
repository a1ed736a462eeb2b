"""Bearer tokens: JWTs (RFC 7519) signed with HS256 under the platform's JWT secret.

A token says who the caller is (`sub`, the username), which generation of that user's
tokens it belongs to (`ver`, the user's `token_version`) and until when. The role, the
sites, the active flag and the current token version are read from the database on every
request, so deactivating a user, changing their password or revoking their tokens takes
effect at once, without waiting for tokens to expire.

No token lives longer than `MAX_TTL_S` (30 days): `issue_token` refuses a longer one and
`read_token` refuses a token whose lifetime (`exp - iat`) or remaining life is longer.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Final

import jwt

ALGORITHM: Final = "HS256"
ISSUER: Final = "liftledger"
DEFAULT_TTL_S: Final = 8 * 3600  # one working shift
MAX_TTL_S: Final = 30 * 86400  # a script's token is renewed at least monthly
CLOCK_SKEW_S: Final = 60  # an `iat` this far in the future is still accepted


class TokenError(Exception):
    """A token that is malformed, expired, too long-lived or not signed by this platform."""


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """What a valid token asserts."""

    username: str
    expires_at: dt.datetime
    version: int


def issue_token(
    username: str,
    *,
    secret: str,
    now: dt.datetime,
    ttl_s: int = DEFAULT_TTL_S,
    version: int = 0,
) -> str:
    """A signed token for `username` (token generation `version`), valid for `ttl_s`
    seconds from `now`; `ValueError` for a lifetime outside 1 s to `MAX_TTL_S`."""
    if not 1 <= ttl_s <= MAX_TTL_S:
        raise ValueError(f"a token lives between 1 s and {MAX_TTL_S // 86400} days")
    claims = {
        "sub": username,
        "iss": ISSUER,
        "iat": int(now.timestamp()),
        "exp": int(now.timestamp()) + ttl_s,
        "ver": version,
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def _integer(claims: dict[str, Any], name: str) -> int:
    value = claims.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise TokenError(f"the token's {name} is not an integer")
    return value


def read_token(token: str, *, secret: str, now: dt.datetime | None = None) -> TokenClaims:
    """The claims of a valid token; raises `TokenError` otherwise (never anything else)."""
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            options={"require": ["sub", "exp", "iat", "iss", "ver"]},
        )
    except jwt.PyJWTError as exc:
        raise TokenError(str(exc)) from exc
    except (OverflowError, ValueError, OSError) as exc:  # absurd numeric claims
        raise TokenError("the token's times are out of range") from exc
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise TokenError("the token names no user")
    issued, expires, version = (
        _integer(claims, "iat"),
        _integer(claims, "exp"),
        _integer(claims, "ver"),
    )
    current = int((now or dt.datetime.now(dt.UTC)).timestamp())
    if expires - issued > MAX_TTL_S or expires - current > MAX_TTL_S:
        raise TokenError(f"the token lives longer than {MAX_TTL_S // 86400} days")
    if issued > current + CLOCK_SKEW_S:
        raise TokenError("the token was issued in the future")
    if version < 0:
        raise TokenError("the token's version is negative")
    return TokenClaims(subject, dt.datetime.fromtimestamp(expires, dt.UTC), version)

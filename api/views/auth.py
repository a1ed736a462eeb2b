"""Sign-in (OAuth2 password flow issuing JWTs) and the caller's own record.

Sign-in attempts are limited per username at a client address, per client address and per
username from all addresses (`api.sign_in_limits`): past the allowed failures, every attempt
under that key is answered 429 `too_many_attempts` with `Retry-After` until the back-off has
passed, whatever the password.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel

from accounts.passwords import decoy_hash, verify_password
from accounts.tokens import DEFAULT_TTL_S, issue_token
from accounts.users import USERNAME_PATTERN, UserRecord, credentials_of
from api.deps import Context, CurrentUser, utc_now
from api.errors import ApiError, error_responses

router = APIRouter(prefix="/api/v1", tags=["auth"])


class Token(BaseModel):
    """A bearer token (RFC 6750) and how long it lasts."""

    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the RFC 6750 token type, not a secret
    expires_in: int


class UserOut(BaseModel):
    """A user as others see them."""

    id: int
    username: str
    full_name: str | None
    role: str
    sites: list[str]
    signer_address: str | None
    active: bool

    @classmethod
    def of(cls, user: UserRecord) -> UserOut:
        """From the service's record."""
        return cls(
            id=user.id, username=user.username, full_name=user.full_name, role=user.role,
            sites=list(user.sites), signer_address=user.signer_address, active=user.active,
        )  # fmt: skip


@router.post("/auth/token", responses=error_responses(401, 422, 429))
async def sign_in(
    form: Annotated[OAuth2PasswordRequestForm, Depends()], context: Context, request: Request
) -> Token:
    """Exchange a username and password for a bearer token (attempts are rate-limited)."""
    # A name no user can have is one key, so a flood of long random names stays small.
    username = form.username if USERNAME_PATTERN.match(form.username) else "<invalid>"
    address = request.client.host if request.client else "unknown"
    limiter = context.sign_in_limiter
    wait_s = limiter.begin(username, address)
    if wait_s is not None:
        raise ApiError(429, "too_many_attempts",
                       f"too many failed sign-ins; try again in {wait_s:.0f} s",
                       headers={"Retry-After": f"{wait_s:.0f}"})  # fmt: skip

    def load() -> tuple[UserRecord, str | None] | None:
        with context.pool.connection() as conn:
            return credentials_of(conn, form.username)

    succeeded: bool | None = None
    try:
        async with context.database_slots:  # the connection is released before hashing
            found = await asyncio.to_thread(load)
        user, stored = found if found is not None else (None, None)
        # scrypt takes tens of milliseconds and 32 MiB: a few at a time, never holding a
        # connection, and as long for an unknown user as for a known one.
        async with context.sign_in_slots:
            matches = await asyncio.to_thread(
                verify_password, form.password, stored or decoy_hash()
            )
        succeeded = user is not None and user.active and stored is not None and matches
    finally:
        limiter.finish(username, address, succeeded=succeeded)
    if not succeeded or user is None:
        raise ApiError(401, "bad_credentials", "unknown user, wrong password or deactivated",
                       headers={"WWW-Authenticate": "Bearer"})  # fmt: skip
    token = issue_token(user.username, secret=context.jwt_secret, now=utc_now(),
                        version=user.token_version)  # fmt: skip
    return Token(access_token=token, expires_in=DEFAULT_TTL_S)


@router.get("/auth/me", responses=error_responses(401))
def who_am_i(user: CurrentUser) -> UserOut:
    """The caller's own record: role and sites."""
    return UserOut.of(user)

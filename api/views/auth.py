"""Sign-in (OAuth2 password flow issuing JWTs) and the caller's own record."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel

from accounts.tokens import DEFAULT_TTL_S, issue_token
from accounts.users import UserRecord, authenticate
from api.deps import Conn, Context, CurrentUser, utc_now
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


@router.post("/auth/token", responses=error_responses(401, 422))
def sign_in(
    form: Annotated[OAuth2PasswordRequestForm, Depends()], context: Context, conn: Conn
) -> Token:
    """Exchange a username and password for a bearer token."""
    user = authenticate(conn, form.username, form.password)
    if user is None:
        raise ApiError(401, "bad_credentials", "unknown user, wrong password or deactivated",
                       headers={"WWW-Authenticate": "Bearer"})  # fmt: skip
    token = issue_token(user.username, secret=context.jwt_secret, now=utc_now())
    return Token(access_token=token, expires_in=DEFAULT_TTL_S)


@router.get("/auth/me", responses=error_responses(401))
def who_am_i(user: CurrentUser) -> UserOut:
    """The caller's own record: role and sites."""
    return UserOut.of(user)

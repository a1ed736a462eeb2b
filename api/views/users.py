"""User management (admins): list, add, change role, sites, signing key or password, and
revoke a user's tokens. A password must pass `accounts.password_policy` (422
`weak_password`); the last active admin cannot be demoted or deactivated (409
`last_admin`); a signing key belongs to one user only (409 `signer_taken`)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, status
from pydantic import BaseModel, Field

from accounts.password_policy import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH
from accounts.users import create_user, get_user, revoke_tokens, update_user, user_page
from api.deps import Admin, Conn
from api.errors import error_responses, existing
from api.pagination import Cursor, Limit, Page, int_cursor, next_cursor
from api.types import Flag, Identifier
from api.views.auth import UserOut

router = APIRouter(prefix="/api/v1/users", tags=["users"])

Role = Literal["crew", "supervisor", "admin"]
Username = Annotated[str, Path(min_length=1, max_length=64)]
Signer = Annotated[str, Field(pattern=r"^0x[0-9a-fA-F]{40}$")]


class UserIn(BaseModel):
    """A new user."""

    username: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]*$")
    role: Role
    sites: list[Identifier] = Field(default_factory=list, max_length=500)
    password: str | None = Field(
        default=None, min_length=MIN_PASSWORD_LENGTH, max_length=MAX_PASSWORD_LENGTH
    )
    full_name: str | None = Field(default=None, max_length=200)
    signer_address: Signer | None = None


class UserChange(BaseModel):
    """Fields to change; those left out stay as they are."""

    role: Role | None = None
    sites: list[Identifier] | None = Field(default=None, max_length=500)
    password: str | None = Field(
        default=None, min_length=MIN_PASSWORD_LENGTH, max_length=MAX_PASSWORD_LENGTH
    )
    full_name: str | None = Field(default=None, max_length=200)
    signer_address: Signer | None = None
    active: Flag | None = None


@router.get("", responses=error_responses(401, 403, 422))
def get_users(conn: Conn, admin: Admin, limit: Limit = 50, cursor: Cursor = None) -> Page[UserOut]:
    """Every user, a page at a time."""
    found = user_page(conn, after_id=int_cursor(cursor), limit=limit)
    return Page[UserOut](items=[UserOut.of(user) for user in found.rows],
                         next_cursor=next_cursor(found))  # fmt: skip


@router.post("", status_code=status.HTTP_201_CREATED, responses=error_responses(401, 403, 409, 422))
def add_user(body: UserIn, conn: Conn, admin: Admin) -> UserOut:
    """Add a crew member, supervisor or admin."""
    user = create_user(conn, **body.model_dump())
    conn.commit()
    return UserOut.of(user)


@router.get("/{username}", responses=error_responses(401, 403, 404, 422))
def get_one_user(username: Username, conn: Conn, admin: Admin) -> UserOut:
    """One user."""
    return UserOut.of(existing(get_user(conn, username), f"user {username}"))


@router.put("/{username}", responses=error_responses(401, 403, 404, 409, 422))
def change_user(username: Username, body: UserChange, conn: Conn, admin: Admin) -> UserOut:
    """Change a user's role, sites, signing key, password, name or active flag. A new
    password or a deactivation ends every token the user holds."""
    user = update_user(conn, username, **body.model_dump())
    conn.commit()
    return UserOut.of(user)


@router.post("/{username}/revoke-tokens", responses=error_responses(401, 403, 404, 422))
def revoke_user_tokens(username: Username, conn: Conn, admin: Admin) -> UserOut:
    """End every token the user holds now (a lost phone, a leaked script token); tokens
    issued afterwards work."""
    user = revoke_tokens(conn, username)
    conn.commit()
    return UserOut.of(user)

"""Request dependencies as `Annotated` aliases: the connection, the caller, their role.

Every route names the caller it needs (`CurrentUser`, `Supervisor`, `Admin`, `CrewMember`);
the site checks live in `require_site`, which every route touching one elevator calls.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any

import psycopg
from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from accounts.tokens import TokenClaims, TokenError, read_token
from accounts.users import UserRecord, get_user
from api.context import ApiContext
from api.errors import ApiError, existing, forbidden
from core.fleet import site_of

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)

_UNAUTHENTICATED = {"WWW-Authenticate": "Bearer"}


async def get_context(request: Request) -> ApiContext:
    """The process's shared state (async: no thread-pool hop for an attribute read)."""
    context: ApiContext = request.app.state.context
    return context


Context = Annotated[ApiContext, Depends(get_context)]


async def database_slot(context: Context) -> AsyncIterator[None]:
    """Wait, on the event loop, for one of the pool's connections to be free.

    Sync dependencies run on a thread pool of 40; if more requests than the database pool
    holds waited for a connection *in* those threads, the requests holding connections
    would find no thread left for their next step, and everything would stall until the
    pool timed out. Waiting here costs no thread.
    """
    async with context.database_slots:
        yield


def get_connection(
    context: Context, _: Annotated[None, Depends(database_slot)]
) -> Iterator[psycopg.Connection[Any]]:
    """A pooled connection for the request; a write route commits before it answers."""
    try:
        with context.pool.connection() as conn:
            yield conn
    except psycopg.OperationalError as exc:
        raise ApiError(503, "database_unavailable", f"the database is unavailable: {exc}") from exc


Conn = Annotated[psycopg.Connection[Any], Depends(get_connection)]


def bearer_claims(context: ApiContext, token: str | None) -> TokenClaims:
    """What a valid bearer token says; 401 for a missing or invalid one."""
    if not token:
        raise ApiError(401, "not_authenticated", "a bearer token is required",
                       headers=_UNAUTHENTICATED)  # fmt: skip
    try:
        return read_token(token, secret=context.jwt_secret)
    except TokenError as exc:
        raise ApiError(401, "invalid_token", f"the bearer token is not valid: {exc}",
                       headers=_UNAUTHENTICATED) from exc  # fmt: skip


def active_user(user: UserRecord | None, claims: TokenClaims) -> UserRecord:
    """The token's user when it exists, is active and has not revoked the token (a password
    change, a deactivation or a revocation since it was issued); 401 otherwise."""
    if user is None or not user.active:
        raise ApiError(401, "invalid_token", "the token's user is unknown or deactivated",
                       headers=_UNAUTHENTICATED)  # fmt: skip
    if user.token_version != claims.version:
        raise ApiError(401, "invalid_token", "the token has been revoked; sign in again",
                       headers=_UNAUTHENTICATED)  # fmt: skip
    return user


def get_current_user(
    context: Context, conn: Conn, token: Annotated[str | None, Depends(oauth2_scheme)]
) -> UserRecord:
    """The active user the bearer token names; 401 otherwise."""
    claims = bearer_claims(context, token)
    return active_user(get_user(conn, claims.username), claims)


CurrentUser = Annotated[UserRecord, Depends(get_current_user)]


def _role_in(*roles: str) -> Any:
    # async: a check this cheap should not cost a hop to the thread pool.
    async def check(user: CurrentUser) -> UserRecord:
        if user.role not in roles:
            raise forbidden(f"this needs the role {' or '.join(roles)}; you are {user.role}")
        return user

    return Depends(check)


# Who may do what (SPEC §6): crew acts on its sites; supervisors read everything; admins manage.
Reader = CurrentUser  # any role; lists are limited to the caller's sites
Auditor = Annotated[UserRecord, _role_in("supervisor", "admin")]


async def get_auditor_briefly(
    context: Context, token: Annotated[str | None, Depends(oauth2_scheme)]
) -> UserRecord:
    """A supervisor or admin, checked with a connection held only for the check: for a
    route that then waits (a shared job) without needing the database itself."""
    claims = bearer_claims(context, token)

    def load() -> UserRecord | None:
        with context.pool.connection() as conn:
            return get_user(conn, claims.username)

    async with context.database_slots:
        user = active_user(await asyncio.to_thread(load), claims)
    if user.role not in {"supervisor", "admin"}:
        raise forbidden(f"this needs the role supervisor or admin; you are {user.role}")
    return user


WaitingAuditor = Annotated[UserRecord, Depends(get_auditor_briefly)]
Admin = Annotated[UserRecord, _role_in("admin")]
CrewMember = Annotated[UserRecord, _role_in("crew")]


def elevator_site(conn: psycopg.Connection[Any], elevator_id: str) -> str:
    """The site of an elevator; 404 when it is not registered."""
    return existing(site_of(conn, elevator_id), f"elevator {elevator_id}")


def require_site(user: UserRecord, site_id: str, what: str) -> None:
    """403 unless `user` may see `site_id`."""
    if not user.can_see_site(site_id):
        raise forbidden(f"{what} is on site {site_id}, which is not one of your sites")


def utc_now() -> dt.datetime:
    """The server's time, for workflow steps and reports."""
    return dt.datetime.now(dt.UTC)

"""User records: who may sign in, with which role, on which sites (SPEC §6).

Roles: `crew` acts on the alerts, elevators and maintenance of its sites only; `supervisor`
reads everything (audit and reports included) and changes nothing; `admin` manages the
registry and the users. Every function works in the caller's transaction.

Each user has a `token_version` that every bearer token names; changing the password,
deactivating the user or `revoke_tokens` adds one, which ends every token issued before.
The last active admin can be neither demoted nor deactivated, so the platform always keeps
someone who can manage it.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, Final

import psycopg
from psycopg.rows import dict_row

from accounts.password_policy import password_problem
from accounts.passwords import hash_password
from core.errors import Refused
from core.pages import KeysetPage, page_of

ROLES: Final = ("crew", "supervisor", "admin")
USERNAME_PATTERN: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
SIGNER_PATTERN: Final = re.compile(r"^0x[0-9a-fA-F]{40}$")
_USER_COLUMNS: Final = (
    "u.id, u.username, u.full_name, u.role, u.signer_address, u.active, u.password_hash, "
    "u.token_version, "
    "coalesce(array_agg(us.site_id ORDER BY us.site_id) FILTER (WHERE us.site_id IS NOT NULL),"
    " '{}') AS sites"
)
_SELECT_USERS: Final = (
    f"SELECT {_USER_COLUMNS} FROM users u LEFT JOIN user_sites us ON us.user_id = u.id"  # noqa: S608
)


class AccountError(Refused):
    """A user change that is refused; `code` says why, `field` names the input at fault."""


@dataclass(frozen=True, slots=True)
class UserRecord:
    """A user as the API and the CLI see it (never the password hash)."""

    id: int
    username: str
    full_name: str | None
    role: str
    sites: tuple[str, ...]
    signer_address: str | None
    active: bool
    token_version: int = 0

    @property
    def sees_all_sites(self) -> bool:
        """Supervisors and admins see every site; crew only their own."""
        return self.role != "crew"

    def can_see_site(self, site_id: str) -> bool:
        """True when the user may see (and, for crew, act on) `site_id`."""
        return self.sees_all_sites or site_id in self.sites

    @property
    def site_scope(self) -> tuple[str, ...] | None:
        """The sites a query must be limited to, or None for all."""
        return None if self.sees_all_sites else self.sites


def _record(row: dict[str, Any]) -> UserRecord:
    return UserRecord(
        id=int(row["id"]),
        username=row["username"],
        full_name=row["full_name"],
        role=row["role"],
        sites=tuple(row["sites"]),
        signer_address=row["signer_address"],
        active=bool(row["active"]),
        token_version=int(row["token_version"]),
    )


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise AccountError(
            f"role must be one of {', '.join(ROLES)}, not {role!r}", code="bad_role", field="role"
        )


def _check_password(password: str, username: str) -> None:
    problem = password_problem(password, username=username)
    if problem is not None:
        raise AccountError(problem, code="weak_password", field="password")


def _keep_an_admin(conn: psycopg.Connection[Any], user: UserRecord) -> None:
    """Refuse to demote or deactivate the last active admin.

    The active admins' rows are locked first, so two admins demoting each other at the
    same time cannot both succeed."""
    rows = conn.execute(
        "SELECT id FROM users WHERE role = 'admin' AND active ORDER BY id FOR UPDATE"
    ).fetchall()
    if not any(int(row[0]) != user.id for row in rows):
        raise AccountError(
            f"{user.username} is the last active admin: make another admin first",
            code="last_admin",
            field="role",
        )


def _check_signer(address: str | None) -> None:
    if address is not None and not SIGNER_PATTERN.match(address):
        raise AccountError(
            "signer_address must be 0x followed by 40 hex digits",
            code="bad_signer_address",
            field="signer_address",
        )


def _check_signer_free(
    conn: psycopg.Connection[Any], address: str | None, user_id: int | None
) -> None:
    """A signing key belongs to one user at most (unique index `ux_users_signer_address`)."""
    if address is None:
        return
    row = conn.execute(
        "SELECT username FROM users WHERE lower(signer_address) = lower(%s) AND id <> %s",
        (address, user_id if user_id is not None else -1),
    ).fetchone()
    if row is not None:
        raise AccountError(
            f"signer {address} is already registered to {row[0]}: a signing key belongs to "
            "one user only",
            code="signer_taken",
            field="signer_address",
        )


def _set_sites(conn: psycopg.Connection[Any], user_id: int, sites: Collection[str]) -> None:
    wanted = sorted(set(sites))
    if wanted:
        known = {
            row[0] for row in conn.execute("SELECT id FROM sites WHERE id = ANY(%s)", (wanted,))
        }
        unknown = [site for site in wanted if site not in known]
        if unknown:
            raise AccountError(
                f"unknown site(s): {', '.join(unknown)}", code="unknown_site", field="sites"
            )
    conn.execute("DELETE FROM user_sites WHERE user_id = %s", (user_id,))
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO user_sites (user_id, site_id) VALUES (%s, %s)",
            [(user_id, site) for site in wanted],
        )


def get_user(conn: psycopg.Connection[Any], username: str) -> UserRecord | None:
    """The user called `username`, active or not."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            _SELECT_USERS + " WHERE u.username = %s GROUP BY u.id", (username,)
        ).fetchone()
    return _record(row) if row else None


def list_users(
    conn: psycopg.Connection[Any], *, after_id: int = 0, limit: int = 100
) -> list[UserRecord]:
    """Users in id order, a page at a time."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            _SELECT_USERS + " WHERE u.id > %s GROUP BY u.id ORDER BY u.id LIMIT %s",
            (after_id, limit),
        ).fetchall()
    return [_record(row) for row in rows]


def user_page(
    conn: psycopg.Connection[Any], *, after_id: int | None = None, limit: int = 50
) -> KeysetPage[UserRecord]:
    """One page of users in id order after `after_id`, and the id to continue after."""
    users = list_users(conn, after_id=after_id or 0, limit=limit + 1)
    return page_of(users, limit, lambda user: user.id)


def credentials_of(
    conn: psycopg.Connection[Any], username: str
) -> tuple[UserRecord, str | None] | None:
    """A user and their stored password hash, for signing in; the hash never leaves here
    except to `accounts.passwords.verify_password`."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            _SELECT_USERS + " WHERE u.username = %s GROUP BY u.id", (username,)
        ).fetchone()
    return (_record(row), row["password_hash"]) if row else None


def create_user(
    conn: psycopg.Connection[Any],
    *,
    username: str,
    role: str,
    sites: Sequence[str] = (),
    password: str | None = None,
    full_name: str | None = None,
    signer_address: str | None = None,
) -> UserRecord:
    """Add a user; a user without a password can hold tokens but not sign in with one."""
    if not USERNAME_PATTERN.match(username):
        raise AccountError(
            "a username is 1-64 letters, digits, '.', '_', '@' or '-', starting with a letter "
            "or digit",
            code="bad_username",
            field="username",
        )
    _check_role(role)
    _check_signer(signer_address)
    if password is not None:
        _check_password(password, username)
    if role == "crew" and not sites:
        raise AccountError("a crew member needs at least one site", code="no_sites", field="sites")
    _check_signer_free(conn, signer_address, None)
    row = conn.execute(
        "INSERT INTO users (username, full_name, role, password_hash, signer_address) "
        "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (username) DO NOTHING RETURNING id",
        (username, full_name, role, hash_password(password) if password else None,
         signer_address),
    ).fetchone()  # fmt: skip
    if row is None:
        raise AccountError(f"user {username} already exists", code="user_exists", field="username")
    _set_sites(conn, int(row[0]), sites)
    created = get_user(conn, username)
    if created is None:
        raise RuntimeError("a user just inserted is not readable")
    return created


def update_user(
    conn: psycopg.Connection[Any],
    username: str,
    *,
    role: str | None = None,
    sites: Sequence[str] | None = None,
    password: str | None = None,
    full_name: str | None = None,
    signer_address: str | None = None,
    active: bool | None = None,
) -> UserRecord:
    """Change the given fields of a user; None leaves a field as it is."""
    user = get_user(conn, username)
    if user is None:
        raise AccountError(f"user {username} does not exist", code="user_not_found")
    if role is not None:
        _check_role(role)
    _check_signer(signer_address)
    if password is not None:
        _check_password(password, username)
    new_role = role or user.role
    new_sites = user.sites if sites is None else tuple(sites)
    if new_role == "crew" and not new_sites:
        raise AccountError("a crew member needs at least one site", code="no_sites", field="sites")
    if user.role == "admin" and user.active and (new_role != "admin" or active is False):
        _keep_an_admin(conn, user)
    _check_signer_free(conn, signer_address, user.id)
    # A new password or a deactivation ends every token issued before.
    revoke = password is not None or (active is False and user.active)
    conn.execute(
        "UPDATE users SET role = %s, full_name = coalesce(%s, full_name), "
        "signer_address = coalesce(%s, signer_address), active = coalesce(%s, active), "
        "password_hash = coalesce(%s, password_hash), "
        "token_version = token_version + %s WHERE id = %s",
        (new_role, full_name, signer_address, active,
         hash_password(password) if password else None, 1 if revoke else 0, user.id),
    )  # fmt: skip
    if sites is not None:
        _set_sites(conn, user.id, sites)
    updated = get_user(conn, username)
    if updated is None:
        raise RuntimeError("a user just updated is not readable")
    return updated


def revoke_tokens(conn: psycopg.Connection[Any], username: str) -> UserRecord:
    """End every token issued to `username` so far (their next token works)."""
    row = conn.execute(
        "UPDATE users SET token_version = token_version + 1 WHERE username = %s RETURNING id",
        (username,),
    ).fetchone()
    user = get_user(conn, username) if row is not None else None
    if user is None:
        raise AccountError(f"user {username} does not exist", code="user_not_found")
    return user

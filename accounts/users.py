"""User records: who may sign in, with which role, on which sites (SPEC §6).

Roles: `crew` acts on the alerts, elevators and maintenance of its sites only; `supervisor`
reads everything (audit and reports included) and changes nothing; `admin` manages the
registry and the users. Every function works in the caller's transaction.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, Final

import psycopg
from psycopg.rows import dict_row

from accounts.passwords import MIN_PASSWORD_LENGTH, hash_password
from core.errors import LiftLedgerError

ROLES: Final = ("crew", "supervisor", "admin")
USERNAME_PATTERN: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
SIGNER_PATTERN: Final = re.compile(r"^0x[0-9a-fA-F]{40}$")
_USER_COLUMNS: Final = (
    "u.id, u.username, u.full_name, u.role, u.signer_address, u.active, u.password_hash, "
    "coalesce(array_agg(us.site_id ORDER BY us.site_id) FILTER (WHERE us.site_id IS NOT NULL),"
    " '{}') AS sites"
)
_SELECT_USERS: Final = (
    f"SELECT {_USER_COLUMNS} FROM users u LEFT JOIN user_sites us ON us.user_id = u.id"  # noqa: S608
)


class AccountError(LiftLedgerError):
    """A user change that is refused; `code` says why, `field` names the input at fault."""

    def __init__(self, message: str, *, code: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.field = field


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
    )


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise AccountError(
            f"role must be one of {', '.join(ROLES)}, not {role!r}", code="bad_role", field="role"
        )


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(
            f"a password needs at least {MIN_PASSWORD_LENGTH} characters",
            code="weak_password",
            field="password",
        )


def _check_signer(address: str | None) -> None:
    if address is not None and not SIGNER_PATTERN.match(address):
        raise AccountError(
            "signer_address must be 0x followed by 40 hex digits",
            code="bad_signer_address",
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
        _check_password(password)
    if role == "crew" and not sites:
        raise AccountError("a crew member needs at least one site", code="no_sites", field="sites")
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
        _check_password(password)
    new_role = role or user.role
    new_sites = user.sites if sites is None else tuple(sites)
    if new_role == "crew" and not new_sites:
        raise AccountError("a crew member needs at least one site", code="no_sites", field="sites")
    conn.execute(
        "UPDATE users SET role = %s, full_name = coalesce(%s, full_name), "
        "signer_address = coalesce(%s, signer_address), active = coalesce(%s, active), "
        "password_hash = coalesce(%s, password_hash) WHERE id = %s",
        (new_role, full_name, signer_address, active,
         hash_password(password) if password else None, user.id),
    )  # fmt: skip
    if sites is not None:
        _set_sites(conn, user.id, sites)
    updated = get_user(conn, username)
    if updated is None:
        raise RuntimeError("a user just updated is not readable")
    return updated

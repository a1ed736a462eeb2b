"""Reaching the database: its URLs, connection checks, and the engine for migrations.

Every process talks to PostgreSQL at run time through psycopg, on connections it opens with
`psycopg.connect(libpq_url(url))` and passes down; SQL lives in the module of its domain.
SQLAlchemy is the schema of record only: `core.models` describes every table, Alembic
(`core.migrate`) creates them over an engine from `create_engine_from_url`, and tests compare
the two. Nothing connects at import time.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import psycopg
import sqlalchemy as sa
from sqlalchemy import Engine

from core.errors import DatabaseAuthError, ServiceUnreachable

CONNECT_TIMEOUT_S = 5


def sqlalchemy_url(url: str) -> str:
    """Turn a `postgresql://` URL into the SQLAlchemy form that selects psycopg 3."""
    parts = urlsplit(url)
    if parts.scheme in {"postgresql", "postgres"}:
        parts = parts._replace(scheme="postgresql+psycopg")
    return urlunsplit(parts)


def libpq_url(url: str) -> str:
    """Turn any accepted database URL into the plain form libpq and psycopg take."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(scheme="postgresql"))


def redacted(url: str) -> str:
    """The URL with its password replaced by `***`, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def create_engine_from_url(url: str, *, pool_size: int = 5) -> Engine:
    """A SQLAlchemy engine over psycopg 3 for `url`, for the migrations; connects lazily."""
    return sa.create_engine(
        sqlalchemy_url(url),
        pool_size=pool_size,
        pool_pre_ping=True,
        connect_args={"connect_timeout": CONNECT_TIMEOUT_S},
    )


@contextmanager
def translate_connect_errors(url: str) -> Iterator[None]:
    """Turn connection failures into one-line errors that name the problem and the fix."""
    try:
        yield
    except (psycopg.OperationalError, sa.exc.OperationalError) as exc:
        raise describe_connect_error(url, exc) from exc


def describe_connect_error(url: str, exc: BaseException) -> Exception:
    """Classify a failed connection attempt as an auth problem or an unreachable server."""
    text = str(getattr(exc, "orig", None) or exc)
    where = redacted(url)
    if "password authentication failed" in text or "no password supplied" in text:
        return DatabaseAuthError(
            f"the database at {where} refused the password: fix the password in "
            "LIFTLEDGER_DATABASE_URL (or unset it to use the local stack)"
        )
    if "does not exist" in text and "database" in text:
        return ServiceUnreachable(
            f"the database named in {where} does not exist: create it or fix "
            "LIFTLEDGER_DATABASE_URL"
        )
    first_line = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return ServiceUnreachable(
        f"cannot connect to the database at {where} ({first_line}): start it with "
        "`liftledger stack up` or fix LIFTLEDGER_DATABASE_URL"
    )


def check_database(url: str) -> str:
    """Connect once and describe the server and its TimescaleDB; raise a one-line error."""
    with (
        translate_connect_errors(url),
        psycopg.connect(libpq_url(url), connect_timeout=CONNECT_TIMEOUT_S) as conn,
    ):
        row = conn.execute(
            "SELECT current_setting('server_version'), "
            "(SELECT default_version FROM pg_available_extensions WHERE name = 'timescaledb'), "
            "current_setting('timescaledb.license', true)"
        ).fetchone()
    server, timescaledb, license_ = row if row else ("?", None, None)
    if timescaledb is None:
        return f"PostgreSQL {server}, TimescaleDB NOT available"
    edition = license_ or "extension not created yet: run `liftledger db upgrade`"
    return f"PostgreSQL {server}, TimescaleDB {timescaledb} ({edition})"

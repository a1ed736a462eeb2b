"""Databases of a test's own, for tests whose checks read the whole database."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from core.db import create_engine_from_url, libpq_url
from core.migrate import upgrade
from core.settings import Settings


@contextmanager
def migrated_database(settings: Settings, name: str) -> Iterator[str]:
    """Database `name` on the stack, created afresh and migrated; its libpq URL. Dropped at
    the end."""
    main = libpq_url(settings.resolved_database_url())
    database = sql.Identifier(name)
    with psycopg.connect(main, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(database))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(database))
    url = urlunsplit(urlsplit(main)._replace(path=f"/{name}"))
    engine = create_engine_from_url(url, pool_size=1)
    try:
        upgrade(engine, telemetry_chunk_hours=settings.telemetry_chunk_hours)
    finally:
        engine.dispose()
    try:
        yield url
    finally:
        with psycopg.connect(main, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(database))

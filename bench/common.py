"""What every benchmark needs: a database of its own, created fresh and migrated."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from core.db import create_engine_from_url, libpq_url
from core.migrate import upgrade
from core.settings import Settings


def database_url(settings: Settings, suffix: str) -> str:
    """The URL of the benchmark database `<name>_<suffix>` next to the configured one."""
    main = libpq_url(settings.resolved_database_url())
    name = f"{urlsplit(main).path.lstrip('/') or 'liftledger'}_{suffix}"
    return urlunsplit(urlsplit(main)._replace(path=f"/{name}"))


def fresh_database(settings: Settings, suffix: str) -> str:
    """Drop and recreate `<name>_<suffix>` next to the configured database, migrated; its URL."""
    main = libpq_url(settings.resolved_database_url())
    url = database_url(settings, suffix)
    with psycopg.connect(main, autocommit=True) as conn:
        ident = sql.Identifier(urlsplit(url).path.lstrip("/"))
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(ident))
    engine = create_engine_from_url(url, pool_size=1)
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    return url

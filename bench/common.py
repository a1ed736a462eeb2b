"""What the benchmarks share: a database of their own, created fresh and migrated, a synthetic
fleet registered in it, and latency percentiles."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from core.db import create_engine_from_url, libpq_url
from core.migrate import upgrade
from core.registry import upsert_registry
from core.settings import Settings
from simulators.specs import synthetic_registry


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


def percentiles(values_ms: Sequence[float]) -> tuple[float, float, float, float]:
    """p50, p95, p99 and the maximum of some latencies."""
    cuts = statistics.quantiles(values_ms, n=100, method="inclusive")
    return cuts[49], cuts[94], cuts[98], max(values_ms)


def register_fleet(url: str, elevators: int) -> list[str]:
    """Register `elevators` synthetic elevators (seed 1) in the database at `url`; their ids."""
    registry = synthetic_registry(elevators, seed=1)
    with psycopg.connect(libpq_url(url)) as conn:
        upsert_registry(conn, registry)
    return [str(row["id"]) for row in registry.elevators]

"""What the benchmarks share: their options, a database of their own, created fresh and
migrated, a synthetic fleet registered in it, device accounts in the local broker and the
open-file limits their connections need, latency percentiles, and their printed figures."""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from core.db import create_engine_from_url, libpq_url
from core.migrate import upgrade
from core.registry import upsert_registry
from core.settings import Settings, load_settings
from liftledger import stack
from liftledger.stack.mosquitto import LocalMosquitto
from simulators.specs import synthetic_registry

# Files a benchmark process (and the broker) keeps open besides one socket per connection.
RESERVED_FDS = 256
LABEL_WIDTH = 28


def parse_options(
    name: str, doc: str | None, argv: Sequence[str] | None, **defaults: float
) -> argparse.Namespace:
    """The options of `python -m bench.<name>`: one `--option` per keyword, of its default's
    type (`baseline_seconds=5.0` is `--baseline-seconds`, a float, 5.0 when not given)."""
    parser = argparse.ArgumentParser(prog=f"python -m bench.{name}", description=doc)
    for option, default in defaults.items():
        parser.add_argument(f"--{option.replace('_', '-')}", type=type(default), default=default)
    return parser.parse_args(argv)


def local_stack_settings() -> Settings:
    """The settings, when they name the local stack's broker; exits otherwise."""
    settings = load_settings()
    if not settings.local_mqtt:
        raise SystemExit("this benchmark registers accounts in the local broker: use the stack")
    return settings


@contextmanager
def broker_accounts(settings: Settings, accounts: Iterable[tuple[str, str]]) -> Iterator[None]:
    """Device accounts for (site, elevator) `accounts` in the local broker, next to the
    registry's own elevators, for the time of the block; the registry's alone after it."""
    registered = stack.registered_elevators(settings)
    stack.sync_broker_auth(settings, [*registered, *accounts])
    time.sleep(1.0)  # SIGHUP reload is asynchronous
    try:
        yield
    finally:
        stack.sync_broker_auth(settings, registered)


def raise_file_limit(needed: int) -> int:
    """Raise this process's soft open-file limit to `needed` (up to the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return int(soft)


def broker_file_limit(settings: Settings) -> int | None:
    """The running local broker's soft open-file limit, when it can be read."""
    pid = LocalMosquitto(settings).pid()
    if pid is None:
        return None
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            value = line.split()[3]
            return None if value == "unlimited" else int(value)
    return None


def require_file_limits(settings: Settings, connections: int) -> None:
    """Exit unless this process and the local broker may each hold `connections` sockets."""
    needed = connections + RESERVED_FDS
    fd_limit = raise_file_limit(needed)
    if fd_limit < needed:
        raise SystemExit(f"open-file limit {fd_limit} is too low for {connections} connections")
    broker_limit = broker_file_limit(settings)
    if broker_limit is not None and broker_limit < needed:
        raise SystemExit(
            f"the broker may open only {broker_limit} files, too few for {connections} connections"
        )


def print_figures(figures: Iterable[tuple[str, str]]) -> None:
    """Print (label, value) rows, the values in one column."""
    for label, value in figures:
        print(f"{label:<{LABEL_WIDTH}}{value}")


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

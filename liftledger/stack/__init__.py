"""`liftledger stack up|down|status|env`: the local TimescaleDB, Mosquitto and Anvil.

A service whose URL is set in the settings is external: the stack neither starts nor stops
it, and only reports whether it answers.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path

import psycopg

from core.db import create_engine_from_url, libpq_url, redacted
from core.errors import InstallError
from core.migrate import current_revision
from core.registry import elevator_topics
from core.settings import Settings
from liftledger.stack.anvil import LocalAnvil
from liftledger.stack.install import ensure_postgres, find_postgres
from liftledger.stack.mosquitto import LocalMosquitto
from liftledger.stack.postgres import LocalPostgres
from liftledger.stack.probe import service_report

Say = Callable[[str], None]

__all__ = [
    "down",
    "env_lines",
    "local_postgres",
    "registered_elevators",
    "status",
    "sync_broker_auth",
    "up",
]


def _tools_dir(settings: Settings) -> Path:
    if settings.tools_dir is None:
        raise InstallError(
            "the local chain is installed from the project's package-lock.json, which this "
            "installation lacks: set LIFTLEDGER_TOOLS_DIR to a checkout or LIFTLEDGER_CHAIN_URL "
            "to an existing chain"
        )
    return settings.tools_dir


def local_postgres(settings: Settings) -> LocalPostgres:
    """The stack's PostgreSQL cluster (not necessarily running)."""
    return LocalPostgres(settings, find_postgres())


def sync_broker_auth(settings: Settings, elevators: list[tuple[str, str]]) -> bool:
    """Write the local broker's accounts for `elevators` and reload it; True when changed."""
    if not settings.local_mqtt:
        return False
    broker = LocalMosquitto(settings)
    changed = broker.write_auth(elevators)
    if changed:
        broker.reload()
    return changed


def registered_elevators(settings: Settings) -> list[tuple[str, str]]:
    """(site, elevator) pairs from the database, or none before the first migration."""
    engine = create_engine_from_url(settings.resolved_database_url(), pool_size=1)
    try:
        if current_revision(engine) is None:
            return []
    finally:
        engine.dispose()
    with psycopg.connect(libpq_url(settings.resolved_database_url())) as conn:
        return elevator_topics(conn)


def up(settings: Settings, *, say: Say) -> None:
    """Install what is missing and start every local service; harmless when already up."""
    if settings.local_database:
        install = ensure_postgres(settings)
        postgres = LocalPostgres(settings, install)
        postgres.start()
        say(f"timescaledb  up  {postgres.cluster_dir()}")
    else:
        say("timescaledb  external (LIFTLEDGER_DATABASE_URL)")
    if settings.local_mqtt:
        broker = LocalMosquitto(settings)
        if broker.write_auth(registered_elevators(settings)):
            broker.reload()
        broker.start()
        say(f"mosquitto    up  {broker.config}")
    else:
        say("mosquitto    external (LIFTLEDGER_MQTT_URL)")
    if settings.local_chain:
        chain = LocalAnvil(settings, _tools_dir(settings))
        chain.start()
        say(f"anvil        up  {chain.state_file}")
    else:
        say("anvil        external (LIFTLEDGER_CHAIN_URL)")


def down(settings: Settings, *, say: Say) -> None:
    """Stop the local services this stack started; leave everything else alone."""
    if settings.local_chain:
        stopped = LocalAnvil(settings, settings.tools_dir or Path.cwd()).stop()
        say(f"anvil        {'stopped' if stopped else 'was not running'}")
    if settings.local_mqtt:
        stopped = LocalMosquitto(settings).stop()
        say(f"mosquitto    {'stopped' if stopped else 'was not running'}")
    if settings.local_database:
        stopped = local_postgres(settings).stop()
        say(f"timescaledb  {'stopped' if stopped else 'was not running'}")


def status(settings: Settings, *, say: Say) -> bool:
    """Print each service, its URL and whether it answers; True when all answer."""
    healthy = True
    for name, url, answers, detail in service_report(settings):
        origin = "local" if _is_local(settings, name) else "external"
        state = "answers" if answers else "DOWN"
        say(f"{name:<12} {state:<8} {origin:<8} {redacted(url)}  {detail if answers else ''}")
        if not answers:
            healthy = False
            say(f"error: {detail}")
    if settings.local_mqtt:
        dropped = LocalMosquitto(settings).dropped_clients()
        if dropped:
            healthy = False
            say(f"error: the broker dropped queued messages ({len(dropped)} times); last: "
                f"{dropped[-1]} — see docs/ingest.md, Backpressure")  # fmt: skip
    return healthy


def _is_local(settings: Settings, service: str) -> bool:
    return {
        "timescaledb": settings.local_database,
        "mosquitto": settings.local_mqtt,
        "anvil": settings.local_chain,
    }[service]


def env_lines(settings: Settings) -> list[str]:
    """Shell `export` lines for the service URLs (SPEC §2)."""
    values = {
        "LIFTLEDGER_DATABASE_URL": settings.resolved_database_url(),
        "LIFTLEDGER_MQTT_URL": settings.resolved_mqtt_url(),
        "LIFTLEDGER_CHAIN_URL": settings.resolved_chain_url(),
        "LIFTLEDGER_API_URL": settings.resolved_api_url(),
    }
    return [f"export {name}={shlex.quote(value)}" for name, value in values.items()]

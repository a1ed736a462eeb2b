"""`stack`, `db` and `elevators`: the local services, the schema and the elevator registry."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import psycopg

from core.credentials import device_credentials
from core.db import create_engine_from_url, libpq_url, translate_connect_errors
from core.errors import RegistryError
from core.fleet import get_elevator
from core.migrate import current_revision, head_revision, upgrade
from core.registry import SAMPLE_REGISTRY, elevator_topics, import_registry
from core.settings import Settings
from liftledger import stack
from liftledger.commands.common import add_command, add_group, require_schema, say


def cmd_stack_up(args: argparse.Namespace, settings: Settings) -> int:
    """Install what is missing and start the local services."""
    stack.up(settings, say=say)
    return 0


def cmd_stack_down(args: argparse.Namespace, settings: Settings) -> int:
    """Stop the local services this stack started."""
    stack.down(settings, say=say)
    return 0


def cmd_stack_status(args: argparse.Namespace, settings: Settings) -> int:
    """Print each service, its URL and whether it answers."""
    return 0 if stack.status(settings, say=say) else 1


def cmd_stack_env(args: argparse.Namespace, settings: Settings) -> int:
    """Print the service URLs as shell `export` lines."""
    for line in stack.env_lines(settings):
        print(line)
    return 0


def cmd_db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    """Apply the schema migrations."""
    engine = create_engine_from_url(settings.resolved_database_url(), pool_size=1)
    try:
        upgrade(engine, telemetry_chunk_hours=settings.telemetry_chunk_hours)
        say(f"database schema at revision {current_revision(engine)} (head {head_revision()})")
    finally:
        engine.dispose()
    return 0


def cmd_elevators_import(args: argparse.Namespace, settings: Settings) -> int:
    """Load a registry CSV and give each elevator its broker account."""
    path: Path = SAMPLE_REGISTRY if args.file == "sample" else Path(args.file)
    url = settings.resolved_database_url()
    require_schema(url)
    with translate_connect_errors(url), psycopg.connect(libpq_url(url)) as conn:
        result = import_registry(conn, path)
        conn.commit()
        topics = elevator_topics(conn)
    stack.sync_broker_auth(settings, topics)
    say(f"imported {result.elevators} elevators in {result.sites} sites from {path}")
    return 0


def cmd_elevators_credentials(args: argparse.Namespace, settings: Settings) -> int:
    """Print one elevator's MQTT username and password."""
    url = settings.resolved_database_url()
    engine = create_engine_from_url(url, pool_size=1)
    try:
        migrated = current_revision(engine) is not None
    finally:
        engine.dispose()
    with translate_connect_errors(url), psycopg.connect(libpq_url(url)) as conn:
        if not migrated or get_elevator(conn, args.elevator_id) is None:
            raise RegistryError(
                f"elevator {args.elevator_id} is not registered: import it with "
                "`liftledger elevators import FILE.csv`"
            )
        topics = elevator_topics(conn)
    stack.sync_broker_auth(settings, topics)
    credentials = device_credentials(settings.secret("mqtt_secret"), args.elevator_id)
    print(f"username={credentials.username}")
    print(f"password={credentials.password}")
    return 0


def add_commands(commands: Any) -> None:
    """`stack up|down|status|env`, `db upgrade`, `elevators import|credentials`."""
    stack_commands = add_group(
        commands, "stack", "local TimescaleDB, Mosquitto and Anvil", "action"
    )
    for name, handler in (
        ("up", cmd_stack_up),
        ("down", cmd_stack_down),
        ("status", cmd_stack_status),
        ("env", cmd_stack_env),
    ):
        add_command(stack_commands, name, handler)

    db_commands = add_group(commands, "db", "database schema", "action")
    add_command(db_commands, "upgrade", cmd_db_upgrade)

    elevator_commands = add_group(commands, "elevators", "the elevator registry", "action")
    importer = add_command(elevator_commands, "import", cmd_elevators_import)
    importer.add_argument("file", help="registry CSV, or `sample` for the bundled sub-district")
    add_command(elevator_commands, "credentials", cmd_elevators_credentials, "elevator_id")

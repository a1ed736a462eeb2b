"""What the command groups share: the handler type, output, logging, signals, a connection."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from collections.abc import Callable
from typing import Any

import psycopg

from core.db import create_engine_from_url, libpq_url, translate_connect_errors
from core.errors import RegistryError
from core.migrate import current_revision
from core.settings import Settings

Handler = Callable[[argparse.Namespace, Settings], int]


def say(line: str) -> None:
    """Print one line of a command's output at once."""
    print(line, flush=True)


def configure_logging() -> None:
    """Log INFO and above to standard error, with time and logger name (the processes)."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def run_until_signal(run: Callable[[threading.Event], None]) -> int:
    """Run a process until SIGINT or SIGTERM sets its stop event; exit status 0."""
    configure_logging()
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    run(stop)
    return 0


def database_connection(settings: Settings) -> psycopg.Connection[Any]:
    """A connection to the configured database; an unreachable one is a one-line error."""
    url = settings.resolved_database_url()
    with translate_connect_errors(url):
        return psycopg.connect(libpq_url(url), connect_timeout=5)


def require_schema(url: str) -> None:
    """Refuse a database that was never migrated, naming the command that migrates it."""
    engine = create_engine_from_url(url, pool_size=1)
    try:
        if current_revision(engine) is None:
            raise RegistryError("the database has no schema yet: run `liftledger db upgrade`")
    finally:
        engine.dispose()


def csv_list(text: str) -> list[str]:
    """A comma-separated option as a list, without blanks."""
    return [item.strip() for item in text.split(",") if item.strip()]


def add_command(
    commands: Any, name: str, handler: Handler, *positionals: str
) -> argparse.ArgumentParser:
    """Add the command `name` running `handler`, its help the handler's docstring, with
    `positionals` as its positional arguments; its parser, for the options."""
    parser: argparse.ArgumentParser = commands.add_parser(name, help=handler.__doc__)
    for positional in positionals:
        parser.add_argument(positional)
    parser.set_defaults(handler=handler)
    return parser


def add_group(commands: Any, name: str, about: str, dest: str) -> Any:
    """Add the command group `name` (help `about`), which needs one of its commands, named in
    `dest`; the object its commands are added to."""
    return commands.add_parser(name, help=about).add_subparsers(dest=dest, required=True)

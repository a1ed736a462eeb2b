"""Shared fixtures.

Unit tests need no service. Integration tests (`tests/integration`) talk to the real
TimescaleDB, Mosquitto and Anvil that `liftledger stack up` starts (`make test` does that
first); when a service does not answer they fail with the reason instead of skipping.
Each test session works in its own database, `<name>_test`, migrated from scratch (which
grants the service roles their privileges). A test that needs no other connection to see its
rows works in one transaction that is rolled back (`conn`, or `db_session` for the ORM); one
whose rows a process under test must read commits them, under ids of its own
(`tests.factories`). Services under test connect as their own roles (`service_database_urls`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from core.db import create_engine_from_url, libpq_url
from core.db_roles import SERVICES, Service, ensure_roles, service_database_url
from core.migrate import upgrade
from core.settings import Settings, load_settings
from ledger.pin import pin_file
from liftledger.stack.probe import service_report


@pytest.fixture(scope="session")
def stack_settings() -> Settings:
    """Settings of the running stack; fails the test when a service does not answer."""
    settings = load_settings()
    down = [detail for _, _, answers, detail in service_report(settings) if not answers]
    if down:
        pytest.fail("the local stack is not up (run `make test`): " + "; ".join(down))
    return settings


def _database_url(url: str, name: str) -> str:
    parts = urlsplit(libpq_url(url))
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def test_database_url(stack_settings: Settings) -> str:
    """A freshly created and migrated database for this test session."""
    main_url = stack_settings.resolved_database_url()
    name = (urlsplit(main_url).path.lstrip("/") or "liftledger") + "_test"
    with psycopg.connect(libpq_url(main_url), autocommit=True) as conn:
        if stack_settings.local_database:
            # `stack up` creates them; again here for a stack started by older code.
            ensure_roles(conn, stack_settings.secret("db_password"))
        database = sql.Identifier(name)
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(database))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(database))
    url = _database_url(main_url, name)
    # A contract pinned for an earlier session's database was recorded in a database that
    # no longer exists: this session pins its own (`liftledger contracts deploy`).
    pin_file(stack_settings, url, stack_settings.chain_id).unlink(missing_ok=True)
    engine = create_engine_from_url(url, pool_size=1)
    try:
        upgrade(engine, telemetry_chunk_hours=stack_settings.telemetry_chunk_hours)
    finally:
        engine.dispose()
    return url


@pytest.fixture(scope="session")
def service_database_urls(stack_settings: Settings, test_database_url: str) -> dict[Service, str]:
    """The URL each service connects to the test database with: its own role."""
    settings = stack_settings.model_copy(update={"database_url": test_database_url})
    return {service: service_database_url(settings, service) for service in SERVICES}


@pytest.fixture(scope="session")
def engine(test_database_url: str) -> Iterator[Engine]:
    """Engine on the session's test database."""
    engine = create_engine_from_url(test_database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def db_session(engine: Engine) -> Iterator[Session]:
    """A session whose work, commits included, is rolled back after the test."""
    with engine.connect() as connection:
        transaction = connection.begin()
        session = Session(bind=connection, join_transaction_mode="create_savepoint")
        try:
            yield session
        finally:
            session.close()
            transaction.rollback()


@pytest.fixture
def conn(test_database_url: str) -> Iterator[psycopg.Connection[Any]]:
    """A connection to the test database inside a transaction that is rolled back after the
    test. Its `transaction()` blocks are savepoints and `commit()` is refused, so nothing the
    test writes outlives it or is seen by another connection."""
    with (
        psycopg.connect(libpq_url(test_database_url)) as connection,
        connection.transaction(force_rollback=True),
    ):
        yield connection

"""Apply the Alembic migrations to a database (`liftledger db upgrade`), as the schema's owner
role, and the service roles' grants after them (docs/database.md)."""

from __future__ import annotations

from pathlib import Path

import psycopg
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from core.db import translate_connect_errors
from core.db_roles import apply_grants, take_ownership

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(*, telemetry_chunk_hours: int = 24) -> Config:
    """An Alembic config pointing at the packaged migrations."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["telemetry_chunk_hours"] = telemetry_chunk_hours
    return config


def upgrade(engine: Engine, *, telemetry_chunk_hours: int = 24, revision: str = "head") -> None:
    """Bring the database schema to `revision` as the owner role, then apply the service
    roles' grants (core/db_roles.py), in one transaction."""
    config = alembic_config(telemetry_chunk_hours=telemetry_chunk_hours)
    with translate_connect_errors(str(engine.url)), engine.begin() as connection:
        driver = connection.connection.driver_connection
        if not isinstance(driver, psycopg.Connection):
            raise TypeError("migrations run on psycopg 3 connections")
        take_ownership(driver)
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
        apply_grants(driver)


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None when it was never migrated."""
    with translate_connect_errors(str(engine.url)), engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    """The newest revision shipped with this code."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()

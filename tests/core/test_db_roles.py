"""Which database URL each service connects with, and the grants table itself."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from core.db_roles import (
    GRANTS,
    OWNER_ROLE,
    SERVICE_ROLES,
    SERVICES,
    check_service_connection,
    refusal,
    role_password,
    service_database_url,
    service_settings,
)
from core.errors import ConfigError
from core.models import Base
from core.settings import load_settings

LOCAL = "postgresql://liftledger:admin-pw@127.0.0.1:55432/liftledger_test"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Isolate each test from the caller's LIFTLEDGER_* variables and settings file."""
    for name in list(os.environ):
        if name.startswith("LIFTLEDGER_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LIFTLEDGER_DATA_DIR", str(tmp_path / "data"))


@pytest.mark.parametrize("service", SERVICES)
def test_on_the_local_stack_each_service_logs_in_as_its_own_role(service: str) -> None:
    settings = load_settings(database_url=LOCAL, db_password="s3cret-database-secret")
    url = urlsplit(service_database_url(settings, service))  # type: ignore[arg-type]
    role = SERVICE_ROLES[service]  # type: ignore[index]
    assert url.username == role
    assert unquote(url.password or "") == role_password("s3cret-database-secret", role)
    assert (url.hostname, url.port, url.path) == ("127.0.0.1", 55432, "/liftledger_test")


def test_role_passwords_differ_per_role_and_per_secret() -> None:
    passwords = {
        role_password(secret, role) for secret in ("a", "b") for role in SERVICE_ROLES.values()
    }
    assert len(passwords) == 2 * len(SERVICE_ROLES)


def test_a_configured_service_url_wins_and_deriving_it_again_changes_nothing() -> None:
    mine = "postgresql://collector:pw@db.example:5432/liftledger"
    settings = load_settings(database_url=LOCAL, collector_database_url=mine)
    assert service_database_url(settings, "collector") == mine
    derived = service_settings(load_settings(database_url=LOCAL), "api")
    assert service_settings(derived, "api").resolved_database_url() == (
        derived.resolved_database_url()
    )


def test_production_needs_each_services_own_url() -> None:
    settings = load_settings(
        env="production", database_url="postgresql://owner:pw@db.example:5432/liftledger"
    )
    with pytest.raises(ConfigError, match="LIFTLEDGER_NOTIFIER_DATABASE_URL is not set"):
        service_database_url(settings, "notifier")


def test_outside_the_local_stack_development_uses_the_configured_database() -> None:
    external = "postgresql://someone:pw@db.example:5432/liftledger"
    settings = load_settings(database_url=external)
    assert service_database_url(settings, "anchorer") == external


def test_the_grants_name_only_tables_of_the_schema_and_never_rewrite_the_ledger() -> None:
    tables = set(Base.metadata.tables)
    for service, grants in GRANTS.items():
        assert set(grants) <= tables, service
        for table, privileges in grants.items():
            assert privileges <= {"SELECT", "INSERT", "UPDATE", "DELETE"}, (service, table)
            assert "SELECT" in privileges, (service, table)
        assert grants.get("ledger_entries", frozenset()) <= {"SELECT", "INSERT"}
    assert OWNER_ROLE not in SERVICE_ROLES.values()


def test_a_refusal_names_every_power_once_and_the_services_own_setting() -> None:
    message = refusal(
        "notifier",
        "ops",
        [
            ("a member of pg_execute_server_program", "run operating-system commands"),
            ("a role with CREATEROLE", "grant itself other roles"),
            ("a member of admins, a superuser", "switch the ledger's triggers off"),
            ("which owns ledger_entries_follow_previous()", "switch the ledger's triggers off"),
        ],
    )
    assert message == (
        "the notifier connects as ops, a member of pg_execute_server_program; a role with "
        "CREATEROLE; a member of admins, a superuser; which owns "
        "ledger_entries_follow_previous(): it could run operating-system commands, grant "
        "itself other roles, switch the ledger's triggers off; set "
        "LIFTLEDGER_NOTIFIER_DATABASE_URL to the liftledger_notifier role (docs/database.md)"
    )


def test_the_start_check_waits_for_an_unreachable_database_until_told_to_stop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens on it
    url = f"postgresql://liftledger_collector:pw@127.0.0.1:{port}/liftledger"
    stop = threading.Event()
    began = time.monotonic()
    threading.Timer(0.5, stop.set).start()
    with caplog.at_level(logging.WARNING, logger="core.db_roles"):
        check_service_connection(url, "collector", production=True, stop=stop, retry_s=0.1)
    assert time.monotonic() - began >= 0.5
    assert "waiting for the database" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="core.db_roles"):
        check_service_connection(url, "api", production=True)
    assert "was not checked" in caplog.text

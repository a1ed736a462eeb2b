"""Least privilege on the real TimescaleDB: each service's role, logged in with its real
credentials, can do its work and nothing that would let it rewrite the ledger unseen."""

from __future__ import annotations

import datetime as dt
import logging
import re
import signal
import subprocess
import sys
import time
import uuid
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from core.db import create_engine_from_url, libpq_url
from core.db_roles import (
    GRANTS,
    OWNER_ROLE,
    SERVICE_ROLES,
    SERVICES,
    apply_grants,
    check_service_connection,
)
from core.errors import ConfigError
from core.migrate import alembic_config, upgrade
from core.settings import Settings
from ledger.entries import PendingEntry, append_entries, content_hash, entry_bytes
from ledger.merkle import hash_leaf
from tests.integration.api_helpers import add_site_with_elevator, running_api
from tests.integration.cli_helpers import REPO, clean_environment
from tests.integration.collector_process import CollectorProcess

# Each of these would let whoever runs it change the ledger without the database refusing.
ATTACKS = {
    "disable_triggers": "ALTER TABLE ledger_entries DISABLE TRIGGER ALL",
    "replication_role": "SET session_replication_role = replica",
    "truncate": "TRUNCATE ledger_entries",
    "drop_trigger": "DROP TRIGGER ledger_entries_no_update_delete ON ledger_entries",
    "replace_function": (
        "CREATE OR REPLACE FUNCTION ledger_entries_append_only() RETURNS trigger "
        "LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$"
    ),
    "copy_to_program": "COPY (SELECT 1) TO PROGRAM 'true'",
    "update": "UPDATE ledger_entries SET kind = 'forged' WHERE seq = %(seq)s",
    "delete": "DELETE FROM ledger_entries WHERE seq = %(seq)s",
}
PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")


@pytest.fixture(scope="module")
def entry(service_database_urls: dict[str, str]) -> int:
    """A committed ledger entry, appended by the collector's role; yields its seq."""
    with psycopg.connect(libpq_url(service_database_urls["collector"])) as conn:
        [appended] = append_entries(
            conn, [PendingEntry("test", "roles_test", 1, None, {"run": uuid.uuid4().hex})]
        )
    return appended.seq


def _entry_state(url: str, seq: int) -> tuple[Any, ...]:
    with psycopg.connect(libpq_url(url)) as conn:
        row = conn.execute(
            "SELECT kind, canonical, leaf_hash, "
            "(SELECT array_agg(tgname || ':' || tgenabled::text ORDER BY tgname) FROM pg_trigger "
            " WHERE tgrelid = 'ledger_entries'::regclass AND NOT tgisinternal), "
            "(SELECT md5(prosrc) FROM pg_proc WHERE proname = 'ledger_entries_append_only') "
            "FROM ledger_entries WHERE seq = %s",
            (seq,),
        ).fetchone()
    assert row is not None
    return tuple(row)


@pytest.mark.parametrize("attack", list(ATTACKS))
@pytest.mark.parametrize("service", SERVICES)
def test_a_service_role_cannot_switch_off_or_get_around_the_ledgers_triggers(
    service: str,
    attack: str,
    entry: int,
    service_database_urls: dict[str, str],
    test_database_url: str,
) -> None:
    before = _entry_state(test_database_url, entry)
    with (
        psycopg.connect(libpq_url(service_database_urls[service])) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute(ATTACKS[attack], {"seq": entry} if "%(seq)s" in ATTACKS[attack] else None)
    assert _entry_state(test_database_url, entry) == before


def test_a_temporary_table_named_like_the_ledger_does_not_move_its_chain_trigger(
    entry: int, service_database_urls: dict[str, str], test_database_url: str
) -> None:
    """The collector may create temporary tables, and PostgreSQL looks an unqualified name up
    in the session's temporary schema first: a stand-in `ledger_entries` whose last entry is
    far ahead must not let an entry with a gap into the real one."""
    forged_leaf = b"\x99" * 32
    with psycopg.connect(libpq_url(service_database_urls["collector"])) as conn:
        row = conn.execute("SELECT max(seq) FROM public.ledger_entries").fetchone()
        assert row is not None
        ahead = int(row[0]) + 1000
        conn.execute(
            "CREATE TEMP TABLE ledger_entries (seq bigint, leaf_hash bytea, kind text, "
            "source_table text, source_id bigint, canonical bytea, content_hash bytea)"
        )
        conn.execute(
            "INSERT INTO pg_temp.ledger_entries (seq, leaf_hash) VALUES (%s, %s)",
            (ahead, forged_leaf),
        )
        canonical = entry_bytes("test", {"forged": True}, uuid.uuid4().hex, prev=forged_leaf)
        digest = content_hash(canonical)
        with pytest.raises(psycopg.errors.CheckViolation, match=f"the next entry is {ahead - 999}"):
            conn.execute(
                "INSERT INTO public.ledger_entries (seq, kind, source_table, source_id, "
                "canonical, content_hash, leaf_hash) VALUES (%s, 'test', 'test', 1, %s, %s, %s)",
                (ahead + 1, canonical, digest, hash_leaf(digest)),
            )
    with psycopg.connect(libpq_url(test_database_url)) as conn:
        assert conn.execute("SELECT max(seq) FROM ledger_entries").fetchone() == (ahead - 1000,)


def test_every_function_of_the_schema_runs_with_a_fixed_search_path(
    test_database_url: str,
) -> None:
    """A trigger function resolves names with its own search path, never the session's, in
    which a temporary table or type would come first."""
    with psycopg.connect(libpq_url(test_database_url)) as conn:
        functions: dict[str, list[str] | None] = dict(
            conn.execute(
                "SELECT p.proname, p.proconfig FROM pg_proc p "
                "WHERE p.pronamespace = 'public'::regnamespace AND NOT EXISTS (SELECT 1 "
                "FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid "
                "AND d.deptype = 'e')"
            ).fetchall()
        )
    assert set(functions) >= {
        "ledger_entries_append_only",
        "ledger_entries_notify",
        "ledger_entries_follow_previous",
    }
    fixed = ["search_path=pg_catalog, public, pg_temp"]
    assert functions == {name: fixed for name in functions}


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_role_is_neither_superuser_nor_the_ledgers_owner(
    service: str, service_database_urls: dict[str, str]
) -> None:
    with psycopg.connect(libpq_url(service_database_urls[service])) as conn:
        row = conn.execute(
            "SELECT current_user, r.rolsuper, r.rolcreaterole, r.rolcreatedb, r.rolbypassrls, "
            "pg_has_role(current_user, c.relowner, 'MEMBER'), pg_get_userbyid(c.relowner), "
            "pg_has_role(current_user, 'pg_execute_server_program', 'MEMBER') "
            "FROM pg_roles r, pg_class c "
            "WHERE r.rolname = current_user AND c.oid = 'ledger_entries'::regclass"
        ).fetchone()
    assert row == (SERVICE_ROLES[service], False, False, False, False, False, OWNER_ROLE, False)  # type: ignore[index]


def _privileges(url: str) -> dict[str, set[tuple[str, str]]]:
    """Role -> (table, privilege) it holds on the public tables."""
    held: dict[str, set[tuple[str, str]]] = {}
    with psycopg.connect(libpq_url(url)) as conn:
        tables = [
            name
            for (name,) in conn.execute(
                "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace "
                "AND relkind IN ('r', 'p', 'v', 'm')"
            )
        ]
        for role in SERVICE_ROLES.values():
            held[role] = {
                (table, privilege)
                for table in tables
                for privilege in PRIVILEGES
                if conn.execute(
                    "SELECT has_table_privilege(%s, %s, %s)", (role, f"public.{table}", privilege)
                ).fetchone()
                == (True,)
            }
    return held


def test_each_role_holds_exactly_its_grants_and_applying_them_again_changes_nothing(
    test_database_url: str,
) -> None:
    expected = {
        SERVICE_ROLES[service]: {(t, p) for t, privileges in grants.items() for p in privileges}
        for service, grants in GRANTS.items()
    }
    assert _privileges(test_database_url) == expected
    with psycopg.connect(libpq_url(test_database_url)) as conn:
        apply_grants(conn)
    assert _privileges(test_database_url) == expected
    with psycopg.connect(libpq_url(test_database_url)) as conn:
        temp = {
            role: conn.execute(
                "SELECT has_database_privilege(%s, current_database(), 'TEMPORARY')", (role,)
            ).fetchone()
            for role in (*SERVICE_ROLES.values(), "public")
        }
    assert temp == {role: (role == SERVICE_ROLES["collector"],) for role in temp}


def test_the_collector_role_writes_new_hypertable_chunks_and_stages_in_a_temporary_table(
    service_database_urls: dict[str, str],
) -> None:
    # A year no other test writes: both rows need a chunk created by this role.
    at = dt.datetime(2031, 3, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=uuid.uuid4().int % 10**6)
    columns = (
        "time, received_at, elevator_id, boot, seq, floor, pos_m, speed_mps, dir, door, "
        "door_zone, door_lock, safety_chain, power, load_kg, occupied, mode"
    )
    row = (at, at, "roles-el", "b1", 1, 1, 0.0, 0.0, "idle", "closed", True, True, True,
           "mains", 0.0, False, "normal")  # fmt: skip
    with psycopg.connect(libpq_url(service_database_urls["collector"])) as conn:
        conn.execute(
            f"INSERT INTO telemetry ({columns}) VALUES ({', '.join(['%s'] * len(row))})",
            row,
        )
        with conn.cursor().copy(f"COPY telemetry ({columns}) FROM STDIN") as copy:
            copy.write_row((at + dt.timedelta(days=40), *row[1:4], 2, *row[5:]))
        conn.execute("CREATE TEMP TABLE roles_staging (LIKE telemetry INCLUDING DEFAULTS)")
        stored = conn.execute(
            "SELECT count(*) FROM telemetry WHERE elevator_id = 'roles-el' AND time >= %s",
            (at,),
        ).fetchone()
        conn.rollback()
    assert stored == (2,)
    # The others get no temporary tables.
    with (
        psycopg.connect(libpq_url(service_database_urls["anchorer"])) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute("CREATE TEMP TABLE nope (x int)")


def test_a_superuser_service_connection_is_refused_in_production_and_warned_about_otherwise(
    test_database_url: str, service_database_urls: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(ConfigError, match=r"a superuser.*LIFTLEDGER_COLLECTOR_DATABASE_URL"):
        check_service_connection(test_database_url, "collector", production=True)
    with caplog.at_level(logging.WARNING, logger="core.db_roles"):
        check_service_connection(test_database_url, "collector", production=False)
    assert "a superuser" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="core.db_roles"):
        for service in SERVICES:
            check_service_connection(service_database_urls[service], service, production=True)
    assert caplog.text == ""


def _with_login(url: str, user: str, password: str) -> str:
    parts = urlsplit(libpq_url(url))
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@{parts.hostname}:{parts.port}"))


def test_a_service_connecting_as_the_ledgers_owner_is_refused_in_production(
    test_database_url: str,
) -> None:
    role, password = f"roles_test_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    database = urlsplit(test_database_url).path.lstrip("/")
    with psycopg.connect(libpq_url(test_database_url), autocommit=True) as admin:
        admin.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} IN ROLE {}").format(
                sql.Identifier(role), sql.Literal(password), sql.Identifier(OWNER_ROLE)
            )
        )
        admin.execute(
            sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                sql.Identifier(database), sql.Identifier(role)
            )
        )
        try:
            with pytest.raises(ConfigError, match="owns ledger_entries"):
                check_service_connection(
                    _with_login(test_database_url, role, password), "api", production=True
                )
        finally:
            admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


# A login role that has the API's grants (as a member of its role) and one power more.
POWERS = {
    "pg_execute_server_program": ("IN ROLE {api}, pg_execute_server_program", None),
    "pg_write_server_files": ("IN ROLE {api}, pg_write_server_files", None),
    "pg_read_server_files": ("IN ROLE {api}, pg_read_server_files", None),
    "createrole": ("CREATEROLE IN ROLE {api}", None),
    "bypassrls": ("BYPASSRLS IN ROLE {api}", None),
    "replication": ("REPLICATION IN ROLE {api}", None),
    "owns_a_trigger_function": ("IN ROLE {api}", "public.ledger_entries_follow_previous()"),
}
POWER_NAMED = {
    "pg_execute_server_program": "a member of pg_execute_server_program: it could run "
    "operating-system commands",
    "pg_write_server_files": "a member of pg_write_server_files: it could write the database "
    "server's files",
    "pg_read_server_files": "a member of pg_read_server_files: it could read the database "
    "server's files",
    "createrole": "a role with CREATEROLE: it could grant itself other roles",
    "bypassrls": "a role with BYPASSRLS: it could read and write past row-level security",
    "replication": "a role with REPLICATION: it could copy the whole cluster",
    "owns_a_trigger_function": "which owns ledger_entries_follow_previous(): it could alter, "
    "replace or drop what it owns",
}


@pytest.mark.parametrize("power", list(POWERS))
def test_a_service_role_with_a_power_beyond_its_grants_is_refused_in_production(
    power: str, test_database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    role, password = f"roles_test_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    options, owned_function = POWERS[power]
    with psycopg.connect(libpq_url(test_database_url), autocommit=True) as admin:
        admin.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} " + options).format(
                sql.Identifier(role),
                sql.Literal(password),
                api=sql.Identifier(SERVICE_ROLES["api"]),
            )
        )
        if owned_function is not None:
            admin.execute(
                sql.SQL(f"ALTER FUNCTION {owned_function} OWNER TO {{}}").format(
                    sql.Identifier(role)
                )
            )
        try:
            url = _with_login(test_database_url, role, password)
            expected = re.escape(f"connects as {role}, {POWER_NAMED[power]}")
            with pytest.raises(ConfigError, match=f"{expected}.*LIFTLEDGER_API_DATABASE_URL"):
                check_service_connection(url, "api", production=True)
            with caplog.at_level(logging.WARNING, logger="core.db_roles"):
                check_service_connection(url, "api", production=False)
            assert re.search(expected, caplog.text), caplog.text
        finally:
            if owned_function is not None:
                admin.execute(
                    sql.SQL(f"ALTER FUNCTION {owned_function} OWNER TO {{}}").format(
                        sql.Identifier(OWNER_ROLE)
                    )
                )
            admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_a_role_missing_a_grant_is_told_to_run_the_upgrade(
    test_database_url: str, service_database_urls: dict[str, str]
) -> None:
    with psycopg.connect(libpq_url(test_database_url)) as admin:
        admin.execute(f"REVOKE INSERT ON anchors FROM {SERVICE_ROLES['anchorer']}")
        try:
            admin.commit()
            with pytest.raises(ConfigError, match=r"lacks INSERT on anchors.*db upgrade"):
                check_service_connection(
                    service_database_urls["anchorer"], "anchorer", production=False
                )
        finally:
            apply_grants(admin)
            admin.commit()


def _sessions_of(url: str, role: str) -> int:
    with psycopg.connect(libpq_url(url)) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = %s "
            "AND datname = current_database()",
            (role,),
        ).fetchone()
    return int(row[0]) if row else 0


def _wait_for_session(url: str, role: str, alive: Any) -> None:
    deadline = time.monotonic() + 30
    while _sessions_of(url, role) == 0:
        assert alive(), f"the service stopped before connecting as {role}"
        assert time.monotonic() < deadline, f"nothing connected as {role}"
        time.sleep(0.2)


def test_the_collector_command_connects_as_its_role(
    stack_settings: Settings, test_database_url: str
) -> None:
    with psycopg.connect(libpq_url(test_database_url)) as conn:
        site, _ = add_site_with_elevator(conn, "roles")
    collector = CollectorProcess(stack_settings, test_database_url, "test-roles-collector",
                                 sites=[site])  # fmt: skip
    collector.open_session()
    collector.start()
    try:
        _wait_for_session(test_database_url, SERVICE_ROLES["collector"], collector.alive)
    finally:
        collector.stop()
        collector.discard_session()


def test_the_notifier_command_connects_as_its_role(
    stack_settings: Settings, test_database_url: str
) -> None:
    env = clean_environment(
        LIFTLEDGER_DATA_DIR=str(stack_settings.data_dir), LIFTLEDGER_DATABASE_URL=test_database_url
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "liftledger", "notifier"], env=env, cwd=REPO,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait_for_session(
            test_database_url, SERVICE_ROLES["notifier"], lambda: process.poll() is None
        )
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)


def test_the_api_connects_as_its_role(stack_settings: Settings, test_database_url: str) -> None:
    with running_api(stack_settings, test_database_url):
        deadline = time.monotonic() + 10
        while _sessions_of(test_database_url, SERVICE_ROLES["api"]) == 0:
            assert time.monotonic() < deadline, "the API never connected as its role"
            time.sleep(0.1)


def test_a_database_migrated_before_the_owner_role_existed_is_handed_to_it(
    test_database_url: str,
) -> None:
    from alembic import command  # noqa: PLC0415

    name = urlsplit(test_database_url).path.lstrip("/") + "_adopted"
    admin_url = libpq_url(test_database_url)
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))
    engine = create_engine_from_url(url, pool_size=1)
    try:
        config = alembic_config()
        with engine.begin() as connection:  # as the administrator, the way it used to be
            config.attributes["connection"] = connection
            command.upgrade(config, "0006")
            connection.exec_driver_sql(
                "INSERT INTO telemetry (time, received_at, elevator_id, boot, seq, floor, pos_m, "
                "speed_mps, dir, door, door_zone, door_lock, safety_chain, power, load_kg, "
                "occupied, mode) VALUES ('2026-01-01', now(), 'e1', 'b1', 1, 1, 0, 0, 'idle', "
                "'closed', true, true, true, 'mains', 0, false, 'normal')"
            )
        upgrade(engine)
        with psycopg.connect(url) as conn:
            owners = conn.execute(
                "SELECT DISTINCT pg_get_userbyid(c.relowner) FROM pg_class c "
                "WHERE c.relnamespace IN ('public'::regnamespace, "
                "'_timescaledb_internal'::regnamespace) AND c.relkind IN ('r', 'S') "
                "AND (c.relnamespace = 'public'::regnamespace OR c.relname LIKE '\\_hyper\\_%%')"
            ).fetchall()
            functions = conn.execute(
                "SELECT DISTINCT pg_get_userbyid(proowner) FROM pg_proc "
                "WHERE proname LIKE 'ledger\\_entries\\_%%'"
            ).fetchall()
            database = conn.execute(
                "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()"
            ).fetchone()
        assert owners == [(OWNER_ROLE,)]
        assert functions == [(OWNER_ROLE,)]
        assert database == (OWNER_ROLE,)
    finally:
        engine.dispose()
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

"""The schema on the real TimescaleDB: hypertable, idempotency key, constraints, triggers."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from core.models import Base
from core.registry import SAMPLE_REGISTRY, elevator_topics, import_registry
from ledger.entries import content_hash, entry_bytes
from ledger.merkle import hash_leaf
from tests.factories import driver_connection

T0 = dt.datetime(2026, 11, 28, 9, 30, tzinfo=dt.UTC)


def _insert_sample(session: Session, *, seq: int, at: dt.datetime, on_conflict: str = "") -> int:
    result = session.execute(
        sa.text(
            "INSERT INTO telemetry (time, received_at, elevator_id, boot, seq, floor, pos_m, "
            "speed_mps, dir, door, door_zone, door_lock, safety_chain, power, load_kg, "
            "occupied, mode) VALUES (:t, now(), 'e1', 'b1', :seq, 1, 0, 0, 'idle', 'closed', "
            f"true, true, true, 'mains', 0, false, 'normal') {on_conflict}"
        ),
        {"t": at, "seq": seq},
    )
    return int(getattr(result, "rowcount", 0))


def test_telemetry_is_a_hypertable_with_the_configured_chunk_interval(
    db_session: Session,
) -> None:
    row = db_session.execute(
        sa.text(
            "SELECT time_interval FROM timescaledb_information.dimensions "
            "WHERE hypertable_name = 'telemetry' AND column_name = 'time'"
        )
    ).one()
    assert row.time_interval == dt.timedelta(hours=24)


def test_time_bucket_aggregates_samples(db_session: Session) -> None:
    for seq in range(120):
        _insert_sample(db_session, seq=seq, at=T0 + dt.timedelta(seconds=30 + seq))
    rows = db_session.execute(
        sa.text(
            "SELECT time_bucket('1 minute', time) AS bucket, count(*) AS n FROM telemetry "
            "WHERE elevator_id = 'e1' GROUP BY bucket ORDER BY bucket"
        )
    ).all()
    assert [(r.bucket, r.n) for r in rows] == [
        (T0, 30),
        (T0 + dt.timedelta(minutes=1), 60),
        (T0 + dt.timedelta(minutes=2), 30),
    ]


def test_redelivered_sample_creates_no_second_row(db_session: Session) -> None:
    assert _insert_sample(db_session, seq=7, at=T0, on_conflict="ON CONFLICT DO NOTHING") == 1
    assert _insert_sample(db_session, seq=7, at=T0, on_conflict="ON CONFLICT DO NOTHING") == 0
    with pytest.raises(sa.exc.IntegrityError):
        with db_session.begin_nested():
            _insert_sample(db_session, seq=7, at=T0)
    count = "SELECT count(*) FROM telemetry WHERE elevator_id = 'e1' AND boot = 'b1'"
    assert db_session.execute(sa.text(count)).scalar() == 1


def test_per_elevator_time_range_query_uses_the_unique_index(db_session: Session) -> None:
    _insert_sample(db_session, seq=1, at=T0)
    db_session.execute(sa.text("SET LOCAL enable_seqscan = off"))
    plan = "\n".join(
        db_session.execute(
            sa.text(
                "EXPLAIN SELECT * FROM telemetry WHERE elevator_id = 'e1' "
                "AND time >= :a AND time < :b"
            ),
            {"a": T0, "b": T0 + dt.timedelta(days=1)},
        ).scalars()
    )
    assert "elevator_time_boot_seq" in plan


def _append_entry(session: Session) -> int:
    """Append one well-formed entry (the next seq, linked to the last one)."""
    last = session.execute(
        sa.text("SELECT seq, leaf_hash FROM ledger_entries ORDER BY seq DESC LIMIT 1")
    ).first()
    seq = int(last[0]) + 1 if last else 0
    canonical = entry_bytes("maintenance_record", {}, "00", prev=bytes(last[1]) if last else b"")
    digest = content_hash(canonical)
    session.execute(
        sa.text(
            "INSERT INTO ledger_entries (seq, kind, source_table, source_id, canonical, "
            "content_hash, leaf_hash) VALUES (:seq, 'maintenance_record', "
            "'maintenance_records', 1, :c, :h, :l)"
        ),
        {"seq": seq, "c": canonical, "h": digest, "l": hash_leaf(digest)},
    )
    return seq


def test_ledger_entries_refuse_update_delete_and_truncate(db_session: Session) -> None:
    seq = _append_entry(db_session)
    for statement in (
        "UPDATE ledger_entries SET kind = 'forged'",
        "DELETE FROM ledger_entries",
        "TRUNCATE ledger_entries",
    ):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            with db_session.begin_nested():
                db_session.execute(sa.text(statement))
    kind = db_session.execute(
        sa.text("SELECT kind FROM ledger_entries WHERE seq = :seq"), {"seq": seq}
    ).scalar()
    assert kind == "maintenance_record"


def test_database_allows_one_unresolved_alert_per_elevator_and_type(db_session: Session) -> None:
    import_registry(driver_connection(db_session), SAMPLE_REGISTRY)
    insert = sa.text(
        "INSERT INTO alerts (elevator_id, site_id, type, severity, status, opened_at, "
        "last_active_at) VALUES ('nc01-b01-e1', 'nc01', 'overspeed', 'critical', :status, "
        "now(), now())"
    )
    db_session.execute(insert, {"status": "resolved"})
    db_session.execute(insert, {"status": "open"})
    with pytest.raises(sa.exc.IntegrityError, match="one_unresolved"):
        with db_session.begin_nested():
            db_session.execute(insert, {"status": "acknowledged"})


def test_registry_import_is_idempotent_and_updates_in_place(db_session: Session) -> None:
    # Other tests may have registered elevators of their own in this database.
    sample_sites = "SELECT count(*) FROM elevators WHERE site_id LIKE 'nc%'"
    first = import_registry(driver_connection(db_session), SAMPLE_REGISTRY)
    second = import_registry(driver_connection(db_session), SAMPLE_REGISTRY)
    assert first == second
    assert db_session.execute(sa.text(sample_sites)).scalar() == first.elevators
    db_session.execute(sa.text("UPDATE elevators SET rated_speed_mps = 9 WHERE id = 'nc01-b01-e1'"))
    import_registry(driver_connection(db_session), SAMPLE_REGISTRY)
    speed = db_session.execute(
        sa.text("SELECT rated_speed_mps FROM elevators WHERE id = 'nc01-b01-e1'")
    ).scalar()
    assert speed == 1.0
    topics = [
        pair for pair in elevator_topics(driver_connection(db_session)) if pair[0].startswith("nc")
    ]
    assert ("nc01", "nc01-b01-e1") in topics
    assert len(topics) == first.elevators


def test_migrations_create_exactly_the_models(engine: Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={
                "compare_type": True,
                # TimescaleDB's own objects live outside the public schema's models.
                "include_name": lambda name, type_, parent: (
                    type_ != "table" or name in Base.metadata.tables
                ),
            },
        )
        differences = compare_metadata(context, Base.metadata)
    assert differences == []


def test_edition_is_detected(engine: Engine) -> None:
    with engine.connect() as connection:
        edition = connection.execute(sa.text("SHOW timescaledb.license")).scalar()
        jobs = connection.execute(
            sa.text(
                "SELECT count(*) FROM timescaledb_information.jobs "
                "WHERE hypertable_name = 'telemetry'"
            )
        ).scalar()
    # Policies exist exactly when the edition offers them.
    assert (edition == "timescale") == (jobs == 2)

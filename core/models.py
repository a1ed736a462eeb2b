"""SQLAlchemy 2 models of every table; the Alembic migrations create exactly these.

Tables by domain:
- registry: `sites`, `elevators`, `elevator_status` (live status kept by the collectors);
- people: `users`, `user_sites` (a crew member acts only on the sites listed for them);
- telemetry: `telemetry` (a TimescaleDB hypertable), `device_events`, `dead_letters`;
- alerts: `alerts`, `alert_events`;
- notifications: `notification_cursors`, `webhook_subscriptions`, `webhook_deliveries`;
- maintenance: `maintenance_records`;
- ledger: `ledger_entries` (append-only, enforced by a trigger), `anchors`,
  `contract_deployments`.

`telemetry` is written by binary COPY, never through the ORM; its model exists for reads
and for schema checks.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from core.alerting import UNRESOLVED_STATUSES

UNRESOLVED_ALERT_STATUSES: tuple[str, ...] = tuple(UNRESOLVED_STATUSES)


class Base(DeclarativeBase):
    """Declarative base with naming conventions so constraint names are stable."""

    metadata = sa.MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dt.datetime: sa.DateTime(timezone=True),
        dict[str, Any]: JSONB,
    }


def _now() -> sa.TextClause:
    return sa.text("now()")


def _empty_json() -> sa.TextClause:
    return sa.text("'{}'::jsonb")


# -- registry --------------------------------------------------------------------------------


class Site(Base):
    """A neighbourhood committee (or any group of buildings) that crews are assigned to."""

    __tablename__ = "sites"

    id: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    name: Mapped[str] = mapped_column(sa.Text)
    district: Mapped[str | None] = mapped_column(sa.Text)
    thresholds: Mapped[dict[str, Any]] = mapped_column(server_default=_empty_json())
    created_at: Mapped[dt.datetime] = mapped_column(server_default=_now())


class Elevator(Base):
    """One registered elevator: where it is, what it serves and how fast it may go."""

    __tablename__ = "elevators"
    __table_args__ = (
        sa.CheckConstraint("highest_floor > lowest_floor", name="floor_range"),
        sa.CheckConstraint("rated_speed_mps > 0", name="rated_speed_positive"),
        sa.CheckConstraint("rated_load_kg > 0", name="rated_load_positive"),
        sa.CheckConstraint("floor_height_m > 0", name="floor_height_positive"),
        sa.CheckConstraint("acceleration_mps2 > 0", name="acceleration_positive"),
        sa.CheckConstraint("jerk_mps3 > 0", name="jerk_positive"),
    )

    id: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    site_id: Mapped[str] = mapped_column(sa.ForeignKey("sites.id"), index=True)
    building: Mapped[str] = mapped_column(sa.Text)
    registration_code: Mapped[str | None] = mapped_column(sa.Text, unique=True)
    lowest_floor: Mapped[int] = mapped_column(sa.SmallInteger)
    highest_floor: Mapped[int] = mapped_column(sa.SmallInteger)
    floor_height_m: Mapped[float] = mapped_column(sa.Float, server_default=sa.text("3.0"))
    rated_speed_mps: Mapped[float] = mapped_column(sa.Float)
    rated_load_kg: Mapped[float] = mapped_column(sa.Float)
    acceleration_mps2: Mapped[float] = mapped_column(sa.Float, server_default=sa.text("0.8"))
    jerk_mps3: Mapped[float] = mapped_column(sa.Float, server_default=sa.text("1.2"))
    manufacturer: Mapped[str | None] = mapped_column(sa.Text)
    installed_on: Mapped[dt.date | None] = mapped_column(sa.Date)
    thresholds: Mapped[dict[str, Any]] = mapped_column(server_default=_empty_json())
    active: Mapped[bool] = mapped_column(server_default=sa.true())
    created_at: Mapped[dt.datetime] = mapped_column(server_default=_now())
    updated_at: Mapped[dt.datetime] = mapped_column(server_default=_now())


class ElevatorStatus(Base):
    """The latest known state of an elevator, kept current by the collectors."""

    __tablename__ = "elevator_status"

    elevator_id: Mapped[str] = mapped_column(
        sa.ForeignKey("elevators.id", ondelete="CASCADE"), primary_key=True
    )
    online: Mapped[bool] = mapped_column(server_default=sa.false())
    last_seen: Mapped[dt.datetime | None]
    online_changed_at: Mapped[dt.datetime | None]
    floor: Mapped[int | None] = mapped_column(sa.SmallInteger)
    mode: Mapped[str | None] = mapped_column(sa.Text)
    boot: Mapped[str | None] = mapped_column(sa.Text)
    last_seq: Mapped[int | None] = mapped_column(sa.BigInteger)


# -- people ----------------------------------------------------------------------------------


class User(Base):
    """A person who signs in: crew member, supervisor or admin."""

    __tablename__ = "users"
    __table_args__ = (
        sa.CheckConstraint("role IN ('crew', 'supervisor', 'admin')", name="role"),
        sa.CheckConstraint(
            "signer_address IS NULL OR signer_address ~ '^0x[0-9a-fA-F]{40}$'",
            name="signer_address_format",
        ),
        # One signing key belongs to one user at most, whatever the letter case.
        sa.Index("ux_users_signer_address", sa.func.lower(sa.text("signer_address")), unique=True),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    username: Mapped[str] = mapped_column(sa.Text, unique=True)
    full_name: Mapped[str | None] = mapped_column(sa.Text)
    role: Mapped[str] = mapped_column(sa.Text)
    password_hash: Mapped[str | None] = mapped_column(sa.Text)
    signer_address: Mapped[str | None] = mapped_column(sa.Text)
    active: Mapped[bool] = mapped_column(server_default=sa.true())
    # Every bearer token names the version it was issued under; bumping it revokes them.
    token_version: Mapped[int] = mapped_column(sa.Integer, server_default=sa.text("0"))
    created_at: Mapped[dt.datetime] = mapped_column(server_default=_now())


class UserSite(Base):
    """A site a crew member is assigned to."""

    __tablename__ = "user_sites"

    user_id: Mapped[int] = mapped_column(
        sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    site_id: Mapped[str] = mapped_column(sa.ForeignKey("sites.id"), primary_key=True)


# -- telemetry -------------------------------------------------------------------------------


class TelemetryRow(Base):
    """One stored telemetry sample (hypertable partitioned on device time).

    The unique index on (elevator_id, time, boot, seq) is both the idempotency key and the
    index for per-elevator time-range queries (it carries the aggregated columns, so the
    bucket query reads the index only); TimescaleDB requires the partitioning column
    in every unique index, and a redelivered message repeats its device time exactly.
    """

    __tablename__ = "telemetry"
    __table_args__ = (
        sa.Index(
            "ux_telemetry_elevator_time_boot_seq",
            "elevator_id",
            sa.text("time DESC"),
            "boot",
            "seq",
            unique=True,
            # The bucket query's columns, for index-only scans (migration 0004).
            postgresql_include=[
                "floor",
                "speed_mps",
                "door",
                "load_kg",
                "vib_mg",
                "motor_c",
                "brake_c",
            ],
        ),
    )
    __mapper_args__ = {"primary_key": ["elevator_id", "time", "boot", "seq"]}  # noqa: RUF012

    time: Mapped[dt.datetime] = mapped_column(sa.DateTime(timezone=True))
    received_at: Mapped[dt.datetime]
    elevator_id: Mapped[str] = mapped_column(sa.Text)
    boot: Mapped[str] = mapped_column(sa.Text)
    seq: Mapped[int] = mapped_column(sa.BigInteger)
    floor: Mapped[int] = mapped_column(sa.SmallInteger)
    pos_m: Mapped[float] = mapped_column(sa.REAL)
    speed_mps: Mapped[float] = mapped_column(sa.REAL)
    dir: Mapped[str] = mapped_column(sa.Text)
    door: Mapped[str] = mapped_column(sa.Text)
    door_zone: Mapped[bool]
    door_lock: Mapped[bool]
    safety_chain: Mapped[bool]
    power: Mapped[str] = mapped_column(sa.Text)
    load_kg: Mapped[float] = mapped_column(sa.REAL)
    occupied: Mapped[bool]
    mode: Mapped[str] = mapped_column(sa.Text)
    vib_mg: Mapped[float | None] = mapped_column(sa.REAL)
    motor_c: Mapped[float | None] = mapped_column(sa.REAL)
    brake_c: Mapped[float | None] = mapped_column(sa.REAL)
    level_mm: Mapped[float | None] = mapped_column(sa.REAL)
    extra: Mapped[dict[str, Any] | None]


class DeviceEventRow(Base):
    """One stored discrete device event (alarm button, fault code, door cycle, …)."""

    __tablename__ = "device_events"
    __table_args__ = (
        sa.UniqueConstraint("elevator_id", "boot", "seq"),
        sa.Index("ix_device_events_elevator_time", "elevator_id", sa.text("time DESC")),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    elevator_id: Mapped[str] = mapped_column(sa.Text)
    boot: Mapped[str] = mapped_column(sa.Text)
    seq: Mapped[int] = mapped_column(sa.BigInteger)
    time: Mapped[dt.datetime]
    received_at: Mapped[dt.datetime]
    type: Mapped[str] = mapped_column(sa.Text)
    body: Mapped[dict[str, Any]] = mapped_column(server_default=_empty_json())


class DeadLetter(Base):
    """A message that could not be accepted, kept byte for byte with the reason (SPEC §3)."""

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    received_at: Mapped[dt.datetime] = mapped_column(server_default=_now(), index=True)
    topic: Mapped[str] = mapped_column(sa.Text)
    # The whole payload, or only its first bytes when it was over the size limit.
    payload: Mapped[bytes] = mapped_column(sa.LargeBinary)
    reason: Mapped[str] = mapped_column(sa.Text, index=True)
    detail: Mapped[str | None] = mapped_column(sa.Text)
    elevator_id: Mapped[str | None] = mapped_column(sa.Text)
    payload_size: Mapped[int | None] = mapped_column(sa.Integer)  # bytes as received
    payload_sha256: Mapped[bytes | None] = mapped_column(sa.LargeBinary)  # of the whole payload


# -- alerts ----------------------------------------------------------------------------------


class Alert(Base):
    """A detected fault and the crew's work on it (condition and workflow, SPEC §4)."""

    __tablename__ = "alerts"
    __table_args__ = (
        sa.CheckConstraint("severity IN ('critical', 'major', 'minor', 'info')", name="severity"),
        sa.CheckConstraint("condition IN ('active', 'cleared')", name="condition"),
        sa.CheckConstraint(
            "status IN ('open', 'acknowledged', 'on_site', 'resolved', 'false_alarm')",
            name="status",
        ),
        # At most one unresolved alert per (elevator, type), enforced here, not only in code.
        sa.Index(
            "ux_alerts_one_unresolved_per_elevator_type",
            "elevator_id",
            "type",
            unique=True,
            postgresql_where=sa.text("status IN ('open', 'acknowledged', 'on_site')"),
        ),
        sa.Index("ix_alerts_site_opened", "site_id", sa.text("opened_at DESC")),
        sa.Index("ix_alerts_status_severity", "status", "severity"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    elevator_id: Mapped[str] = mapped_column(sa.ForeignKey("elevators.id"))
    site_id: Mapped[str] = mapped_column(sa.ForeignKey("sites.id"))
    type: Mapped[str] = mapped_column(sa.Text)
    severity: Mapped[str] = mapped_column(sa.Text)
    condition: Mapped[str] = mapped_column(sa.Text, server_default="active")
    status: Mapped[str] = mapped_column(sa.Text, server_default="open")
    opened_at: Mapped[dt.datetime]
    last_active_at: Mapped[dt.datetime]
    cleared_at: Mapped[dt.datetime | None]
    occurrences: Mapped[int] = mapped_column(server_default=sa.text("1"))
    acknowledged_at: Mapped[dt.datetime | None]
    acknowledged_by: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    on_site_at: Mapped[dt.datetime | None]
    on_site_by: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    closed_at: Mapped[dt.datetime | None]
    closed_by: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    ack_escalated_at: Mapped[dt.datetime | None]
    on_site_escalated_at: Mapped[dt.datetime | None]
    # Escalation deadlines, fixed when a critical alert opens (thresholds of that moment).
    ack_due_at: Mapped[dt.datetime | None]
    on_site_due_at: Mapped[dt.datetime | None]
    details: Mapped[dict[str, Any]] = mapped_column(server_default=_empty_json())


class AlertEvent(Base):
    """One change of an alert's condition or workflow, with who and when."""

    __tablename__ = "alert_events"
    __table_args__ = (
        sa.CheckConstraint(
            "kind IN ('opened', 'updated', 'reactivated', 'cleared', 'acknowledged', "
            "'on_site', 'resolved', 'false_alarm', 'escalated')",
            name="kind",
        ),
        sa.Index("ix_alert_events_alert_time", "alert_id", "time"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    alert_id: Mapped[int] = mapped_column(sa.ForeignKey("alerts.id"))
    time: Mapped[dt.datetime]
    kind: Mapped[str] = mapped_column(sa.Text)
    actor_user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    details: Mapped[dict[str, Any]] = mapped_column(server_default=_empty_json())


# -- notifications -------------------------------------------------------------------------


class NotificationCursor(Base):
    """How far a delivery channel has read the alert events (by ledger seq)."""

    __tablename__ = "notification_cursors"

    channel: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    seq: Mapped[int] = mapped_column(sa.BigInteger)
    updated_at: Mapped[dt.datetime] = mapped_column(server_default=_now())


class WebhookSubscription(Base):
    """An HTTP endpoint that receives alert events, filtered by site, type and severity."""

    __tablename__ = "webhook_subscriptions"
    __table_args__ = (
        sa.CheckConstraint(
            "min_severity IN ('critical', 'major', 'minor', 'info')", name="min_severity"
        ),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(sa.Text, unique=True)
    url: Mapped[str] = mapped_column(sa.Text)
    secret: Mapped[str] = mapped_column(sa.Text)
    sites: Mapped[list[str] | None] = mapped_column(sa.ARRAY(sa.Text))
    types: Mapped[list[str] | None] = mapped_column(sa.ARRAY(sa.Text))
    kinds: Mapped[list[str] | None] = mapped_column(sa.ARRAY(sa.Text))
    min_severity: Mapped[str] = mapped_column(sa.Text, server_default="info")
    active: Mapped[bool] = mapped_column(server_default=sa.true())
    created_at: Mapped[dt.datetime] = mapped_column(server_default=_now())


class WebhookDelivery(Base):
    """One alert event owed to one webhook: the delivery log with attempts and outcome."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        sa.CheckConstraint("status IN ('pending', 'delivered', 'failed')", name="status"),
        sa.UniqueConstraint("subscription_id", "alert_event_id"),
        sa.Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    subscription_id: Mapped[int] = mapped_column(
        sa.ForeignKey("webhook_subscriptions.id", ondelete="CASCADE")
    )
    alert_event_id: Mapped[int] = mapped_column(sa.ForeignKey("alert_events.id"))
    ledger_seq: Mapped[int] = mapped_column(sa.BigInteger)
    status: Mapped[str] = mapped_column(sa.Text, server_default="pending")
    attempts: Mapped[int] = mapped_column(server_default=sa.text("0"))
    next_attempt_at: Mapped[dt.datetime] = mapped_column(server_default=_now())
    last_status_code: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    delivered_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(server_default=_now())


# -- maintenance -----------------------------------------------------------------------------


class MaintenanceRecord(Base):
    """Work done on an elevator; optionally signed (EIP-712) by the crew member's key."""

    __tablename__ = "maintenance_records"
    __table_args__ = (
        sa.CheckConstraint(
            "kind IN ('routine', 'repair', 'inspection', 'rescue', 'other')", name="kind"
        ),
        sa.CheckConstraint("signed = (signature IS NOT NULL)", name="signed_iff_signature"),
        sa.CheckConstraint("nonce IS NULL OR octet_length(nonce) = 32", name="nonce_len"),
        # The nonce inside a signature: the same signed record cannot be filed twice.
        sa.Index("ux_maintenance_records_signer_nonce", "signer_address", "nonce", unique=True),
        sa.Index(
            "ix_maintenance_records_elevator_performed",
            "elevator_id",
            sa.text("performed_at DESC"),
        ),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    elevator_id: Mapped[str] = mapped_column(sa.ForeignKey("elevators.id"))
    kind: Mapped[str] = mapped_column(sa.Text)
    performed_at: Mapped[dt.datetime]
    performed_by: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    summary: Mapped[str] = mapped_column(sa.Text)
    details: Mapped[dict[str, Any]] = mapped_column(server_default=_empty_json())
    signature: Mapped[bytes | None] = mapped_column(sa.LargeBinary)
    signer_address: Mapped[str | None] = mapped_column(sa.Text)
    nonce: Mapped[bytes | None] = mapped_column(sa.LargeBinary)
    signed: Mapped[bool] = mapped_column(server_default=sa.false())
    corrects_id: Mapped[int | None] = mapped_column(sa.ForeignKey("maintenance_records.id"))
    created_at: Mapped[dt.datetime] = mapped_column(server_default=_now())


# -- ledger ----------------------------------------------------------------------------------


class LedgerEntry(Base):
    """One leaf of the global append-only Merkle log (SPEC §5); never updated or deleted."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        sa.CheckConstraint("seq >= 0", name="seq_non_negative"),
        sa.CheckConstraint("octet_length(content_hash) = 32", name="content_hash_len"),
        sa.CheckConstraint("octet_length(leaf_hash) = 32", name="leaf_hash_len"),
        sa.Index("ix_ledger_entries_source", "source_table", "source_id"),
    )

    seq: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(sa.Text)
    source_table: Mapped[str] = mapped_column(sa.Text)
    source_id: Mapped[int] = mapped_column(sa.BigInteger)
    elevator_id: Mapped[str | None] = mapped_column(sa.Text, index=True)
    canonical: Mapped[bytes] = mapped_column(sa.LargeBinary)
    content_hash: Mapped[bytes] = mapped_column(sa.LargeBinary)
    leaf_hash: Mapped[bytes] = mapped_column(sa.LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(server_default=_now())


class ContractDeployment(Base):
    """Where the anchor contract lives; the newest row of a chain is the one in use."""

    __tablename__ = "contract_deployments"

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    chain_id: Mapped[int] = mapped_column(sa.BigInteger)
    address: Mapped[str] = mapped_column(sa.Text, unique=True)
    deploy_tx: Mapped[bytes] = mapped_column(sa.LargeBinary)
    block_number: Mapped[int] = mapped_column(sa.BigInteger)
    admin: Mapped[str] = mapped_column(sa.Text)
    anchorer: Mapped[str] = mapped_column(sa.Text)
    deployed_at: Mapped[dt.datetime] = mapped_column(server_default=_now())


class Anchor(Base):
    """One anchoring transaction of the log head; the signed bytes are stored before sending."""

    __tablename__ = "anchors"
    __table_args__ = (
        sa.CheckConstraint("status IN ('signed', 'sent', 'confirmed', 'failed')", name="status"),
        # One live anchor per contract and size; a failed one may be followed by another.
        sa.Index(
            "ux_anchors_tree_size_live",
            "contract_address",
            "tree_size",
            unique=True,
            postgresql_where=sa.text("status <> 'failed'"),
        ),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    tree_size: Mapped[int] = mapped_column(sa.BigInteger)
    previous_size: Mapped[int] = mapped_column(sa.BigInteger)
    root: Mapped[bytes] = mapped_column(sa.LargeBinary)
    status: Mapped[str] = mapped_column(sa.Text)
    chain_id: Mapped[int] = mapped_column(sa.BigInteger)
    contract_address: Mapped[str] = mapped_column(sa.Text)
    nonce: Mapped[int] = mapped_column(sa.BigInteger)
    raw_tx: Mapped[bytes] = mapped_column(sa.LargeBinary)
    tx_hash: Mapped[bytes] = mapped_column(sa.LargeBinary, unique=True)
    block_number: Mapped[int | None] = mapped_column(sa.BigInteger)
    block_hash: Mapped[bytes | None] = mapped_column(sa.LargeBinary)
    gas_used: Mapped[int | None] = mapped_column(sa.BigInteger)
    created_at: Mapped[dt.datetime] = mapped_column(server_default=_now())
    sent_at: Mapped[dt.datetime | None]
    confirmed_at: Mapped[dt.datetime | None]

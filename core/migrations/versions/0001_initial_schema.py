"""Initial schema: registry, people, telemetry hypertable, alerts, maintenance, ledger.

Beyond the tables, this revision creates the TimescaleDB extension, turns `telemetry` into a
hypertable (chunk interval from the settings, only the one unique index that both
deduplicates and serves per-elevator time ranges), turns on compression and retention where
the Timescale-License edition offers them, and makes `ledger_entries` append-only with a
trigger.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from core.migrations.columns import identity, json_object, stamped

revision = "0001"
down_revision = None


TELEMETRY_RETENTION = "400 days"
TELEMETRY_COMPRESS_AFTER = "7 days"


def _create_telemetry_hypertable() -> None:
    config = op.get_context().config
    hours = int(config.attributes.get("telemetry_chunk_hours", 24)) if config else 24
    op.execute(
        sa.text(
            "SELECT create_hypertable('telemetry', 'time', "
            "chunk_time_interval => make_interval(hours => :hours), "
            "create_default_indexes => false)"
        ).bindparams(hours=hours)
    )
    edition = op.get_bind().execute(sa.text("SHOW timescaledb.license")).scalar()
    if edition == "timescale":
        op.execute(
            "ALTER TABLE telemetry SET (timescaledb.compress, "
            "timescaledb.compress_segmentby = 'elevator_id', "
            "timescaledb.compress_orderby = 'time DESC, boot, seq')"
        )
        op.execute(
            f"SELECT add_compression_policy('telemetry', INTERVAL '{TELEMETRY_COMPRESS_AFTER}')"
        )
        op.execute(f"SELECT add_retention_policy('telemetry', INTERVAL '{TELEMETRY_RETENTION}')")
    # The Apache edition has neither: old chunks are dropped by the platform's own
    # housekeeping with drop_chunks (docs/database.md).


def _make_ledger_append_only() -> None:
    op.execute(
        """
        CREATE FUNCTION ledger_entries_append_only() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'ledger_entries is append-only: % refused', TG_OP
                USING ERRCODE = 'insufficient_privilege';
        END
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER ledger_entries_no_update_delete BEFORE UPDATE OR DELETE "
        "ON ledger_entries FOR EACH ROW EXECUTE FUNCTION ledger_entries_append_only()"
    )
    op.execute(
        "CREATE TRIGGER ledger_entries_no_truncate BEFORE TRUNCATE "
        "ON ledger_entries FOR EACH STATEMENT EXECUTE FUNCTION ledger_entries_append_only()"
    )


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    op.create_table(
        "anchors",
        identity(),
        sa.Column("tree_size", sa.BigInteger(), nullable=False),
        sa.Column("previous_size", sa.BigInteger(), nullable=False),
        sa.Column("root", sa.LargeBinary(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("contract_address", sa.Text(), nullable=False),
        sa.Column("nonce", sa.BigInteger(), nullable=False),
        sa.Column("raw_tx", sa.LargeBinary(), nullable=False),
        sa.Column("tx_hash", sa.LargeBinary(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=True),
        sa.Column("block_hash", sa.LargeBinary(), nullable=True),
        sa.Column("gas_used", sa.BigInteger(), nullable=True),
        stamped("created_at"),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('signed', 'sent', 'confirmed', 'failed')", name=op.f("ck_anchors_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_anchors")),
        sa.UniqueConstraint("tree_size", name=op.f("uq_anchors_tree_size")),
        sa.UniqueConstraint("tx_hash", name=op.f("uq_anchors_tx_hash")),
    )
    op.create_table(
        "dead_letters",
        identity(),
        stamped("received_at"),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("elevator_id", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dead_letters")),
    )
    op.create_index(op.f("ix_dead_letters_reason"), "dead_letters", ["reason"], unique=False)
    op.create_index(
        op.f("ix_dead_letters_received_at"), "dead_letters", ["received_at"], unique=False
    )
    op.create_table(
        "device_events",
        identity(),
        sa.Column("elevator_id", sa.Text(), nullable=False),
        sa.Column("boot", sa.Text(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        json_object("body"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device_events")),
        sa.UniqueConstraint(
            "elevator_id", "boot", "seq", name=op.f("uq_device_events_elevator_id_boot_seq")
        ),
    )
    op.create_index(
        "ix_device_events_elevator_time",
        "device_events",
        ["elevator_id", sa.literal_column("time DESC")],
        unique=False,
    )
    op.create_table(
        "ledger_entries",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("source_table", sa.Text(), nullable=False),
        sa.Column("source_id", sa.BigInteger(), nullable=False),
        sa.Column("elevator_id", sa.Text(), nullable=True),
        sa.Column("canonical", sa.LargeBinary(), nullable=False),
        sa.Column("content_hash", sa.LargeBinary(), nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(), nullable=False),
        stamped("created_at"),
        sa.CheckConstraint(
            "octet_length(content_hash) = 32", name=op.f("ck_ledger_entries_content_hash_len")
        ),
        sa.CheckConstraint(
            "octet_length(leaf_hash) = 32", name=op.f("ck_ledger_entries_leaf_hash_len")
        ),
        sa.CheckConstraint("seq >= 0", name=op.f("ck_ledger_entries_seq_non_negative")),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_ledger_entries")),
    )
    op.create_index(
        op.f("ix_ledger_entries_elevator_id"), "ledger_entries", ["elevator_id"], unique=False
    )
    op.create_index(
        "ix_ledger_entries_source", "ledger_entries", ["source_table", "source_id"], unique=False
    )
    op.create_table(
        "sites",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("district", sa.Text(), nullable=True),
        json_object("thresholds"),
        stamped("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sites")),
    )
    op.create_table(
        "telemetry",
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("elevator_id", sa.Text(), nullable=False),
        sa.Column("boot", sa.Text(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("floor", sa.SmallInteger(), nullable=False),
        sa.Column("pos_m", sa.REAL(), nullable=False),
        sa.Column("speed_mps", sa.REAL(), nullable=False),
        sa.Column("dir", sa.Text(), nullable=False),
        sa.Column("door", sa.Text(), nullable=False),
        sa.Column("door_zone", sa.Boolean(), nullable=False),
        sa.Column("door_lock", sa.Boolean(), nullable=False),
        sa.Column("safety_chain", sa.Boolean(), nullable=False),
        sa.Column("power", sa.Text(), nullable=False),
        sa.Column("load_kg", sa.REAL(), nullable=False),
        sa.Column("occupied", sa.Boolean(), nullable=False),
        sa.Column("mode", sa.Text(), nullable=False),
        sa.Column("vib_mg", sa.REAL(), nullable=True),
        sa.Column("motor_c", sa.REAL(), nullable=True),
        sa.Column("brake_c", sa.REAL(), nullable=True),
        sa.Column("level_mm", sa.REAL(), nullable=True),
        sa.Column("extra", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    )
    op.create_index(
        "ux_telemetry_elevator_time_boot_seq",
        "telemetry",
        ["elevator_id", sa.literal_column("time DESC"), "boot", "seq"],
        unique=True,
    )
    _create_telemetry_hypertable()
    op.create_table(
        "users",
        identity(),
        sa.Column("username", sa.Text(), nullable=False),
        sa.Column("full_name", sa.Text(), nullable=True),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=True),
        sa.Column("signer_address", sa.Text(), nullable=True),
        sa.Column("active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        stamped("created_at"),
        sa.CheckConstraint("role IN ('crew', 'supervisor', 'admin')", name=op.f("ck_users_role")),
        sa.CheckConstraint(
            "signer_address IS NULL OR signer_address ~ '^0x[0-9a-fA-F]{40}$'",
            name=op.f("ck_users_signer_address_format"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
    )
    op.create_table(
        "elevators",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("site_id", sa.Text(), nullable=False),
        sa.Column("building", sa.Text(), nullable=False),
        sa.Column("registration_code", sa.Text(), nullable=True),
        sa.Column("lowest_floor", sa.SmallInteger(), nullable=False),
        sa.Column("highest_floor", sa.SmallInteger(), nullable=False),
        sa.Column("floor_height_m", sa.Float(), server_default=sa.text("3.0"), nullable=False),
        sa.Column("rated_speed_mps", sa.Float(), nullable=False),
        sa.Column("rated_load_kg", sa.Float(), nullable=False),
        sa.Column("acceleration_mps2", sa.Float(), server_default=sa.text("0.8"), nullable=False),
        sa.Column("jerk_mps3", sa.Float(), server_default=sa.text("1.2"), nullable=False),
        sa.Column("manufacturer", sa.Text(), nullable=True),
        sa.Column("installed_on", sa.Date(), nullable=True),
        json_object("thresholds"),
        sa.Column("active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        stamped("created_at"),
        stamped("updated_at"),
        sa.CheckConstraint(
            "acceleration_mps2 > 0", name=op.f("ck_elevators_acceleration_positive")
        ),
        sa.CheckConstraint("floor_height_m > 0", name=op.f("ck_elevators_floor_height_positive")),
        sa.CheckConstraint("highest_floor > lowest_floor", name=op.f("ck_elevators_floor_range")),
        sa.CheckConstraint("jerk_mps3 > 0", name=op.f("ck_elevators_jerk_positive")),
        sa.CheckConstraint("rated_load_kg > 0", name=op.f("ck_elevators_rated_load_positive")),
        sa.CheckConstraint("rated_speed_mps > 0", name=op.f("ck_elevators_rated_speed_positive")),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], name=op.f("fk_elevators_site_id_sites")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_elevators")),
        sa.UniqueConstraint("registration_code", name=op.f("uq_elevators_registration_code")),
    )
    op.create_index(op.f("ix_elevators_site_id"), "elevators", ["site_id"], unique=False)
    op.create_table(
        "user_sites",
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("site_id", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_user_sites_site_id_sites")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_user_sites_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", "site_id", name=op.f("pk_user_sites")),
    )
    op.create_table(
        "alerts",
        identity(),
        sa.Column("elevator_id", sa.Text(), nullable=False),
        sa.Column("site_id", sa.Text(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("severity", sa.Text(), nullable=False),
        sa.Column("condition", sa.Text(), server_default="active", nullable=False),
        sa.Column("status", sa.Text(), server_default="open", nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_active_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cleared_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("occurrences", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_by", sa.BigInteger(), nullable=True),
        sa.Column("on_site_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("on_site_by", sa.BigInteger(), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_by", sa.BigInteger(), nullable=True),
        sa.Column("ack_escalated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("on_site_escalated_at", sa.DateTime(timezone=True), nullable=True),
        json_object("details"),
        sa.CheckConstraint("condition IN ('active', 'cleared')", name=op.f("ck_alerts_condition")),
        sa.CheckConstraint(
            "severity IN ('critical', 'major', 'minor', 'info')", name=op.f("ck_alerts_severity")
        ),
        sa.CheckConstraint(
            "status IN ('open', 'acknowledged', 'on_site', 'resolved', 'false_alarm')",
            name=op.f("ck_alerts_status"),
        ),
        sa.ForeignKeyConstraint(
            ["acknowledged_by"], ["users.id"], name=op.f("fk_alerts_acknowledged_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["closed_by"], ["users.id"], name=op.f("fk_alerts_closed_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["elevator_id"], ["elevators.id"], name=op.f("fk_alerts_elevator_id_elevators")
        ),
        sa.ForeignKeyConstraint(
            ["on_site_by"], ["users.id"], name=op.f("fk_alerts_on_site_by_users")
        ),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], name=op.f("fk_alerts_site_id_sites")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
    )
    op.create_index(
        "ix_alerts_site_opened",
        "alerts",
        ["site_id", sa.literal_column("opened_at DESC")],
        unique=False,
    )
    op.create_index("ix_alerts_status_severity", "alerts", ["status", "severity"], unique=False)
    op.create_index(
        "ux_alerts_one_unresolved_per_elevator_type",
        "alerts",
        ["elevator_id", "type"],
        unique=True,
        postgresql_where=sa.text("status IN ('open', 'acknowledged', 'on_site')"),
    )
    op.create_table(
        "elevator_status",
        sa.Column("elevator_id", sa.Text(), nullable=False),
        sa.Column("online", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=True),
        sa.Column("online_changed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("floor", sa.SmallInteger(), nullable=True),
        sa.Column("mode", sa.Text(), nullable=True),
        sa.Column("boot", sa.Text(), nullable=True),
        sa.Column("last_seq", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["elevator_id"],
            ["elevators.id"],
            name=op.f("fk_elevator_status_elevator_id_elevators"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("elevator_id", name=op.f("pk_elevator_status")),
    )
    op.create_table(
        "maintenance_records",
        identity(),
        sa.Column("elevator_id", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("performed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("performed_by", sa.BigInteger(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        json_object("details"),
        sa.Column("signature", sa.LargeBinary(), nullable=True),
        sa.Column("signer_address", sa.Text(), nullable=True),
        sa.Column("signed", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("corrects_id", sa.BigInteger(), nullable=True),
        stamped("created_at"),
        sa.CheckConstraint(
            "kind IN ('routine', 'repair', 'inspection', 'rescue', 'other')",
            name=op.f("ck_maintenance_records_kind"),
        ),
        sa.CheckConstraint(
            "signed = (signature IS NOT NULL)",
            name=op.f("ck_maintenance_records_signed_iff_signature"),
        ),
        sa.ForeignKeyConstraint(
            ["corrects_id"],
            ["maintenance_records.id"],
            name=op.f("fk_maintenance_records_corrects_id_maintenance_records"),
        ),
        sa.ForeignKeyConstraint(
            ["elevator_id"],
            ["elevators.id"],
            name=op.f("fk_maintenance_records_elevator_id_elevators"),
        ),
        sa.ForeignKeyConstraint(
            ["performed_by"], ["users.id"], name=op.f("fk_maintenance_records_performed_by_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_maintenance_records")),
    )
    op.create_index(
        "ix_maintenance_records_elevator_performed",
        "maintenance_records",
        ["elevator_id", sa.literal_column("performed_at DESC")],
        unique=False,
    )
    op.create_table(
        "alert_events",
        identity(),
        sa.Column("alert_id", sa.BigInteger(), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("actor_user_id", sa.BigInteger(), nullable=True),
        json_object("details"),
        sa.CheckConstraint(
            "kind IN ('opened', 'updated', 'reactivated', 'cleared', 'acknowledged', 'on_site', 'resolved', 'false_alarm', 'escalated')",
            name=op.f("ck_alert_events_kind"),
        ),
        sa.ForeignKeyConstraint(
            ["actor_user_id"], ["users.id"], name=op.f("fk_alert_events_actor_user_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["alert_id"], ["alerts.id"], name=op.f("fk_alert_events_alert_id_alerts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_events")),
    )
    op.create_index(
        "ix_alert_events_alert_time", "alert_events", ["alert_id", "time"], unique=False
    )
    _make_ledger_append_only()


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS ledger_entries_no_update_delete ON ledger_entries")
    op.execute("DROP TRIGGER IF EXISTS ledger_entries_no_truncate ON ledger_entries")
    op.execute("DROP FUNCTION IF EXISTS ledger_entries_append_only()")
    op.drop_index("ix_alert_events_alert_time", table_name="alert_events")
    op.drop_table("alert_events")
    op.drop_index("ix_maintenance_records_elevator_performed", table_name="maintenance_records")
    op.drop_table("maintenance_records")
    op.drop_table("elevator_status")
    op.drop_index(
        "ux_alerts_one_unresolved_per_elevator_type",
        table_name="alerts",
        postgresql_where=sa.text("status IN ('open', 'acknowledged', 'on_site')"),
    )
    op.drop_index("ix_alerts_status_severity", table_name="alerts")
    op.drop_index("ix_alerts_site_opened", table_name="alerts")
    op.drop_table("alerts")
    op.drop_table("user_sites")
    op.drop_index(op.f("ix_elevators_site_id"), table_name="elevators")
    op.drop_table("elevators")
    op.drop_table("users")
    op.drop_index("ux_telemetry_elevator_time_boot_seq", table_name="telemetry")
    op.drop_table("telemetry")
    op.drop_table("sites")
    op.drop_index("ix_ledger_entries_source", table_name="ledger_entries")
    op.drop_index(op.f("ix_ledger_entries_elevator_id"), table_name="ledger_entries")
    op.drop_table("ledger_entries")
    op.drop_index("ix_device_events_elevator_time", table_name="device_events")
    op.drop_table("device_events")
    op.drop_index(op.f("ix_dead_letters_received_at"), table_name="dead_letters")
    op.drop_index(op.f("ix_dead_letters_reason"), table_name="dead_letters")
    op.drop_table("dead_letters")
    op.drop_table("anchors")

"""Telemetry's unique index carries the columns the bucket query aggregates.

The collectors write the whole fleet in time order, so one elevator's day is spread over
one heap page per sample; a one-day, 1-minute-bucket query visited ~25,000 heap pages. With
the aggregated columns in the index (INCLUDE), that query is an index-only scan over one
contiguous range of leaf pages. The key, and so the idempotency of inserts, is unchanged.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"

INDEX = "ux_telemetry_elevator_time_boot_seq"
KEY: list[str | sa.ColumnElement[object]] = [
    "elevator_id",
    sa.literal_column("time DESC"),
    "boot",
    "seq",
]
INCLUDED = ["floor", "speed_mps", "door", "load_kg", "vib_mg", "motor_c", "brake_c"]


def upgrade() -> None:
    op.drop_index(INDEX, table_name="telemetry")
    op.create_index(INDEX, "telemetry", KEY, unique=True, postgresql_include=INCLUDED)


def downgrade() -> None:
    op.drop_index(INDEX, table_name="telemetry")
    op.create_index(INDEX, "telemetry", KEY, unique=True)

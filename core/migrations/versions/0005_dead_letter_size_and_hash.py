"""Dead letters record the size and SHA-256 of the payload they were sent.

An oversized payload is kept only as a bounded prefix (docs/ingest.md), so the row says how
large the original was and which bytes it held; for every other dead letter the payload is
whole and the two columns describe it too.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    op.add_column("dead_letters", sa.Column("payload_size", sa.Integer(), nullable=True))
    op.add_column("dead_letters", sa.Column("payload_sha256", sa.LargeBinary(), nullable=True))
    op.execute(
        "UPDATE dead_letters SET payload_size = length(payload), payload_sha256 = sha256(payload)"
    )


def downgrade() -> None:
    op.drop_column("dead_letters", "payload_sha256")
    op.drop_column("dead_letters", "payload_size")

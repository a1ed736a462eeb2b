"""Users carry a token version: every bearer token names it, and bumping it revokes them.

A password change, a deactivation and an explicit revocation add one, so every token
issued before stops working at once (`accounts.tokens`, `api.deps`).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    op.add_column(
        "users",
        sa.Column("token_version", sa.Integer(), nullable=False, server_default=sa.text("0")),
    )


def downgrade() -> None:
    op.drop_column("users", "token_version")

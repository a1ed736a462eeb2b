"""Every function on `ledger_entries` runs with its own search path.

PostgreSQL looks an unqualified table or type name up in the session's temporary schema
first, even before pg_catalog, and the collector's role may create temporary tables. A trigger
function that resolved names with the session's search path could be shown a stand-in
`ledger_entries` (or a type named like one it uses). Each function is given
`search_path = pg_catalog, public, pg_temp`: the catalog first, the schema next, temporary
objects last.

`ledger_entries_append_only` (0001) and `ledger_entries_notify` (0002) read no table today;
they get the same setting so that a later change to them cannot bring the hole back.
`ledger_entries_follow_previous` is created with it by 0007; a database that ran an earlier
0007 gets it here.
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"

SEARCH_PATH = "pg_catalog, public, pg_temp"
FUNCTIONS = (
    "public.ledger_entries_append_only()",
    "public.ledger_entries_notify()",
    "public.ledger_entries_follow_previous()",
)
# 0007 creates its function with the setting; a downgrade leaves it there.
EARLIER_FUNCTIONS = FUNCTIONS[:2]


def upgrade() -> None:
    for function in FUNCTIONS:
        op.execute(f"ALTER FUNCTION {function} SET search_path = {SEARCH_PATH}")


def downgrade() -> None:
    for function in EARLIER_FUNCTIONS:
        op.execute(f"ALTER FUNCTION {function} RESET search_path")

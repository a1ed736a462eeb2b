"""The database keeps the ledger's chain dense and linked; a signing key has one owner;
signed maintenance records carry a nonce that cannot be filed twice.

- A row trigger on `ledger_entries` refuses an INSERT unless `seq` is the previous highest
  seq plus one (0 for the first entry), the leaf hash is SHA-256(0x00 || content_hash)
  (RFC 9162 §2.1.1), and the entry's canonical JSON names the previous entry's leaf hash
  as `prev` ("" for the first). It takes the ledger's append lock first, the same
  transaction-level advisory lock `ledger.entries.append_entries` takes, so concurrent
  appenders, the platform's or anyone's, take turns and "the previous entry" is well defined.
  The function names `public.ledger_entries` and runs with its own search path
  (`pg_catalog, public, pg_temp`): a role that may create temporary tables cannot put a
  stand-in `ledger_entries` (or a type named like one it casts to) in front of the real one.
- `users.signer_address` is unique, ignoring case: one key belongs to at most one user.
  The upgrade stops and names the users if two already share a key.
- `maintenance_records.nonce`: the 32-byte nonce inside a record's EIP-712 signature,
  unique per signer, so the same signed record cannot be filed twice.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"

# `ledger.entries.LEDGER_LOCK_KEY` ("LEDGER" in ASCII), written out so this revision keeps
# its meaning whatever the code does later.
LEDGER_LOCK_KEY = 0x4C4544474552
# Without it the session's temporary schema is searched first, even before pg_catalog.
SEARCH_PATH = "pg_catalog, public, pg_temp"


def _make_ledger_dense_and_linked() -> None:
    op.execute(
        f"""
        CREATE FUNCTION public.ledger_entries_follow_previous() RETURNS trigger
        LANGUAGE plpgsql SET search_path = {SEARCH_PATH} AS $$
        DECLARE
            last_seq bigint;
            last_leaf bytea;
            expected_prev text;
            linked text;
        BEGIN
            PERFORM pg_advisory_xact_lock({LEDGER_LOCK_KEY});
            SELECT seq, leaf_hash INTO last_seq, last_leaf
                FROM public.ledger_entries ORDER BY seq DESC LIMIT 1;
            IF NEW.seq IS DISTINCT FROM coalesce(last_seq + 1, 0) THEN
                RAISE EXCEPTION 'ledger entry % refused: the next entry is %',
                    NEW.seq, coalesce(last_seq + 1, 0)
                    USING ERRCODE = 'check_violation';
            END IF;
            IF NEW.leaf_hash IS DISTINCT FROM sha256('\\x00'::bytea || NEW.content_hash) THEN
                RAISE EXCEPTION 'ledger entry % refused: its leaf hash is not '
                    'SHA-256(0x00 || content_hash)', NEW.seq
                    USING ERRCODE = 'check_violation';
            END IF;
            expected_prev := coalesce(encode(last_leaf, 'hex'), '');
            BEGIN
                linked := convert_from(NEW.canonical, 'UTF8')::json ->> 'prev';
            EXCEPTION WHEN OTHERS THEN
                linked := NULL;  -- not UTF-8 JSON: it cannot carry the link
            END;
            IF linked IS DISTINCT FROM expected_prev THEN
                RAISE EXCEPTION 'ledger entry % refused: its prev link must be the leaf hash '
                    'of entry % (%)', NEW.seq, last_seq, expected_prev
                    USING ERRCODE = 'check_violation';
            END IF;
            RETURN NEW;
        END
        $$
        """  # noqa: S608 - a constant of this module, no input
    )
    op.execute(
        "CREATE TRIGGER ledger_entries_follow_previous BEFORE INSERT ON public.ledger_entries "
        "FOR EACH ROW EXECUTE FUNCTION public.ledger_entries_follow_previous()"
    )


def _refuse_shared_signers() -> None:
    shared = (
        op.get_bind()
        .execute(
            sa.text(
                "SELECT lower(signer_address), string_agg(username, ', ' ORDER BY username) "
                "FROM users WHERE signer_address IS NOT NULL "
                "GROUP BY lower(signer_address) HAVING count(*) > 1"
            )
        )
        .all()
    )
    if shared:
        listing = "; ".join(f"{address}: {names}" for address, names in shared)
        raise RuntimeError(
            "users share a signing key, which must belong to one user only; give each "
            f"their own (`liftledger users set NAME --signer ADDRESS`) and upgrade again: {listing}"
        )


def upgrade() -> None:
    _make_ledger_dense_and_linked()
    _refuse_shared_signers()
    op.create_index(
        "ux_users_signer_address",
        "users",
        [sa.literal_column("lower(signer_address)")],
        unique=True,
    )
    op.add_column("maintenance_records", sa.Column("nonce", sa.LargeBinary(), nullable=True))
    op.create_check_constraint(
        op.f("ck_maintenance_records_nonce_len"),
        "maintenance_records",
        "nonce IS NULL OR octet_length(nonce) = 32",
    )
    op.create_index(
        "ux_maintenance_records_signer_nonce",
        "maintenance_records",
        ["signer_address", "nonce"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_index("ux_maintenance_records_signer_nonce", table_name="maintenance_records")
    op.drop_constraint(
        op.f("ck_maintenance_records_nonce_len"), "maintenance_records", type_="check"
    )
    op.drop_column("maintenance_records", "nonce")
    op.drop_index("ux_users_signer_address", table_name="users")
    op.execute("DROP TRIGGER IF EXISTS ledger_entries_follow_previous ON ledger_entries")
    op.execute("DROP FUNCTION IF EXISTS ledger_entries_follow_previous()")

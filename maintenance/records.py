"""Filing maintenance records, with optional EIP-712 signatures by the crew member (SPEC §5).

The record and its signature are `maintenance.signing`: a crew member's app signs the
record's content, with a nonce of its own, under the anchor contract's EIP-712 domain. The
platform recovers the signer and refuses the record unless it is the address registered for
that crew member. Unsigned records are accepted and stored as unsigned. Either way the record
becomes a ledger entry (`maintenance.entries`) in the same transaction; a correction is a new
record that names the one it corrects (`corrects_id`), never an update.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from ledger.entries import append_entries
from maintenance.entries import record_entry
from maintenance.signing import (
    EIP712_TYPES,
    KINDS,
    LEGACY_EIP712_TYPES,
    NONCE_BYTES,
    MaintenanceRecordError,
    MaintenanceRecordInput,
    SigningDomain,
    new_nonce,
    record_content,
    recover_signer,
    sign_record,
    typed_message,
)

# The record, its signature and its errors are `maintenance.signing`'s; callers find them here
# too, beside `file_record`.
__all__ = [
    "EIP712_TYPES",
    "KINDS",
    "LEGACY_EIP712_TYPES",
    "NONCE_BYTES",
    "MaintenanceRecordError",
    "MaintenanceRecordInput",
    "SigningDomain",
    "file_record",
    "new_nonce",
    "record_content",
    "recover_signer",
    "sign_record",
    "typed_message",
]


def _refuse_a_second_filing(conn: psycopg.Connection[Any], signer: str, nonce: bytes) -> None:
    """A signer's nonce is filed once (the unique index `ux_maintenance_records_signer_nonce`
    decides between two filings at the same moment)."""
    row = conn.execute(
        "SELECT id FROM maintenance_records WHERE signer_address = %s AND nonce = %s",
        (signer, nonce),
    ).fetchone()
    if row is not None:
        raise MaintenanceRecordError(
            f"this signed record was filed already, as record {row[0]}: a new record needs a "
            "new nonce",
            code="duplicate_record",
        )


def file_record(
    conn: psycopg.Connection[Any],
    record: MaintenanceRecordInput,
    *,
    performed_by: int,
    signature: bytes | None,
    domain: SigningDomain | None,
) -> int:
    """Verify and store a record and its ledger entry (caller's transaction); returns its id."""
    if record.kind not in KINDS:
        raise MaintenanceRecordError(
            f"kind must be one of {', '.join(KINDS)}, not {record.kind!r}", code="bad_kind"
        )
    user = conn.execute(
        "SELECT username, signer_address FROM users WHERE id = %s", (performed_by,)
    ).fetchone()
    if user is None:
        raise MaintenanceRecordError(f"user {performed_by} does not exist", code="unknown_user")
    signer: str | None = None
    if signature is not None:
        if domain is None:
            raise MaintenanceRecordError(
                "signed records need the anchor contract's domain", code="no_domain"
            )
        if record.nonce is None:
            raise MaintenanceRecordError(
                "a signed record needs the nonce it was signed with", code="no_nonce"
            )
        registered = user[1]
        if not registered:
            raise MaintenanceRecordError(
                f"{user[0]} has no registered signing key; file the record unsigned or "
                "register the key first",
                code="no_registered_key",
            )
        signer = recover_signer(record, signature, domain)
        if signer.lower() != registered.lower():
            raise MaintenanceRecordError(
                f"the signature is by {signer}, not by {user[0]}'s registered key {registered}",
                code="signature_mismatch",
            )
        _refuse_a_second_filing(conn, signer, record.nonce)
    try:
        row = conn.execute(
            "INSERT INTO maintenance_records (elevator_id, kind, performed_at, performed_by, "
            "summary, details, signature, signer_address, signed, corrects_id, nonce) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
            (record.elevator_id, record.kind, record.performed_at, performed_by, record.summary,
             Jsonb(dict(record.details)), signature, signer, signature is not None,
             record.corrects_id, record.nonce),
        ).fetchone()  # fmt: skip
    except psycopg.errors.UniqueViolation as exc:
        if exc.diag.constraint_name != "ux_maintenance_records_signer_nonce":
            raise
        raise MaintenanceRecordError(
            "this signed record is being filed at the same time already", code="duplicate_record"
        ) from exc
    if row is None:
        raise RuntimeError("INSERT … RETURNING gave no row")
    record_id = int(row[0])
    entry = record_entry(
        record_id, record, performed_by=performed_by, signature=signature, signer=signer
    )
    append_entries(conn, [entry])
    return record_id

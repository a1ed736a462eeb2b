"""Filing maintenance records, with optional EIP-712 signatures by the crew member (SPEC §5).

A crew member's app signs the typed message

    MaintenanceRecord(string elevatorId, string kind, uint64 performedAt, bytes32 contentHash)

under the domain {name "LiftLedger", version "1", chainId, verifyingContract = the anchor
contract}. `contentHash` is keccak256 of the RFC 8785 canonical JSON of the record's content
(`record_content`), so the signature covers the summary and every detail, not just the ids.
The platform recovers the signer and refuses the record unless it is the address registered
for that crew member. Unsigned records are accepted and stored as unsigned. Either way the
record becomes a ledger entry in the same transaction; a correction is a new record that
names the one it corrects (`corrects_id`), never an update.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import psycopg
from eth_account import Account
from eth_account.messages import encode_typed_data
from psycopg.types.json import Jsonb

from core.errors import LiftLedgerError
from ledger.canonical import canonical_json
from ledger.entries import PendingEntry, append_entries, content_hash

KINDS: Final = ("routine", "repair", "inspection", "rescue", "other")
EIP712_TYPES: Final = {
    "MaintenanceRecord": [
        {"name": "elevatorId", "type": "string"},
        {"name": "kind", "type": "string"},
        {"name": "performedAt", "type": "uint64"},
        {"name": "contentHash", "type": "bytes32"},
    ]
}


# In the ledger entry the record's kind sits beside the entry's own `kind`.
_ENTRY_NAMES: Final = {"kind": "record_kind"}


class MaintenanceRecordError(LiftLedgerError):
    """A maintenance record that is refused; `code` says why."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class SigningDomain:
    """The EIP-712 domain records are signed under."""

    chain_id: int
    verifying_contract: str

    def as_dict(self) -> dict[str, Any]:
        """The domain as eth_account expects it."""
        return {"name": "LiftLedger", "version": "1", "chainId": self.chain_id,
                "verifyingContract": self.verifying_contract}  # fmt: skip


@dataclass(frozen=True, slots=True)
class MaintenanceRecordInput:
    """What a crew member files."""

    elevator_id: str
    kind: str
    performed_at: dt.datetime
    summary: str
    details: Mapping[str, Any] = field(default_factory=dict)
    corrects_id: int | None = None


def record_content(record: MaintenanceRecordInput) -> dict[str, Any]:
    """The content the signature's `contentHash` covers."""
    return {
        "elevator": record.elevator_id,
        "kind": record.kind,
        "performed_at": int(record.performed_at.timestamp()),
        "summary": record.summary,
        "details": dict(record.details),
        "corrects_id": record.corrects_id,
    }


def typed_message(record: MaintenanceRecordInput) -> dict[str, Any]:
    """The EIP-712 message a crew member signs for `record`."""
    return {
        "elevatorId": record.elevator_id,
        "kind": record.kind,
        "performedAt": int(record.performed_at.timestamp()),
        "contentHash": content_hash(canonical_json(record_content(record))),
    }


def sign_record(key: str, record: MaintenanceRecordInput, domain: SigningDomain) -> bytes:
    """Sign a record as a crew member's app would (tests, the simulator, scripts)."""
    signed = Account.sign_typed_data(key, domain.as_dict(), EIP712_TYPES, typed_message(record))
    return bytes(signed.signature)


def recover_signer(record: MaintenanceRecordInput, signature: bytes, domain: SigningDomain) -> str:
    """The address that signed `record` (raises `MaintenanceRecordError` if unreadable)."""
    message = encode_typed_data(
        domain_data=domain.as_dict(), message_types=EIP712_TYPES, message_data=typed_message(record)
    )
    try:
        return str(Account.recover_message(message, signature=signature))
    except Exception as exc:  # eth_keys raises several types for malformed signatures
        raise MaintenanceRecordError(
            f"the signature cannot be read: {exc}", code="bad_signature"
        ) from exc


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
    row = conn.execute(
        "INSERT INTO maintenance_records (elevator_id, kind, performed_at, performed_by, "
        "summary, details, signature, signer_address, signed, corrects_id) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
        (record.elevator_id, record.kind, record.performed_at, performed_by, record.summary,
         Jsonb(dict(record.details)), signature, signer, signature is not None,
         record.corrects_id),
    ).fetchone()  # fmt: skip
    if row is None:
        raise RuntimeError("INSERT … RETURNING gave no row")
    record_id = int(row[0])
    append_entries(
        conn,
        [
            PendingEntry(
                kind="maintenance_record",
                source_table="maintenance_records",
                source_id=record_id,
                elevator_id=record.elevator_id,
                content={
                    "record_id": record_id,
                    **{_ENTRY_NAMES.get(k, k): v for k, v in record_content(record).items()},
                    "performed_by": performed_by,
                    "signed": signature is not None,
                    "signer": signer,
                    "signature": signature.hex() if signature is not None else None,
                },
            )
        ],
    )
    return record_id

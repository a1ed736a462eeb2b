"""Filing maintenance records, with optional EIP-712 signatures by the crew member (SPEC §5).

A crew member's app signs the typed message

    MaintenanceRecord(string elevatorId, string kind, uint64 performedAt, bytes32 contentHash,
                      bytes32 nonce)

under the domain {name "LiftLedger", version "1", chainId, verifyingContract = the anchor
contract}. `contentHash` is keccak256 of the RFC 8785 canonical JSON of the record's content
(`record_content`), so the signature covers the summary and every detail, not just the ids.
`nonce` is 32 random bytes the app draws for each record (`new_nonce`); a signer's nonce is
accepted once, so the same signed record cannot be filed twice. Only low-s signatures are
accepted (EIP-2: s ≤ n/2), so a signature's malleable twin (n - s, v flipped) is refused.
The platform recovers the signer and refuses the record unless it is the address registered
for that crew member. Unsigned records are accepted and stored as unsigned. Either way the
record becomes a ledger entry in the same transaction; a correction is a new record that
names the one it corrects (`corrects_id`), never an update.
"""

from __future__ import annotations

import datetime as dt
import secrets
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
NONCE_BYTES: Final = 32
EIP712_TYPES: Final = {
    "MaintenanceRecord": [
        {"name": "elevatorId", "type": "string"},
        {"name": "kind", "type": "string"},
        {"name": "performedAt", "type": "uint64"},
        {"name": "contentHash", "type": "bytes32"},
        {"name": "nonce", "type": "bytes32"},
    ]
}
# Records signed before the nonce existed; read by the audit only, never accepted again.
LEGACY_EIP712_TYPES: Final = {"MaintenanceRecord": EIP712_TYPES["MaintenanceRecord"][:4]}
# secp256k1 group order (SEC 2 §2.4.1); EIP-2 accepts s in [1, n/2] only.
SECP256K1_N: Final = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
SIGNATURE_BYTES: Final = 65
V_VALUES: Final = frozenset({0, 1, 27, 28})


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
    # Drawn by the signing app for each record (`new_nonce`); signed records need one.
    nonce: bytes | None = None


def new_nonce() -> bytes:
    """A fresh nonce for one record (32 random bytes)."""
    return secrets.token_bytes(NONCE_BYTES)


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
    """The EIP-712 message a crew member signs for `record` (without `nonce` only for
    records signed before nonces existed)."""
    message: dict[str, Any] = {
        "elevatorId": record.elevator_id,
        "kind": record.kind,
        "performedAt": int(record.performed_at.timestamp()),
        "contentHash": content_hash(canonical_json(record_content(record))),
    }
    if record.nonce is not None:
        message["nonce"] = record.nonce
    return message


def _types_of(record: MaintenanceRecordInput) -> dict[str, Any]:
    if record.nonce is None:
        return dict(LEGACY_EIP712_TYPES)
    if len(record.nonce) != NONCE_BYTES:
        raise MaintenanceRecordError(
            f"the nonce must be {NONCE_BYTES} bytes, not {len(record.nonce)}", code="bad_nonce"
        )
    return dict(EIP712_TYPES)


def sign_record(key: str, record: MaintenanceRecordInput, domain: SigningDomain) -> bytes:
    """Sign a record as a crew member's app would (tests, the simulator, scripts); the record
    needs a nonce (`new_nonce`). eth_account signs with low s (RFC 6979, EIP-2)."""
    if record.nonce is None:
        raise ValueError(
            "a record to sign needs a nonce: MaintenanceRecordInput(nonce=new_nonce())"
        )
    signed = Account.sign_typed_data(
        key, domain.as_dict(), _types_of(record), typed_message(record)
    )
    return bytes(signed.signature)


def _check_low_s(signature: bytes) -> None:
    """Refuse what `ecrecover` would accept but a second encoding of the same signature is:
    the wrong length, r or s out of range, s in the upper half (EIP-2), v not 27/28 or 0/1."""
    if len(signature) != SIGNATURE_BYTES:
        raise MaintenanceRecordError(
            f"a signature is {SIGNATURE_BYTES} bytes (r, s, v), not {len(signature)}",
            code="bad_signature",
        )
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:64], "big")
    if not (0 < r < SECP256K1_N and 0 < s <= SECP256K1_N // 2) or signature[64] not in V_VALUES:
        raise MaintenanceRecordError(
            "the signature is not in canonical form: s must be in the lower half of the curve "
            "order (EIP-2) and v 27 or 28",
            code="bad_signature",
        )


def recover_signer(record: MaintenanceRecordInput, signature: bytes, domain: SigningDomain) -> str:
    """The address that signed `record` (raises `MaintenanceRecordError` if unreadable or not
    in canonical low-s form)."""
    _check_low_s(signature)
    message = encode_typed_data(
        domain_data=domain.as_dict(), message_types=_types_of(record),
        message_data=typed_message(record),
    )  # fmt: skip
    try:
        return str(Account.recover_message(message, signature=signature))
    except Exception as exc:  # eth_keys raises several types for malformed signatures
        raise MaintenanceRecordError(
            f"the signature cannot be read: {exc}", code="bad_signature"
        ) from exc


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
                    "nonce": record.nonce.hex() if record.nonce is not None else None,
                },
            )
        ],
    )
    return record_id

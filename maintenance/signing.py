"""Maintenance records and their EIP-712 crew signatures (SPEC §5): what a crew member
files, the typed message their app signs, and recovering who signed it.

A crew member's app signs the typed message

    MaintenanceRecord(string elevatorId, string kind, uint64 performedAt, bytes32 contentHash,
                      bytes32 nonce)

under the domain {name "LiftLedger", version "1", chainId, verifyingContract = the anchor
contract}. `contentHash` is keccak256 of the RFC 8785 canonical JSON of the record's content
(`record_content`), so the signature covers the summary and every detail, not just the ids.
`nonce` is 32 random bytes the app draws for each record (`new_nonce`); a signer's nonce is
accepted once, so the same signed record cannot be filed twice. Only low-s signatures are
accepted (EIP-2: s ≤ n/2), so a signature's malleable twin (n - s, v flipped) is refused.
Filing is `maintenance.records`; the record's ledger entry is `maintenance.entries`.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from eth_account import Account
from eth_account.messages import encode_typed_data

from core.errors import Refused
from ledger.canonical import canonical_json
from ledger.entries import content_hash

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


class MaintenanceRecordError(Refused):
    """A maintenance record that is refused; `code` says why."""


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

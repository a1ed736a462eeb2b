"""Maintenance records as ledger entries: the content a record's entry holds, the content its
row says it should hold, its crew signature checked under the audited contract, and the
summary people see (SPEC §5: every maintenance record is anchored).

`MAINTENANCE_RECORDS` is this source as the ledger takes it (`ledger.sources.LedgerSource`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, Final

from core.stored_json import bounded, decode_object
from ledger.entries import PendingEntry
from ledger.report import Problem
from ledger.sources import AnchorContract, EntrySummary, SignatureCheck, StoredEntry
from maintenance.signing import (
    MaintenanceRecordError,
    MaintenanceRecordInput,
    SigningDomain,
    record_content,
    recover_signer,
)

KIND: Final = "maintenance_record"
SOURCE_TABLE: Final = "maintenance_records"
# In the entry the record's kind sits beside the entry's own `kind`.
_ENTRY_NAMES: Final = {"kind": "record_kind"}
# Content no row keeps as such: the record's id is the entry's `source_id`, by which the row
# is read; the signer is checked by recovering it from the signature.
_NOT_REBUILT: Final = frozenset({"record_id", "signer"})

# Columns come as text (details as JSON text) and are decoded only to compare; a time outside
# what the entry can hold comes as NULL and then differs from the entry.
_RECORDS: Final = """
SELECT id, elevator_id, kind,
       CASE WHEN performed_at BETWEEN '1970-01-01' AND '9999-12-30'
            THEN floor(extract(epoch FROM performed_at))::bigint END AS performed_at,
       performed_by, summary, details::text AS details, signed, signature, corrects_id, nonce
FROM maintenance_records WHERE id = ANY(%s)
"""


def _content(
    record_id: int,
    signed_content: Mapping[str, Any],
    *,
    performed_by: int,
    signed: bool,
    signer: str | None,
    signature: bytes | None,
    nonce: bytes | None,
) -> dict[str, Any]:
    """What an entry holds: the signed content (`record_content`) and how it was filed."""
    return {
        "record_id": record_id,
        **{_ENTRY_NAMES.get(k, k): v for k, v in signed_content.items()},
        "performed_by": performed_by,
        "signed": signed,
        "signer": signer,
        "signature": signature.hex() if signature is not None else None,
        "nonce": nonce.hex() if nonce is not None else None,
    }


def record_entry(
    record_id: int,
    record: MaintenanceRecordInput,
    *,
    performed_by: int,
    signature: bytes | None,
    signer: str | None,
) -> PendingEntry:
    """The ledger entry of a record as filed."""
    return PendingEntry(
        kind=KIND,
        source_table=SOURCE_TABLE,
        source_id=record_id,
        elevator_id=record.elevator_id,
        content=_content(
            record_id, record_content(record), performed_by=performed_by,
            signed=signature is not None, signer=signer, signature=signature, nonce=record.nonce,
        ),
    )  # fmt: skip


def _optional_bytes(value: Any) -> bytes | None:
    return bytes(value) if value is not None else None


class MaintenanceRecordSource:
    """Maintenance records as a source of ledger entries (`ledger.sources.LedgerSource`)."""

    kind: Final = KIND
    source_table: Final = SOURCE_TABLE
    record_name: Final = "maintenance record"
    rows_sql: Final = _RECORDS

    def expected_content(self, row: Mapping[str, Any]) -> Mapping[str, Any]:
        """The content the entry of the record in `row` should hold, but what no row keeps."""
        signed_content = {
            "elevator": row["elevator_id"],
            "kind": row["kind"],
            "performed_at": row["performed_at"],
            "summary": row["summary"],
            "details": decode_object(row["details"]),
            "corrects_id": row["corrects_id"],
        }
        content = _content(
            row["id"], signed_content, performed_by=row["performed_by"], signed=row["signed"],
            signer=None, signature=_optional_bytes(row["signature"]),
            nonce=_optional_bytes(row["nonce"]),
        )  # fmt: skip
        return {name: value for name, value in content.items() if name not in _NOT_REBUILT}

    def check_signature(
        self, entry: StoredEntry, row: Mapping[str, Any], contract: AnchorContract | None
    ) -> SignatureCheck:
        """Whether the record was signed and, if its EIP-712 signature does not recover, under
        the audited contract's domain, to the signer its entry names, the problem."""
        signature = row["signature"]
        if not row["signed"] or signature is None or contract is None:
            return SignatureCheck(bool(row["signed"]))
        domain = SigningDomain(contract.chain_id, contract.address)
        try:
            record = MaintenanceRecordInput(
                elevator_id=row["elevator_id"],
                kind=row["kind"],
                performed_at=dt.datetime.fromtimestamp(row["performed_at"], dt.UTC),
                summary=row["summary"],
                details=decode_object(row["details"]),
                corrects_id=row["corrects_id"],
                nonce=_optional_bytes(row["nonce"]),
            )
            signer = recover_signer(record, bytes(signature), domain)
        except MaintenanceRecordError as exc:
            return SignatureCheck(True, Problem(entry.seq, "bad_signature", str(exc)))
        except (ValueError, TypeError, OverflowError, OSError) as exc:  # a stored value unusable
            reason = f"cannot be checked: {bounded(str(exc))}"
            return SignatureCheck(True, Problem(entry.seq, "bad_signature", reason))
        recorded = entry.body.get("signer")
        if str(entry.body.get("signer", "")).lower() != signer.lower():
            reason = f"the signature recovers to {signer}, not to the recorded signer {recorded}"
            return SignatureCheck(True, Problem(entry.seq, "bad_signature", reason))
        return SignatureCheck(True)

    def record_time_s(self, body: Mapping[str, Any]) -> float | None:
        """When the crew performed it (`performed_at`, Unix seconds)."""
        performed = body.get("performed_at")
        return float(performed) if type(performed) is int else None

    def fold(self) -> None:
        """Records keep no state beyond their rows."""

    def summary(self, body: Mapping[str, Any]) -> EntrySummary:
        """`routine maintenance (signed): …`, at the time it was performed."""
        performed = body.get("performed_at")
        signed = "signed" if body.get("signed") else "unsigned"
        text = f"{body.get('record_kind')} maintenance ({signed}): {body.get('summary')}"
        moment = (
            dt.datetime.fromtimestamp(performed, dt.UTC) if isinstance(performed, int) else None
        )
        return EntrySummary(moment, text)


MAINTENANCE_RECORDS: Final = MaintenanceRecordSource()

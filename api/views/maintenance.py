"""Maintenance records: crews file them (optionally EIP-712 signed); everyone in scope reads."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, status
from pydantic import BaseModel, Field, field_validator

from api.deps import Conn, Context, CrewMember, Reader, elevator_site, require_site
from api.errors import error_responses
from api.pagination import Cursor, Limit, Page, int_cursor, next_cursor
from api.types import Flag, Identifier, Integer, IsoDateTime
from maintenance.queries import check_correction, get_record, list_records
from maintenance.records import MaintenanceRecordInput, file_record

router = APIRouter(prefix="/api/v1/maintenance", tags=["maintenance"])

Kind = Literal["routine", "repair", "inspection", "rescue", "other"]
# A record describes work already done: its time may not lie ahead (beyond clock drift).
FUTURE_TOLERANCE: Final = dt.timedelta(minutes=5)
# Detail values are kept to what RFC 8785 encodes exactly: integers within ±(2^53 - 1).
SafeInt = Annotated[Integer, Field(ge=-(2**53) + 1, le=2**53 - 1)]
DetailValue = Annotated[str, Field(max_length=2000)] | SafeInt | Flag | None


class RecordIn(BaseModel):
    """A maintenance record as a crew member files it."""

    elevator_id: Identifier
    kind: Kind
    performed_at: IsoDateTime
    summary: str = Field(min_length=1, max_length=2000)
    details: dict[Annotated[str, Field(max_length=64)], DetailValue] = Field(
        default_factory=dict, max_length=100
    )
    corrects_id: Integer | None = Field(default=None, ge=1, le=2**63 - 1)
    signature: str | None = Field(
        default=None,
        pattern=r"^(0x)?[0-9a-fA-F]{130}$",
        description="EIP-712 signature (65 bytes, hex, low s) by the crew member's registered key",
    )
    nonce: str | None = Field(
        default=None,
        pattern=r"^(0x)?[0-9a-fA-F]{64}$",
        description="The 32 random bytes (hex) signed with the record; a signed record needs "
        "one, and a signer's nonce is accepted once",
    )

    @field_validator("performed_at")
    @classmethod
    def _aware_and_past(cls, value: dt.datetime) -> dt.datetime:
        value = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        if value > dt.datetime.now(dt.UTC) + FUTURE_TOLERANCE:
            raise ValueError("performed_at is in the future")
        return value.replace(microsecond=0)


class RecordOut(BaseModel):
    """A stored maintenance record and the ledger entry that anchors it."""

    id: int
    elevator_id: str
    site_id: str
    kind: str
    performed_at: dt.datetime
    performed_by: str
    summary: str
    details: dict[str, Any]
    signed: bool
    signer_address: str | None
    corrects_id: int | None
    created_at: dt.datetime
    ledger_seq: int | None


def _record(conn: Conn, record_id: int) -> RecordOut:
    row = get_record(conn, record_id)
    if row is None:
        raise RuntimeError(f"maintenance record {record_id} just filed is not readable")
    return RecordOut(**row)


@router.post(
    "", status_code=status.HTTP_201_CREATED,
    responses=error_responses(401, 403, 404, 409, 422, 503),
)  # fmt: skip
def file_maintenance(body: RecordIn, conn: Conn, context: Context, user: CrewMember) -> RecordOut:
    """File a record for an elevator of your sites; a signed one is verified on receipt."""
    require_site(user, elevator_site(conn, body.elevator_id), f"elevator {body.elevator_id}")
    if body.corrects_id is not None:
        check_correction(conn, body.corrects_id, body.elevator_id)
    record = MaintenanceRecordInput(
        elevator_id=body.elevator_id, kind=body.kind, performed_at=body.performed_at,
        summary=body.summary, details=body.details, corrects_id=body.corrects_id,
        nonce=bytes.fromhex(body.nonce.removeprefix("0x")) if body.nonce else None,
    )  # fmt: skip
    signature = bytes.fromhex(body.signature.removeprefix("0x")) if body.signature else None
    domain = context.signing_domain(conn) if signature is not None else None
    record_id = file_record(conn, record, performed_by=user.id, signature=signature, domain=domain)
    conn.commit()
    return _record(conn, record_id)


@router.get("", responses=error_responses(401, 403, 404, 422))
def get_maintenance(
    conn: Conn,
    user: Reader,
    elevator: Identifier | None = None,
    site: Identifier | None = None,
    kind: Kind | None = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[RecordOut]:
    """Records, newest first; a crew member sees only their sites."""
    if elevator is not None:
        require_site(user, elevator_site(conn, elevator), f"elevator {elevator}")
    found = list_records(conn, sites=user.site_scope, elevator=elevator, site=site, kind=kind,
                         before_id=int_cursor(cursor), limit=limit)  # fmt: skip
    items = [RecordOut(**row) for row in found.rows]
    return Page[RecordOut](items=items, next_cursor=next_cursor(found))

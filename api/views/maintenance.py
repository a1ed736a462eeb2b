"""Maintenance records: crews file them (optionally EIP-712 signed); everyone in scope reads."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, Query, status
from psycopg.rows import dict_row
from pydantic import BaseModel, Field, field_validator

from api.deps import Conn, Context, CrewMember, Reader, elevator_site, require_site
from api.errors import ApiError, error_responses
from api.pagination import Cursor, Limit, Page, cut, int_cursor
from api.types import Flag, Integer, IsoDateTime
from maintenance.records import MaintenanceRecordError, MaintenanceRecordInput, file_record

router = APIRouter(prefix="/api/v1/maintenance", tags=["maintenance"])

Kind = Literal["routine", "repair", "inspection", "rescue", "other"]
IdText = Annotated[str, Query(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
# A record describes work already done: its time may not lie ahead (beyond clock drift).
FUTURE_TOLERANCE: Final = dt.timedelta(minutes=5)
# Detail values are kept to what RFC 8785 encodes exactly: integers within ±(2^53 - 1).
SafeInt = Annotated[Integer, Field(ge=-(2**53) + 1, le=2**53 - 1)]
DetailValue = Annotated[str, Field(max_length=2000)] | SafeInt | Flag | None

_SELECT: Final = """
SELECT m.id, m.elevator_id, e.site_id, m.kind, m.performed_at, u.username AS performed_by,
       m.summary, m.details, m.signed, m.signer_address, m.corrects_id, m.created_at,
       l.seq AS ledger_seq
FROM maintenance_records m
JOIN elevators e ON e.id = m.elevator_id
JOIN users u ON u.id = m.performed_by
LEFT JOIN ledger_entries l ON l.source_table = 'maintenance_records' AND l.source_id = m.id
"""


class RecordIn(BaseModel):
    """A maintenance record as a crew member files it."""

    elevator_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
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
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(_SELECT + " WHERE m.id = %s", (record_id,)).fetchone()
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
        corrected = conn.execute(
            "SELECT elevator_id FROM maintenance_records WHERE id = %s", (body.corrects_id,)
        ).fetchone()
        if corrected is None or corrected[0] != body.elevator_id:
            raise ApiError(422, "bad_correction",
                           f"record {body.corrects_id} is not a record of {body.elevator_id}",
                           field="corrects_id")  # fmt: skip
    record = MaintenanceRecordInput(
        elevator_id=body.elevator_id, kind=body.kind, performed_at=body.performed_at,
        summary=body.summary, details=body.details, corrects_id=body.corrects_id,
        nonce=bytes.fromhex(body.nonce.removeprefix("0x")) if body.nonce else None,
    )  # fmt: skip
    signature = bytes.fromhex(body.signature.removeprefix("0x")) if body.signature else None
    domain = None
    if signature is not None:
        domain = _domain(conn, context)
    try:
        record_id = file_record(
            conn, record, performed_by=user.id, signature=signature, domain=domain
        )
    except MaintenanceRecordError as exc:
        status_code = 409 if exc.code == "duplicate_record" else 422
        nonce_codes = {"no_nonce", "bad_nonce", "duplicate_record"}
        field = "nonce" if exc.code in nonce_codes else "signature"
        raise ApiError(status_code, exc.code, str(exc), field=field) from exc
    conn.commit()
    return _record(conn, record_id)


def _domain(conn: Conn, context: Context) -> Any:
    from api.context import NoContract  # noqa: PLC0415
    from ledger.chain import ChainRefused, ChainUnavailable  # noqa: PLC0415

    try:
        return context.signing_domain(conn)
    except (NoContract, ChainUnavailable, ChainRefused) as exc:
        message = f"signed records need the anchor contract's domain: {exc}"
        raise ApiError(503, "chain_unavailable", message) from exc


@router.get("", responses=error_responses(401, 403, 404, 422))
def get_maintenance(
    conn: Conn,
    user: Reader,
    elevator: IdText | None = None,
    site: IdText | None = None,
    kind: Kind | None = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[RecordOut]:
    """Records, newest first; a crew member sees only their sites."""
    if elevator is not None:
        require_site(user, elevator_site(conn, elevator), f"elevator {elevator}")
    before = int_cursor(cursor)
    where = ["(%s::bigint IS NULL OR m.id < %s)"]
    params: list[Any] = [before, before]
    for column, value in (("m.elevator_id", elevator), ("e.site_id", site), ("m.kind", kind)):
        if value is not None:
            where.append(f"{column} = %s")
            params.append(value)
    if user.site_scope is not None:
        where.append("e.site_id = ANY(%s)")
        params.append(list(user.site_scope))
    query = _SELECT + " WHERE " + " AND ".join(where) + " ORDER BY m.id DESC LIMIT %s"
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(query, [*params, limit + 1]).fetchall()
    page, after = cut(rows, limit, lambda row: row["id"])
    return Page[RecordOut](items=[RecordOut(**row) for row in page], next_cursor=after)

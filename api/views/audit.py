"""The supervisor's audit: one entry with its inclusion proof checked against the root read
from the chain, an elevator's whole trail, and the whole-log verification report.

Stored entries are read as possibly hostile (`core.stored_json`): an entry whose content
cannot be read is shown with empty `content`, an `unreadable` problem (one entry) or a
summary saying so (trail), never an error of the server; a stored time out of range is
shown as null. What an entry's content means, and how the trail summarises it, is its
source's (`ledger.sources`); the entries are read by `ledger.queries`."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Annotated, Any, Final

from fastapi import APIRouter, Path
from pydantic import BaseModel

from api.deps import Auditor, Conn, Context, WaitingAuditor, elevator_site
from api.errors import error_responses, existing
from api.pagination import Cursor, Limit, Page, int_cursor, next_cursor
from api.types import ElevatorId
from core.stored_json import StoredJsonError, decode_object, report_unreadable
from ledger.queries import elevator_entries, stored_entry

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])

Seq = Annotated[int, Path(ge=0, le=2**63 - 1)]
_RESPONSES: Final = error_responses(401, 403, 404, 422, 503)


class ProblemOut(BaseModel):
    """One thing that does not verify: the entry (`seq`), and for an alert row that differs
    from its entries or a source row without an entry, that row."""

    seq: int | None
    kind: str
    detail: str
    alert_id: int | None = None
    source_table: str | None = None
    source_id: int | None = None

    @classmethod
    def of(cls, problem: Any) -> ProblemOut:
        """From a `ledger.report.Problem`."""
        return cls(seq=problem.seq, kind=problem.kind, detail=problem.detail,
                   alert_id=problem.alert_id, source_table=problem.source_table,
                   source_id=problem.source_id)  # fmt: skip


class AnchorOut(BaseModel):
    """The on-chain anchor whose root the entry's proof reaches."""

    chain_id: int | None
    contract: str | None
    tree_size: int
    root: str
    block_number: int
    tx_hash: str


class EntryProof(BaseModel):
    """An entry, its inclusion proof and the verification result against the chain."""

    seq: int
    kind: str
    elevator_id: str | None
    source_table: str
    source_id: int
    content: dict[str, Any]
    content_hash: str
    leaf_hash: str
    created_at: dt.datetime | None
    anchored: bool
    anchor: AnchorOut | None
    proof: list[str]
    signed: bool | None
    verified: bool
    problems: list[ProblemOut]


class TrailItem(BaseModel):
    """One ledger entry of an elevator, decoded: an alert event or a maintenance record."""

    seq: int
    kind: str
    time: dt.datetime | None
    summary: str
    content: dict[str, Any]
    created_at: dt.datetime | None


class Trail(Page[TrailItem]):
    """An elevator's audit trail, in ledger order (the order events were recorded)."""

    elevator_id: str


class LogReportOut(BaseModel):
    """The whole-log verification report, with when the verification ran (callers that
    asked while it ran share it)."""

    entries: int
    anchored_size: int
    anchors_checked: int
    ok: bool
    problems: list[ProblemOut]
    started_at: dt.datetime
    finished_at: dt.datetime


def _hex(value: bytes | None) -> str:
    return "0x" + bytes(value or b"").hex()


@router.get("/entries/{seq}", responses=_RESPONSES)
def get_entry(seq: Seq, conn: Conn, context: Context, user: Auditor) -> EntryProof:
    """Entry `seq`: content, hashes recomputed, source row compared, signature checked,
    inclusion proof to the smallest anchored tree, and that tree's root **read from the
    chain** (`verified` is true only when all of it holds)."""
    row = existing(stored_entry(conn, seq), f"ledger entry {seq}")
    view = context.ledger_view(conn)  # chain errors answer 503 (`api.errors`)
    report = view.verify_entry(conn, seq)
    try:
        content = decode_object(row["canonical"])
    except StoredJsonError:  # verify_entry names it as an `unreadable` problem
        content = {}
    anchor = None
    if report.anchor is not None:
        anchor = AnchorOut(
            chain_id=view.chain_id, contract=view.address, tree_size=report.anchor.tree_size,
            root=_hex(report.chain_root), block_number=report.anchor.block_number,
            tx_hash=_hex(report.anchor.tx_hash),
        )  # fmt: skip
    return EntryProof(
        seq=seq, kind=row["kind"], elevator_id=row["elevator_id"],
        source_table=row["source_table"], source_id=row["source_id"],
        content=content,
        content_hash=_hex(row["content_hash"]), leaf_hash=_hex(row["leaf_hash"]),
        created_at=row["created_at"], anchored=report.anchored_size is not None, anchor=anchor,
        proof=[_hex(node) for node in report.proof], signed=report.signed, verified=report.ok,
        problems=[ProblemOut.of(p) for p in report.problems],
    )  # fmt: skip


@router.get("/elevators/{elevator_id}", responses=error_responses(401, 403, 404, 422))
def get_trail(
    elevator_id: ElevatorId,
    conn: Conn,
    context: Context,
    user: Auditor,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Trail:
    """Every ledger entry of an elevator (alert events with their workflow steps, maintenance
    records), oldest first; each names its seq for `GET /audit/entries/{seq}`."""
    elevator_site(conn, elevator_id)  # 404 when it is not registered
    page = elevator_entries(conn, elevator_id, after_seq=int_cursor(cursor), limit=limit)
    items = []
    for row in page.rows:
        try:
            content = decode_object(row["canonical"])
            content.pop("salt", None)
            content.pop("prev", None)
            summary = context.ledger_sources.summary(row["kind"], content)
            when, text = summary.time, summary.text
        except (StoredJsonError, ValueError, TypeError, OverflowError, OSError) as exc:
            report_unreadable("audit_trail", row["seq"], exc)
            content, when = {}, None
            text = f"unreadable entry (see GET /api/v1/audit/entries/{row['seq']})"
        items.append(TrailItem(seq=row["seq"], kind=row["kind"], time=when, summary=text,
                               content=content, created_at=row["created_at"]))  # fmt: skip
    return Trail(elevator_id=elevator_id, items=items, next_cursor=next_cursor(page))


@router.post("/verify", responses=error_responses(401, 403, 503))
async def verify_whole_log(context: Context, user: WaitingAuditor) -> LogReportOut:
    """Audit the whole log against the pinned contract: every seq present, every leaf
    recomputed, every source row compared, every alert row re-derived from its entries,
    every source row without an entry, every back-dated record, every anchored root matched
    (a mismatch located); problems name each entry, alert or row.

    One verification runs at a time, in a worker thread: a request made while one runs
    waits for it and gets the report of the follow-up verification that begins then,
    shared with every request made meanwhile (`started_at` says when it began). Waiting
    holds no database connection."""

    def verify() -> Any:
        with context.pool.connection() as conn:
            return context.ledger_view(conn).verify_log(conn)

    async def start() -> Any:
        async with context.database_slots:
            return await asyncio.to_thread(verify)

    finished = await context.verification.result(start)
    report = finished.result
    return LogReportOut(
        entries=report.entries, anchored_size=report.anchored_size,
        anchors_checked=report.anchors_checked, ok=report.ok,
        problems=[ProblemOut.of(p) for p in report.problems],
        started_at=finished.started_at, finished_at=finished.finished_at,
    )  # fmt: skip

"""Verification of the ledger against the chain: one entry, or the whole log (SPEC §5).

Roots always come **from the chain** (`rootAt(size)` and the `Anchored` events), never from
the database being checked. For one entry: recompute its content and leaf hash from the
stored canonical bytes, compare the entry with its source row, check a maintenance record's
EIP-712 signature under this chain's domain, rebuild the root of the
smallest anchored tree that contains it from an inclusion proof, and compare it with the
chain's root. For the whole log: every seq present, every leaf recomputed, every `prev` link
intact, every source row unchanged, and the root of every anchored size matched.

Each problem names the seq it concerns, so "entry 41 changed", "entry 57 missing" and
"entry 63 does not follow entry 62" point a supervisor at the exact records.

Every stored row is read as possibly hostile: entries and source details are decoded with
`core.stored_json` (bounded depth and size, checked before decoding), times out of range are
read as missing, and whatever else goes wrong with one entry becomes an `unreadable` problem
for that seq while the audit goes on with the next.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.rows import dict_row

from core.stored_json import StoredJsonError, bounded, decode_object, report_unreadable
from ledger.chain import AnchoredEvent, ChainClient
from ledger.entries import content_hash, leaf_hash
from ledger.merkle import MerkleLog, verify_inclusion
from maintenance.records import (
    MaintenanceRecordError,
    MaintenanceRecordInput,
    SigningDomain,
    recover_signer,
)


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing that does not verify; `seq` is None for a problem of a whole range."""

    seq: int | None
    kind: str  # missing | modified | unreadable | out_of_order | source_changed | ...
    detail: str

    def line(self) -> str:
        """One report line."""
        where = f"entry {self.seq}" if self.seq is not None else "log"
        return f"{where}: {self.kind}: {self.detail}"


@dataclass(slots=True)
class LogReport:
    """The result of a whole-log audit."""

    entries: int = 0
    anchored_size: int = 0
    anchors_checked: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing failed."""
        return not self.problems

    def render(self) -> str:
        """A human-readable report."""
        lines = [
            f"entries: {self.entries}",
            f"anchored on chain: {self.anchored_size} (checked {self.anchors_checked} roots)",
        ]
        lines += [problem.line() for problem in self.problems]
        lines.append("result: OK" if self.ok else f"result: FAILED ({len(self.problems)} problems)")
        return "\n".join(lines)


@dataclass(slots=True)
class EntryReport:
    """The result of verifying one entry."""

    seq: int
    anchored_size: int | None = None
    chain_root: bytes | None = None
    anchor: AnchoredEvent | None = None
    proof: list[bytes] = field(default_factory=list)
    signed: bool | None = None
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the entry verifies against the chain."""
        return not self.problems and self.anchored_size is not None

    def render(self) -> str:
        """A human-readable report."""
        lines = [f"entry {self.seq}"]
        if self.anchored_size is None:
            lines.append("anchored: not yet (no anchored tree contains it)")
        else:
            root = self.chain_root.hex() if self.chain_root else "?"
            lines.append(f"anchored in the tree of size {self.anchored_size}, root on chain {root}")
            lines.append(f"inclusion proof: {len(self.proof)} hashes")
        if self.signed is not None:
            lines.append("signature: " + ("EIP-712" if self.signed else "unsigned"))
        lines += [problem.line() for problem in self.problems]
        lines.append("result: OK" if self.ok else "result: FAILED")
        return "\n".join(lines)


# Source columns come as text (details as JSON text) and are decoded only to compare. Times
# outside what Python represents (infinity, year 10000) come as NULL and then differ from the
# entry, instead of failing to load and stopping the whole audit.
_ENTRIES = """
SELECT e.seq, e.kind, e.source_table, e.source_id, e.canonical, e.content_hash, e.leaf_hash,
       ae.alert_id AS ev_alert_id,
       CASE WHEN ae.time BETWEEN '0001-01-02' AND '9999-12-30' THEN ae.time END AS ev_time,
       ae.kind AS ev_kind,
       ae.actor_user_id AS ev_actor, ae.details::text AS ev_details,
       a.elevator_id AS al_elevator, a.site_id AS al_site, a.type AS al_type,
       m.id AS mr_id, m.elevator_id AS mr_elevator, m.kind AS mr_kind,
       CASE WHEN m.performed_at BETWEEN '1970-01-01' AND '9999-12-30'
            THEN floor(extract(epoch FROM m.performed_at))::bigint END AS mr_performed_at,
       m.performed_by AS mr_performed_by, m.summary AS mr_summary,
       m.details::text AS mr_details, m.signed AS mr_signed, m.signature AS mr_signature,
       m.corrects_id AS mr_corrects_id, m.nonce AS mr_nonce
FROM ledger_entries e
LEFT JOIN alert_events ae ON e.source_table = 'alert_events' AND ae.id = e.source_id
LEFT JOIN alerts a ON a.id = ae.alert_id
LEFT JOIN maintenance_records m ON e.source_table = 'maintenance_records' AND m.id = e.source_id
"""


def _domain(chain: ChainClient) -> SigningDomain | None:
    """The EIP-712 domain crew signatures are made under on this chain's contract."""
    if chain.address is None:
        return None
    return SigningDomain(chain.chain_id(), chain.address)


def _iso(moment: Any) -> str | None:
    if moment is None:
        return None
    utc = moment.astimezone(dt.UTC)
    return str(utc.isoformat(timespec="milliseconds").replace("+00:00", "Z"))


def _source_problem(row: Mapping[str, Any], body: Mapping[str, Any]) -> str | None:
    """Why the entry no longer matches its source row, or None."""
    if row["source_table"] == "maintenance_records":
        return _record_problem(row, body)
    if row["source_table"] != "alert_events":
        return None
    if row["ev_kind"] is None:
        return f"its alert event {row['source_id']} no longer exists"
    try:
        details = decode_object(row["ev_details"])
    except StoredJsonError as exc:
        return f"the details of alert event {row['source_id']} cannot be read: {exc}"
    expected = {
        "alert_event_id": row["source_id"],
        "alert_id": row["ev_alert_id"],
        "event": row["ev_kind"],
        "time": _iso(row["ev_time"]),
        "elevator": row["al_elevator"],
        "site": row["al_site"],
        "type": row["al_type"],
        "actor_user_id": row["ev_actor"],
        "details": details,
    }
    changed = sorted(name for name, value in expected.items() if body.get(name) != value)
    if changed:
        return f"alert event {row['source_id']} differs from its entry in: {', '.join(changed)}"
    return None


def _record_problem(row: Mapping[str, Any], body: Mapping[str, Any]) -> str | None:
    if row["mr_id"] is None:
        return f"its maintenance record {row['source_id']} no longer exists"
    try:
        details = decode_object(row["mr_details"])
    except StoredJsonError as exc:
        return f"the details of maintenance record {row['mr_id']} cannot be read: {exc}"
    signature = row["mr_signature"]
    expected = {
        "elevator": row["mr_elevator"],
        "record_kind": row["mr_kind"],
        "performed_at": row["mr_performed_at"],
        "performed_by": row["mr_performed_by"],
        "summary": row["mr_summary"],
        "details": details,
        "signed": row["mr_signed"],
        "signature": bytes(signature).hex() if signature is not None else None,
        "corrects_id": row["mr_corrects_id"],
        "nonce": bytes(row["mr_nonce"]).hex() if row["mr_nonce"] is not None else None,
    }
    changed = sorted(name for name, value in expected.items() if body.get(name) != value)
    if changed:
        return f"maintenance record {row['mr_id']} differs from its entry in: {', '.join(changed)}"
    return None


def signature_problem(
    row: Mapping[str, Any], domain: SigningDomain | None
) -> tuple[bool | None, Problem | None]:
    """For a maintenance record: (signed?, the problem if its EIP-712 signature does not
    recover to the signer its entry names under this chain's domain)."""
    if row["source_table"] != "maintenance_records" or row["mr_id"] is None:
        return None, None
    signature = row["mr_signature"]
    if not row["mr_signed"] or signature is None or domain is None:
        return bool(row["mr_signed"]), None
    try:
        body = decode_object(bytes(row["canonical"]))
        record = MaintenanceRecordInput(
            elevator_id=row["mr_elevator"],
            kind=row["mr_kind"],
            performed_at=dt.datetime.fromtimestamp(row["mr_performed_at"], dt.UTC),
            summary=row["mr_summary"],
            details=decode_object(row["mr_details"]),
            corrects_id=row["mr_corrects_id"],
            nonce=bytes(row["mr_nonce"]) if row["mr_nonce"] is not None else None,
        )
        signer = recover_signer(record, bytes(signature), domain)
    except MaintenanceRecordError as exc:
        return True, Problem(int(row["seq"]), "bad_signature", str(exc))
    except (ValueError, TypeError, OverflowError, OSError) as exc:  # a stored value unusable
        reason = f"cannot be checked: {bounded(str(exc))}"
        return True, Problem(int(row["seq"]), "bad_signature", reason)
    if str(body.get("signer", "")).lower() != signer.lower():
        return True, Problem(
            int(row["seq"]), "bad_signature",
            f"the signature recovers to {signer}, not to the recorded signer {body.get('signer')}",
        )  # fmt: skip
    return True, None


def _check_row(row: Mapping[str, Any], previous_leaf: bytes | None) -> tuple[bytes, list[Problem]]:
    """Recompute one entry; returns its leaf hash and what is wrong with it."""
    seq = int(row["seq"])
    canonical = bytes(row["canonical"])
    problems: list[Problem] = []
    digest = content_hash(canonical)
    leaf = leaf_hash(digest)
    if digest != bytes(row["content_hash"]) or leaf != bytes(row["leaf_hash"]):
        problems.append(Problem(seq, "modified", "its bytes no longer hash to the stored hash"))
    try:
        body = decode_object(canonical)
    except StoredJsonError as exc:
        report_unreadable("verifier", seq, exc)
        problems.append(Problem(seq, "unreadable", f"its content cannot be read: {exc}"))
        return leaf, problems
    if previous_leaf is not None and body.get("prev") != previous_leaf.hex():
        problems.append(
            Problem(seq, "out_of_order", f"it does not follow entry {seq - 1} (prev link broken)")
        )
    source = _source_problem(row, body)
    if source is not None:
        problems.append(Problem(seq, "source_changed", source))
    return leaf, problems


def _check_entry(
    row: Mapping[str, Any], previous_leaf: bytes | None, domain: SigningDomain | None
) -> tuple[bytes, bool | None, list[Problem]]:
    """Everything checked on one stored entry: (its leaf hash, signed?, its problems).

    Whatever a hostile row makes go wrong is this entry's `unreadable` problem, so the
    audit names it and goes on with the next entry."""
    seq = int(row["seq"])
    try:
        leaf, problems = _check_row(row, previous_leaf)
        signed, bad_signature = signature_problem(row, domain)
    except Exception as exc:  # one stored entry, whatever is wrong with it
        report_unreadable("verifier", seq, exc)
        leaf = leaf_hash(content_hash(bytes(row["canonical"] or b"")))
        reason = f"it cannot be checked: {type(exc).__name__}: {bounded(str(exc))}"
        return leaf, None, [Problem(seq, "unreadable", reason)]
    if bad_signature is not None:
        problems.append(bad_signature)
    return leaf, signed, problems


def _rows(conn: psycopg.Connection[Any]) -> Iterator[Mapping[str, Any]]:
    with conn.cursor(name="ledger_audit", row_factory=dict_row) as cur:
        cur.itersize = 5000
        cur.execute(_ENTRIES + " ORDER BY e.seq")
        yield from cur


def verify_log(conn: psycopg.Connection[Any], chain: ChainClient) -> LogReport:
    """Audit the whole log against every root anchored on chain."""
    report = LogReport()
    domain = _domain(chain)
    log = MerkleLog()
    previous_leaf: bytes | None = None
    with conn.transaction():
        for row in _rows(conn):
            seq = int(row["seq"])
            while len(log) < seq:  # a hole: the entries in it are missing
                report.problems.append(Problem(len(log), "missing", "no entry with this seq"))
                log.append(b"\x00" * 32)
                previous_leaf = None
            leaf, _, problems = _check_entry(row, previous_leaf if seq > 0 else None, domain)
            report.problems += problems
            log.append(leaf)
            previous_leaf = leaf
    report.entries = len(log)
    events = chain.anchored_events()
    for event in events:
        report.anchors_checked += 1
        report.anchored_size = max(report.anchored_size, event.tree_size)
        report.problems += _check_anchor(log, event, chain)
    head_size, head_root = chain.head()
    if head_size and head_size <= len(log) and log.root(head_size) != head_root:
        report.problems.append(
            Problem(None, "root_mismatch", f"the chain's head (size {head_size}) does not match")
        )
    return report


def _check_anchor(log: MerkleLog, event: AnchoredEvent, chain: ChainClient) -> list[Problem]:
    size = event.tree_size
    if size > len(log):
        return [
            Problem(
                size - 1, "missing",
                f"the chain anchored {size} entries; the database holds {len(log)}",
            )
        ]  # fmt: skip
    stored = chain.root_at(size)
    if stored != event.root:
        return [Problem(None, "root_mismatch", f"rootAt({size}) differs from its Anchored event")]
    if log.root(size) != stored:
        return [
            Problem(
                None, "root_mismatch",
                f"the first {size} entries do not hash to the root anchored in block "
                f"{event.block_number} (tx 0x{event.tx_hash.hex()})",
            )
        ]  # fmt: skip
    return []


def verify_entry(
    conn: psycopg.Connection[Any],
    chain: ChainClient,
    seq: int,
    *,
    log: MerkleLog | None = None,
    anchored: Sequence[AnchoredEvent] | None = None,
    root_at: Callable[[int], bytes | None] | None = None,
) -> EntryReport:
    """Verify one entry: its hashes, its source row and its inclusion under a chain root.

    A long-running caller (the API) passes the log's leaves it keeps in memory, the anchored
    events it has read from the chain and a cached `rootAt` reader; leaves are taken from
    `log` only when it covers the anchored size, else read from the database. The root is
    always the chain's.
    """
    report = EntryReport(seq)
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(_ENTRIES + " WHERE e.seq = %s", (seq,)).fetchone()
        previous = cur.execute(
            "SELECT leaf_hash FROM ledger_entries WHERE seq = %s", (seq - 1,)
        ).fetchone()
    if row is None:
        report.problems.append(Problem(seq, "missing", "no entry with this seq"))
        return report
    previous_leaf = bytes(previous["leaf_hash"]) if previous else None
    leaf, report.signed, problems = _check_entry(
        row, previous_leaf if seq > 0 else None, _domain(chain)
    )
    report.problems += problems
    events = sorted(
        chain.anchored_events() if anchored is None else anchored, key=lambda e: e.tree_size
    )
    event = next((e for e in events if e.tree_size > seq), None)
    if event is None:
        return report
    size = event.tree_size
    root = (root_at or chain.root_at)(size)
    report.anchored_size, report.chain_root, report.anchor = size, root, event
    if log is None or len(log) < size:
        leaves = [
            bytes(r[0])
            for r in conn.execute(
                "SELECT leaf_hash FROM ledger_entries WHERE seq < %s ORDER BY seq", (size,)
            )
        ]
        if len(leaves) < size:
            report.problems.append(Problem(None, "missing", f"entries of the tree of size {size}"))
            return report
        log = MerkleLog(leaves)
    report.proof = log.inclusion_proof(seq, size)
    if root is None or not verify_inclusion(seq, size, leaf, report.proof, root):
        report.problems.append(
            Problem(
                seq, "not_included", f"its proof does not reach the chain's root of size {size}"
            )
        )
    return report

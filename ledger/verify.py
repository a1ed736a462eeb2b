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

The whole-log audit reads the database in one REPEATABLE READ snapshot: on a live system, an
alert committed while it runs is seen whole (row, event, entry) or not at all.

The whole-log audit also checks the database in the other direction and beyond the entries:
- each alert's row (severity, condition, workflow status, the time and user of every step,
  escalations, deadlines) is re-derived from its ledgered events in the same streaming pass
  and every alert whose row disagrees is named (`alert_state`), because the reports and the
  API read those columns;
- source rows without an entry are named (`orphan`), and entries whose record time is far
  older than the ledger's time as the chain dates it are flagged (`backdated`);
- a root that does not match is located: the consistency proof sent on chain with that
  anchor and the `prev` links narrow it to the first changed seq (`rewritten`);
- the contract is the pinned one; a database that records another is a finding
  (`contract_mismatch`), never followed.

Every stored row is read as possibly hostile: entries and source details are decoded with
`core.stored_json` (bounded depth and size, checked before decoding), times out of range are
read as missing, and whatever else goes wrong with one entry becomes an `unreadable` problem
for that seq while the audit goes on with the next.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row

from core.stored_json import StoredJsonError, bounded, decode_object, report_unreadable
from ledger.chain import AnchoredEvent, ChainClient, ChainRefused
from ledger.entries import content_hash, leaf_hash
from ledger.merkle import MerkleLog, consistency_proof_ranges, verify_inclusion
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
    alert_id: int | None = None  # the alert whose row is wrong (alert_state, orphan)
    source_table: str | None = None  # a source row without an entry (orphan)
    source_id: int | None = None

    def line(self) -> str:
        """One report line."""
        where = [f"entry {self.seq}"] if self.seq is not None else []
        if self.alert_id is not None:
            where.append(f"alert {self.alert_id}")
        if self.source_table is not None and self.source_table != "alerts":
            where.append(f"{self.source_table} {self.source_id}")
        return f"{', '.join(where) or 'log'}: {self.kind}: {self.detail}"


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


def _check_row(
    row: Mapping[str, Any], previous_leaf: bytes | None
) -> tuple[bytes, dict[str, Any] | None, list[Problem]]:
    """Recompute one entry; returns its leaf hash, its decoded content and what is wrong."""
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
        return leaf, None, problems
    if previous_leaf is not None and body.get("prev") != previous_leaf.hex():
        problems.append(
            Problem(seq, "out_of_order", f"it does not follow entry {seq - 1} (prev link broken)")
        )
    source = _source_problem(row, body)
    if source is not None:
        problems.append(Problem(seq, "source_changed", source))
    return leaf, body, problems


def _check_entry(
    row: Mapping[str, Any], previous_leaf: bytes | None, domain: SigningDomain | None
) -> tuple[bytes, bool | None, list[Problem], dict[str, Any] | None]:
    """Everything checked on one stored entry: (its leaf hash, signed?, its problems, its
    decoded content or None).

    Whatever a hostile row makes go wrong is this entry's `unreadable` problem, so the
    audit names it and goes on with the next entry."""
    seq = int(row["seq"])
    try:
        leaf, body, problems = _check_row(row, previous_leaf)
        signed, bad_signature = signature_problem(row, domain)
    except Exception as exc:  # one stored entry, whatever is wrong with it
        report_unreadable("verifier", seq, exc)
        leaf = leaf_hash(content_hash(bytes(row["canonical"] or b"")))
        reason = f"it cannot be checked: {type(exc).__name__}: {bounded(str(exc))}"
        return leaf, None, [Problem(seq, "unreadable", reason)], None
    if bad_signature is not None:
        problems.append(bad_signature)
    return leaf, signed, problems, body


def _rows(conn: psycopg.Connection[Any]) -> Iterator[Mapping[str, Any]]:
    with conn.cursor(name="ledger_audit", row_factory=dict_row) as cur:
        cur.itersize = 5000
        cur.execute(_ENTRIES + " ORDER BY e.seq")
        yield from cur


# -- alert state, re-derived from the ledgered events (SPEC §4) ----------------------------

# Times as the entries write them (UTC, milliseconds, "Z"); a time Python cannot hold
# (infinity) comes as NULL and then differs from the entries.
_ALERTS: Final = """
SELECT id, elevator_id, site_id, type, severity, condition, status, occurrences,
       acknowledged_by, on_site_by, closed_by,
       to_char(opened_at AT TIME ZONE 'UTC',
               'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS opened_at,
       to_char(cleared_at AT TIME ZONE 'UTC',
               'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS cleared_at,
       to_char(acknowledged_at AT TIME ZONE 'UTC',
               'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS acknowledged_at,
       to_char(on_site_at AT TIME ZONE 'UTC',
               'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS on_site_at,
       to_char(closed_at AT TIME ZONE 'UTC',
               'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS closed_at,
       to_char(ack_escalated_at AT TIME ZONE 'UTC',
               'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS ack_escalated_at,
       to_char(on_site_escalated_at AT TIME ZONE 'UTC',
               'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS on_site_escalated_at,
       to_char(ack_due_at AT TIME ZONE 'UTC',
               'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS ack_due_at,
       to_char(on_site_due_at AT TIME ZONE 'UTC',
               'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS on_site_due_at
FROM alerts ORDER BY id
"""
# Every column the reports and the API read, except `last_active_at` (a repeat moves it
# without an event, by design) and `details` (the first raise's details, shown as is).
_ALERT_COMPARED: Final = (
    "elevator_id", "site_id", "type", "severity", "condition", "status", "occurrences",
    "opened_at", "cleared_at", "acknowledged_at", "acknowledged_by", "on_site_at",
    "on_site_by", "closed_at", "closed_by", "ack_escalated_at", "on_site_escalated_at",
)  # fmt: skip
_STEP_COLUMNS: Final = {
    "acknowledged": ("acknowledged_at", "acknowledged_by"),
    "on_site": ("on_site_at", "on_site_by"),
    "resolved": ("closed_at", "closed_by"),
    "false_alarm": ("closed_at", "closed_by"),
}
_ESCALATION_COLUMNS: Final = {
    "acknowledge": ("ack_escalated_at", "ack_due_at"),
    "on_site": ("on_site_escalated_at", "on_site_due_at"),
}


class AlertStates:
    """Each alert's state as its ledgered events say it is, built one entry at a time in
    seq order (the same rules as `alerts.store`)."""

    def __init__(self) -> None:
        self.states: dict[int, dict[str, Any]] = {}

    def apply(self, seq: int, body: Mapping[str, Any]) -> None:
        """Fold one alert event entry into its alert's state."""
        alert_id, event, at = body.get("alert_id"), body.get("event"), body.get("time")
        if type(alert_id) is not int:
            return
        state = self.states.get(alert_id)
        if state is None:
            state = self.states[alert_id] = {
                "opened": False, "condition": "active", "status": "open", "occurrences": 1,
                "opened_at": None, "cleared_at": None, "acknowledged_at": None,
                "acknowledged_by": None, "on_site_at": None, "on_site_by": None,
                "closed_at": None, "closed_by": None, "ack_escalated_at": None,
                "on_site_escalated_at": None,
            }  # fmt: skip
        state["seq"] = seq
        # Every event carries the alert as its step left it (store: UPDATE … RETURNING).
        state["elevator_id"], state["site_id"] = body.get("elevator"), body.get("site")
        state["type"], state["severity"] = body.get("type"), body.get("severity")
        details = body.get("details")
        details = details if isinstance(details, dict) else {}
        if event == "opened":
            state.update(opened=True, opened_at=at, condition="active", cleared_at=None)
        elif event in ("updated", "reactivated"):
            state.update(condition="active", cleared_at=None)
            if event == "reactivated":
                state["occurrences"] += 1
        elif event == "cleared":
            state.update(condition="cleared", cleared_at=at)
        elif event in _STEP_COLUMNS:
            at_column, by_column = _STEP_COLUMNS[event]
            state.update({"status": event, at_column: at, by_column: body.get("actor_user_id")})
        elif event == "escalated" and details.get("stage") in _ESCALATION_COLUMNS:
            flag, due = _ESCALATION_COLUMNS[details["stage"]]
            state[flag] = at
            state.setdefault(due, details.get("due_at"))
        for due in ("ack_due_at", "on_site_due_at"):
            if due in details and due not in state:  # deadlines are set once (coalesce)
                state[due] = details[due]

    def problem(self, row: Mapping[str, Any]) -> Problem | None:
        """How the stored alert row differs from its entries, or None."""
        alert_id = int(row["id"])
        state = self.states.pop(alert_id, None)
        if state is None:
            return Problem(
                None, "orphan", f"alert {alert_id} has no ledgered event: it was never recorded",
                alert_id=alert_id, source_table="alerts", source_id=alert_id,
            )  # fmt: skip
        differ = [name for name in _ALERT_COMPARED if row[name] != state[name]]
        for due in ("ack_due_at", "on_site_due_at"):
            if due in state:
                if row[due] != state[due]:
                    differ.append(due)
            elif state["severity"] != "critical" and row[due] is not None:
                differ.append(due)  # only a critical alert has deadlines
        if not state["opened"]:
            differ.insert(0, "opened (no `opened` entry)")
        if not differ:
            return None
        # Every column is named; values are shown for the first few, so that a report on an
        # alert rewritten wholesale stays readable (and bounded).
        shown = [
            f"{name} {bounded(repr(row.get(name)), 40)} in its row, "
            f"{bounded(repr(state.get(name)), 40)} in its entries"
            for name in differ[:ALERT_VALUES_SHOWN]
        ]
        if len(differ) > ALERT_VALUES_SHOWN:
            shown.append("also " + ", ".join(differ[ALERT_VALUES_SHOWN:]))
        text = bounded(f"alert {alert_id} differs from its entries: {'; '.join(shown)}", 380)
        return Problem(int(state["seq"]), "alert_state", text, alert_id=alert_id)

    def left_over(self) -> list[Problem]:
        """Alerts with entries but no row."""
        return [
            Problem(int(state["seq"]), "alert_state", f"alert {alert_id} no longer exists",
                    alert_id=alert_id)
            for alert_id, state in sorted(self.states.items())
        ]  # fmt: skip


ALERT_VALUES_SHOWN = 2


def _shown(value: Any) -> str:
    return bounded(repr(value), 80)


def _alert_problems(conn: psycopg.Connection[Any], states: AlertStates) -> list[Problem]:
    problems: list[Problem] = []
    with conn.cursor(name="ledger_audit_alerts", row_factory=dict_row) as cur:
        cur.itersize = 5000
        cur.execute(_ALERTS)
        for row in cur:
            problem = states.problem(row)
            if problem is not None:
                problems.append(problem)
    return problems + states.left_over()


# Source rows that no entry records: counted by the reports, so named by the audit.
_ORPHANS: Final = (
    ("alert_events",
     "SELECT ae.id FROM alert_events ae WHERE NOT EXISTS (SELECT 1 FROM ledger_entries e "
     "WHERE e.source_table = 'alert_events' AND e.source_id = ae.id) ORDER BY ae.id"),
    ("maintenance_records",
     "SELECT m.id FROM maintenance_records m WHERE NOT EXISTS (SELECT 1 FROM ledger_entries e "
     "WHERE e.source_table = 'maintenance_records' AND e.source_id = m.id) ORDER BY m.id"),
)  # fmt: skip


def _orphan_problems(conn: psycopg.Connection[Any]) -> list[Problem]:
    problems: list[Problem] = []
    for table, query in _ORPHANS:
        for (source_id,) in conn.execute(query):
            problems.append(
                Problem(None, "orphan", f"{table} {source_id} has no ledger entry",
                        source_table=table, source_id=int(source_id))
            )  # fmt: skip
    return problems


# -- back-dated records ------------------------------------------------------------------------


def _record_time_s(body: Mapping[str, Any]) -> float | None:
    """The time the record says it happened (Unix seconds), or None."""
    kind = body.get("kind")
    if kind == "alert_event":
        at = body.get("time")
        if isinstance(at, str):
            try:
                return dt.datetime.fromisoformat(at).timestamp()
            except (ValueError, OverflowError):
                return None
    elif kind == "maintenance_record":
        performed = body.get("performed_at")
        if type(performed) is int:
            return float(performed)
    return None


class LedgerClock:
    """The earliest time the chain allows for an entry to have been appended: the block
    time of the last anchor whose tree does not contain it."""

    def __init__(self, anchors: Sequence[tuple[int, int]]) -> None:
        self._anchors = sorted(anchors)  # (tree size, block time), by size
        self._next = 0
        self._time: int | None = None
        self._size = 0

    def not_before(self, seq: int) -> tuple[int, int] | None:
        """(tree size, block time) of the last anchor before `seq` (seqs come in order)."""
        while self._next < len(self._anchors) and self._anchors[self._next][0] <= seq:
            self._size, self._time = self._anchors[self._next]
            self._next += 1
        return None if self._time is None else (self._size, self._time)


def _backdated(
    seq: int, body: Mapping[str, Any], clock: LedgerClock, bound_s: float
) -> Problem | None:
    anchored = clock.not_before(seq)
    if anchored is None:
        return None
    recorded = _record_time_s(body)
    size, block_time = anchored
    if recorded is None or recorded >= block_time - bound_s:
        return None
    when = dt.datetime.fromtimestamp(block_time, dt.UTC).isoformat(timespec="seconds")
    days = (block_time - recorded) / 86_400
    return Problem(
        seq, "backdated",
        f"its record time is {days:.1f} days before the ledger held it: the tree of size "
        f"{size} was anchored at {when} without it (bound {bound_s:.0f} s)",
    )  # fmt: skip


# -- the whole log ---------------------------------------------------------------------------

DEFAULT_BACKDATE_S: Final = 86_400.0


def _contract_problems(
    conn: psycopg.Connection[Any], chain: ChainClient, chain_id: int | None
) -> list[Problem]:
    """The chain and contract being read are the pinned ones; a database that records
    another contract in use is a finding, never followed."""
    problems: list[Problem] = []
    actual = chain.chain_id()
    if chain_id is not None and actual != chain_id:
        problems.append(
            Problem(None, "chain_mismatch",
                    f"the chain at {chain.url} has chain id {actual}; the audit trusts {chain_id}")
        )  # fmt: skip
    row = conn.execute(
        "SELECT address FROM contract_deployments WHERE chain_id = %s ORDER BY id DESC LIMIT 1",
        (actual,),
    ).fetchone()
    if row is not None and str(row[0]).lower() != str(chain.address).lower():
        problems.append(
            Problem(
                None, "contract_mismatch",
                f"the database records contract {bounded(str(row[0]), 60)} as the one in use on "
                f"chain {actual}; the audit reads only the pinned contract {chain.address}",
            )
        )  # fmt: skip
    return problems


@contextmanager
def _one_snapshot(conn: psycopg.Connection[Any]) -> Iterator[None]:
    """A read-only transaction whose every statement sees the database as of its first one.
    Under READ COMMITTED each query would see another moment: an alert committed between
    the entries and the alert rows would look forged (`alert_state`, `orphan`)."""
    if conn.info.transaction_status != TransactionStatus.IDLE:
        with conn.transaction():  # the caller's transaction, as it is (a savepoint)
            yield
        return
    # BEGIN, in autocommit mode or not; the isolation must be set before the first query.
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield


def verify_log(
    conn: psycopg.Connection[Any],
    chain: ChainClient,
    *,
    chain_id: int | None = None,
    backdate_s: float = DEFAULT_BACKDATE_S,
) -> LogReport:
    """Audit the whole log against every root anchored on the pinned contract `chain`, on
    the chain `chain_id` (when given), flagging records more than `backdate_s` older than
    the ledger's time.

    Entries, alert rows and source rows are read in one `REPEATABLE READ READ ONLY`
    transaction, so what the services commit meanwhile (an alert opened or acknowledged:
    row, event and entry in one commit) is either wholly seen or not at all. The connection
    may be in autocommit or not; either way it must have no transaction open, and is left
    with none. A caller that has one open (a test rolling back its tampering) gets the
    audit inside it, seeing what that transaction sees."""
    report = LogReport()
    domain = _domain(chain)
    events = sorted(chain.anchored_events(), key=lambda e: e.tree_size)
    clock = LedgerClock([(e.tree_size, chain.block_timestamp(e.block_number)) for e in events])
    log = MerkleLog()
    alerts = AlertStates()
    links: dict[int, bytes] = {}  # seq → the leaf its broken prev link names
    previous_leaf: bytes | None = None
    with _one_snapshot(conn):
        report.problems += _contract_problems(conn, chain, chain_id)
        for row in _rows(conn):
            seq = int(row["seq"])
            while len(log) < seq:  # a hole: the entries in it are missing
                report.problems.append(Problem(len(log), "missing", "no entry with this seq"))
                log.append(b"\x00" * 32)
                previous_leaf = None
            leaf, _, problems, body = _check_entry(row, previous_leaf if seq > 0 else None, domain)
            if body is not None:
                if problems and any(p.kind == "out_of_order" for p in problems):
                    links[seq] = _claimed_prev(body)
                if body.get("kind") == "alert_event":
                    alerts.apply(seq, body)
                late = _backdated(seq, body, clock, backdate_s)
                if late is not None:
                    problems.append(late)
            report.problems += problems
            log.append(leaf)
            previous_leaf = leaf
        report.problems += _alert_problems(conn, alerts)
        report.problems += _orphan_problems(conn)
    report.entries = len(log)
    report.problems += _check_anchors(log, events, chain, links, report)
    head_size, head_root = chain.head()
    if head_size and head_size <= len(log) and log.root(head_size) != head_root:
        report.problems.append(
            Problem(None, "root_mismatch", f"the chain's head (size {head_size}) does not match")
        )
    return report


def _claimed_prev(body: Mapping[str, Any]) -> bytes:
    prev = body.get("prev")
    try:
        return bytes.fromhex(prev) if isinstance(prev, str) else b""
    except ValueError:
        return b""


def _check_anchors(
    log: MerkleLog,
    events: Sequence[AnchoredEvent],
    chain: ChainClient,
    links: Mapping[int, bytes],
    report: LogReport,
) -> list[Problem]:
    """Every anchored root against the log; a mismatch is located (see `_locate`)."""
    problems: list[Problem] = []
    roots: dict[int, bytes] = {}  # anchored sizes whose chain root is the event's
    matched = 0  # the largest anchored size the log still matches
    first_mismatch: AnchoredEvent | None = None
    first_index = 0
    for event in events:
        report.anchors_checked += 1
        report.anchored_size = max(report.anchored_size, event.tree_size)
        problem = _check_anchor(log, event, chain, roots)
        if problem is None:
            if first_mismatch is None:
                matched = max(matched, event.tree_size)
            continue
        if problem.kind == "root_mismatch" and event.tree_size in roots and first_mismatch is None:
            first_mismatch, first_index = event, len(problems)
        problems.append(problem)
    named = {p.seq for p in report.problems if p.seq is not None}
    problems += _rewritten_links(log, links, roots, named)
    named |= {p.seq for p in problems if p.seq is not None}
    if first_mismatch is not None:
        lo, hi = _locate(log, first_mismatch, matched, chain)
        where = (
            f"entry {lo} is the first changed entry" if hi - lo == 1
            else f"the first changed entry is one of {lo}..{hi - 1}"
        )  # fmt: skip
        detail = f"{problems[first_index].detail}; {where}"
        problems[first_index] = Problem(None, "root_mismatch", detail)
        if not any(lo <= seq < hi for seq in named):
            detail = (
                f"the log differs from the chain from here on (the anchored tree of size "
                f"{first_mismatch.tree_size} does not match; {where}, as narrow as the "
                f"chain's hashes allow)"
            )
            problems.append(Problem(lo, "rewritten", detail))
    return problems


def _check_anchor(
    log: MerkleLog, event: AnchoredEvent, chain: ChainClient, roots: dict[int, bytes]
) -> Problem | None:
    size = event.tree_size
    if size > len(log):
        return Problem(
            size - 1, "missing", f"the chain anchored {size} entries; the database holds {len(log)}"
        )
    stored = chain.root_at(size)
    if stored != event.root:
        return Problem(None, "root_mismatch", f"rootAt({size}) differs from its Anchored event")
    roots[size] = stored
    if log.root(size) != stored:
        return Problem(
            None, "root_mismatch",
            f"the first {size} entries do not hash to the root anchored in block "
            f"{event.block_number} (tx 0x{event.tx_hash.hex()})",
        )  # fmt: skip
    return None


def _rewritten_links(
    log: MerkleLog, links: Mapping[int, bytes], roots: Mapping[int, bytes], named: set[int]
) -> list[Problem]:
    """For each broken `prev` link at seq j: if the chain's root holds, at j - 1, the leaf
    that entry j links to (and the stored log everywhere else), then entry j - 1 was
    rewritten with recomputed hashes, and it is named itself (RFC 9162 §2.1.3.2)."""
    problems: list[Problem] = []
    sizes = sorted(roots)
    for seq, claimed in sorted(links.items()):
        target = seq - 1
        if target < 0 or target in named or len(claimed) != 32:
            continue
        size = next((s for s in sizes if s > seq), None)
        if size is None or size > len(log):
            continue
        proof = log.inclusion_proof(target, size)
        if verify_inclusion(target, size, claimed, proof, roots[size]):
            problems.append(
                Problem(
                    target, "rewritten",
                    f"its bytes were rewritten with recomputed hashes: the chain's root of size "
                    f"{size} holds the leaf entry {seq} links to, not this one",
                )
            )  # fmt: skip
    return problems


def _locate(
    log: MerkleLog, event: AnchoredEvent, matched: int, chain: ChainClient
) -> tuple[int, int]:
    """[lo, hi): the range that holds the first changed entry, given that the log matches the
    chain up to the anchored size `matched` and not at `event`'s size. The consistency proof
    the anchorer sent with that anchor holds the original hashes of subtrees around the
    previous size; the first one that differs from the stored log holds the first change
    (every subtree before it is intact)."""
    lo, hi = matched, event.tree_size
    if event.previous_size == 0:
        return lo, hi
    try:
        call = chain.anchor_call(event.tx_hash)
    except ChainRefused:
        return lo, hi
    if call is None or call[0] != event.tree_size:
        return lo, hi
    proof = call[2]
    ranges = consistency_proof_ranges(event.previous_size, event.tree_size)
    if len(ranges) != len(proof):
        return lo, hi
    differing = [
        (start, end)
        for (start, end), node in zip(ranges, proof, strict=True)
        if log.subtree_root(start, end) != node
    ]
    if differing:
        start, end = min(differing)
        lo, hi = max(lo, start), min(hi, end)
    return lo, hi


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
    leaf, report.signed, problems, _ = _check_entry(
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

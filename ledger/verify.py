"""Verification of the ledger against the chain: one entry, or the whole log (SPEC §5).

Roots always come **from the chain** (`rootAt(size)` and the `Anchored` events), never from
the database being checked. For one entry: recompute its content and leaf hash from the
stored canonical bytes, have its source check it against its record (for a maintenance
record, its EIP-712 signature under this chain's domain too), rebuild the root of the
smallest anchored tree that contains it from an inclusion proof, and compare it with the
chain's root. For the whole log: every seq present, every leaf recomputed, every `prev` link
intact, every source row unchanged, and the root of every anchored size matched
(`ledger.roots`).

The ledger knows no source: what an entry of each kind should say is its source's
(`ledger.sources.LedgerSource`, e.g. `alerts.entries`), and both functions take the sources
as a parameter. Each problem (`ledger.report`) names the seq it concerns, so "entry 41
changed", "entry 57 missing" and "entry 63 does not follow entry 62" point a supervisor at
the exact records.

The whole-log audit reads the database in one REPEATABLE READ snapshot: on a live system, an
alert committed while it runs is seen whole (row, event, entry) or not at all. It streams
the entries in batches, each source reading the records of a batch in one query. It also
checks the database in the other direction and beyond the entries:
- each source's state is re-derived from its entries in the same pass and compared with its
  tables (an alert's row from its ledgered events: `alert_state`), because the reports and
  the API read those columns;
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
from typing import Any, Final

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row

from core.stored_json import StoredJsonError, bounded, decode_object, report_unreadable
from ledger.chain import ChainClient
from ledger.chain_protocol import AnchoredEvent
from ledger.deploy import current_deployment
from ledger.entries import content_hash
from ledger.merkle import MerkleLog, hash_leaf, verify_inclusion
from ledger.report import EntryReport, LogReport, Problem
from ledger.roots import check_anchors
from ledger.sources import (
    AnchorContract,
    LedgerSource,
    LedgerSources,
    SourceFold,
    StoredEntry,
)

DEFAULT_BACKDATE_S: Final = 86_400.0
BATCH_ENTRIES: Final = 5000  # entries read, and checked against their sources, at a time
_ENTRIES: Final = (
    "SELECT seq, kind, source_table, source_id, canonical, content_hash, leaf_hash "
    "FROM ledger_entries"
)
# Source rows that no entry records: counted by the reports, so named by the audit.
_ORPHANS: Final = sql.SQL(
    "SELECT s.id FROM {table} s WHERE NOT EXISTS (SELECT 1 FROM ledger_entries e "
    "WHERE e.source_table = {name} AND e.source_id = s.id) ORDER BY s.id"
)

Checked = tuple[bytes, bool | None, list[Problem], dict[str, Any] | None]


def _contract(chain: ChainClient) -> AnchorContract | None:
    """The contract being read, as records are signed on it."""
    if chain.address is None:
        return None
    return AnchorContract(chain.chain_id(), chain.address)


def _check_stored(
    row: Mapping[str, Any], previous_leaf: bytes | None
) -> tuple[bytes, dict[str, Any] | None, list[Problem]]:
    """Recompute one entry; returns its leaf hash, its decoded content and what is wrong."""
    seq = int(row["seq"])
    canonical = bytes(row["canonical"])
    problems: list[Problem] = []
    digest = content_hash(canonical)
    leaf = hash_leaf(digest)
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
    return leaf, body, problems


def _source_problems(
    source: LedgerSource,
    entry: StoredEntry,
    row: Mapping[str, Any] | None,
    contract: AnchorContract | None,
) -> tuple[bool | None, list[Problem]]:
    """The entry against its record (`row`, None when it no longer exists), and the
    record's signature: (signed?, the problems)."""
    seq, name = entry.seq, source.record_name
    if row is None:
        return None, [
            Problem(seq, "source_changed", f"its {name} {entry.source_id} no longer exists")
        ]
    problems = []
    try:
        expected = source.expected_content(row)
    except StoredJsonError as exc:
        changed = f"the details of {name} {entry.source_id} cannot be read: {exc}"
        problems.append(Problem(seq, "source_changed", changed))
    else:
        fields = sorted(key for key, value in expected.items() if entry.body.get(key) != value)
        if fields:
            changed = f"{name} {entry.source_id} differs from its entry in: {', '.join(fields)}"
            problems.append(Problem(seq, "source_changed", changed))
    signature = source.check_signature(entry, row, contract)
    if signature.problem is not None:
        problems.append(signature.problem)
    return signature.signed, problems


def _check_entry(
    row: Mapping[str, Any],
    source_row: Mapping[str, Any] | None,
    previous_leaf: bytes | None,
    sources: LedgerSources,
    contract: AnchorContract | None,
) -> Checked:
    """Everything checked on one stored entry: (its leaf hash, signed?, its problems, its
    decoded content or None). `source_row` is its record, as its source reads it.

    Whatever a hostile row makes go wrong is this entry's `unreadable` problem, so the
    audit names it and goes on with the next entry."""
    seq = int(row["seq"])
    try:
        leaf, body, problems = _check_stored(row, previous_leaf)
        signed = None
        source = sources.of_table(row["source_table"])
        if body is not None and source is not None:
            entry = StoredEntry(seq, int(row["source_id"]), body)
            signed, found = _source_problems(source, entry, source_row, contract)
            problems += found
    except Exception as exc:  # one stored entry, whatever is wrong with it
        report_unreadable("verifier", seq, exc)
        leaf = hash_leaf(content_hash(bytes(row["canonical"] or b"")))
        reason = f"it cannot be checked: {type(exc).__name__}: {bounded(str(exc))}"
        return leaf, None, [Problem(seq, "unreadable", reason)], None
    return leaf, signed, problems, body


def _with_sources(
    conn: psycopg.Connection[Any], sources: LedgerSources, rows: Sequence[Mapping[str, Any]]
) -> Iterator[tuple[Mapping[str, Any], Mapping[str, Any] | None]]:
    """Each entry of `rows` with its record, each source reading its records in one query."""
    wanted: dict[str, list[int]] = {}
    for row in rows:
        if sources.of_table(row["source_table"]) is not None:
            wanted.setdefault(row["source_table"], []).append(int(row["source_id"]))
    found: dict[str, dict[int, Mapping[str, Any]]] = {}
    for table, ids in wanted.items():
        source = sources.of_table(table)
        if source is not None:
            with conn.cursor(row_factory=dict_row) as cur:
                records = cur.execute(source.rows_sql, (ids,)).fetchall()
            found[table] = {int(record["id"]): record for record in records}
    for row in rows:
        yield row, found.get(row["source_table"], {}).get(int(row["source_id"]))


def _rows(
    conn: psycopg.Connection[Any], sources: LedgerSources
) -> Iterator[tuple[Mapping[str, Any], Mapping[str, Any] | None]]:
    """Every entry in seq order, with its record."""
    with conn.cursor(name="ledger_audit", row_factory=dict_row) as cur:
        cur.execute(_ENTRIES + " ORDER BY seq")
        while batch := cur.fetchmany(BATCH_ENTRIES):
            yield from _with_sources(conn, sources, batch)


def _orphan_problems(conn: psycopg.Connection[Any], sources: LedgerSources) -> list[Problem]:
    problems: list[Problem] = []
    for source in sources:
        table = source.source_table
        query = _ORPHANS.format(table=sql.Identifier(table), name=sql.Literal(table))
        for (source_id,) in conn.execute(query):
            problems.append(
                Problem(None, "orphan", f"{table} {source_id} has no ledger entry",
                        source_table=table, source_id=int(source_id))
            )  # fmt: skip
    return problems


# -- back-dated records ------------------------------------------------------------------------


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


def _record_time_s(sources: LedgerSources, body: Mapping[str, Any]) -> float | None:
    """The time the record says it happened (Unix seconds), or None."""
    source = sources.of_kind(body.get("kind"))
    return source.record_time_s(body) if source is not None else None


def _backdated(
    seq: int,
    body: Mapping[str, Any],
    clock: LedgerClock,
    bound_s: float,
    sources: LedgerSources,
) -> Problem | None:
    anchored = clock.not_before(seq)
    if anchored is None:
        return None
    recorded = _record_time_s(sources, body)
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
    recorded = current_deployment(conn, actual)
    if recorded is not None and str(recorded.address).lower() != str(chain.address).lower():
        problems.append(
            Problem(
                None, "contract_mismatch",
                f"the database records contract {bounded(str(recorded.address), 60)} as the one "
                f"in use on "
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
    sources: LedgerSources,
    chain_id: int | None = None,
    backdate_s: float = DEFAULT_BACKDATE_S,
) -> LogReport:
    """Audit the whole log, entries of `sources`, against every root anchored on the pinned
    contract `chain`, on the chain `chain_id` (when given), flagging records more than
    `backdate_s` older than the ledger's time.

    Entries, source rows and the sources' tables are read in one `REPEATABLE READ READ ONLY`
    transaction, so what the services commit meanwhile (an alert opened or acknowledged:
    row, event and entry in one commit) is either wholly seen or not at all. The connection
    may be in autocommit or not; either way it must have no transaction open, and is left
    with none. A caller that has one open (a test rolling back its tampering) gets the
    audit inside it, seeing what that transaction sees."""
    report = LogReport()
    contract = _contract(chain)
    events = sorted(chain.anchored_events(), key=lambda e: e.tree_size)
    clock = LedgerClock([(e.tree_size, chain.block_timestamp(e.block_number)) for e in events])
    log = MerkleLog()
    folds: dict[str, SourceFold] = {}
    for source in sources:
        fold = source.fold()
        if fold is not None:
            folds[source.kind] = fold
    links: dict[int, bytes] = {}  # seq → the leaf its broken prev link names
    previous_leaf: bytes | None = None
    with _one_snapshot(conn):
        report.problems += _contract_problems(conn, chain, chain_id)
        for row, source_row in _rows(conn, sources):
            seq = int(row["seq"])
            while len(log) < seq:  # a hole: the entries in it are missing
                report.problems.append(Problem(len(log), "missing", "no entry with this seq"))
                log.append(b"\x00" * 32)
                previous_leaf = None
            leaf, _, problems, body = _check_entry(
                row, source_row, previous_leaf if seq > 0 else None, sources, contract
            )
            if body is not None:
                if problems and any(p.kind == "out_of_order" for p in problems):
                    links[seq] = _claimed_prev(body)
                kind = body.get("kind")
                fold = folds.get(kind) if isinstance(kind, str) else None
                if fold is not None:
                    fold.apply(seq, body)
                late = _backdated(seq, body, clock, backdate_s, sources)
                if late is not None:
                    problems.append(late)
            report.problems += problems
            log.append(leaf)
            previous_leaf = leaf
        for fold in folds.values():
            report.problems += fold.problems(conn)
        report.problems += _orphan_problems(conn, sources)
    report.entries = len(log)
    report.problems += check_anchors(log, events, chain, links, report)
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


def verify_entry(
    conn: psycopg.Connection[Any],
    chain: ChainClient,
    seq: int,
    *,
    sources: LedgerSources,
    log: MerkleLog | None = None,
    anchored: Sequence[AnchoredEvent] | None = None,
    root_at: Callable[[int], bytes | None] | None = None,
) -> EntryReport:
    """Verify one entry of `sources`: its hashes, its source row and its inclusion under a
    chain root.

    A long-running caller (the API) passes the log's leaves it keeps in memory, the anchored
    events it has read from the chain and a cached `rootAt` reader; leaves are taken from
    `log` only when it covers the anchored size, else read from the database. The root is
    always the chain's.
    """
    report = EntryReport(seq)
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(_ENTRIES + " WHERE seq = %s", (seq,)).fetchone()
        previous = cur.execute(
            "SELECT leaf_hash FROM ledger_entries WHERE seq = %s", (seq - 1,)
        ).fetchone()
    if row is None:
        report.problems.append(Problem(seq, "missing", "no entry with this seq"))
        return report
    previous_leaf = bytes(previous["leaf_hash"]) if previous else None
    [(_, source_row)] = _with_sources(conn, sources, [row])
    leaf, report.signed, problems, _ = _check_entry(
        row, source_row, previous_leaf if seq > 0 else None, sources, _contract(chain)
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

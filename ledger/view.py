"""The ledger as a long-running reader serves it: leaves in memory, chain reads cached.

The API answers "prove entry N" many times a second; rebuilding the Merkle tree from the
database per request would cost O(n). `LedgerView` keeps the log's leaf hashes in a
`MerkleLog` that it extends with the entries committed since it last looked, remembers the
`Anchored` events it has read (reading only new blocks), and caches `rootAt(size)`: a root
the contract stored for a size never changes. Roots still come from the chain; the cache
only avoids asking twice.

Thread-safe, and no request waits on another's I/O: the lock guards only the caches. Each
database query and chain call runs outside it, and what it read is swapped in under it
(a concurrent reader that read the same thing first wins; the later copy is dropped).
Proofs are computed outside the lock on a log that only grows.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Final

import psycopg

from ledger.chain import ChainClient
from ledger.chain_protocol import AnchoredEvent
from ledger.merkle import MerkleLog
from ledger.report import EntryReport, LogReport
from ledger.sources import LedgerSources
from ledger.verify import DEFAULT_BACKDATE_S, verify_entry, verify_log

EVENTS_REFRESH_S: Final = 1.0


class LedgerView:
    """Cached ledger state for one anchor contract, over the entries of `sources`."""

    def __init__(
        self,
        chain: ChainClient,
        *,
        sources: LedgerSources,
        chain_id: int | None = None,
        backdate_s: float = DEFAULT_BACKDATE_S,
    ) -> None:
        self.chain = chain
        self.sources = sources
        self.chain_id = chain_id  # the chain id the audit trusts
        self.backdate_s = backdate_s
        self._log = MerkleLog()
        self._events: list[AnchoredEvent] = []
        self._next_block = 0
        self._events_read_at = float("-inf")
        self._roots: dict[int, bytes] = {}
        self._lock = threading.Lock()

    @property
    def address(self) -> str | None:
        """The anchor contract this view reads."""
        return self.chain.address

    def _catch_up(self, conn: psycopg.Connection[Any]) -> MerkleLog:
        """The log, extended with the leaves committed since it was last read."""
        with self._lock:
            start = len(self._log)
        rows = conn.execute(
            "SELECT seq, leaf_hash FROM ledger_entries WHERE seq >= %s ORDER BY seq", (start,)
        ).fetchall()
        with self._lock:
            for seq, leaf in rows:
                if seq < len(self._log):  # another request appended it meanwhile
                    continue
                if seq != len(self._log):  # a hole: stop; verification reads the database
                    break
                self._log.append(bytes(leaf))
            return self._log

    def _anchored(self, *, needed_beyond: int) -> list[AnchoredEvent]:
        """The `Anchored` events, read again from the chain when none covers the entry
        `needed_beyond` and the last read is older than `EVENTS_REFRESH_S`."""
        with self._lock:
            covered = self._events[-1].tree_size if self._events else 0
            fresh = time.monotonic() - self._events_read_at < EVENTS_REFRESH_S
            if covered > needed_beyond or fresh:
                return list(self._events)
            from_block = self._next_block
        new = self.chain.anchored_events(from_block=from_block)
        with self._lock:
            if self._next_block == from_block:  # else another request read them first
                if new:
                    self._events += new
                    self._next_block = new[-1].block_number + 1
                self._events_read_at = time.monotonic()
            return list(self._events)

    def _root_at(self, size: int) -> bytes | None:
        with self._lock:
            root = self._roots.get(size)
        if root is None:
            root = self.chain.root_at(size)
            if root is not None:
                with self._lock:
                    self._roots[size] = root
        return root

    def verify_entry(self, conn: psycopg.Connection[Any], seq: int) -> EntryReport:
        """Verify entry `seq` against the chain (see `ledger.verify.verify_entry`)."""
        log = self._catch_up(conn)
        events = self._anchored(needed_beyond=seq)
        return verify_entry(
            conn, self.chain, seq, sources=self.sources, log=log, anchored=events,
            root_at=self._root_at,
        )  # fmt: skip

    def verify_log(self, conn: psycopg.Connection[Any]) -> LogReport:
        """Audit the whole log (see `ledger.verify.verify_log`); always reads everything."""
        return verify_log(
            conn, self.chain, sources=self.sources, chain_id=self.chain_id,
            backdate_s=self.backdate_s,
        )  # fmt: skip

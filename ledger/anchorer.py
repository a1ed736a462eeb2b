"""The anchorer: publishes the ledger's Merkle head on chain, one transaction per batch.

One writer per contract. Each step:

1. reads new leaf hashes into an in-memory `MerkleLog` (entries are dense and append-only);
2. after a start, and whenever the chain's head is below the largest anchor the table calls
   confirmed, checks the confirmed anchors against the chain, newest first: one whose
   transaction the chain no longer has in the recorded block is re-opened (`sent`);
3. finishes an anchor that is signed, sent or re-opened: sends the *stored* bytes again while
   their nonce is still free (a node that lost the block takes the same transaction again),
   or marks it `failed` when the nonce went to another transaction, so the next round signs
   a new anchor from the chain's head; waits for the receipt and records block number and
   hash, and calls the anchor `confirmed` only once `finality_depth` blocks follow its block;
4. otherwise, once `batch_entries` entries wait or the oldest waiting entry is `batch_s` old,
   reads the contract's head, checks that the database still holds the history the chain has
   anchored, signs `anchor(size, root, consistencyProof)`, stores the signed transaction and
   only then sends it.

While the chain is down, entries wait and the stored transaction is retried; nothing is
signed twice for one batch, and no new anchor is signed while an earlier one is not final.
SPEC §5 defaults: 60 s or 1,000 entries. The chain is a `ledger.chain_protocol.Chain`: the
web3 client in service, an in-memory chain in the unit tests of crashes and restarts.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from eth_account import Account
from psycopg.rows import dict_row

from core.errors import LiftLedgerError
from ledger.chain_protocol import (
    Chain,
    ChainRefused,
    ChainUnavailable,
    ReceiptTimeout,
    wait_for_receipt,
)
from ledger.merkle import MerkleLog

log = logging.getLogger(__name__)


class LedgerDiverged(LiftLedgerError):  # noqa: N818 - reads as a state
    """The database log no longer matches what the chain has anchored: never anchor over it."""


@dataclass(frozen=True, slots=True)
class AnchorerConfig:
    """Batching and waiting."""

    batch_s: float = 60.0
    batch_entries: int = 1000
    poll_s: float = 1.0
    receipt_wait_s: float = 30.0
    retry_s: float = 2.0
    # Blocks that must follow an anchor's block before it is `confirmed`
    # (LIFTLEDGER_CHAIN_FINALITY_DEPTH); 0 where a mined block is final (Anvil, QBFT).
    finality_depth: int = 0


class Anchorer:
    """Anchors one database's ledger to one contract."""

    def __init__(
        self,
        *,
        conninfo: str,
        chain: Chain,
        key: str,
        config: AnchorerConfig,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self._conninfo = conninfo
        self._chain = chain
        self._key = key
        self._sender = Account.from_key(key).address
        self._config = config
        self._clock = clock
        self.log = MerkleLog()
        # Confirmed anchors are checked against the chain once after every start.
        self._checked_confirmed = False

    # -- the loop -------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Anchor until `stop` is set; outages of the database or the chain are waited out."""
        while not stop.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True) as conn:
                    while not stop.is_set():
                        self.step(conn)
                        stop.wait(self._config.poll_s)
            except psycopg.OperationalError as exc:
                log.warning("anchorer lost the database (%s); retrying", exc)
            except ChainUnavailable as exc:
                log.warning("%s; entries wait", exc)
            stop.wait(self._config.retry_s)

    def step(self, conn: psycopg.Connection[Any]) -> str:
        """One round; returns what it did (`idle`, `waiting`, `anchored`, `pending`, `mined`,
        `failed`, `reopened`)."""
        self.load_leaves(conn)
        if not self._checked_confirmed:
            self.recheck_confirmed(conn)
            self._checked_confirmed = True
        pending = self._pending(conn)
        if pending is not None:
            return self._finish(conn, pending)
        chain_size, chain_root = self._chain.head()
        if chain_size < self._confirmed_size(conn) and self.recheck_confirmed(conn):
            return "reopened"
        if chain_size > len(self.log):
            raise LedgerDiverged(
                f"the chain has anchored {chain_size} entries but the database holds "
                f"{len(self.log)}"
            )
        if chain_size and self.log.root(chain_size) != chain_root:
            raise LedgerDiverged(
                f"the database's first {chain_size} entries no longer hash to the root "
                "anchored on chain: run `liftledger audit verify`"
            )
        size = len(self.log)
        if size == chain_size or not self._due(conn, chain_size, size):
            return "idle" if size == chain_size else "waiting"
        return self._anchor(conn, chain_size, size)

    def load_leaves(self, conn: psycopg.Connection[Any]) -> int:
        """Append leaf hashes the log does not have yet; returns how many."""
        rows = conn.execute(
            "SELECT seq, leaf_hash FROM ledger_entries WHERE seq >= %s ORDER BY seq",
            (len(self.log),),
        ).fetchall()
        for seq, leaf in rows:
            if seq != len(self.log):
                raise LedgerDiverged(f"ledger entry {len(self.log)} is missing (next is {seq})")
            self.log.append(bytes(leaf))
        return len(rows)

    def recheck_confirmed(self, conn: psycopg.Connection[Any]) -> int:
        """Check the confirmed anchors against the chain, newest first, down to the first one
        still mined in its recorded block (blocks before it are then the chain's too); re-open
        each one the chain lost or moved. Returns how many were re-opened."""
        rows = conn.execute(
            "SELECT id, tree_size, tx_hash, block_hash FROM anchors "
            "WHERE contract_address = %s AND status = 'confirmed' ORDER BY tree_size DESC",
            (self._chain.address,),
        ).fetchall()
        reopened = 0
        for anchor_id, size, tx_hash, block_hash in rows:
            receipt = self._chain.receipt(bytes(tx_hash))
            if receipt is not None and receipt.block_hash == bytes(block_hash or b""):
                break
            conn.execute(
                "UPDATE anchors SET status = 'sent', block_number = NULL, block_hash = NULL, "
                "gas_used = NULL, confirmed_at = NULL WHERE id = %s",
                (anchor_id,),
            )
            reopened += 1
            log.warning(
                "anchor to size %d was confirmed but the chain %s: re-opened",
                size, "lost its transaction" if receipt is None else "moved it to another block",
            )  # fmt: skip
        return reopened

    def _confirmed_size(self, conn: psycopg.Connection[Any]) -> int:
        row = conn.execute(
            "SELECT coalesce(max(tree_size), 0) FROM anchors "
            "WHERE contract_address = %s AND status = 'confirmed'",
            (self._chain.address,),
        ).fetchone()
        return int(row[0]) if row else 0

    def _due(self, conn: psycopg.Connection[Any], chain_size: int, size: int) -> bool:
        if size - chain_size >= self._config.batch_entries:
            return True
        row = conn.execute(
            "SELECT created_at FROM ledger_entries WHERE seq = %s", (chain_size,)
        ).fetchone()
        waited_s = (self._clock() - row[0]).total_seconds() if row else 0.0
        return waited_s >= self._config.batch_s

    # -- one anchor -----------------------------------------------------------------------------

    def _anchor(self, conn: psycopg.Connection[Any], chain_size: int, size: int) -> str:
        root = self.log.root(size)
        proof = self.log.consistency_proof(chain_size, size) if chain_size else []
        signed = self._chain.sign_anchor(
            self._key, size=size, root=root, proof=proof, nonce=self._chain.nonce(self._sender)
        )
        # The signed bytes are stored before anything is sent (SPEC §5).
        row = conn.execute(
            "INSERT INTO anchors (tree_size, previous_size, root, status, chain_id, "
            "contract_address, nonce, raw_tx, tx_hash) "
            "VALUES (%s, %s, %s, 'signed', %s, %s, %s, %s, %s) RETURNING id",
            (size, chain_size, root, self._chain.chain_id(), self._chain.address, signed.nonce,
             signed.raw, signed.tx_hash),
        ).fetchone()  # fmt: skip
        log.info("anchor %d → %d signed (nonce %d)", chain_size, size, signed.nonce)
        pending = self._pending(conn)
        if pending is None or row is None:
            return "pending"
        return self._finish(conn, pending)

    def _pending(self, conn: psycopg.Connection[Any]) -> dict[str, Any] | None:
        with conn.cursor(row_factory=dict_row) as cur:
            return cur.execute(
                "SELECT id, tree_size, previous_size, status, nonce, raw_tx, tx_hash FROM anchors "
                "WHERE status IN ('signed', 'sent') AND contract_address = %s "
                "ORDER BY tree_size LIMIT 1",
                (self._chain.address,),
            ).fetchone()

    def _finish(self, conn: psycopg.Connection[Any], anchor: dict[str, Any]) -> str:
        """Send the stored bytes (again), wait for the receipt and record it; `confirmed`
        once the chain has `finality_depth` blocks on top of it."""
        raw, tx_hash = bytes(anchor["raw_tx"]), bytes(anchor["tx_hash"])
        receipt = self._chain.receipt(tx_hash)
        if receipt is None:
            if int(anchor["nonce"]) > self._chain.nonce(self._sender):
                # An earlier transaction of this key is gone as well (the chain lost it): these
                # bytes would wait for the missing nonce for ever.
                conn.execute("UPDATE anchors SET status = 'failed' WHERE id = %s", (anchor["id"],))
                log.error("anchor to size %d dropped: its nonce is ahead of the chain's",
                          anchor["tree_size"])  # fmt: skip
                return "failed"
            try:
                self._chain.send_raw(raw, tx_hash)
            except ChainRefused as exc:
                if "nonce too low" not in str(exc).lower():
                    # Underpriced, pool full, no funds…: the same bytes are tried again later,
                    # never a second transaction for the batch.
                    log.warning("anchor to size %d not accepted yet: %s", anchor["tree_size"], exc)
                    return "pending"
                # The nonce went to another transaction: this one can never be mined.
                conn.execute("UPDATE anchors SET status = 'failed' WHERE id = %s", (anchor["id"],))
                log.error("anchor to size %d dropped: %s", anchor["tree_size"], exc)
                return "failed"
            if anchor["status"] == "signed":
                conn.execute(
                    "UPDATE anchors SET status = 'sent', sent_at = now() WHERE id = %s",
                    (anchor["id"],),
                )
            try:
                receipt = wait_for_receipt(self._chain, tx_hash, self._config.receipt_wait_s)
            except ReceiptTimeout:
                return "pending"
        final = not receipt.succeeded or self._is_final(receipt.block_number)
        status = ("confirmed" if receipt.succeeded else "failed") if final else "sent"
        conn.execute(
            "UPDATE anchors SET status = %s, block_number = %s, block_hash = %s, gas_used = %s, "
            "confirmed_at = CASE WHEN %s THEN now() END WHERE id = %s",
            (status, receipt.block_number, receipt.block_hash, receipt.gas_used,
             status == "confirmed", anchor["id"]),
        )  # fmt: skip
        if not final:
            log.info(
                "anchor to size %d mined in block %d; waiting for %d blocks on top",
                anchor["tree_size"], receipt.block_number, self._config.finality_depth,
            )  # fmt: skip
            return "mined"
        log.info(
            "anchor to size %d %s in block %d (%d gas)",
            anchor["tree_size"], status, receipt.block_number, receipt.gas_used,
        )  # fmt: skip
        return "anchored" if receipt.succeeded else "failed"

    def _is_final(self, block_number: int) -> bool:
        """Whether `finality_depth` blocks follow `block_number` on the chain now."""
        if self._config.finality_depth == 0:
            return True  # the receipt itself came from the chain's current head
        return self._chain.block_number() - block_number >= self._config.finality_depth

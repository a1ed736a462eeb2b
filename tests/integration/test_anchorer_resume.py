"""The anchorer's crash-and-resume logic against an in-memory chain (`FakeChain`, a
`ledger.chain_protocol.Chain`), on the real database inside the test's rolled-back
transaction: no node, no mining delay, every crash exactly where the test puts it.

A crash is an exception out of the chain at a chosen moment (before or after a send is
accepted, after a transaction is mined but before its receipt is read); a restart is a new
`Anchorer` on the same database, with nothing of the old one's memory. Whatever the moment,
a batch is signed once, its stored bytes are what reaches the chain, and it is anchored once.
The Anvil tests (`test_anchorer_audit.py`, `test_anchor_finality.py`) check the same with a
real node.
"""

from __future__ import annotations

import copy
import hashlib
import json
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import psycopg
import pytest

from ledger.anchorer import Anchorer, AnchorerConfig
from ledger.chain_protocol import ChainRefused, ChainUnavailable, Receipt, SignedAnchor
from ledger.entries import PendingEntry, append_entries
from ledger.merkle import verify_consistency

KEY: Final = "0x" + "11" * 32
NO_ROOT: Final = b"\x00" * 32
ANCHOR_GAS: Final = 60_000


class Crash(BaseException):
    """The anchorer's process dies here (nothing catches it, as nothing catches a SIGKILL)."""


@dataclass
class _Tx:
    tx_hash: bytes
    nonce: int
    size: int
    root: bytes
    proof: list[bytes]
    anchor: bool = True  # False: another transaction of the same key (a transfer)


@dataclass
class _State:
    """What a node keeps, and loses when it restarts from an older state."""

    block: int = 0
    next_nonce: int = 0  # of the anchorer's key, counting mined transactions only
    size: int = 0
    root: bytes = NO_ROOT
    pool: dict[bytes, _Tx] = field(default_factory=dict)
    mined: dict[bytes, Receipt] = field(default_factory=dict)


class FakeChain:
    """The anchor contract on an in-memory chain with one sending key: a mempool, blocks
    mined at once (`automine`) or on `mine()`, nonces that must follow each other, and the
    contract's RFC 9162 consistency check of every anchor (a failing one reverts)."""

    def __init__(self, *, automine: bool = True) -> None:
        self.address = "0x" + secrets.token_hex(20)
        self.automine = automine
        self.state = _State()
        self.down = False
        self.refusal: str | None = None  # every send refused with this message
        self.revert_next = False
        # Crash points: called at that moment, they may raise `Crash`.
        self.before_send: Callable[[], None] | None = None
        self.after_send: Callable[[], None] | None = None
        self.on_receipt: Callable[[bytes], None] | None = None
        self.signed: list[bytes] = []  # every transaction signed, in order
        self.sends: list[bytes] = []  # every send the chain accepted (repeats too)

    # -- reads ----------------------------------------------------------------------------

    def _up(self) -> None:
        if self.down:
            raise ChainUnavailable("chain fake unreachable")

    def chain_id(self) -> int:
        """The chain id."""
        return 31_337

    def block_number(self) -> int:
        """The latest block."""
        self._up()
        return self.state.block

    def head(self) -> tuple[int, bytes]:
        """The contract's (treeSize, root)."""
        self._up()
        return self.state.size, self.state.root

    def nonce(self, account: str) -> int:
        """The next nonce, counting the pending transactions."""
        self._up()
        pending = {tx.nonce for tx in self.state.pool.values()}
        nonce = self.state.next_nonce
        while nonce in pending:
            nonce += 1
        return nonce

    def receipt(self, tx_hash: bytes) -> Receipt | None:
        """The receipt of a mined transaction."""
        self._up()
        receipt = self.state.mined.get(tx_hash)
        if receipt is not None and self.on_receipt is not None:
            self.on_receipt(tx_hash)
        return receipt

    # -- writes ---------------------------------------------------------------------------

    def sign_anchor(
        self, key: str, *, size: int, root: bytes, proof: Sequence[bytes], nonce: int
    ) -> SignedAnchor:
        """Deterministic bytes for the call, as a real signature is (RFC 6979)."""
        raw = json.dumps(
            {"to": self.address, "nonce": nonce, "size": size, "root": root.hex(),
             "proof": [p.hex() for p in proof]},
            sort_keys=True,
        ).encode()  # fmt: skip
        signed = SignedAnchor(raw, hashlib.sha256(raw).digest(), nonce)
        self.signed.append(signed.tx_hash)
        return signed

    def send_raw(self, raw: bytes, tx_hash: bytes) -> None:
        """Take the bytes into the pool; a repeat of a known or mined one is fine."""
        self._up()
        if self.before_send is not None:
            self.before_send()
        body = json.loads(raw)
        if tx_hash in self.state.mined or tx_hash in self.state.pool:
            self.sends.append(tx_hash)
        elif body["nonce"] < self.state.next_nonce:
            raise ChainRefused("eth_sendRawTransaction refused: nonce too low")
        elif self.refusal is not None:
            raise ChainRefused(f"eth_sendRawTransaction refused: {self.refusal}")
        else:
            proof = [bytes.fromhex(p) for p in body["proof"]]
            tx = _Tx(tx_hash, body["nonce"], body["size"], bytes.fromhex(body["root"]), proof)
            self.state.pool[tx_hash] = tx
            self.sends.append(tx_hash)
        if self.automine:
            self.mine()
        if self.after_send is not None:
            self.after_send()

    # -- the node -------------------------------------------------------------------------

    def mine(self, empty_blocks: int = 0) -> None:
        """Mine every pending transaction whose nonce is next, one block each; then
        `empty_blocks` more."""
        state = self.state
        while True:
            tx = next((t for t in state.pool.values() if t.nonce == state.next_nonce), None)
            if tx is None:
                break
            del state.pool[tx.tx_hash]
            state.block += 1
            state.next_nonce += 1
            succeeded = not tx.anchor or self._apply(tx)
            # A block mined again after a revert is another block: another hash.
            state.mined[tx.tx_hash] = Receipt(
                tx_hash=tx.tx_hash, block_number=state.block, block_hash=secrets.token_bytes(32),
                gas_used=ANCHOR_GAS, succeeded=succeeded, contract_address=None,
            )  # fmt: skip
        state.block += empty_blocks

    def _apply(self, tx: _Tx) -> bool:
        """The contract's `anchor`: a growing size with a valid consistency proof."""
        state = self.state
        if self.revert_next:
            self.revert_next = False
            return False
        if tx.size <= state.size:
            return False  # NotAnExtension
        if state.size and not verify_consistency(
            state.size, tx.size, tx.proof, state.root, tx.root
        ):
            return False  # BadConsistencyProof
        state.size, state.root = tx.size, tx.root
        return True

    def snapshot(self) -> _State:
        """The node's state now (`evm_snapshot`)."""
        return copy.deepcopy(self.state)

    def revert(self, snapshot: _State) -> None:
        """Back to `snapshot`: later blocks and their transactions are gone (`evm_revert`)."""
        self.state = copy.deepcopy(snapshot)

    def transfer(self, nonce: int, *, mine: bool = True) -> None:
        """Another transaction of the anchorer's key, with `nonce`; mined at once unless
        not `mine`."""
        tx_hash = hashlib.sha256(f"transfer/{self.address}/{nonce}".encode()).digest()
        self.state.pool[tx_hash] = _Tx(tx_hash, nonce, 0, NO_ROOT, [], anchor=False)
        if mine:
            self.mine()

    def drop_pending(self) -> None:
        """The node forgets its pending transactions (a restart without them)."""
        self.state.pool.clear()


def crash() -> None:
    """A crash point that always crashes."""
    raise Crash


def crash_once() -> Callable[..., None]:
    """A crash point that crashes the first time only."""
    crashed: list[bool] = []

    def point(*_: Any) -> None:
        if not crashed:
            crashed.append(True)
            raise Crash

    return point


@pytest.fixture
def entries(conn: psycopg.Connection[Any]) -> int:
    """A few new entries; returns the log's size."""
    return _append(conn, 3)


def _append(conn: psycopg.Connection[Any], count: int) -> int:
    tag = secrets.token_hex(4)
    appended = append_entries(
        conn, [PendingEntry("test", "test", n, None, {"tag": tag, "n": n}) for n in range(count)]
    )
    return appended[-1].seq + 1


def _anchorer(chain: FakeChain, depth: int = 0) -> Anchorer:
    config = AnchorerConfig(batch_entries=1, batch_s=0, finality_depth=depth, receipt_wait_s=0.2)
    return Anchorer(conninfo="", chain=chain, key=KEY, config=config)


def _anchors(conn: psycopg.Connection[Any], chain: FakeChain) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT status, tree_size, nonce, tx_hash, raw_tx, block_number FROM anchors "
        "WHERE contract_address = %s ORDER BY id",
        (chain.address,),
    ).fetchall()


def test_a_batch_is_signed_stored_sent_and_confirmed(
    conn: psycopg.Connection[Any], entries: int
) -> None:
    chain = FakeChain()
    assert _anchorer(chain).step(conn) == "anchored"
    [(status, size, nonce, tx_hash, _, block)] = _anchors(conn, chain)
    assert (status, size, nonce, block) == ("confirmed", entries, 0, 1)
    assert chain.head()[0] == entries
    assert chain.sends == chain.signed == [bytes(tx_hash)]
    assert _anchorer(chain).step(conn) == "idle"


def test_a_crash_after_storing_before_sending_sends_the_stored_bytes_after_a_restart(
    conn: psycopg.Connection[Any], entries: int
) -> None:
    chain = FakeChain()
    chain.before_send = crash
    with pytest.raises(Crash):
        _anchorer(chain).step(conn)
    [(status, _, _, tx_hash, raw, _)] = _anchors(conn, chain)
    assert status == "signed"  # stored before anything was sent (SPEC §5)
    assert chain.sends == []

    chain.before_send = None
    assert _anchorer(chain).step(conn) == "anchored"
    assert _anchors(conn, chain) == [("confirmed", entries, 0, tx_hash, raw, 1)]
    assert chain.signed == chain.sends == [bytes(tx_hash)]  # signed once, sent once
    assert chain.head()[0] == entries


def test_a_crash_after_the_chain_took_the_bytes_resumes_without_a_second_transaction(
    conn: psycopg.Connection[Any], entries: int
) -> None:
    chain = FakeChain(automine=False)
    chain.after_send = crash_once()
    with pytest.raises(Crash):
        _anchorer(chain).step(conn)
    [(status, _, _, tx_hash, _, _)] = _anchors(conn, chain)
    assert status == "signed"  # the chain has it; the table does not know yet
    assert bytes(tx_hash) in chain.state.pool

    restarted = _anchorer(chain)
    assert restarted.step(conn) == "pending"  # "already known": sent, not mined yet
    assert _anchors(conn, chain)[0][0] == "sent"
    chain.mine()
    assert restarted.step(conn) == "anchored"
    assert [row[0] for row in _anchors(conn, chain)] == ["confirmed"]
    assert set(chain.sends) == set(chain.signed) == {bytes(tx_hash)}
    assert chain.head()[0] == entries


def test_a_restart_while_the_anchor_waits_to_be_mined_records_it_once_mined(
    conn: psycopg.Connection[Any], entries: int
) -> None:
    chain = FakeChain(automine=False)
    assert _anchorer(chain).step(conn) == "pending"  # no receipt within the wait
    [(status, _, _, tx_hash, _, block)] = _anchors(conn, chain)
    assert (status, block) == ("sent", None)

    chain.mine()  # mined while no anchorer runs
    assert _anchorer(chain).step(conn) == "anchored"
    [(status, _, _, tx_after, _, block)] = _anchors(conn, chain)
    assert (status, bytes(tx_after), block) == ("confirmed", bytes(tx_hash), 1)
    assert chain.sends == [bytes(tx_hash)]  # a mined transaction is not sent again


def test_a_crash_after_mining_before_the_receipt_is_recorded_records_it_after_a_restart(
    conn: psycopg.Connection[Any], entries: int
) -> None:
    chain = FakeChain()
    chain.on_receipt = crash_once()
    with pytest.raises(Crash):
        _anchorer(chain).step(conn)
    [(status, _, _, tx_hash, _, block)] = _anchors(conn, chain)
    assert (status, block) == ("sent", None)
    assert chain.head()[0] == entries  # on chain already

    assert _anchorer(chain).step(conn) == "anchored"
    [(status, _, _, _, _, block)] = _anchors(conn, chain)
    assert (status, block) == ("confirmed", 1)
    assert chain.sends == chain.signed == [bytes(tx_hash)]


def test_a_stored_anchor_whose_nonce_another_transaction_took_fails_and_is_signed_again(
    conn: psycopg.Connection[Any], entries: int
) -> None:
    chain = FakeChain()
    chain.before_send = crash
    with pytest.raises(Crash):
        _anchorer(chain).step(conn)
    [(_, _, nonce, lost_tx, _, _)] = _anchors(conn, chain)
    chain.before_send = None
    chain.transfer(nonce)  # the key's next transaction was another one

    restarted = _anchorer(chain)
    assert restarted.step(conn) == "failed"  # "nonce too low": never mined now
    assert restarted.step(conn) == "anchored"
    rows = _anchors(conn, chain)
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("failed", entries, nonce), ("confirmed", entries, nonce + 1),
    ]  # fmt: skip
    assert bytes(rows[1][3]) != bytes(lost_tx)
    assert chain.head()[0] == entries


def test_a_stored_anchor_whose_nonce_is_ahead_of_the_chain_fails_and_is_signed_again(
    conn: psycopg.Connection[Any], entries: int
) -> None:
    chain = FakeChain(automine=False)
    chain.transfer(0, mine=False)
    chain.before_send = crash
    with pytest.raises(Crash):
        _anchorer(chain).step(conn)
    [(_, _, nonce, _, _, _)] = _anchors(conn, chain)
    assert nonce == 1  # after the pending transfer
    chain.before_send = None
    chain.drop_pending()  # the node lost the transfer: nonce 1 can never be used now
    chain.automine = True

    restarted = _anchorer(chain)
    assert restarted.step(conn) == "failed"
    assert restarted.step(conn) == "anchored"
    assert [(r[0], r[2]) for r in _anchors(conn, chain)] == [("failed", 1), ("confirmed", 0)]
    assert chain.head()[0] == entries


def test_a_refused_send_is_tried_again_with_the_same_bytes_never_signed_twice(
    conn: psycopg.Connection[Any], entries: int
) -> None:
    chain = FakeChain()
    chain.refusal = "replacement transaction underpriced"
    anchorer = _anchorer(chain)
    assert anchorer.step(conn) == "pending"
    assert anchorer.step(conn) == "pending"
    [(status, _, _, tx_hash, _, _)] = _anchors(conn, chain)
    assert status == "signed"

    chain.refusal = None
    assert anchorer.step(conn) == "anchored"
    assert [(r[0], bytes(r[3])) for r in _anchors(conn, chain)] == [("confirmed", bytes(tx_hash))]
    assert chain.signed == [bytes(tx_hash)]


def test_while_the_chain_is_down_nothing_is_signed_and_the_stored_anchor_goes_out_after(
    conn: psycopg.Connection[Any], entries: int
) -> None:
    chain = FakeChain()
    chain.down = True
    with pytest.raises(ChainUnavailable):
        _anchorer(chain).step(conn)
    assert _anchors(conn, chain) == []
    assert chain.signed == []

    chain.down = False
    chain.before_send = crash
    with pytest.raises(Crash):
        _anchorer(chain).step(conn)  # signed and stored; then the process dies
    chain.before_send = None
    chain.down = True
    restarted = _anchorer(chain)
    with pytest.raises(ChainUnavailable):
        restarted.step(conn)
    assert [row[0] for row in _anchors(conn, chain)] == ["signed"]

    chain.down = False
    assert restarted.step(conn) == "anchored"
    assert len(chain.signed) == 1
    assert [row[0] for row in _anchors(conn, chain)] == ["confirmed"]


def test_a_confirmed_anchor_the_chain_lost_is_reopened_and_its_bytes_sent_again(
    conn: psycopg.Connection[Any], entries: int
) -> None:
    chain = FakeChain()
    before = chain.snapshot()
    assert _anchorer(chain).step(conn) == "anchored"
    [(_, _, nonce, tx_hash, raw, _)] = _anchors(conn, chain)
    chain.revert(before)  # the node restarted from a state without the block
    assert chain.head()[0] == 0

    assert _anchorer(chain).step(conn) == "anchored"  # re-checked after the start
    assert _anchors(conn, chain) == [("confirmed", entries, nonce, tx_hash, raw, 1)]
    assert chain.signed == [bytes(tx_hash)]
    assert chain.head()[0] == entries


def test_a_chain_that_loses_an_anchor_while_the_anchorer_runs_is_noticed(
    conn: psycopg.Connection[Any], entries: int
) -> None:
    chain = FakeChain()
    anchorer = _anchorer(chain)
    before = chain.snapshot()
    assert anchorer.step(conn) == "anchored"
    chain.revert(before)
    assert anchorer.step(conn) == "reopened"
    assert anchorer.step(conn) == "anchored"
    assert [row[0] for row in _anchors(conn, chain)] == ["confirmed"]
    assert len(chain.signed) == 1
    assert chain.head()[0] == entries


def test_an_anchor_is_confirmed_only_after_the_finality_depth(
    conn: psycopg.Connection[Any], entries: int
) -> None:
    chain = FakeChain()
    anchorer = _anchorer(chain, depth=2)
    assert anchorer.step(conn) == "mined"
    [(status, _, _, _, _, block)] = _anchors(conn, chain)
    assert (status, block) == ("sent", 1)  # mined and recorded, not yet final
    chain.mine(empty_blocks=1)
    assert anchorer.step(conn) == "mined"
    _append(conn, 1)
    assert anchorer.step(conn) == "mined"  # no new anchor while one is not final
    assert len(_anchors(conn, chain)) == 1
    chain.mine(empty_blocks=1)
    assert anchorer.step(conn) == "anchored"
    assert [row[0] for row in _anchors(conn, chain)] == ["confirmed"]
    assert chain.head()[0] == entries


def test_a_reverted_anchor_fails_and_the_next_round_anchors_from_the_chain_head(
    conn: psycopg.Connection[Any], entries: int
) -> None:
    chain = FakeChain()
    chain.revert_next = True
    anchorer = _anchorer(chain)
    assert anchorer.step(conn) == "failed"
    assert chain.head()[0] == 0
    assert anchorer.step(conn) == "anchored"
    assert [(r[0], r[1]) for r in _anchors(conn, chain)] == [
        ("failed", entries), ("confirmed", entries),
    ]  # fmt: skip
    assert chain.head()[0] == entries


def test_the_next_batch_is_anchored_with_a_consistency_proof_the_contract_accepts(
    conn: psycopg.Connection[Any], entries: int
) -> None:
    chain = FakeChain()
    anchorer = _anchorer(chain)
    assert anchorer.step(conn) == "anchored"
    size = _append(conn, 4)
    assert anchorer.step(conn) == "anchored"  # a bad proof would revert (`FakeChain._apply`)
    assert [(r[0], r[1]) for r in _anchors(conn, chain)] == [
        ("confirmed", entries), ("confirmed", size),
    ]  # fmt: skip
    assert chain.head() == (size, anchorer.log.root(size))

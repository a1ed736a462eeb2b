"""What the ledger needs of a chain, without web3: the `Chain` protocol the anchorer works
against, the values it exchanges, the two chain errors and the one receipt wait.

`ledger.chain.ChainClient` is the real chain (JSON-RPC with web3.py); tests put an in-memory
chain behind the same protocol to drive the anchorer's crash-and-resume logic without a node.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from core.errors import LiftLedgerError

RECEIPT_POLL_S: Final = 0.1


class ChainUnavailable(LiftLedgerError):  # noqa: N818 - reads as a state
    """The chain node cannot be reached; try again later."""


class ChainRefused(LiftLedgerError):  # noqa: N818 - reads as what happened
    """The chain refused a call or transaction (a revert, a bad signature, a bad nonce)."""


class ReceiptTimeout(ChainUnavailable):
    """No receipt came for a sent transaction within the time waited."""


@dataclass(frozen=True, slots=True)
class SignedAnchor:
    """An `anchor` transaction signed offline."""

    raw: bytes
    tx_hash: bytes
    nonce: int


@dataclass(frozen=True, slots=True)
class Receipt:
    """A mined transaction."""

    tx_hash: bytes
    block_number: int
    block_hash: bytes
    gas_used: int
    succeeded: bool
    contract_address: str | None


@dataclass(frozen=True, slots=True)
class AnchoredEvent:
    """One `Anchored` event."""

    tree_size: int
    root: bytes
    previous_size: int
    block_number: int
    tx_hash: bytes


class Chain(Protocol):
    """The anchor contract on one chain, as the anchorer uses it (`ledger.chain.ChainClient`).

    Reads raise `ChainUnavailable` while the node cannot be reached; `send_raw` raises
    `ChainRefused` when the chain refuses the transaction ("nonce too low" when its nonce
    went to another one) and accepts a repeat of a transaction it already knows or mined.
    """

    @property
    def address(self) -> str | None:
        """The anchor contract's address."""

    def chain_id(self) -> int:
        """The chain id."""

    def block_number(self) -> int:
        """The number of the chain's latest block."""

    def head(self) -> tuple[int, bytes]:
        """The contract's latest (treeSize, root)."""

    def nonce(self, account: str) -> int:
        """The next nonce of `account`, counting transactions still pending."""

    def receipt(self, tx_hash: bytes) -> Receipt | None:
        """The receipt of a mined transaction, or None while it is not mined."""

    def sign_anchor(
        self, key: str, *, size: int, root: bytes, proof: Sequence[bytes], nonce: int
    ) -> SignedAnchor:
        """An `anchor(size, root, proof)` transaction, signed offline."""

    def send_raw(self, raw: bytes, tx_hash: bytes) -> None:
        """Broadcast signed bytes (again)."""


class ReceiptSource(Protocol):
    """Anything that reads receipts: a `Chain`, a `ChainClient`."""

    def receipt(self, tx_hash: bytes) -> Receipt | None:
        """The receipt of a mined transaction, or None while it is not mined."""


def wait_for_receipt(chain: ReceiptSource, tx_hash: bytes, timeout_s: float) -> Receipt:
    """Poll for the receipt of `tx_hash` (at least once) until `timeout_s` has passed;
    raises `ReceiptTimeout` when none came."""
    deadline = time.monotonic() + timeout_s
    while True:
        receipt = chain.receipt(tx_hash)
        if receipt is not None:
            return receipt
        if time.monotonic() >= deadline:
            raise ReceiptTimeout(f"no receipt for 0x{tx_hash.hex()} within {timeout_s:.0f} s")
        time.sleep(RECEIPT_POLL_S)

"""The one chain client: the LiftLedger anchor contract over JSON-RPC with web3.py.

Everything the platform does on chain goes through `ChainClient`: deploying the contract,
reading the anchored head and the root of any anchored size, signing an `anchor` transaction
offline (so its bytes can be stored before they are sent), sending those bytes again after a
crash, and reading receipts and `Anchored` events. Chain errors the caller can act on become
`ChainUnavailable` (retry later) or `ChainRefused` (the chain said no). `ChainClient` is the
real `ledger.chain_protocol.Chain`; the values and errors it shares with it live there and
are re-exported here.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any, Final

import requests
from eth_account import Account
from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import ContractCustomError, TransactionNotFound, Web3Exception, Web3RPCError

from ledger.chain_protocol import (
    AnchoredEvent,
    ChainRefused,
    ChainUnavailable,
    Receipt,
    SignedAnchor,
)

__all__ = [
    "ARTIFACT",
    "AnchoredEvent",
    "ChainClient",
    "ChainRefused",
    "ChainUnavailable",
    "Receipt",
    "SignedAnchor",
    "artifact",
]

ARTIFACT: Final = Path(__file__).resolve().parents[1] / "contracts/build/LiftLedgerAnchor.json"
ANCHOR_GAS_LIMIT: Final = 300_000
RPC_TIMEOUT_S: Final = 10


@cache
def artifact() -> dict[str, Any]:
    """The committed compiler artifact of the anchor contract."""
    loaded: dict[str, Any] = json.loads(ARTIFACT.read_text())
    return loaded


class ChainClient:
    """JSON-RPC access to one chain and the anchor contract on it."""

    def __init__(self, url: str, *, contract_address: str | None = None) -> None:
        self.url = url
        self.w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": RPC_TIMEOUT_S}))
        self._abi = artifact()["abi"]
        self.address = Web3.to_checksum_address(contract_address) if contract_address else None
        self._chain_id: int | None = None

    def _contract(self) -> Any:
        if self.address is None:
            raise ChainRefused("no anchor contract address: run `liftledger contracts deploy`")
        return self.w3.eth.contract(address=self.address, abi=self._abi)

    def _call(self, what: str, call: Any) -> Any:
        try:
            return call()
        except (requests.ConnectionError, requests.Timeout, OSError) as exc:
            raise ChainUnavailable(f"chain {self.url} unreachable ({what}): {exc}") from exc
        except ContractCustomError as exc:
            raise ChainRefused(f"{what} reverted: {self._error_name(exc)}") from exc
        except Web3RPCError as exc:
            raise ChainRefused(f"{what} refused: {exc}") from exc
        except Web3Exception as exc:
            raise ChainRefused(f"{what} failed: {exc}") from exc

    def _error_name(self, exc: ContractCustomError) -> str:
        data = str(exc.data if hasattr(exc, "data") else exc)
        for item in self._abi:
            if item.get("type") != "error":
                continue
            signature = f"{item['name']}({','.join(i['type'] for i in item['inputs'])})"
            if Web3.keccak(text=signature).hex()[:8] in data.lower():
                return str(item["name"])
        return data

    # -- reads ----------------------------------------------------------------------------------

    def chain_id(self) -> int:
        """The chain id (part of every signature's domain); asked once, it cannot change."""
        if self._chain_id is None:
            self._chain_id = int(self._call("eth_chainId", lambda: self.w3.eth.chain_id))
        return self._chain_id

    def block_number(self) -> int:
        """The number of the chain's latest block."""
        return int(self._call("eth_blockNumber", lambda: self.w3.eth.block_number))

    def head(self) -> tuple[int, bytes]:
        """The contract's latest (treeSize, root)."""
        contract = self._contract()
        block = self._call("eth_blockNumber", lambda: self.w3.eth.block_number)
        size = self._call(
            "treeSize", lambda: contract.functions.treeSize().call(block_identifier=block)
        )
        root = self._call("root", lambda: contract.functions.root().call(block_identifier=block))
        return int(size), bytes(root)

    def root_at(self, size: int) -> bytes | None:
        """The root the contract stored for `size`, or None if that size was never anchored."""
        contract = self._contract()
        root = bytes(self._call("rootAt", lambda: contract.functions.rootAt(size).call()))
        return None if root == b"\x00" * 32 else root

    def code_matches_artifact(self) -> bool:
        """True when the code at the contract address is the committed runtime bytecode,
        byte for byte outside the immutable slots the constructor fills (the EIP-712 domain's
        cached values, listed in the artifact by the compiler)."""
        address = self.address
        if address is None:
            return False
        code = bytearray(self._call("eth_getCode", lambda: self.w3.eth.get_code(address)))
        expected = bytearray.fromhex(artifact()["deployedBytecode"].removeprefix("0x"))
        if len(code) != len(expected):
            return False
        for references in artifact().get("immutableReferences", {}).values():
            for reference in references:
                start, length = int(reference["start"]), int(reference["length"])
                code[start : start + length] = expected[start : start + length]
        return code == expected

    def anchored_events(self, from_block: int = 0) -> list[AnchoredEvent]:
        """Every `Anchored` event from `from_block` on, oldest first."""
        contract = self._contract()
        logs = self._call(
            "eth_getLogs",
            lambda: contract.events.Anchored.get_logs(from_block=from_block, to_block="latest"),
        )
        return [
            AnchoredEvent(
                tree_size=int(log["args"]["treeSize"]),
                root=bytes(log["args"]["root"]),
                previous_size=int(log["args"]["previousSize"]),
                block_number=int(log["blockNumber"]),
                tx_hash=bytes(log["transactionHash"]),
            )
            for log in logs
        ]

    def block_timestamp(self, block_number: int) -> int:
        """The Unix time of a block, as the chain recorded it."""
        block = self._call("eth_getBlockByNumber", lambda: self.w3.eth.get_block(block_number))
        return int(block["timestamp"])

    def anchor_call(self, tx_hash: bytes) -> tuple[int, bytes, list[bytes]] | None:
        """(newSize, newRoot, proof) of a mined `anchor` transaction to this contract, as
        sent on chain; None when the transaction is not such a call."""
        contract = self._contract()
        tx = self._call(
            "eth_getTransactionByHash", lambda: self.w3.eth.get_transaction(HexBytes(tx_hash))
        )
        if str(tx.get("to") or "").lower() != str(self.address).lower():
            return None
        try:
            function, args = contract.decode_function_input(tx["input"])
        except ValueError:
            return None
        if function.fn_name != "anchor":
            return None
        return int(args["newSize"]), bytes(args["newRoot"]), [bytes(p) for p in args["proof"]]

    def has_role(self, role: str, account: str) -> bool:
        """Whether `account` holds `role` (e.g. "ANCHORER_ROLE")."""
        contract = self._contract()
        role_id = Web3.keccak(text=role) if role != "DEFAULT_ADMIN_ROLE" else b"\x00" * 32
        checksum = Web3.to_checksum_address(account)
        return bool(
            self._call("hasRole", lambda: contract.functions.hasRole(role_id, checksum).call())
        )

    def nonce(self, account: str) -> int:
        """The next nonce of `account`, counting transactions still pending."""
        checksum = Web3.to_checksum_address(account)
        return int(
            self._call("nonce", lambda: self.w3.eth.get_transaction_count(checksum, "pending"))
        )

    def receipt(self, tx_hash: bytes) -> Receipt | None:
        """The receipt of a mined transaction, or None while it is not mined."""
        try:
            got = self._call(
                "receipt", lambda: self.w3.eth.get_transaction_receipt(HexBytes(tx_hash))
            )
        except ChainRefused as exc:
            if isinstance(exc.__cause__, TransactionNotFound):
                return None
            raise
        return Receipt(
            tx_hash=bytes(got["transactionHash"]),
            block_number=int(got["blockNumber"]),
            block_hash=bytes(got["blockHash"]),
            gas_used=int(got["gasUsed"]),
            succeeded=int(got["status"]) == 1,
            contract_address=got.get("contractAddress"),
        )

    # -- writes ---------------------------------------------------------------------------------

    def _fees(self) -> dict[str, int]:
        block = self._call("latest block", lambda: self.w3.eth.get_block("latest"))
        base = int(block.get("baseFeePerGas", 0))
        tip = 1_000_000_000
        return {"maxFeePerGas": 2 * base + tip, "maxPriorityFeePerGas": tip}

    def sign_deploy(self, key: str, *, admin: str, anchorer: str, nonce: int) -> SignedAnchor:
        """The contract's creation transaction, signed offline."""
        factory = self.w3.eth.contract(abi=self._abi, bytecode=artifact()["bytecode"])
        account = Account.from_key(key)
        tx = factory.constructor(
            Web3.to_checksum_address(admin), Web3.to_checksum_address(anchorer)
        ).build_transaction(
            {
                "from": account.address,
                "nonce": nonce,
                "chainId": self.chain_id(),
                "gas": 3_000_000,
                **self._fees(),
            }
        )
        signed = account.sign_transaction(tx)
        return SignedAnchor(bytes(signed.raw_transaction), bytes(signed.hash), nonce)

    def sign_anchor(
        self, key: str, *, size: int, root: bytes, proof: Sequence[bytes], nonce: int
    ) -> SignedAnchor:
        """An `anchor(size, root, proof)` transaction, signed offline with a fixed gas limit."""
        contract = self._contract()
        account = Account.from_key(key)
        tx = contract.functions.anchor(size, root, list(proof)).build_transaction(
            {
                "from": account.address,
                "nonce": nonce,
                "chainId": self.chain_id(),
                "gas": ANCHOR_GAS_LIMIT,
                **self._fees(),
            }
        )
        signed = account.sign_transaction(tx)
        return SignedAnchor(bytes(signed.raw_transaction), bytes(signed.hash), nonce)

    def send_raw(self, raw: bytes, tx_hash: bytes) -> None:
        """Broadcast signed bytes; a repeat of an already known or mined transaction is fine."""
        try:
            self._call("eth_sendRawTransaction", lambda: self.w3.eth.send_raw_transaction(raw))
        except ChainRefused as exc:
            text = str(exc).lower()
            if "already known" in text or "already imported" in text:
                return
            if "nonce too low" in text and self.receipt(tx_hash) is not None:
                return  # mined before the crash: this very transaction used the nonce
            raise

    def estimate_anchor_gas(
        self, sender: str, size: int, root: bytes, proof: Sequence[bytes]
    ) -> int:
        """Gas the anchor call would use now (reverts raise `ChainRefused` with the reason)."""
        contract = self._contract()
        checksum = Web3.to_checksum_address(sender)
        return int(
            self._call(
                "estimate anchor",
                lambda: contract.functions.anchor(size, root, list(proof)).estimate_gas(
                    {"from": checksum}
                ),
            )
        )

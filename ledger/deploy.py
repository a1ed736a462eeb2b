"""Deploying the anchor contract and finding the deployment in use.

`deploy_contract` signs the creation transaction with the anchorer key, waits for its receipt
and records the address in `contract_deployments`, where every other process (anchorer, API,
`liftledger audit verify`) looks it up for the chain it talks to.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Final

import psycopg
from eth_account import Account

from ledger.chain import ChainClient, ChainRefused, ChainUnavailable

RECEIPT_TIMEOUT_S: Final = 60.0


@dataclass(frozen=True, slots=True)
class Deployment:
    """A deployed anchor contract."""

    chain_id: int
    address: str
    block_number: int
    admin: str
    anchorer: str


def deploy_contract(
    conn: psycopg.Connection[Any], chain: ChainClient, *, key: str, admin: str | None = None
) -> Deployment:
    """Deploy a new anchor contract; the anchorer key gets ANCHORER_ROLE (and admin, unless
    another admin address is given), and the deployment is recorded."""
    anchorer = Account.from_key(key).address
    admin = admin or anchorer
    signed = chain.sign_deploy(key, admin=admin, anchorer=anchorer, nonce=chain.nonce(anchorer))
    chain.send_raw(signed.raw, signed.tx_hash)
    receipt = wait_for_receipt(chain, signed.tx_hash, RECEIPT_TIMEOUT_S)
    if not receipt.succeeded or receipt.contract_address is None:
        raise ChainRefused("the contract creation transaction reverted")
    deployment = Deployment(
        chain.chain_id(), receipt.contract_address, receipt.block_number, admin, anchorer
    )
    conn.execute(
        "INSERT INTO contract_deployments (chain_id, address, deploy_tx, block_number, admin, "
        "anchorer) VALUES (%s, %s, %s, %s, %s, %s)",
        (deployment.chain_id, deployment.address, signed.tx_hash, receipt.block_number, admin,
         anchorer),
    )  # fmt: skip
    return deployment


def wait_for_receipt(chain: ChainClient, tx_hash: bytes, timeout_s: float) -> Any:
    """Poll for a receipt until `timeout_s`; raises `ChainUnavailable` when none came."""
    deadline = time.monotonic() + timeout_s
    while True:
        receipt = chain.receipt(tx_hash)
        if receipt is not None:
            return receipt
        if time.monotonic() >= deadline:
            raise ChainUnavailable(f"no receipt for 0x{tx_hash.hex()} within {timeout_s:.0f} s")
        time.sleep(0.1)


def current_deployment(conn: psycopg.Connection[Any], chain_id: int) -> Deployment | None:
    """The newest deployment recorded for `chain_id`."""
    row = conn.execute(
        "SELECT chain_id, address, block_number, admin, anchorer FROM contract_deployments "
        "WHERE chain_id = %s ORDER BY id DESC LIMIT 1",
        (chain_id,),
    ).fetchone()
    return Deployment(*row) if row else None

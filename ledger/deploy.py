"""Deploying the anchor contract and recording it.

`deploy_contract` signs the creation transaction with the anchorer key, waits for its receipt
and records the address in `contract_deployments`. The constructor grants `ANCHORER_ROLE` to
the anchorer key and `DEFAULT_ADMIN_ROLE` to the admin; the deployer itself keeps no role.
`liftledger contracts deploy` always names an admin other than the anchorer (a development
admin key on the local stack, `--admin` in production), so the key the platform holds can
anchor and nothing else. The audit never follows the recorded row: it reads the pinned
contract (`ledger.pin`) and reports a database that records another one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Final

import psycopg
from eth_account import Account

from ledger.chain import ChainClient, ChainRefused, ChainUnavailable

RECEIPT_TIMEOUT_S: Final = 60.0
# The development admin's key on the local stack (`<data_dir>/secrets/contract_admin_key`).
ADMIN_KEY_NAME: Final = "contract_admin_key"


@dataclass(frozen=True, slots=True)
class Deployment:
    """A deployed anchor contract."""

    chain_id: int
    address: str
    block_number: int
    admin: str
    anchorer: str


def deploy_contract(
    conn: psycopg.Connection[Any],
    chain: ChainClient,
    *,
    key: str,
    admin: str | None = None,
    separate_admin: bool = False,
) -> Deployment:
    """Deploy a new anchor contract; the anchorer key gets ANCHORER_ROLE (and admin, unless
    another admin address is given), and the deployment is recorded. With `separate_admin`
    an admin that is the anchorer itself is refused."""
    anchorer = Account.from_key(key).address
    admin = admin or anchorer
    if separate_admin and admin.lower() == anchorer.lower():
        raise ChainRefused(
            f"the admin {admin} is the anchorer key: name another admin, so the anchorer key "
            "can only anchor"
        )
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

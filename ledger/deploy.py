"""Deploying the anchor contract and recording it.

`deploy_contract` signs the creation transaction with the anchorer key, waits for its receipt
and records the address in `contract_deployments`. The constructor grants `ANCHORER_ROLE` to
the anchorer key and `DEFAULT_ADMIN_ROLE` to the admin; the deployer itself keeps no role.
`liftledger contracts deploy` always names an admin other than the anchorer (a development
admin key on the local stack, `--admin` in production), so the key the platform holds can
anchor and nothing else. The audit never follows the recorded row: it reads the pinned
contract (`ledger.pin`) and reports a database that records another one. `contract_chain` is
the one way to get a chain client for the contract in use, pinned or recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, overload

import psycopg
from eth_account import Account

from ledger.chain import ChainClient
from ledger.chain_protocol import ChainRefused, wait_for_receipt

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


def current_deployment(conn: psycopg.Connection[Any], chain_id: int) -> Deployment | None:
    """The newest deployment recorded for `chain_id`."""
    row = conn.execute(
        "SELECT chain_id, address, block_number, admin, anchorer FROM contract_deployments "
        "WHERE chain_id = %s ORDER BY id DESC LIMIT 1",
        (chain_id,),
    ).fetchone()
    return Deployment(*row) if row else None


@overload
def contract_chain(url: str, *, address: str, conn: None = None) -> ChainClient: ...


@overload
def contract_chain(
    url: str, *, address: str | None, conn: psycopg.Connection[Any] | None = None
) -> ChainClient | None: ...


def contract_chain(
    url: str, *, address: str | None, conn: psycopg.Connection[Any] | None = None
) -> ChainClient | None:
    """The chain client of the anchor contract at `url`: the contract at `address` (the
    pinned one, `ledger.pin`) when given; else, only when `conn` is given, the newest
    deployment that database records for the chain; else None.

    The audit and the API pass no connection: they read the pinned contract and never one
    the audited database names. The anchorer, and whoever deployed the contract just now,
    pass theirs."""
    if address is None and conn is not None:
        deployment = current_deployment(conn, ChainClient(url).chain_id())
        address = deployment.address if deployment is not None else None
    return None if address is None else ChainClient(url, contract_address=address)

"""An anchor is final only when the chain says so: the anchorer on the real database and a
private Anvil node (the stack's pinned binary, on a free port, its own chain id) whose blocks
the test takes away with `evm_snapshot` / `evm_revert`, as a node restarted from an older
state (`kill -9` between two state dumps) or a reorganisation would.

After the block holding an anchor is gone, a restarted anchorer notices, re-sends the very
same signed bytes while their nonce is free (or anchors again with a new nonce when another
transaction took it), and the audit verifies against the chain. With a finality depth, an
anchor stays unconfirmed until enough blocks follow it.
"""

from __future__ import annotations

import secrets
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from eth_account import Account

from core.db import libpq_url
from core.settings import Settings
from ledger.anchorer import Anchorer, AnchorerConfig
from ledger.chain import ChainClient
from ledger.deploy import contract_chain, deploy_contract
from ledger.entries import PendingEntry, append_entries
from ledger.verify import verify_log
from liftledger.ledger_sources import LEDGER_SOURCES
from liftledger.stack.anvil import anchorer_address, rpc_call
from liftledger.stack.install import ensure_npm_tools
from tests.integration.cli_helpers import REPO, free_port

PRIVATE_CHAIN_ID = 31_338  # not the stack's, so its deployments are never "the one in use"


@pytest.fixture
def private_chain(stack_settings: Settings) -> Iterator[str]:
    """A private Anvil whose blocks this test may take away; the anchorer key is funded."""
    binary = ensure_npm_tools(stack_settings, REPO)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    node = subprocess.Popen(
        [str(binary), "--host", "127.0.0.1", "--port", str(port), "--chain-id",
         str(PRIVATE_CHAIN_ID), "--accounts", "1", "--silent"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                rpc_call(url, "eth_chainId")
                break
            except Exception:
                if time.monotonic() > deadline or node.poll() is not None:
                    raise
                time.sleep(0.2)
        anchorer = anchorer_address(stack_settings)
        rpc_call(url, "anvil_setBalance", [anchorer, hex(10**21)])
        # A fresh node would give every test's contract the same address (same key, nonce 0).
        rpc_call(url, "anvil_setNonce", [anchorer, hex(secrets.randbelow(10**9) + 1)])
        yield url
    finally:
        node.terminate()
        node.wait(10)


@pytest.fixture
def setup(
    stack_settings: Settings, test_database_url: str, private_chain: str
) -> Iterator[tuple[psycopg.Connection[Any], ChainClient, str]]:
    """A contract on the private chain and a few new committed entries; yields an autocommit
    connection, the chain client and the anchorer key."""
    key = stack_settings.secret("anchorer_key")
    with psycopg.connect(libpq_url(test_database_url), autocommit=True) as conn:
        chain = ChainClient(private_chain)
        deployment = deploy_contract(conn, chain, key=key)
        _append(conn, 3)
        yield conn, contract_chain(private_chain, address=deployment.address), key


def _append(conn: psycopg.Connection[Any], count: int) -> int:
    """Commit `count` entries; returns the log's size."""
    tag = uuid.uuid4().hex[:8]
    with conn.transaction():
        appended = append_entries(
            conn,
            [PendingEntry("test", "test", n, None, {"tag": tag, "n": n}) for n in range(count)],
        )
    return appended[-1].seq + 1


def _anchorer(chain: ChainClient, key: str, depth: int = 0) -> Anchorer:
    config = AnchorerConfig(batch_entries=1, batch_s=0, finality_depth=depth, receipt_wait_s=5)
    return Anchorer(conninfo="", chain=chain, key=key, config=config)


def _anchors(conn: psycopg.Connection[Any], chain: ChainClient) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT status, tree_size, nonce, tx_hash, raw_tx, block_hash FROM anchors "
        "WHERE contract_address = %s ORDER BY id",
        (chain.address,),
    ).fetchall()


def test_a_lost_anchor_is_noticed_after_a_restart_and_the_same_bytes_are_sent_again(
    setup: tuple[psycopg.Connection[Any], ChainClient, str],
) -> None:
    conn, chain, key = setup
    size = int(conn.execute("SELECT max(seq) + 1 FROM ledger_entries").fetchone()[0])  # type: ignore[index]
    snapshot = rpc_call(chain.url, "evm_snapshot")
    assert _anchorer(chain, key).step(conn) == "anchored"
    [(status, tree_size, nonce, tx_hash, raw, _)] = _anchors(conn, chain)
    assert (status, tree_size, chain.head()[0]) == ("confirmed", size, size)

    assert rpc_call(chain.url, "evm_revert", [snapshot]) is True  # the block is gone
    assert chain.head()[0] == 0
    assert chain.receipt(bytes(tx_hash)) is None
    assert _anchors(conn, chain)[0][0] == "confirmed"  # what the table still believes

    restarted = _anchorer(chain, key)
    assert restarted.step(conn) == "anchored"
    [(status, tree_size, nonce_after, tx_after, raw_after, block_hash)] = _anchors(conn, chain)
    assert (status, tree_size, nonce_after) == ("confirmed", size, nonce)
    assert (bytes(tx_after), bytes(raw_after)) == (bytes(tx_hash), bytes(raw))
    receipt = chain.receipt(bytes(tx_hash))
    assert receipt is not None
    assert receipt.block_hash == bytes(block_hash)
    assert chain.head()[0] == size
    report = verify_log(conn, chain, sources=LEDGER_SOURCES)
    assert report.ok, report.render()
    assert report.anchored_size == size


def test_a_lost_anchor_whose_nonce_was_taken_is_anchored_again_with_a_new_nonce(
    setup: tuple[psycopg.Connection[Any], ChainClient, str],
) -> None:
    conn, chain, key = setup
    snapshot = rpc_call(chain.url, "evm_snapshot")
    assert _anchorer(chain, key).step(conn) == "anchored"
    [(_, first_size, nonce, lost_tx, _, _)] = _anchors(conn, chain)
    rpc_call(chain.url, "evm_revert", [snapshot])
    # Another transaction of the anchorer's key takes the lost anchor's nonce.
    account = Account.from_key(key)
    fees = {"maxFeePerGas": 10**11, "maxPriorityFeePerGas": 10**9}
    other = account.sign_transaction(
        {"to": account.address, "value": 0, "gas": 21_000, "nonce": nonce,
         "chainId": PRIVATE_CHAIN_ID, **fees}
    )  # fmt: skip
    rpc_call(chain.url, "eth_sendRawTransaction", ["0x" + bytes(other.raw_transaction).hex()])
    size = _append(conn, 2)

    restarted = _anchorer(chain, key)
    assert restarted.step(conn) == "failed"  # the stored bytes can never be mined now
    assert restarted.step(conn) == "anchored"
    rows = _anchors(conn, chain)
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("failed", first_size, nonce), ("confirmed", size, nonce + 1),
    ]  # fmt: skip
    assert bytes(rows[1][3]) != bytes(lost_tx)
    assert chain.head()[0] == size
    assert [e.tree_size for e in chain.anchored_events()] == [size]
    report = verify_log(conn, chain, sources=LEDGER_SOURCES)
    assert report.ok, report.render()


def test_an_anchor_is_confirmed_only_after_the_finality_depth(
    setup: tuple[psycopg.Connection[Any], ChainClient, str],
) -> None:
    conn, chain, key = setup
    anchorer = _anchorer(chain, key, depth=2)
    assert anchorer.step(conn) == "mined"
    [(status, size, _, _, _, block_hash)] = _anchors(conn, chain)
    assert status == "sent"
    assert block_hash is not None  # mined and recorded, not yet final
    rpc_call(chain.url, "evm_mine")
    assert anchorer.step(conn) == "mined"
    _append(conn, 1)
    assert anchorer.step(conn) == "mined"  # no new anchor while one is not final
    assert len(_anchors(conn, chain)) == 1
    rpc_call(chain.url, "evm_mine")
    assert anchorer.step(conn) == "anchored"
    assert _anchors(conn, chain)[0][0] == "confirmed"
    assert chain.head()[0] == size


def test_a_chain_that_loses_an_anchor_while_the_anchorer_runs_is_noticed(
    setup: tuple[psycopg.Connection[Any], ChainClient, str],
) -> None:
    conn, chain, key = setup
    anchorer = _anchorer(chain, key)
    snapshot = rpc_call(chain.url, "evm_snapshot")
    assert anchorer.step(conn) == "anchored"
    [(_, size, _, tx_hash, _, _)] = _anchors(conn, chain)
    rpc_call(chain.url, "evm_revert", [snapshot])
    assert anchorer.step(conn) == "reopened"
    assert anchorer.step(conn) == "anchored"
    assert [(r[0], bytes(r[3])) for r in _anchors(conn, chain)] == [("confirmed", bytes(tx_hash))]
    assert chain.head()[0] == size
    assert verify_log(conn, chain, sources=LEDGER_SOURCES).ok

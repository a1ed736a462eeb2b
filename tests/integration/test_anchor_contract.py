"""The anchor contract on the real Anvil: extensions accepted, rewritten history and
unauthorised callers refused by the chain itself."""

from __future__ import annotations

import secrets

import pytest
from eth_account import Account

from core.settings import Settings
from ledger.chain import ChainClient, ChainRefused
from ledger.chain_protocol import wait_for_receipt
from ledger.merkle import MerkleLog, hash_leaf
from liftledger.stack.anvil import rpc_call


def _deploy(settings: Settings) -> ChainClient:
    url = settings.resolved_chain_url()
    key = settings.secret("anchorer_key")
    chain = ChainClient(url)
    sender = Account.from_key(key).address
    signed = chain.sign_deploy(key, admin=sender, anchorer=sender, nonce=chain.nonce(sender))
    chain.send_raw(signed.raw, signed.tx_hash)
    receipt = wait_for_receipt(chain, signed.tx_hash, 30)
    return ChainClient(url, contract_address=receipt.contract_address)


def _anchor(chain: ChainClient, key: str, size: int, root: bytes, proof: list[bytes]) -> bool:
    sender = Account.from_key(key).address
    signed = chain.sign_anchor(key, size=size, root=root, proof=proof, nonce=chain.nonce(sender))
    chain.send_raw(signed.raw, signed.tx_hash)
    return bool(wait_for_receipt(chain, signed.tx_hash, 30).succeeded)


@pytest.fixture
def chain(stack_settings: Settings) -> ChainClient:
    return _deploy(stack_settings)


def _log(n: int, tag: bytes = b"entry") -> MerkleLog:
    return MerkleLog([hash_leaf(tag + i.to_bytes(4, "big")) for i in range(n)])


def test_a_consistent_extension_is_anchored_and_every_root_stays_readable(
    chain: ChainClient, stack_settings: Settings
) -> None:
    key = stack_settings.secret("anchorer_key")
    log = _log(37)
    assert _anchor(chain, key, 5, log.root(5), [])
    assert _anchor(chain, key, 16, log.root(16), log.consistency_proof(5, 16))
    assert _anchor(chain, key, 37, log.root(37), log.consistency_proof(16, 37))
    assert chain.head() == (37, log.root(37))
    assert [chain.root_at(size) for size in (5, 16, 37)] == [log.root(s) for s in (5, 16, 37)]
    assert chain.root_at(6) is None
    events = chain.anchored_events()
    assert [(e.tree_size, e.previous_size) for e in events] == [(5, 0), (16, 5), (37, 16)]
    assert chain.code_matches_artifact()
    an_account = Account.from_key(stack_settings.secret("anchorer_key")).address
    assert not ChainClient(chain.url, contract_address=an_account).code_matches_artifact()


def test_a_rewritten_history_is_refused_by_the_contract(
    chain: ChainClient, stack_settings: Settings
) -> None:
    key = stack_settings.secret("anchorer_key")
    honest = _log(20)
    assert _anchor(chain, key, 8, honest.root(8), [])
    forged_leaves = [honest.levels[0][i] for i in range(20)]
    forged_leaves[3] = hash_leaf(b"rewritten")
    forged = MerkleLog(forged_leaves)
    proof = forged.consistency_proof(8, 20)
    with pytest.raises(ChainRefused, match="BadConsistencyProof"):
        chain.estimate_anchor_gas(Account.from_key(key).address, 20, forged.root(20), proof)
    # Sent anyway (fixed gas, no estimate): mined, reverted, head unchanged.
    assert not _anchor(chain, key, 20, forged.root(20), proof)
    assert chain.head() == (8, honest.root(8))


def test_a_shrinking_or_repeated_size_is_refused(
    chain: ChainClient, stack_settings: Settings
) -> None:
    key = stack_settings.secret("anchorer_key")
    log = _log(10)
    sender = Account.from_key(key).address
    assert _anchor(chain, key, 10, log.root(10), [])
    with pytest.raises(ChainRefused, match="NotAnExtension"):
        chain.estimate_anchor_gas(sender, 10, log.root(10), [])
    with pytest.raises(ChainRefused, match="NotAnExtension"):
        chain.estimate_anchor_gas(sender, 4, log.root(4), [])


def test_an_address_without_the_anchorer_role_is_refused(
    chain: ChainClient, stack_settings: Settings
) -> None:
    outsider = Account.from_key("0x" + secrets.token_hex(32))
    rpc_call(
        stack_settings.resolved_chain_url(), "anvil_setBalance", [outsider.address, hex(10**18)]
    )
    log = _log(4)
    assert not chain.has_role("ANCHORER_ROLE", outsider.address)
    with pytest.raises(ChainRefused, match="AccessControlUnauthorizedAccount"):
        chain.estimate_anchor_gas(outsider.address, 4, log.root(4), [])
    assert not _anchor(chain, outsider.key.hex(), 4, log.root(4), [])
    assert chain.head()[0] == 0

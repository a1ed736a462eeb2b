"""RFC 9162 Merkle tree: the RFC 6962 published vectors, then properties on random logs."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.merkle import (
    EMPTY_ROOT,
    MerkleLog,
    hash_children,
    hash_leaf,
    root_of,
    verify_consistency,
    verify_inclusion,
)

# The Certificate Transparency reference inputs and tree heads (RFC 6962 test data).
ENTRIES = [bytes.fromhex(h) for h in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
)]  # fmt: skip
ROOTS = [bytes.fromhex(h) for h in (
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
)]  # fmt: skip
INCLUSION = [  # (leaf index, tree size, path)
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]  # fmt: skip
CONSISTENCY = [  # (first, second, proof)
    (1, 1, []),
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]  # fmt: skip
LEAVES = [hash_leaf(entry) for entry in ENTRIES]


def test_empty_tree_root_is_the_hash_of_nothing() -> None:
    assert root_of([]) == EMPTY_ROOT == ROOTS[0]
    assert MerkleLog().root() == EMPTY_ROOT


def test_roots_match_the_published_tree_heads_for_every_size() -> None:
    log = MerkleLog()
    for size in range(1, 9):
        log.append(LEAVES[size - 1])
        assert root_of(LEAVES[:size]) == ROOTS[size]
        assert log.root() == ROOTS[size]
    assert [MerkleLog(LEAVES).root(size) for size in range(9)] == ROOTS


def test_inclusion_proofs_match_the_published_paths_and_verify() -> None:
    log = MerkleLog(LEAVES)
    for index, size, path in INCLUSION:
        proof = log.inclusion_proof(index, size)
        assert [p.hex() for p in proof] == path
        assert verify_inclusion(index, size, LEAVES[index], proof, ROOTS[size])
        assert not verify_inclusion(index, size, LEAVES[index], proof, ROOTS[size - 1])


def test_consistency_proofs_match_the_published_proofs_and_verify() -> None:
    log = MerkleLog(LEAVES)
    for first, second, path in CONSISTENCY:
        proof = log.consistency_proof(first, second)
        assert [p.hex() for p in proof] == path
        assert verify_consistency(first, second, proof, ROOTS[first], ROOTS[second])


def test_hashes_use_distinct_leaf_and_node_prefixes() -> None:
    assert hash_leaf(b"") == hashlib.sha256(b"\x00").digest()
    assert hash_children(b"a", b"b") == hashlib.sha256(b"\x01ab").digest()


leaf_lists = st.lists(st.binary(max_size=8), min_size=1, max_size=70, unique=True).map(
    lambda entries: [hash_leaf(e) for e in entries]
)


@settings(max_examples=60, deadline=None)
@given(leaves=leaf_lists, data=st.data())
def test_every_inclusion_proof_verifies_and_a_wrong_leaf_does_not(
    leaves: list[bytes], data: st.DataObject
) -> None:
    log = MerkleLog(leaves)
    size = data.draw(st.integers(1, len(leaves)))
    index = data.draw(st.integers(0, size - 1))
    root = root_of(leaves[:size])
    assert log.root(size) == root
    proof = log.inclusion_proof(index, size)
    assert verify_inclusion(index, size, leaves[index], proof, root)
    assert not verify_inclusion(index, size, hash_leaf(b"forged-leaf"), proof, root)
    if size > 1:
        assert not verify_inclusion((index + 1) % size, size, leaves[index], proof, root)


@settings(max_examples=60, deadline=None)
@given(leaves=leaf_lists, data=st.data())
def test_every_consistency_proof_verifies_and_a_rewritten_history_does_not(
    leaves: list[bytes], data: st.DataObject
) -> None:
    log = MerkleLog(leaves)
    second = data.draw(st.integers(1, len(leaves)))
    first = data.draw(st.integers(1, second))
    proof = log.consistency_proof(first, second)
    old, new = root_of(leaves[:first]), root_of(leaves[:second])
    assert verify_consistency(first, second, proof, old, new)
    if first < second:
        changed = data.draw(st.integers(0, first - 1))
        forged = [*leaves]
        forged[changed] = hash_leaf(b"rewritten-leaf")
        forged_log = MerkleLog(forged)
        forged_proof = forged_log.consistency_proof(first, second)
        assert not verify_consistency(first, second, forged_proof, old, forged_log.root(second))

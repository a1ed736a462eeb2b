"""The RFC 9162 Merkle tree of the ledger: hashes, roots, inclusion and consistency proofs.

SHA-256, leaf hash `H(0x00 || entry)` and node hash `H(0x01 || left || right)` (RFC 9162
§2.1.1). An n-leaf tree splits at k, the largest power of two below n. Pure functions over
leaf hashes, plus `MerkleLog`, which keeps every complete subtree in memory so that roots and
proofs for a log of a million entries cost O(log² n) hashes instead of rehashing the leaves.

Proof generation follows RFC 9162 §2.1.3.1 (PATH) and §2.1.4.1 (SUBPROOF); verification
follows the algorithms of §2.1.3.2 and §2.1.4.2, which is what the contract runs on chain.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Final

EMPTY_ROOT: Final = hashlib.sha256(b"").digest()
_LEAF: Final = b"\x00"
_NODE: Final = b"\x01"


def hash_leaf(entry: bytes) -> bytes:
    """RFC 9162 leaf hash of one entry."""
    return hashlib.sha256(_LEAF + entry).digest()


def hash_children(left: bytes, right: bytes) -> bytes:
    """RFC 9162 interior node hash."""
    return hashlib.sha256(_NODE + left + right).digest()


def split_point(n: int) -> int:
    """The largest power of two smaller than n (n ≥ 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_of(leaves: Sequence[bytes]) -> bytes:
    """MTH over leaf hashes (RFC 9162 §2.1.1); the empty tree hashes the empty string."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaves[0]
    k = split_point(len(leaves))
    return hash_children(root_of(leaves[:k]), root_of(leaves[k:]))


class MerkleLog:
    """An append-only log of leaf hashes with every complete, aligned subtree cached.

    `levels[h][i]` is the hash of leaves `[i·2^h, (i+1)·2^h)`. Every left child in the RFC
    9162 recursion is such a subtree, so any root or proof needs O(log n) cached lookups per
    level of the recursion.
    """

    def __init__(self, leaves: Sequence[bytes] = ()) -> None:
        self.levels: list[list[bytes]] = [[]]
        for leaf in leaves:
            self.append(leaf)

    def __len__(self) -> int:
        return len(self.levels[0])

    def append(self, leaf: bytes) -> None:
        """Add one leaf hash."""
        self.levels[0].append(leaf)
        height = 0
        while len(self.levels[height]) % 2 == 0:
            level = self.levels[height]
            if height + 1 == len(self.levels):
                self.levels.append([])
            self.levels[height + 1].append(hash_children(level[-2], level[-1]))
            height += 1

    def subtree_root(self, start: int, end: int) -> bytes:
        """MTH of leaves [start, end) of this log."""
        if not 0 <= start <= end <= len(self):
            raise ValueError(f"leaves {start}..{end} outside 0..{len(self)}")
        return self._subtree(start, end)

    def _subtree(self, start: int, end: int) -> bytes:
        """MTH of leaves [start, end)."""
        size = end - start
        if size == 0:
            return EMPTY_ROOT
        if size & (size - 1) == 0 and start % size == 0:
            return self.levels[size.bit_length() - 1][start // size]
        k = split_point(size)
        return hash_children(self._subtree(start, start + k), self._subtree(start + k, end))

    def root(self, size: int | None = None) -> bytes:
        """The root of the first `size` leaves (default: all)."""
        size = len(self) if size is None else size
        if not 0 <= size <= len(self):
            raise ValueError(f"tree size {size} outside 0..{len(self)}")
        return self._subtree(0, size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """PATH(index, D[0:size]) (RFC 9162 §2.1.3.1)."""
        size = len(self) if size is None else size
        if not 0 <= index < size <= len(self):
            raise ValueError(f"leaf {index} is not in a tree of size {size}")
        return self._path(index, 0, size)

    def _path(self, index: int, start: int, end: int) -> list[bytes]:
        size = end - start
        if size == 1:
            return []
        k = split_point(size)
        if index < k:
            return [*self._path(index, start, start + k), self._subtree(start + k, end)]
        return [*self._path(index - k, start + k, end), self._subtree(start, start + k)]

    def consistency_proof(self, first: int, second: int | None = None) -> list[bytes]:
        """PROOF(first, D[0:second]) (RFC 9162 §2.1.4.1)."""
        second = len(self) if second is None else second
        if not 0 < first <= second <= len(self):
            raise ValueError(f"no consistency proof from {first} to {second}")
        if first == second:
            return []
        return self._subproof(first, 0, second, complete=True)

    def _subproof(self, m: int, start: int, end: int, *, complete: bool) -> list[bytes]:
        size = end - start
        if m == size:
            return [] if complete else [self._subtree(start, end)]
        k = split_point(size)
        if m <= k:
            return [*self._subproof(m, start, start + k, complete=complete),
                    self._subtree(start + k, end)]  # fmt: skip
        return [*self._subproof(m - k, start + k, end, complete=False),
                self._subtree(start, start + k)]  # fmt: skip


def consistency_proof_ranges(first: int, second: int) -> list[tuple[int, int]]:
    """The leaf range [start, end) whose subtree hash each node of PROOF(first, second) is,
    in proof order (RFC 9162 §2.1.4.1), so a proof read from the chain can be compared node
    by node with the subtrees of a stored log."""
    if not 0 < first <= second:
        raise ValueError(f"no consistency proof from {first} to {second}")
    if first == second:
        return []
    return _subproof_ranges(first, 0, second, complete=True)


def _subproof_ranges(m: int, start: int, end: int, *, complete: bool) -> list[tuple[int, int]]:
    size = end - start
    if m == size:
        return [] if complete else [(start, end)]
    k = split_point(size)
    if m <= k:
        return [*_subproof_ranges(m, start, start + k, complete=complete), (start + k, end)]
    return [*_subproof_ranges(m - k, start + k, end, complete=False), (start, start + k)]


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 §2.1.3.2: does `proof` place `leaf` at `index` of the tree with `root`?"""
    if not 0 <= index < size:
        return False
    steps = _walk(index, size - 1, proof)
    if steps is None:
        return False
    r = leaf
    for p, left in steps:
        r = hash_children(p, r) if left else hash_children(r, p)
    return r == root


def verify_consistency(
    first: int, second: int, proof: Sequence[bytes], first_root: bytes, second_root: bytes
) -> bool:
    """RFC 9162 §2.1.4.2: is the tree of `second_root` an append-only extension of `first`?"""
    if not 0 < first <= second:
        return False
    if first == second:
        return not proof and first_root == second_root
    if not proof:
        return False
    path = list(proof)
    if first & (first - 1) == 0:  # an exact power of two: the old root is a node of the new
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    steps = _walk(fn, sn, path[1:])
    if steps is None:
        return False
    fr = sr = path[0]
    for c, left in steps:
        if left:
            fr = hash_children(c, fr)
            sr = hash_children(c, sr)
        else:
            sr = hash_children(sr, c)
    return fr == first_root and sr == second_root


def _walk(fn: int, sn: int, path: Sequence[bytes]) -> list[tuple[bytes, bool]] | None:
    """The walk of both RFC 9162 verifications from node `fn` of a level whose last node is
    `sn` up to the root: each node of `path` and whether it is hashed in on the left; None
    when the path does not end at the root (too long or too short)."""
    steps = []
    for p in path:
        if sn == 0:
            return None
        left = bool(fn & 1) or fn == sn
        steps.append((p, left))
        if left:
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        fn >>= 1
        sn >>= 1
    return steps if sn == 0 else None

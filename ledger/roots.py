"""The anchored roots against the stored log: every anchored size's root read from the chain
and compared, and a mismatch located as narrowly as the chain's hashes allow (docs/ledger.md,
"Locating a rewrite").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ledger.chain import ChainClient
from ledger.chain_protocol import AnchoredEvent, ChainRefused
from ledger.merkle import MerkleLog, consistency_proof_ranges, verify_inclusion
from ledger.report import LogReport, Problem


def check_anchors(
    log: MerkleLog,
    events: Sequence[AnchoredEvent],
    chain: ChainClient,
    links: Mapping[int, bytes],
    report: LogReport,
) -> list[Problem]:
    """Every anchored root against the log; a mismatch is located (see `_locate`)."""
    problems: list[Problem] = []
    roots: dict[int, bytes] = {}  # anchored sizes whose chain root is the event's
    matched = 0  # the largest anchored size the log still matches
    first_mismatch: AnchoredEvent | None = None
    first_index = 0
    for event in events:
        report.anchors_checked += 1
        report.anchored_size = max(report.anchored_size, event.tree_size)
        problem = _check_anchor(log, event, chain, roots)
        if problem is None:
            if first_mismatch is None:
                matched = max(matched, event.tree_size)
            continue
        if problem.kind == "root_mismatch" and event.tree_size in roots and first_mismatch is None:
            first_mismatch, first_index = event, len(problems)
        problems.append(problem)
    named = {p.seq for p in report.problems if p.seq is not None}
    problems += _rewritten_links(log, links, roots, named)
    named |= {p.seq for p in problems if p.seq is not None}
    if first_mismatch is not None:
        lo, hi = _locate(log, first_mismatch, matched, chain)
        where = (
            f"entry {lo} is the first changed entry" if hi - lo == 1
            else f"the first changed entry is one of {lo}..{hi - 1}"
        )  # fmt: skip
        detail = f"{problems[first_index].detail}; {where}"
        problems[first_index] = Problem(None, "root_mismatch", detail)
        if not any(lo <= seq < hi for seq in named):
            detail = (
                f"the log differs from the chain from here on (the anchored tree of size "
                f"{first_mismatch.tree_size} does not match; {where}, as narrow as the "
                f"chain's hashes allow)"
            )
            problems.append(Problem(lo, "rewritten", detail))
    return problems


def _check_anchor(
    log: MerkleLog, event: AnchoredEvent, chain: ChainClient, roots: dict[int, bytes]
) -> Problem | None:
    size = event.tree_size
    if size > len(log):
        return Problem(
            size - 1, "missing", f"the chain anchored {size} entries; the database holds {len(log)}"
        )
    stored = chain.root_at(size)
    if stored != event.root:
        return Problem(None, "root_mismatch", f"rootAt({size}) differs from its Anchored event")
    roots[size] = stored
    if log.root(size) != stored:
        return Problem(
            None, "root_mismatch",
            f"the first {size} entries do not hash to the root anchored in block "
            f"{event.block_number} (tx 0x{event.tx_hash.hex()})",
        )  # fmt: skip
    return None


def _rewritten_links(
    log: MerkleLog, links: Mapping[int, bytes], roots: Mapping[int, bytes], named: set[int]
) -> list[Problem]:
    """For each broken `prev` link at seq j: if the chain's root holds, at j - 1, the leaf
    that entry j links to (and the stored log everywhere else), then entry j - 1 was
    rewritten with recomputed hashes, and it is named itself (RFC 9162 §2.1.3.2)."""
    problems: list[Problem] = []
    sizes = sorted(roots)
    for seq, claimed in sorted(links.items()):
        target = seq - 1
        if target < 0 or target in named or len(claimed) != 32:
            continue
        size = next((s for s in sizes if s > seq), None)
        if size is None or size > len(log):
            continue
        proof = log.inclusion_proof(target, size)
        if verify_inclusion(target, size, claimed, proof, roots[size]):
            problems.append(
                Problem(
                    target, "rewritten",
                    f"its bytes were rewritten with recomputed hashes: the chain's root of size "
                    f"{size} holds the leaf entry {seq} links to, not this one",
                )
            )  # fmt: skip
    return problems


def _locate(
    log: MerkleLog, event: AnchoredEvent, matched: int, chain: ChainClient
) -> tuple[int, int]:
    """[lo, hi): the range that holds the first changed entry, given that the log matches the
    chain up to the anchored size `matched` and not at `event`'s size. The consistency proof
    the anchorer sent with that anchor holds the original hashes of subtrees around the
    previous size; the first one that differs from the stored log holds the first change
    (every subtree before it is intact)."""
    lo, hi = matched, event.tree_size
    if event.previous_size == 0:
        return lo, hi
    try:
        call = chain.anchor_call(event.tx_hash)
    except ChainRefused:
        return lo, hi
    if call is None or call[0] != event.tree_size:
        return lo, hi
    proof = call[2]
    ranges = consistency_proof_ranges(event.previous_size, event.tree_size)
    if len(ranges) != len(proof):
        return lo, hi
    differing = [
        (start, end)
        for (start, end), node in zip(ranges, proof, strict=True)
        if log.subtree_root(start, end) != node
    ]
    if differing:
        start, end = min(differing)
        lo, hi = max(lo, start), min(hi, end)
    return lo, hi

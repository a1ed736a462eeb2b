"""What an audit found: each problem named by the seq, alert or row it concerns, and the
reports of one entry (`ledger.verify.verify_entry`) and of the whole log
(`ledger.verify.verify_log`), with their one-screen rendering for `liftledger audit verify`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ledger.chain_protocol import AnchoredEvent


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing that does not verify; `seq` is None for a problem of a whole range."""

    seq: int | None
    kind: str  # missing | modified | unreadable | out_of_order | source_changed | ...
    detail: str
    alert_id: int | None = None  # the alert whose row is wrong (alert_state, orphan)
    source_table: str | None = None  # a source row without an entry (orphan)
    source_id: int | None = None

    def line(self) -> str:
        """One report line."""
        where = [f"entry {self.seq}"] if self.seq is not None else []
        if self.alert_id is not None:
            where.append(f"alert {self.alert_id}")
        if self.source_table is not None and self.source_table != "alerts":
            where.append(f"{self.source_table} {self.source_id}")
        return f"{', '.join(where) or 'log'}: {self.kind}: {self.detail}"


@dataclass(slots=True)
class LogReport:
    """The result of a whole-log audit."""

    entries: int = 0
    anchored_size: int = 0
    anchors_checked: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing failed."""
        return not self.problems

    def render(self) -> str:
        """A human-readable report."""
        lines = [
            f"entries: {self.entries}",
            f"anchored on chain: {self.anchored_size} (checked {self.anchors_checked} roots)",
        ]
        lines += [problem.line() for problem in self.problems]
        lines.append("result: OK" if self.ok else f"result: FAILED ({len(self.problems)} problems)")
        return "\n".join(lines)


@dataclass(slots=True)
class EntryReport:
    """The result of verifying one entry."""

    seq: int
    anchored_size: int | None = None
    chain_root: bytes | None = None
    anchor: AnchoredEvent | None = None
    proof: list[bytes] = field(default_factory=list)
    signed: bool | None = None
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the entry verifies against the chain."""
        return not self.problems and self.anchored_size is not None

    def render(self) -> str:
        """A human-readable report."""
        lines = [f"entry {self.seq}"]
        if self.anchored_size is None:
            lines.append("anchored: not yet (no anchored tree contains it)")
        else:
            root = self.chain_root.hex() if self.chain_root else "?"
            lines.append(f"anchored in the tree of size {self.anchored_size}, root on chain {root}")
            lines.append(f"inclusion proof: {len(self.proof)} hashes")
        if self.signed is not None:
            lines.append("signature: " + ("EIP-712" if self.signed else "unsigned"))
        lines += [problem.line() for problem in self.problems]
        lines.append("result: OK" if self.ok else "result: FAILED")
        return "\n".join(lines)

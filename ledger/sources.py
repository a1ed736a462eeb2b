"""The sources of ledger entries, as the ledger sees them: without knowing any of them.

The ledger stores and proves entries; what an entry means belongs to the package that
writes it (`alerts.entries`, `maintenance.entries`). Each such package offers one
`LedgerSource`: the entry kind it writes and the table its records live in, the query of its
records and the content each record's entry should hold (the audit reads a batch of entries'
records at once and compares), a record's signature, the time a record says it happened,
the state its entries fold into (checked against its tables once the whole log is read),
and a one-line summary of an entry for people. The audit (`ledger.verify`) and the API take
the sources as a parameter, `LedgerSources`, assembled where a process is wired
(`liftledger.ledger_sources`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import psycopg

from ledger.report import Problem


@dataclass(frozen=True, slots=True)
class StoredEntry:
    """A stored entry whose content could be read: what a source checks."""

    seq: int
    source_id: int
    body: Mapping[str, Any]  # the decoded canonical content, envelope included


@dataclass(frozen=True, slots=True)
class AnchorContract:
    """The chain and the anchor contract an audit reads (the EIP-712 domain of records
    signed on it)."""

    chain_id: int
    address: str


@dataclass(frozen=True, slots=True)
class SignatureCheck:
    """A record's own signature under the audited contract: whether it was signed (None for
    a kind of record that never is) and, if it does not verify, the problem."""

    signed: bool | None = None
    problem: Problem | None = None


@dataclass(frozen=True, slots=True)
class EntrySummary:
    """An entry for people: when its record says it happened (None if it does not say),
    and one line."""

    time: dt.datetime | None
    text: str


class SourceFold(Protocol):
    """One source's state re-derived from its entries during one whole-log audit."""

    def apply(self, seq: int, body: Mapping[str, Any]) -> None:
        """Fold one readable entry of this source's kind, in seq order."""

    def problems(self, conn: psycopg.Connection[Any]) -> list[Problem]:
        """Where the source's tables disagree with the folded state (read in the audit's
        snapshot)."""


class LedgerSource(Protocol):
    """One kind of record that becomes ledger entries."""

    @property
    def kind(self) -> str:
        """The entry kind it writes (`alert_event`)."""

    @property
    def source_table(self) -> str:
        """The table its records live in (`alert_events`); entries name it."""

    @property
    def record_name(self) -> str:
        """What the audit calls one record (`alert event`)."""

    @property
    def rows_sql(self) -> str:
        """The query of its records whose `id` is in the array parameter, with an `id`
        column and whatever `expected_content` and `check_signature` read."""

    def expected_content(self, row: Mapping[str, Any]) -> Mapping[str, Any]:
        """The content the entry of the record in `row` should hold, every field a row
        keeps; raises `StoredJsonError` when the row's details cannot be read."""

    def check_signature(
        self, entry: StoredEntry, row: Mapping[str, Any], contract: AnchorContract | None
    ) -> SignatureCheck:
        """The record's signature, if it has one, under `contract`."""

    def record_time_s(self, body: Mapping[str, Any]) -> float | None:
        """When the record in `body` says it happened (Unix seconds), or None."""

    def fold(self) -> SourceFold | None:
        """A fresh state to fold this source's entries into, or None if it keeps none."""

    def summary(self, body: Mapping[str, Any]) -> EntrySummary:
        """What the audit trail shows of an entry of this kind (`body` without envelope);
        may raise `ValueError`/`TypeError` on a hostile content."""


class LedgerSources:
    """The sources a process knows, looked up by entry kind or by source table."""

    def __init__(self, *sources: LedgerSource) -> None:
        self._sources = sources
        self._by_kind = {source.kind: source for source in sources}
        self._by_table = {source.source_table: source for source in sources}
        if len(self._by_kind) != len(sources) or len(self._by_table) != len(sources):
            raise ValueError("two ledger sources share an entry kind or a source table")

    def __iter__(self) -> Iterator[LedgerSource]:
        return iter(self._sources)

    def of_kind(self, kind: object) -> LedgerSource | None:
        """The source that writes entries of `kind`, if any."""
        return self._by_kind.get(kind) if isinstance(kind, str) else None

    def of_table(self, table: str) -> LedgerSource | None:
        """The source whose records live in `table`, if any."""
        return self._by_table.get(table)

    def summary(self, kind: str, body: Mapping[str, Any]) -> EntrySummary:
        """The trail's summary of an entry; an unknown kind is shown by its name."""
        source = self.of_kind(kind)
        return source.summary(body) if source is not None else EntrySummary(None, kind)

"""The database keeps the ledger dense and linked, whoever inserts (migration 0007).

An insider with plain INSERT rights on `ledger_entries` tries to leave a gap, to break a
`prev` link, to reuse a seq or to store a leaf hash that is not derived from its content
hash; the real TimescaleDB refuses each one. Genuine appends, also from concurrent
appenders, still work, and the anchorer goes on anchoring after a refused insert.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from core.db import libpq_url
from core.settings import Settings
from ledger.anchorer import Anchorer, AnchorerConfig
from ledger.chain import ChainClient
from ledger.deploy import contract_chain, deploy_contract
from ledger.entries import PendingEntry, append_entries, content_hash, entry_bytes
from ledger.merkle import hash_leaf
from ledger.verify import verify_log
from liftledger.ledger_sources import LEDGER_SOURCES
from tests.integration.databases import migrated_database


@pytest.fixture
def url(test_database_url: str) -> str:
    return libpq_url(test_database_url)


@pytest.fixture
def conn(url: str, conn: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    """The rolled-back connection; at least one committed entry exists."""
    with psycopg.connect(url, autocommit=True) as setup, setup.transaction():
        append_entries(setup, [PendingEntry("test", "test", 1, None, {"n": 1})])
    return conn


def _last(conn: psycopg.Connection[Any]) -> tuple[int, bytes]:
    row = conn.execute(
        "SELECT seq, leaf_hash FROM ledger_entries ORDER BY seq DESC LIMIT 1"
    ).fetchone()
    assert row is not None
    return int(row[0]), bytes(row[1])


def _insert(
    conn: psycopg.Connection[Any],
    seq: int,
    *,
    prev: bytes,
    leaf: bytes | None = None,
    content: dict[str, Any] | None = None,
) -> None:
    """One plain INSERT, as anyone with INSERT rights can write it."""
    canonical = entry_bytes("test", content or {"forged": True}, uuid.uuid4().hex, prev=prev)
    digest = content_hash(canonical)
    conn.execute(
        "INSERT INTO ledger_entries (seq, kind, source_table, source_id, canonical, "
        "content_hash, leaf_hash) VALUES (%s, 'test', 'test', 1, %s, %s, %s)",
        (seq, canonical, digest, leaf if leaf is not None else hash_leaf(digest)),
    )


def _follows(conn: psycopg.Connection[Any]) -> list[str]:
    """Every seq that does not follow the one before it (dense and linked means none)."""
    broken: list[str] = []
    previous: tuple[int, bytes] | None = None
    for seq, canonical, leaf in conn.execute(
        "SELECT seq, canonical, leaf_hash FROM ledger_entries ORDER BY seq"
    ):
        expected_seq, expected_prev = (previous[0] + 1, previous[1].hex()) if previous else (0, "")
        if seq != expected_seq or f'"prev":"{expected_prev}"'.encode() not in bytes(canonical):
            broken.append(f"{seq}")
        previous = (int(seq), bytes(leaf))
    return broken


def test_an_insert_that_leaves_a_gap_is_refused(conn: psycopg.Connection[Any]) -> None:
    seq, leaf = _last(conn)
    with pytest.raises(psycopg.errors.CheckViolation, match=f"the next entry is {seq + 1}"):
        _insert(conn, seq + 2, prev=leaf)


def test_an_insert_with_a_wrong_prev_link_is_refused(conn: psycopg.Connection[Any]) -> None:
    seq, _ = _last(conn)
    with pytest.raises(psycopg.errors.CheckViolation, match="prev link"):
        _insert(conn, seq + 1, prev=b"\x11" * 32)


def test_an_insert_without_any_prev_link_is_refused(conn: psycopg.Connection[Any]) -> None:
    seq, _ = _last(conn)
    canonical = b'{"kind":"test","v":1}'
    digest = content_hash(canonical)
    with pytest.raises(psycopg.errors.CheckViolation, match="prev link"):
        conn.execute(
            "INSERT INTO ledger_entries (seq, kind, source_table, source_id, canonical, "
            "content_hash, leaf_hash) VALUES (%s, 'test', 'test', 1, %s, %s, %s)",
            (seq + 1, canonical, digest, hash_leaf(digest)),
        )


def test_an_insert_reusing_a_seq_is_refused(conn: psycopg.Connection[Any]) -> None:
    seq, _ = _last(conn)
    row = conn.execute("SELECT leaf_hash FROM ledger_entries WHERE seq = %s", (seq - 1,)).fetchone()
    prev = bytes(row[0]) if row else b""
    with pytest.raises(psycopg.errors.IntegrityError):
        _insert(conn, seq, prev=prev)


def test_a_leaf_hash_not_derived_from_the_content_hash_is_refused(
    conn: psycopg.Connection[Any],
) -> None:
    seq, leaf = _last(conn)
    with pytest.raises(psycopg.errors.CheckViolation, match="leaf hash"):
        _insert(conn, seq + 1, prev=leaf, leaf=b"\x22" * 32)


def test_a_well_formed_plain_insert_is_accepted(conn: psycopg.Connection[Any]) -> None:
    seq, leaf = _last(conn)
    _insert(conn, seq + 1, prev=leaf)
    assert _last(conn)[0] == seq + 1


def test_concurrent_appenders_keep_the_log_dense_and_linked(url: str) -> None:
    """Platform appends race plain INSERTs that read max(seq) without the ledger's lock;
    whatever the interleaving, every stored entry follows the one before it."""
    errors: list[BaseException] = []
    refused = [0]

    def platform(worker: int) -> None:
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                for n in range(15):
                    pair = [PendingEntry("test", "test", worker, None, {"n": n}),
                            PendingEntry("test", "test", worker, None, {"m": n})]  # fmt: skip
                    with conn.transaction():
                        append_entries(conn, pair)
        except BaseException as exc:
            errors.append(exc)

    def insider() -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            for _ in range(30):
                seq, leaf = _last(conn)
                try:
                    with conn.transaction():
                        _insert(conn, seq + 1, prev=leaf)
                except psycopg.errors.IntegrityError:
                    refused[0] += 1

    threads = [threading.Thread(target=platform, args=(w,)) for w in range(2)]
    threads.append(threading.Thread(target=insider))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    with psycopg.connect(url) as conn:
        assert _follows(conn) == []


@pytest.fixture
def own_database(stack_settings: Settings) -> Iterator[str]:
    """A migrated database of this test's own: the whole-log audit below must see only what
    the test wrote, not the other tests' deliberately tampered rows."""
    with migrated_database(stack_settings, f"density_{uuid.uuid4().hex[:8]}") as url:
        yield url


def test_the_anchorer_keeps_going_after_a_refused_gap(
    own_database: str, stack_settings: Settings
) -> None:
    url = own_database
    key = stack_settings.secret("anchorer_key")
    with psycopg.connect(url, autocommit=True) as conn:
        chain = ChainClient(stack_settings.resolved_chain_url())
        deployment = deploy_contract(conn, chain, key=key)
        chain = contract_chain(chain.url, address=deployment.address)
        with conn.transaction():
            append_entries(conn, [PendingEntry("test", "test", 7, None, {"n": 7})])
        anchorer = Anchorer(
            conninfo="", chain=chain, key=key, config=AnchorerConfig(batch_entries=1, batch_s=0)
        )
        assert anchorer.step(conn) == "anchored"
        seq, leaf = _last(conn)
        with pytest.raises(psycopg.errors.CheckViolation):
            _insert(conn, seq + 2, prev=leaf)  # committed at once if the database took it
        with conn.transaction():
            append_entries(conn, [PendingEntry("test", "test", 8, None, {"n": 8})])
        assert anchorer.step(conn) == "anchored"
        assert chain.head()[0] == seq + 2
        report = verify_log(conn, chain, sources=LEDGER_SOURCES)
        assert report.ok, report.render()

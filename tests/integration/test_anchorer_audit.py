"""The anchorer and the audit on the real database and the real Anvil.

Each test deploys its own contract and records it in the test database, appends alert
events through the alert store (so entries have real source rows), anchors them, and then
checks what `verify_log` / `verify_entry` and `liftledger audit verify` report: nothing when
untouched, and the exact seq when an entry is changed, deleted, swapped or inserted.
Tampering runs inside a transaction that is rolled back, with the append-only trigger
switched off in it, as an attacker with the table owner's rights would.
"""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from alerts.detector import AlertSignal
from alerts.store import apply_signal, record_in_ledger
from core.db import libpq_url
from core.faults import Severity, resolve_thresholds
from core.settings import Settings
from ledger.anchorer import Anchorer, AnchorerConfig
from ledger.chain import ChainClient
from ledger.deploy import contract_chain, deploy_contract
from ledger.entries import PendingEntry, append_entries, content_hash
from ledger.merkle import hash_leaf
from ledger.verify import verify_entry, verify_log
from liftledger.ledger_sources import LEDGER_SOURCES
from liftledger.stack.anvil import LocalAnvil, rpc_call
from tests.factories import add_elevator
from tests.integration.cli_helpers import REPO, clean_environment

T0 = dt.datetime(2026, 11, 28, 9, 0, tzinfo=dt.UTC)
PARKED = 10**12  # a seq far beyond the log, to move rows through


@pytest.fixture
def ledger(
    stack_settings: Settings, test_database_url: str
) -> Iterator[tuple[psycopg.Connection[Any], ChainClient, list[int]]]:
    """A fresh contract, 12 new committed alert events in the ledger; yields the connection,
    the chain client and the seqs of the new entries."""
    url = libpq_url(test_database_url)
    with psycopg.connect(url, autocommit=True) as conn:
        site, elevator = add_elevator(conn, prefix="au", site_name="Audit test")
        chain = ChainClient(stack_settings.resolved_chain_url())
        deployment = deploy_contract(conn, chain, key=stack_settings.secret("anchorer_key"))
        chain = contract_chain(chain.url, address=deployment.address)
        seqs: list[int] = []
        for n in range(12):
            kind = "raise" if n % 2 == 0 else "clear"
            signal_ = AlertSignal(elevator, site, "power_failure", kind, Severity.MAJOR,  # type: ignore[arg-type]
                                  T0 + dt.timedelta(minutes=n), {"n": n})  # fmt: skip
            with conn.transaction():
                event = apply_signal(conn, signal_, resolve_thresholds())
                assert event is not None
                record_in_ledger(conn, [event])
            row = conn.execute(
                "SELECT seq FROM ledger_entries WHERE source_id = %s", (event.event_id,)
            ).fetchone()
            assert row is not None
            seqs.append(int(row[0]))
    with psycopg.connect(url) as conn:
        yield conn, chain, seqs


@pytest.fixture
def anchorer_url(service_database_urls: dict[str, str]) -> str:
    """The anchorer's own database role, which the anchorer under test connects as."""
    return libpq_url(service_database_urls["anchorer"])


def _anchor_all(url: str, chain: ChainClient, key: str) -> None:
    anchorer = Anchorer(
        conninfo=url, chain=chain, key=key, config=AnchorerConfig(batch_entries=1, batch_s=0)
    )
    with psycopg.connect(url, autocommit=True) as conn:
        assert anchorer.step(conn) == "anchored"


def test_the_anchorer_anchors_the_log_and_the_audit_passes(
    ledger: tuple[psycopg.Connection[Any], ChainClient, list[int]],
    stack_settings: Settings,
    anchorer_url: str,
) -> None:
    conn, chain, seqs = ledger
    _anchor_all(anchorer_url, chain, stack_settings.secret("anchorer_key"))
    size, _ = chain.head()
    assert size == seqs[-1] + 1
    row = conn.execute(
        "SELECT status, block_number IS NOT NULL, previous_size FROM anchors "
        "WHERE contract_address = %s",
        (chain.address,),
    ).fetchall()
    assert row == [("confirmed", True, 0)]
    report = verify_log(conn, chain, sources=LEDGER_SOURCES)
    assert report.ok, report.render()
    assert report.anchored_size == size
    entry = verify_entry(conn, chain, seqs[5], sources=LEDGER_SOURCES)
    assert entry.ok, entry.render()
    assert entry.anchored_size == size


def _tampered(conn: psycopg.Connection[Any], *statements: tuple[str, tuple[Any, ...]]) -> None:
    conn.execute("ALTER TABLE ledger_entries DISABLE TRIGGER USER")
    for statement, params in statements:
        conn.execute(statement, params)


def _problems_after(
    conn: psycopg.Connection[Any], chain: ChainClient, *statements: tuple[str, tuple[Any, ...]]
) -> list[tuple[int | None, str]]:
    with conn.transaction(force_rollback=True):
        _tampered(conn, *statements)
        report = verify_log(conn, chain, sources=LEDGER_SOURCES)
    return [(p.seq, p.kind) for p in report.problems]


@pytest.fixture
def anchored(
    ledger: tuple[psycopg.Connection[Any], ChainClient, list[int]],
    stack_settings: Settings,
    anchorer_url: str,
) -> tuple[psycopg.Connection[Any], ChainClient, list[int]]:
    conn, chain, seqs = ledger
    _anchor_all(anchorer_url, chain, stack_settings.secret("anchorer_key"))
    return conn, chain, seqs


def test_a_changed_field_of_an_anchored_source_row_is_named(
    anchored: tuple[psycopg.Connection[Any], ChainClient, list[int]],
) -> None:
    conn, chain, seqs = anchored
    target = seqs[4]
    problems = _problems_after(
        conn,
        chain,
        (
            "UPDATE alert_events SET details = '{\"n\": 99}' WHERE id = "
            "(SELECT source_id FROM ledger_entries WHERE seq = %s)",
            (target,),
        ),
    )
    assert (target, "source_changed") in problems


def test_a_changed_entry_is_named(
    anchored: tuple[psycopg.Connection[Any], ChainClient, list[int]],
) -> None:
    conn, chain, seqs = anchored
    target = seqs[6]
    problems = _problems_after(
        conn,
        chain,
        (
            "UPDATE ledger_entries SET canonical = convert_to(replace(convert_from(canonical, "
            "'UTF8'), '\"major\"', '\"minor\"'), 'UTF8') WHERE seq = %s",
            (target,),
        ),
    )
    assert (target, "modified") in problems
    assert (None, "root_mismatch") in problems


def test_a_rewritten_entry_with_recomputed_hashes_is_named_by_the_next_link(
    anchored: tuple[psycopg.Connection[Any], ChainClient, list[int]],
) -> None:
    conn, chain, seqs = anchored
    target = seqs[6]
    row = conn.execute("SELECT canonical FROM ledger_entries WHERE seq = %s", (target,)).fetchone()
    assert row is not None
    forged = bytes(row[0]).replace(b'"major"', b'"minor"')
    digest = content_hash(forged)
    problems = _problems_after(
        conn,
        chain,
        (
            "UPDATE ledger_entries SET canonical = %s, content_hash = %s, leaf_hash = %s "
            "WHERE seq = %s",
            (forged, digest, hash_leaf(digest), target),
        ),
    )
    assert (target + 1, "out_of_order") in problems
    assert (None, "root_mismatch") in problems


def test_a_deleted_entry_is_named(
    anchored: tuple[psycopg.Connection[Any], ChainClient, list[int]],
) -> None:
    conn, chain, seqs = anchored
    target = seqs[3]
    problems = _problems_after(
        conn, chain, ("DELETE FROM ledger_entries WHERE seq = %s", (target,))
    )
    assert (target, "missing") in problems


def test_two_swapped_entries_are_named(
    anchored: tuple[psycopg.Connection[Any], ChainClient, list[int]],
) -> None:
    conn, chain, seqs = anchored
    a, b = seqs[2], seqs[8]
    problems = _problems_after(
        conn,
        chain,
        ("UPDATE ledger_entries SET seq = %s WHERE seq = %s", (PARKED, a)),
        ("UPDATE ledger_entries SET seq = %s WHERE seq = %s", (a, b)),
        ("UPDATE ledger_entries SET seq = %s WHERE seq = %s", (b, PARKED)),
    )
    assert (a, "out_of_order") in problems
    assert (b, "out_of_order") in problems
    assert (None, "root_mismatch") in problems


def test_an_entry_inserted_in_the_middle_is_named(
    anchored: tuple[psycopg.Connection[Any], ChainClient, list[int]],
) -> None:
    conn, chain, seqs = anchored
    at = seqs[5]
    problems = _problems_after(
        conn,
        chain,
        ("UPDATE ledger_entries SET seq = seq + %s WHERE seq >= %s", (PARKED, at)),
        ("UPDATE ledger_entries SET seq = seq - %s + 1 WHERE seq >= %s", (PARKED, PARKED)),
        (
            "INSERT INTO ledger_entries (seq, kind, source_table, source_id, canonical, "
            "content_hash, leaf_hash) SELECT %s, kind, source_table, source_id, canonical, "
            "content_hash, leaf_hash FROM ledger_entries WHERE seq = %s",
            (at, at - 1),
        ),
    )
    assert (at, "out_of_order") in problems
    assert (None, "root_mismatch") in problems


def test_audit_cli_needs_only_a_database_url_and_a_chain_url(
    anchored: tuple[psycopg.Connection[Any], ChainClient, list[int]],
    stack_settings: Settings,
    test_database_url: str,
) -> None:
    _, chain, seqs = anchored
    env = clean_environment()
    command = [
        sys.executable, "-m", "liftledger", "audit", "verify",
        "--database-url", test_database_url, "--chain-url", chain.url,
        "--contract", str(chain.address),
    ]  # fmt: skip
    whole = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, check=False)
    assert whole.returncode == 0, whole.stdout + whole.stderr
    assert "result: OK" in whole.stdout
    one = subprocess.run(
        [*command, "--entry", str(seqs[1])], env=env, cwd=REPO, capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    assert one.returncode == 0, one.stdout + one.stderr
    assert f"entry {seqs[1]}" in one.stdout


def test_anchorer_killed_before_the_receipt_anchors_the_batch_exactly_once(
    ledger: tuple[psycopg.Connection[Any], ChainClient, list[int]],
    stack_settings: Settings,
    test_database_url: str,
) -> None:
    conn, chain, seqs = ledger
    chain_url = stack_settings.resolved_chain_url()
    env = clean_environment(
        LIFTLEDGER_DATA_DIR=str(stack_settings.data_dir),
        LIFTLEDGER_DATABASE_URL=test_database_url,
    )
    command = [sys.executable, "-m", "liftledger", "anchorer", "--batch-seconds", "0"]
    conn.autocommit = True

    def anchor_rows() -> list[tuple[Any, ...]]:
        return conn.execute(
            "SELECT status, tx_hash, raw_tx FROM anchors WHERE contract_address = %s",
            (chain.address,),
        ).fetchall()

    rpc_call(chain_url, "evm_setAutomine", [False])  # signed and sent, never mined
    try:
        first = subprocess.Popen(command, env=env, cwd=REPO, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while not [r for r in anchor_rows() if r[0] == "sent"] and time.monotonic() < deadline:
            time.sleep(0.2)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        [(status, tx_hash, raw)] = anchor_rows()
        assert status == "sent"
    finally:
        rpc_call(chain_url, "evm_setAutomine", [True])
    rpc_call(chain_url, "evm_mine", [])  # the stored transaction is mined now
    second = subprocess.Popen(command, env=env, cwd=REPO, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while anchor_rows()[0][0] != "confirmed" and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(30)
    assert anchor_rows() == [("confirmed", tx_hash, raw)]
    assert [(e.tree_size, bytes(e.tx_hash)) for e in chain.anchored_events()] == [
        (seqs[-1] + 1, bytes(tx_hash))
    ]
    assert chain.head()[0] == seqs[-1] + 1


def test_entries_wait_while_the_chain_is_down_and_are_anchored_once_when_it_returns(
    ledger: tuple[psycopg.Connection[Any], ChainClient, list[int]],
    stack_settings: Settings,
    anchorer_url: str,
) -> None:
    if not stack_settings.local_chain:
        pytest.fail("this test stops and starts the local Anvil")
    conn, chain, seqs = ledger
    key = stack_settings.secret("anchorer_key")
    _anchor_all(anchorer_url, chain, key)
    first_size = seqs[-1] + 1
    anvil = LocalAnvil(stack_settings, REPO)
    stop = threading.Event()
    anchorer = Anchorer(
        conninfo=anchorer_url,
        chain=chain,
        key=key,
        config=AnchorerConfig(batch_entries=1, batch_s=0, poll_s=0.2, retry_s=0.5),
    )
    runner = threading.Thread(target=anchorer.run, args=(stop,), daemon=True)
    anvil.stop()
    try:
        # New entries while the chain is away: they wait, and nothing is signed for them.
        with conn.transaction():
            append_entries(
                conn, [PendingEntry("test", "test", n, None, {"n": n}) for n in range(5)]
            )
        runner.start()
        time.sleep(3.0)
        waiting = conn.execute(
            "SELECT count(*) FROM anchors WHERE contract_address = %s", (chain.address,)
        ).fetchone()
        assert waiting == (1,)
    finally:
        anvil.start()
    try:
        deadline = time.monotonic() + 60
        while chain.head()[0] <= first_size and time.monotonic() < deadline:
            time.sleep(0.3)
    finally:
        stop.set()
        runner.join(30)
    total = conn.execute("SELECT max(seq) + 1 FROM ledger_entries").fetchone()
    assert total is not None
    assert chain.head()[0] == total[0]
    statuses = conn.execute(
        "SELECT status FROM anchors WHERE contract_address = %s ORDER BY id", (chain.address,)
    ).fetchall()
    assert statuses == [("confirmed",), ("confirmed",)]
    assert [e.tree_size for e in chain.anchored_events()] == [first_size, total[0]]
    conn.rollback()
    assert verify_log(conn, chain, sources=LEDGER_SOURCES).ok

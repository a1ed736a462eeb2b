"""Ledger benchmark (SPEC §7): gas per anchor, gas per record, proof time, audit throughput.

    .venv/bin/python -m bench.ledger --audit-entries 100000

1. Gas: a fresh anchor contract on the local Anvil; anchors of 1,000-entry batches at log
   sizes 1 k, 100 k and 1 M (an in-memory log of synthetic leaves, consistency proofs checked
   on chain), plus the worst proof lengths near 1 M. Targets: ≤ 100 k gas per anchor at any
   size, ≤ 100 gas per record at 1,000-record batches.
2. One entry's proof, server side (chain call excluded): recompute the entry's hashes, build
   its inclusion proof from the cached log and verify it, for 1,000 random entries of the
   1 M log. Target ≤ 5 ms.
3. Whole-log audit: N alert events with their ledger entries in a fresh database, anchored,
   then `verify_log` (hashes, prev links, source rows, each alert re-derived from its events,
   orphans, back-dating, every anchored root). Target ≥ 20,000 entries/s.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import statistics
import time
from collections.abc import Sequence
from typing import Any

import psycopg
from eth_account import Account

from bench.common import fresh_database, parse_options
from core.db import libpq_url
from core.settings import Settings, load_settings
from ledger.anchorer import Anchorer, AnchorerConfig
from ledger.chain import ChainClient
from ledger.chain_protocol import wait_for_receipt
from ledger.deploy import contract_chain, deploy_contract
from ledger.entries import PendingEntry, append_entries, content_hash
from ledger.merkle import MerkleLog, hash_leaf, verify_inclusion
from ledger.verify import verify_log
from liftledger.ledger_sources import LEDGER_SOURCES

BATCH = 1000


def _anchor(chain: ChainClient, key: str, log: MerkleLog, old: int, new: int) -> int:
    proof = log.consistency_proof(old, new) if old else []
    sender = Account.from_key(key).address
    signed = chain.sign_anchor(key, size=new, root=log.root(new), proof=proof,
                               nonce=chain.nonce(sender))  # fmt: skip
    chain.send_raw(signed.raw, signed.tx_hash)
    receipt = wait_for_receipt(chain, signed.tx_hash, 60)
    if not receipt.succeeded:
        raise SystemExit(f"anchor {old} → {new} reverted")
    return int(receipt.gas_used)


def gas(settings: Settings, database_url: str, leaves: int) -> None:
    """Gas per anchor of 1,000-entry batches at growing log sizes."""
    key = settings.secret("anchorer_key")
    print(f"building an in-memory log of {leaves:,} leaves…", flush=True)
    started = time.perf_counter()
    log = MerkleLog([hash_leaf(i.to_bytes(8, "big")) for i in range(leaves)])
    print(f"  built in {time.perf_counter() - started:.1f} s")
    with psycopg.connect(database_url, autocommit=True) as conn:
        deployment = deploy_contract(conn, ChainClient(settings.resolved_chain_url()), key=key)
    chain = contract_chain(settings.resolved_chain_url(), address=deployment.address)
    first = _anchor(chain, key, log, 0, BATCH)
    print(f"first anchor (size {BATCH:,}, no proof): {first:,} gas")
    print(f"{'log size':>12} {'batch':>7} {'proof':>6} {'gas':>9} {'gas/record':>11}")
    worst = 0
    head = BATCH
    # 1,000-entry batches ending at ~1 k, 100 k and 1 M; 999,999 has many set bits, which
    # makes for one of the longest consistency proofs near a million.
    sizes = {2 * BATCH, 100_000, 524_287 + BATCH, leaves - 1, leaves}
    for size in sorted(s for s in sizes if BATCH < s <= leaves):
        old = max(head, size - BATCH)
        if old > head:
            _anchor(chain, key, log, head, old)
        used = _anchor(chain, key, log, old, size)
        head = size
        proof = len(log.consistency_proof(old, size))
        worst = max(worst, used)
        print(f"{size:>12,} {size - old:>7,} {proof:>6} {used:>9,} {used / (size - old):>11.1f}")
    verdict = "met" if worst <= 100_000 else "NOT met"
    print(f"largest anchor: {worst:,} gas; target ≤ 100,000: {verdict}")


def proof_time(leaves: int, samples: int) -> None:
    """Server-side time to prove one entry against a cached log of `leaves` entries."""
    entries = [json.dumps({"v": 1, "seq": i, "salt": "00" * 16}).encode() for i in range(leaves)]
    log = MerkleLog([hash_leaf(content_hash(e)) for e in entries])
    root = log.root()
    rng = random.Random(2)
    times_ms = []
    for _ in range(samples):
        seq = rng.randrange(leaves)
        started = time.perf_counter()
        leaf = hash_leaf(content_hash(entries[seq]))
        proof = log.inclusion_proof(seq)
        ok = verify_inclusion(seq, leaves, leaf, proof, root)
        times_ms.append((time.perf_counter() - started) * 1000)
        if not ok:
            raise SystemExit(f"the proof of entry {seq} does not verify")
    cuts = statistics.quantiles(times_ms, n=100)
    print(f"one entry's proof at {leaves:,} entries: mean {statistics.fmean(times_ms):.3f} ms, "
          f"p99 {cuts[98]:.3f} ms, max {max(times_ms):.3f} ms; target ≤ 5 ms")  # fmt: skip


def _fresh_database(settings: Settings) -> str:
    return fresh_database(settings, "ledger_bench")


def _alert_events(conn: psycopg.Connection[Any], count: int) -> list[PendingEntry]:
    conn.execute("INSERT INTO sites (id, name) VALUES ('bench', 'Bench')")
    conn.execute(
        "INSERT INTO elevators (id, site_id, building, lowest_floor, highest_floor, "
        "rated_speed_mps, rated_load_kg) SELECT 'bench-' || n, 'bench', 'B', 1, 12, 1.75, 1000 "
        "FROM generate_series(1, %s) n",
        (count,),
    )
    t0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    conn.execute(
        "INSERT INTO alerts (elevator_id, site_id, type, severity, status, condition, opened_at, "
        "last_active_at) SELECT 'bench-' || n, 'bench', 'power_failure', 'major', "
        "'open', 'active', %s + n * interval '1 minute', %s FROM generate_series(1, %s) n",
        (t0, t0, count),
    )
    rows = conn.execute(
        "INSERT INTO alert_events (alert_id, time, kind, details) "
        "SELECT id, opened_at, 'opened', jsonb_build_object('power', 'battery') FROM alerts "
        "ORDER BY id RETURNING id, alert_id, time, "
        "(SELECT elevator_id FROM alerts a WHERE a.id = alert_id)"
    ).fetchall()
    return [
        PendingEntry(
            "alert_event",
            "alert_events",
            event_id,
            elevator,
            {
                "alert_event_id": event_id,
                "alert_id": alert_id,
                "event": "opened",
                "time": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "elevator": elevator,
                "site": "bench",
                "type": "power_failure",
                "severity": "major",
                "actor_user_id": None,
                "details": {"power": "battery"},
            },
        )
        for event_id, alert_id, at, elevator in rows
    ]


def audit(settings: Settings, count: int) -> None:
    """Whole-log audit throughput over `count` real alert-event entries."""
    url = libpq_url(_fresh_database(settings))
    key = settings.secret("anchorer_key")
    print(f"writing {count:,} alert events and their ledger entries…", flush=True)
    with psycopg.connect(url) as conn:
        pending = _alert_events(conn, count)
        for start in range(0, len(pending), 5000):
            append_entries(conn, pending[start : start + 5000])
        conn.commit()
        conn.autocommit = True
        deployment = deploy_contract(conn, ChainClient(settings.resolved_chain_url()), key=key)
        chain = contract_chain(settings.resolved_chain_url(), address=deployment.address)
        anchorer = Anchorer(conninfo=url, chain=chain, key=key,
                            config=AnchorerConfig(batch_entries=1, batch_s=0))  # fmt: skip
        anchorer.step(conn)
        conn.autocommit = False
        started = time.perf_counter()
        report = verify_log(conn, chain, sources=LEDGER_SOURCES)
        elapsed = time.perf_counter() - started
    rate = report.entries / elapsed
    print(f"whole-log audit: {report.entries:,} entries in {elapsed:.2f} s = {rate:,.0f} entries/s "
          f"({'OK' if report.ok else 'FAILED'}); target ≥ 20,000/s")  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    """Run the three measurements."""
    args = parse_options("ledger", __doc__, argv, log_size=1_000_000, audit_entries=100_000,
                         proofs=1000)  # fmt: skip
    settings = load_settings()
    database_url = libpq_url(_fresh_database(settings))
    gas(settings, database_url, args.log_size)
    proof_time(args.log_size, args.proofs)
    audit(settings, args.audit_entries)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""API benchmark, part 2: `liftledger api` under 50 concurrent clients, and one proof in process.

A fresh database `<name>_api_http` holds alerts and their `opened` events, every event in the
ledger and anchored on the local Anvil in 1,000-entry batches. Clients in closed loops request
`GET /api/v1/alerts?limit=50` and `GET /api/v1/audit/entries/{seq}`. Run through
`python -m bench.api --part http` (see `bench.api`).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import http.client
import json
import math
import os
import random
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
from psycopg.types.json import Jsonb

from alerts.entries import alert_event_entry
from alerts.store import AlertEventRecord
from bench.common import fresh_database, percentiles, register_fleet
from core.db import libpq_url
from core.faults import FAULT_TYPES
from core.settings import Settings
from ledger.anchorer import Anchorer, AnchorerConfig
from ledger.chain import ChainClient
from ledger.deploy import contract_chain, deploy_contract
from ledger.entries import append_entries
from ledger.view import LedgerView
from liftledger.ledger_sources import LEDGER_SOURCES

REPO = Path(__file__).resolve().parents[1]
DAY_S = 86_400
HTTP_TARGET_MS = 50.0
ANCHOR_BATCH = 1000
SERVER_START_TIMEOUT_S = 60.0


def _seed_alerts(conn: psycopg.Connection[Any], elevators: list[str], count: int) -> None:
    """`count` alerts over the last 30 days; only the newest can still be unresolved, and
    never two of one elevator and type (the schema's partial unique index)."""
    rng = random.Random(5)
    site_of = dict(conn.execute("SELECT id, site_id FROM elevators").fetchall())
    now = dt.datetime.now(dt.UTC)
    times = sorted(now - dt.timedelta(seconds=rng.uniform(60, 30 * DAY_S)) for _ in range(count))
    unresolved: set[tuple[str, str]] = set()
    rows = []
    for n, opened in enumerate(times):
        elevator, fault = rng.choice(elevators), rng.choice(FAULT_TYPES)
        open_ = count - n <= count // 20 and (elevator, fault.name) not in unresolved
        status = (
            rng.choice(["open", "acknowledged", "on_site"])
            if open_
            else "false_alarm"
            if rng.random() < 0.1
            else "resolved"
        )
        if open_:
            unresolved.add((elevator, fault.name))
        cleared = None if open_ else opened + dt.timedelta(seconds=rng.uniform(30, 3600))
        acked = None if status == "open" else opened + dt.timedelta(seconds=rng.uniform(30, 300))
        on_site = None
        if acked and status in ("on_site", "resolved"):
            on_site = acked + dt.timedelta(minutes=12)
        closed = None
        if status in ("resolved", "false_alarm"):
            closed = max(filter(None, (cleared, acked, on_site))) + dt.timedelta(minutes=5)
        rows.append((elevator, site_of[elevator], fault.name, fault.severity.value,
                     "active" if open_ else "cleared", status, opened, cleared or opened,
                     cleared, acked, on_site, closed))  # fmt: skip
    with conn.cursor().copy(
        "COPY alerts (elevator_id, site_id, type, severity, condition, status, opened_at, "
        "last_active_at, cleared_at, acknowledged_at, on_site_at, closed_at) FROM STDIN"
    ) as copy:
        for row in rows:
            copy.write_row(row)


def _seed_ledger(conn: psycopg.Connection[Any], chain: ChainClient, key: str) -> int:
    """An `opened` event per alert, each in the ledger, anchored in 1,000-entry batches."""
    events = [
        AlertEventRecord(
            event_id=r[0],
            alert_id=r[1],
            kind="opened",
            time=r[2],
            elevator_id=r[3],
            site_id=r[4],
            type=r[5],
            severity=r[6],
            actor_user_id=None,
            details={"source": "bench"},
        )
        for r in conn.execute(
            "WITH e AS (INSERT INTO alert_events (alert_id, time, kind, details) "
            "SELECT id, opened_at, 'opened', %s FROM alerts ORDER BY id "
            "RETURNING id, alert_id, time) "
            "SELECT e.id, e.alert_id, e.time, a.elevator_id, a.site_id, a.type, a.severity "
            "FROM e JOIN alerts a ON a.id = e.alert_id ORDER BY e.id",
            (Jsonb({"source": "bench"}),),
        )
    ]
    conn.commit()
    anchorer = Anchorer(
        conninfo="", chain=chain, key=key, config=AnchorerConfig(batch_entries=1, batch_s=0)
    )
    for start in range(0, len(events), ANCHOR_BATCH):
        append_entries(conn, [alert_event_entry(e) for e in events[start : start + ANCHOR_BATCH]])
        conn.commit()
        conn.autocommit = True
        if anchorer.step(conn) != "anchored":
            raise SystemExit(f"anchoring up to entry {start + ANCHOR_BATCH} failed")
        conn.autocommit = False
    return len(events)


def _http_database(settings: Settings, elevators: int, alerts: int) -> tuple[str, int, str]:
    """A fresh database with alerts and an anchored ledger: URL, entries, contract address."""
    url = libpq_url(fresh_database(settings, "api_http"))
    ids = register_fleet(url, elevators)
    key = settings.secret("anchorer_key")
    with psycopg.connect(url) as conn:
        _seed_alerts(conn, ids, alerts)
        conn.commit()
        conn.autocommit = True
        chain = ChainClient(settings.resolved_chain_url())
        deployment = deploy_contract(conn, chain, key=key)
        conn.autocommit = False
        chain = contract_chain(chain.url, address=deployment.address)
        entries = _seed_ledger(conn, chain, key)
    # A database in service has its statistics and visibility maps; a freshly loaded one
    # would get them from autovacuum in the middle of the timed requests.
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE)")
    return url, entries, deployment.address


class _CountingChain(ChainClient):
    """The chain client, counting the reads a proof makes; the chain id from memory if asked."""

    def __init__(self, url: str, *, contract_address: str, remember_chain_id: bool) -> None:
        super().__init__(url, contract_address=contract_address)
        self.reads = 0
        self._known_chain_id = super().chain_id() if remember_chain_id else None

    def chain_id(self) -> int:
        if self._known_chain_id is not None:
            return self._known_chain_id
        if self._chain_id is None:  # the client asks the chain only once
            self.reads += 1
        return super().chain_id()

    def root_at(self, size: int) -> bytes | None:
        self.reads += 1
        return super().root_at(size)

    def anchored_events(self, from_block: int = 0) -> list[Any]:
        self.reads += 1
        return super().anchored_events(from_block)


def _proof_time(url: str, chain: _CountingChain, entries: int, samples: int) -> str:
    """Mean and p99 of one entry's proof through `LedgerView`, the API's path, in process."""
    view = LedgerView(chain, sources=LEDGER_SOURCES, chain_id=chain.chain_id())
    rng = random.Random(13)
    times_ms: list[float] = []
    with psycopg.connect(url, autocommit=True) as conn:
        for seq in range(0, entries, ANCHOR_BATCH):  # the view caches every anchor's root
            view.verify_entry(conn, seq)
        chain.reads = 0
        for _ in range(samples):
            seq = rng.randrange(entries)
            started = time.perf_counter()
            report = view.verify_entry(conn, seq)
            times_ms.append((time.perf_counter() - started) * 1000)
            if not report.ok:
                raise SystemExit(f"entry {seq} does not verify: {report.render()}")
    p99 = percentiles(times_ms)[2]
    return (
        f"mean {statistics.fmean(times_ms):.2f} ms, p99 {p99:.2f} ms, "
        f"{chain.reads / samples:.2f} chain reads per proof"
    )


def _cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "liftledger", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"liftledger {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def _bearer_token(env: dict[str, str], folder: Path) -> str:
    password = folder / "password"
    password.write_text(secrets.token_urlsafe(24))
    password.chmod(0o600)
    _cli(
        env,
        "users",
        "add",
        "bench-supervisor",
        "--role",
        "supervisor",
        "--password-file",
        str(password),
    )
    return _cli(env, "token", "bench-supervisor").strip().splitlines()[-1]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _healthy(port: int) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", "/healthz")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def _start_api(
    env: dict[str, str], port: int, workers: int | None, log: Path
) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "liftledger", "api", "--host", "127.0.0.1"]
    command += ["--port", str(port)]
    if workers is not None:
        command += ["--workers", str(workers)]
    with log.open("wb") as out:
        server = subprocess.Popen(command, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while not _healthy(port):
        if server.poll() is not None or time.monotonic() > deadline:
            _stop(server)
            raise SystemExit(f"the API did not answer /healthz (log: {log})")
        time.sleep(0.2)
    return server


def _stop(server: subprocess.Popen[bytes]) -> None:
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


@dataclass(frozen=True, slots=True)
class LoadResult:
    """Latencies of the successful requests of one timed run, and what else happened."""

    latencies_ms: list[float]
    errors: dict[str, int]
    wall_s: float
    client_cpu_s: float
    sample: Any


async def _client(
    session: aiohttp.ClientSession,
    paths: Iterator[str],
    *,
    think_s: float,
    expect: bytes,
    latencies_ms: list[float],
    errors: dict[str, int],
    bodies: list[bytes],
) -> None:
    # Pauses of 0.5 to 1.5 times the think time, the first one before the first request, so
    # that clients do not march in step and arrive in bursts.
    pauses = random.Random()
    if think_s:
        await asyncio.sleep(pauses.uniform(0, think_s))
    for path in paths:
        started = time.perf_counter()
        async with session.get(path) as response:
            body = await response.read()
        elapsed_ms = (time.perf_counter() - started) * 1000
        if response.status != 200:
            errors[str(response.status)] = errors.get(str(response.status), 0) + 1
        elif expect not in body:  # an answer without the expected content is an error too
            errors["body"] = errors.get("body", 0) + 1
        else:
            latencies_ms.append(elapsed_ms)
            if not bodies:
                bodies.append(body)
        if think_s:
            await asyncio.sleep(pauses.uniform(0.5, 1.5) * think_s)


async def _load(
    base: str,
    token: str,
    path_of: Callable[[int], str],
    *,
    expect: bytes,
    clients: int,
    requests: int,
    warmup: int,
    think_s: float,
) -> LoadResult:
    connector = aiohttp.TCPConnector(limit=clients, force_close=False)
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(base, headers=headers, connector=connector) as session:

        async def run(count: int) -> tuple[list[float], dict[str, int], list[bytes]]:
            paths = (path_of(n) for n in range(count))  # one shared queue for every client
            latencies: list[float] = []
            errors: dict[str, int] = {}
            bodies: list[bytes] = []
            await asyncio.gather(
                *(
                    _client(
                        session,
                        paths,
                        think_s=think_s,
                        expect=expect,
                        latencies_ms=latencies,
                        errors=errors,
                        bodies=bodies,
                    )
                    for _ in range(clients)
                )
            )
            return latencies, errors, bodies

        await run(warmup)
        cpu, started = time.process_time(), time.perf_counter()
        latencies, errors, bodies = await run(requests)
        wall_s, cpu_s = time.perf_counter() - started, time.process_time() - cpu
    sample = json.loads(bodies[0]) if bodies else None
    return LoadResult(latencies, errors, wall_s, cpu_s, sample)


def _shape(sample: Any) -> str:
    if isinstance(sample, dict):
        if "verified" in sample:
            return f"{{seq, …, verified: {sample['verified']}, problems: {sample.get('problems')}}}"
        return "{" + ", ".join(list(sample)[:8]) + (", …}" if len(sample) > 8 else "}")
    if isinstance(sample, list):
        return f"[{len(sample)} items]"
    return type(sample).__name__


def _report(label: str, result: LoadResult) -> float:
    count = len(result.latencies_ms) + sum(result.errors.values())
    errors = sum(result.errors.values())
    detail = ", ".join(f"{n} x {code}" for code, n in sorted(result.errors.items()))
    if len(result.latencies_ms) < 2:
        print(f"{label:<34} {count:>6,} requests, {errors} errors ({detail})")
        return math.inf
    p50, p95, p99, worst = percentiles(result.latencies_ms)
    print(
        f"{label:<34} {count:>6,} {errors:>6} {count / result.wall_s:>8.0f} {p50:>7.1f} "
        f"{p95:>7.1f} {p99:>7.1f} {worst:>7.1f} {p99 / HTTP_TARGET_MS:>7.2f}"
        f"{f'  errors: {detail}' if detail else ''}"
    )
    print(
        f"{'':<34} load generator CPU {result.client_cpu_s / result.wall_s:.0%} of one core; "
        f"response {_shape(result.sample)}"
    )
    return p99


def http_latency(settings: Settings, args: argparse.Namespace) -> None:
    """p99 of the alert list and the entry proof at `args.clients` concurrent clients."""
    print(
        f"seeding {args.alerts:,} alerts with their ledger entries, anchored on the local chain…",
        flush=True,
    )
    started = time.perf_counter()
    url, entries, address = _http_database(settings, args.http_elevators, args.alerts)
    print(
        f"  seeded in {time.perf_counter() - started:.1f} s "
        f"({entries // ANCHOR_BATCH + (entries % ANCHOR_BATCH > 0)} anchors)"
    )
    for remember, how in ((False, "as the API makes it"), (True, "chain id from memory")):
        chain = _CountingChain(
            settings.resolved_chain_url(), contract_address=address, remember_chain_id=remember
        )
        print(
            f"one entry's proof in process (LedgerView.verify_entry, {how}): "
            f"{_proof_time(url, chain, entries, args.proofs)}; target ≤ 5 ms"
        )
    env = {k: v for k, v in os.environ.items() if k != "LIFTLEDGER_DATABASE_URL"}
    env["LIFTLEDGER_DATABASE_URL"] = url
    env["LIFTLEDGER_CONTRACT_ADDRESS"] = address  # the API serves proofs of this contract only
    port = _free_port()
    logs = Path(os.environ.get("TMPDIR", "/tmp"))  # noqa: S108 - the server log of a failing run
    with tempfile.TemporaryDirectory() as folder:
        token = _bearer_token(env, Path(folder))
    server = _start_api(env, port, args.workers, logs / "bench-api-server.log")
    rng = random.Random(11)
    # (label, path of the n-th request, bytes every good answer contains)
    endpoints: list[tuple[str, Callable[[int], str], bytes]] = [
        ("GET /api/v1/alerts?limit=50", lambda n: "/api/v1/alerts?limit=50", b'"items":[{'),
        (
            "GET /api/v1/audit/entries/{seq}",
            lambda n: f"/api/v1/audit/entries/{rng.randrange(entries)}",
            b'"verified":true',
        ),
    ]
    workers = args.workers if args.workers is not None else "default"
    print(
        f"API on 127.0.0.1:{port}, workers: {workers}; {args.clients} clients in closed loops, "
        f"think time {args.think_ms:g} ms, {args.warmup_requests:,} warm-up then "
        f"{args.requests:,} timed requests per endpoint"
    )
    print(
        "caveat: the load generator and the server share the machine's "
        f"{os.cpu_count()} cores: latencies are upper bounds, throughput a lower bound"
    )
    print(
        f"{'endpoint':<34} {'count':>6} {'errors':>6} {'req/s':>8} {'p50':>7} {'p95':>7} "
        f"{'p99':>7} {'max':>7} {'p99/50ms':>7}   (ms)"
    )
    worst = 0.0
    try:
        for label, path_of, expect in endpoints:
            result = asyncio.run(
                _load(
                    f"http://127.0.0.1:{port}",
                    token,
                    path_of,
                    expect=expect,
                    clients=args.clients,
                    requests=args.requests,
                    warmup=args.warmup_requests,
                    think_s=args.think_ms / 1000,
                )
            )
            worst = max(worst, _report(label, result))
    finally:
        _stop(server)
    verdict = "met" if worst <= HTTP_TARGET_MS else "NOT met"
    print(f"worst p99 {worst:.1f} ms; target ≤ {HTTP_TARGET_MS:.0f} ms: {verdict}")

"""`liftledger collector` on the real broker and database: nothing lost, nothing twice.

Each test publishes through one MQTT identity per test elevator while a collector process
runs against the session's test database, disturbs it (SIGKILL, a 30 s database outage, a
broker restart) and then checks that exactly the published messages are stored, once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
import threading
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from core.db import libpq_url
from core.protocol import topic_for
from core.registry import ParsedRegistry, upsert_registry
from core.settings import Settings
from liftledger.stack import local_postgres
from liftledger.stack.mosquitto import LocalMosquitto
from simulators.bad_input import bad_message
from simulators.publisher import FleetPublisher
from tests.factories import sample_payload
from tests.integration.broker_accounts import broker_devices, identities
from tests.integration.collector_process import CollectorProcess

SITES = ("itest-a", "itest-b", "itest-c", "itest-d")
DEVICES = [(SITES[n % len(SITES)], f"itest-{n:03d}") for n in range(100)]
GHOSTS = [("itest-a", f"itest-ghost-{n}") for n in range(5)]  # broker accounts, not registered
PER_DEVICE = 1000  # 100 devices x 1,000 = 100,000 messages
WAIT_S = 180.0
DISTURBED_PUBLISH_S = 25.0  # publishing still runs when the disturbance comes


def _sample(boot: str, seq: int) -> bytes:
    return sample_payload(boot=boot, seq=seq, vib_mg=1.5, motor_c=30.0, brake_c=28.0, level_mm=0.0)


@pytest.fixture(scope="module")
def ingest(stack_settings: Settings, test_database_url: str, engine: Engine) -> Iterator[str]:
    """Test elevators registered in the test database and the broker."""
    registry = ParsedRegistry()
    for site in SITES:
        registry.sites[site] = {"id": site, "name": site, "district": None}
    for site, elevator in DEVICES:
        registry.elevators.append(
            {
                "id": elevator,
                "site_id": site,
                "building": elevator,
                "lowest_floor": 1,
                "highest_floor": 6,
                "rated_speed_mps": 1.0,
                "rated_load_kg": 630.0,
                "registration_code": None,
                "manufacturer": None,
                "installed_on": None,
                "thresholds": {},
            }
        )
    with psycopg.connect(libpq_url(test_database_url)) as conn:
        upsert_registry(conn, registry)
    with broker_devices(stack_settings, [*DEVICES, *GHOSTS]):
        yield test_database_url


@pytest.fixture
def collector(stack_settings: Settings, ingest: str) -> Iterator[CollectorProcess]:
    process = CollectorProcess(
        stack_settings, ingest, f"test-collector-{uuid.uuid4().hex[:8]}", sites=SITES
    )
    process.open_session()
    yield process
    process.stop()
    process.discard_session()


class Publisher(threading.Thread):
    """Publishes `per_device` samples for every device from a background thread."""

    def __init__(
        self,
        settings: Settings,
        boot: str,
        per_device: int = PER_DEVICE,
        *,
        spread_over_s: float = 0.0,
    ) -> None:
        super().__init__(daemon=True)
        self.settings = settings
        self.boot = boot
        self.per_device = per_device
        # Publishing at a steady pace over this long keeps it going while a test disturbs
        # the collector, however fast the collector starts.
        self.spread_over_s = spread_over_s
        self.error: BaseException | None = None
        self.refused = 0

    def run(self) -> None:
        try:
            fleet = FleetPublisher(
                mqtt_url=self.settings.resolved_mqtt_url(),
                devices=identities(self.settings, DEVICES),
            )
            with fleet:
                fleet.start()
                fleet.wait_connected(WAIT_S)
                started = time.monotonic()
                for seq in range(self.per_device):
                    for _, elevator in DEVICES:
                        fleet.publish(elevator, "telemetry", _sample(self.boot, seq))
                    fleet.pump(0.0)
                    due = started + (seq + 1) * self.spread_over_s / self.per_device
                    while time.monotonic() < due:
                        fleet.pump(due - time.monotonic())
                if not fleet.flush(WAIT_S):
                    raise TimeoutError("publisher could not flush")
                self.refused = fleet.stats().refused
        except BaseException as exc:
            self.error = exc


def _counts(engine: Engine, boot: str) -> tuple[int, int]:
    with engine.connect() as connection:
        row = connection.execute(
            sa.text(
                "SELECT count(*), count(DISTINCT (elevator_id, boot, seq)) FROM telemetry "
                "WHERE boot = :boot"
            ),
            {"boot": boot},
        ).one()
    return int(row[0]), int(row[1])


def _wait_rows(engine: Engine, boot: str, at_least: int, timeout_s: float = WAIT_S) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        rows, _ = _counts(engine, boot)
        if rows >= at_least:
            return rows
        time.sleep(0.2)
    return _counts(engine, boot)[0]


def _assert_exactly_once(engine: Engine, boot: str, publisher: Publisher) -> None:
    publisher.join(WAIT_S)
    assert publisher.error is None, repr(publisher.error)
    assert publisher.refused == 0
    expected = len(DEVICES) * publisher.per_device
    _wait_rows(engine, boot, expected)
    time.sleep(1.0)  # anything late (a duplicate) would land now
    rows, distinct = _counts(engine, boot)
    assert (rows, distinct) == (expected, expected)


def test_every_message_is_stored_exactly_once(
    collector: CollectorProcess, engine: Engine, stack_settings: Settings
) -> None:
    boot = f"plain-{uuid.uuid4().hex[:6]}"
    collector.start()
    publisher = Publisher(stack_settings, boot)
    publisher.start()
    _assert_exactly_once(engine, boot, publisher)
    assert collector.alive()


def test_sigkill_mid_stream_loses_and_duplicates_nothing(
    collector: CollectorProcess, engine: Engine, stack_settings: Settings
) -> None:
    boot = f"kill-{uuid.uuid4().hex[:6]}"
    collector.start()
    publisher = Publisher(stack_settings, boot, spread_over_s=DISTURBED_PUBLISH_S)
    publisher.start()
    assert _wait_rows(engine, boot, 20_000) >= 20_000
    assert publisher.is_alive(), "publishing ended before the disturbance"
    collector.kill()
    killed_at, _ = _counts(engine, boot)
    assert killed_at < len(DEVICES) * PER_DEVICE, "the kill came too late to test anything"
    time.sleep(2.0)
    collector.start()
    _assert_exactly_once(engine, boot, publisher)


def test_database_down_for_30_s_loses_and_duplicates_nothing(
    collector: CollectorProcess, engine: Engine, stack_settings: Settings
) -> None:
    if not stack_settings.local_database:
        pytest.fail("this test stops and starts the local database")
    boot = f"dbdown-{uuid.uuid4().hex[:6]}"
    collector.start()
    publisher = Publisher(stack_settings, boot, spread_over_s=DISTURBED_PUBLISH_S)
    publisher.start()
    assert _wait_rows(engine, boot, 20_000) >= 20_000
    assert publisher.is_alive(), "publishing ended before the disturbance"
    database = local_postgres(stack_settings)
    database.stop()
    try:
        time.sleep(30.0)
        assert collector.alive(), "the collector exited while the database was down"
    finally:
        database.start()
    engine.dispose()
    _assert_exactly_once(engine, boot, publisher)
    assert collector.alive()


def test_broker_restart_loses_and_duplicates_nothing(
    collector: CollectorProcess, engine: Engine, stack_settings: Settings
) -> None:
    if not stack_settings.local_mqtt:
        pytest.fail("this test restarts the local broker")
    boot = f"brokerdown-{uuid.uuid4().hex[:6]}"
    collector.start()
    publisher = Publisher(stack_settings, boot, spread_over_s=DISTURBED_PUBLISH_S)
    publisher.start()
    assert _wait_rows(engine, boot, 20_000) >= 20_000
    assert publisher.is_alive(), "publishing ended before the disturbance"
    broker = LocalMosquitto(stack_settings)
    assert broker.stop()
    time.sleep(2.0)
    broker.start()
    _assert_exactly_once(engine, boot, publisher)
    assert collector.alive()


def test_two_partitioned_collectors_keep_per_elevator_order(
    stack_settings: Settings, ingest: str, engine: Engine
) -> None:
    boot = f"scale-{uuid.uuid4().hex[:6]}"
    collectors = [
        CollectorProcess(
            stack_settings,
            ingest,
            f"test-part-{k}-{uuid.uuid4().hex[:6]}",
            sites=SITES,
            partition=(k, 2),
        )
        for k in range(2)
    ]
    try:
        for process in collectors:
            process.open_session()
            process.start()
        publisher = Publisher(stack_settings, boot, per_device=200)
        publisher.start()
        _assert_exactly_once(engine, boot, publisher)
        with engine.connect() as connection:
            out_of_order = connection.execute(
                sa.text(
                    "SELECT count(*) FROM (SELECT seq, lag(seq) OVER "
                    "(PARTITION BY elevator_id ORDER BY received_at, seq) AS previous "
                    "FROM telemetry WHERE boot = :boot) t WHERE previous > seq"
                ),
                {"boot": boot},
            ).scalar()
        assert out_of_order == 0
    finally:
        for process in collectors:
            process.stop()
            process.discard_session()


def test_fuzzed_input_is_dead_lettered_and_good_input_stored(
    collector: CollectorProcess, engine: Engine, stack_settings: Settings
) -> None:
    boot = f"fuzz-{uuid.uuid4().hex[:6]}"
    rng = random.Random(20261128)
    now = dt.datetime.now(dt.UTC)
    per_kind = {
        "malformed_json": 2500,
        "wrong_type": 2500,
        "out_of_range": 2500,
        "future_timestamp": 2500,
        "random_bytes": 2500,
        "oversized": 100,
    }
    plan: list[tuple[str, str, bytes]] = []  # (elevator, kind, payload)
    good: list[tuple[str, bytes]] = []
    for kind, count in per_kind.items():
        for _ in range(count):
            site, elevator = rng.choice(DEVICES)
            bad = bad_message(kind, site=site, elevator=elevator, now=now, rng=rng)
            plan.append((elevator, kind, bad.payload))
    for _, elevator in GHOSTS:
        for seq in range(200):
            plan.append((elevator, "unknown_elevator", _sample(boot, seq)))
    for index in range(5000):
        site, elevator = DEVICES[index % len(DEVICES)]
        payload = _sample(boot, index)
        good.append((elevator, payload))
        plan.append((elevator, "good", payload))
    for elevator, payload in rng.sample(good, 1000):
        plan.append((elevator, "duplicate", payload))
    rng.shuffle(plan)
    bad_total = sum(1 for _, kind, _ in plan if kind not in {"good", "duplicate"})
    assert bad_total >= 10_000

    started = dt.datetime.now(dt.UTC)
    collector.start()
    sites = {elevator: site for site, elevator in [*DEVICES, *GHOSTS]}
    fleet = FleetPublisher(
        mqtt_url=stack_settings.resolved_mqtt_url(),
        devices=identities(stack_settings, [*DEVICES, *GHOSTS]),
    )
    with fleet:
        fleet.start()
        fleet.wait_connected(WAIT_S)
        for elevator, _, payload in plan:
            fleet.publish_raw(elevator, topic_for(sites[elevator], elevator, "telemetry"), payload)
            fleet.pump(0.0)
        assert fleet.flush(WAIT_S)
        assert fleet.stats().refused == 0

    ids = [e for _, e in [*DEVICES, *GHOSTS]]
    deadline = time.monotonic() + WAIT_S
    query = sa.text(
        # Status messages of the unregistered ghosts are dead letters too; count telemetry.
        "SELECT reason, count(*) FROM dead_letters WHERE received_at >= :t "
        "AND elevator_id = ANY(:ids) AND topic LIKE '%/telemetry' GROUP BY reason"
    )
    while True:
        with engine.connect() as connection:
            reasons: dict[str, int] = {
                str(reason): int(count)
                for reason, count in connection.execute(query, {"t": started, "ids": ids})
            }
        if sum(reasons.values()) >= bad_total or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert sum(reasons.values()) == bad_total
    assert reasons["too_large"] == per_kind["oversized"]
    assert reasons["future_timestamp"] == per_kind["future_timestamp"]
    assert reasons["unknown_elevator"] == 200 * len(GHOSTS)
    assert reasons["malformed_json"] >= per_kind["malformed_json"]
    assert set(reasons) <= {
        "malformed_json",
        "invalid_field",
        "out_of_range",
        "future_timestamp",
        "too_large",
        "unknown_elevator",
    }
    rows, distinct = _counts(engine, boot)
    assert (rows, distinct) == (len(good), len(good))
    assert collector.alive()
    with engine.connect() as connection:
        oversized = connection.execute(
            sa.text(
                "SELECT payload, payload_size, payload_sha256 FROM dead_letters "
                "WHERE received_at >= :t AND reason = 'too_large' AND elevator_id = ANY(:ids)"
            ),
            {"t": started, "ids": ids},
        ).all()
    sent = {
        hashlib.sha256(payload).digest(): payload
        for _, kind, payload in plan
        if kind == "oversized"
    }
    assert len(oversized) == per_kind["oversized"]
    for prefix, size, digest in oversized:
        whole = sent[bytes(digest)]  # the hash names the payload that was sent
        assert size == len(whole) > 64 * 1024
        assert bytes(prefix) == whole[:1024]  # only a bounded prefix is stored

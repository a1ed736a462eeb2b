"""Attacks by a device with its own valid credentials, on the real broker and collector.

docs/security.md (threat: a device). A registered elevator publishes poison on its own topics
(QoS 1, and retained), fuzzed bytes, or connects with another client's id; the collector must
keep ingesting every other elevator, dead-letter what it cannot take, and lose nothing the
broker acknowledged.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from core.credentials import MONITOR_USERNAME, device_credentials, service_credentials
from core.db import libpq_url
from core.protocol import topic_for
from core.registry import ParsedRegistry, upsert_registry
from core.settings import Settings
from liftledger.stack.mosquitto import LocalMosquitto
from simulators.publisher import FleetPublisher
from tests.factories import sample_payload
from tests.integration.broker_accounts import broker_devices, identities
from tests.integration.collector_process import CollectorProcess
from tests.integration.mqtt_helpers import connect

SITE = "hostile-a"
GOOD = [(SITE, f"hostile-good-{n}") for n in range(8)]
ATTACKER = (SITE, "hostile-attacker")
VICTIM = (SITE, "hostile-victim")
FUZZER = (SITE, "hostile-fuzzer")
DEVICES = [*GOOD, ATTACKER, VICTIM, FUZZER]
WAIT_S = 60.0


def _sample(boot: str, seq: int, **changes: Any) -> bytes:
    return sample_payload(boot=boot, seq=seq, **changes)


def _poison(boot: str) -> list[tuple[str, bytes]]:
    """(reason, payload): the payloads that once stopped the collector, and a few more."""
    # "type" makes them events on the event topic too (and is an extra field in telemetry).
    valid = _sample(boot, 0, type="door_cycle")
    return [
        ("malformed_json", b'{"a":"\xc3"}'),
        ("too_deep", b"[" * 1000 + b"]" * 1000),
        ("too_deep", valid[:-1] + b',"x":' + b"[" * 985 + b"]" * 985 + b"}"),
        ("invalid_field", _sample(boot, 1, type="door_cycle", ts="0001-01-01T00:00:00+00:01")),
        ("invalid_field", _sample(boot, 2, type="door_cycle", ts="9999-12-31T23:59:59-01:00")),
        ("stale_timestamp", _sample(boot, 3, type="door_cycle", ts="2001-01-01T00:00:00Z")),
        ("too_large", b'{"pad":"' + b"x" * (1000 * 1024) + b'"}'),
    ]


@pytest.fixture(scope="module")
def registered(stack_settings: Settings, test_database_url: str, engine: Engine) -> Iterator[str]:
    registry = ParsedRegistry()
    registry.sites[SITE] = {"id": SITE, "name": SITE, "district": None}
    for site, elevator in DEVICES:
        registry.elevators.append(
            {
                "id": elevator, "site_id": site, "building": elevator, "lowest_floor": 1,
                "highest_floor": 6, "rated_speed_mps": 1.0, "rated_load_kg": 630.0,
                "registration_code": None, "manufacturer": None, "installed_on": None,
                "thresholds": {},
            }
        )  # fmt: skip
    with psycopg.connect(libpq_url(test_database_url)) as conn:
        upsert_registry(conn, registry)
    with broker_devices(stack_settings, DEVICES):
        yield test_database_url


@pytest.fixture
def collector(stack_settings: Settings, registered: str) -> Iterator[CollectorProcess]:
    process = CollectorProcess(
        stack_settings, registered, f"test-hostile-{uuid.uuid4().hex[:8]}", sites=[SITE]
    )
    process.open_session()
    process.start()
    yield process
    process.stop()
    process.discard_session()


class GoodTraffic(threading.Thread):
    """The other elevators publishing samples at a steady pace while an attack runs."""

    def __init__(self, settings: Settings, boot: str, per_device: int, seconds: float) -> None:
        super().__init__(daemon=True)
        self.settings, self.boot = settings, boot
        self.per_device, self.seconds = per_device, seconds
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            fleet = FleetPublisher(
                mqtt_url=self.settings.resolved_mqtt_url(), devices=identities(self.settings, GOOD)
            )
            with fleet:
                fleet.start()
                assert fleet.wait_connected(WAIT_S) == len(GOOD)
                started = time.monotonic()
                for seq in range(self.per_device):
                    for _, elevator in GOOD:
                        fleet.publish(elevator, "telemetry", _sample(self.boot, seq))
                    due = started + (seq + 1) * self.seconds / self.per_device
                    while time.monotonic() < due:
                        fleet.pump(due - time.monotonic())
                assert fleet.flush(WAIT_S)
                assert fleet.stats().refused == 0
        except BaseException as exc:
            self.error = exc


def _scalar(engine: Engine, query: str, **params: object) -> int:
    with engine.connect() as connection:
        return int(connection.execute(sa.text(query), params).scalar() or 0)


def _wait(condition: object, timeout_s: float = WAIT_S) -> bool:
    assert callable(condition)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return bool(condition())


def _stored(engine: Engine, boot: str) -> int:
    return _scalar(engine, "SELECT count(*) FROM telemetry WHERE boot = :boot", boot=boot)


def _dead_letters(engine: Engine, elevator: str, since: dt.datetime) -> dict[str, int]:
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text(
                "SELECT reason, count(*) FROM dead_letters WHERE elevator_id = :e "
                "AND received_at >= :t GROUP BY reason"
            ),
            {"e": elevator, "t": since},
        )
        return {str(reason): int(count) for reason, count in rows}


def test_poison_payloads_are_dead_lettered_while_every_other_elevator_is_ingested(
    collector: CollectorProcess, engine: Engine, stack_settings: Settings
) -> None:
    boot = f"poison-{uuid.uuid4().hex[:6]}"
    since = dt.datetime.now(dt.UTC)
    traffic = GoodTraffic(stack_settings, boot, per_device=60, seconds=12.0)
    traffic.start()
    poison = _poison(boot)
    site, attacker = ATTACKER
    with FleetPublisher(
        mqtt_url=stack_settings.resolved_mqtt_url(), devices=identities(stack_settings, [ATTACKER])
    ) as fleet:
        fleet.start()
        assert fleet.wait_connected(WAIT_S) == 1
        time.sleep(2.0)  # mid-stream
        for kind in ("telemetry", "event"):
            for _, payload in poison:
                fleet.publish_raw(attacker, topic_for(site, attacker, kind), payload)
                fleet.pump(0.0)
        assert fleet.flush(WAIT_S)
        assert fleet.stats().refused == 0
    traffic.join(WAIT_S)
    assert traffic.error is None, repr(traffic.error)
    expected_good = len(GOOD) * 60
    assert _wait(lambda: _stored(engine, boot) >= expected_good), _stored(engine, boot)
    assert _stored(engine, boot) == expected_good
    wanted: dict[str, int] = {}
    for reason, _ in poison:
        wanted[reason] = wanted.get(reason, 0) + 2  # once per topic
    assert _wait(lambda: _dead_letters(engine, attacker, since) == wanted), _dead_letters(
        engine, attacker, since
    )
    assert collector.alive(), collector.log.read_text()[-3000:]
    with engine.connect() as connection:
        large = connection.execute(
            sa.text(
                "SELECT length(payload), payload_size, payload_sha256 FROM dead_letters "
                "WHERE elevator_id = :e AND reason = 'too_large' AND received_at >= :t LIMIT 1"
            ),
            {"e": attacker, "t": since},
        ).one()
    big = poison[-1][1]
    assert large[0] <= 1024  # a bounded prefix, not the megabyte
    assert (large[1], bytes(large[2])) == (len(big), hashlib.sha256(big).digest())


def test_retained_poison_does_not_stop_a_collector_that_subscribes_after_it(
    collector: CollectorProcess, engine: Engine, stack_settings: Settings
) -> None:
    boot = f"retained-{uuid.uuid4().hex[:6]}"
    since = dt.datetime.now(dt.UTC)
    site, attacker = ATTACKER
    topic = topic_for(site, attacker, "telemetry")
    with FleetPublisher(
        mqtt_url=stack_settings.resolved_mqtt_url(), devices=identities(stack_settings, [ATTACKER])
    ) as fleet:
        fleet.start()
        assert fleet.wait_connected(WAIT_S) == 1
        fleet.publish_raw(attacker, topic, b"[" * 1000 + b"]" * 1000, retain=True)
        assert fleet.flush(WAIT_S)
        try:
            assert _wait(lambda: _dead_letters(engine, attacker, since).get("too_deep", 0) == 1)
            # A new subscription (a collector without a session) gets the retained poison.
            collector.stop()
            collector.discard_session()
            collector.start()
            assert _wait(lambda: _dead_letters(engine, attacker, since).get("too_deep", 0) >= 2)
            traffic = GoodTraffic(stack_settings, boot, per_device=5, seconds=1.0)
            traffic.run()
            assert traffic.error is None, repr(traffic.error)
            assert _wait(lambda: _stored(engine, boot) == len(GOOD) * 5)
            assert collector.alive()
        finally:
            fleet.publish_raw(attacker, topic, b"", retain=True)  # clear the retained message
            assert fleet.flush(WAIT_S)


def test_a_device_using_the_collectors_client_id_neither_connects_as_it_nor_loses_messages(
    collector: CollectorProcess, engine: Engine, stack_settings: Settings
) -> None:
    boot = f"takeover-{uuid.uuid4().hex[:6]}"
    _, attacker = ATTACKER
    creds = device_credentials(stack_settings.secret("mqtt_secret"), attacker)
    # 1,500 messages over 6 s; the attacker connects again and again in the middle.
    traffic = GoodTraffic(stack_settings, boot, per_device=1500 // len(GOOD) + 1, seconds=6.0)
    traffic.start()
    time.sleep(1.5)
    for _ in range(5):
        intruder = connect(
            stack_settings.resolved_mqtt_url(), creds.username, creds.password, collector.client_id
        )
        time.sleep(0.3)
        intruder.close()
    traffic.join(WAIT_S)
    assert traffic.error is None, repr(traffic.error)
    expected = len(GOOD) * traffic.per_device
    assert expected >= 1500
    assert _wait(lambda: _stored(engine, boot) >= expected), _stored(engine, boot)
    time.sleep(1.0)
    assert _stored(engine, boot) == expected
    assert collector.alive()
    taken_over = "session taken over"
    assert taken_over not in collector.log.read_text().lower()


def test_a_device_using_another_elevators_client_id_fires_no_will_and_drops_no_one(
    engine: Engine, stack_settings: Settings, registered: str
) -> None:
    site, victim = VICTIM
    _, attacker = ATTACKER
    secret = stack_settings.secret("mqtt_secret")
    monitor = service_credentials(secret, MONITOR_USERNAME)
    watcher = connect(stack_settings.resolved_mqtt_url(), monitor.username, monitor.password)
    status_topic = topic_for(site, victim, "status")
    try:
        with FleetPublisher(
            mqtt_url=stack_settings.resolved_mqtt_url(),
            devices=identities(stack_settings, [VICTIM]),
        ) as fleet:
            fleet.start()
            assert fleet.wait_connected(WAIT_S) == 1
            watcher.subscribe(status_topic)
            time.sleep(0.5)
            watcher.received.clear()
            creds = device_credentials(secret, attacker)
            intruder = connect(
                stack_settings.resolved_mqtt_url(), creds.username, creds.password, victim
            )
            try:
                assert intruder.connect_reason is not None
                fleet.pump(1.5)
                assert fleet.stats().connected == 1
                assert fleet.stats().reconnects == 0
                # The intruder is itself, not the victim: it cannot publish as the victim.
                reason = intruder.publish(status_topic, b'{"state":"offline"}')
                assert reason.is_failure
            finally:
                intruder.close()
            fleet.pump(0.5)
            assert (status_topic, b'{"state":"offline"}') not in watcher.received
    finally:
        watcher.close()


def test_the_broker_does_not_run_as_root_and_logs_what_it_denies(
    stack_settings: Settings, registered: str
) -> None:
    if not stack_settings.local_mqtt:
        pytest.fail("this test reads the local broker's process and log")
    broker = LocalMosquitto(stack_settings)
    pid = broker.pid()
    assert pid is not None
    uid = next(
        line.split()[1]
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if line.startswith("Uid:")
    )
    assert uid != "0"
    site, attacker = ATTACKER
    _, victim = VICTIM
    creds = device_credentials(stack_settings.secret("mqtt_secret"), attacker)
    client = connect(stack_settings.resolved_mqtt_url(), creds.username, creds.password)
    try:
        assert client.publish(topic_for(site, victim, "telemetry"), b"{}").is_failure
    finally:
        client.close()
    wanted = f"Denied PUBLISH from {attacker}"
    assert _wait(lambda: wanted in broker.log_file.read_text(errors="replace"), 10.0)

    def refusals() -> int:
        return broker.log_file.read_text(errors="replace").count("not authorised")

    before = refusals()
    refused = connect(stack_settings.resolved_mqtt_url(), attacker, "not-the-password")
    refused.close()
    assert _wait(lambda: refusals() > before, 10.0)


def test_dead_letters_past_their_retention_are_deleted(
    stack_settings: Settings, registered: str, engine: Engine
) -> None:
    marker = f"retention-{uuid.uuid4().hex[:6]}"
    with engine.begin() as connection:
        for days in (40, 1):
            connection.execute(
                sa.text(
                    "INSERT INTO dead_letters (received_at, topic, payload, reason, detail) "
                    "VALUES (now() - make_interval(days => :d), :topic, '', 'bad_topic', '')"
                ),
                {"d": days, "topic": f"{marker}/{days}"},
            )
    process = CollectorProcess(stack_settings, registered, marker, sites=[SITE])
    process.open_session()
    process.start()
    try:
        query = "SELECT count(*) FROM dead_letters WHERE topic LIKE :t"
        assert _wait(lambda: _scalar(engine, query, t=f"{marker}/40") == 0)
        assert _scalar(engine, query, t=f"{marker}/1") == 1
    finally:
        process.stop()
        process.discard_session()


# -- fuzzing through the real collector ----------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats()
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=20,
)
FIELDS = ["v", "boot", "seq", "ts", "floor", "pos_m", "speed_mps", "dir", "door", "type", "x"]


def _fuzz_payload(boot: str) -> st.SearchStrategy[bytes]:
    base = json.loads(_sample(boot, 0))
    mutated = st.builds(
        lambda seq, changes: json.dumps({**base, "seq": seq, **changes}).encode(),
        st.integers(0, 10**6),
        st.dictionaries(st.sampled_from(FIELDS), JSON_VALUES, max_size=3),
    )
    deep = st.builds(
        lambda n, opener: json.dumps(base).encode()[:-1] + b',"x":' + opener * n + b"}",
        st.integers(10, 2000),
        st.sampled_from([b"[", b"{", b'{"a":']),
    )
    odd_time = st.builds(
        lambda seq, ts: json.dumps({**base, "seq": seq, "ts": ts}).encode(),
        st.integers(0, 10**6),
        st.sampled_from(
            ["0001-01-01T00:00:00+00:01", "9999-12-31T23:59:59-01:00", "1970-01-01T00:00:00Z"]
        )
        | st.text(max_size=30),
    )
    duplicate_keys = st.builds(
        lambda seq, key, value: (
            json.dumps({**base, "seq": seq}).encode()[:-1] + f',"{key}":{value}}}'.encode()
        ),
        st.integers(0, 10**6),
        st.sampled_from(FIELDS),
        st.sampled_from(["1", "null", "1e999", "123456789012345678901234567890123", '"\\ud800"']),
    )
    bad_utf8 = st.builds(
        lambda raw: json.dumps(base).encode()[:-1] + b',"x":"' + raw + b'"}',
        st.sampled_from([b"\xc3", b"\xff\xfe", b"\xed\xa0\x80", b"\xf4\x90\x80\x80"]),
    )
    return st.binary(max_size=200) | mutated | deep | odd_time | duplicate_keys | bad_utf8


def _accounted(engine: Engine, elevator: str, boot: str, payloads: list[bytes]) -> int:
    """How many payloads were stored (their (boot, seq) is a row) or dead-lettered (by hash)."""
    with engine.connect() as connection:
        hashes = {
            bytes(h)
            for (h,) in connection.execute(
                sa.text("SELECT payload_sha256 FROM dead_letters WHERE elevator_id = :e"),
                {"e": elevator},
            )
        }
        rows = {
            (str(b), int(s))
            for b, s in connection.execute(
                sa.text(
                    "SELECT boot, seq FROM telemetry WHERE elevator_id = :e UNION "
                    "SELECT boot, seq FROM device_events WHERE elevator_id = :e"
                ),
                {"e": elevator},
            )
        }
    count = 0
    for payload in payloads:
        if hashlib.sha256(payload).digest() in hashes:
            count += 1
            continue
        try:
            body = json.loads(payload)
            key = (body["boot"], body["seq"])
        except (ValueError, KeyError, TypeError):
            continue
        if isinstance(key[0], str) and isinstance(key[1], int) and key in rows:
            count += 1
    return count


@settings(
    max_examples=4,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_fuzzed_device_traffic_never_stops_the_collector_and_nothing_is_lost(
    collector: CollectorProcess, engine: Engine, stack_settings: Settings, data: st.DataObject
) -> None:
    boot = f"fz{uuid.uuid4().hex[:6]}"
    payloads = data.draw(st.lists(_fuzz_payload(boot), min_size=150, max_size=200))
    site, fuzzer = FUZZER
    kinds = data.draw(st.lists(st.sampled_from(["telemetry", "event"]), min_size=len(payloads),
                               max_size=len(payloads)))  # fmt: skip
    with FleetPublisher(
        mqtt_url=stack_settings.resolved_mqtt_url(), devices=identities(stack_settings, [FUZZER])
    ) as fleet:
        fleet.start()
        assert fleet.wait_connected(WAIT_S) == 1
        for payload, kind in zip(payloads, kinds, strict=True):
            fleet.publish_raw(fuzzer, topic_for(site, fuzzer, kind), payload)  # type: ignore[arg-type]
            fleet.pump(0.0)
        assert fleet.flush(WAIT_S)
    # A marker sample published last: once it is stored, everything before it was handled.
    marker = f"m{uuid.uuid4().hex[:6]}"
    traffic = GoodTraffic(stack_settings, marker, per_device=1, seconds=0.1)
    traffic.run()
    assert _wait(lambda: _stored(engine, marker) == len(GOOD))
    assert collector.alive(), collector.log.read_text()[-3000:]
    assert _wait(lambda: _accounted(engine, fuzzer, boot, payloads) == len(payloads), 10.0), (
        f"{_accounted(engine, fuzzer, boot, payloads)} of {len(payloads)} stored or dead-lettered"
    )

"""The batch writer on the real database: duplicates absorbed, refused values isolated."""

from __future__ import annotations

import datetime as dt
import uuid

import msgspec
import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from alerts.detector import ElevatorDetector
from alerts.engine import DetectionEngine
from alerts.rules import Reading
from core.messages import Batch, Event, Rejected, Sample
from core.protocol import topic_for
from ingest.validate import validate
from ingest.writer import BatchWriter
from tests.factories import add_elevator, driver_connection, sample_payload

NOW = dt.datetime.now(dt.UTC)
SITE, ELEVATOR = "wtest", "wtest-e1"


def _sample(boot: str, seq: int) -> Sample:
    payload = sample_payload(boot=boot, seq=seq, ts=NOW, floor=2, pos_m=3.0)
    topic = topic_for(SITE, ELEVATOR, "telemetry")
    outcome = validate(topic, payload, received_at=NOW, sites_by_elevator={ELEVATOR: SITE})
    assert isinstance(outcome, Sample)
    return outcome


def _register(engine: Engine) -> None:
    with engine.begin() as connection:  # committed: the writer reads it
        add_elevator(driver_connection(connection), ELEVATOR, site=SITE, building="b",
                     highest_floor=6, rated_load_kg=630, exist_ok=True)  # fmt: skip


def _rows(engine: Engine, boot: str) -> list[int]:
    with engine.connect() as connection:
        return list(
            connection.execute(
                sa.text("SELECT seq FROM telemetry WHERE boot = :b ORDER BY seq"), {"b": boot}
            ).scalars()
        )


def test_redelivered_and_repeated_samples_create_no_second_row(
    engine: Engine, test_database_url: str
) -> None:
    _register(engine)
    boot = f"w-{uuid.uuid4().hex[:6]}"
    writer = BatchWriter(test_database_url)
    try:
        first = writer.write(Batch(samples=[_sample(boot, 1), _sample(boot, 2)]))
        again = writer.write(Batch(samples=[_sample(boot, 2), _sample(boot, 3), _sample(boot, 3)]))
    finally:
        writer.close()
    assert (first.samples_inserted, first.samples_duplicate) == (2, 0)
    assert (again.samples_inserted, again.samples_duplicate) == (1, 2)
    assert _rows(engine, boot) == [1, 2, 3]


def test_a_value_the_database_refuses_is_dead_lettered_and_the_rest_committed(
    engine: Engine, test_database_url: str
) -> None:
    _register(engine)
    boot = f"w-{uuid.uuid4().hex[:6]}"
    good = _sample(boot, 1)
    # Past validation by construction: PostgreSQL text cannot hold a NUL character.
    refused = Sample(
        good.elevator, good.site, good.time, good.received_at,
        msgspec.structs.replace(good.data, seq=2, mode="nor\x00mal"), None, good.topic,
        b"raw-bytes",
    )  # fmt: skip
    writer = BatchWriter(test_database_url)
    try:
        result = writer.write(Batch(samples=[good, refused, _sample(boot, 3)]))
    finally:
        writer.close()
    assert result.samples_inserted == 2
    assert [(r.reason, r.payload) for r in result.dead_letters] == [
        ("rejected_by_database", b"raw-bytes")
    ]
    assert _rows(engine, boot) == [1, 3]
    with engine.connect() as connection:
        stored = connection.execute(
            sa.text(
                "SELECT count(*) FROM dead_letters WHERE reason = 'rejected_by_database' "
                "AND payload = :p"
            ),
            {"p": b"raw-bytes"},
        ).scalar()
    assert stored == 1


class ExplodingDetection:
    """A detection engine with a bug: it raises on every sample of one sequence number."""

    def __init__(self, poison_seq: int) -> None:
        self.poison_seq = poison_seq
        self.invalidated = 0

    def prepare(self, conn: object) -> None:
        pass

    def process(self, conn: object, batch: Batch) -> list[object]:
        assert isinstance(batch.samples, list | tuple)
        if any(s.data.seq == self.poison_seq for s in batch.samples):
            raise OverflowError("date value out of range")
        return []

    def tick(self, conn: object) -> list[object]:
        return []

    def invalidate(self) -> None:
        self.invalidated += 1

    def take_failures(self) -> list[tuple[Sample | Event, Exception]]:
        return []


def _dead_letter_reasons(engine: Engine, boot: str) -> list[tuple[str, str]]:
    with engine.connect() as connection:
        rows = connection.execute(
            # Payloads are bytes, not always text: match the marker as bytes.
            sa.text(
                "SELECT reason, detail FROM dead_letters "
                "WHERE position(CAST(:b AS bytea) IN payload) > 0 ORDER BY id"
            ),
            {"b": f'"boot":"{boot}"'.encode()},
        )
        return [(str(reason), str(detail)) for reason, detail in rows]


def test_a_message_whose_storage_raises_is_dead_lettered_and_the_batch_goes_on(
    engine: Engine, test_database_url: str
) -> None:
    _register(engine)
    boot = f"w-{uuid.uuid4().hex[:6]}"
    poisoned = _sample(boot, 2)
    # An extra field the JSON encoder cannot take (a bug a payload might one day find).
    unstorable = Sample(
        **{**{f: getattr(poisoned, f) for f in Sample.__slots__}, "extra": {"x": {1}}}
    )
    writer = BatchWriter(test_database_url)
    try:
        result = writer.write(Batch(samples=[_sample(boot, 1), unstorable, _sample(boot, 3)]))
    finally:
        writer.close()
    assert _rows(engine, boot) == [1, 3]
    assert result.samples_inserted == 2
    assert [r.reason for r in result.dead_letters] == ["unprocessable"]
    reasons = _dead_letter_reasons(engine, boot)
    assert [reason for reason, _ in reasons] == ["unprocessable"]
    assert "TypeError" in reasons[0][1]


def test_a_message_whose_detection_raises_is_dead_lettered_and_the_batch_goes_on(
    engine: Engine, test_database_url: str
) -> None:
    _register(engine)
    boot = f"w-{uuid.uuid4().hex[:6]}"
    detection = ExplodingDetection(poison_seq=2)
    writer = BatchWriter(test_database_url, detection=detection)
    try:
        samples = [_sample(boot, seq) for seq in range(1, 6)]
        result = writer.write(Batch(samples=samples))
        later = writer.write(Batch(samples=[_sample(boot, 6)]))
    finally:
        writer.close()
    assert _rows(engine, boot) == [1, 3, 4, 5, 6]
    assert (result.samples_inserted, later.samples_inserted) == (4, 1)
    reasons = _dead_letter_reasons(engine, boot)
    assert [reason for reason, _ in reasons] == ["unprocessable"]
    assert "OverflowError" in reasons[0][1]
    assert detection.invalidated >= 1  # detectors that saw part of a failed batch are rebuilt


def test_a_dead_letter_whose_detail_quotes_a_nul_or_a_lone_surrogate_is_stored(
    engine: Engine, test_database_url: str
) -> None:
    _register(engine)
    marker = f"w-{uuid.uuid4().hex[:6]}"
    topic = topic_for(SITE, ELEVATOR, "telemetry")
    hostile = Rejected(
        topic, marker.encode(), "unprocessable", "ValueError: a\x00b \ud800 c", ELEVATOR, NOW
    )
    writer = BatchWriter(test_database_url)
    try:
        result = writer.write(Batch(rejected=[hostile]))
    finally:
        writer.close()
    assert [r.reason for r in result.dead_letters] == ["unprocessable"]
    with engine.connect() as connection:
        detail = connection.execute(
            sa.text("SELECT detail FROM dead_letters WHERE payload = :p"), {"p": marker.encode()}
        ).scalar_one()
    assert detail == "ValueError: a\\0b \\ud800 c"


def test_a_message_a_real_detector_raises_on_is_stored_and_recorded_as_a_dead_letter(
    engine: Engine, test_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _register(engine)
    boot = f"w-{uuid.uuid4().hex[:6]}"
    original = ElevatorDetector.on_sample

    def on_sample(self: ElevatorDetector, reading: Reading, received_at: dt.datetime) -> object:
        if reading.floor == 4:  # the poisoned sample
            raise ZeroDivisionError("a rule divided by zero")
        return original(self, reading, received_at)

    monkeypatch.setattr(ElevatorDetector, "on_sample", on_sample)
    poisoned = _sample(boot, 2)
    poisoned = Sample(**{
        **{f: getattr(poisoned, f) for f in Sample.__slots__},
        "data": msgspec.structs.replace(poisoned.data, floor=4),
    })  # fmt: skip
    writer = BatchWriter(test_database_url, detection=DetectionEngine())
    try:
        result = writer.write(Batch(samples=[_sample(boot, 1), poisoned, _sample(boot, 3)]))
    finally:
        writer.close()
    assert _rows(engine, boot) == [1, 2, 3]  # the data is kept
    assert [r.reason for r in result.dead_letters] == ["detection_failed"]
    reasons = _dead_letter_reasons(engine, boot)
    assert [reason for reason, _ in reasons] == ["detection_failed"]
    assert "ZeroDivisionError" in reasons[0][1]


def test_a_stored_event_body_nested_too_deep_does_not_stop_detection(
    engine: Engine, test_database_url: str
) -> None:
    _register(engine)
    boot = f"w-{uuid.uuid4().hex[:6]}"
    deep = '{"a":' * 5000 + "1" + "}" * 5000  # as an insider could store it
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO device_events (elevator_id, boot, seq, time, received_at, type, "
                "body) VALUES (:e, :b, 1, now(), now(), 'door_cycle', CAST(:body AS jsonb))"
            ),
            {"e": ELEVATOR, "b": boot, "body": deep},
        )
    writer = BatchWriter(test_database_url, detection=DetectionEngine())
    try:
        result = writer.write(Batch(samples=[_sample(boot, 2)]))  # rebuilds the detectors first
    finally:
        writer.close()
    assert result.samples_inserted == 1
    assert result.dead_letters == []
    assert _rows(engine, boot) == [2]

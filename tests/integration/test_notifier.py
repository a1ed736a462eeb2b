"""The notifier on the real database: webhooks (signed, retried, logged, sent holding no
lock), escalation without telemetry, the notice feed and its wake-up on NOTIFY, and a stop
that ends every thread within about one request timeout."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from alerts.detector import AlertSignal
from alerts.store import apply_signal, record_in_ledger
from core.db import libpq_url
from core.faults import Severity, resolve_thresholds
from core.settings import Settings
from ledger.follow import listen, wait_for_entries
from liftledger.services.notifier import run_notifier
from notify.feed import NoticeFilter, read_notices
from notify.notifier import Notifier, NotifierConfig
from notify.webhooks import (
    MAX_ATTEMPTS,
    REQUEST_TIMEOUT_S,
    DeliveryOutcome,
    WebhookError,
    add_subscription,
    deliver_due,
    verify_signature,
)
from tests.factories import add_elevator

THRESHOLDS = resolve_thresholds()


class Receiver(http.server.ThreadingHTTPServer):
    """A webhook endpoint that fails its first `failures` requests, then records the rest."""

    def __init__(self, failures: int) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.failures = failures
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"


class _Handler(http.server.BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with self.server.lock:
            failing = self.server.failures > 0
            if failing:
                self.server.failures -= 1
            else:
                # Header names are case-insensitive (RFC 9110 §5.1); urllib capitalises them.
                self.server.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(503 if failing else 204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver(failures=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


class SlowReceiver(http.server.ThreadingHTTPServer):
    """A webhook endpoint that holds each request until `release` is set (at most `hold_s`),
    then answers 204; `arrived` is set by the first request."""

    def __init__(self, hold_s: float) -> None:
        super().__init__(("127.0.0.1", 0), _SlowHandler)
        self.hold_s = hold_s
        self.arrived = threading.Event()
        self.release = threading.Event()
        self.count = 0
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"


class _SlowHandler(http.server.BaseHTTPRequestHandler):
    server: SlowReceiver

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        with self.server.lock:
            self.server.count += 1
        self.server.arrived.set()
        self.server.release.wait(self.server.hold_s)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def _serve(hold_s: float) -> Iterator[SlowReceiver]:
    server = SlowReceiver(hold_s)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()


@pytest.fixture
def blocking_receiver() -> Iterator[SlowReceiver]:
    """Holds every request until the test releases it."""
    yield from _serve(hold_s=30.0)


@pytest.fixture
def slow_receiver() -> Iterator[SlowReceiver]:
    """Answers every request after 2 s."""
    yield from _serve(hold_s=2.0)


def _new_threads(before: set[threading.Thread], timeout_s: float = 3.0) -> set[threading.Thread]:
    """Threads started since `before` that are still alive after up to `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        left = {t for t in threading.enumerate() if t not in before and t.is_alive()}
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.05)


@pytest.fixture
def site(test_database_url: str) -> Iterator[tuple[str, str]]:
    """A committed site with one elevator (the notifier works across transactions)."""
    with psycopg.connect(libpq_url(test_database_url)) as conn:
        site, elevator = add_elevator(conn, prefix="nt", site_name="Notifier test")
    yield site, elevator
    with psycopg.connect(libpq_url(test_database_url)) as conn:
        conn.execute(
            "UPDATE webhook_subscriptions SET active = false WHERE %s = ANY(sites)", (site,)
        )


@pytest.fixture
def roles(service_database_urls: dict[str, str]) -> tuple[str, str]:
    """libpq URLs of the collector's role (which raises alerts) and the notifier's role."""
    return (
        libpq_url(service_database_urls["collector"]),
        libpq_url(service_database_urls["notifier"]),
    )


def _raise(
    url: str, site: str, elevator: str, *, kind: str = "trapped_between_floors", at: dt.datetime
) -> int:
    """Commit one raised alert with its ledger entry; returns the alert id."""
    severity = Severity.CRITICAL if kind != "power_failure" else Severity.MAJOR
    signal = AlertSignal(elevator, site, kind, "raise", severity, at, {})
    with psycopg.connect(url) as conn:
        event = apply_signal(conn, signal, THRESHOLDS)
        assert event is not None
        record_in_ledger(conn, [event])
        return event.alert_id


def _notifier(url: str, run: str) -> Notifier:
    config = NotifierConfig(
        webhook_cursor=f"webhooks-{run}",
        mqtt_cursor=f"mqtt-{run}",
        new_cursor_at_latest=True,
        webhook_interval_s=0.05,
        maintenance_interval_s=3600.0,
    )
    return Notifier(conninfo=url, publisher=None, config=config)


def _deliveries(url: str, site: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT d.status, d.attempts, d.last_status_code FROM webhook_deliveries d "
            "JOIN webhook_subscriptions s ON s.id = d.subscription_id "
            "WHERE %s = ANY(s.sites) ORDER BY d.id",
            (site,),
        ).fetchall()


def _wait(predicate: Any, timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_webhook_gets_each_alert_event_signed_once_after_retries(
    test_database_url: str, site: tuple[str, str], receiver: Receiver, roles: tuple[str, str]
) -> None:
    url = libpq_url(test_database_url)
    collector_url, notifier_url = roles
    site_id, elevator = site
    with psycopg.connect(url) as conn:
        sub = add_subscription(
            conn, name=f"hook-{site_id}", url=receiver.url, sites=[site_id], secret="s3cret"
        )
    receiver.failures = 2
    run = uuid.uuid4().hex[:6]
    notifier = _notifier(notifier_url, run)
    stop = threading.Event()
    thread = threading.Thread(target=notifier.run, args=(stop,), daemon=True)
    thread.start()
    try:
        time.sleep(0.5)  # the notifier's cursor starts at the ledger's end
        _raise(collector_url, site_id, elevator, at=dt.datetime.now(dt.UTC))
        # Two 503s, then success: the retry back-off is 2 s then 4 s (with jitter).
        assert _wait(lambda: _deliveries(url, site_id) == [("delivered", 3, 204)], 30)
    finally:
        stop.set()
        thread.join(10)
    assert len(receiver.requests) == 1
    headers, body = receiver.requests[0]
    stamp = int(headers["x-liftledger-timestamp"])
    assert verify_signature(
        sub.secret, stamp, body, headers["x-liftledger-signature"], now=time.time()
    )
    assert not verify_signature(
        "wrong", stamp, body, headers["x-liftledger-signature"], now=time.time()
    )
    notice = json.loads(body)
    assert notice["event"] == "opened"
    assert notice["elevator"] == elevator
    assert headers["idempotency-key"] == f"alert-event-{notice['alert_event_id']}"
    assert headers["x-liftledger-seq"] == str(notice["seq"])


def test_subscription_filters_by_site_type_and_severity(
    test_database_url: str, site: tuple[str, str], receiver: Receiver, roles: tuple[str, str]
) -> None:
    url = libpq_url(test_database_url)
    collector_url, notifier_url = roles
    site_id, elevator = site
    with psycopg.connect(url) as conn:
        add_subscription(
            conn,
            name=f"critical-{site_id}",
            url=receiver.url,
            sites=[site_id],
            min_severity=Severity.CRITICAL,
        )
    run = uuid.uuid4().hex[:6]
    notifier = _notifier(notifier_url, run)
    with psycopg.connect(notifier_url) as conn:
        notifier.deliver_new(conn)  # create the cursor at the ledger's end
    now = dt.datetime.now(dt.UTC)
    _raise(collector_url, site_id, elevator, kind="power_failure", at=now)
    _raise(collector_url, site_id, elevator, kind="trapped_at_floor", at=now)
    with psycopg.connect(notifier_url) as conn:
        notifier.deliver_new(conn)
        conn.commit()
        deliver_due(conn)
    assert [json.loads(body)["type"] for _, body in receiver.requests] == ["trapped_at_floor"]


def test_a_webhook_that_never_answers_is_marked_failed_after_the_last_attempt(
    test_database_url: str, site: tuple[str, str], roles: tuple[str, str]
) -> None:
    url = libpq_url(test_database_url)
    collector_url, notifier_url = roles
    site_id, elevator = site
    with psycopg.connect(url) as conn:
        add_subscription(conn, name=f"dead-{site_id}", url="http://127.0.0.1:9/", sites=[site_id])
    notifier = _notifier(notifier_url, uuid.uuid4().hex[:6])
    with psycopg.connect(notifier_url) as conn:
        notifier.deliver_new(conn)
    _raise(collector_url, site_id, elevator, at=dt.datetime.now(dt.UTC))
    calls: list[str] = []

    def refuse(target: str, body: bytes, headers: dict[str, str]) -> DeliveryOutcome:
        calls.append(target)
        return DeliveryOutcome(False, None, "connection refused")

    with psycopg.connect(notifier_url, autocommit=True) as conn:
        notifier.deliver_new(conn)
        for _ in range(MAX_ATTEMPTS):
            conn.execute(
                "UPDATE webhook_deliveries SET next_attempt_at = now() WHERE status = 'pending'"
            )
            deliver_due(conn, send=refuse)
    assert _deliveries(url, site_id) == [("failed", MAX_ATTEMPTS, None)]
    assert len(calls) == MAX_ATTEMPTS


def test_a_webhook_url_must_be_http(test_database_url: str) -> None:
    with psycopg.connect(libpq_url(test_database_url)) as conn, pytest.raises(WebhookError):
        add_subscription(conn, name="bad", url="file:///etc/passwd")


def test_the_notifier_escalates_an_unacknowledged_critical_alert_without_telemetry(
    test_database_url: str, site: tuple[str, str], roles: tuple[str, str]
) -> None:
    url = libpq_url(test_database_url)
    collector_url, notifier_url = roles
    site_id, elevator = site
    opened_at = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5) + dt.timedelta(seconds=2)
    alert_id = _raise(collector_url, site_id, elevator, at=opened_at)
    notifier = _notifier(notifier_url, uuid.uuid4().hex[:6])
    stop = threading.Event()
    thread = threading.Thread(target=notifier.run, args=(stop,), daemon=True)
    thread.start()

    def escalations() -> list[tuple[Any, ...]]:
        with psycopg.connect(url) as conn:
            return conn.execute(
                "SELECT time FROM alert_events WHERE alert_id = %s AND kind = 'escalated'",
                (alert_id,),
            ).fetchall()

    try:
        assert escalations() == []
        assert _wait(lambda: escalations() != [], 10)
        time.sleep(2.0)
    finally:
        stop.set()
        thread.join(10)
    [(escalated_at,)] = escalations()
    due = opened_at + dt.timedelta(minutes=5)
    assert due <= escalated_at < due + dt.timedelta(seconds=2)


def test_the_feed_wakes_on_a_new_entry_and_reads_it_in_order(
    site: tuple[str, str], roles: tuple[str, str]
) -> None:
    collector_url, url = roles
    site_id, elevator = site
    with psycopg.connect(url, autocommit=True) as waker, psycopg.connect(url) as reader:
        listen(waker)
        start = reader.execute("SELECT coalesce(max(seq), -1) FROM ledger_entries").fetchone()
        assert start is not None
        assert not wait_for_entries(waker, 0.2)
        _raise(collector_url, site_id, elevator, at=dt.datetime.now(dt.UTC))
        began = time.monotonic()
        assert wait_for_entries(waker, 5.0)
        assert time.monotonic() - began < 1.0
        notices = read_notices(reader, after_seq=start[0])
    mine = [n for n in notices if n.elevator == elevator]
    assert [n.event for n in mine] == ["opened"]
    assert NoticeFilter(sites=[site_id], min_severity=Severity.CRITICAL).matches(mine[0])
    assert not NoticeFilter(sites=["elsewhere"]).matches(mine[0])
    assert "salt" not in mine[0].body


def test_a_webhook_post_in_flight_holds_no_lock_and_no_transaction(
    test_database_url: str,
    site: tuple[str, str],
    blocking_receiver: SlowReceiver,
    roles: tuple[str, str],
) -> None:
    url = libpq_url(test_database_url)
    collector_url, notifier_url = roles
    site_id, elevator = site
    with psycopg.connect(url) as conn:
        add_subscription(conn, name=f"blocking-{site_id}", url=blocking_receiver.url,
                         sites=[site_id])  # fmt: skip
    notifier = _notifier(notifier_url, uuid.uuid4().hex[:6])
    with psycopg.connect(notifier_url) as conn:
        notifier.deliver_new(conn)  # create the cursor at the ledger's end
    alert_id = _raise(collector_url, site_id, elevator, at=dt.datetime.now(dt.UTC))
    with psycopg.connect(notifier_url) as conn:
        notifier.deliver_new(conn)
    sender_name = f"webhooks-{uuid.uuid4().hex[:8]}"
    errors: list[BaseException] = []

    def deliver() -> None:
        try:
            with psycopg.connect(notifier_url, autocommit=True,
                                 application_name=sender_name) as conn:  # fmt: skip
                deliver_due(conn)
        except BaseException as exc:
            errors.append(exc)

    sender = threading.Thread(target=deliver)
    sender.start()
    try:
        assert blocking_receiver.arrived.wait(10), "the POST never arrived"
        with psycopg.connect(url) as other:
            # While the POST is in flight another transaction locks the delivery and the
            # alert at once (NOWAIT raises if any lock is held), and the sender's session
            # is idle, in no transaction.
            locked = other.execute(
                "SELECT d.id FROM webhook_deliveries d "
                "JOIN webhook_subscriptions s ON s.id = d.subscription_id "
                "WHERE %s = ANY(s.sites) FOR UPDATE OF d NOWAIT",
                (site_id,),
            ).fetchall()
            assert len(locked) == 1
            assert other.execute(
                "SELECT id FROM alerts WHERE id = %s FOR UPDATE NOWAIT", (alert_id,)
            ).fetchall() == [(alert_id,)]
            [(state,)] = other.execute(
                "SELECT state FROM pg_stat_activity WHERE application_name = %s", (sender_name,)
            ).fetchall()
            assert state == "idle"
            other.rollback()
    finally:
        blocking_receiver.release.set()
        sender.join(30)
    assert errors == []
    assert _deliveries(url, site_id) == [("delivered", 1, 204)]


def test_stop_during_a_slow_delivery_batch_returns_within_one_request_timeout(
    test_database_url: str,
    site: tuple[str, str],
    slow_receiver: SlowReceiver,
    roles: tuple[str, str],
) -> None:
    url = libpq_url(test_database_url)
    collector_url, notifier_url = roles
    site_id, elevator = site
    with psycopg.connect(url) as conn:
        add_subscription(conn, name=f"slow-{site_id}", url=slow_receiver.url, sites=[site_id])
    notifier = _notifier(notifier_url, uuid.uuid4().hex[:6])
    with psycopg.connect(notifier_url) as conn:
        notifier.deliver_new(conn)  # create the cursors at the ledger's end
    now = dt.datetime.now(dt.UTC)
    for kind in ("trapped_between_floors", "trapped_at_floor", "overspeed", "power_failure"):
        _raise(collector_url, site_id, elevator, kind=kind, at=now)
    before = set(threading.enumerate())
    stop = threading.Event()
    runner = threading.Thread(target=notifier.run, args=(stop,))
    runner.start()
    try:
        assert slow_receiver.arrived.wait(10), "no delivery started"
    finally:
        stop.set()
        stopped_at = time.monotonic()
        runner.join(60)
    # Four deliveries of 2 s each are due; stop waits for the one in flight only.
    assert time.monotonic() - stopped_at < REQUEST_TIMEOUT_S
    assert not runner.is_alive()
    assert _new_threads(before) == set()
    assert slow_receiver.count == 1
    assert sorted(_deliveries(url, site_id)) == [
        ("delivered", 1, 204), ("pending", 0, None), ("pending", 0, None), ("pending", 0, None),
    ]  # fmt: skip


def test_a_stopped_notifier_leaves_no_thread_of_its_own_behind(
    stack_settings: Settings, test_database_url: str
) -> None:
    run = uuid.uuid4().hex[:6]
    settings = stack_settings.model_copy(update={"database_url": test_database_url})
    config = NotifierConfig(
        mqtt_cursor=f"mqtt-{run}",
        webhook_cursor=f"webhooks-{run}",
        new_cursor_at_latest=True,
        maintenance_interval_s=3600.0,
    )
    before = set(threading.enumerate())
    stop = threading.Event()
    runner = threading.Thread(
        target=run_notifier, args=(settings, config),
        kwargs={"stop": stop, "client_id": f"test-notifier-{run}"},
    )  # fmt: skip
    runner.start()
    try:
        # The runner, the webhook sender and the MQTT publisher's network thread.
        assert _wait(lambda: len(_new_threads(before, timeout_s=0)) >= 3, 10)
        time.sleep(0.5)
    finally:
        stop.set()
        runner.join(30)
    assert not runner.is_alive()
    assert _new_threads(before) == set()

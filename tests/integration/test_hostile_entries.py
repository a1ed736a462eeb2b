"""Stored data cannot crash a reader: hostile ledger rows on the real database.

An insider with the table owner's rights (the tests' database user) appends entries that no
platform code would write: JSON nested 100,000 deep, not an object, keys missing, wrong
types, an MQTT wildcard in a site, numbers out of range, invalid UTF-8, a header injection,
an event that does not exist; and an alert whose deadline is out of range. Then the real
notifier, the real API (SSE stream with resumption, audit views) and the verifier must name
or skip each one and go on with the good entries around them.

Committed hostile rows are deleted again (trigger switched off, as the owner can) so that the
session's other tests see a clean log.
"""

from __future__ import annotations

import datetime as dt
import http.server
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import psycopg
import pytest

from alerts.detector import AlertSignal
from alerts.store import advance_workflow, apply_signal, record_in_ledger
from core.db import libpq_url
from core.faults import Severity, resolve_thresholds
from core.settings import Settings
from ledger.chain import ChainClient
from ledger.deploy import contract_chain, deploy_contract
from ledger.entries import LEDGER_LOCK_KEY, content_hash
from ledger.merkle import hash_leaf
from ledger.verify import verify_log
from liftledger.ledger_sources import LEDGER_SOURCES
from notify.feed import AlertNotice
from notify.notifier import Notifier, NotifierConfig
from notify.webhooks import add_subscription
from tests.integration.api_helpers import (
    Person,
    add_alert,
    add_person,
    add_site_with_elevator,
    client,
    running_api,
)

DEPTH = 100_000
# Entries whose content cannot be decoded at all; the others decode but are not alert events.
UNREADABLE = {"deep", "not_an_object", "invalid_utf8", "infinite_number"}
NO_SUCH_EVENT = 2**62


def hostile_entries(site: str, elevator: str) -> dict[str, bytes]:
    """Canonical bytes no platform code writes, by what is wrong with them."""
    shaped = {
        "v": 1, "kind": "alert_event", "salt": "00", "prev": "", "alert_id": 1,
        "alert_event_id": NO_SUCH_EVENT, "event": "opened", "time": "2026-11-28T09:00:00.000Z",
        "elevator": elevator, "site": site, "type": "power_failure", "severity": "major",
        "actor_user_id": None, "details": {},
    }  # fmt: skip

    def variant(**changes: Any) -> bytes:
        return json.dumps(shaped | changes).encode()

    deep = b'{"site":"' + site.encode() + b'","details":' + b"[" * DEPTH + b"]" * DEPTH + b"}"
    return {
        "deep": deep,
        "not_an_object": b"[1, 2, 3]",
        "missing_keys": json.dumps({"site": site}).encode(),
        "wrong_types": variant(severity=3, elevator=["x"]),
        "wildcard_site": variant(site="a/#"),
        "huge_id": variant(alert_event_id=10**30),
        "infinite_number": variant(details={"n": 1}).replace(b'"n": 1', b'"n": 1e400'),
        "invalid_utf8": b'{"site": "\xff\xfe", "event": "opened"}',
        "header_injection": variant(event="opened\r\nX-Injected: 1"),
        "no_such_event": variant(),
    }


def append_as_insider(
    conn: psycopg.Connection[Any], elevator: str, canonical: bytes, *, source_id: int
) -> int:
    """Append one entry as the table owner could, with hashes that match its bytes.

    The database refuses an entry without the right `prev` link; the owner can switch that
    trigger off for the transaction, so readers must still cope with such rows."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (LEDGER_LOCK_KEY,))
    row = conn.execute("SELECT coalesce(max(seq), -1) + 1 FROM ledger_entries").fetchone()
    assert row is not None
    digest = content_hash(canonical)
    conn.execute("ALTER TABLE ledger_entries DISABLE TRIGGER ledger_entries_follow_previous")
    conn.execute(
        "INSERT INTO ledger_entries (seq, kind, source_table, source_id, elevator_id, "
        "canonical, content_hash, leaf_hash) VALUES (%s, 'alert_event', 'alert_events', %s, "
        "%s, %s, %s, %s)",
        (row[0], source_id, elevator, canonical, digest, hash_leaf(digest)),
    )
    conn.execute("ALTER TABLE ledger_entries ENABLE TRIGGER ledger_entries_follow_previous")
    return int(row[0])


@dataclass
class Insider:
    """Writes hostile rows (committed); the fixture removes every entry appended meanwhile."""

    url: str
    bad: dict[str, int] = field(default_factory=dict)

    def append_hostile(self, site: str, elevator: str) -> dict[str, int]:
        with psycopg.connect(self.url) as conn:
            for name, canonical in hostile_entries(site, elevator).items():
                source = NO_SUCH_EVENT if name == "no_such_event" else 1
                self.bad[name] = append_as_insider(conn, elevator, canonical, source_id=source)
                conn.commit()
        return dict(self.bad)


@pytest.fixture
def insider(test_database_url: str) -> Iterator[Insider]:
    url = libpq_url(test_database_url)
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT coalesce(max(seq), -1) + 1 FROM ledger_entries").fetchone()
    assert row is not None
    yield Insider(url)
    with psycopg.connect(url) as conn:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (LEDGER_LOCK_KEY,))
        conn.execute("ALTER TABLE ledger_entries DISABLE TRIGGER USER")
        conn.execute("DELETE FROM ledger_entries WHERE seq >= %s", (row[0],))
        conn.execute("ALTER TABLE ledger_entries ENABLE TRIGGER USER")


def _wait(predicate: Callable[[], bool], timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


# -- the notifier ------------------------------------------------------------------------------


class RecordingPublisher:
    """The MQTT channel as the notifier sees it: acknowledges every notice it is given."""

    def __init__(self) -> None:
        self.notices: list[AlertNotice] = []

    def publish(self, notices: list[AlertNotice]) -> bool:
        self.notices += notices
        return True


class Receiver(http.server.ThreadingHTTPServer):
    """A webhook endpoint that records what it receives."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.bodies: list[bytes] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"


class _Handler(http.server.BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        self.server.bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _raise(url: str, site: str, elevator: str, kind: str, at: dt.datetime) -> int:
    """Commit one raised alert through the alert store; returns its entry's seq."""
    signal = AlertSignal(elevator, site, kind, "raise", Severity.CRITICAL, at, {})
    with psycopg.connect(url) as conn:
        event = apply_signal(conn, signal, resolve_thresholds())
        assert event is not None
        record_in_ledger(conn, [event])
        row = conn.execute(
            "SELECT seq FROM ledger_entries WHERE source_table = 'alert_events' AND source_id = %s",
            (event.event_id,),
        ).fetchone()
    assert row is not None
    return int(row[0])


@pytest.fixture
def notifier_site(test_database_url: str) -> Iterator[tuple[str, str]]:
    url = libpq_url(test_database_url)
    with psycopg.connect(url) as conn:
        site, elevator = add_site_with_elevator(conn, "hx")
    yield site, elevator
    with psycopg.connect(url) as conn:
        conn.execute("UPDATE webhook_subscriptions SET active = false WHERE %s = ANY(sites)",
                     (site,))  # fmt: skip
        # Other readers (the API's alert list) must not meet the poisoned deadline later.
        conn.execute("UPDATE alerts SET status = 'resolved', ack_due_at = NULL "
                     "WHERE site_id = %s AND NOT isfinite(ack_due_at)", (site,))  # fmt: skip
        conn.execute("UPDATE alerts SET status = 'resolved' WHERE site_id = %s", (site,))


def test_the_notifier_delivers_the_good_alerts_after_hostile_entries_and_keeps_running(
    test_database_url: str,
    notifier_site: tuple[str, str],
    insider: Insider,
    receiver: Receiver,
) -> None:
    url = libpq_url(test_database_url)
    site, elevator = notifier_site
    with psycopg.connect(url) as conn:
        add_subscription(conn, name=f"hx-{site}", url=receiver.url, sites=[site])
    run = uuid.uuid4().hex[:6]
    publisher = RecordingPublisher()
    config = NotifierConfig(
        mqtt_cursor=f"mqtt-{run}", webhook_cursor=f"webhooks-{run}", new_cursor_at_latest=True,
        webhook_interval_s=0.05, maintenance_interval_s=3600.0, retry_s=0.2,
    )  # fmt: skip
    notifier = Notifier(conninfo=url, publisher=publisher, config=config)
    with psycopg.connect(url) as conn:
        notifier.deliver_new(conn)  # both cursors start at the ledger's end
    now = dt.datetime.now(dt.UTC)
    first = _raise(url, site, elevator, "trapped_between_floors", now)
    bad = insider.append_hostile(site, elevator)
    with psycopg.connect(url) as conn:
        # A due alert whose deadline cannot be read back, escalated before a good one.
        poisoned = add_alert(conn, elevator, site, type_="overspeed")
        conn.execute("UPDATE alerts SET ack_due_at = '-infinity' WHERE id = %s", (poisoned,))
        event_id = conn.execute(
            "INSERT INTO alert_events (alert_id, time, kind, details) "
            "VALUES (%s, now(), 'opened', '{}') RETURNING id",
            (poisoned,),
        ).fetchone()
        assert event_id is not None
        # A webhook delivery owed for an unreadable entry, queued before the good ones.
        conn.execute(
            "INSERT INTO webhook_deliveries (subscription_id, alert_event_id, ledger_seq) "
            "SELECT id, %s, %s FROM webhook_subscriptions WHERE name = %s",
            (event_id[0], bad["deep"], f"hx-{site}"),
        )
    second = _raise(url, site, elevator, "door_open_failure", now)
    with psycopg.connect(url) as conn:
        due = add_alert(conn, elevator, site, type_="alarm_button")
        conn.execute("UPDATE alerts SET ack_due_at = now() - interval '1 s' WHERE id = %s", (due,))
    stop = threading.Event()
    thread = threading.Thread(target=notifier.run, args=(stop,), daemon=True)
    thread.start()

    def escalated(alert_id: int) -> bool:
        with psycopg.connect(url) as conn:
            return bool(conn.execute(
                "SELECT count(*) FROM alert_events WHERE alert_id = %s AND kind = 'escalated'",
                (alert_id,),
            ).fetchone() == (1,))  # fmt: skip

    try:
        assert _wait(lambda: len(receiver.bodies) >= 2 and escalated(due), 30)
        time.sleep(1.0)  # anything else would have arrived by now
        assert thread.is_alive()
    finally:
        stop.set()
        thread.join(10)
    published = [n.seq for n in publisher.notices]
    # Well-formed but forged, `no_such_event` reaches MQTT; every unreadable entry is skipped.
    assert [seq for seq in published if seq != bad["no_such_event"]][:2] == [first, second]
    assert not set(published) & (set(bad.values()) - {bad["no_such_event"]})
    assert [json.loads(body)["seq"] for body in receiver.bodies][:2] == [first, second]
    with psycopg.connect(url) as conn:
        cursors: dict[str, int] = dict(conn.execute(
            "SELECT channel, seq FROM notification_cursors WHERE channel = ANY(%s)",
            ([config.mqtt_cursor, config.webhook_cursor],),
        ).fetchall())  # fmt: skip
        failed = conn.execute(
            "SELECT status, last_error FROM webhook_deliveries WHERE ledger_seq = %s",
            (bad["deep"],),
        ).fetchone()
        escalations = conn.execute(
            "SELECT count(*) FROM alert_events WHERE alert_id = %s AND kind = 'escalated'",
            (poisoned,),
        ).fetchone()
    assert min(cursors.values()) >= second  # moved past every poisoned entry
    assert failed is not None
    assert failed[0] == "failed"
    assert "unreadable" in failed[1]
    assert len(failed[1]) <= 200
    assert escalations == (0,)


# -- the API: stream and audit views ------------------------------------------------------------


@dataclass
class Api:
    base_url: str
    site: str
    elevator: str
    crew: Person
    supervisor: Person


@pytest.fixture
def api(stack_settings: Settings, test_database_url: str) -> Iterator[Api]:
    url = libpq_url(test_database_url)
    with psycopg.connect(url) as conn:
        chain = ChainClient(stack_settings.resolved_chain_url())
        deploy_contract(conn, chain, key=stack_settings.secret("anchorer_key"))
        conn.commit()
        site, elevator = add_site_with_elevator(conn, "hx")
        crew = add_person(conn, stack_settings, "crew", sites=[site])
        supervisor = add_person(conn, stack_settings, "supervisor")
    with running_api(stack_settings, test_database_url) as base_url:
        yield Api(base_url, site, elevator, crew, supervisor)
    with psycopg.connect(url) as conn:
        conn.execute("UPDATE alerts SET status = 'resolved' WHERE site_id = %s", (site,))


def _closed_alert(url: str, api: Api) -> int:
    """A crew step on a new alert, committed with its ledger entry; returns the entry's seq."""
    with psycopg.connect(url) as conn:
        alert_id = add_alert(conn, api.elevator, api.site)
        event = advance_workflow(conn, alert_id, "false_alarm", user_id=api.crew.user_id,
                                 at=dt.datetime.now(dt.UTC))  # fmt: skip
        record_in_ledger(conn, [event])
        conn.commit()
        row = conn.execute("SELECT max(seq) FROM ledger_entries").fetchone()
    assert row is not None
    return int(row[0])


def test_a_stream_resumed_below_hostile_entries_keeps_serving_later_good_ones(
    test_database_url: str, api: Api, insider: Insider
) -> None:
    url = libpq_url(test_database_url)
    _closed_alert(url, api)  # resuming below `first` needs an entry before it
    first = _closed_alert(url, api)
    bad = insider.append_hostile(api.site, api.elevator)
    second = _closed_alert(url, api)
    seqs: list[int] = []
    third = -1
    timeout = httpx.Timeout(10.0, read=20.0)
    headers = api.crew.headers | {"Last-Event-ID": str(first - 1)}
    with (
        httpx.Client(base_url=api.base_url, timeout=timeout) as http,
        http.stream("GET", "/api/v1/alerts/stream", headers=headers) as response,
    ):
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: "):
                seq = json.loads(line.removeprefix("data: "))["seq"]
                if seq == bad["no_such_event"]:  # well-formed, forged: only the audit tells
                    continue
                seqs.append(seq)
                if len(seqs) == 2:
                    third = _closed_alert(url, api)  # live, after the broadcaster read them
            if len(seqs) == 3:
                break
    assert seqs == [first, second, third]
    with httpx.Client(base_url=api.base_url, timeout=timeout) as http:
        assert http.get("/healthz").status_code == 200
        metrics = http.get("/metrics", headers=api.supervisor.headers).text
    assert 'liftledger_unreadable_entries_total{reader="api_stream"}' in metrics


def test_the_audit_views_answer_for_hostile_entries_without_a_server_error(
    test_database_url: str, api: Api, insider: Insider
) -> None:
    url = libpq_url(test_database_url)
    good = _closed_alert(url, api)
    bad = insider.append_hostile(api.site, api.elevator)
    with httpx.Client(base_url=api.base_url, timeout=60.0) as http:
        for name, seq in bad.items():
            answer = http.get(f"/api/v1/audit/entries/{seq}", headers=api.supervisor.headers)
            assert answer.status_code == 200, (name, answer.text[:300])
            body = answer.json()
            assert body["verified"] is False
            kinds = {problem["kind"] for problem in body["problems"] if problem["seq"] == seq}
            assert kinds, (name, body["problems"])
            if name in UNREADABLE:
                assert "unreadable" in kinds, (name, body["problems"])
        trail = http.get(f"/api/v1/audit/elevators/{api.elevator}", params={"limit": 50},
                         headers=api.supervisor.headers)  # fmt: skip
        report = http.post("/api/v1/audit/verify", headers=api.supervisor.headers)
        assert http.get(f"/api/v1/audit/entries/{good}",
                        headers=api.supervisor.headers).status_code == 200  # fmt: skip
    assert trail.status_code == 200, trail.text[:300]
    items = {item["seq"]: item for item in trail.json()["items"]}
    assert good in items
    assert set(bad.values()) <= set(items)
    assert items[bad["deep"]]["content"] == {}
    assert "unreadable" in items[bad["deep"]]["summary"]
    assert report.status_code == 200, report.text[:300]
    named = {(p["seq"], p["kind"]) for p in report.json()["problems"]}
    assert (bad["deep"], "unreadable") in named
    assert (bad["invalid_utf8"], "unreadable") in named


# -- the verifier -------------------------------------------------------------------------------


def test_the_verifier_names_each_hostile_entry_by_seq(
    stack_settings: Settings, test_database_url: str
) -> None:
    url = libpq_url(test_database_url)
    chain = ChainClient(stack_settings.resolved_chain_url())
    with psycopg.connect(url) as conn:
        deployment = deploy_contract(conn, chain, key=stack_settings.secret("anchorer_key"))
        conn.commit()
        chain = contract_chain(chain.url, address=deployment.address)
        site, elevator = add_site_with_elevator(conn, "hv")
    deep_source = _raise(url, site, elevator, "power_failure", dt.datetime.now(dt.UTC))
    with psycopg.connect(url) as conn:
        with conn.transaction(force_rollback=True):
            seqs = {
                name: append_as_insider(conn, elevator, canonical, source_id=1)
                for name, canonical in hostile_entries(site, elevator).items()
            }
            # The source row an entry points to can be hostile too: jsonb holds 10,000 levels.
            conn.execute(
                "UPDATE alert_events SET details = %s::jsonb WHERE id = "
                "(SELECT source_id FROM ledger_entries WHERE seq = %s)",
                ('{"a":' + "[" * 10_000 + "]" * 10_000 + "}", deep_source),
            )
            report = verify_log(conn, chain, sources=LEDGER_SOURCES)
        conn.execute("UPDATE alerts SET status = 'resolved' WHERE site_id = %s", (site,))
    named = {(p.seq, p.kind) for p in report.problems}
    for name, seq in seqs.items():
        assert any(named_seq == seq for named_seq, _ in named), name
        if name in UNREADABLE:
            assert (seq, "unreadable") in named, name
    assert (deep_source, "source_changed") in named
    assert all(len(p.detail) < 400 for p in report.problems), [
        p for p in report.problems if len(p.detail) >= 400
    ]


def test_an_alert_whose_stored_event_details_nest_too_deep_does_not_kill_the_api(
    stack_settings: Settings, test_database_url: str
) -> None:
    with psycopg.connect(libpq_url(test_database_url), autocommit=True) as conn:
        site, elevator = add_site_with_elevator(conn, "deep")
        supervisor = add_person(conn, stack_settings, "supervisor")
        alert_id = add_alert(conn, elevator, site)
        # PostgreSQL's own jsonb limit is below 100,000 levels; 5,000 is far past ours.
        conn.execute(
            "INSERT INTO alert_events (alert_id, kind, time, details) "
            "VALUES (%s, 'opened', now(), %s::jsonb)",
            (alert_id, '{"a":' * 5_000 + "1" + "}" * 5_000),
        )
    with running_api(stack_settings, test_database_url) as url, client(url) as http:
        answer = http.get(f"/api/v1/alerts/{alert_id}", headers=supervisor.headers)
        assert answer.status_code == 500  # refused, and the process and connection live on
        assert answer.json()["code"] == "unreadable_stored_data"
        assert http.get("/healthz").status_code == 200
        listed = http.get("/api/v1/alerts", headers=supervisor.headers)
        assert listed.status_code == 200

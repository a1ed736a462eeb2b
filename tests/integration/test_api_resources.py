"""The API's resources beyond the authorization matrix: telemetry pages and buckets, alert
pages, stream resumption, signed maintenance records and the registry's validation codes."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import secrets
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import pytest
from eth_account import Account

from alerts.store import advance_workflow, record_in_ledger
from core.db import libpq_url
from core.settings import Settings
from ledger.anchorer import Anchorer, AnchorerConfig
from ledger.chain import ChainClient
from ledger.deploy import deploy_contract
from maintenance.records import MaintenanceRecordInput, SigningDomain, new_nonce, sign_record
from tests.factories import add_samples
from tests.integration.api_helpers import (
    Person,
    add_alert,
    add_person,
    add_site_with_elevator,
    client,
    running_api,
)

T0 = dt.datetime(2026, 11, 27, 8, 0, tzinfo=dt.UTC)


@dataclass
class Setup:
    """A site with an elevator, its crew (with a signing key), an admin and the API."""

    conn: psycopg.Connection[Any]
    http: httpx.Client
    base_url: str
    site: str
    elevator: str
    crew: Person
    crew_key: str
    admin: Person
    supervisor: Person
    chain: ChainClient


@pytest.fixture(scope="module")
def setup(stack_settings: Settings, test_database_url: str) -> Iterator[Setup]:
    """The API on the test database with a freshly deployed contract."""
    conn = psycopg.connect(libpq_url(test_database_url))
    chain = ChainClient(stack_settings.resolved_chain_url())
    deployment = deploy_contract(conn, chain, key=stack_settings.secret("anchorer_key"))
    conn.commit()
    site, elevator = add_site_with_elevator(conn, "res")
    key = "0x" + secrets.token_hex(32)
    crew = add_person(conn, stack_settings, "crew", sites=[site],
                      signer=Account.from_key(key).address)  # fmt: skip
    admin = add_person(conn, stack_settings, "admin")
    supervisor = add_person(conn, stack_settings, "supervisor")
    with running_api(stack_settings, test_database_url) as base_url, client(base_url) as http:
        yield Setup(conn, http, base_url, site, elevator, crew, key, admin, supervisor,
                    ChainClient(chain.url, contract_address=deployment.address))  # fmt: skip
    conn.close()


def _samples(conn: psycopg.Connection[Any], elevator: str, count: int) -> None:
    add_samples(conn, elevator, [
        {"time": T0 + dt.timedelta(seconds=10 * n), "received_at": T0, "seq": n,
         "floor": 1 + n % 5, "pos_m": 0, "speed_mps": 1.0 if n % 2 else 0.0, "load_kg": 70,
         "occupied": True}
        for n in range(count)
    ])  # fmt: skip
    conn.commit()


def test_telemetry_pages_cover_every_sample_once_and_buckets_count_them(setup: Setup) -> None:
    _samples(setup.conn, setup.elevator, 25)  # 10 s apart: 00:00:00 … 00:04:00
    end = T0 + dt.timedelta(hours=1)
    params: dict[str, Any] = {"start": T0.isoformat(), "end": end.isoformat(), "limit": 10}
    path = f"/api/v1/elevators/{setup.elevator}/telemetry"
    seen: list[str] = []
    while True:
        page = setup.http.get(path, params=params, headers=setup.crew.headers).json()
        seen += [sample["time"] for sample in page["samples"]]
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert len(seen) == 25
    assert len(set(seen)) == 25
    assert seen == sorted(seen)
    del params["cursor"], params["limit"]
    buckets = setup.http.get(path, params=params | {"bucket": "1m"},
                             headers=setup.crew.headers).json()["buckets"]  # fmt: skip
    assert [b["samples"] for b in buckets] == [6, 6, 6, 6, 1]
    assert sum(b["moving_samples"] for b in buckets) == 12
    a_year_in_seconds = params | {"bucket": "1s", "start": "2025-11-01T00:00:00Z"}
    too_fine = setup.http.get(path, params=a_year_in_seconds, headers=setup.crew.headers)
    assert too_fine.status_code == 422
    assert too_fine.json()["field"] == "bucket"


def test_the_largest_telemetry_page_the_schema_allows_is_answered(setup: Setup) -> None:
    # A page of `limit` reads `limit + 1` samples to know whether another follows: the
    # largest page must not trip the read's own bound (it answered 500 once).
    params: dict[str, Any] = {"start": T0.isoformat(), "limit": 10_000,
                              "end": (T0 + dt.timedelta(hours=1)).isoformat()}  # fmt: skip
    answer = setup.http.get(f"/api/v1/elevators/{setup.elevator}/telemetry", params=params,
                            headers=setup.crew.headers)  # fmt: skip
    assert answer.status_code == 200, answer.text
    assert answer.json()["next_cursor"] is None


def test_alert_pages_never_repeat_or_skip_an_alert(setup: Setup) -> None:
    made = {add_alert(setup.conn, setup.elevator, setup.site, status="resolved",
                      type_="power_failure") for _ in range(7)}  # fmt: skip
    params: dict[str, Any] = {"elevator": setup.elevator, "limit": 3}
    seen: list[int] = []
    while True:
        page = setup.http.get("/api/v1/alerts", params=params, headers=setup.admin.headers).json()
        seen += [alert["id"] for alert in page["items"]]
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert made <= set(seen)
    assert len(seen) == len(set(seen))
    assert seen == sorted(seen, reverse=True)


def test_a_stream_resumed_with_last_event_id_replays_what_was_missed(setup: Setup) -> None:
    earlier = add_alert(setup.conn, setup.elevator, setup.site)
    record_in_ledger(setup.conn, [advance_workflow(setup.conn, earlier, "false_alarm",
                     user_id=setup.crew.user_id, at=dt.datetime.now(dt.UTC))])  # fmt: skip
    setup.conn.commit()
    alert_id = add_alert(setup.conn, setup.elevator, setup.site)
    seqs = []
    for action in ("acknowledge", "on_site", "resolve"):
        event = advance_workflow(setup.conn, alert_id, action, user_id=setup.crew.user_id,
                                 at=dt.datetime.now(dt.UTC))  # fmt: skip
        record_in_ledger(setup.conn, [event])
        setup.conn.commit()
        row = setup.conn.execute("SELECT max(seq) FROM ledger_entries").fetchone()
        assert row is not None
        seqs.append(int(row[0]))
    headers = setup.crew.headers | {"Last-Event-ID": str(seqs[0] - 1)}
    events: list[dict[str, Any]] = []
    timeout = httpx.Timeout(10.0, read=20.0)
    with (
        httpx.Client(base_url=setup.base_url, timeout=timeout) as http,
        http.stream("GET", "/api/v1/alerts/stream", headers=headers) as response,
    ):
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line.removeprefix("data: ")))
            if len(events) == 3:
                break
    assert [(e["seq"], e["event"], e["alert_id"]) for e in events] == [
        (seqs[0], "acknowledged", alert_id), (seqs[1], "on_site", alert_id),
        (seqs[2], "resolved", alert_id),
    ]  # fmt: skip


def _record_body(setup: Setup, **changes: Any) -> dict[str, Any]:
    body = {"elevator_id": setup.elevator, "kind": "routine",
            "performed_at": "2026-11-27T10:00:00+00:00", "summary": "half-monthly maintenance",
            "details": {"items": "brakes, doors, ropes", "minutes": 95}}  # fmt: skip
    return body | changes


def test_a_signed_record_is_verified_on_receipt_and_its_entry_verifies_on_chain(
    setup: Setup, stack_settings: Settings
) -> None:
    nonce = new_nonce()
    body = _record_body(setup) | {"nonce": nonce.hex()}
    record = MaintenanceRecordInput(
        elevator_id=setup.elevator, kind="routine",
        performed_at=dt.datetime.fromisoformat(body["performed_at"]), summary=body["summary"],
        details=body["details"], nonce=nonce,
    )  # fmt: skip
    domain = SigningDomain(setup.chain.chain_id(), str(setup.chain.address))
    signature = sign_record(setup.crew_key, record, domain)
    stranger = sign_record("0x" + secrets.token_hex(32), record, domain)
    refused = setup.http.post("/api/v1/maintenance", headers=setup.crew.headers,
                              json=body | {"signature": stranger.hex()})  # fmt: skip
    assert refused.status_code == 422
    assert refused.json()["code"] == "signature_mismatch"
    filed = setup.http.post("/api/v1/maintenance", headers=setup.crew.headers,
                            json=body | {"signature": "0x" + signature.hex()})  # fmt: skip
    assert filed.status_code == 201, filed.text
    assert filed.json()["signed"] is True
    seq = filed.json()["ledger_seq"]

    anchorer = Anchorer(conninfo="", chain=setup.chain, key=stack_settings.secret("anchorer_key"),
                        config=AnchorerConfig(batch_entries=1, batch_s=0))  # fmt: skip
    setup.conn.commit()
    setup.conn.autocommit = True
    assert anchorer.step(setup.conn) == "anchored"
    setup.conn.autocommit = False
    deadline = time.monotonic() + 10
    while True:
        proof = setup.http.get(f"/api/v1/audit/entries/{seq}", headers=setup.supervisor.headers)
        if proof.json()["anchored"] or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert proof.json()["verified"] is True, proof.json()["problems"]
    assert proof.json()["signed"] is True
    assert proof.json()["content"]["signer"] == Account.from_key(setup.crew_key).address


def test_a_signed_record_filed_again_is_refused_with_409(setup: Setup) -> None:
    nonce = new_nonce()
    body = _record_body(setup, summary="door contacts cleaned", nonce="0x" + nonce.hex())
    record = MaintenanceRecordInput(
        elevator_id=setup.elevator, kind="routine",
        performed_at=dt.datetime.fromisoformat(body["performed_at"]), summary=body["summary"],
        details=body["details"], nonce=nonce,
    )  # fmt: skip
    domain = SigningDomain(setup.chain.chain_id(), str(setup.chain.address))
    body["signature"] = sign_record(setup.crew_key, record, domain).hex()
    filed = setup.http.post("/api/v1/maintenance", headers=setup.crew.headers, json=body)
    assert filed.status_code == 201, filed.text
    again = setup.http.post("/api/v1/maintenance", headers=setup.crew.headers, json=body)
    assert again.status_code == 409, again.text
    assert (again.json()["code"], again.json()["field"]) == ("duplicate_record", "nonce")
    unsigned_nonce = setup.http.post("/api/v1/maintenance", headers=setup.crew.headers,
                                     json=body | {"nonce": None})  # fmt: skip
    assert (unsigned_nonce.status_code, unsigned_nonce.json()["code"]) == (422, "no_nonce")


def test_a_signing_key_of_another_user_is_refused_with_409(setup: Setup) -> None:
    taken = Account.from_key(setup.crew_key).address
    added = setup.http.post(
        "/api/v1/users", headers=setup.admin.headers,
        json={"username": f"twin-{uuid.uuid4().hex[:8]}", "role": "supervisor",
              "signer_address": taken.lower()},
    )  # fmt: skip
    assert added.status_code == 409, added.text
    assert (added.json()["code"], added.json()["field"]) == ("signer_taken", "signer_address")
    changed = setup.http.put(
        f"/api/v1/users/{setup.supervisor.username}", headers=setup.admin.headers,
        json={"signer_address": taken},
    )  # fmt: skip
    assert changed.status_code == 409, changed.text
    assert setup.crew.username in changed.json()["message"]


@pytest.mark.parametrize(
    ("changes", "status", "code", "field"),
    [
        ({"performed_at": "2999-01-01T00:00:00Z"}, 422, "invalid_input", "performed_at"),
        ({"kind": "tea-break"}, 422, "invalid_input", "kind"),
        ({"corrects_id": 9_000_000_000}, 422, "bad_correction", "corrects_id"),
        ({"details": {"n": 2**60}}, 422, "invalid_input", "details.n.int"),
        ({"performed_at": "0001-01-01T00:00:00+01:00"}, 422, "invalid_input", "performed_at"),
        ({"performed_at": "1969-12-31T23:59:59Z"}, 422, "invalid_input", "performed_at"),
        ({"elevator_id": "nope-404"}, 404, "not_found", None),
    ],
)
def test_a_refused_record_names_its_field_and_stores_nothing(
    setup: Setup, changes: dict[str, Any], status: int, code: str, field: str | None
) -> None:
    before = setup.conn.execute("SELECT count(*) FROM maintenance_records").fetchone()
    response = setup.http.post("/api/v1/maintenance", headers=setup.crew.headers,
                               json=_record_body(setup, **changes))  # fmt: skip
    assert response.status_code == status, response.text
    assert response.json()["code"] == code
    if field is not None:
        assert response.json()["field"].startswith(field.split(".")[0])
    assert setup.conn.execute("SELECT count(*) FROM maintenance_records").fetchone() == before
    setup.conn.rollback()


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"lowest_floor": 9, "highest_floor": 3}, 422, "bad_floors"),
        ({"site_id": "no-such-site"}, 422, "unknown_site"),
        ({"thresholds": {"trapped_seconds": 10}}, 422, "unknown_threshold"),
        ({"rated_speed_mps": -1}, 422, "invalid_input"),
        ({"active": "yes"}, 422, "invalid_input"),
        ({"building": None}, 422, "invalid_input"),
        ({"thresholds": None}, 422, "invalid_input"),
        ({"lowest_floor": None}, 422, "invalid_input"),
    ],
)
def test_a_refused_registry_change_says_why(
    setup: Setup, body: dict[str, Any], status: int, code: str
) -> None:
    response = setup.http.put(f"/api/v1/elevators/{setup.elevator}", json=body,
                              headers=setup.admin.headers)  # fmt: skip
    assert response.status_code == status, response.text
    assert response.json()["code"] == code


def test_an_admin_changes_an_elevator_and_everyone_sees_it(setup: Setup) -> None:
    change = {"building": "Tower 7", "thresholds": {"trapped_s": 30}}
    changed = setup.http.put(f"/api/v1/elevators/{setup.elevator}", headers=setup.admin.headers,
                             json=change)  # fmt: skip
    assert changed.status_code == 200
    seen = setup.http.get(f"/api/v1/elevators/{setup.elevator}", headers=setup.crew.headers)
    assert seen.json()["building"] == "Tower 7"
    assert seen.json()["thresholds"] == {"trapped_s": 30.0}
    duplicate = setup.http.post("/api/v1/elevators", headers=setup.admin.headers, json={
        "id": setup.elevator, "site_id": setup.site, "building": "B", "lowest_floor": 1,
        "highest_floor": 5, "rated_speed_mps": 1.0, "rated_load_kg": 630})  # fmt: skip
    assert duplicate.status_code == 409
    assert duplicate.json()["code"] == "elevator_exists"


def test_more_concurrent_requests_than_database_connections_all_answer_promptly(
    setup: Setup,
) -> None:
    # 150 at once: more than the database pool (10) and the thread pool (40) hold together.
    async def fetch_all() -> list[tuple[int, float]]:
        limits = httpx.Limits(max_connections=150)
        async with httpx.AsyncClient(base_url=setup.base_url, timeout=30.0, limits=limits) as http:

            async def fetch() -> tuple[int, float]:
                started = time.perf_counter()
                response = await http.get("/api/v1/alerts", headers=setup.admin.headers)
                return response.status_code, time.perf_counter() - started

            return await asyncio.gather(*(fetch() for _ in range(150)))

    results = asyncio.run(fetch_all())
    assert [status for status, _ in results] == [200] * 150
    assert max(elapsed for _, elapsed in results) < 8.0  # a stall waits out the 10 s timeout


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("telemetry", {"end": "0001-01-01T00:30:00Z"}),
        ("telemetry", {"start": "9999-12-30T00:00:00Z"}),
        ("report", {"end": "0001-01-10T00:00:00Z"}),
        ("report", {"start": "9999-12-30T00:00:00Z", "end": "9999-12-31T23:00:00-05:00"}),
    ],
)
def test_a_time_outside_what_the_platform_holds_is_refused(
    setup: Setup, path: str, params: dict[str, str]
) -> None:
    url = (f"/api/v1/elevators/{setup.elevator}/telemetry" if path == "telemetry"
           else "/api/v1/reports/sla")  # fmt: skip
    response = setup.http.get(url, params=params, headers=setup.admin.headers)
    assert response.status_code == 422, response.text
    assert response.json()["field"] in {"start", "end"}


def test_a_body_that_is_not_json_is_a_bad_request(setup: Setup) -> None:
    response = setup.http.post("/api/v1/users", content=b'{"username": ', headers={
        **setup.admin.headers, "Content-Type": "application/json"})  # fmt: skip
    assert response.status_code == 400
    assert response.json()["code"] == "bad_request"


def test_an_elevator_with_unresolved_alerts_stays_on_its_site(
    setup: Setup, test_database_url: str
) -> None:
    with psycopg.connect(libpq_url(test_database_url)) as conn:
        other_site, _ = add_site_with_elevator(conn, "res-move")
    add_alert(setup.conn, setup.elevator, setup.site)
    moved = setup.http.put(f"/api/v1/elevators/{setup.elevator}", headers=setup.admin.headers,
                           json={"site_id": other_site})  # fmt: skip
    assert moved.status_code == 409
    assert moved.json()["code"] == "unresolved_alerts"


def test_an_open_stream_ends_when_its_user_is_deactivated(
    setup: Setup, stack_settings: Settings
) -> None:
    person = add_person(setup.conn, stack_settings, "supervisor")
    timeout = httpx.Timeout(10.0, read=60.0)
    started = time.monotonic()
    with (
        httpx.Client(base_url=setup.base_url, timeout=timeout) as http,
        http.stream("GET", "/api/v1/alerts/stream", headers=person.headers) as response,
    ):
        assert response.status_code == 200
        changed = setup.http.put(f"/api/v1/users/{person.username}", json={"active": False},
                                 headers=setup.admin.headers)  # fmt: skip
        assert changed.status_code == 200
        lines = list(response.iter_lines())  # returns when the server ends the stream
    assert lines[0] == "retry: 3000"
    assert time.monotonic() - started < 45

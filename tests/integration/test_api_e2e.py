"""End to end through the API: a trapped passenger, the crew's rescue, the supervisor's proof.

A simulated elevator traps a passenger between floors; the real collector detects it and
the alert reaches the crew on the API's event stream. The crew acknowledges it, reports on
site and resolves it through the API; the supervisor reads the rescue SLA report with the
three times, and every step's ledger entry, once anchored, verifies against the root on
the chain. A crew member of another site sees none of it. The API runs as the real
`liftledger api` process; the operator's own steps (first admin, contract) use the CLI.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from core.db import libpq_url
from core.settings import Settings
from ledger.anchorer import Anchorer, AnchorerConfig
from ledger.chain import ChainClient
from ledger.deploy import current_deployment
from simulators.fleet import Fleet
from simulators.publisher import FleetPublisher
from simulators.runner import MqttSink, run_fleet
from simulators.scenario import ScheduledFault
from tests.factories import add_site
from tests.integration.broker_accounts import broker_devices, identities
from tests.integration.cli_helpers import CLI, REPO, clean_environment, free_port, run_cli
from tests.integration.collector_process import CollectorProcess
from tests.simulators.test_fault_signatures import CASES

FAULT = "trapped_between_floors"
SPEEDUP = 60.0
WAIT_S = 90.0
PASSWORD = "rescue-in-30"


@dataclasses.dataclass
class Api:
    """The API process and an HTTP client to it."""

    http: httpx.Client
    base_url: str
    admin: str

    def sign_in(self, username: str) -> dict[str, str]:
        """Password sign-in; the Authorization header with the issued token."""
        response = self.http.post(
            "/api/v1/auth/token", data={"username": username, "password": PASSWORD}
        )
        assert response.status_code == 200, response.text
        return {"Authorization": f"Bearer {response.json()['access_token']}"}


@pytest.fixture(scope="module")
def api(stack_settings: Settings, test_database_url: str) -> Iterator[Api]:
    """`liftledger api` on the test database, with a first admin made by the CLI."""
    port = free_port()
    env = clean_environment(
        LIFTLEDGER_DATA_DIR=str(stack_settings.data_dir),
        LIFTLEDGER_DATABASE_URL=test_database_url,
    )
    admin = f"e2e-admin-{uuid.uuid4().hex[:6]}"
    added = run_cli("users", "add", admin, "--role", "admin", "--password-stdin", env=env,
                    input_text=PASSWORD + "\n")  # fmt: skip
    assert added.returncode == 0, added.stderr
    deployed = run_cli("contracts", "deploy", env=env)
    assert deployed.returncode == 0, deployed.stderr
    log = Path(tempfile.gettempdir()) / f"test-api-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*CLI, "api", "--port", str(port)], env=env, cwd=REPO,
            stdout=subprocess.DEVNULL, stderr=out,
        )  # fmt: skip
    base_url = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=base_url, timeout=30.0) as http:
        deadline = time.monotonic() + 60
        while True:
            try:
                if http.get("/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the API did not answer /healthz"
            time.sleep(0.2)
        try:
            yield Api(http, base_url, admin)
        finally:
            process.terminate()
            process.wait(20)


class EventStream:
    """An SSE client reading the alert stream in a thread."""

    def __init__(self, base_url: str, headers: dict[str, str]) -> None:
        self.events: list[dict[str, Any]] = []
        self.ready = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, args=(base_url, headers), daemon=True)
        self._thread.start()
        assert self.ready.wait(20), "the stream did not open"

    def _read(self, base_url: str, headers: dict[str, str]) -> None:
        # The server sends a comment every 15 s, so a read never waits longer than that.
        timeout = httpx.Timeout(10.0, read=60.0)
        with (
            httpx.Client(base_url=base_url, timeout=timeout) as http,
            http.stream("GET", "/api/v1/alerts/stream", headers=headers) as response,
        ):
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            self.ready.set()
            try:
                for line in response.iter_lines():
                    if self._stop.is_set():
                        return
                    if line.startswith("data: "):
                        self.events.append(json.loads(line.removeprefix("data: ")))
            except httpx.TransportError:  # the server went away: the test is over
                return

    def wait_for(self, elevator: str, event: str, timeout_s: float) -> dict[str, Any]:
        """The first notice of `event` for `elevator`."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for notice in list(self.events):
                if notice["elevator"] == elevator and notice["event"] == event:
                    return notice
            time.sleep(0.1)
        raise AssertionError(f"no {event} notice for {elevator} in {timeout_s} s: {self.events}")

    def close(self) -> None:
        """Stop reading (the thread ends at the next line or keepalive)."""
        self._stop.set()


def _trap_a_passenger(settings: Settings, site: str, elevator: str) -> None:
    _, tower, duration_s, until_s, _ = CASES[FAULT]
    spec = dataclasses.replace(tower, site=site, elevator=elevator)
    # Device time runs SPEEDUP times faster than the wall clock: start far enough back that
    # it never runs ahead of the receive time.
    start = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=until_s + 5)
    fleet = Fleet([spec], seed=3, start=start,
                  faults=[ScheduledFault(30.0, elevator, FAULT, duration_s)])  # fmt: skip
    devices = identities(settings, [(site, elevator)])
    with FleetPublisher(mqtt_url=settings.resolved_mqtt_url(), devices=devices) as publisher:
        publisher.start()
        assert publisher.wait_connected(WAIT_S) == 1
        run_fleet(fleet, MqttSink(publisher), duration_s=until_s, speedup=SPEEDUP)
        assert publisher.flush(WAIT_S)


@pytest.mark.integration
def test_a_trapped_passenger_is_rescued_and_every_step_verifies_on_chain(
    api: Api,
    stack_settings: Settings,
    test_database_url: str,
    service_database_urls: dict[str, str],
) -> None:
    run = uuid.uuid4().hex[:6]
    site, other_site = f"e2e-api-{run}", f"e2e-api-other-{run}"
    elevator = f"e2e-api-el-{run}"
    admin = api.sign_in(api.admin)

    # The operator's registry: the sites (CSV import in production), then the API.
    with psycopg.connect(libpq_url(test_database_url), autocommit=True) as conn:
        for site_id in (site, other_site):
            add_site(conn, site_id)
    _, tower, *_ = CASES[FAULT]
    created = api.http.post("/api/v1/elevators", headers=admin, json={
        "id": elevator, "site_id": site, "building": "Tower 1",
        "lowest_floor": tower.lowest_floor, "highest_floor": tower.highest_floor,
        "floor_height_m": tower.floor_height_m, "rated_speed_mps": tower.rated_speed_mps,
        "rated_load_kg": tower.rated_load_kg, "acceleration_mps2": tower.acceleration_mps2,
        "jerk_mps3": tower.jerk_mps3, "thresholds": {"clock_skew_s": 1e9},
    })  # fmt: skip
    assert created.status_code == 201, created.text
    people = {}
    for name, role, sites in (("crew", "crew", [site]), ("stranger", "crew", [other_site]),
                              ("supervisor", "supervisor", [])):  # fmt: skip
        username = f"e2e-{name}-{run}"
        made = api.http.post("/api/v1/users", headers=admin, json={
            "username": username, "role": role, "sites": sites, "password": PASSWORD})  # fmt: skip
        assert made.status_code == 201, made.text
        people[name] = api.sign_in(username)

    crew_stream = EventStream(api.base_url, people["crew"])
    stranger_stream = EventStream(api.base_url, people["stranger"])
    stop = threading.Event()
    anchorer = _anchorer(stack_settings, service_database_urls["anchorer"])
    anchoring = threading.Thread(target=anchorer.run, args=(stop,), daemon=True)
    collector = CollectorProcess(stack_settings, test_database_url, f"test-api-{run}",
                                 sites=[site])  # fmt: skip
    try:
        with broker_devices(stack_settings, [(site, elevator)]):
            collector.open_session()
            collector.start()
            anchoring.start()
            _trap_a_passenger(stack_settings, site, elevator)
            opened = crew_stream.wait_for(elevator, "opened", WAIT_S)
        assert opened["type"] == FAULT
        assert opened["severity"] == "critical"
        alert_id = opened["alert_id"]

        shown = api.http.get(f"/api/v1/elevators/{elevator}", headers=people["crew"]).json()
        # A trapped passenger usually presses the alarm button too: a second alert.
        assert alert_id in [a["id"] for a in shown["active_alerts"]]

        for step, status in (("ack", "acknowledged"), ("on-site", "on_site"),
                             ("resolve", "resolved")):  # fmt: skip
            done = api.http.post(f"/api/v1/alerts/{alert_id}/{step}", headers=people["crew"],
                                 json={"note": f"{step} by the e2e crew"})  # fmt: skip
            assert done.status_code == 200, done.text
            assert done.json()["status"] == status
            crew_stream.wait_for(elevator, status, 20)
        again = api.http.post(f"/api/v1/alerts/{alert_id}/resolve", headers=people["crew"])
        assert again.status_code == 409
        assert again.json()["code"] == "invalid_transition"

        sla = api.http.get("/api/v1/reports/sla", headers=people["supervisor"],
                           params={"site": site}).json()  # fmt: skip
        [rescue] = [row for row in sla["rows"] if row["alert_id"] == alert_id]
        assert rescue["status"] == "resolved"
        assert 0 < rescue["respond_s"] <= rescue["arrive_s"] <= rescue["finish_s"]
        assert rescue["finish_s"] < 1800
        assert rescue["breached"] is False
        csv = api.http.get("/api/v1/reports/sla", headers=people["supervisor"],
                           params={"site": site, "format": "csv"})  # fmt: skip
        assert csv.headers["content-type"].startswith("text/csv")
        assert str(alert_id) in csv.text

        detail = api.http.get(f"/api/v1/alerts/{alert_id}", headers=people["supervisor"]).json()
        steps = {event["kind"]: event["ledger_seq"] for event in detail["events"]}
        assert {"opened", "acknowledged", "on_site", "resolved"} <= set(steps)
        trail = api.http.get(f"/api/v1/audit/elevators/{elevator}", params={"limit": 500},
                             headers=people["supervisor"]).json()  # fmt: skip
        assert set(steps.values()) <= {item["seq"] for item in trail["items"]}
        for kind in ("opened", "acknowledged", "on_site", "resolved"):
            proof = _wait_until_anchored(api, people["supervisor"], steps[kind])
            assert proof["verified"] is True, proof["problems"]
            assert proof["anchor"]["root"] != "0x"
            assert proof["content"]["event"] == kind

        report = api.http.post("/api/v1/audit/verify", headers=people["supervisor"]).json()
        assert report["entries"] > max(steps.values())
        assert report["anchors_checked"] >= 1
        mine = [p for p in report["problems"] if p["seq"] in set(steps.values())]
        assert mine == []

        assert [n for n in stranger_stream.events if n["elevator"] == elevator] == []
        hidden = api.http.get(f"/api/v1/alerts/{alert_id}", headers=people["stranger"])
        assert hidden.status_code == 403
    finally:
        stop.set()
        crew_stream.close()
        stranger_stream.close()
        collector.stop()
        collector.discard_session()
        anchoring.join(10)


def _anchorer(settings: Settings, database_url: str) -> Anchorer:
    """The anchorer, connected as `database_url` (its own role)."""
    chain = ChainClient(settings.resolved_chain_url())
    with psycopg.connect(libpq_url(database_url)) as conn:
        deployment = current_deployment(conn, chain.chain_id())
    assert deployment is not None
    chain = ChainClient(chain.url, contract_address=deployment.address)
    config = AnchorerConfig(batch_s=1.0, batch_entries=1000)
    return Anchorer(conninfo=libpq_url(database_url), chain=chain,
                    key=settings.secret("anchorer_key"), config=config)  # fmt: skip


def _wait_until_anchored(api: Api, headers: dict[str, str], seq: int) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        proof = api.http.get(f"/api/v1/audit/entries/{seq}", headers=headers)
        assert proof.status_code == 200, proof.text
        body: dict[str, Any] = proof.json()
        if body["anchored"] or time.monotonic() > deadline:
            return body
        time.sleep(0.5)

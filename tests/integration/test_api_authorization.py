"""The authorization matrix: every route, every role, own and other site (SPEC §6, §8).

Crew see and act only on their own sites; supervisors read everything and change nothing;
admins manage the registry and the users. Each case sends one real HTTP request to the API
on the test database and checks the exact outcome: `ok` (the route's success status),
`deny` (403 `forbidden`) or `hidden` (a list answered without the other site's rows).
Without a token every route answers 401.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import pytest

from core.db import libpq_url
from core.settings import Settings
from ledger.chain import ChainClient
from ledger.deploy import deploy_contract
from tests.integration.api_helpers import (
    Person,
    add_alert,
    add_person,
    add_site_with_elevator,
    client,
    ledgered_acknowledgement,
    running_api,
)

ROLES = ("crew", "supervisor", "admin")
SCOPES = ("own", "other")


@dataclass
class World:
    """Two sites, a crew member of the first, a supervisor, an admin, and their data."""

    conn: psycopg.Connection[Any]
    http: httpx.Client
    people: dict[str, Person]
    sites: dict[str, str]
    elevators: dict[str, str]
    entries: dict[str, int]

    def alert(self, scope: str, status: str = "open") -> int:
        """A fresh alert on the scope's elevator."""
        return add_alert(self.conn, self.elevators[scope], self.sites[scope], status=status)


@pytest.fixture(scope="module")
def world(stack_settings: Settings, test_database_url: str) -> Iterator[World]:
    """The API serving a database with two sites and people of every role."""
    conn = psycopg.connect(libpq_url(test_database_url))
    own_site, own_elevator = add_site_with_elevator(conn, "az-own")
    other_site, other_elevator = add_site_with_elevator(conn, "az-other")
    deploy_contract(
        conn, ChainClient(stack_settings.resolved_chain_url()),
        key=stack_settings.secret("anchorer_key"),
    )  # fmt: skip
    conn.commit()
    people = {
        "crew": add_person(conn, stack_settings, "crew", sites=[own_site]),
        "supervisor": add_person(conn, stack_settings, "supervisor"),
        "admin": add_person(conn, stack_settings, "admin"),
    }
    entries = {}
    for scope, (site, elevator) in {"own": (own_site, own_elevator),
                                     "other": (other_site, other_elevator)}.items():  # fmt: skip
        entries[scope] = ledgered_acknowledgement(
            conn, elevator, site, user_id=people["admin"].user_id
        )
    with running_api(stack_settings, test_database_url) as base_url, client(base_url) as http:
        yield World(conn, http, people,
                    {"own": own_site, "other": other_site},
                    {"own": own_elevator, "other": other_elevator}, entries)  # fmt: skip
    conn.close()


@dataclass(frozen=True)
class Call:
    """One request of a route for a scope."""

    method: str
    path: str
    json: Any = None
    params: dict[str, Any] | None = None
    stream: bool = False


@dataclass(frozen=True)
class Route:
    """A route, how to call it for a scope, and who may."""

    name: str
    call: Callable[[World, str], Call]
    ok: int  # the success status
    allowed: dict[str, tuple[str, ...]]  # role -> scopes allowed
    hidden: bool = False  # a list: a disallowed scope is answered without its rows


EVERYONE = {"crew": ("own",), "supervisor": SCOPES, "admin": SCOPES}
CREW_ONLY = {"crew": ("own",), "supervisor": (), "admin": ()}
AUDITORS = {"crew": (), "supervisor": SCOPES, "admin": SCOPES}
ADMINS = {"crew": (), "supervisor": (), "admin": SCOPES}


def _new_elevator(world: World, scope: str) -> Call:
    body = {"id": f"az-new-{uuid.uuid4().hex[:8]}", "site_id": world.sites[scope],
            "building": "New", "lowest_floor": 1, "highest_floor": 6,
            "rated_speed_mps": 1.0, "rated_load_kg": 630}  # fmt: skip
    return Call("POST", "/api/v1/elevators", json=body)


def _record(world: World, scope: str) -> Call:
    body = {"elevator_id": world.elevators[scope], "kind": "routine",
            "performed_at": (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).isoformat(),
            "summary": "half-monthly maintenance"}  # fmt: skip
    return Call("POST", "/api/v1/maintenance", json=body)


def _new_user(world: World, scope: str) -> Call:
    body = {"username": f"az-{uuid.uuid4().hex[:8]}", "role": "crew", "sites": [world.sites[scope]]}
    return Call("POST", "/api/v1/users", json=body)


ROUTES = [
    Route("me", lambda w, s: Call("GET", "/api/v1/auth/me"), 200,
          {"crew": SCOPES, "supervisor": SCOPES, "admin": SCOPES}),
    Route("elevators", lambda w, s: Call("GET", "/api/v1/elevators",
                                         params={"site": w.sites[s]}), 200, EVERYONE, hidden=True),
    Route("elevator", lambda w, s: Call("GET", f"/api/v1/elevators/{w.elevators[s]}"), 200,
          EVERYONE),
    Route("elevator-put", lambda w, s: Call("PUT", f"/api/v1/elevators/{w.elevators[s]}",
                                            json={"building": "Renamed"}), 200, ADMINS),
    Route("elevator-post", _new_elevator, 201, ADMINS),
    Route("telemetry", lambda w, s: Call("GET", f"/api/v1/elevators/{w.elevators[s]}/telemetry",
                                         params={"bucket": "1m"}), 200, EVERYONE),
    Route("alerts", lambda w, s: Call("GET", "/api/v1/alerts", params={"site": w.sites[s]}),
          200, EVERYONE, hidden=True),
    Route("alert", lambda w, s: Call("GET", f"/api/v1/alerts/{w.alert(s)}"), 200, EVERYONE),
    Route("ack", lambda w, s: Call("POST", f"/api/v1/alerts/{w.alert(s)}/ack"), 200, CREW_ONLY),
    Route("on-site", lambda w, s: Call("POST", f"/api/v1/alerts/{w.alert(s, 'acknowledged')}"
                                       "/on-site"), 200, CREW_ONLY),
    Route("resolve", lambda w, s: Call("POST", f"/api/v1/alerts/{w.alert(s, 'acknowledged')}"
                                       "/resolve", json={"note": "reset"}), 200, CREW_ONLY),
    Route("false-alarm", lambda w, s: Call("POST", f"/api/v1/alerts/{w.alert(s)}/false-alarm"),
          200, CREW_ONLY),
    Route("stream", lambda w, s: Call("GET", "/api/v1/alerts/stream", params={"site": w.sites[s]},
                                      stream=True), 200, EVERYONE),
    Route("maintenance-post", _record, 201, CREW_ONLY),
    Route("maintenance", lambda w, s: Call("GET", "/api/v1/maintenance",
                                           params={"elevator": w.elevators[s]}), 200, EVERYONE),
    Route("audit-entry", lambda w, s: Call("GET", f"/api/v1/audit/entries/{w.entries[s]}"), 200,
          AUDITORS),
    Route("audit-trail", lambda w, s: Call("GET", f"/api/v1/audit/elevators/{w.elevators[s]}"),
          200, AUDITORS),
    Route("audit-verify", lambda w, s: Call("POST", "/api/v1/audit/verify"), 200, AUDITORS),
    *(Route(f"report-{name}", lambda w, s, name=name: Call(  # type: ignore[misc]
        "GET", f"/api/v1/reports/{name}", params={"site": w.sites[s]}), 200, AUDITORS)
      for name in ("availability", "sla", "maintenance")),
    Route("dead-letters", lambda w, s: Call("GET", "/api/v1/dead-letters"), 200, AUDITORS),
    Route("users", lambda w, s: Call("GET", "/api/v1/users"), 200, ADMINS),
    Route("user-post", _new_user, 201, ADMINS),
    Route("user", lambda w, s: Call("GET", f"/api/v1/users/{w.people['crew'].username}"), 200,
          ADMINS),
    Route("user-put", lambda w, s: Call("PUT", f"/api/v1/users/{w.people['crew'].username}",
                                        json={"full_name": "Crew Member"}), 200, ADMINS),
]  # fmt: skip


def _send(world: World, call: Call, headers: dict[str, str]) -> tuple[int, Any]:
    if call.stream:
        with world.http.stream(call.method, call.path, params=call.params, headers=headers) as r:
            if r.status_code != 200:
                r.read()
                return r.status_code, r.json()
            first = next(r.iter_lines())
            return r.status_code, first
    response = world.http.request(
        call.method, call.path, params=call.params, json=call.json, headers=headers
    )
    return response.status_code, response.json()


@pytest.mark.integration
@pytest.mark.parametrize("scope", SCOPES)
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("route", ROUTES, ids=[route.name for route in ROUTES])
def test_route_allows_exactly_the_roles_and_sites_it_should(
    world: World, route: Route, role: str, scope: str
) -> None:
    call = route.call(world, scope)
    status, body = _send(world, call, world.people[role].headers)
    allowed = scope in route.allowed[role]
    if allowed or route.hidden:
        assert status == route.ok, body
        if route.hidden and not allowed:
            assert body["items"] == []
        elif route.hidden:
            assert body["items"], f"{role} should see the {scope} site's rows"
    else:
        assert status == 403, body
        assert body["code"] == "forbidden"


@pytest.mark.integration
@pytest.mark.parametrize("route", ROUTES, ids=[route.name for route in ROUTES])
def test_route_refuses_a_caller_without_a_valid_token(world: World, route: Route) -> None:
    call = route.call(world, "own")
    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        status, body = _send(world, call, headers)
        assert status == 401, body
        assert body["code"] in {"not_authenticated", "invalid_token"}


@pytest.mark.integration
def test_a_deactivated_user_loses_access_at_once(world: World, stack_settings: Settings) -> None:
    person = add_person(world.conn, stack_settings, "supervisor")
    assert world.http.get("/api/v1/alerts", headers=person.headers).status_code == 200
    admin = world.people["admin"].headers
    changed = world.http.put(f"/api/v1/users/{person.username}", json={"active": False},
                             headers=admin)  # fmt: skip
    assert changed.status_code == 200
    refused = world.http.get("/api/v1/alerts", headers=person.headers)
    assert refused.status_code == 401
    assert refused.json()["code"] == "invalid_token"


@pytest.mark.integration
def test_health_metrics_and_docs_need_no_token(world: World) -> None:
    assert world.http.get("/healthz").json() == {"status": "ok", "database": True}
    assert "liftledger_api_requests" in world.http.get("/metrics").text
    assert world.http.get("/docs").status_code == 200
    schema = world.http.get("/openapi.json").json()
    assert "/api/v1/audit/entries/{seq}" in schema["paths"]


@pytest.mark.integration
def test_password_sign_in_issues_a_token_that_works(world: World, stack_settings: Settings) -> None:
    person = add_person(world.conn, stack_settings, "supervisor", password="correct horse")
    form = {"username": person.username, "password": "wrong horse"}
    wrong = world.http.post("/api/v1/auth/token", data=form)
    assert wrong.status_code == 401
    assert wrong.json()["code"] == "bad_credentials"
    form["password"] = "correct horse"
    signed_in = world.http.post("/api/v1/auth/token", data=form)
    assert signed_in.status_code == 200
    token = signed_in.json()["access_token"]
    me = world.http.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["username"] == person.username

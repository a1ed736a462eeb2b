"""Every documented bound of every route, as every role: no answer is a 5xx (issue 21).

The cases come from the application's own OpenAPI document (`tests.integration.api_bounds`):
each path, query and header parameter and each property of a JSON or form body, at every
bound its schema states and one past each, empty and absent, the other inputs as a valid
request has them (real ids, so that path parameters reach the view). Bounds the schema
cannot state come from where the code defines them: the times the platform holds
(`api.types`) and each threshold's range (`core.faults.THRESHOLD_RANGES`, docs/api.md).

Each case is sent without a token and as a crew member of the elevator's site, a supervisor
and an admin. No answer may be a 5xx; every 4xx is the API's error JSON; a value outside its
schema is refused by every caller who gets past authorization with a 422 whose `field` names
that input; a 422 for a value the schema allows names an input of the operation.

Paging at the largest page size walks a whole elevator-day of 1 Hz telemetry without a gap
or a repeat.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

import httpx
import psycopg
import pytest

from api.app import create_app
from core.db import libpq_url
from core.faults import THRESHOLD_RANGES
from core.settings import Settings, load_settings
from ledger.chain import ChainClient
from ledger.deploy import deploy_contract
from liftledger.ledger_sources import LEDGER_SOURCES
from reports.telemetry import MAX_RAW_ROWS
from tests.factories import STANDING, add_elevator
from tests.integration.api_bounds import (
    ABSENT,
    VALID_BODIES,
    Bound,
    Input,
    Operation,
    Seeded,
    boundary_values,
    conforms,
    operations,
    sample,
    with_value,
)
from tests.integration.api_helpers import (
    Person,
    add_alert,
    add_person,
    add_site_with_elevator,
    client,
    ledgered_acknowledgement,
    running_api,
)

ROLES: Final = ("anonymous", "crew", "supervisor", "admin")
PASSWORD: Final = "lift-rescue-7Q"
# The statuses of an alert each workflow step takes it from (the others answer 409).
ALERT_STATUS_FOR_STEP: Final = {"ack": "open", "on-site": "acknowledged",
                                "resolve": "on_site", "false-alarm": "open"}  # fmt: skip
DOCUMENT: Final = create_app(load_settings(), ledger_sources=LEDGER_SOURCES).openapi()
OPERATIONS: Final = operations(DOCUMENT)


@dataclass
class World:
    """The API on the test database: a site with an elevator and its data, a crew member of
    the site, a supervisor and an admin, and the real ids a valid request names."""

    conn: psycopg.Connection[Any]
    http: httpx.Client
    people: dict[str, Person | None]
    site: str
    elevator: str  # read, filed against, its alerts worked on
    registry_elevator: str  # changed by PUT
    target: Person  # changed, signed in and revoked by the user routes
    entry_seq: int

    @property
    def seeded(self) -> Seeded:
        """The rows a valid body names."""
        return Seeded(self.site, self.elevator, self.target.username, PASSWORD)

    def alert(self, status: str) -> int:
        """A new alert of the elevator in `status`, its earlier ones closed (an elevator has
        at most one unresolved alert per type)."""
        self.conn.execute(
            "UPDATE alerts SET status = 'resolved', closed_at = now(), "
            "acknowledged_at = COALESCE(acknowledged_at, now()) "
            "WHERE elevator_id = %s AND status IN ('open', 'acknowledged', 'on_site')",
            (self.elevator,),
        )
        self.conn.commit()
        return add_alert(self.conn, self.elevator, self.site, status=status)


@pytest.fixture(scope="module")
def world(stack_settings: Settings, test_database_url: str) -> Iterator[World]:
    """One API server for the module, on a site with an elevator, a ledger entry and people
    of every role."""
    conn = psycopg.connect(libpq_url(test_database_url))
    deploy_contract(conn, ChainClient(stack_settings.resolved_chain_url()),
                    key=stack_settings.secret("anchorer_key"))  # fmt: skip
    conn.commit()
    site, elevator = add_site_with_elevator(conn, "bd")
    registry_elevator = add_elevator(conn, site=site, prefix="bd-reg").elevator
    conn.commit()
    people: dict[str, Person | None] = {
        "anonymous": None,
        "crew": add_person(conn, stack_settings, "crew", sites=[site]),
        "supervisor": add_person(conn, stack_settings, "supervisor"),
        "admin": add_person(conn, stack_settings, "admin"),
    }
    target = add_person(conn, stack_settings, "crew", sites=[site], password=PASSWORD)
    seq = ledgered_acknowledgement(conn, elevator, site, user_id=target.user_id)
    # Sign-in limits high enough that the form's own cases reach the form's validation.
    api = running_api(stack_settings, test_database_url, api_sign_in_user_failures=1000,
                      api_sign_in_address_failures=100_000,
                      api_sign_in_user_total_failures=100_000)  # fmt: skip
    with api as base_url, client(base_url) as http:
        yield World(conn, http, people, site, elevator, registry_elevator, target, seq)
    conn.close()


def _path_value(world: World, operation: Operation, parameter: Input) -> Any:
    """The real id a valid request names in `parameter`."""
    if parameter.name == "elevator_id":
        return world.registry_elevator if operation.method == "PUT" else world.elevator
    if parameter.name == "alert_id":
        step = operation.path.rsplit("/", 1)[-1]
        return world.alert(ALERT_STATUS_FOR_STEP.get(step, "open"))
    if parameter.name == "seq":
        return world.entry_seq
    if parameter.name == "username":
        return world.target.username
    return sample(parameter.schema)  # an enum's first value


REAL_PATH_VALUES: Final = frozenset({"elevator_id", "alert_id", "seq", "username"})


@dataclass(frozen=True)
class Case:
    """One request: an operation with one input (`name` at `location`, or the whole body,
    `location` "request") at a bound, and whether its schema allows that value."""

    operation: Operation
    location: str
    name: str
    bound: Bound
    conforms: bool

    @property
    def id(self) -> str:
        """The test id."""
        return f"{self.operation.key} {self.location}:{self.name}={self.bound.label}"


def _input_cases(operation: Operation, parameter: Input) -> list[Case]:
    bounds = [*boundary_values(parameter.schema), Bound("empty", ""), Bound("absent", ABSENT)]
    if parameter.location != "body":  # a URL, header or form carries text: no null, no object
        bounds = [b for b in bounds if b.value is ABSENT or isinstance(b.value, str | int | float)]
    if parameter.location == "path":  # a path always has its parameters
        bounds = [b for b in bounds if b.value is not ABSENT]
    seen: set[str] = set()
    cases = []
    for bound in bounds:
        key = repr((type(bound.value).__name__, bound.value))
        if key in seen:
            continue
        seen.add(key)
        # A form's empty field is one not filled in (HTML sends it; FastAPI reads it so).
        if bound.value is ABSENT or (parameter.location == "form" and bound.value == ""):
            fits = not parameter.required
        else:
            fits = conforms(parameter.schema, bound.value)
        cases.append(Case(operation, parameter.location, parameter.name, bound, fits))
    return cases


def _threshold_cases(operation: Operation, parameter: Input) -> list[Case]:
    # Each threshold's range is documented (docs/api.md) but not in the schema.
    cases = []
    for name, (low, high) in THRESHOLD_RANGES.items():
        for label, value in (("minimum", low), ("maximum", high),
                             ("below-minimum", math.nextafter(low, -math.inf)),
                             ("above-maximum", math.nextafter(high, math.inf))):  # fmt: skip
            bound = Bound(f"{name}-{label}", {name: value})
            cases.append(Case(operation, "body", parameter.name, bound, low <= value <= high))
    return cases


def _whole_body_cases(operation: Operation) -> list[Case]:
    schema = operation.body_schema or {}
    bounds = [Bound("no-body", ABSENT)]
    if operation.body_media_type == "application/json":
        bounds += [Bound("null-body", None), Bound("empty-object", {})]
    fits = [not operation.body_required if b.value is ABSENT else conforms(schema, b.value)
            for b in bounds]  # fmt: skip
    return [Case(operation, "request", "body", b, f) for b, f in zip(bounds, fits, strict=True)]


def cases_of(operation: Operation) -> list[Case]:
    """Every boundary case of an operation; one plain request when it has no inputs."""
    cases = []
    for parameter in operation.inputs:
        cases += _input_cases(operation, parameter)
        if parameter.location == "body" and parameter.name == "thresholds":
            cases += _threshold_cases(operation, parameter)
    if operation.body_media_type is not None:
        cases += _whole_body_cases(operation)
    if not cases:
        cases.append(Case(operation, "request", "none", Bound("as-documented", ABSENT), True))
    return cases


CASES: Final = [case for operation in OPERATIONS for case in cases_of(operation)]


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


@dataclass(frozen=True)
class Request:
    """What to send for a case."""

    method: str
    url: str
    params: dict[str, str]
    headers: dict[str, str]
    content: bytes | None
    form: dict[str, str] | None


def _request(world: World, case: Case) -> Request:
    operation = case.operation
    value = case.bound.value
    tested = (case.location, case.name)
    path_values = {p.name: _path_value(world, operation, p) for p in operation.inputs
                   if p.location == "path" and (p.location, p.name) != tested}  # fmt: skip
    params: dict[str, Any] = {}
    headers: dict[str, Any] = {}
    body: Any = VALID_BODIES[operation.key](world.seeded) if operation.body_media_type else ABSENT
    if case.location == "path":
        path_values[case.name] = value
    elif case.location == "query":
        params[case.name] = value
    elif case.location == "header":
        headers[case.name] = value
    elif case.location in {"body", "form"}:
        body = with_value(body, case.name, value)
    elif case.name == "body":
        body = value
    url = operation.path.format(
        **{name: quote(_text(v), safe="") for name, v in path_values.items()}
    )
    content = form = None
    if body is not ABSENT and operation.body_media_type == "application/json":
        content = json.dumps(body).encode()
    elif body is not ABSENT:
        form = {k: _text(v) for k, v in body.items()}
    return Request(
        operation.method, url,
        {k: _text(v) for k, v in params.items() if v is not ABSENT},
        {k: _text(v) for k, v in headers.items() if v is not ABSENT},
        content, form,
    )  # fmt: skip


def _send(world: World, case: Case, request: Request, person: Person | None) -> tuple[int, Any]:
    headers = dict(request.headers) | (person.headers if person else {})
    if request.content is not None:
        headers["Content-Type"] = "application/json"
    if case.operation.streams:
        with world.http.stream(request.method, request.url, params=request.params,
                               headers=headers) as response:  # fmt: skip
            if response.status_code == 200:
                return 200, next(response.iter_lines())  # the stream has begun: enough
            response.read()
            return response.status_code, _json_or_text(response)
    response = world.http.request(request.method, request.url, params=request.params,
                                  headers=headers, content=request.content,
                                  data=request.form)  # fmt: skip
    return response.status_code, _json_or_text(response)


def _json_or_text(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text


def _names_an_input(field: str | None, case: Case) -> bool:
    """Whether `field` names an input of the case's operation (the body itself only when the
    case is about the whole body)."""
    if field is None:
        return False
    names = {parameter.name.lower() for parameter in case.operation.inputs}
    if case.location == "request":
        names.add("body")
    return field.split(".")[0].lower() in names


def _names_the_input(field: str | None, case: Case) -> bool:
    """Whether `field` names the input under test (for the whole body: it or a property)."""
    if field is None or case.location == "request":
        return _names_an_input(field, case)
    name = case.name.lower()
    return field.lower() == name or field.lower().startswith(name + ".")


@pytest.mark.integration
@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_every_bound_is_answered_without_a_5xx_and_a_refusal_names_its_field(
    world: World, case: Case
) -> None:
    request = _request(world, case)
    answers = {role: _send(world, case, request, world.people[role]) for role in ROLES}
    for role, (status, body) in answers.items():
        assert status < 500, f"{role}: {status} {body}"
        if status >= 400:
            assert isinstance(body, dict), f"{role}: {status} {body!r}"
            assert set(body) == {"code", "message", "field"}, f"{role}: {body}"
            assert isinstance(body["code"], str)
            assert isinstance(body["message"], str)
    # Authorization comes first; past it, the value decides.
    reached = {role: answer for role, answer in answers.items() if answer[0] not in {401, 403}}
    assert reached, f"no caller got past authorization: {answers}"
    routed = not (case.location == "path" and case.bound.value == "")  # "" is no path at all
    for role, (status, body) in reached.items():
        if routed and not case.conforms:
            assert status == 422, f"{role}: a value outside the schema answered {status} {body}"
            assert _names_the_input(body["field"], case), f"{role}: {body}"
        elif status == 422:
            assert _names_an_input(body["field"], case), f"{role}: {body}"


def test_every_operation_and_every_input_has_boundary_cases() -> None:
    covered = {(case.operation.key, case.location, case.name) for case in CASES}
    for operation in OPERATIONS:
        assert any(key == operation.key for key, _, _ in covered), operation.key
        for parameter in operation.inputs:
            assert (operation.key, parameter.location, parameter.name) in covered


def test_every_body_and_path_parameter_has_a_valid_value() -> None:
    # The tables above cannot go stale: a new operation with a body, or a new path
    # parameter naming a real row, must be added to them.
    with_body = {operation.key for operation in OPERATIONS if operation.body_media_type}
    assert set(VALID_BODIES) == with_body
    for operation in OPERATIONS:
        for parameter in operation.inputs:
            if parameter.location == "path" and "enum" not in parameter.schema:
                assert parameter.name in REAL_PATH_VALUES, (operation.key, parameter.name)


ONE_DAY_S: Final = 86_400
DAY: Final = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


@pytest.mark.integration
def test_paging_at_the_largest_page_walks_an_elevator_day_of_1_hz_telemetry(world: World) -> None:
    elevator = add_elevator(world.conn, site=world.site, prefix="bd-day").elevator
    columns = ", ".join(STANDING)
    world.conn.execute(
        f"INSERT INTO telemetry (time, received_at, elevator_id, boot, seq, {columns}) "
        f"SELECT %(day)s + make_interval(secs => n), %(day)s + make_interval(secs => n), "
        f"%(elevator)s, 'b1', n, {', '.join(f'%({name})s' for name in STANDING)} "
        "FROM generate_series(0, %(last)s) AS n",
        {"day": DAY, "elevator": elevator, "last": ONE_DAY_S - 1, **STANDING},
    )
    world.conn.commit()
    params: dict[str, Any] = {"start": DAY.isoformat(), "limit": MAX_RAW_ROWS,
                              "end": (DAY + dt.timedelta(days=1)).isoformat()}  # fmt: skip
    crew = world.people["crew"]
    assert crew is not None
    times: list[dt.datetime] = []
    pages = 0
    while True:
        answer = world.http.get(f"/api/v1/elevators/{elevator}/telemetry", params=params,
                                headers=crew.headers)  # fmt: skip
        assert answer.status_code == 200, answer.text
        page = answer.json()
        pages += 1
        assert len(page["samples"]) <= MAX_RAW_ROWS
        times += [dt.datetime.fromisoformat(sample["time"]) for sample in page["samples"]]
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert pages == math.ceil(ONE_DAY_S / MAX_RAW_ROWS)
    assert len(times) == ONE_DAY_S
    assert times[0] == DAY
    steps = {later - earlier for earlier, later in itertools.pairwise(times)}
    assert steps == {dt.timedelta(seconds=1)}  # in order, no gap, no repeat

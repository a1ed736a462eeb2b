"""Property-based run of the whole API against its own OpenAPI schema (schemathesis).

Hypothesis generates requests for every operation from the schema; each response must not
be a 5xx and must conform to the schema: a documented status code, the declared content
type and headers, and a body that validates against the declared model. The routes a crew
member acts on are called with a crew token of a seeded site, every other route with an
admin's. The alert stream never ends by design; it is exercised by the end-to-end test.

Generation rarely lands exactly on a bound (`limit=10000` once answered 500 unnoticed), so
the run also sends explicit examples: every parameter and body property at each bound its
schema states (`tests.integration.api_bounds`), one input at a time, the others as a valid
request has them and the path naming seeded rows, checked the same way. Schema-level
`examples` would not do: schemathesis puts every parameter's example into one request, so
one refused value (`start` equal to `end`) hides the bound under test. One past each bound
is `test_api_boundaries.py`'s.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

import hypothesis
import psycopg
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.app import create_app
from core.db import libpq_url
from core.settings import Settings, load_settings
from ledger.chain import ChainClient
from ledger.deploy import deploy_contract
from liftledger.ledger_sources import LEDGER_SOURCES
from tests.factories import add_elevator
from tests.integration.api_bounds import (
    VALID_BODIES,
    Bound,
    Input,
    Operation,
    Seeded,
    in_bounds,
    operations,
    sample,
    with_value,
)
from tests.integration.api_helpers import (
    Person,
    add_alert,
    add_person,
    running_api,
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
]
CREW_ROUTES = ("/ack", "/on-site", "/resolve", "/false-alarm")
SITE: Final = "st-schema"
ELEVATOR: Final = "st-schema-el"
PASSWORD: Final = "lift-rescue-7Q"


@dataclass(frozen=True)
class Seed:
    """The API's base URL, its callers and the rows a valid request names."""

    base_url: str
    admin: Person
    crew: Person
    target: Person  # signs in, and is changed by the user routes
    alert_id: int


@pytest.fixture(scope="module")
def api_people(stack_settings: Settings, test_database_url: str) -> Iterator[Seed]:
    """The API on the test database, a seeded site, and an admin and a crew member."""
    with psycopg.connect(libpq_url(test_database_url)) as conn:
        deploy_contract(conn, ChainClient(stack_settings.resolved_chain_url()),
                        key=stack_settings.secret("anchorer_key"))  # fmt: skip
        conn.commit()
        add_elevator(conn, ELEVATOR, site=SITE, site_name="Site st", building="Bldg 1")
        conn.commit()
        alert_id = add_alert(conn, ELEVATOR, SITE)
        admin = add_person(conn, stack_settings, "admin")
        crew = add_person(conn, stack_settings, "crew", sites=[SITE])
        target = add_person(conn, stack_settings, "crew", sites=[SITE], password=PASSWORD)
    with running_api(stack_settings, test_database_url) as base_url:
        yield Seed(base_url, admin, crew, target, alert_id)


# The schema comes from the application itself (building it connects to nothing); the
# requests go to a real server on the test database.
DOCUMENT: Final = create_app(load_settings(), ledger_sources=LEDGER_SOURCES).openapi()
schema = schemathesis.openapi.from_dict(DOCUMENT).exclude(path="/api/v1/alerts/stream")


def _caller(seed: Seed, method: str, path: str) -> Person:
    crew_route = method == "POST" and (path.endswith(CREW_ROUTES) or path == "/api/v1/maintenance")
    return seed.crew if crew_route else seed.admin


@pytest.mark.integration
@schema.parametrize()
@hypothesis.settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(hypothesis.HealthCheck),
    derandomize=True,
)
def test_every_operation_answers_within_its_schema_and_never_with_5xx(
    case: Any, api_people: Seed
) -> None:
    person = _caller(api_people, case.method, case.path)
    case.call_and_validate(base_url=api_people.base_url, headers=person.headers, checks=CHECKS)


@dataclass(frozen=True)
class BoundExample:
    """One input of an operation at a bound its schema states."""

    operation: Operation
    parameter: Input
    bound: Bound

    @property
    def id(self) -> str:
        """The test id."""
        where = f"{self.parameter.location}:{self.parameter.name}"
        return f"{self.operation.key} {where}={self.bound.label}"


BOUND_EXAMPLES: Final = [
    BoundExample(operation, parameter, bound)
    for operation in operations(DOCUMENT)
    if not operation.streams
    for parameter in operation.inputs
    for bound in in_bounds(parameter.schema)
    # A URL, a header or a form field carries text: never null.
    if parameter.location == "body" or bound.value is not None
]


def _path_value(seed: Seed, parameter: Input) -> Any:
    seeded = {"elevator_id": ELEVATOR, "alert_id": seed.alert_id,
              "username": seed.target.username}  # fmt: skip
    return seeded.get(parameter.name, sample(parameter.schema))


@pytest.mark.integration
@pytest.mark.parametrize("example", BOUND_EXAMPLES, ids=[e.id for e in BOUND_EXAMPLES])
def test_every_bound_a_schema_states_is_answered_within_the_schema(
    example: BoundExample, api_people: Seed
) -> None:
    operation, parameter, value = example.operation, example.parameter, example.bound.value
    inputs: dict[str, dict[str, Any]] = {"path": {}, "query": {}, "header": {}}
    for each in operation.inputs:
        if each.location == "path":
            inputs["path"][each.name] = _path_value(api_people, each)
    body: Any = None
    if operation.body_media_type is not None:
        seeded = Seeded(SITE, ELEVATOR, api_people.target.username, PASSWORD)
        body = VALID_BODIES[operation.key](seeded)
    if parameter.location in {"body", "form"}:
        body = with_value(body, parameter.name, value)
    else:
        inputs[parameter.location][parameter.name] = value
    case = schema[operation.path][operation.method].Case(
        path_parameters=inputs["path"], query=inputs["query"], headers=inputs["header"],
        **({"body": body, "media_type": operation.body_media_type} if body is not None else {}),
    )  # fmt: skip
    person = _caller(api_people, operation.method, operation.path)
    case.call_and_validate(base_url=api_people.base_url, headers=person.headers, checks=CHECKS)

"""Property-based run of the whole API against its own OpenAPI schema (schemathesis).

Hypothesis generates requests for every operation from the schema; each response must not
be a 5xx and must conform to the schema: a documented status code, the declared content
type and headers, and a body that validates against the declared model. The routes a crew
member acts on are called with a crew token of a seeded site, every other route with an
admin's. The alert stream never ends by design; it is exercised by the end-to-end test.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

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
from tests.integration.api_helpers import (
    Person,
    add_alert,
    add_person,
    add_site_with_elevator,
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


@pytest.fixture(scope="module")
def api_people(stack_settings: Settings, test_database_url: str) -> Iterator[dict[str, Any]]:
    """The API on the test database, a seeded site, and an admin and a crew member."""
    with psycopg.connect(libpq_url(test_database_url)) as conn:
        deploy_contract(conn, ChainClient(stack_settings.resolved_chain_url()),
                        key=stack_settings.secret("anchorer_key"))  # fmt: skip
        conn.commit()
        site, elevator = add_site_with_elevator(conn, "st")
        add_alert(conn, elevator, site)
        people = {
            "admin": add_person(conn, stack_settings, "admin"),
            "crew": add_person(conn, stack_settings, "crew", sites=[site]),
        }
    with running_api(stack_settings, test_database_url) as base_url:
        yield {"base_url": base_url, **people}


# The schema comes from the application itself (building it connects to nothing); the
# requests go to a real server on the test database.
schema = schemathesis.openapi.from_dict(
    create_app(load_settings(), ledger_sources=LEDGER_SOURCES).openapi()
).exclude(path="/api/v1/alerts/stream")


@pytest.mark.integration
@schema.parametrize()
@hypothesis.settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(hypothesis.HealthCheck),
    derandomize=True,
)
def test_every_operation_answers_within_its_schema_and_never_with_5xx(
    case: Any, api_people: dict[str, Any]
) -> None:
    crew_route = case.method == "POST" and (
        case.path.endswith(CREW_ROUTES) or case.path == "/api/v1/maintenance"
    )
    person: Person = api_people["crew" if crew_route else "admin"]
    case.call_and_validate(base_url=api_people["base_url"], headers=person.headers, checks=CHECKS)

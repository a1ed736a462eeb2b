"""A real API server for tests: the application on uvicorn in a thread, over real HTTP.

The server uses the session's test database and the stack's chain; requests go through
httpx to a real socket, so streaming (SSE), the pool and the lifespan behave as deployed.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import uvicorn

from accounts.tokens import issue_token
from alerts.store import advance_workflow, record_in_ledger
from api.app import create_app
from core.db import libpq_url
from core.faults import FAULT_TYPES
from core.settings import Settings, load_settings
from liftledger.api_app import broker_account_hook
from liftledger.ledger_sources import LEDGER_SOURCES
from liftledger.services.api import server_config
from tests.factories import add_elevator, add_user
from tests.integration.cli_helpers import free_port


@contextmanager
def running_api(
    stack_settings: Settings, database_url: str, *, broker_accounts: bool = False, **overrides: Any
) -> Iterator[str]:
    """Serve the API on the test database, configured as `liftledger api` serves it (with
    setting `overrides`; with `broker_accounts`, registry changes rewrite the local broker's
    accounts as `liftledger api` does); yields its base URL. Unless `contract_address` is
    given, the API is pinned, as an operator would pin it, to the contract last deployed for
    this database."""
    if "contract_address" not in overrides:
        overrides["contract_address"] = _last_deployed(stack_settings, database_url)
    settings = load_settings(database_url=database_url, **overrides)
    port = free_port()
    config = server_config(
        create_app(
            settings,
            ledger_sources=LEDGER_SOURCES,
            on_registry_change=broker_account_hook(settings) if broker_accounts else None,
        ),
        settings, host="127.0.0.1", port=port, log_level="warning",
        lifespan="on",
    )  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="api-under-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the API did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def _last_deployed(stack_settings: Settings, database_url: str) -> str | None:
    with psycopg.connect(libpq_url(database_url)) as conn:
        row = conn.execute(
            "SELECT address FROM contract_deployments WHERE chain_id = %s ORDER BY id DESC LIMIT 1",
            (stack_settings.chain_id,),
        ).fetchone()
    return str(row[0]) if row else None


@dataclass(frozen=True)
class Person:
    """A user made for a test, with a ready bearer token."""

    username: str
    user_id: int
    role: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        """The Authorization header."""
        return {"Authorization": f"Bearer {self.token}"}


def add_person(
    conn: psycopg.Connection[Any],
    settings: Settings,
    role: str,
    *,
    sites: list[str] | None = None,
    password: str | None = None,
    signer: str | None = None,
) -> Person:
    """Create a user (committed) and a token for them."""
    user = add_user(conn, role, sites=sites or [], password=password, signer_address=signer)
    conn.commit()
    token = issue_token(
        user.username, secret=settings.secret("jwt_secret"), now=dt.datetime.now(dt.UTC)
    )
    return Person(user.username, user.id, role, token)


def add_site_with_elevator(conn: psycopg.Connection[Any], prefix: str) -> tuple[str, str]:
    """A new site with one elevator (committed); returns (site, elevator)."""
    site, elevator = add_elevator(
        conn, prefix=prefix, site_name=f"Site {prefix}", building="Bldg 1"
    )
    conn.commit()
    return site, elevator


def ledgered_acknowledgement(
    conn: psycopg.Connection[Any], elevator: str, site: str, *, user_id: int
) -> int:
    """The ledger seq of a new alert's acknowledgement by `user_id` (committed)."""
    event = advance_workflow(conn, add_alert(conn, elevator, site), "acknowledge",
                             user_id=user_id, at=dt.datetime.now(dt.UTC))  # fmt: skip
    record_in_ledger(conn, [event])
    conn.commit()
    row = conn.execute(
        "SELECT seq FROM ledger_entries WHERE source_table = 'alert_events' AND source_id = %s",
        (event.event_id,),
    ).fetchone()
    assert row is not None
    return int(row[0])


def add_alert(
    conn: psycopg.Connection[Any],
    elevator: str,
    site: str,
    *,
    status: str = "open",
    type_: str | None = None,
    severity: str = "critical",
) -> int:
    """An alert row in the given workflow status (committed); without `type_`, of a type the
    elevator has no unresolved alert of (at most one may be unresolved per type)."""
    now = dt.datetime.now(dt.UTC)
    if type_ is None:
        taken = {
            row[0]
            for row in conn.execute(
                "SELECT type FROM alerts WHERE elevator_id = %s "
                "AND status IN ('open', 'acknowledged', 'on_site')",
                (elevator,),
            )
        }
        type_ = next(fault.name for fault in FAULT_TYPES if fault.name not in taken)
    row = conn.execute(
        "INSERT INTO alerts (elevator_id, site_id, type, severity, status, opened_at, "
        "last_active_at, acknowledged_at, closed_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
        "RETURNING id",
        (elevator, site, type_, severity, status, now, now,
         now if status != "open" else None,
         now if status in {"resolved", "false_alarm"} else None),
    ).fetchone()  # fmt: skip
    conn.commit()
    assert row is not None
    return int(row[0])


def client(base_url: str) -> httpx.Client:
    """An HTTP client for the server."""
    return httpx.Client(base_url=base_url, timeout=30.0)

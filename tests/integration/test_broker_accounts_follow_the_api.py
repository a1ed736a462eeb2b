"""Registry changes made through the API reach the broker's accounts (docs/security.md).

A device of an elevator registered through the API may connect at once; once the elevator is
deactivated through the API, its device is refused.
"""

from __future__ import annotations

import time
import uuid

import psycopg

from core.credentials import device_credentials
from core.db import libpq_url
from core.settings import Settings
from liftledger import stack
from tests.factories import add_site
from tests.integration.api_helpers import add_person, client, running_api
from tests.integration.mqtt_helpers import connect

WAIT_S = 10.0


def _accepted(settings: Settings, elevator: str) -> bool:
    creds = device_credentials(settings.secret("mqtt_secret"), elevator)
    device = connect(settings.resolved_mqtt_url(), creds.username, creds.password)
    try:
        return device.connect_reason is not None and not device.connect_reason.is_failure
    finally:
        device.close()


def _becomes(settings: Settings, elevator: str, accepted: bool) -> bool:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if _accepted(settings, elevator) == accepted:
            return True
        time.sleep(0.3)
    return False


def test_an_elevator_added_and_deactivated_through_the_api_changes_its_broker_account(
    stack_settings: Settings, test_database_url: str
) -> None:
    if not stack_settings.local_mqtt:
        raise AssertionError("this test reads the local broker's accounts")
    suffix = uuid.uuid4().hex[:8]
    site, elevator = f"brk-{suffix}", f"brk-el-{suffix}"
    with psycopg.connect(libpq_url(test_database_url), autocommit=True) as conn:
        add_site(conn, site)
        admin = add_person(conn, stack_settings, "admin")
    assert not _accepted(stack_settings, elevator)
    try:
        with (
            running_api(stack_settings, test_database_url, broker_accounts=True) as url,
            client(url) as http,
        ):
            added = http.post("/api/v1/elevators", headers=admin.headers, json={
                "id": elevator, "site_id": site, "building": "B", "lowest_floor": 1,
                "highest_floor": 5, "rated_speed_mps": 1.0, "rated_load_kg": 630})  # fmt: skip
            assert added.status_code == 201, added.text
            assert _becomes(stack_settings, elevator, accepted=True)

            path = f"/api/v1/elevators/{elevator}"
            off = http.put(path, headers=admin.headers, json={"active": False})
            assert off.status_code == 200, off.text
            assert _becomes(stack_settings, elevator, accepted=False)
    finally:
        stack.sync_broker_auth(stack_settings, stack.registered_elevators(stack_settings))

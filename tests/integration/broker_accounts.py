"""Test devices on the shared local broker: accounts in, retained statuses out, all restored."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from core.credentials import device_credentials
from core.settings import Settings
from liftledger import stack
from simulators.mqtt_device import DeviceIdentity
from simulators.publisher import FleetPublisher

WAIT_S = 20.0


def identities(settings: Settings, devices: Sequence[tuple[str, str]]) -> list[DeviceIdentity]:
    """Publisher identities for (site, elevator) pairs."""
    secret = settings.secret("mqtt_secret")
    out = []
    for site, elevator in devices:
        creds = device_credentials(secret, elevator)
        out.append(DeviceIdentity(site, elevator, creds.username, creds.password))
    return out


def clear_retained_statuses(settings: Settings, devices: Sequence[tuple[str, str]]) -> None:
    """Delete the devices' retained statuses so no later subscriber sees stale ones."""
    with FleetPublisher(
        mqtt_url=settings.resolved_mqtt_url(), devices=identities(settings, devices)
    ) as fleet:
        fleet.start()
        assert fleet.wait_connected(WAIT_S) == len(devices)
        for _, elevator in devices:  # after the online status each connect publishes
            fleet.clear_status(elevator)
        assert fleet.flush(WAIT_S)


@contextmanager
def broker_devices(settings: Settings, devices: Sequence[tuple[str, str]]) -> Iterator[None]:
    """Let `devices` connect to the local broker for the duration of the block."""
    registered = stack.registered_elevators(settings)
    stack.sync_broker_auth(settings, [*registered, *devices])
    time.sleep(0.5)  # SIGHUP reload is asynchronous
    clear_retained_statuses(settings, devices)
    try:
        yield
    finally:
        clear_retained_statuses(settings, devices)
        stack.sync_broker_auth(settings, registered)

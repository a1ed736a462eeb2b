"""What every runner does first: take its own database role, and log in to the broker."""

from __future__ import annotations

import threading
from typing import TypedDict

from core.credentials import service_credentials
from core.db_roles import Service, check_service_connection, service_settings
from core.settings import Settings


class BrokerLogin(TypedDict):
    """Where and as whom an MQTT client of a service connects (keyword arguments)."""

    mqtt_url: str
    username: str
    password: str


def as_service(
    settings: Settings, service: Service, *, stop: threading.Event | None = None
) -> Settings:
    """`settings` as `service` sees them, once its database role has been judged
    (`check_service_connection`; waits for the database until `stop` is set, when given)."""
    settings = service_settings(settings, service)
    check_service_connection(
        settings.resolved_database_url(), service, production=settings.env == "production",
        stop=stop,
    )  # fmt: skip
    return settings


def broker_login(settings: Settings, username: str) -> BrokerLogin:
    """The broker's URL and the credentials of the service account `username`."""
    creds = service_credentials(settings.secret("mqtt_secret"), username)
    return BrokerLogin(
        mqtt_url=settings.resolved_mqtt_url(), username=creds.username, password=creds.password
    )

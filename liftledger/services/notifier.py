"""Build the notifier from the settings and run it (`liftledger notifier`)."""

from __future__ import annotations

import logging
import threading

from core.credentials import PLATFORM_USERNAME, service_credentials
from core.db import libpq_url
from core.db_roles import check_service_connection, service_settings
from core.settings import Settings
from notify.mqtt_alerts import AlertPublisher
from notify.notifier import Notifier, NotifierConfig

log = logging.getLogger(__name__)


def run_notifier(
    settings: Settings,
    config: NotifierConfig,
    *,
    stop: threading.Event,
    client_id: str = "liftledger-notifier",
) -> None:
    """Run the notifier until `stop` is set, connected as the notifier's database role."""
    settings = service_settings(settings, "notifier")
    check_service_connection(
        settings.resolved_database_url(), "notifier", production=settings.env == "production",
        stop=stop,
    )  # fmt: skip
    creds = service_credentials(settings.secret("mqtt_secret"), PLATFORM_USERNAME)
    publisher = AlertPublisher(
        mqtt_url=settings.resolved_mqtt_url(),
        username=creds.username,
        password=creds.password,
        client_id=client_id,
    )
    notifier = Notifier(
        conninfo=libpq_url(settings.resolved_database_url()), publisher=publisher, config=config
    )
    log.info("notifier: broker %s", settings.resolved_mqtt_url())
    publisher.start()
    try:
        notifier.run(stop)
    finally:
        publisher.stop()

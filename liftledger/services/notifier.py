"""Build the notifier from the settings and run it (`liftledger notifier`)."""

from __future__ import annotations

import logging
import threading

from core.credentials import PLATFORM_USERNAME
from core.db import libpq_url
from core.settings import Settings
from liftledger.services.common import as_service, broker_login
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
    settings = as_service(settings, "notifier", stop=stop)
    publisher = AlertPublisher(**broker_login(settings, PLATFORM_USERNAME), client_id=client_id)
    notifier = Notifier(
        conninfo=libpq_url(settings.resolved_database_url()), publisher=publisher, config=config
    )
    log.info("notifier: broker %s", settings.resolved_mqtt_url())
    publisher.start()
    try:
        notifier.run(stop)
    finally:
        publisher.stop()

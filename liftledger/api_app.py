"""The API as `liftledger api` serves it: the application wired to the local broker.

On the local stack a registry change made through the API (an elevator added, moved to
another site, deactivated) rewrites the broker's password file and ACL at once, as the CLI's
registry commands do; an external broker's accounts are its operator's (docs/security.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import FastAPI

from api.app import create_app
from api.context import RegistryHook
from core.settings import Settings
from liftledger import stack
from liftledger.ledger_sources import LEDGER_SOURCES


def broker_account_hook(settings: Settings) -> RegistryHook | None:
    """What keeps the local broker's device accounts in step with the registry, if local."""
    if not settings.local_mqtt:
        return None

    def sync(elevators: list[tuple[str, str]]) -> bool:
        return stack.sync_broker_auth(settings, elevators)

    return sync


@dataclass(frozen=True, slots=True)
class ApiFactory:
    """The uvicorn factory of `liftledger api`: the application for these settings.

    It is pickled into every worker process with uvicorn's configuration, so each worker
    serves the settings the command resolved (the same database, secrets and broker), not
    whatever its environment would say.
    """

    settings: Settings

    def __call__(self) -> FastAPI:
        """A new application (one per worker)."""
        return create_app(
            self.settings,
            ledger_sources=LEDGER_SOURCES,
            on_registry_change=broker_account_hook(self.settings),
        )

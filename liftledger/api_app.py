"""The API as `liftledger api` serves it: the application wired to the local broker.

On the local stack a registry change made through the API (an elevator added, moved to
another site, deactivated) rewrites the broker's password file and ACL at once, as the CLI's
registry commands do; an external broker's accounts are its operator's (docs/security.md).
"""

from __future__ import annotations

from fastapi import FastAPI

from api.app import create_app
from api.context import RegistryHook
from core.settings import Settings, load_settings
from liftledger import stack


def broker_account_hook(settings: Settings) -> RegistryHook | None:
    """What keeps the local broker's device accounts in step with the registry, if local."""
    if not settings.local_mqtt:
        return None

    def sync(elevators: list[tuple[str, str]]) -> bool:
        return stack.sync_broker_auth(settings, elevators)

    return sync


def app_from_environment() -> FastAPI:
    """The uvicorn factory of `liftledger api`: settings from the environment."""
    settings = load_settings()
    return create_app(settings, on_registry_change=broker_account_hook(settings))

"""`liftledger api`: serve the application with uvicorn."""

from __future__ import annotations

import os

import uvicorn

from core.settings import Settings


def run_api(settings: Settings, *, host: str, port: int, workers: int = 1) -> None:
    """Serve until SIGINT/SIGTERM; each worker builds the app from the same environment."""
    settings.secret("jwt_secret")  # fail now, with the fix in the message, not in a worker
    if settings.database_url is None:
        # Workers re-read settings from the environment: pin the database this process chose.
        os.environ.setdefault("LIFTLEDGER_DATABASE_URL", settings.resolved_database_url())
    uvicorn.run(
        "api.app:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=5,
    )

"""`liftledger api`: serve the application with uvicorn."""

from __future__ import annotations

from typing import Any

import uvicorn
from uvicorn.supervisors import Multiprocess

from api.http_protocol import DeadlineHttpToolsProtocol
from core.settings import Settings
from liftledger.api_app import ApiFactory


class ApiServerConfig(uvicorn.Config):
    """uvicorn's configuration plus the deadline for reading a request
    (`api.http_protocol`); a plain attribute, so it reaches worker processes."""

    def __init__(self, app: Any, *, request_read_timeout_s: float, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.request_read_timeout_s = request_read_timeout_s


def server_config(app: Any, settings: Settings, **kwargs: Any) -> ApiServerConfig:
    """The configuration every API server uses (the tests' servers too): a connection idle
    after a response closes after `api_keep_alive_s`; one whose request is not read whole
    within `api_request_read_timeout_s` is closed."""
    return ApiServerConfig(
        app,
        http=DeadlineHttpToolsProtocol,
        timeout_keep_alive=settings.api_keep_alive_s,
        request_read_timeout_s=settings.api_request_read_timeout_s,
        server_header=False,
        **kwargs,
    )


def run_api(settings: Settings, *, host: str, port: int, workers: int = 1) -> None:
    """Serve until SIGINT/SIGTERM; each worker builds the app from these same settings
    (`ApiFactory`, handed to the workers with the configuration)."""
    settings.secret("jwt_secret")  # fail now, with the fix in the message, not in a worker
    config = server_config(
        ApiFactory(settings), settings, factory=True, host=host, port=port, workers=workers,
        log_level="warning", access_log=False, timeout_graceful_shutdown=5,
    )  # fmt: skip
    # What `uvicorn.run` does, with this configuration.
    if config.workers > 1:
        Multiprocess(config, sockets=[config.bind_socket()]).run()
    else:
        uvicorn.Server(config).run()

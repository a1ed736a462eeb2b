"""The FastAPI application: routes of SPEC §6 under `/api/v1`, OpenAPI at `/docs`.

`create_app(settings)` builds it without connecting; the lifespan opens the database pool
and starts the alert broadcaster, and closes both on shutdown. `app_from_environment` is
the factory uvicorn calls in each worker process.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final

import psycopg
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from psycopg.types.json import set_json_loads
from psycopg_pool import ConnectionPool
from starlette.types import ASGIApp

from api.body_limit import BodySizeLimit
from api.context import ApiContext, RegistryHook
from api.errors import ErrorBody, install_error_handlers
from api.metrics import ApiMetrics, MetricsMiddleware
from api.security_headers import SecurityHeaders
from api.sign_in_limits import SignInLimiter, SignInPolicy
from api.stream import AlertBroadcaster
from api.views import alerts, audit, auth, elevators, maintenance, operations, reports, users
from core.db import libpq_url
from core.db_roles import check_service_connection, service_settings
from core.settings import Settings, load_settings
from core.stored_json import StoredJsonError, bounded_json_loads

# A fixed-size pool: opening a connection (SCRAM authentication) takes milliseconds, which
# a request should never wait for; more connections than this would only queue on 2 cores.
POOL_SIZE: Final = 10
SIGN_IN_CONCURRENCY: Final = 2  # password hashes computed at once (scrypt, 32 MiB each)
POOL_TIMEOUT_S: Final = 10.0

DESCRIPTION: Final = """
Elevator monitoring with a chain-anchored audit trail.

Sign in with `POST /api/v1/auth/token` (OAuth2 password flow) and send the token as
`Authorization: Bearer …`. Crew members see and act on the elevators of their sites;
supervisors read everything, audit and reports; admins manage the registry and users.
Every list is paginated with `limit` and `cursor` (`next_cursor` of the previous page).
Errors are JSON `{"code", "message", "field"}`; `code` is stable.
"""


class LiftLedgerApi(FastAPI):
    """FastAPI with `SecurityHeaders` around its whole stack: Starlette puts its 500 handler
    outside every middleware added with `add_middleware`, so only this way do 500s carry
    the headers."""

    def build_middleware_stack(self) -> ASGIApp:
        """The stack FastAPI builds, wrapped in `SecurityHeaders`."""
        return SecurityHeaders(super().build_middleware_stack())


def create_app(settings: Settings, *, on_registry_change: RegistryHook | None = None) -> FastAPI:
    """The API application for `settings`; connects only when it starts serving, as the
    API's database role."""
    settings = service_settings(settings, "api")
    # Every json/jsonb column this process reads is depth-checked before it is decoded.
    set_json_loads(bounded_json_loads)
    conninfo = libpq_url(settings.resolved_database_url())
    metrics = ApiMetrics()
    sign_in_policy = SignInPolicy(
        user_failures=settings.api_sign_in_user_failures,
        address_failures=settings.api_sign_in_address_failures,
        user_total_failures=settings.api_sign_in_user_total_failures,
        backoff_s=settings.api_sign_in_backoff_s,
        backoff_max_s=settings.api_sign_in_backoff_max_s,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(
            check_service_connection, conninfo, "api", production=settings.env == "production"
        )
        pool: ConnectionPool[psycopg.Connection[object]] = ConnectionPool(
            conninfo, min_size=POOL_SIZE, max_size=POOL_SIZE, timeout=POOL_TIMEOUT_S, open=False,
            # JIT compiling a one-elevator query costs more than the query itself.
            kwargs={"connect_timeout": 5, "options": "-c jit=off"},
        )  # fmt: skip
        pool.open(wait=False)
        broadcaster = AlertBroadcaster(conninfo)
        broadcaster.start()
        # What start-up loaded lives as long as the process: keep the collector from
        # scanning it again and again, which shows as latency spikes.
        gc.freeze()
        app.state.context = ApiContext(
            settings=settings, pool=pool, conninfo=conninfo, metrics=metrics,
            jwt_secret=settings.secret("jwt_secret"), broadcaster=broadcaster,
            database_slots=asyncio.Semaphore(POOL_SIZE),
            sign_in_slots=asyncio.Semaphore(SIGN_IN_CONCURRENCY),
            sign_in_limiter=SignInLimiter(sign_in_policy),
            on_registry_change=on_registry_change,
        )  # fmt: skip
        try:
            yield
        finally:
            broadcaster.stop()
            pool.close()

    app = LiftLedgerApi(
        title="LiftLedger API",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        responses={
            400: {"model": ErrorBody, "description": "the request body cannot be parsed"},
            413: {"model": ErrorBody, "description": "the request body is over the size limit"},
            500: {"model": ErrorBody, "description": "internal error (a bug)"},
        },
    )
    install_error_handlers(app)

    @app.exception_handler(StoredJsonError)
    async def _unreadable(request: Request, exc: StoredJsonError) -> JSONResponse:
        # A stored value this process refuses to decode (docs/security.md): the request
        # fails, the process and the connection go on.
        body = ErrorBody(
            code="unreadable_stored_data", message=f"a stored value is unreadable: {exc}"
        )
        return JSONResponse(body.model_dump(), status_code=500)

    @app.exception_handler(psycopg.errors.DataError)
    async def _data_error(request: Request, exc: psycopg.errors.DataError) -> JSONResponse:
        # SQL class 22 (data exception) is caused by a value the client sent.
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid value"
        body = ErrorBody(code="invalid_input", message=message)
        return JSONResponse(body.model_dump(), status_code=422)

    @app.exception_handler(psycopg.OperationalError)
    async def _database_down(request: Request, exc: psycopg.OperationalError) -> JSONResponse:
        body = ErrorBody(code="database_unavailable", message="the database is unavailable")
        return JSONResponse(body.model_dump(), status_code=503)

    @app.exception_handler(UnicodeEncodeError)
    async def _bad_text(request: Request, exc: UnicodeEncodeError) -> JSONResponse:
        body = ErrorBody(code="invalid_input", message="text must be valid Unicode")
        return JSONResponse(body.model_dump(), status_code=422)

    for module in (auth, users, elevators, alerts, maintenance, audit, reports, operations):
        app.include_router(module.router)
    # Outermost last: metrics of every answer (413s included), and the body limit before
    # anything reads the body; the security headers wrap everything (`LiftLedgerApi`).
    app.add_middleware(BodySizeLimit, max_bytes=settings.api_max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app


def app_from_environment() -> FastAPI:
    """The uvicorn factory: settings from the environment, as every process reads them."""
    return create_app(load_settings())

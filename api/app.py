"""The FastAPI application: routes of SPEC §6 under `/api/v1`, OpenAPI at `/docs`.

`create_app(settings, ledger_sources=…)` builds it without connecting; the lifespan opens the
database pool and starts the alert broadcaster, and closes both on shutdown. The sources of
ledger entries (`ledger.sources`) are handed in by whoever wires the process
(`liftledger.api_app`).
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import fields
from typing import Final

import psycopg
from fastapi import FastAPI
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
from core.settings import Settings
from core.stored_json import bounded_json_loads
from ledger.sources import LedgerSources

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


def create_app(
    settings: Settings,
    *,
    ledger_sources: LedgerSources,
    on_registry_change: RegistryHook | None = None,
) -> FastAPI:
    """The API application for `settings`, auditing the entries of `ledger_sources`;
    connects only when it starts serving, as the API's database role."""
    settings = service_settings(settings, "api")
    # Every json/jsonb column this process reads is depth-checked before it is decoded.
    set_json_loads(bounded_json_loads)
    conninfo = libpq_url(settings.resolved_database_url())
    metrics = ApiMetrics()
    # Each field of the policy is the setting `api_sign_in_<field>`.
    policy = {
        item.name: getattr(settings, f"api_sign_in_{item.name}") for item in fields(SignInPolicy)
    }
    sign_in_policy = SignInPolicy(**policy)

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
        pool.open(wait=False)  # connects in the pool's own threads
        broadcaster = AlertBroadcaster(conninfo)
        try:
            # Off the event loop: starting waits until the ledger position is read, and a dev
            # secret is a file (created on first use).
            await asyncio.to_thread(broadcaster.start)
            jwt_secret = await asyncio.to_thread(settings.secret, "jwt_secret")
            # What start-up loaded lives as long as the process: keep the collector from
            # scanning it again and again, which shows as latency spikes.
            gc.freeze()
            app.state.context = ApiContext(
                settings=settings, pool=pool, conninfo=conninfo, metrics=metrics,
                jwt_secret=jwt_secret, broadcaster=broadcaster,
                database_slots=asyncio.Semaphore(POOL_SIZE),
                sign_in_slots=asyncio.Semaphore(SIGN_IN_CONCURRENCY),
                sign_in_limiter=SignInLimiter(sign_in_policy),
                on_registry_change=on_registry_change, ledger_sources=ledger_sources,
            )  # fmt: skip
            yield
        finally:
            # Also when start-up failed half-way: no thread of the pool or the broadcaster
            # outlives the app. Both wait for threads to end, off the event loop.
            await asyncio.to_thread(broadcaster.stop)
            await asyncio.to_thread(pool.close)

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
    install_error_handlers(app)  # every error's status and code: `api.errors`
    for module in (auth, users, elevators, alerts, maintenance, audit, reports, operations):
        app.include_router(module.router)
    # Outermost last: metrics of every answer (413s included), and the body limit before
    # anything reads the body; the security headers wrap everything (`LiftLedgerApi`).
    app.add_middleware(BodySizeLimit, max_bytes=settings.api_max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app

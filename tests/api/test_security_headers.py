"""Security headers on every answer, 500s included, from a real uvicorn server.

The application is the one `create_app` builds, with routes that fail added; it serves
without its lifespan, so no database is needed.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from api.app import create_app
from core.settings import load_settings
from liftledger.ledger_sources import LEDGER_SOURCES

UNREACHABLE_DATABASE = "postgresql://nobody:nothing@127.0.0.1:1/none"


def _failing_app() -> FastAPI:
    app = create_app(
        load_settings(database_url=UNREACHABLE_DATABASE), ledger_sources=LEDGER_SOURCES
    )

    @app.get("/api/v1/test-raises")
    async def raises() -> None:
        raise RuntimeError("a bug")

    @app.get("/page-raises")
    async def page_raises() -> None:
        raise RuntimeError("a bug")

    @app.get("/api/v1/test-cancelled")
    async def cancelled() -> None:
        # Awaiting a job that was cancelled elsewhere: CancelledError is no `Exception`, so
        # Starlette's 500 handler does not see it.
        job = asyncio.get_running_loop().create_future()
        job.cancel()
        await job

    return app


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    config = uvicorn.Config(_failing_app(), lifespan="off", log_level="critical")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the API did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        listener.close()


def _assert_common_headers(response: httpx.Response) -> None:
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


@pytest.mark.parametrize("path", ["/api/v1/test-raises", "/api/v1/test-cancelled"])
def test_a_route_that_fails_answers_500_with_the_api_headers(base_url: str, path: str) -> None:
    response = httpx.get(base_url + path, timeout=10)
    assert response.status_code == 500
    _assert_common_headers(response)
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert response.headers["cache-control"] == "no-store"
    assert response.json()["code"] == "internal_error"


def test_a_page_that_fails_answers_500_with_the_page_headers(base_url: str) -> None:
    response = httpx.get(base_url + "/page-raises", timeout=10)
    assert response.status_code == 500
    _assert_common_headers(response)
    assert "default-src 'self'" in response.headers["content-security-policy"]

"""Prometheus metrics of the API: requests by route and status, and their latency."""

from __future__ import annotations

import time
from typing import Any, Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.stored_json import UNREADABLE_ENTRIES

LATENCY_BUCKETS_S: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class ApiMetrics:
    """The metrics of one API process, in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "liftledger_api_requests", "HTTP requests answered", ["method", "route", "status"],
            registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "liftledger_api_request_seconds", "time to the response's first byte",
            ["method", "route"], buckets=LATENCY_BUCKETS_S, registry=self.registry,
        )  # fmt: skip
        self.streams = Gauge(
            "liftledger_api_alert_streams", "open alert streams (SSE)", registry=self.registry
        )
        # Process-wide: stored entries the stream, replays and audit views refused and skipped.
        self.registry.register(UNREADABLE_ENTRIES)


class MetricsMiddleware:
    """Counts and times every HTTP request by its route template (not its raw path)."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        answered = False

        def observe(status: int) -> None:
            route = _route_of(scope)
            self.metrics.latency.labels(scope["method"], route).observe(
                time.perf_counter() - started
            )
            self.metrics.requests.labels(scope["method"], route, str(status)).inc()

        async def send_and_observe(message: Message) -> None:
            nonlocal answered
            if message["type"] == "http.response.start":
                answered = True
                observe(int(message["status"]))
            await send(message)

        try:
            await self.app(scope, receive, send_and_observe)
        except Exception:
            if not answered:  # the error handler outside this middleware answers 500
                observe(500)
            raise


def _route_of(scope: dict[str, Any] | Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "unmatched"

"""Security headers on every response (OWASP Secure Headers Project).

Every response forbids MIME sniffing, framing and referrers. The Content-Security-Policy
depends on the path: API answers (`/api/`, `/healthz`, `/metrics`, `/openapi.json`) load
nothing (`default-src 'none'`); `/docs` and `/redoc` may load FastAPI's Swagger UI and
ReDoc assets and run their inline start-up script; anything else (pages served by the
API) loads only from the API's own origin. API answers are also `Cache-Control: no-store`
unless the route says otherwise (the alert stream does), so tokens' answers stay out of
shared and browser caches.

`SecurityHeaders` is the application's outermost layer (`api.app`), outside Starlette's
500 handler, so 500s carry the headers too; a request that fails without any answer (an
error the handler does not catch, or a failing handler) is answered 500 here rather than
by the server's bare one.
"""

from __future__ import annotations

import json
from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

COMMON: Final = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
)
API_CSP: Final = b"default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# FastAPI's /docs and /redoc pages load their assets from cdn.jsdelivr.net and a favicon
# from fastapi.tiangolo.com, and start with an inline script.
DOCS_CSP: Final = (
    b"default-src 'none'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    b"style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
    b"font-src 'self' https://fonts.gstatic.com; "
    b"img-src 'self' data: https://fastapi.tiangolo.com https://cdn.jsdelivr.net; "
    b"connect-src 'self'; worker-src 'self' blob:; frame-ancestors 'none'; base-uri 'self'; "
    b"form-action 'self'"
)
PAGE_CSP: Final = (
    b"default-src 'self'; img-src 'self' data:; object-src 'none'; frame-ancestors 'none'; "
    b"base-uri 'self'; form-action 'self'"
)
API_PREFIXES: Final = ("/api/", "/healthz", "/metrics", "/openapi.json")
DOCS_PREFIXES: Final = ("/docs", "/redoc")
INTERNAL_ERROR_BODY: Final = json.dumps(
    {"code": "internal_error", "message": "internal error; it has been logged", "field": None}
).encode()


def headers_for(path: str) -> list[tuple[bytes, bytes]]:
    """The security headers a response on `path` carries (Cache-Control only for the API)."""
    if path.startswith(API_PREFIXES):
        return [*COMMON, (b"content-security-policy", API_CSP), (b"cache-control", b"no-store")]
    if path.startswith(DOCS_PREFIXES):
        return [*COMMON, (b"content-security-policy", DOCS_CSP)]
    return [*COMMON, (b"content-security-policy", PAGE_CSP)]


class SecurityHeaders:
    """ASGI middleware adding `headers_for(path)` to each response that lacks them, and
    answering 500 when what it wraps fails before answering."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = headers_for(scope.get("path", ""))
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(name, value) for name, value in extra if name not in present]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except BaseException:
            # Raised on, as the server logs it; without this answer the server would send
            # its own 500, which carries none of the headers.
            if not started:
                await send_with_headers({
                    "type": "http.response.start", "status": 500,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(INTERNAL_ERROR_BODY)).encode())],
                })  # fmt: skip
                await send_with_headers({"type": "http.response.body", "body": INTERNAL_ERROR_BODY})
            raise

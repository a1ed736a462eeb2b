"""API errors: every failure is JSON `{"code", "message", "field"}` with a stable `code`.

    ApiError                 raised by views and dependencies, rendered as-is
    RequestValidationError   FastAPI's input validation -> 422 `invalid_input`, field named
    HTTPException            Starlette's own (unknown route, wrong method) -> its status
    anything else            logged, then 500 `internal_error` (a bug: inputs never cause it)

Codes are part of the API contract: clients branch on them, so they never change meaning.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)


class ErrorBody(BaseModel):
    """The body of every error response."""

    code: str
    message: str
    field: str | None = None


class ApiError(Exception):
    """An error with its HTTP status, stable code and, for bad input, the field at fault."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = headers


def not_found(what: str) -> ApiError:
    """404 for a resource that does not exist."""
    return ApiError(404, "not_found", f"{what} does not exist")


def forbidden(message: str) -> ApiError:
    """403 for a caller whose role or sites do not allow the request."""
    return ApiError(403, "forbidden", message)


def invalid(field: str, message: str, code: str = "invalid_input") -> ApiError:
    """422 for input that is well-formed but not acceptable."""
    return ApiError(422, code, message, field=field)


_STATUS_CODES: Final = {
    400: "bad_request",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
    429: "too_many_requests",
    503: "unavailable",
}


def _response(
    status: int, code: str, message: str, field: str | None, headers: dict[str, str] | None
) -> JSONResponse:
    body = ErrorBody(code=code, message=message, field=field)
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def _field_of(location: Sequence[Any]) -> str:
    # ("query", "limit") -> "limit"; ("body", "details", "x") -> "details.x"
    parts = [str(part) for part in location]
    if parts and parts[0] in {"query", "path", "body", "header", "cookie", "form"}:
        parts = parts[1:]
    return ".".join(parts) or "body"


def install_error_handlers(app: FastAPI) -> None:
    """Render every error as an `ErrorBody`."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _response(exc.status, exc.code, exc.message, exc.field, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid input"}
        if first.get("type") == "json_invalid":
            return _response(400, "bad_request", "the body is not valid JSON", None, None)
        field = _field_of(first.get("loc", ()))
        return _response(422, "invalid_input", f"{field}: {first.get('msg')}", field, None)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "error")
        headers = dict(exc.headers) if exc.headers else None
        return _response(exc.status_code, code, str(exc.detail), None, headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _response(500, "internal_error", "internal error; it has been logged", None, None)


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI declarations of the error statuses a route can answer with."""
    descriptions = {
        401: "No valid bearer token",
        403: "The caller's role or sites do not allow this",
        404: "No such resource",
        409: "The resource's state does not allow this",
        422: "Invalid input; `field` names it",
        429: "Too many attempts; `Retry-After` says when to try again",
        503: "A service the answer depends on (database, chain) is unavailable",
    }
    return {
        status: {"model": ErrorBody, "description": descriptions[status]} for status in statuses
    }

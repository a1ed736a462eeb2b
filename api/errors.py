"""API errors: every failure is JSON `{"code", "message", "field"}` with a stable `code`.

    ApiError                 raised by views and dependencies, rendered as-is
    LiftLedgerError          a domain function's refusal, answered by its `code` through
                             `REFUSALS` (one table for every domain); one without a listed
                             code or class is a bug -> 500
    RequestValidationError   FastAPI's input validation -> 422 `invalid_input`, field named
    HTTPException            Starlette's own (unknown route, wrong method) -> its status
    StoredJsonError          a stored value this process refuses to decode -> 500
                             `unreadable_stored_data` (docs/security.md)
    psycopg DataError        SQL class 22, caused by a value the client sent -> 422
    psycopg OperationalError the database is unavailable -> 503 `database_unavailable`
    UnicodeEncodeError       text that is not valid Unicode (a lone surrogate) -> 422
    anything else            logged, then 500 `internal_error` (a bug: inputs never cause it)

Codes are part of the API contract: clients branch on them, so they never change meaning.
Views therefore neither catch domain errors nor pick statuses for them: they let them rise.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.context import NoContract, NoSigningDomain
from core.errors import LiftLedgerError
from core.stored_json import StoredJsonError
from ledger.chain_protocol import ChainRefused, ChainUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")


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


def existing(value: T | None, what: str) -> T:
    """`value`, or 404 naming `what` when there is none."""
    if value is None:
        raise not_found(what)
    return value


def forbidden(message: str) -> ApiError:
    """403 for a caller whose role or sites do not allow the request."""
    return ApiError(403, "forbidden", message)


def invalid(field: str, message: str, code: str = "invalid_input") -> ApiError:
    """422 for input that is well-formed but not acceptable."""
    return ApiError(422, code, message, field=field)


@dataclass(frozen=True, slots=True)
class Refusal:
    """How the API answers a domain error: its status and, where they differ from the
    error's own, the code it answers with and the field it names."""

    status: int
    code: str | None = None
    field: str | None = None


_CONFLICT: Final = Refusal(409)
_INVALID: Final = Refusal(422)
_SIGNATURE: Final = Refusal(422, field="signature")

# Every refusal of a domain function, by the `code` it carries (`core.errors.Refused`). A test
# checks that every code the domain modules raise is here.
REFUSALS: Final[Mapping[str, Refusal]] = {
    # accounts.users.AccountError
    "user_not_found": Refusal(404, code="not_found"),
    "user_exists": _CONFLICT,
    "last_admin": _CONFLICT,
    "signer_taken": _CONFLICT,
    "bad_username": _INVALID,
    "bad_role": _INVALID,
    "weak_password": _INVALID,
    "bad_signer_address": _INVALID,
    "no_sites": _INVALID,
    "unknown_site": _INVALID,  # also core.fleet.FleetError
    # core.fleet.FleetError
    "elevator_exists": _CONFLICT,
    "registration_taken": _CONFLICT,
    "unresolved_alerts": _CONFLICT,
    "bad_floors": _INVALID,
    "unknown_threshold": _INVALID,
    "out_of_range": _INVALID,
    # alerts.store.WorkflowError
    "alert_not_found": Refusal(404, code="not_found"),
    "invalid_transition": _CONFLICT,
    "unknown_action": _CONFLICT,
    # maintenance.records.MaintenanceRecordError, maintenance.queries
    "duplicate_record": Refusal(409, field="nonce"),
    "no_nonce": Refusal(422, field="nonce"),
    "bad_nonce": Refusal(422, field="nonce"),
    "bad_signature": _SIGNATURE,
    "no_registered_key": _SIGNATURE,
    "signature_mismatch": _SIGNATURE,
    "no_domain": _SIGNATURE,
    "unknown_user": _SIGNATURE,
    "bad_kind": Refusal(422, field="kind"),
    "bad_correction": Refusal(422, field="corrects_id"),
    # the chain, or the contract pinned for it (below, by class)
    "chain_unavailable": Refusal(503),
}
# Domain errors that carry no code, by class (a subclass is answered as its class).
CODE_OF_CLASS: Final[Mapping[type[Exception], str]] = {
    ChainUnavailable: "chain_unavailable",
    ChainRefused: "chain_unavailable",
    NoContract: "chain_unavailable",
    NoSigningDomain: "chain_unavailable",
}


def refusal_of(exc: Exception) -> tuple[Refusal, str] | None:
    """How to answer a domain error, and its code; None when it is none the table lists."""
    code = getattr(exc, "code", None)
    if not isinstance(code, str):
        code = next((CODE_OF_CLASS[cls] for cls in type(exc).__mro__ if cls in CODE_OF_CLASS),
                    None)  # fmt: skip
    refusal = REFUSALS.get(code) if code is not None else None
    return None if refusal is None or code is None else (refusal, code)


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

    @app.exception_handler(LiftLedgerError)
    async def _refused(request: Request, exc: LiftLedgerError) -> JSONResponse:
        found = refusal_of(exc)
        if found is None:
            raise exc  # not a refusal: a bug, answered 500 by `_unexpected`
        refusal, code = found
        field = refusal.field or getattr(exc, "field", None)
        return _response(refusal.status, refusal.code or code, str(exc), field, None)

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

    @app.exception_handler(StoredJsonError)
    async def _unreadable(request: Request, exc: StoredJsonError) -> JSONResponse:
        # A stored value this process refuses to decode (docs/security.md): the request
        # fails, the process and the connection go on.
        message = f"a stored value is unreadable: {exc}"
        return _response(500, "unreadable_stored_data", message, None, None)

    @app.exception_handler(psycopg.errors.DataError)
    async def _data_error(request: Request, exc: psycopg.errors.DataError) -> JSONResponse:
        # SQL class 22 (data exception) is caused by a value the client sent.
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid value"
        return _response(422, "invalid_input", message, None, None)

    @app.exception_handler(psycopg.OperationalError)
    async def _database_down(request: Request, exc: psycopg.OperationalError) -> JSONResponse:
        return _response(503, "database_unavailable", "the database is unavailable", None, None)

    @app.exception_handler(UnicodeEncodeError)
    async def _bad_text(request: Request, exc: UnicodeEncodeError) -> JSONResponse:
        return _response(422, "invalid_input", "text must be valid Unicode", None, None)

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

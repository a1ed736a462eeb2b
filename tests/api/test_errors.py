"""Domain errors reach clients through one table (`api.errors.REFUSALS`), not per view."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from accounts.users import AccountError
from alerts.store import WorkflowError
from api.context import NoContract, NoSigningDomain
from api.errors import CODE_OF_CLASS, REFUSALS, install_error_handlers, refusal_of
from core.errors import ConfigError, LiftLedgerError
from core.fleet import FleetError
from ledger.chain_protocol import ChainRefused, ChainUnavailable, ReceiptTimeout
from maintenance.records import MaintenanceRecordError

ROOT = Path(__file__).resolve().parents[2]
DOMAINS = ("accounts", "alerts", "core", "ingest", "ledger", "maintenance", "reports")


def _raised_codes() -> set[str]:
    codes: set[str] = set()
    for package in DOMAINS:
        for path in (ROOT / package).rglob("*.py"):
            codes.update(re.findall(r'\bcode="([a-z_]+)"', path.read_text(encoding="utf-8")))
    return codes


def test_every_code_a_domain_module_raises_has_its_status_in_the_table() -> None:
    codes = _raised_codes()
    assert "user_not_found" in codes  # the scan sees the domain modules
    assert sorted(codes - set(REFUSALS)) == []


def test_every_error_without_a_code_is_a_domain_error_with_a_listed_code() -> None:
    for cls, code in CODE_OF_CLASS.items():
        assert issubclass(cls, LiftLedgerError)
        assert code in REFUSALS


def _answer(exc: Exception) -> httpx.Response:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/raise")
    async def raises() -> None:
        raise exc

    async def get() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
            return await http.get("/raise")

    return asyncio.run(get())


@pytest.mark.parametrize(
    ("exc", "status", "body"),
    [
        (AccountError("user ann does not exist", code="user_not_found"), 404,
         {"code": "not_found", "message": "user ann does not exist", "field": None}),
        (AccountError("user ann already exists", code="user_exists", field="username"), 409,
         {"code": "user_exists", "message": "user ann already exists", "field": "username"}),
        (FleetError("highest above lowest", code="bad_floors", field="highest_floor"), 422,
         {"code": "bad_floors", "message": "highest above lowest", "field": "highest_floor"}),
        (WorkflowError("alert 7 does not exist", code="alert_not_found"), 404,
         {"code": "not_found", "message": "alert 7 does not exist", "field": None}),
        (WorkflowError("alert 7 is resolved", code="invalid_transition"), 409,
         {"code": "invalid_transition", "message": "alert 7 is resolved", "field": None}),
        (MaintenanceRecordError("filed twice", code="duplicate_record"), 409,
         {"code": "duplicate_record", "message": "filed twice", "field": "nonce"}),
        (MaintenanceRecordError("not this key", code="signature_mismatch"), 422,
         {"code": "signature_mismatch", "message": "not this key", "field": "signature"}),
        (MaintenanceRecordError("not of e1", code="bad_correction"), 422,
         {"code": "bad_correction", "message": "not of e1", "field": "corrects_id"}),
        (NoContract("no contract"), 503,
         {"code": "chain_unavailable", "message": "no contract", "field": None}),
        (NoSigningDomain("no domain"), 503,
         {"code": "chain_unavailable", "message": "no domain", "field": None}),
    ],
)  # fmt: skip
def test_a_domain_error_is_answered_with_the_status_code_and_field_of_the_table(
    exc: Exception, status: int, body: dict[str, object]
) -> None:
    response = _answer(exc)
    assert response.status_code == status
    assert response.json() == body


def test_a_chain_error_is_answered_503_by_its_class() -> None:
    for exc in (ChainUnavailable("chain down"), ChainRefused("reverted"), ReceiptTimeout("none")):
        found = refusal_of(exc)
        assert found is not None
        assert (found[0].status, found[1]) == (503, "chain_unavailable")


@pytest.mark.parametrize(
    "exc", [LiftLedgerError("a bug"), ConfigError("bad settings"), RuntimeError("a bug")]
)
def test_an_error_the_table_does_not_list_is_a_500(exc: Exception) -> None:
    response = _answer(exc)
    assert response.status_code == 500
    assert response.json()["code"] == "internal_error"

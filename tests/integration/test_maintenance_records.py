"""Maintenance records on the real database: EIP-712 signatures checked against the crew
member's registered key, unsigned records marked, every record a ledger entry."""

from __future__ import annotations

import datetime as dt
import json
import secrets
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from eth_account import Account

from alerts.maintenance import sweep_maintenance_overdue
from core.db import libpq_url
from core.settings import Settings
from ledger.chain import ChainClient
from ledger.deploy import deploy_contract
from ledger.verify import verify_entry
from maintenance.records import (
    MaintenanceRecordError,
    MaintenanceRecordInput,
    SigningDomain,
    file_record,
    sign_record,
)

DOMAIN = SigningDomain(31337, "0x" + "ab" * 20)
WHEN = dt.datetime(2026, 11, 20, 10, 30, tzinfo=dt.UTC)
CREW_KEY = "0x" + secrets.token_hex(32)


@pytest.fixture
def conn(test_database_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(libpq_url(test_database_url)) as connection:
        yield connection
        connection.rollback()


@pytest.fixture
def setup(conn: psycopg.Connection[Any]) -> tuple[str, int]:
    """An elevator and a crew member with a registered key; returns (elevator, user id)."""
    suffix = uuid.uuid4().hex[:8]
    conn.execute("INSERT INTO sites (id, name) VALUES (%s, 'M')", (f"mr-{suffix}",))
    conn.execute(
        "INSERT INTO elevators (id, site_id, building, lowest_floor, highest_floor, "
        "rated_speed_mps, rated_load_kg, created_at) VALUES (%s, %s, 'B', 1, 9, 1.0, 800, %s)",
        (f"mr-el-{suffix}", f"mr-{suffix}", WHEN - dt.timedelta(days=30)),
    )
    row = conn.execute(
        "INSERT INTO users (username, role, signer_address) VALUES (%s, 'crew', %s) RETURNING id",
        (f"crew-{suffix}", Account.from_key(CREW_KEY).address),
    ).fetchone()
    assert row is not None
    return f"mr-el-{suffix}", int(row[0])


def _record(elevator: str, summary: str = "half-monthly maintenance") -> MaintenanceRecordInput:
    return MaintenanceRecordInput(
        elevator_id=elevator,
        kind="routine",
        performed_at=WHEN,
        summary=summary,
        details={"checklist": {"brake": "ok", "doors": "adjusted"}, "minutes": 55},
    )


def _stored(conn: psycopg.Connection[Any], record_id: int) -> tuple[Any, ...]:
    row = conn.execute(
        "SELECT signed, signer_address, signature IS NOT NULL FROM maintenance_records "
        "WHERE id = %s",
        (record_id,),
    ).fetchone()
    assert row is not None
    return tuple(row)


def test_a_record_signed_with_the_registered_key_is_stored_as_signed_and_in_the_ledger(
    conn: psycopg.Connection[Any], setup: tuple[str, int]
) -> None:
    elevator, crew = setup
    record = _record(elevator)
    signature = sign_record(CREW_KEY, record, DOMAIN)
    record_id = file_record(conn, record, performed_by=crew, signature=signature, domain=DOMAIN)
    assert _stored(conn, record_id) == (True, Account.from_key(CREW_KEY).address, True)
    entry = conn.execute(
        "SELECT canonical FROM ledger_entries WHERE source_table = 'maintenance_records' "
        "AND source_id = %s",
        (record_id,),
    ).fetchone()
    assert entry is not None
    body = json.loads(bytes(entry[0]))
    assert (body["kind"], body["record_kind"], body["signed"], body["signature"]) == (
        "maintenance_record", "routine", True, signature.hex(),
    )  # fmt: skip


def test_an_unsigned_record_is_accepted_and_marked_unsigned(
    conn: psycopg.Connection[Any], setup: tuple[str, int]
) -> None:
    elevator, crew = setup
    record_id = file_record(conn, _record(elevator), performed_by=crew, signature=None, domain=None)
    assert _stored(conn, record_id) == (False, None, False)


def test_a_signature_by_another_key_is_refused_with_a_clear_error(
    conn: psycopg.Connection[Any], setup: tuple[str, int]
) -> None:
    elevator, crew = setup
    record = _record(elevator)
    other = "0x" + secrets.token_hex(32)
    with pytest.raises(MaintenanceRecordError, match="not by crew-") as refused:
        file_record(
            conn, record, performed_by=crew, signature=sign_record(other, record, DOMAIN),
            domain=DOMAIN,
        )  # fmt: skip
    assert refused.value.code == "signature_mismatch"


def test_a_signature_over_different_content_is_refused(
    conn: psycopg.Connection[Any], setup: tuple[str, int]
) -> None:
    elevator, crew = setup
    signature = sign_record(CREW_KEY, _record(elevator, "brake replaced"), DOMAIN)
    with pytest.raises(MaintenanceRecordError) as refused:
        file_record(
            conn, _record(elevator, "nothing done"), performed_by=crew, signature=signature,
            domain=DOMAIN,
        )  # fmt: skip
    assert refused.value.code == "signature_mismatch"


def test_a_signature_for_another_chain_or_contract_is_refused(
    conn: psycopg.Connection[Any], setup: tuple[str, int]
) -> None:
    elevator, crew = setup
    record = _record(elevator)
    elsewhere = SigningDomain(1, DOMAIN.verifying_contract)
    with pytest.raises(MaintenanceRecordError):
        file_record(
            conn, record, performed_by=crew, signature=sign_record(CREW_KEY, record, elsewhere),
            domain=DOMAIN,
        )  # fmt: skip


def test_a_garbled_signature_is_refused(
    conn: psycopg.Connection[Any], setup: tuple[str, int]
) -> None:
    elevator, crew = setup
    with pytest.raises(MaintenanceRecordError) as refused:
        file_record(
            conn, _record(elevator), performed_by=crew, signature=b"\x01" * 10, domain=DOMAIN
        )
    assert refused.value.code == "bad_signature"


def test_a_routine_record_clears_maintenance_overdue(
    conn: psycopg.Connection[Any], setup: tuple[str, int]
) -> None:
    elevator, crew = setup
    registered = WHEN - dt.timedelta(days=30)
    raised = sweep_maintenance_overdue(conn, registered + dt.timedelta(days=16))
    assert [e.kind for e in raised if e.elevator_id == elevator] == ["opened"]
    file_record(conn, _record(elevator), performed_by=crew, signature=None, domain=None)
    cleared = sweep_maintenance_overdue(conn, WHEN + dt.timedelta(days=1))
    assert [e.kind for e in cleared if e.elevator_id == elevator] == ["cleared"]


def test_an_edited_maintenance_record_no_longer_matches_its_ledger_entry(
    conn: psycopg.Connection[Any], setup: tuple[str, int], stack_settings: Settings
) -> None:
    elevator, crew = setup
    record_id = file_record(conn, _record(elevator), performed_by=crew, signature=None, domain=None)
    row = conn.execute(
        "SELECT seq FROM ledger_entries WHERE source_table = 'maintenance_records' "
        "AND source_id = %s",
        (record_id,),
    ).fetchone()
    assert row is not None
    seq = int(row[0])
    chain = ChainClient(stack_settings.resolved_chain_url())
    deployment = deploy_contract(conn, chain, key=stack_settings.secret("anchorer_key"))
    chain = ChainClient(chain.url, contract_address=deployment.address)
    assert verify_entry(conn, chain, seq).problems == []
    conn.execute(
        "UPDATE maintenance_records SET summary = 'nothing to see' WHERE id = %s", (record_id,)
    )
    problems = [(p.seq, p.kind) for p in verify_entry(conn, chain, seq).problems]
    assert problems == [(seq, "source_changed")]


def test_the_audit_checks_a_record_signature_under_this_chains_contract(
    conn: psycopg.Connection[Any], setup: tuple[str, int], stack_settings: Settings
) -> None:
    elevator, crew = setup
    chain = ChainClient(stack_settings.resolved_chain_url())
    deployment = deploy_contract(conn, chain, key=stack_settings.secret("anchorer_key"))
    chain = ChainClient(chain.url, contract_address=deployment.address)
    here = SigningDomain(chain.chain_id(), deployment.address)
    record = _record(elevator)
    good = file_record(
        conn, record, performed_by=crew, signature=sign_record(CREW_KEY, record, here), domain=here
    )
    # Accepted by a server told about another contract, so not valid under this one.
    elsewhere = SigningDomain(chain.chain_id(), "0x" + "cd" * 20)
    other = _record(elevator, "door operator replaced")
    bad = file_record(
        conn, other, performed_by=crew, signature=sign_record(CREW_KEY, other, elsewhere),
        domain=elsewhere,
    )  # fmt: skip

    def seq_of(record_id: int) -> int:
        row = conn.execute(
            "SELECT seq FROM ledger_entries WHERE source_table = 'maintenance_records' "
            "AND source_id = %s",
            (record_id,),
        ).fetchone()
        assert row is not None
        return int(row[0])

    verified = verify_entry(conn, chain, seq_of(good))
    assert (verified.signed, verified.problems) == (True, [])
    refused = verify_entry(conn, chain, seq_of(bad))
    assert refused.signed is True
    assert [(p.seq, p.kind) for p in refused.problems] == [(seq_of(bad), "bad_signature")]

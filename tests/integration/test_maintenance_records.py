"""Maintenance records on the real database: EIP-712 signatures checked against the crew
member's registered key, unsigned records marked, every record a ledger entry."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import secrets
import uuid
from typing import Any

import psycopg
import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data

from accounts.users import AccountError, create_user, update_user
from alerts.maintenance import sweep_maintenance_overdue
from core.db import libpq_url
from core.settings import Settings
from ledger.chain import ChainClient
from ledger.deploy import contract_chain, deploy_contract
from ledger.verify import verify_entry
from liftledger.ledger_sources import LEDGER_SOURCES
from maintenance.records import (
    EIP712_TYPES,
    MaintenanceRecordError,
    MaintenanceRecordInput,
    SigningDomain,
    file_record,
    new_nonce,
    sign_record,
    typed_message,
)
from tests.factories import add_elevator, add_user
from tests.integration.cli_helpers import clean_environment, run_cli

DOMAIN = SigningDomain(31337, "0x" + "ab" * 20)
WHEN = dt.datetime(2026, 11, 20, 10, 30, tzinfo=dt.UTC)
CREW_KEY = "0x" + secrets.token_hex(32)


@pytest.fixture
def setup(conn: psycopg.Connection[Any]) -> tuple[str, int]:
    """An elevator and a crew member with a registered key; returns (elevator, user id)."""
    site, elevator = add_elevator(conn, prefix="mr", created_at=WHEN - dt.timedelta(days=30))
    crew = add_user(conn, "crew", sites=[site], signer_address=Account.from_key(CREW_KEY).address)
    return elevator, crew.id


def _record(elevator: str, summary: str = "half-monthly maintenance") -> MaintenanceRecordInput:
    return MaintenanceRecordInput(
        elevator_id=elevator,
        kind="routine",
        performed_at=WHEN,
        summary=summary,
        details={"checklist": {"brake": "ok", "doors": "adjusted"}, "minutes": 55},
        nonce=new_nonce(),
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
    chain = contract_chain(chain.url, address=deployment.address)
    assert verify_entry(conn, chain, seq, sources=LEDGER_SOURCES).problems == []
    conn.execute(
        "UPDATE maintenance_records SET summary = 'nothing to see' WHERE id = %s", (record_id,)
    )
    problems = [
        (p.seq, p.kind) for p in verify_entry(conn, chain, seq, sources=LEDGER_SOURCES).problems
    ]
    assert problems == [(seq, "source_changed")]


def test_the_audit_checks_a_record_signature_under_this_chains_contract(
    conn: psycopg.Connection[Any], setup: tuple[str, int], stack_settings: Settings
) -> None:
    elevator, crew = setup
    chain = ChainClient(stack_settings.resolved_chain_url())
    deployment = deploy_contract(conn, chain, key=stack_settings.secret("anchorer_key"))
    chain = contract_chain(chain.url, address=deployment.address)
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

    verified = verify_entry(conn, chain, seq_of(good), sources=LEDGER_SOURCES)
    assert (verified.signed, verified.problems) == (True, [])
    refused = verify_entry(conn, chain, seq_of(bad), sources=LEDGER_SOURCES)
    assert refused.signed is True
    assert [(p.seq, p.kind) for p in refused.problems] == [(seq_of(bad), "bad_signature")]


# -- replays, malleable signatures, shared keys (migration 0007) -------------------------------


def test_the_same_signed_record_filed_twice_is_refused_the_second_time(
    conn: psycopg.Connection[Any], setup: tuple[str, int]
) -> None:
    elevator, crew = setup
    record = _record(elevator)
    signature = sign_record(CREW_KEY, record, DOMAIN)
    first = file_record(conn, record, performed_by=crew, signature=signature, domain=DOMAIN)
    with pytest.raises(MaintenanceRecordError, match=f"record {first}") as refused:
        file_record(conn, record, performed_by=crew, signature=signature, domain=DOMAIN)
    assert refused.value.code == "duplicate_record"
    row = conn.execute(
        "SELECT count(*) FROM maintenance_records WHERE nonce = %s", (record.nonce,)
    ).fetchone()
    assert row == (1,)


def test_the_database_refuses_a_second_record_with_the_same_signer_and_nonce(
    conn: psycopg.Connection[Any], setup: tuple[str, int]
) -> None:
    elevator, crew = setup
    record = _record(elevator)
    record_id = file_record(
        conn, record, performed_by=crew, signature=sign_record(CREW_KEY, record, DOMAIN),
        domain=DOMAIN,
    )  # fmt: skip
    with pytest.raises(psycopg.errors.UniqueViolation, match="signer_nonce"):
        conn.execute(
            "INSERT INTO maintenance_records (elevator_id, kind, performed_at, performed_by, "
            "summary, signature, signer_address, signed, nonce) SELECT elevator_id, kind, "
            "performed_at, performed_by, summary, signature, signer_address, signed, nonce "
            "FROM maintenance_records WHERE id = %s",
            (record_id,),
        )


def _high_s_twin(signature: bytes) -> bytes:
    """The other valid encoding of the same ECDSA signature: s' = n - s, v flipped."""
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    s = int.from_bytes(signature[32:64], "big")
    v = signature[64]
    return signature[:32] + (n - s).to_bytes(32, "big") + bytes([55 - v if v >= 27 else 1 - v])


def test_a_high_s_twin_of_a_valid_signature_is_refused(
    conn: psycopg.Connection[Any], setup: tuple[str, int]
) -> None:
    elevator, crew = setup
    record = _record(elevator)
    twin = _high_s_twin(sign_record(CREW_KEY, record, DOMAIN))
    message = encode_typed_data(
        domain_data=DOMAIN.as_dict(), message_types=EIP712_TYPES,
        message_data=typed_message(record),
    )  # fmt: skip
    # ecrecover alone accepts the twin: it recovers the same key.
    assert Account.recover_message(message, signature=twin) == Account.from_key(CREW_KEY).address
    with pytest.raises(MaintenanceRecordError, match="lower half") as refused:
        file_record(conn, record, performed_by=crew, signature=twin, domain=DOMAIN)
    assert refused.value.code == "bad_signature"


def test_a_signed_record_without_its_nonce_is_refused(
    conn: psycopg.Connection[Any], setup: tuple[str, int]
) -> None:
    elevator, crew = setup
    record = _record(elevator)
    signature = sign_record(CREW_KEY, record, DOMAIN)
    with pytest.raises(MaintenanceRecordError) as refused:
        file_record(
            conn, dataclasses.replace(record, nonce=None), performed_by=crew,
            signature=signature, domain=DOMAIN,
        )  # fmt: skip
    assert refused.value.code == "no_nonce"


def test_a_signature_over_another_nonce_is_refused(
    conn: psycopg.Connection[Any], setup: tuple[str, int]
) -> None:
    elevator, crew = setup
    record = _record(elevator)
    signature = sign_record(CREW_KEY, record, DOMAIN)
    with pytest.raises(MaintenanceRecordError) as refused:
        file_record(
            conn, dataclasses.replace(record, nonce=new_nonce()), performed_by=crew,
            signature=signature, domain=DOMAIN,
        )  # fmt: skip
    assert refused.value.code == "signature_mismatch"


def test_a_signing_key_belongs_to_one_user_only(
    conn: psycopg.Connection[Any], setup: tuple[str, int]
) -> None:
    elevator, _ = setup
    site = conn.execute("SELECT site_id FROM elevators WHERE id = %s", (elevator,)).fetchone()
    assert site is not None
    address = Account.from_key(CREW_KEY).address
    with pytest.raises(AccountError, match="already registered to crew-") as refused:
        create_user(conn, username=f"twin-{uuid.uuid4().hex[:8]}", role="crew",
                    sites=[site[0]], signer_address=address.lower())  # fmt: skip
    assert (refused.value.code, refused.value.field) == ("signer_taken", "signer_address")
    other = create_user(conn, username=f"other-{uuid.uuid4().hex[:8]}", role="crew",
                        sites=[site[0]])  # fmt: skip
    with pytest.raises(AccountError, match="one user only") as refused:
        update_user(conn, other.username, signer_address=address)
    assert refused.value.code == "signer_taken"
    with conn.transaction(force_rollback=True), pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute(
            "UPDATE users SET signer_address = %s WHERE id = %s",
            (address.upper().replace("0X", "0x"), other.id),
        )


def test_users_set_signer_refuses_a_key_registered_to_another_user(
    test_database_url: str, stack_settings: Settings
) -> None:
    url = libpq_url(test_database_url)
    key_owner, other = (f"{who}-{uuid.uuid4().hex[:8]}" for who in ("owner", "other"))
    address = Account.from_key("0x" + secrets.token_hex(32)).address
    with psycopg.connect(url) as setup_conn:
        create_user(setup_conn, username=key_owner, role="supervisor", signer_address=address)
        create_user(setup_conn, username=other, role="supervisor")
    env = clean_environment(
        LIFTLEDGER_DATA_DIR=str(stack_settings.data_dir), LIFTLEDGER_DATABASE_URL=test_database_url
    )
    refused = run_cli("users", "set", other, "--signer", address, env=env)
    assert refused.returncode == 1
    assert f"signer {address} is already registered to {key_owner}" in refused.stderr
    with psycopg.connect(url) as check:
        row = check.execute("SELECT signer_address FROM users WHERE username = %s", (other,))
        assert row.fetchone() == (None,)

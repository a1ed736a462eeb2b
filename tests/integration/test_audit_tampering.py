"""The audit against a database insider: every tampering of the acceptance table is detected
and located, by `liftledger audit verify` (contract pinned by configuration) and by
`POST /api/v1/audit/verify` (the API pinned the same way), on the real TimescaleDB and Anvil.

Each test gets a database of its own, with a fresh contract pinned as the supervisor's: a
history of alert events (a rescue acknowledged and on site; a power failure raised, cleared
and raised again; more raises), a maintenance record, anchored in two batches of 13 and 6 entries.
Then it tampers as the database owner would — committing, with the ledger's triggers
switched off where they stand in the way — and checks that the three readers name the seq,
the alert or the row.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from eth_account import Account
from psycopg import sql
from web3.exceptions import ContractCustomError

import alerts.entries
from alerts.detector import AlertSignal
from alerts.store import advance_workflow, apply_signal, record_in_ledger
from core.db import create_engine_from_url, libpq_url
from core.faults import Severity, resolve_thresholds
from core.migrate import upgrade
from core.settings import Settings
from ledger.anchorer import Anchorer, AnchorerConfig
from ledger.chain import ChainClient, artifact
from ledger.deploy import contract_chain, deploy_contract
from ledger.entries import content_hash, entry_bytes
from ledger.merkle import hash_leaf
from ledger.pin import pin_file
from ledger.verify import verify_log
from liftledger.ledger_sources import LEDGER_SOURCES
from liftledger.stack.anvil import rpc_call
from maintenance.records import MaintenanceRecordInput, file_record
from tests.factories import add_elevator, add_user
from tests.integration.api_helpers import add_person, client, running_api
from tests.integration.cli_helpers import clean_environment, run_cli

FIRST_BATCH = 13  # odd: the second anchor's consistency proof then holds leaf 13 itself
SECOND_BATCH = 6
Finding = tuple[int | None, str, int | None]  # (seq, kind, alert id)


@dataclass
class World:
    """One tampering database with its anchored history."""

    url: str
    conn: psycopg.Connection[Any]
    chain: ChainClient
    site: str
    elevator: str
    crew_id: int
    rescue_alert: int
    size: int  # entries, all anchored


def _url_with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(libpq_url(url))._replace(path=f"/{name}"))


@pytest.fixture(scope="module")
def template(stack_settings: Settings) -> Iterator[str]:
    """A migrated, empty database to copy for each test."""
    main = libpq_url(stack_settings.resolved_database_url())
    name = f"audit_tmpl_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(main, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    engine = create_engine_from_url(_url_with_database(main, name), pool_size=1)
    try:
        upgrade(engine, telemetry_chunk_hours=stack_settings.telemetry_chunk_hours)
    finally:
        engine.dispose()
    yield name
    with psycopg.connect(main, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def _anchor(conn: psycopg.Connection[Any], chain: ChainClient, key: str) -> None:
    anchorer = Anchorer(
        conninfo="", chain=chain, key=key, config=AnchorerConfig(batch_entries=1, batch_s=0)
    )
    assert anchorer.step(conn) == "anchored"


def _raise(
    conn: psycopg.Connection[Any],
    where: dict[str, Any],
    type_: str,
    severity: Severity,
    at: dt.datetime,
    *,
    action: str = "raise",
) -> int:
    signal = AlertSignal(where["elevator"], where["site"], type_, action, severity, at,  # type: ignore[arg-type]
                         {"at": at.isoformat()})  # fmt: skip
    with conn.transaction():
        event = apply_signal(conn, signal, resolve_thresholds())
        assert event is not None
        record_in_ledger(conn, [event])
    return event.alert_id


def _step(
    conn: psycopg.Connection[Any], alert_id: int, action: str, user: int, at: dt.datetime
) -> None:
    with conn.transaction():
        record_in_ledger(conn, [advance_workflow(conn, alert_id, action, user_id=user, at=at)])


def _count(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT count(*) FROM ledger_entries").fetchone()
    assert row is not None
    return int(row[0])


@pytest.fixture
def world(stack_settings: Settings, template: str) -> Iterator[World]:
    main = libpq_url(stack_settings.resolved_database_url())
    name = f"audit_{uuid.uuid4().hex[:10]}"
    create = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
        sql.Identifier(name), sql.Identifier(template)
    )
    with psycopg.connect(main, autocommit=True) as admin:
        for attempt in range(50):  # TimescaleDB's workers visit the template now and then
            try:
                admin.execute(create)
                break
            except psycopg.errors.ObjectInUse:
                if attempt == 49:
                    raise
                time.sleep(0.2)
    url = _url_with_database(main, name)
    conn = psycopg.connect(url, autocommit=True)
    key = stack_settings.secret("anchorer_key")
    try:
        placed = add_elevator(conn, prefix="tam", site_name="Tamper")
        names = {"site": placed.site, "elevator": placed.elevator}
        crew_id = add_user(conn, "crew", sites=[placed.site]).id
        chain = ChainClient(stack_settings.resolved_chain_url())
        admin_address = Account.from_key("0x" + secrets.token_hex(32)).address
        deployment = deploy_contract(conn, chain, key=key, admin=admin_address,
                                     separate_admin=True)  # fmt: skip
        chain = contract_chain(chain.url, address=deployment.address)
        base = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)

        def at(minutes: float) -> dt.datetime:
            return base + dt.timedelta(minutes=minutes)

        rescue = _raise(conn, names, "trapped_between_floors", Severity.CRITICAL, at(0))  # 0
        _step(conn, rescue, "acknowledge", crew_id, at(2))  # 1
        _step(conn, rescue, "on_site", crew_id, at(9))  # 2
        _raise(conn, names, "power_failure", Severity.MAJOR, at(10))  # 3
        _raise(conn, names, "power_failure", Severity.MAJOR, at(12), action="clear")  # 4
        _raise(conn, names, "power_failure", Severity.MAJOR, at(20))  # 5: reactivated
        with conn.transaction():  # 6
            file_record(conn, MaintenanceRecordInput(names["elevator"], "routine", at(25),
                                                     "monthly check"),
                        performed_by=crew_id, signature=None, domain=None)  # fmt: skip
        for n in range(6):  # 7..12: a door fault raised and cleared three times
            _raise(conn, names, "door_open_failure", Severity.MAJOR, at(30 + n),
                   action="raise" if n % 2 == 0 else "clear")  # fmt: skip
        assert _count(conn) == FIRST_BATCH
        _anchor(conn, chain, key)
        for n in range(SECOND_BATCH):  # 13..18
            _raise(conn, names, "motor_overheat", Severity.MINOR, at(40 + n),
                   action="raise" if n % 2 == 0 else "clear")  # fmt: skip
        assert _count(conn) == FIRST_BATCH + SECOND_BATCH
        _anchor(conn, chain, key)
        yield World(url, conn, chain, names["site"], names["elevator"], crew_id, rescue,
                    FIRST_BATCH + SECOND_BATCH)  # fmt: skip
    finally:
        conn.close()
        with psycopg.connect(main, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


# -- tampering, as the database owner ------------------------------------------------------


def _canonical(conn: psycopg.Connection[Any], seq: int) -> bytes:
    row = conn.execute("SELECT canonical FROM ledger_entries WHERE seq = %s", (seq,)).fetchone()
    assert row is not None
    return bytes(row[0])


def _owner(conn: psycopg.Connection[Any], *statements: tuple[str, tuple[Any, ...]]) -> None:
    """Run `statements` in one committed transaction with the ledger's triggers off."""
    with conn.transaction():
        conn.execute("ALTER TABLE ledger_entries DISABLE TRIGGER USER")
        for statement, params in statements:
            conn.execute(statement, params)
        conn.execute("ALTER TABLE ledger_entries ENABLE TRIGGER USER")


def _rewrite(conn: psycopg.Connection[Any], seq: int, canonical: bytes) -> bytes:
    digest = content_hash(canonical)
    leaf = hash_leaf(digest)
    _owner(conn, ("UPDATE ledger_entries SET canonical = %s, content_hash = %s, leaf_hash = %s "
                  "WHERE seq = %s", (canonical, digest, leaf, seq)))  # fmt: skip
    return leaf


def _rewrite_suffix(conn: psycopg.Connection[Any], start: int, end: int) -> None:
    """Change entry `start` and its alert event's details together, then rewrite every later
    entry with the new `prev` link and recomputed hashes: a consistent history."""
    import json  # noqa: PLC0415

    body = json.loads(_canonical(conn, start))
    body["details"] = {**body["details"], "forged": True}
    conn.execute("UPDATE alert_events SET details = %s::jsonb WHERE id = %s",
                  (json.dumps(body["details"]), body["alert_event_id"]))  # fmt: skip
    prev = bytes.fromhex(body["prev"])
    for seq in range(start, end):
        body = json.loads(_canonical(conn, seq)) if seq > start else body
        content = {k: v for k, v in body.items() if k not in {"v", "kind", "salt", "prev"}}
        prev = _rewrite(conn, seq, entry_bytes(body["kind"], content, body["salt"], prev=prev))


def _tamper_edit_bytes_keep_hashes(w: World) -> list[Finding]:
    statement = (
        "UPDATE ledger_entries SET canonical = convert_to(replace(convert_from(canonical, "
        "'UTF8'), '\"major\"', '\"minor\"'), 'UTF8') WHERE seq = 3"
    )
    _owner(w.conn, (statement, ()))
    return [(3, "modified", None)]


def _tamper_edit_bytes_recompute_hashes(w: World) -> list[Finding]:
    _rewrite(w.conn, 3, _canonical(w.conn, 3).replace(b'"major"', b'"minor"'))
    return [(3, "rewritten", None)]


def _tamper_edit_entry_and_source_row(w: World) -> list[Finding]:
    import json  # noqa: PLC0415

    body = json.loads(_canonical(w.conn, 1))
    body["time"] = body["time"][:11] + "00:00:00.000Z"  # acknowledged much earlier
    w.conn.execute("UPDATE alert_events SET time = %s WHERE id = %s",
                   (body["time"], body["alert_event_id"]))  # fmt: skip
    w.conn.execute("UPDATE alerts SET acknowledged_at = %s WHERE id = %s",
                   (body["time"], w.rescue_alert))  # fmt: skip
    content = {k: v for k, v in body.items() if k not in {"v", "kind", "salt", "prev"}}
    _rewrite(w.conn, 1, entry_bytes(body["kind"], content, body["salt"],
                                    prev=bytes.fromhex(body["prev"])))  # fmt: skip
    return [(1, "rewritten", None)]


def _tamper_rewrite_suffix(w: World) -> list[Finding]:
    _rewrite_suffix(w.conn, FIRST_BATCH, w.size)
    return [(FIRST_BATCH, "rewritten", None)]


def _tamper_delete(w: World) -> list[Finding]:
    _owner(w.conn, ("DELETE FROM ledger_entries WHERE seq = 8", ()))
    return [(8, "missing", None)]


def _tamper_swap(w: World) -> list[Finding]:
    parked = 10**12
    _owner(
        w.conn,
        ("UPDATE ledger_entries SET seq = %s WHERE seq = 9", (parked,)),
        ("UPDATE ledger_entries SET seq = 9 WHERE seq = 15", ()),
        ("UPDATE ledger_entries SET seq = 15 WHERE seq = %s", (parked,)),
    )
    return [(9, "out_of_order", None), (15, "out_of_order", None)]


def _tamper_insert_with_gap(w: World) -> list[Finding]:
    last = w.size - 1
    _owner(w.conn, ("INSERT INTO ledger_entries (seq, kind, source_table, source_id, canonical, "
                    "content_hash, leaf_hash) SELECT %s, kind, source_table, source_id, canonical, "
                    "content_hash, leaf_hash FROM ledger_entries WHERE seq = %s",
                    (last + 2, last)))  # fmt: skip
    return [(last + 1, "missing", None)]


def _tamper_alert_row(w: World) -> list[Finding]:
    w.conn.execute(
        "UPDATE alerts SET severity = 'info', status = 'resolved', acknowledged_at = opened_at "
        "+ interval '30 seconds', on_site_at = opened_at + interval '1 minute', closed_at = "
        "opened_at + interval '2 minutes' WHERE id = %s",
        (w.rescue_alert,),
    )
    return [(2, "alert_state", w.rescue_alert)]


def _tamper_orphan_rows(w: World) -> list[Finding]:
    event = w.conn.execute(
        "INSERT INTO alert_events (alert_id, time, kind, actor_user_id, details) VALUES "
        "(%s, now(), 'acknowledged', %s, '{}') RETURNING id", (w.rescue_alert, w.crew_id),
    ).fetchone()  # fmt: skip
    record = w.conn.execute(
        "INSERT INTO maintenance_records (elevator_id, kind, performed_at, performed_by, summary) "
        "VALUES (%s, 'routine', now(), %s, 'never ledgered') RETURNING id",
        (w.elevator, w.crew_id),
    ).fetchone()
    assert event is not None
    assert record is not None
    return [(None, f"orphan:alert_events {event[0]}", None),
            (None, f"orphan:maintenance_records {record[0]}", None)]  # fmt: skip


def _tamper_backdated_entry(w: World) -> list[Finding]:
    month_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
    names = {"site": w.site, "elevator": w.elevator}
    _raise(w.conn, names, "levelling_error", Severity.MINOR, month_ago)
    with w.conn.transaction():
        file_record(w.conn, MaintenanceRecordInput(w.elevator, "routine", month_ago, "late"),
                    performed_by=w.crew_id, signature=None, domain=None)  # fmt: skip
    return [(w.size, "backdated", None), (w.size + 1, "backdated", None)]


def _tamper_second_contract(w: World) -> list[Finding]:
    """The insider deploys a contract of their own, records it as the one in use, rewrites a
    suffix consistently and anchors the rewritten log on it."""
    insider = Account.from_key("0x" + secrets.token_hex(32))
    rpc_call(w.chain.url, "anvil_setBalance", [insider.address, hex(10**18)])
    second = deploy_contract(w.conn, ChainClient(w.chain.url), key=insider.key.hex())
    _rewrite_suffix(w.conn, FIRST_BATCH, w.size)
    forged = contract_chain(w.chain.url, address=second.address)
    _anchor(w.conn, forged, insider.key.hex())
    assert forged.head()[0] == w.size
    return [(None, "contract_mismatch", None), (FIRST_BATCH, "rewritten", None)]


TAMPERING: dict[str, Callable[[World], list[Finding]]] = {
    "edit bytes keep hashes": _tamper_edit_bytes_keep_hashes,
    "edit bytes recompute hashes": _tamper_edit_bytes_recompute_hashes,
    "edit entry and source row": _tamper_edit_entry_and_source_row,
    "rewrite a suffix consistently": _tamper_rewrite_suffix,
    "delete": _tamper_delete,
    "swap": _tamper_swap,
    "insert with a gap": _tamper_insert_with_gap,
    "change alerts row": _tamper_alert_row,
    "orphan source row": _tamper_orphan_rows,
    "back-dated appended entry": _tamper_backdated_entry,
    "second contract": _tamper_second_contract,
}


def _found(problems: list[dict[str, Any]], finding: Finding) -> bool:
    seq, kind, alert_id = finding
    if kind.startswith("orphan:"):
        table, source_id = kind.removeprefix("orphan:").split()
        return any(p["kind"] == "orphan" and p["source_table"] == table
                   and p["source_id"] == int(source_id) for p in problems)  # fmt: skip
    return any(p["seq"] == seq and p["kind"] == kind
               and (alert_id is None or p["alert_id"] == alert_id) for p in problems)  # fmt: skip


def _cli_line(finding: Finding) -> re.Pattern[str]:
    seq, kind, alert_id = finding
    if kind.startswith("orphan:"):
        return re.compile(rf"^{re.escape(kind.removeprefix('orphan:'))}: orphan: ", re.M)
    where = f"entry {seq}" if seq is not None else "log"
    if alert_id is not None:
        where += f", alert {alert_id}"
    return re.compile(rf"^{re.escape(where)}: {re.escape(kind)}: ", re.M)


def test_the_untouched_history_verifies(world: World, stack_settings: Settings) -> None:
    report = verify_log(
        world.conn, world.chain, chain_id=stack_settings.chain_id, sources=LEDGER_SOURCES
    )
    assert report.ok, report.render()
    assert report.anchored_size == world.size
    assert report.anchors_checked == 2


@pytest.mark.parametrize("autocommit", [True, False], ids=["autocommit", "transactional"])
def test_alerts_committed_while_the_audit_reads_raise_no_false_alarm(
    autocommit: bool, world: World, stack_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A live system keeps committing while the audit runs: an alert acknowledged and an
    alert opened (row, event and entry in one commit each, as the services do) between the
    audit's reading of the entries and of the alert rows are not reported. The audit reads
    one snapshot, whether the caller's connection is in autocommit (the benchmark, these
    tests) or not (`liftledger audit verify`, the API's pool)."""
    power = world.conn.execute(
        "SELECT id FROM alerts WHERE elevator_id = %s AND type = 'power_failure'",
        (world.elevator,),
    ).fetchone()
    assert power is not None
    names = {"site": world.site, "elevator": world.elevator}
    read_alerts = alerts.entries._alert_problems
    committed: list[int] = []

    def commit_while_reading(conn: psycopg.Connection[Any], states: Any) -> Any:
        _step(world.conn, power[0], "acknowledge", world.crew_id, dt.datetime.now(dt.UTC))
        committed.append(
            _raise(world.conn, names, "levelling_error", Severity.MINOR, dt.datetime.now(dt.UTC))
        )
        return read_alerts(conn, states)

    monkeypatch.setattr(alerts.entries, "_alert_problems", commit_while_reading)
    with psycopg.connect(world.url, autocommit=autocommit) as audit:
        report = verify_log(
            audit, world.chain, chain_id=stack_settings.chain_id, sources=LEDGER_SOURCES
        )
        assert audit.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert committed, "the concurrent commits did not run"
    assert report.ok, report.render()
    assert report.entries == world.size
    monkeypatch.undo()
    after = verify_log(
        world.conn, world.chain, chain_id=stack_settings.chain_id, sources=LEDGER_SOURCES
    )
    assert after.ok, after.render()
    assert after.entries == world.size + 2


@pytest.mark.parametrize("row", list(TAMPERING))
def test_tampering_is_named_by_the_cli_and_the_api(
    row: str, world: World, stack_settings: Settings
) -> None:
    expected = TAMPERING[row](world)
    pinned = str(world.chain.address)

    report = verify_log(
        world.conn, world.chain, chain_id=stack_settings.chain_id, sources=LEDGER_SOURCES
    )
    problems = [
        {"seq": p.seq, "kind": p.kind, "alert_id": p.alert_id, "source_table": p.source_table,
         "source_id": p.source_id} for p in report.problems
    ]  # fmt: skip
    for finding in expected:
        assert _found(problems, finding), (finding, report.render())

    env = clean_environment(LIFTLEDGER_DATA_DIR=str(stack_settings.data_dir),
                            LIFTLEDGER_CONTRACT_ADDRESS=pinned)  # fmt: skip
    cli = run_cli("audit", "verify", "--database-url", world.url, "--chain-url", world.chain.url,
                  env=env)  # fmt: skip
    assert cli.returncode == 1, cli.stdout + cli.stderr
    for finding in expected:
        assert _cli_line(finding).search(cli.stdout), (finding, cli.stdout)

    supervisor = add_person(world.conn, stack_settings, "supervisor")
    with (
        running_api(stack_settings, world.url, contract_address=pinned) as base_url,
        client(base_url) as http,
    ):
        answer = http.post("/api/v1/audit/verify", headers=supervisor.headers)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["ok"] is False
    for finding in expected:
        assert _found(body["problems"], finding), (finding, body["problems"])


def test_the_sla_report_and_the_alert_read_columns_the_audit_checks(
    world: World, stack_settings: Settings
) -> None:
    """The forged row the SLA report would read is the row the audit names."""
    _tamper_alert_row(world)
    report = verify_log(
        world.conn, world.chain, chain_id=stack_settings.chain_id, sources=LEDGER_SOURCES
    )
    [problem] = [p for p in report.problems if p.kind == "alert_state"]
    assert problem.alert_id == world.rescue_alert
    for column in ("severity", "status", "acknowledged_at", "on_site_at", "closed_at"):
        assert column in problem.detail


def test_contracts_deploy_keeps_admin_off_the_anchorer_key_and_pins_the_contract(
    world: World, stack_settings: Settings
) -> None:
    env = clean_environment(LIFTLEDGER_DATA_DIR=str(stack_settings.data_dir),
                            LIFTLEDGER_DATABASE_URL=world.url)  # fmt: skip
    deployed = run_cli("contracts", "deploy", env=env)
    assert deployed.returncode == 0, deployed.stderr
    address = re.search(r"export LIFTLEDGER_CONTRACT_ADDRESS=(0x[0-9a-fA-F]{40})", deployed.stdout)
    assert address is not None, deployed.stdout
    chain = ChainClient(world.chain.url, contract_address=address[1])
    anchorer = Account.from_key(stack_settings.secret("anchorer_key")).address
    assert chain.has_role("ANCHORER_ROLE", anchorer)
    assert not chain.has_role("DEFAULT_ADMIN_ROLE", anchorer)
    admin = re.search(r"admin (0x[0-9a-fA-F]{40})", deployed.stdout)
    assert admin is not None
    assert admin[1].lower() != anchorer.lower()
    assert chain.has_role("DEFAULT_ADMIN_ROLE", admin[1])
    # The anchorer key can anchor and nothing else: it cannot grant or revoke roles.
    contract = chain.w3.eth.contract(address=chain.address, abi=artifact()["abi"])
    role = chain.w3.keccak(text="ANCHORER_ROLE")
    for call in (contract.functions.grantRole(role, Account.create().address),
                 contract.functions.revokeRole(role, anchorer),
                 contract.functions.grantRole(b"\x00" * 32, anchorer)):  # fmt: skip
        with pytest.raises(ContractCustomError):
            call.estimate_gas({"from": anchorer})
    # The deploy pinned it for this database: the CLI audits it without --contract.
    assert pin_file(stack_settings, world.url, chain.chain_id()).read_text().strip() == address[1]
    audited = run_cli("audit", "verify", "--chain-url", world.chain.url, env=env)
    assert f"the audit reads only the pinned contract {chain.address}" not in audited.stdout
    assert "contract_mismatch" not in audited.stdout, audited.stdout
    refused = run_cli("contracts", "deploy", "--admin", anchorer, env=env)
    assert refused.returncode != 0
    assert "can only anchor" in refused.stderr


def test_the_audit_without_a_pinned_contract_refuses_to_follow_the_database(
    world: World, stack_settings: Settings
) -> None:
    env = clean_environment(LIFTLEDGER_DATA_DIR=str(stack_settings.data_dir))
    cli = run_cli("audit", "verify", "--database-url", world.url, "--chain-url", world.chain.url,
                  env=env)  # fmt: skip
    assert cli.returncode != 0
    assert "no anchor contract is pinned" in cli.stderr

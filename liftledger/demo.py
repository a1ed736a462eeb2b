"""`liftledger demo`: the platform on the sample sub-district, started and stopped as one.

Brings the stack up, migrates, imports the bundled registry (21 neighbourhood committees,
230 elevators) with their broker accounts, deploys the anchor contract unless the chain
already has the recorded one, makes a supervisor and a crew member (for the first
neighbourhood committee), then runs the services as child processes: the collector (with
detection), the notifier, the anchorer, the API and a simulated fleet with random faults.
It prints where to look (the API with a bearer token for each of the two users), then one
status line every few seconds (messages ingested, alerts open, ledger entries anchored)
until Ctrl-C, when every child is stopped with SIGTERM. A child that dies stops the demo
with the path of its log.
"""

from __future__ import annotations

import ctypes
import datetime as dt
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import psycopg

from accounts.tokens import issue_token
from accounts.users import create_user, get_user
from core.alerting import UNRESOLVED_STATUSES
from core.credentials import ALERT_READER_USERNAME, service_credentials
from core.db import create_engine_from_url, libpq_url, redacted
from core.errors import StackError
from core.faults import Severity
from core.migrate import upgrade
from core.registry import SAMPLE_REGISTRY, elevator_topics, import_registry
from core.settings import Settings, development_key
from liftledger import stack

STATUS_EVERY_S: Final = 5.0
DEMO_SUPERVISOR: Final = "demo-supervisor"
DEMO_CREW: Final = "demo-crew"
DEMO_CREW_SITE: Final = "nc01"
DEMO_TOKEN_TTL_S: Final = 7 * 24 * 3600
STOP_TIMEOUT_S: Final = 30.0
API_START_TIMEOUT_S: Final = 90.0
PR_SET_PDEATHSIG: Final = 1  # <linux/prctl.h>
REPO: Final = Path(__file__).resolve().parents[1]

Say = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """What the demo runs."""

    fault_rate_per_day: float = 24.0
    anchor_batch_s: float = 15.0
    run_for_s: float | None = None
    metrics_port: int = 9108  # the collector's /metrics


def _stop_with_parent() -> None:
    """In a child: ask Linux for SIGTERM when the demo dies, even if it is killed outright."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Child:
    """One service the demo runs."""

    name: str
    argv: list[str]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "liftledger", *self.argv],
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,  # Ctrl-C reaches the demo, which stops the children
                preexec_fn=_stop_with_parent,  # noqa: PLW1509 - the demo starts no threads first
            )

    def exited(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def stop(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT_S)


def prepare(settings: Settings, say: Say) -> None:
    """Stack, schema, registry and broker accounts, contract."""
    stack.up(settings, say=say)
    engine = create_engine_from_url(settings.resolved_database_url(), pool_size=1)
    try:
        upgrade(engine, telemetry_chunk_hours=settings.telemetry_chunk_hours)
    finally:
        engine.dispose()
    with psycopg.connect(libpq_url(settings.resolved_database_url())) as conn:
        result = import_registry(conn, SAMPLE_REGISTRY)
        conn.commit()
        topics = elevator_topics(conn)
    stack.sync_broker_auth(settings, topics)
    say(f"registry: {result.elevators} elevators in {result.sites} sites (sample sub-district)")
    _ensure_contract(settings, say)
    _ensure_people(settings)


def _ensure_people(settings: Settings) -> None:
    """The demo's supervisor and crew member (no password: they use the printed tokens)."""
    with psycopg.connect(libpq_url(settings.resolved_database_url())) as conn:
        if get_user(conn, DEMO_SUPERVISOR) is None:
            create_user(conn, username=DEMO_SUPERVISOR, role="supervisor")
        if get_user(conn, DEMO_CREW) is None:
            create_user(conn, username=DEMO_CREW, role="crew", sites=[DEMO_CREW_SITE])


def _ensure_contract(settings: Settings, say: Say) -> None:
    # web3 takes seconds to import; only this step needs it.
    from eth_account import Account  # noqa: PLC0415

    from ledger.chain import ChainClient  # noqa: PLC0415
    from ledger.deploy import ADMIN_KEY_NAME, contract_chain, deploy_contract  # noqa: PLC0415
    from ledger.pin import pinned_contract, write_pin  # noqa: PLC0415

    chain = ChainClient(settings.resolved_chain_url())
    database_url = settings.resolved_database_url()
    pinned = pinned_contract(settings, database_url)
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        # The pin is reused when this database deployed it and the code is the contract's.
        if pinned is not None:
            ours = conn.execute(
                "SELECT 1 FROM contract_deployments WHERE lower(address) = lower(%s)", (pinned,)
            ).fetchone()
            recorded = contract_chain(chain.url, address=pinned)
            if ours is not None and recorded.code_matches_artifact():
                say(f"anchor contract: {pinned}")
                return
        admin = Account.from_key(development_key(settings, ADMIN_KEY_NAME)).address
        deployment = deploy_contract(
            conn, chain, key=settings.secret("anchorer_key"), admin=admin, separate_admin=True
        )
    if settings.contract_address is None:
        write_pin(settings, database_url, deployment.chain_id, deployment.address)
    say(f"anchor contract: {deployment.address} (deployed now)")


def children(settings: Settings, options: DemoOptions) -> list[Child]:
    """The services, each with its log in the data folder."""
    logs = settings.data_dir / "log"
    rate = f"{options.fault_rate_per_day:g}"
    return [
        Child("collector", ["collector", "--metrics-port", str(options.metrics_port)],
              logs / "demo-collector.log"),
        Child("notifier", ["notifier"], logs / "demo-notifier.log"),
        Child("anchorer", ["anchorer", "--batch-seconds", f"{options.anchor_batch_s:g}"],
              logs / "demo-anchorer.log"),
        Child("api", ["api", "--port", str(settings.api_port)], logs / "demo-api.log"),
        Child("simulator", ["simulate", "--registry", str(SAMPLE_REGISTRY), "--faults",
                            "random", "--fault-rate", rate, "--duration", "30d"],
              logs / "demo-simulator.log"),
    ]  # fmt: skip


def status_line(conn: psycopg.Connection[Any], chain_size: int) -> str:
    """Messages ingested, alerts open, entries anchored."""
    row = conn.execute(
        "SELECT (SELECT count(*) FROM telemetry WHERE received_at > now() - interval '1 day')"
        " + (SELECT count(*) FROM device_events WHERE received_at > now() - interval '1 day'),"
        " (SELECT count(*) FROM alerts WHERE status = ANY(%(unresolved)s)),"
        " (SELECT count(*) FROM alerts WHERE status = ANY(%(unresolved)s)"
        "   AND severity = %(critical)s),"
        " (SELECT coalesce(max(seq) + 1, 0) FROM ledger_entries)",
        {"unresolved": list(UNRESOLVED_STATUSES), "critical": Severity.CRITICAL},
    ).fetchone()
    ingested, open_alerts, critical, entries = row if row else (0, 0, 0, 0)
    return (
        f"ingested {ingested:,} messages · alerts open {open_alerts} ({critical} critical) · "
        f"ledger {entries} entries, {chain_size} anchored"
    )


def _where_to_look(settings: Settings, options: DemoOptions, say: Say) -> None:
    reader = service_credentials(settings.secret("mqtt_secret"), ALERT_READER_USERNAME)
    url = settings.resolved_mqtt_url().removeprefix("mqtt://")
    host, _, port = url.partition(":")
    api = settings.resolved_api_url()
    secret = settings.secret("jwt_secret")
    now = dt.datetime.now(dt.UTC)
    supervisor = issue_token(DEMO_SUPERVISOR, secret=secret, now=now, ttl_s=DEMO_TOKEN_TTL_S)
    crew = issue_token(DEMO_CREW, secret=secret, now=now, ttl_s=DEMO_TOKEN_TTL_S)
    say("")
    say(f"API:        {api}/docs  (OpenAPI; click Authorize and paste a token)")
    say(f"supervisor: {DEMO_SUPERVISOR} token {supervisor}")
    say(f"crew:       {DEMO_CREW} ({DEMO_CREW_SITE}) token {crew}")
    say(f"try:        curl -N -H 'Authorization: Bearer {crew}' {api}/api/v1/alerts/stream")
    say(f"database:   {redacted(settings.resolved_database_url())}")
    say(f"alerts:     mosquitto_sub -h {host} -p {port or 1883} -u {reader.username} "
        f"-P '{reader.password}' -t 'lift/v1/+/+/alert' -v")  # fmt: skip
    say(f"metrics:    http://127.0.0.1:{options.metrics_port}/metrics (collector)")
    say("audit:      liftledger audit verify")
    say(f"logs:       {settings.data_dir / 'log'}/demo-*.log")
    say("stop:       Ctrl-C")
    say("")


def _wait_for_api(settings: Settings, services: list[Child]) -> None:
    """Print the API's address only once it answers (it loads in a few seconds)."""
    url = settings.resolved_api_url() + "/healthz"
    api = next(child for child in services if child.name == "api")
    deadline = time.monotonic() + API_START_TIMEOUT_S
    while time.monotonic() < deadline and api.exited() is None:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - our own http URL
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise StackError(f"the API did not answer at {url}; see {api.log}")


def run_demo(settings: Settings, options: DemoOptions, *, say: Say) -> int:
    """Run the demo until Ctrl-C (or `run_for_s`); returns the exit status."""
    prepare(settings, say)
    from ledger.deploy import contract_chain  # noqa: PLC0415
    from ledger.pin import pinned_contract  # noqa: PLC0415

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    services = children(settings, options)
    for child in services:
        child.start()
    ends = time.monotonic() + options.run_for_s if options.run_for_s is not None else None
    status = 0
    try:
        _wait_for_api(settings, services)
        _where_to_look(settings, options, say)
        with psycopg.connect(libpq_url(settings.resolved_database_url()), autocommit=True) as conn:
            pinned = pinned_contract(settings, settings.resolved_database_url())
            if pinned is None:
                raise StackError("the anchor contract's pin disappeared from the data folder")
            chain = contract_chain(settings.resolved_chain_url(), address=pinned)
            while not stop.wait(STATUS_EVERY_S):
                dead = [c for c in services if c.exited() is not None]
                if dead:
                    for child in dead:
                        say(f"error: the {child.name} stopped (exit {child.exited()}); "
                            f"see {child.log}")  # fmt: skip
                    status = 1
                    break
                say(status_line(conn, chain.head()[0]))
                if ends is not None and time.monotonic() >= ends:
                    break
    finally:
        say("stopping…")
        for child in reversed(services):
            child.stop()
        say("stopped")
    return status

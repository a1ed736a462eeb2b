"""`liftledger`: the one command line of every LiftLedger process and operator task.

Each subcommand builds the settings and the adapters it needs, then calls into the packages.
Errors the operator can fix are printed as one `error:` line and exit status 1.
"""

from __future__ import annotations

import argparse
import datetime as dt
import faulthandler
import logging
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg

from core.credentials import device_credentials
from core.db import create_engine_from_url, libpq_url, session_factory, translate_connect_errors
from core.db_roles import check_service_connection, service_settings
from core.errors import ConfigError, LiftLedgerError, RegistryError
from core.faults import FAULTS_BY_NAME, Severity
from core.migrate import current_revision, head_revision, upgrade
from core.registry import (
    SAMPLE_REGISTRY,
    ParsedRegistry,
    active_elevators,
    elevator_topics,
    get_elevator,
    import_registry,
    upsert_registry,
)
from core.settings import Settings, development_key, load_settings
from ingest.collector import CollectorConfig
from liftledger import stack
from liftledger.demo import DemoOptions, run_demo
from liftledger.services.collector import run_collector
from liftledger.services.notifier import run_notifier
from notify.notifier import NotifierConfig
from notify.webhooks import active_subscriptions, add_subscription, remove_subscription
from simulators.command import (
    SimulateOptions,
    dry_run,
    parse_duration,
    registry_for,
    run_live,
)
from simulators.elevator import ElevatorSpec
from simulators.specs import specs_from_registry, specs_from_rows

if TYPE_CHECKING:
    from ledger.chain import ChainClient

Handler = Callable[[argparse.Namespace, Settings], int]


def _say(line: str) -> None:
    print(line, flush=True)


# -- stack -----------------------------------------------------------------------------------


def cmd_stack_up(args: argparse.Namespace, settings: Settings) -> int:
    """Install what is missing and start the local services."""
    stack.up(settings, say=_say)
    return 0


def cmd_stack_down(args: argparse.Namespace, settings: Settings) -> int:
    """Stop the local services this stack started."""
    stack.down(settings, say=_say)
    return 0


def cmd_stack_status(args: argparse.Namespace, settings: Settings) -> int:
    """Print each service, its URL and whether it answers."""
    return 0 if stack.status(settings, say=_say) else 1


def cmd_stack_env(args: argparse.Namespace, settings: Settings) -> int:
    """Print the service URLs as shell `export` lines."""
    for line in stack.env_lines(settings):
        print(line)
    return 0


# -- database and registry -------------------------------------------------------------------


def cmd_db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    """Apply the schema migrations."""
    engine = create_engine_from_url(settings.resolved_database_url(), pool_size=1)
    try:
        upgrade(engine, telemetry_chunk_hours=settings.telemetry_chunk_hours)
        _say(f"database schema at revision {current_revision(engine)} (head {head_revision()})")
    finally:
        engine.dispose()
    return 0


def cmd_elevators_import(args: argparse.Namespace, settings: Settings) -> int:
    """Load a registry CSV and give each elevator its broker account."""
    path: Path = SAMPLE_REGISTRY if args.file == "sample" else Path(args.file)
    engine = create_engine_from_url(settings.resolved_database_url(), pool_size=1)
    try:
        if current_revision(engine) is None:
            raise RegistryError("the database has no schema yet: run `liftledger db upgrade`")
        with translate_connect_errors(str(engine.url)), session_factory(engine)() as session:
            result = import_registry(path, db_session=session)
            session.commit()
            topics = elevator_topics(db_session=session)
    finally:
        engine.dispose()
    stack.sync_broker_auth(settings, topics)
    _say(f"imported {result.elevators} elevators in {result.sites} sites from {path}")
    return 0


def cmd_elevators_credentials(args: argparse.Namespace, settings: Settings) -> int:
    """Print one elevator's MQTT username and password."""
    engine = create_engine_from_url(settings.resolved_database_url(), pool_size=1)
    try:
        with translate_connect_errors(str(engine.url)), session_factory(engine)() as session:
            if (
                current_revision(engine) is None
                or get_elevator(args.elevator_id, db_session=session) is None
            ):
                raise RegistryError(
                    f"elevator {args.elevator_id} is not registered: import it with "
                    "`liftledger elevators import FILE.csv`"
                )
            topics = elevator_topics(db_session=session)
    finally:
        engine.dispose()
    stack.sync_broker_auth(settings, topics)
    credentials = device_credentials(settings.secret("mqtt_secret"), args.elevator_id)
    print(f"username={credentials.username}")
    print(f"password={credentials.password}")
    return 0


# -- collector -------------------------------------------------------------------------------


def _partition(text: str) -> tuple[int, int]:
    try:
        part, total = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError("must look like K/N, e.g. 0/2") from None
    if not 0 <= part < total:
        raise argparse.ArgumentTypeError("K must be between 0 and N-1")
    return part, total


def cmd_collector(args: argparse.Namespace, settings: Settings) -> int:
    """Collect telemetry, events and status from MQTT into TimescaleDB."""
    part, total = args.partition
    config = CollectorConfig(
        batch_max=args.batch_size,
        batch_interval_s=args.batch_interval,
        partition=part,
        partitions=total,
        max_age_s=settings.stale_timestamp_s,
        dead_letter_retention_s=settings.dead_letter_retention_days * 86_400.0,
    )
    _configure_logging()
    faulthandler.register(signal.SIGUSR1)  # `kill -USR1 PID` prints every thread's stack
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    run_collector(
        settings,
        config,
        metrics_port=args.metrics_port,
        metrics_host=args.metrics_host,
        stop=stop,
    )
    return 0


# -- notifier and webhooks ---------------------------------------------------------------------


def _run_until_signal(run: Callable[[threading.Event], None]) -> int:
    _configure_logging()
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    run(stop)
    return 0


def cmd_notifier(args: argparse.Namespace, settings: Settings) -> int:
    """Deliver alert events (MQTT alert topic, webhooks) and run escalation timers."""
    config = NotifierConfig(
        escalation_interval_s=args.escalation_interval,
        maintenance_interval_s=args.maintenance_interval,
    )
    return _run_until_signal(lambda stop: run_notifier(settings, config, stop=stop))


def _csv_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _fault_types(text: str) -> list[str]:
    types = _csv_list(text)
    unknown = sorted(set(types) - set(FAULTS_BY_NAME))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown fault type(s): {', '.join(unknown)}")
    return types


def _database_connection(settings: Settings) -> psycopg.Connection[Any]:
    url = settings.resolved_database_url()
    with translate_connect_errors(url):
        return psycopg.connect(libpq_url(url), connect_timeout=5)


def cmd_webhooks_add(args: argparse.Namespace, settings: Settings) -> int:
    """Register a webhook; prints its signing secret once."""
    secret = args.secret_file.read_text().strip() if args.secret_file else None
    with _database_connection(settings) as conn:
        sub = add_subscription(
            conn,
            name=args.name,
            url=args.url,
            sites=args.sites,
            types=args.types,
            events=args.events,
            min_severity=Severity(args.min_severity),
            secret=secret,
        )
    _say(f"webhook {sub.name} -> {sub.url}")
    if secret is None:
        _say(f"signing secret (shown once): {sub.secret}")
    return 0


def cmd_webhooks_list(args: argparse.Namespace, settings: Settings) -> int:
    """List active webhooks."""
    with _database_connection(settings) as conn:
        for sub in active_subscriptions(conn):
            wanted = sub.wanted
            _say(
                f"{sub.name}\t{sub.url}\tsites={','.join(wanted.sites or ['*'])}"
                f"\ttypes={','.join(wanted.types or ['*'])}"
                f"\tevents={','.join(wanted.events or ['*'])}\tmin={wanted.min_severity}"
            )
    return 0


def cmd_webhooks_remove(args: argparse.Namespace, settings: Settings) -> int:
    """Stop sending to a webhook."""
    with _database_connection(settings) as conn:
        remove_subscription(conn, args.name)
    _say(f"webhook {args.name} removed")
    return 0


# -- people and the API ----------------------------------------------------------------------


def _password_of(args: argparse.Namespace) -> str | None:
    if args.password_file is not None:
        try:
            return Path(args.password_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"cannot read {args.password_file}: {exc.strerror}") from exc
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    return None


def cmd_users_add(args: argparse.Namespace, settings: Settings) -> int:
    """Add a user (crew, supervisor or admin); crew need --sites."""
    from accounts.users import create_user  # noqa: PLC0415

    with _database_connection(settings) as conn:
        user = create_user(
            conn, username=args.name, role=args.role, sites=args.sites or [],
            password=_password_of(args), full_name=args.full_name, signer_address=args.signer,
        )  # fmt: skip
    sites = ",".join(user.sites) or "all sites"
    _say(f"user {user.username} ({user.role}, {sites}) added")
    return 0


def cmd_users_set(args: argparse.Namespace, settings: Settings) -> int:
    """Change a user's role, sites, password, signing key or active flag."""
    from accounts.users import update_user  # noqa: PLC0415

    active = None if args.active is None else args.active == "yes"
    with _database_connection(settings) as conn:
        user = update_user(
            conn, args.name, role=args.role, sites=args.sites, password=_password_of(args),
            full_name=args.full_name, signer_address=args.signer, active=active,
        )  # fmt: skip
    _say(f"user {user.username}: {user.role}, sites {','.join(user.sites) or 'all'}, "
         f"{'active' if user.active else 'deactivated'}")  # fmt: skip
    return 0


def cmd_users_list(args: argparse.Namespace, settings: Settings) -> int:
    """List users with role and sites."""
    from accounts.users import list_users  # noqa: PLC0415

    with _database_connection(settings) as conn:
        after = 0
        while page := list_users(conn, after_id=after, limit=500):
            for user in page:
                state = "" if user.active else "\tdeactivated"
                _say(f"{user.username}\t{user.role}\t{','.join(user.sites) or '*'}{state}")
            after = page[-1].id
    return 0


def cmd_users_revoke_tokens(args: argparse.Namespace, settings: Settings) -> int:
    """End every token a user holds now (tokens issued afterwards work)."""
    from accounts.users import revoke_tokens  # noqa: PLC0415

    with _database_connection(settings) as conn:
        user = revoke_tokens(conn, args.name)
    _say(f"user {user.username}: every token issued so far is revoked")
    return 0


def cmd_token(args: argparse.Namespace, settings: Settings) -> int:
    """Print a bearer token for a user (for scripts and operators), valid up to 30 days."""
    from accounts.tokens import MAX_TTL_S, issue_token  # noqa: PLC0415
    from accounts.users import get_user  # noqa: PLC0415

    ttl_s = int(parse_duration(args.ttl))
    if not 1 <= ttl_s <= MAX_TTL_S:
        raise ConfigError(
            f"--ttl {args.ttl}: a token lives between 1 s and {MAX_TTL_S // 86400}d; "
            "issue a new one when it expires"
        )
    with _database_connection(settings) as conn:
        user = get_user(conn, args.name)
    if user is None or not user.active:
        raise ConfigError(f"no active user {args.name}: add one with `liftledger users add`")
    now = dt.datetime.now(dt.UTC)
    print(issue_token(user.username, secret=settings.secret("jwt_secret"), now=now, ttl_s=ttl_s,
                      version=user.token_version))  # fmt: skip
    return 0


def cmd_api(args: argparse.Namespace, settings: Settings) -> int:
    """Serve the HTTP API (OpenAPI at /docs)."""
    from liftledger.services.api import run_api  # noqa: PLC0415

    _configure_logging()
    run_api(settings, host=args.host, port=args.port or settings.api_port, workers=args.workers)
    return 0


def _add_people_commands(commands: Any) -> None:
    """`users add|set|list`, `token`, `api`."""
    users = commands.add_parser("users", help="people who sign in to the API")
    user_commands = users.add_subparsers(dest="users_command", required=True)
    for name, handler in (("add", cmd_users_add), ("set", cmd_users_set)):
        sub = user_commands.add_parser(name, help=handler.__doc__)
        sub.add_argument("name")
        if name == "add":
            sub.add_argument("--role", required=True, choices=["crew", "supervisor", "admin"])
        else:
            sub.add_argument("--role", choices=["crew", "supervisor", "admin"])
            sub.add_argument("--active", choices=["yes", "no"])
        sub.add_argument("--sites", type=_csv_list, help="comma-separated site ids (crew)")
        secret = sub.add_mutually_exclusive_group()
        secret.add_argument("--password-file", type=Path, help="read the password from a file")
        secret.add_argument("--password-stdin", action="store_true",
                            help="read the password from standard input")  # fmt: skip
        sub.add_argument("--full-name")
        sub.add_argument("--signer", help="address of the EIP-712 key that signs records")
        sub.set_defaults(handler=handler)
    user_commands.add_parser("list", help=cmd_users_list.__doc__).set_defaults(
        handler=cmd_users_list
    )
    revoke = user_commands.add_parser("revoke-tokens", help=cmd_users_revoke_tokens.__doc__)
    revoke.add_argument("name")
    revoke.set_defaults(handler=cmd_users_revoke_tokens)
    token = commands.add_parser("token", help=cmd_token.__doc__)
    token.add_argument("name")
    token.add_argument("--ttl", default="8h", help="how long it is valid: 30m, 8h, 7d; at most 30d")
    token.set_defaults(handler=cmd_token)

    api = commands.add_parser("api", help=cmd_api.__doc__)
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=int, help="default: LIFTLEDGER_API_PORT (58000)")
    api.add_argument("--workers", type=int, default=1, help="worker processes")
    api.set_defaults(handler=cmd_api)


# -- demo --------------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    """Run the platform on the sample sub-district with a simulated fleet, until Ctrl-C."""
    options = DemoOptions(
        fault_rate_per_day=args.fault_rate,
        anchor_batch_s=args.anchor_seconds,
        run_for_s=parse_duration(args.run_for) if args.run_for else None,
        metrics_port=args.metrics_port,
    )
    return run_demo(settings, options, say=_say)


# -- ledger ------------------------------------------------------------------------------------


# web3 takes about 3 s to import: only the ledger commands load it.


def _chain_for(conn: psycopg.Connection[Any], url: str, address: str | None) -> ChainClient:
    from ledger.chain import ChainClient  # noqa: PLC0415
    from ledger.deploy import current_deployment  # noqa: PLC0415

    chain = ChainClient(url)
    if address is None:
        deployment = current_deployment(conn, chain.chain_id())
        if deployment is None:
            raise ConfigError(
                f"no anchor contract recorded for the chain at {url}: "
                "run `liftledger contracts deploy` (or pass --contract ADDRESS)"
            )
        address = deployment.address
    return ChainClient(url, contract_address=address)


def _pinned_chain(
    settings: Settings, database_url: str, url: str, address: str | None
) -> ChainClient:
    """The chain client of the contract the audit trusts: `--contract`, else the pinned one
    (`ledger.pin`); never the contract the audited database records."""
    from ledger.chain import ChainClient  # noqa: PLC0415
    from ledger.pin import pinned_contract  # noqa: PLC0415

    address = address or pinned_contract(settings, database_url)
    if address is None:
        raise ConfigError(
            "no anchor contract is pinned: pass --contract ADDRESS (the address published "
            "when the contract was deployed) or set LIFTLEDGER_CONTRACT_ADDRESS"
        )
    return ChainClient(url, contract_address=address)


def cmd_contracts_deploy(args: argparse.Namespace, settings: Settings) -> int:
    """Deploy the anchor contract, record it and pin it for this stack's database."""
    from eth_account import Account  # noqa: PLC0415

    from ledger.chain import ChainClient  # noqa: PLC0415
    from ledger.deploy import ADMIN_KEY_NAME, deploy_contract  # noqa: PLC0415
    from ledger.pin import write_pin  # noqa: PLC0415

    key = settings.secret("anchorer_key")
    admin = args.admin
    if admin is None:
        if settings.env == "production":
            raise ConfigError("pass --admin ADDRESS: the contract's admin (e.g. a multisig)")
        admin = Account.from_key(development_key(settings, ADMIN_KEY_NAME)).address
    database_url = settings.resolved_database_url()
    with _database_connection(settings) as conn:
        chain = ChainClient(settings.resolved_chain_url())
        deployment = deploy_contract(conn, chain, key=key, admin=admin, separate_admin=True)
    _say(f"anchor contract {deployment.address} on chain {deployment.chain_id}")
    _say(
        f"block {deployment.block_number}; admin {deployment.admin}; anchorer {deployment.anchorer}"
    )
    if settings.env != "production" and settings.contract_address is None:
        pinned = write_pin(settings, database_url, deployment.chain_id, deployment.address)
        _say(f"pinned for this stack's database in {pinned}")
    _say(f"export LIFTLEDGER_CONTRACT_ADDRESS={deployment.address}")
    return 0


def cmd_anchorer(args: argparse.Namespace, settings: Settings) -> int:
    """Anchor the ledger's Merkle head on chain, one transaction per batch."""
    from ledger.anchorer import Anchorer, AnchorerConfig  # noqa: PLC0415
    from ledger.pin import pinned_contract  # noqa: PLC0415

    settings = service_settings(settings, "anchorer")
    check_service_connection(
        settings.resolved_database_url(), "anchorer", production=settings.env == "production"
    )
    pinned = pinned_contract(settings, settings.resolved_database_url())
    with _database_connection(settings) as conn:
        chain = _chain_for(conn, settings.resolved_chain_url(), pinned)
    config = AnchorerConfig(
        batch_s=args.batch_seconds,
        batch_entries=args.batch_entries,
        finality_depth=settings.chain_finality_depth,
    )
    anchorer = Anchorer(
        conninfo=libpq_url(settings.resolved_database_url()),
        chain=chain,
        key=settings.secret("anchorer_key"),
        config=config,
    )
    return _run_until_signal(anchorer.run)


def cmd_audit_verify(args: argparse.Namespace, settings: Settings) -> int:
    """Verify one entry (--entry SEQ) or the whole log against the roots on chain."""
    from ledger.verify import verify_entry, verify_log  # noqa: PLC0415

    database_url = args.database_url or settings.resolved_database_url()
    chain_url = args.chain_url or settings.resolved_chain_url()
    chain = _pinned_chain(settings, database_url, chain_url, args.contract)
    with translate_connect_errors(database_url):
        conn = psycopg.connect(libpq_url(database_url), connect_timeout=5)
    with conn:
        if not chain.code_matches_artifact():
            _say(f"warning: the code at {chain.address} is not the LiftLedger anchor contract")
        if args.entry is not None:
            entry = verify_entry(conn, chain, args.entry)
            _say(entry.render())
            return 0 if entry.ok else 1
        report = verify_log(
            conn, chain, chain_id=args.chain_id or settings.chain_id,
            backdate_s=settings.audit_backdate_s,
        )  # fmt: skip
    _say(report.render())
    return 0 if report.ok else 1


def _add_ledger_commands(commands: Any) -> None:
    """`contracts deploy`, `anchorer`, `audit verify`."""
    contracts = commands.add_parser("contracts", help="the anchor contract")
    contract_commands = contracts.add_subparsers(dest="contracts_command", required=True)
    deploy = contract_commands.add_parser("deploy", help=cmd_contracts_deploy.__doc__)
    deploy.add_argument(
        "--admin",
        help="admin address, not the anchorer's (default outside production: a generated "
        "development admin key in the data folder)",
    )
    deploy.set_defaults(handler=cmd_contracts_deploy)

    anchorer = commands.add_parser("anchorer", help=cmd_anchorer.__doc__)
    anchorer.add_argument("--batch-seconds", type=float, default=60.0)
    anchorer.add_argument("--batch-entries", type=int, default=1000)
    anchorer.set_defaults(handler=cmd_anchorer)

    audit = commands.add_parser("audit", help="verify the audit trail against the chain")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True)
    verify = audit_commands.add_parser("verify", help=cmd_audit_verify.__doc__)
    verify.add_argument("--entry", type=int, help="verify this seq only")
    verify.add_argument("--database-url", help="the database to audit (default: settings)")
    verify.add_argument("--chain-url", help="the chain's JSON-RPC URL (default: settings)")
    verify.add_argument(
        "--contract",
        help="the contract address to trust (default: LIFTLEDGER_CONTRACT_ADDRESS, or the "
        "local stack's pin; never the one the audited database records)",
    )
    verify.add_argument(
        "--chain-id", type=int, help="the chain id to trust (default: LIFTLEDGER_CHAIN_ID)"
    )
    verify.set_defaults(handler=cmd_audit_verify)


def _configure_logging() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


# -- simulator -------------------------------------------------------------------------------


def cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    """Run a simulated fleet that speaks device protocol v1."""
    options = SimulateOptions(
        elevators=args.elevators,
        registry=args.registry,
        speedup=args.speedup,
        seed=args.seed,
        faults=args.faults,
        fault_rate_per_day=args.fault_rate,
        duration_s=parse_duration(args.duration),
        dry_run=args.dry_run,
        start=args.start,
        traffic_scale=args.traffic_scale,
        idle_interval_s=args.idle_interval,
        replay=args.replay,
        bad_input=args.bad_input,
    )
    parsed = registry_for(options)
    if args.dry_run is not None:
        if parsed is None:
            raise ConfigError("--dry-run needs --elevators N or --registry FILE")
        progress = dry_run(options, specs_from_registry(parsed), args.dry_run)
    else:
        progress = run_live(options, settings, _register_simulated(settings, parsed))
    print(file=sys.stderr)
    _say(progress.line())
    return 0


def _register_simulated(settings: Settings, parsed: ParsedRegistry | None) -> list[ElevatorSpec]:
    """Register the simulated elevators (database and broker accounts); return their specs."""
    engine = create_engine_from_url(settings.resolved_database_url(), pool_size=1)
    try:
        if current_revision(engine) is None:
            raise RegistryError("the database has no schema yet: run `liftledger db upgrade`")
        with translate_connect_errors(str(engine.url)), session_factory(engine)() as session:
            if parsed is not None:
                upsert_registry(parsed, db_session=session)
                session.commit()
            wanted = None if parsed is None else {row["id"] for row in parsed.elevators}
            elevators = [
                e for e in active_elevators(db_session=session) if wanted is None or e.id in wanted
            ]
            topics = elevator_topics(db_session=session)
    finally:
        engine.dispose()
    stack.sync_broker_auth(settings, topics)
    return specs_from_rows(elevators)


def _iso_time(text: str) -> dt.datetime:
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


# -- wiring ----------------------------------------------------------------------------------


def _add_alert_commands(commands: Any) -> None:
    """`notifier` and `webhooks …`."""
    notifier = commands.add_parser("notifier", help=cmd_notifier.__doc__)
    notifier.add_argument(
        "--escalation-interval", type=float, default=1.0, help="seconds between checks"
    )
    notifier.add_argument(
        "--maintenance-interval", type=float, default=60.0, help="seconds between sweeps"
    )
    notifier.set_defaults(handler=cmd_notifier)

    webhooks = commands.add_parser("webhooks", help="alert webhooks")
    webhook_commands = webhooks.add_subparsers(dest="webhooks_command", required=True)
    add = webhook_commands.add_parser("add", help=cmd_webhooks_add.__doc__)
    add.add_argument("name")
    add.add_argument("url")
    add.add_argument("--sites", type=_csv_list, help="only these sites (comma-separated)")
    add.add_argument("--types", type=_fault_types, help="only these fault types")
    add.add_argument("--events", type=_csv_list, help="only these events (opened, escalated…)")
    add.add_argument(
        "--min-severity", choices=[s.value for s in Severity], default=Severity.INFO.value
    )
    add.add_argument("--secret-file", type=Path, help="read the signing secret from this file")
    add.set_defaults(handler=cmd_webhooks_add)
    webhook_commands.add_parser("list", help=cmd_webhooks_list.__doc__).set_defaults(
        handler=cmd_webhooks_list
    )
    remove = webhook_commands.add_parser("remove", help=cmd_webhooks_remove.__doc__)
    remove.add_argument("name")
    remove.set_defaults(handler=cmd_webhooks_remove)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="liftledger", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    stack_parser = commands.add_parser("stack", help="local TimescaleDB, Mosquitto and Anvil")
    stack_commands = stack_parser.add_subparsers(dest="action", required=True)
    for name, handler in (
        ("up", cmd_stack_up),
        ("down", cmd_stack_down),
        ("status", cmd_stack_status),
        ("env", cmd_stack_env),
    ):
        sub = stack_commands.add_parser(name, help=handler.__doc__)
        sub.set_defaults(handler=handler)

    db_parser = commands.add_parser("db", help="database schema")
    db_commands = db_parser.add_subparsers(dest="action", required=True)
    db_commands.add_parser("upgrade", help=cmd_db_upgrade.__doc__).set_defaults(
        handler=cmd_db_upgrade
    )

    elevators = commands.add_parser("elevators", help="the elevator registry")
    elevator_commands = elevators.add_subparsers(dest="action", required=True)
    importer = elevator_commands.add_parser("import", help=cmd_elevators_import.__doc__)
    importer.add_argument("file", help="registry CSV, or `sample` for the bundled sub-district")
    importer.set_defaults(handler=cmd_elevators_import)
    creds = elevator_commands.add_parser("credentials", help=cmd_elevators_credentials.__doc__)
    creds.add_argument("elevator_id")
    creds.set_defaults(handler=cmd_elevators_credentials)

    collector = commands.add_parser("collector", help=cmd_collector.__doc__)
    collector.add_argument(
        "--partition", type=_partition, default=(0, 1), help="K/N: this collector's share"
    )
    collector.add_argument("--batch-size", type=int, default=5000, help="messages per batch")
    collector.add_argument(
        "--batch-interval", type=float, default=0.05, help="seconds a batch may stay open"
    )
    collector.add_argument("--metrics-port", type=int, help="serve Prometheus /metrics here")
    collector.add_argument(
        "--metrics-host",
        default="127.0.0.1",
        help="address /metrics listens on (default 127.0.0.1; 0.0.0.0 exposes it)",
    )
    collector.set_defaults(handler=cmd_collector)

    _add_alert_commands(commands)
    _add_ledger_commands(commands)
    _add_people_commands(commands)
    demo = commands.add_parser("demo", help=cmd_demo.__doc__)
    demo.add_argument(
        "--fault-rate", type=float, default=24.0, help="random faults per elevator per day"
    )
    demo.add_argument("--anchor-seconds", type=float, default=15.0, help="anchoring interval")
    demo.add_argument("--for", dest="run_for", help="stop after this long (90s, 15m)")
    demo.add_argument(
        "--metrics-port", type=int, default=9108, help="port of the collector's /metrics"
    )
    demo.set_defaults(handler=cmd_demo)

    sim = commands.add_parser("simulate", help=cmd_simulate.__doc__)
    fleet = sim.add_mutually_exclusive_group()
    fleet.add_argument("--elevators", type=int, help="N synthetic elevators (sites sim-s001…)")
    fleet.add_argument("--registry", type=Path, help="elevators from a registry CSV")
    sim.add_argument("--speedup", type=float, help="simulated seconds per wall second")
    sim.add_argument("--seed", type=int, default=1, help="same seed, same output (default 1)")
    sim.add_argument("--faults", help="`random` or a scenario CSV (at_s,elevator,fault,duration_s)")
    sim.add_argument(
        "--fault-rate", type=float, default=0.5, help="random faults per elevator per day"
    )
    sim.add_argument("--duration", default="1h", help="simulated time: 90s, 15m, 24h, 2d")
    sim.add_argument("--dry-run", type=Path, help="write JSON lines to this file, no MQTT")
    sim.add_argument("--start", type=_iso_time, help="simulated start time (ISO 8601)")
    sim.add_argument("--traffic-scale", type=float, default=1.0, help="passenger traffic factor")
    sim.add_argument(
        "--idle-interval", type=float, default=10.0, help="seconds between idle samples"
    )
    sim.add_argument("--replay", type=Path, help="publish a --dry-run recording again")
    sim.add_argument(
        "--bad-input", type=int, default=0, help="also send N bad messages of each kind"
    )
    sim.set_defaults(handler=cmd_simulate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `liftledger` console script."""
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        settings = load_settings()
        return handler(args, settings)
    except LiftLedgerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

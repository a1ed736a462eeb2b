"""`contracts deploy`, `anchorer` and `audit verify`: the anchor contract, anchoring, audit.

web3 takes about 3 s to import: only these commands load it, when they run.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

import psycopg

from core.db import libpq_url, translate_connect_errors
from core.errors import ConfigError
from core.settings import Settings, development_key
from liftledger.commands.common import (
    add_command,
    add_group,
    database_connection,
    run_until_signal,
    say,
)

if TYPE_CHECKING:
    from ledger.chain import ChainClient


def _pinned_chain(
    settings: Settings, database_url: str, url: str, address: str | None
) -> ChainClient:
    """The chain client of the contract the audit trusts: `--contract`, else the pinned one
    (`ledger.pin`); never the contract the audited database records."""
    from ledger.deploy import contract_chain  # noqa: PLC0415
    from ledger.pin import pinned_contract  # noqa: PLC0415

    chain = contract_chain(url, address=address or pinned_contract(settings, database_url))
    if chain is None:
        raise ConfigError(
            "no anchor contract is pinned: pass --contract ADDRESS (the address published "
            "when the contract was deployed) or set LIFTLEDGER_CONTRACT_ADDRESS"
        )
    return chain


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
    with database_connection(settings) as conn:
        chain = ChainClient(settings.resolved_chain_url())
        deployment = deploy_contract(conn, chain, key=key, admin=admin, separate_admin=True)
    say(f"anchor contract {deployment.address} on chain {deployment.chain_id}")
    say(
        f"block {deployment.block_number}; admin {deployment.admin}; anchorer {deployment.anchorer}"
    )
    if settings.env != "production" and settings.contract_address is None:
        pinned = write_pin(settings, database_url, deployment.chain_id, deployment.address)
        say(f"pinned for this stack's database in {pinned}")
    say(f"export LIFTLEDGER_CONTRACT_ADDRESS={deployment.address}")
    return 0


def cmd_anchorer(args: argparse.Namespace, settings: Settings) -> int:
    """Anchor the ledger's Merkle head on chain, one transaction per batch."""
    from ledger.anchorer import AnchorerConfig  # noqa: PLC0415
    from liftledger.services.anchorer import run_anchorer  # noqa: PLC0415

    config = AnchorerConfig(
        batch_s=args.batch_seconds,
        batch_entries=args.batch_entries,
        finality_depth=settings.chain_finality_depth,
    )
    return run_until_signal(lambda stop: run_anchorer(settings, config, stop=stop))


def cmd_audit_verify(args: argparse.Namespace, settings: Settings) -> int:
    """Verify one entry (--entry SEQ) or the whole log against the roots on chain."""
    from ledger.verify import verify_entry, verify_log  # noqa: PLC0415
    from liftledger.ledger_sources import LEDGER_SOURCES  # noqa: PLC0415

    database_url = args.database_url or settings.resolved_database_url()
    chain_url = args.chain_url or settings.resolved_chain_url()
    chain = _pinned_chain(settings, database_url, chain_url, args.contract)
    with translate_connect_errors(database_url):
        conn = psycopg.connect(libpq_url(database_url), connect_timeout=5)
    with conn:
        if not chain.code_matches_artifact():
            say(f"warning: the code at {chain.address} is not the LiftLedger anchor contract")
        if args.entry is not None:
            entry = verify_entry(conn, chain, args.entry, sources=LEDGER_SOURCES)
            say(entry.render())
            return 0 if entry.ok else 1
        report = verify_log(
            conn, chain, sources=LEDGER_SOURCES, chain_id=args.chain_id or settings.chain_id,
            backdate_s=settings.audit_backdate_s,
        )  # fmt: skip
    say(report.render())
    return 0 if report.ok else 1


def add_commands(commands: Any) -> None:
    """`contracts deploy`, `anchorer`, `audit verify`."""
    contract_commands = add_group(commands, "contracts", "the anchor contract", "contracts_command")
    deploy = add_command(contract_commands, "deploy", cmd_contracts_deploy)
    deploy.add_argument(
        "--admin",
        help="admin address, not the anchorer's (default outside production: a generated "
        "development admin key in the data folder)",
    )

    anchorer = add_command(commands, "anchorer", cmd_anchorer)
    anchorer.add_argument("--batch-seconds", type=float, default=60.0)
    anchorer.add_argument("--batch-entries", type=int, default=1000)

    audit_commands = add_group(
        commands, "audit", "verify the audit trail against the chain", "audit_command"
    )
    verify = add_command(audit_commands, "verify", cmd_audit_verify)
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

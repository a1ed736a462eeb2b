"""`notifier` and `webhooks …`: delivering alert events, and where webhooks send them."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from core.faults import FAULTS_BY_NAME, Severity
from core.settings import Settings
from liftledger.commands.common import (
    add_command,
    add_group,
    csv_list,
    database_connection,
    run_until_signal,
    say,
)
from liftledger.services.notifier import run_notifier
from notify.notifier import NotifierConfig
from notify.webhooks import active_subscriptions, add_subscription, remove_subscription


def cmd_notifier(args: argparse.Namespace, settings: Settings) -> int:
    """Deliver alert events (MQTT alert topic, webhooks) and run escalation timers."""
    config = NotifierConfig(
        escalation_interval_s=args.escalation_interval,
        maintenance_interval_s=args.maintenance_interval,
    )
    return run_until_signal(lambda stop: run_notifier(settings, config, stop=stop))


def _fault_types(text: str) -> list[str]:
    types = csv_list(text)
    unknown = sorted(set(types) - set(FAULTS_BY_NAME))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown fault type(s): {', '.join(unknown)}")
    return types


def cmd_webhooks_add(args: argparse.Namespace, settings: Settings) -> int:
    """Register a webhook; prints its signing secret once."""
    secret = args.secret_file.read_text().strip() if args.secret_file else None
    with database_connection(settings) as conn:
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
    say(f"webhook {sub.name} -> {sub.url}")
    if secret is None:
        say(f"signing secret (shown once): {sub.secret}")
    return 0


def cmd_webhooks_list(args: argparse.Namespace, settings: Settings) -> int:
    """List active webhooks."""
    with database_connection(settings) as conn:
        for sub in active_subscriptions(conn):
            wanted = sub.wanted
            say(
                f"{sub.name}\t{sub.url}\tsites={','.join(wanted.sites or ['*'])}"
                f"\ttypes={','.join(wanted.types or ['*'])}"
                f"\tevents={','.join(wanted.events or ['*'])}\tmin={wanted.min_severity}"
            )
    return 0


def cmd_webhooks_remove(args: argparse.Namespace, settings: Settings) -> int:
    """Stop sending to a webhook."""
    with database_connection(settings) as conn:
        remove_subscription(conn, args.name)
    say(f"webhook {args.name} removed")
    return 0


def add_commands(commands: Any) -> None:
    """`notifier` and `webhooks add|list|remove`."""
    notifier = add_command(commands, "notifier", cmd_notifier)
    notifier.add_argument(
        "--escalation-interval", type=float, default=1.0, help="seconds between checks"
    )
    notifier.add_argument(
        "--maintenance-interval", type=float, default=60.0, help="seconds between sweeps"
    )

    webhook_commands = add_group(commands, "webhooks", "alert webhooks", "webhooks_command")
    add = add_command(webhook_commands, "add", cmd_webhooks_add, "name", "url")
    add.add_argument("--sites", type=csv_list, help="only these sites (comma-separated)")
    add.add_argument("--types", type=_fault_types, help="only these fault types")
    add.add_argument("--events", type=csv_list, help="only these events (opened, escalated…)")
    add.add_argument(
        "--min-severity", choices=[s.value for s in Severity], default=Severity.INFO.value
    )
    add.add_argument("--secret-file", type=Path, help="read the signing secret from this file")
    add_command(webhook_commands, "list", cmd_webhooks_list)
    add_command(webhook_commands, "remove", cmd_webhooks_remove, "name")

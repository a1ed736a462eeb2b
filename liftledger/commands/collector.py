"""`collector`: telemetry, events and status from MQTT into TimescaleDB."""

from __future__ import annotations

import argparse
import faulthandler
import signal
import threading
from typing import Any

from core.settings import Settings
from ingest.collector import CollectorConfig
from liftledger.commands.common import add_command, configure_logging
from liftledger.services.collector import run_collector


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
    configure_logging()
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


def add_commands(commands: Any) -> None:
    """`collector`."""
    collector = add_command(commands, "collector", cmd_collector)
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

"""`demo` and `simulate`: the platform with a simulated fleet, and the simulated fleet alone."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path
from typing import Any

import psycopg

from core.db import libpq_url, translate_connect_errors
from core.errors import ConfigError
from core.registry import (
    ElevatorSpec,
    ParsedRegistry,
    active_elevators,
    elevator_topics,
    upsert_registry,
)
from core.settings import Settings
from liftledger import stack
from liftledger.commands.common import add_command, require_schema, say
from liftledger.demo import DemoOptions, run_demo
from simulators.command import SimulateOptions, dry_run, parse_duration, registry_for, run_live
from simulators.specs import specs_from_registry


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    """Run the platform on the sample sub-district with a simulated fleet, until Ctrl-C."""
    options = DemoOptions(
        fault_rate_per_day=args.fault_rate,
        anchor_batch_s=args.anchor_seconds,
        run_for_s=parse_duration(args.run_for) if args.run_for else None,
        metrics_port=args.metrics_port,
    )
    return run_demo(settings, options, say=say)


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
    say(progress.line())
    return 0


def _register_simulated(settings: Settings, parsed: ParsedRegistry | None) -> list[ElevatorSpec]:
    """Register the simulated elevators (database and broker accounts); return their specs."""
    url = settings.resolved_database_url()
    require_schema(url)
    with translate_connect_errors(url), psycopg.connect(libpq_url(url)) as conn:
        if parsed is not None:
            upsert_registry(conn, parsed)
            conn.commit()
        wanted = None if parsed is None else {row["id"] for row in parsed.elevators}
        specs = [e for e in active_elevators(conn) if wanted is None or e.elevator in wanted]
        topics = elevator_topics(conn)
    stack.sync_broker_auth(settings, topics)
    return specs


def _iso_time(text: str) -> dt.datetime:
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def add_commands(commands: Any) -> None:
    """`demo` and `simulate`."""
    demo = add_command(commands, "demo", cmd_demo)
    demo.add_argument(
        "--fault-rate", type=float, default=24.0, help="random faults per elevator per day"
    )
    demo.add_argument("--anchor-seconds", type=float, default=15.0, help="anchoring interval")
    demo.add_argument("--for", dest="run_for", help="stop after this long (90s, 15m)")
    demo.add_argument(
        "--metrics-port", type=int, default=9108, help="port of the collector's /metrics"
    )

    sim = add_command(commands, "simulate", cmd_simulate)
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

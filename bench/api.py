"""API benchmark (SPEC §7): the telemetry query and the HTTP latency of two endpoints.

    .venv/bin/python -m bench.api
    .venv/bin/python -m bench.api --part telemetry --rebuild
    .venv/bin/python -m bench.api --part http --workers 2 --think-ms 20

1. Telemetry query: `reports.telemetry.read_buckets` for one elevator, one UTC day, 1-minute
   buckets, over a hypertable of ≥ 20 M rows in 1-day chunks as the migrations create them,
   written time-major as the collectors write them, so one elevator's day lies on about one
   heap page per sample. `--rate default`: 230 elevators for 4 days at the devices' rates
   (1 Hz while a car is active, every 10 s otherwise; about 25,000 samples an elevator-day);
   `--rate 1hz`: 80 elevators for 3 days at 1 Hz all day (86,400), the worst case. Each rate
   has its own database, kept between runs (filling takes minutes; `--rebuild` fills again).
   `--cluster` first rewrites every chunk but the newest in index order (CLUSTER), and the
   two layouts are timed apart. Prints p50 / p99 / max. Target ≤ 100 ms.
2. HTTP: `liftledger api` as a subprocess on a fresh database `<name>_api_http` with alerts
   and their `opened` events, every event in the ledger and anchored on the local Anvil in
   1,000-entry batches. 50 clients in closed loops request `GET /api/v1/alerts?limit=50` and
   then `GET /api/v1/audit/entries/{seq}` for random seqs (`--think-ms`: a pause between a
   client's requests; `--workers`: server processes). Prints p50 / p95 / p99 / max. Target:
   p99 ≤ 50 ms. Before that, one entry's proof in process through `LedgerView`, the API's
   path, with and without its chain read (target ≤ 5 ms).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from bench.api_http import http_latency
from bench.api_telemetry import RATES, Fill, telemetry_query
from core.settings import load_settings


def main(argv: Sequence[str] | None = None) -> int:
    """Run the telemetry query and the HTTP measurements."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.api",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--part", choices=("all", "telemetry", "http"), default="all")
    parser.add_argument("--rate", choices=tuple(RATES), default="default", help="telemetry")
    parser.add_argument("--elevators", type=int, help="telemetry (default: by rate)")
    parser.add_argument("--days", type=int, help="telemetry: whole UTC days (default: by rate)")
    parser.add_argument("--rebuild", action="store_true", help="fill the telemetry again")
    parser.add_argument(
        "--cluster", action="store_true", help="CLUSTER every chunk but the newest first"
    )
    parser.add_argument("--warmup", type=int, default=10, help="telemetry: untimed queries")
    parser.add_argument("--queries", type=int, default=100, help="telemetry: timed queries")
    parser.add_argument("--alerts", type=int, default=20_000, help="http: alerts and entries")
    parser.add_argument("--http-elevators", type=int, default=200)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=2000, help="http: timed, per endpoint")
    parser.add_argument("--warmup-requests", type=int, default=200)
    parser.add_argument("--proofs", type=int, default=1000, help="http: in-process proofs")
    parser.add_argument(
        "--think-ms", type=float, default=0.0, help="mean pause between a client's requests"
    )
    parser.add_argument("--workers", type=int, help="passed to `liftledger api --workers`")
    args = parser.parse_args(argv)
    settings = load_settings()
    if args.part in ("all", "telemetry"):
        elevators, days = RATES[args.rate]
        fill = Fill(args.elevators or elevators, args.days or days, args.rate)
        telemetry_query(settings, fill, args)
    if args.part in ("all", "http"):
        http_latency(settings, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""`liftledger`: the one command line of every LiftLedger process and operator task.

Each subcommand builds the settings and the adapters it needs, then calls into the packages.
Errors the operator can fix are printed as one `error:` line and exit status 1.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from core.errors import LiftLedgerError
from core.settings import load_settings
from liftledger.commands import alerts, collector, ledger, people, simulation, stack
from liftledger.commands.common import Handler


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="liftledger", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    # In the order `liftledger --help` lists them.
    for group in (stack, collector, alerts, ledger, people, simulation):
        group.add_commands(commands)
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

"""Run the real `liftledger` command in a subprocess with a controlled environment."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

CLI = [sys.executable, "-m", "liftledger"]
REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# The stack's ports stay: the suite must run beside another copy of the stack on other ports.
KEPT = (
    "LIFTLEDGER_PG_PORT",
    "LIFTLEDGER_MQTT_PORT",
    "LIFTLEDGER_CHAIN_PORT",
    "LIFTLEDGER_API_PORT",
)


def clean_environment(**overrides: str) -> dict[str, str]:
    """The current environment without LIFTLEDGER_* variables but the stack's ports, plus
    `overrides`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIFTLEDGER_") or k in KEPT}
    env["PYTHONPATH"] = str(REPO)
    env.update(overrides)
    return env


def run_cli(
    *args: str, env: dict[str, str], timeout_s: float = 180, input_text: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `liftledger ARGS` (with `input_text` on its standard input) and capture its output."""
    return subprocess.run(
        [*CLI, *args],
        env=env,
        input=input_text,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )

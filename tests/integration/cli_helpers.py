"""Run the real `liftledger` command in a subprocess with a controlled environment."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
from pathlib import Path

CLI = [sys.executable, "-m", "liftledger"]
REPO = Path(__file__).resolve().parents[2]


LOWEST_PORT = 20_000
_handed_out: set[int] = set()


def _ephemeral_start() -> int:
    """The first port the kernel hands out as the source port of outgoing connections."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def free_port() -> int:
    """A TCP port nothing listens on right now, for a server a test starts.

    It lies below the range the kernel picks source ports from: a port the kernel chose
    (`bind(0)`) could be taken by any outgoing connection (a collector's, the database's)
    in the seconds before the server binds it. No port is handed out twice in a session.
    """
    top = _ephemeral_start() - 1
    for _ in range(200):
        port = random.randint(LOWEST_PORT, top) if top > LOWEST_PORT else 0
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            port = int(sock.getsockname()[1])
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free TCP port between {LOWEST_PORT} and {top}")


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

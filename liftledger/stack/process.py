"""Starting and stopping local daemons that the stack owns, tracked by pid files.

A pid file is written only for a process the stack started, and a process is signalled only
when its command line still names the stack's data folder, so `down` never stops a service
someone else runs.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from core.errors import StackError

STOP_TIMEOUT_S = 20.0


def port_answers(host: str, port: int, *, timeout_s: float = 1.0) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def read_pid(pid_file: Path) -> int | None:
    """The pid recorded in `pid_file`, or None."""
    try:
        return int(pid_file.read_text(encoding="utf-8").split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace")


def owned_pid(pid_file: Path, marker: str) -> int | None:
    """The live pid from `pid_file` if its command line contains `marker`, else None."""
    pid = read_pid(pid_file)
    if pid is None or marker not in _cmdline(pid):
        return None
    return pid


def spawn(argv: Sequence[str], *, pid_file: Path, log_file: Path) -> int:
    """Start `argv` (an absolute path first) in a session of its own; record and return its pid.

    `posix_spawn` rather than `subprocess.Popen`: the daemon outlives this process, and a Popen
    object would only be left behind to complain that its child still runs.
    """
    log_file.parent.mkdir(parents=True, exist_ok=True)
    append = os.O_WRONLY | os.O_CREAT | os.O_APPEND
    pid = os.posix_spawn(
        argv[0],
        list(argv),
        os.environ,
        file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, str(log_file), append, 0o644),
            (os.POSIX_SPAWN_DUP2, 1, 2),
        ],
        setsid=True,
    )
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.write_text(f"{pid}\n", encoding="utf-8")
    return pid


def spawn_filtered(
    argv: Sequence[str], filter_argv: Sequence[str], *, pid_file: Path, log_file: Path
) -> int:
    """Like `spawn`, with the daemon's output piped through `filter_argv` into `log_file`.

    The pid file names the daemon; the filter ends by itself when the daemon closes the pipe.
    """
    log_file.parent.mkdir(parents=True, exist_ok=True)
    append = os.O_WRONLY | os.O_CREAT | os.O_APPEND
    read_end, write_end = os.pipe()
    try:
        os.posix_spawn(
            filter_argv[0],
            list(filter_argv),
            os.environ,
            file_actions=[
                (os.POSIX_SPAWN_DUP2, read_end, 0),
                (os.POSIX_SPAWN_CLOSE, write_end),
                (os.POSIX_SPAWN_OPEN, 1, str(log_file), append, 0o644),
                (os.POSIX_SPAWN_DUP2, 1, 2),
            ],
            setsid=True,
        )
        pid = os.posix_spawn(
            argv[0],
            list(argv),
            os.environ,
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, write_end, 1),
                (os.POSIX_SPAWN_DUP2, write_end, 2),
                (os.POSIX_SPAWN_CLOSE, read_end),
            ],
            setsid=True,
        )
    finally:
        os.close(read_end)
        os.close(write_end)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.write_text(f"{pid}\n", encoding="utf-8")
    return pid


def wait_until(
    check: Callable[[], bool], *, timeout_s: float, what: str, log_file: Path | None = None
) -> None:
    """Poll `check` until it is true; raise `StackError` naming `what` after the timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    hint = f"; see {log_file}" if log_file is not None else ""
    raise StackError(f"{what} did not come up within {timeout_s:.0f} s{hint}")


def stop_pid(pid: int, *, timeout_s: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM, wait, then SIGKILL if the process is still there."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _alive(pid):
            return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return


def _alive(pid: int) -> bool:
    # A zombie child of ours still has a pid but has exited; reap it if we can.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass
    try:
        state = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8").split()[2]
    except (OSError, IndexError):
        return False
    return state != "Z"


def run(argv: Sequence[str], *, what: str, cwd: Path | None = None) -> str:
    """Run a short command, return its output; raise `StackError` with its last line."""
    proc = subprocess.run(list(argv), cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        last = lines[-1] if lines else f"exit status {proc.returncode}"
        raise StackError(f"{what} failed: {last}")
    return proc.stdout

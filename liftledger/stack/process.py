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
from typing import Any, Final

from core.errors import StackError

STOP_TIMEOUT_S = 20.0


def port_answers(host: str, port: int, *, timeout_s: float = 1.0) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def require_free_port(host: str, port: int, variable: str) -> None:
    """Raise `StackError` naming the setting `variable` when something already listens there."""
    if port_answers(host, port):
        raise StackError(f"port {port} is taken by another program: set {variable} to a free port")


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


class OwnedDaemon:
    """A daemon the stack starts: its pid file and log under the data folder, and the path its
    command line names, by which the stack knows the process is its own."""

    def __init__(self, data_dir: Path, name: str, marker: Path) -> None:
        self.pid_file = data_dir / "run" / f"{name}.pid"
        self.log_file = data_dir / "log" / f"{name}.log"
        self._marker = marker

    def pid(self) -> int | None:
        """Pid of the daemon this stack started, if it still runs."""
        return owned_pid(self.pid_file, str(self._marker))

    def stop(self) -> bool:
        """Stop the daemon if this stack started it; True when it was running."""
        pid = self.pid()
        if pid is None:
            return False
        stop_pid(pid)
        self.pid_file.unlink(missing_ok=True)
        return True


def spawn(argv: Sequence[str], *, pid_file: Path, log_file: Path) -> int:
    """Start `argv` (an absolute path first) in a session of its own; record and return its pid.

    `posix_spawn` rather than `subprocess.Popen`: the daemon outlives this process, and a Popen
    object would only be left behind to complain that its child still runs.
    """
    pid = _start(argv, [_NO_INPUT, *_log_actions(log_file)])
    return _record(pid_file, pid)


def spawn_filtered(
    argv: Sequence[str], filter_argv: Sequence[str], *, pid_file: Path, log_file: Path
) -> int:
    """Like `spawn`, with the daemon's output piped through `filter_argv` into `log_file`.

    The pid file names the daemon; the filter ends by itself when the daemon closes the pipe.
    """
    log_actions = _log_actions(log_file)
    read_end, write_end = os.pipe()
    try:
        _start(
            filter_argv,
            [(os.POSIX_SPAWN_DUP2, read_end, 0), (os.POSIX_SPAWN_CLOSE, write_end), *log_actions],
        )
        pid = _start(
            argv,
            [
                _NO_INPUT,
                (os.POSIX_SPAWN_DUP2, write_end, 1),
                (os.POSIX_SPAWN_DUP2, write_end, 2),
                (os.POSIX_SPAWN_CLOSE, read_end),
            ],
        )
    finally:
        os.close(read_end)
        os.close(write_end)
    return _record(pid_file, pid)


_NO_INPUT: Final = (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0)


def _log_actions(log_file: Path) -> list[tuple[Any, ...]]:
    """File actions sending standard output and error to the end of `log_file`."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    append = os.O_WRONLY | os.O_CREAT | os.O_APPEND
    return [(os.POSIX_SPAWN_OPEN, 1, str(log_file), append, 0o644), (os.POSIX_SPAWN_DUP2, 1, 2)]


def _start(argv: Sequence[str], file_actions: list[tuple[Any, ...]]) -> int:
    return os.posix_spawn(argv[0], list(argv), os.environ, file_actions=file_actions, setsid=True)


def _record(pid_file: Path, pid: int) -> int:
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

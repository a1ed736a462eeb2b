"""The local Anvil chain from the pinned npm package, with state kept across restarts.

The chain state is dumped to the data folder every few seconds and on exit and loaded at
start, so anchors written before `stack down` are still on chain after `stack up`. The
generated anchorer key is funded with `anvil_setBalance`, so no well-known development key
is ever used.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from core.errors import ServiceUnreachable, StackError
from core.settings import LOCAL_HOST, Settings
from liftledger.stack.install import ensure_npm_tools
from liftledger.stack.process import OwnedDaemon, require_free_port, spawn, wait_until

START_TIMEOUT_S = 30
STATE_INTERVAL_S = 5
ANCHORER_FUNDING_WEI = 1000 * 10**18
ANCHORER_LOW_WATER_WEI = 10 * 10**18
RPC_TIMEOUT_S = 5.0


def rpc_call(url: str, method: str, params: list[Any] | None = None) -> Any:
    """One JSON-RPC request; raises `ServiceUnreachable` naming the URL and the fix."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []})
    request = urllib.request.Request(  # noqa: S310 - URL comes from the operator's settings
        url, data=body.encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=RPC_TIMEOUT_S) as response:  # noqa: S310
            reply = json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ServiceUnreachable(
            f"the chain at {url} does not answer ({reason}): start it with "
            "`liftledger stack up` or fix LIFTLEDGER_CHAIN_URL"
        ) from exc
    if "error" in reply:
        raise StackError(f"{method} at {url} failed: {reply['error'].get('message')}")
    return reply["result"]


def anchorer_address(settings: Settings) -> str:
    """Checksummed address of the anchorer key."""
    # eth_account takes 0.6 s to import; only `stack up` and the anchorer need it.
    from eth_account import Account  # noqa: PLC0415

    return str(Account.from_key(settings.secret("anchorer_key")).address)


class LocalAnvil(OwnedDaemon):
    """The stack's own Anvil node."""

    def __init__(self, settings: Settings, project_dir: Path) -> None:
        self._settings = settings
        self._project_dir = project_dir
        self.folder = settings.data_dir / "anvil"
        self.state_file = self.folder / "state.json"
        super().__init__(settings.data_dir, "anvil", marker=self.state_file)

    def start(self) -> None:
        """Start Anvil unless it already runs, then fund the anchorer."""
        if self.pid() is None:
            binary = ensure_npm_tools(self._settings, self._project_dir)
            require_free_port(LOCAL_HOST, self._settings.chain_port, "LIFTLEDGER_CHAIN_PORT")
            self.folder.mkdir(parents=True, exist_ok=True)
            spawn(
                [
                    str(binary),
                    "--host",
                    LOCAL_HOST,
                    "--port",
                    str(self._settings.chain_port),
                    "--chain-id",
                    str(self._settings.chain_id),
                    "--state",
                    str(self.state_file),
                    "--state-interval",
                    str(STATE_INTERVAL_S),
                    "--accounts",
                    "1",
                    "--silent",
                ],
                pid_file=self.pid_file,
                log_file=self.log_file,
            )
            wait_until(
                self._answers, timeout_s=START_TIMEOUT_S, what="Anvil", log_file=self.log_file
            )
        self.fund_anchorer()

    def _answers(self) -> bool:
        try:
            rpc_call(self._settings.resolved_chain_url(), "eth_chainId")
        except ServiceUnreachable:
            return False
        return True

    def fund_anchorer(self) -> None:
        """Top up the anchorer account so it can always pay for anchoring."""
        url = self._settings.resolved_chain_url()
        address = anchorer_address(self._settings)
        balance = int(rpc_call(url, "eth_getBalance", [address, "latest"]), 16)
        if balance < ANCHORER_LOW_WATER_WEI:
            rpc_call(url, "anvil_setBalance", [address, hex(ANCHORER_FUNDING_WEI)])

"""The anchor contract an audit trusts: pinned by configuration, never read from the
database being audited.

Whoever controls the database can record a second contract in `contract_deployments` and
anchor a rewritten history on it. The audit therefore reads roots only from the pinned
contract: `LIFTLEDGER_CONTRACT_ADDRESS` (with `LIFTLEDGER_CHAIN_ID`), or the CLI's
`--contract`. On the local stack, outside production, `liftledger contracts deploy` pins the
contract it deploys in the data folder (`<data_dir>/contracts/<database>@<chain id>`), so
the processes of that stack and database agree without an export; a configured address
always wins, and production reads only configuration.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from core.settings import Settings

_ADDRESS: Final = re.compile(r"^0x[0-9a-fA-F]{40}$")


def pin_file(settings: Settings, database_url: str, chain_id: int) -> Path:
    """Where the local stack pins the contract of one database on one chain."""
    database = urlsplit(database_url).path.lstrip("/") or "liftledger"
    return settings.data_dir / "contracts" / f"{database}@{chain_id}"


def pinned_contract(settings: Settings, database_url: str) -> str | None:
    """The configured contract address, else (outside production) the local stack's pin for
    this database on the configured chain, else None."""
    if settings.contract_address is not None:
        return settings.contract_address
    if settings.env == "production":
        return None
    path = pin_file(settings, database_url, settings.chain_id)
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return text if _ADDRESS.match(text) else None


def write_pin(settings: Settings, database_url: str, chain_id: int, address: str) -> Path:
    """Pin `address` for this database and chain in the data folder (local stack only)."""
    path = pin_file(settings, database_url, chain_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(address + "\n", encoding="utf-8")
    return path

"""Build the anchorer from the settings and run it (`liftledger anchorer`)."""

from __future__ import annotations

import threading
from typing import Any

import psycopg

from core.db import libpq_url, translate_connect_errors
from core.errors import ConfigError
from core.settings import Settings
from ledger.anchorer import Anchorer, AnchorerConfig
from ledger.chain import ChainClient
from ledger.deploy import contract_chain
from ledger.pin import pinned_contract
from liftledger.services.common import as_service


def run_anchorer(settings: Settings, config: AnchorerConfig, *, stop: threading.Event) -> None:
    """Anchor the ledger until `stop` is set, connected as the anchorer's database role, to
    the pinned contract or else the one the database records for the chain."""
    settings = as_service(settings, "anchorer")
    url = settings.resolved_database_url()
    pinned = pinned_contract(settings, url)
    with translate_connect_errors(url):
        conn = psycopg.connect(libpq_url(url), connect_timeout=5)
    with conn:
        chain = _chain_for(conn, settings.resolved_chain_url(), pinned)
    anchorer = Anchorer(
        conninfo=libpq_url(url),
        chain=chain,
        key=settings.secret("anchorer_key"),
        config=config,
    )
    anchorer.run(stop)


def _chain_for(conn: psycopg.Connection[Any], url: str, address: str | None) -> ChainClient:
    chain = contract_chain(url, address=address, conn=conn)
    if chain is None:
        raise ConfigError(
            f"no anchor contract recorded for the chain at {url}: "
            "run `liftledger contracts deploy` (or pass --contract ADDRESS)"
        )
    return chain

"""`liftledger demo`, run as a user would (bounded with --for), on the session's database."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid

from core.credentials import COLLECTOR_USERNAME, service_credentials
from core.settings import Settings
from liftledger import stack
from tests.integration.cli_helpers import REPO, clean_environment
from tests.integration.mqtt_helpers import connect

STATUS = re.compile(
    r"ingested ([\d,]+) messages · alerts open (\d+) \((\d+) critical\) · "
    r"ledger (\d+) entries, (\d+) anchored"
)


def test_demo_runs_the_platform_shows_its_status_and_stops_cleanly(
    stack_settings: Settings, test_database_url: str
) -> None:
    collector_id = f"test-demo-{uuid.uuid4().hex[:6]}"
    env = clean_environment(
        LIFTLEDGER_DATA_DIR=str(stack_settings.data_dir), LIFTLEDGER_DATABASE_URL=test_database_url
    )
    registered = stack.registered_elevators(stack_settings)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "liftledger", "demo", "--for", "60s", "--fault-rate", "500",
             "--anchor-seconds", "5", "--collector-id", collector_id],
            env=env, cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
    finally:
        stack.sync_broker_auth(stack_settings, registered)
        creds = service_credentials(stack_settings.secret("mqtt_secret"), COLLECTOR_USERNAME)
        connect(
            stack_settings.resolved_mqtt_url(), creds.username, creds.password, collector_id
        ).close()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "registry: 230 elevators in 21 sites" in result.stdout
    assert "anchor contract: 0x" in result.stdout
    assert "mosquitto_sub" in result.stdout
    statuses = [tuple(int(g.replace(",", "")) for g in m.groups())
                for m in STATUS.finditer(result.stdout)]  # fmt: skip
    assert statuses, result.stdout
    ingested, _, _, entries, anchored = statuses[-1]
    assert ingested > 0
    assert entries > 0
    assert 0 < anchored <= entries
    assert result.stdout.rstrip().endswith("stopped")
    leftover = subprocess.run(
        ["pgrep", "-f", "--", f"client-id {collector_id}"], capture_output=True, check=False
    )
    assert leftover.returncode == 1, "a demo process outlived the demo"  # 1: none matched

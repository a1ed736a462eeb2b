"""`liftledger demo`, run as a user would (bounded with --for), on the session's database."""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from core.credentials import COLLECTOR_USERNAME, service_credentials
from core.settings import Settings
from liftledger import stack
from tests.integration.cli_helpers import REPO, clean_environment, free_port
from tests.integration.mqtt_helpers import connect

STATUS = re.compile(
    r"ingested ([\d,]+) messages · alerts open (\d+) \((\d+) critical\) · "
    r"ledger (\d+) entries, (\d+) anchored"
)


def test_demo_runs_the_platform_shows_its_status_and_stops_cleanly(
    stack_settings: Settings, test_database_url: str
) -> None:
    run = f"test-demo-{uuid.uuid4().hex[:6]}"
    api_port, metrics_port = free_port(), free_port()
    env = clean_environment(
        LIFTLEDGER_DATA_DIR=str(stack_settings.data_dir),
        LIFTLEDGER_DATABASE_URL=test_database_url,
        LIFTLEDGER_API_PORT=str(api_port),
    )
    registered = stack.registered_elevators(stack_settings)
    output = Path(tempfile.gettempdir()) / f"{run}.out"
    try:
        with output.open("w") as out:
            demo = subprocess.Popen(
                [sys.executable, "-m", "liftledger", "demo", "--for", "75s", "--fault-rate",
                 "500", "--anchor-seconds", "5", "--metrics-port", str(metrics_port)],
                env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, text=True,
            )  # fmt: skip
            try:
                _use_the_printed_api(output, api_port)
                demo.wait(300)
            finally:
                if demo.poll() is None:  # SIGTERM: the demo stops its children itself
                    demo.terminate()
                    demo.wait(60)
        result = subprocess.CompletedProcess(demo.args, demo.returncode, output.read_text(), "")
    finally:
        stack.sync_broker_auth(stack_settings, registered)
        # Forget the demo collector's persistent session (its client id is its account).
        creds = service_credentials(stack_settings.secret("mqtt_secret"), COLLECTOR_USERNAME)
        connect(stack_settings.resolved_mqtt_url(), creds.username, creds.password).close()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "registry: 230 elevators in 21 sites" in result.stdout
    assert "anchor contract: 0x" in result.stdout
    assert "mosquitto_sub" in result.stdout
    assert f"API:        http://127.0.0.1:{api_port}/docs" in result.stdout
    statuses = [tuple(int(g.replace(",", "")) for g in m.groups())
                for m in STATUS.finditer(result.stdout)]  # fmt: skip
    assert statuses, result.stdout
    ingested, _, _, entries, anchored = statuses[-1]
    assert ingested > 0
    assert entries > 0
    assert 0 < anchored <= entries
    assert result.stdout.rstrip().endswith("stopped")
    leftover = subprocess.run(
        ["pgrep", "-f", "--", f"--metrics-port {metrics_port}"], capture_output=True, check=False
    )
    assert leftover.returncode == 1, "a demo process outlived the demo"  # 1: none matched


def _use_the_printed_api(output: Path, port: int) -> None:
    """Once the demo prints its first status line, call the API with the printed tokens."""
    deadline = time.monotonic() + 240
    while not STATUS.search(output.read_text()):
        assert time.monotonic() < deadline, output.read_text()
        time.sleep(0.5)
    text = output.read_text()
    tokens = dict(re.findall(r"^(supervisor|crew): +\S+ (?:\(\w+\) )?token (\S+)$", text, re.M))
    assert set(tokens) == {"supervisor", "crew"}, text
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        crew = {"Authorization": f"Bearer {tokens['crew']}"}
        mine = http.get("/api/v1/elevators", headers=crew, params={"limit": 500}).json()
        assert mine["items"]
        assert {item["site_id"] for item in mine["items"]} == {"nc01"}
        supervisor = {"Authorization": f"Bearer {tokens['supervisor']}"}
        other_site: dict[str, str | int] = {"site": "nc21", "limit": 500}
        assert http.get("/api/v1/elevators", headers=supervisor, params=other_site).json()["items"]
        assert http.get("/api/v1/elevators", headers=crew, params=other_site).json()["items"] == []
        sla = http.get("/api/v1/reports/sla", headers=supervisor)
        assert sla.status_code == 200
        assert http.get("/api/v1/reports/sla", headers=crew).status_code == 403

"""The committed contract artifact is exactly what the pinned solc makes of the source."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from ledger.chain import ARTIFACT
from tests.integration.cli_helpers import REPO


def test_committed_artifact_matches_a_fresh_compile_with_the_pinned_solc() -> None:
    node = shutil.which("node")
    if node is None or not (REPO / "node_modules" / "solc").exists():
        pytest.fail("node and the pinned solc are needed (`liftledger stack up` installs them)")
    fresh = subprocess.run(
        [node, str(REPO / "contracts" / "compile.mjs")],
        capture_output=True,
        check=True,
        cwd=REPO,
        timeout=120,
    ).stdout
    committed = json.loads(ARTIFACT.read_text())
    assert json.loads(fresh) == committed
    assert committed["compiler"]["version"].startswith("0.8.30+")
    assert committed["settings"]["optimizer"] == {"enabled": True, "runs": 200}

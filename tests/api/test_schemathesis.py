"""`schemathesis run` against the published OpenAPI: no 5xx, no schema violations (bounded in time)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.api.conftest import Api

pytestmark = pytest.mark.slow  # the daemon and ~20 s of schemathesis

ST = Path(sys.executable).with_name("schemathesis")


def run_schemathesis(api: Api, role: str, seconds: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ST), "run", f"{api.base}/api/v1/openapi.json", "--url", api.base,
         "-H", f"Authorization: Bearer {api.tokens[role]}",
         "--checks", "not_a_server_error,response_schema_conformance,status_code_conformance",
         "--max-examples", "25", "--max-time", str(seconds), "--generation-deterministic",
         "--exclude-method", "DELETE", "--continue-on-failure"],
        capture_output=True, text=True, timeout=seconds + 120, env=os.environ | {"NO_COLOR": "1"},
    )  # fmt: skip


# Schemathesis also sends made-up tokens: a high failure limit keeps it from being rate limited.
@pytest.mark.timeout(400)
@pytest.mark.parametrize("api", [1_000_000], indirect=True)
def test_schemathesis_finds_no_server_error_and_no_schema_violation(api: Api) -> None:
    for role in ("admin", "police"):
        result = run_schemathesis(api, role, 10)  # 10 minutes on demand: `python -m bench.faults api`
        assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
        assert api.proc.poll() is None

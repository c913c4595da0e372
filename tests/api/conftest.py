"""The API as a user meets it: the daemon running (`accessgw run`), a real uvicorn, httpx."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import yaml

from tests.peers import Mosquitto, free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
ROLES = ("admin", "police", "auditor", "operator")


@dataclass
class Api:
    base: str
    data_dir: Path
    config_path: Path
    proc: subprocess.Popen[bytes]
    log_path: Path
    tokens: dict[str, str] = field(default_factory=dict)

    def client(self, role: str | None = None, token: str | None = None) -> httpx.Client:
        token = token or (self.tokens[role] if role else None)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.base, headers=headers, timeout=30)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def api(request: pytest.FixtureRequest, tmp_path: Path, mosquitto: Mosquitto) -> Iterator[Api]:
    """The running gateway; parametrize indirectly with a number to set api.failed_auth_limit,
    or with a dict of `api` settings."""
    port = free_port()
    param = getattr(request, "param", 10)
    api_settings = param if isinstance(param, dict) else {"failed_auth_limit": param}
    data = tmp_path / "data"
    cfg = {
        "gateway_id": "api-test",
        "data_dir": str(data),
        "timezone": "Asia/Shanghai",
        "mqtt": {"port": mosquitto.port},
        "api": {"host": "127.0.0.1", "port": port, **api_settings},
        "io_modules": [],
        "doors": [],
    }
    config_path = tmp_path / "gw.yaml"
    config_path.write_text(yaml.safe_dump(cfg))
    log_path = tmp_path / "gateway.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "gateway", "run", "--config", str(config_path)],
                                stdout=log, stderr=log, cwd=ROOT)  # fmt: skip
    api = Api(f"http://127.0.0.1:{port}", data, config_path, proc, log_path)
    try:

        def answers() -> bool:
            try:
                return httpx.get(f"{api.base}/api/v1/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                assert proc.poll() is None, api.log()
                return False

        wait_until(answers, 30, 0.1, "API up")
        admin = (data / "initial-admin-token").read_text().strip()
        assert f"initial admin token: {admin}" in api.log()
        api.tokens["admin"] = admin
        with api.client("admin") as c:
            for role in ROLES[1:]:
                r = c.post("/api/v1/users", json={"name": f"{role}-1", "role": role})
                assert r.status_code == 201, r.text
                api.tokens[role] = r.json()["token"]
        yield api
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()

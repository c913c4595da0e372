"""The API as a user meets it: the daemon running (`accessgw run`), a real uvicorn, httpx."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from testing.gateway import GatewayProcess, gateway_config
from testing.peers import Mosquitto

ROLES = ("admin", "police", "auditor", "operator")


@dataclass
class Api:
    """A running gateway seen through its API, with a token per role in `tokens`."""

    gateway: GatewayProcess
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return self.gateway.base

    @property
    def data_dir(self) -> Path:
        return self.gateway.data_dir

    @property
    def config_path(self) -> Path:
        return self.gateway.config_path

    @property
    def proc(self) -> subprocess.Popen[bytes]:
        assert self.gateway.proc is not None
        return self.gateway.proc

    def client(self, role: str | None = None, token: str | None = None) -> httpx.Client:
        return self.gateway.client(token or (self.tokens[role] if role else None))

    def log(self) -> str:
        return self.gateway.log()


@pytest.fixture
def api(request: pytest.FixtureRequest, tmp_path: Path, mosquitto: Mosquitto) -> Iterator[Api]:
    """The running gateway; parametrize indirectly with a number to set api.failed_auth_limit,
    or with a dict of `api` settings."""
    param = getattr(request, "param", 10)
    api_settings = param if isinstance(param, dict) else {"failed_auth_limit": param}
    cfg = gateway_config(tmp_path / "data", mosquitto.port, gateway_id="api-test", timezone="Asia/Shanghai",
                         api=api_settings)  # fmt: skip
    gateway = GatewayProcess(tmp_path, cfg, config_name="gw.yaml")
    api = Api(gateway)
    try:
        gateway.start()
        admin = gateway.admin_token()
        assert f"initial admin token: {admin}" in api.log()
        api.tokens["admin"] = admin
        with api.client("admin") as c:
            for role in ROLES[1:]:
                r = c.post("/api/v1/users", json={"name": f"{role}-1", "role": role})
                assert r.status_code == 201, r.text
                api.tokens[role] = r.json()["token"]
        yield api
    finally:
        gateway.stop()

"""`accessgw town run` as its own process, for tests and benchmarks (as testing.gateway does the gateway).

    town = TownProcess(tmp / "town-a", town_cfg)      # config written from a TownConfig (secrets included)
    town.start()                                      # ready: the log says "running:" and /health answers
    with town.client(token) as c: c.get("/api/v1/gateways")
    town.kill()  /  town.stop()                       # SIGKILL / SIGTERM; a restart appends to the same log
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import yaml

from config.town import TownConfig
from testing.peers import wait_until

ROOT = Path(__file__).resolve().parents[1]


class TownProcess:
    def __init__(self, workdir: Path, cfg: TownConfig) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.cfg = cfg
        self.config_path = workdir / "town.yaml"
        self.log_path = workdir / "town.log"
        self.proc: subprocess.Popen[bytes] | None = None
        data = json.loads(cfg.model_dump_json())
        if cfg.database_url is not None:
            data["database_url"] = cfg.database_url.get_secret_value()
        self.config_path.write_text(yaml.safe_dump(data))

    @property
    def base(self) -> str:
        return f"http://{self.cfg.api.host}:{self.cfg.api.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self, timeout: float = 60) -> None:
        runs_before = self.log().count("running:")
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "gateway", "town", "run", "--config",
                                          str(self.config_path)], stdout=log, stderr=log, cwd=ROOT,
                                         env=os.environ | {"PYTHONUNBUFFERED": "1"})  # fmt: skip

        def ready() -> bool:
            assert self.running, self.log()[-3000:]
            if self.log().count("running:") <= runs_before:
                return False
            try:
                return httpx.get(f"{self.base}/api/v1/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, timeout, 0.05, f"town {self.cfg.instance} running")

    def admin_token(self) -> str:
        return (self.cfg.data_dir / "initial-admin-token").read_text().strip()

    def public_key(self) -> str:
        found = re.search(r"platform key (\S+)", self.log())
        assert found, self.log()[-2000:]
        return found.group(1)

    def client(self, token: str, timeout: float = 30) -> httpx.Client:
        return httpx.Client(base_url=self.base, headers={"Authorization": f"Bearer {token}"}, timeout=timeout)

    def ingested(self) -> dict[str, int]:
        """The last `ingest:` counters this process logged (every 10 s while they change, and at stop)."""
        lines = [line for line in self.log().splitlines() if "ingest: " in line]
        if not lines:
            return {}
        return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", lines[-1].split("ingest: ", 1)[1])}

    def stop(self, timeout: float = 20) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc is not None else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise AssertionError(f"town did not stop on SIGTERM\n{self.log()[-3000:]}") from None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def freeze(self) -> None:
        """SIGSTOP: an instance that is slow to come back (its session and sockets stay as they are)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)

"""A whole gateway for the web page test: `accessgw run` as its own process with
its API and page on a loopback port, a simulated card reader on a socat pty, a
pymodbus relay board for the door's lock, a real mosquitto; and headless Chromium
(Debian's `chromium`) driven by Playwright's Python package."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from drivers.simulators import SimulatedCardReader, SimulatedRelayBoard, VirtualSerialLink
from tests.api.conftest import Api
from tests.peers import Mosquitto, free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("ACCESSGW_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
GATEWAY_ID = "web-test"
ZONE = "Asia/Shanghai"


@dataclass
class WebGateway:
    api: Api  # base URL, data_dir, tokens["admin"], log()
    card: SimulatedCardReader
    board: SimulatedRelayBoard
    zone: str = ZONE
    gateway_id: str = GATEWAY_ID


@pytest.fixture
def web_gateway(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[WebGateway]:
    ports = tmp_path / "ports"
    ports.mkdir()
    reader_link = VirtualSerialLink(ports / "reader-sim", ports / "reader-gw")
    io_link = VirtualSerialLink(ports / "io-board", ports / "io-gw")
    board = SimulatedRelayBoard(ports / "io-board", baudrate=38400, unit=1)
    board.start()
    card = SimulatedCardReader(ports / "reader-sim", "wiegand-text")
    port = free_port()
    data = tmp_path / "data"
    cfg: dict[str, Any] = {
        "gateway_id": GATEWAY_ID,
        "data_dir": str(data),
        "timezone": ZONE,
        "mqtt": {"host": "127.0.0.1", "port": mosquitto.port, "reconnect_max_s": 1},
        "api": {"host": "127.0.0.1", "port": port},
        "readers": [
            {"id": "r1", "protocol": "wiegand-text", "port": str(ports / "reader-gw"), "repeat_suppress_ms": 0}
        ],
        "io_modules": [{"id": "io1", "port": str(ports / "io-gw"), "baudrate": 38400, "unit": 1, "poll_ms": 50}],
        "doors": [
            {
                "id": "main",
                "mode": "card",
                "reader": "r1",
                "lock": {"io": "io1", "coil": 0, "pulse_ms": 300},
                "contact": {"io": "io1", "input": 0},
                "exit_button": {"io": "io1", "input": 1},
            }
        ],
    }
    config_path = tmp_path / "gateway.yaml"
    config_path.write_text(yaml.safe_dump(cfg))
    log_path = tmp_path / "gateway.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "gateway", "run", "--config", str(config_path)],
                                stdout=log, stderr=log, stdin=subprocess.DEVNULL, cwd=ROOT)  # fmt: skip
    api = Api(f"http://127.0.0.1:{port}", data, config_path, proc, log_path)
    try:

        def ready() -> bool:
            assert proc.poll() is None, api.log()
            try:
                return httpx.get(f"{api.base}/api/v1/ready", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        try:
            wait_until(ready, 30, 0.1, "gateway ready (store, broker, reader, I/O module)")
        except AssertionError:
            report = httpx.get(f"{api.base}/api/v1/ready", timeout=2).text if proc.poll() is None else "exited"
            raise AssertionError(f"gateway not ready: {report}\n{api.log()[-3000:]}") from None
        wait_until(lambda: board.request_count > 0, 10, 0.05, "relay board polled")
        api.tokens["admin"] = (data / "initial-admin-token").read_text().strip()
        yield WebGateway(api, card, board)
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        card.close()
        board.stop()
        io_link.close()
        reader_link.close()


@pytest.fixture
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, driven by Playwright (never `playwright install`: no browser download)."""
    if not CHROMIUM.exists():
        raise RuntimeError(f"{CHROMIUM} not found: apt-get install -y --no-install-recommends chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        raise RuntimeError("Playwright's Python package is missing: .venv/bin/pip install playwright") from exc
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True, timeout=30_000)
        try:
            yield b
        finally:
            b.close()

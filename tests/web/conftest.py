"""A whole gateway for the web page test: `accessgw run` as its own process with
its API and page on a loopback port, a simulated card reader on a socat pty, a
pymodbus relay board for the door's lock, a real mosquitto; and headless Chromium
(Debian's `chromium`) driven by Playwright's Python package."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from drivers.simulators import SimulatedCardReader, SimulatedRelayBoard
from testing.gateway import API, DoorPeers, GatewayProcess, gateway_config
from testing.peers import Mosquitto, wait_until
from tests.api.conftest import Api

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
    peers = DoorPeers(tmp_path / "ports")
    cfg = gateway_config(tmp_path / "data", mosquitto.port, gateway_id=GATEWAY_ID, timezone=ZONE,
                         **peers.sections(300))  # fmt: skip
    gateway = GatewayProcess(tmp_path, cfg)
    api = Api(gateway)
    try:
        gateway.start()

        def ready() -> bool:
            assert gateway.running, api.log()
            try:
                return httpx.get(f"{api.base}{API}/ready", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        try:
            wait_until(ready, 30, 0.1, "gateway ready (store, broker, reader, I/O module)")
        except AssertionError:
            report = httpx.get(f"{api.base}{API}/ready", timeout=2).text if gateway.running else "exited"
            raise AssertionError(f"gateway not ready: {report}\n{api.log()[-3000:]}") from None
        peers.wait_polled()
        api.tokens["admin"] = gateway.admin_token()
        assert peers.card is not None
        yield WebGateway(api, peers.card, peers.board)
    finally:
        try:
            gateway.stop()
        finally:
            peers.close()


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

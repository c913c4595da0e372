"""`accessgw run --simulate`: the gateway on an embedded default, no hardware.

A simulated card reader and a simulated Modbus relay board (pymodbus's own
RTU server) sit on pseudo-terminal pairs made by socat; the gateway itself
runs unchanged against them.
"""

from __future__ import annotations

import base64
import logging
import os
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import yaml
from nacl.signing import SigningKey

from config.models import GatewayConfig
from drivers.simulators import SimulatedCardReader, SimulatedRelayBoard, VirtualSerialLink
from gateway.store.db import open_store
from gateway.store.models import Tenant
from gateway.store.roster import NewTenant, add_card, add_tenant
from sync.signing import sign

log = logging.getLogger("accessgw.simulation")

DEMO_TENANT = "demo-001"
DEMO_CARD = 12345678
PLATFORM_KEY = "platform.key"  # the simulated town platform's signing key (private: 0600)
ROSTER_TENANT = "sim-roster-001"
ROSTER_CARD = 87654321


def sim_dir(data_dir: Path) -> Path:
    return Path(data_dir).resolve() / "sim"


def reader_port(data_dir: Path) -> Path:
    """Where `accessgw simulate swipe` writes card frames."""
    return sim_dir(data_dir) / "reader-sim"


def platform_key(data_dir: Path) -> SigningKey:
    """The simulated platform's Ed25519 key under sim/ (made once, mode 0600): its public half goes into
    the simulation's config (`sync.platform_public_key`), so `accessgw simulate roster` can sign."""
    path = sim_dir(data_dir) / PLATFORM_KEY
    if path.exists():
        return SigningKey(base64.b64decode(path.read_text().strip(), validate=True))
    path.parent.mkdir(parents=True, exist_ok=True)
    key = SigningKey.generate()
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(base64.b64encode(bytes(key)).decode("ascii") + "\n")
    return key


def simulation_config(
    data_dir: Path,
    gateway_id: str = "sim-0001",
    *,
    api_port: int = 8080,
    broker: tuple[str, int] = ("127.0.0.1", 1883),
    platform_public_key: str | None = None,
) -> GatewayConfig:
    """The embedded config. `platform_public_key`: a real town's key (`accessgw town demo`); unset, the
    simulation's own (sim/platform.key, made here), with which `accessgw simulate roster` signs."""
    ports = sim_dir(data_dir)
    public = platform_public_key or base64.b64encode(bytes(platform_key(data_dir).verify_key)).decode("ascii")
    return GatewayConfig.model_validate(
        {
            "gateway_id": gateway_id,
            # Under a real town (`accessgw town demo`) rows wait for its receipts; the simulation's own key has none.
            "sync": {"platform_public_key": public, "keep_until_receipt": platform_public_key is not None},
            "data_dir": str(Path(data_dir).resolve()),
            "mqtt": {"host": broker[0], "port": broker[1], "reconnect_max_s": 10},
            "api": {"port": api_port},
            "readers": [{"id": "r1", "protocol": "wiegand-text", "port": str(ports / "reader-gw"), "baudrate": 9600}],
            "io_modules": [
                {"id": "io1", "protocol": "modbus-rtu", "port": str(ports / "io-gw"), "baudrate": 38400, "unit": 1}
            ],
            "doors": [
                {
                    "id": "main",
                    "mode": "card",
                    "reader": "r1",
                    "lock": {"io": "io1", "coil": 0, "pulse_ms": 3000},
                    "contact": {"io": "io1", "input": 0},
                    "exit_button": {"io": "io1", "input": 1},
                }
            ],
        }
    )


def write_config(cfg: GatewayConfig) -> Path:
    """Save the embedded config, so the other commands can be pointed at it."""
    path = sim_dir(cfg.data_dir) / "gateway.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    body = cfg.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    path.write_text(
        "# Written by `accessgw run --simulate`; edits are overwritten at its next start.\n"
        + yaml.safe_dump(body, sort_keys=False)
    )
    return path


def seed_demo_roster(cfg: GatewayConfig) -> None:
    """One demo tenant with card 12345678, so a first swipe has someone to let in."""
    engine, sessions = open_store(cfg.data_dir)
    try:
        with sessions.begin() as s:
            if s.get(Tenant, DEMO_TENANT) is None:
                today = date.today()
                add_tenant(
                    s,
                    NewTenant(
                        DEMO_TENANT,
                        "Demo Tenant",
                        "DEMO-PERMIT-001",
                        today + timedelta(days=365),
                        today - timedelta(days=1),
                        "101",
                    ),
                )
                add_card(s, DEMO_TENANT, DEMO_CARD)
    finally:
        engine.dispose()


def demo_patch(key: SigningKey, from_version: int, issued_at: str, transaction: str) -> dict[str, Any]:
    """A signed `request/roster/patch` (DESIGN §6.1) enrolling a demo tenant with card 87654321."""
    today = date.today()
    ops = [
        {"op": "upsert", "kind": "tenant", "id": ROSTER_TENANT, "name": "Platform Demo", "permit": "SIM-PERMIT-001",
         "valid_from": (today - timedelta(days=1)).isoformat(), "valid_to": (today + timedelta(days=365)).isoformat(),
         "room": "102", "status": "active"},
        {"op": "upsert", "kind": "card", "number": ROSTER_CARD, "tenant": ROSTER_TENANT},
    ]  # fmt: skip
    message = {"transaction": transaction, "issued_at": issued_at, "from_version": from_version,
               "to_version": from_version + 1, "ops": ops}  # fmt: skip
    return sign(message, key)


class SimulatedHardware:
    """The two pty links, the relay board and the card reader of the simulation."""

    def __init__(self, cfg: GatewayConfig) -> None:
        self.ports = sim_dir(cfg.data_dir)
        self.reader_link: VirtualSerialLink | None = None
        self.io_link: VirtualSerialLink | None = None
        self.board: SimulatedRelayBoard | None = None
        self.reader: SimulatedCardReader | None = None

    def start(self) -> None:
        self.ports.mkdir(parents=True, exist_ok=True)
        self.reader_link = VirtualSerialLink(self.ports / "reader-sim", self.ports / "reader-gw")
        self.io_link = VirtualSerialLink(self.ports / "io-board", self.ports / "io-gw")
        self.board = SimulatedRelayBoard(self.ports / "io-board", baudrate=38400, unit=1)
        self.board.start()
        self.reader = SimulatedCardReader(self.reader_link.a, "wiegand-text")
        log.info("simulated reader on %s: swipe with `accessgw simulate swipe --number N`", self.reader_link.a)

    def stop(self) -> None:
        if self.reader is not None:
            self.reader.close()
        if self.board is not None:
            self.board.stop()
        for link in (self.io_link, self.reader_link):
            if link is not None:
                link.close()

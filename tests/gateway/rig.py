"""A whole gateway on real local peers: `accessgw run` as a subprocess (testing.gateway), a card
reader and a pymodbus relay board on socat pty pairs, a real mosquitto, a platform-side subscriber."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from gateway.store.db import open_store
from gateway.store.roster import NewTenant, add_card, add_tenant, set_status
from testing.gateway import DoorPeers, GatewayProcess, gateway_config
from testing.peers import Mosquitto, Subscriber, wait_until

GATEWAY_ID = "gw-test"


class Rig(GatewayProcess):
    """The gateway process (config, start, stop, kill, log: GatewayProcess) with its door peers and a
    platform-side subscriber on the broker."""

    def __init__(self, tmp_path: Path, broker: Mosquitto, *, pulse_ms: int = 500, protocol: str = "wiegand-text"):
        self.broker = broker
        self.peers = DoorPeers(tmp_path / "ports", protocol=protocol)
        self.reader_link, self.io_link, self.board = self.peers.reader_link, self.peers.io_link, self.peers.board
        self.card = self.peers.card
        self.pulse_ms = pulse_ms
        config = gateway_config(
            tmp_path / "data",
            broker.port,
            gateway_id=GATEWAY_ID,
            mqtt={"state_interval_s": 5},
            **self.peers.sections(pulse_ms, held_open_s=2),
        )
        super().__init__(tmp_path, config)
        self.sub = Subscriber(broker.port, f"accessgw/{GATEWAY_ID}/#", client_id=f"platform-{os.getpid()}")

    # --- roster, written straight into the gateway's store -------------------
    @contextmanager
    def roster(self) -> Iterator[Session]:
        engine, sessions = open_store(self.data_dir)
        try:
            with sessions.begin() as s:
                yield s
        finally:
            engine.dispose()

    def enrol(
        self, tenant_id: str, card: int, *, valid_to: date, valid_from: date | None = None, status: str = "active"
    ) -> None:
        with self.roster() as s:
            add_tenant(s, NewTenant(tenant_id, f"Tenant {tenant_id}", f"P-{tenant_id}", valid_to, valid_from))
            add_card(s, tenant_id, card)
            if status != "active":
                set_status(s, tenant_id, status)

    # --- the gateway process ---------------------------------------------------
    def start(self, timeout: float = 30) -> None:
        super().start(timeout)
        self.peers.wait_polled()

    # --- what the platform saw -------------------------------------------------
    def entries(self) -> list[dict[str, Any]]:
        return self.sub.payloads("/events/entry")

    def alerts(self) -> list[dict[str, Any]]:
        return self.sub.payloads("/events/alert")

    def state(self) -> dict[str, Any]:
        states = self.sub.raw("/state")
        return json.loads(states[-1]) if states else {}

    def wait_entries(self, n: int, timeout: float = 10) -> list[dict[str, Any]]:
        wait_until(lambda: len(self.entries()) >= n, timeout, what=f"{n} entries (log:\n{self.log()[-3000:]})")
        return self.entries()

    def close(self) -> None:
        try:
            self.stop()
        finally:
            self.sub.close()
            self.peers.close()

"""A whole gateway on real local peers: `accessgw run` as a subprocess, card
readers and a pymodbus relay board on socat pty pairs, a real mosquitto."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy.orm import Session

from drivers.simulators import SimulatedCardReader, SimulatedRelayBoard, VirtualSerialLink
from gateway.store.db import open_store
from gateway.store.roster import NewTenant, add_card, add_tenant, set_status
from tests.peers import Mosquitto, Subscriber, free_port, wait_until

GATEWAY_ID = "gw-test"


class Rig:
    def __init__(self, tmp_path: Path, broker: Mosquitto, *, pulse_ms: int = 500, protocol: str = "wiegand-text"):
        self.dir = tmp_path
        self.broker = broker
        self.data_dir = tmp_path / "data"
        ports = tmp_path / "ports"
        ports.mkdir(exist_ok=True)
        self.reader_link = VirtualSerialLink(ports / "reader-sim", ports / "reader-gw")
        self.io_link = VirtualSerialLink(ports / "io-board", ports / "io-gw")
        self.board = SimulatedRelayBoard(ports / "io-board", baudrate=38400, unit=1)
        self.board.start()
        self.card = SimulatedCardReader(ports / "reader-sim", protocol)  # type: ignore[arg-type]
        self.pulse_ms = pulse_ms
        self.config = {
            "gateway_id": GATEWAY_ID,
            "data_dir": str(self.data_dir),
            "mqtt": {"host": "127.0.0.1", "port": broker.port, "reconnect_max_s": 1, "state_interval_s": 5},
            "api": {"host": "127.0.0.1", "port": free_port()},
            "readers": [{"id": "r1", "protocol": protocol, "port": str(ports / "reader-gw"), "repeat_suppress_ms": 0}],
            "io_modules": [{"id": "io1", "port": str(ports / "io-gw"), "baudrate": 38400, "unit": 1, "poll_ms": 50}],
            "doors": [
                {
                    "id": "main",
                    "mode": "card",
                    "reader": "r1",
                    "lock": {"io": "io1", "coil": 0, "pulse_ms": pulse_ms},
                    "contact": {"io": "io1", "input": 0},
                    "exit_button": {"io": "io1", "input": 1},
                    "held_open_s": 2,
                }
            ],
        }
        self.config_path = tmp_path / "gateway.yaml"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = tmp_path / "gateway.log"
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
    def start(self) -> None:
        self.config_path.write_text(yaml.safe_dump(self.config))
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "run", "--config", str(self.config_path)],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
        )
        wait_until(
            lambda: b"running:" in self.log_path.read_bytes() or self.proc.poll() is not None, 20, what="gateway start"
        )
        assert self.proc.poll() is None, self.log()
        wait_until(lambda: self.board_is_polled(), 10, what="I/O module online")

    def board_is_polled(self) -> bool:
        return self.board.request_count > 0

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise AssertionError("gateway did not stop within 20 s of SIGTERM") from None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

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
            self.card.close()
            self.board.stop()
            self.io_link.close()
            self.reader_link.close()

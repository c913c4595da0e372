"""OSDP card readers as the gateway's `Reader` devices (drivers/devices.py), one bus per serial port.

Each reader is a view of its bus (drivers/osdp_bus.py), whose thread does the work: starting or
stopping any reader of a bus starts or stops that bus. `feedback` queues the LED/buzzer commands.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from config.models import ReaderConfig
from drivers.events import DriverEvent, ReaderStatus
from drivers.osdp_bus import OsdpBus

PROBE_TIMEOUT_S = 5.0


class OsdpReader:
    """One OSDP reader on a shared bus."""

    def __init__(self, config: ReaderConfig, bus: OsdpBus) -> None:
        self.config = config
        self.bus = bus

    @property
    def online(self) -> bool:
        return self.bus.is_online(self.config.id)

    def start(self) -> None:
        self.bus.start()

    def stop(self) -> None:
        self.bus.stop()

    def feedback(self, granted: bool) -> None:
        self.bus.feedback(self.config.id, granted)


def osdp_buses(configs: Sequence[ReaderConfig], emit: Callable[[DriverEvent], None]) -> list[OsdpBus]:
    """One bus per serial port, with that port's osdp readers in config order."""
    ports: dict[str, list[ReaderConfig]] = {}
    for cfg in configs:
        if cfg.protocol == "osdp":
            ports.setdefault(cfg.port, []).append(cfg)
    return [OsdpBus(port, readers, emit) for port, readers in ports.items()]


def osdp_readers(configs: Sequence[ReaderConfig], emit: Callable[[DriverEvent], None]) -> dict[str, OsdpReader]:
    """reader id → OsdpReader for every osdp reader in `configs` (others are left out)."""
    return {
        cfg.id: OsdpReader(cfg, bus)
        for bus in osdp_buses(configs, emit)
        for cfg in configs
        if cfg.protocol == "osdp" and cfg.port == bus.port
    }


def probe_osdp_readers(configs: Sequence[ReaderConfig], timeout: float = PROBE_TIMEOUT_S) -> dict[str, str | None]:
    """For `accessgw check`: reader id → None when it answers with a secure channel, else why not.

    Runs each bus as the gateway would, until every reader on it is up or `timeout` passes.
    """
    why: dict[str, str | None] = {}

    def note(event: DriverEvent) -> None:
        if isinstance(event, ReaderStatus) and not event.online:
            why[event.reader] = event.error

    buses = osdp_buses(configs, note)
    for bus in buses:
        bus.start()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not all(b.is_online(r) for b in buses for r in b.reader_ids):
            time.sleep(0.05)
    finally:
        for bus in buses:
            bus.stop()
    address = {cfg.id: cfg.address for cfg in configs}
    return {
        rid: None
        if bus.is_online(rid)
        else (why.get(rid) or f"no secure channel with address {address[rid]} on {bus.port} within {timeout:g} s")
        for bus in buses
        for rid in bus.reader_ids
    }

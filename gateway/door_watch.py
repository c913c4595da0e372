"""Door inputs (contact, exit button, fire alarm) → door state → alerts and relays (DESIGN §4, §5)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from config.models import DoorConfig
from drivers.events import DoorInput
from gateway.alerts import AlertLog
from gateway.door_path import DoorPath
from gateway.doors import AlertChange, DoorState
from gateway.store.journal import AlertDraft

if TYPE_CHECKING:
    from drivers.devices import Lock

ROLES = ("contact", "exit_button", "fire_alarm")


class DoorWatch:
    def __init__(self, doors: dict[str, DoorState], locks: dict[str, Lock], door_path: DoorPath,
                 alerts: AlertLog) -> None:  # fmt: skip
        self.doors, self.locks, self.door_path, self.alerts = doors, locks, door_path, alerts
        # (I/O module, input) → the door and the role of that input
        self.inputs: dict[tuple[str, int], tuple[DoorState, str]] = {}
        for door in doors.values():
            for role in ROLES:
                ref = getattr(door.cfg, role)
                if ref is not None:
                    self.inputs[(ref.io, ref.input)] = (door, role)

    def on_input(self, event: DoorInput) -> None:
        target = self.inputs.get((event.io, event.input))
        if target is None:
            return
        door, role = target
        active = event.active != getattr(door.cfg, role).active_low
        if role == "contact":
            self._raise(door.cfg.id, door.contact(active, time.monotonic()))
        elif role == "exit_button" and active:
            self.door_path.open(door.cfg, "exit_button")
        elif role == "fire_alarm" and active != door.fire:
            door.fire = active
            self.on_fire_alarm(door.cfg, active)

    def on_fire_alarm(self, door: DoorConfig, active: bool) -> None:
        lock = self.locks.get(door.lock.io)
        if door.lock.fail_safe and lock is not None:  # fail-safe locks open while the alarm lasts
            (lock.hold if active else lock.release)(door.lock.coil)
        state, severity = ("raised", "critical") if active else ("cleared", "info")
        self.alerts.raise_(AlertDraft(datetime.now(UTC), "fire_alarm", state, severity, door=door.id))

    def tick(self, now_mono: float) -> None:
        """Held-open and forced-door timers (called every second)."""
        for door in self.doors.values():
            self._raise(door.cfg.id, door.tick(now_mono))

    def _raise(self, door_id: str, changes: list[AlertChange]) -> None:
        for c in changes:
            self.alerts.raise_(AlertDraft(datetime.now(UTC), c.kind, c.state, c.severity, door=door_id))

"""Door supervision (DESIGN §4, §5): inputs (contact, exit button, fire alarm, cabinet tamper) and
refusals → door state → alerts and relays.

Every alert here is raised and cleared by the input that caused it (door_forced and door_held_open
by the contact, fire_alarm by the fire input, tamper by the cabinet switch), except
repeated_denials, which is one alert per burst of refusals (gateway/denials.py).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from config.models import DoorConfig, IoModuleConfig, ModuleInput
from drivers.events import DoorInput
from gateway.alerts import AlertLog
from gateway.denials import DenialCounter, DenialRule
from gateway.door_path import DoorPath
from gateway.doors import AlertChange, DoorState
from gateway.store.journal import AlertDraft, EntryDraft

if TYPE_CHECKING:
    from drivers.devices import Lock

ROLES = ("contact", "exit_button", "fire_alarm")


def denial_rules(doors: Sequence[DoorConfig]) -> dict[str, DenialRule]:
    return {
        d.id: DenialRule(d.repeated_denials.denials, d.repeated_denials.within_s, d.repeated_denials.per_card)
        for d in doors
        if d.repeated_denials is not None
    }


class DoorWatch:
    def __init__(
        self,
        doors: dict[str, DoorState],
        locks: dict[str, Lock],
        door_path: DoorPath,
        alerts: AlertLog,
        io_modules: Sequence[IoModuleConfig] = (),
    ) -> None:
        self.doors, self.locks, self.door_path, self.alerts = doors, locks, door_path, alerts
        # (I/O module, input) → the doors and roles of that input: one fire panel contact usually
        # serves every door of the building.
        self.inputs: dict[tuple[str, int], list[tuple[DoorState, str]]] = defaultdict(list)
        for door in doors.values():
            for role in ROLES:
                ref = getattr(door.cfg, role)
                if ref is not None:
                    self.inputs[(ref.io, ref.input)].append((door, role))
        # (I/O module, input) → the cabinet tamper switch there, and whether its alert is raised.
        self.cabinets: dict[tuple[str, int], ModuleInput] = {
            (m.id, m.tamper_input.input): m.tamper_input for m in io_modules if m.tamper_input is not None
        }
        self.cabinet_open: set[tuple[str, int]] = set()
        self.denials = DenialCounter(denial_rules([d.cfg for d in doors.values()]))
        door_path.on_denied = self.on_denied  # the door's path reports each refusal here

    def on_input(self, event: DoorInput) -> None:
        key = (event.io, event.input)
        if key in self.cabinets:
            self._cabinet(key, event.active != self.cabinets[key].active_low)
        for door, role in self.inputs.get(key, ()):
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

    def on_denied(self, entry: EntryDraft) -> None:
        burst = self.denials.denied(time.monotonic(), entry.door, entry.card_number)
        if burst is not None:
            self.alerts.raise_(AlertDraft(datetime.now(UTC), "repeated_denials", "raised", "warning",
                                          door=entry.door, details=burst.details()))  # fmt: skip

    def tick(self, now_mono: float) -> None:
        """Held-open and forced-door timers (called every second)."""
        for door in self.doors.values():
            self._raise(door.cfg.id, door.tick(now_mono))

    def _cabinet(self, key: tuple[str, int], is_open: bool) -> None:
        # Each (re)connect of the module repeats every input: only a change is news.
        if is_open == (key in self.cabinet_open):
            return
        (self.cabinet_open.add if is_open else self.cabinet_open.discard)(key)
        state, severity = ("raised", "critical") if is_open else ("cleared", "info")
        details = {"source": "cabinet", "io": key[0], "input": key[1]}
        self.alerts.raise_(AlertDraft(datetime.now(UTC), "tamper", state, severity, details=details))

    def _raise(self, door_id: str, changes: list[AlertChange]) -> None:
        for c in changes:
            self.alerts.raise_(AlertDraft(datetime.now(UTC), c.kind, c.state, c.severity, door=door_id))

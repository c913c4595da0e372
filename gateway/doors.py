"""Door state: open/closed, unlock windows, forced and held-open detection (each raised and cleared).

Pure state machines fed with times; the gateway turns their `AlertChange`s
into alert rows and their unlock requests into relay pulses.
"""

from __future__ import annotations

from dataclasses import dataclass

from config.models import DoorConfig
from gateway.access import DoorPolicy, Window

# An opening this long after the unlock window still counts as authorised:
# people push the door a moment after the relay clicks off.
GRACE_S = 2.0


@dataclass(frozen=True, slots=True)
class AlertChange:
    kind: str
    state: str  # raised / cleared
    severity: str


def policy_of(cfg: DoorConfig) -> DoorPolicy:
    windows = tuple(Window(frozenset(w.days), w.start, w.end) for w in cfg.schedule)
    return DoorPolicy(cfg.id, cfg.mode, windows)


class DoorState:
    def __init__(self, cfg: DoorConfig) -> None:
        self.cfg = cfg
        self.policy = policy_of(cfg)
        self.is_open = False
        self.open_since = 0.0
        self.unlocked_until = 0.0
        self.held_alert = False
        self.forced_alert = False  # raised for this opening; cleared when the contact closes
        self.fire = False

    def unlocked(self, now: float, pulse_s: float) -> None:
        self.unlocked_until = max(self.unlocked_until, now + pulse_s + GRACE_S)

    def contact(self, is_open: bool, now: float) -> list[AlertChange]:
        changes: list[AlertChange] = []
        if is_open and not self.is_open:
            self.is_open, self.open_since = True, now
            if now > self.unlocked_until and not self.fire:
                self.forced_alert = True
                changes.append(AlertChange("door_forced", "raised", "critical"))
        elif not is_open and self.is_open:
            self.is_open = False
            if self.forced_alert:
                self.forced_alert = False
                changes.append(AlertChange("door_forced", "cleared", "info"))
            if self.held_alert:
                self.held_alert = False
                changes.append(AlertChange("door_held_open", "cleared", "info"))
        return changes

    def tick(self, now: float) -> list[AlertChange]:
        if self.is_open and not self.held_alert and not self.fire and now - self.open_since >= self.cfg.held_open_s:
            self.held_alert = True
            return [AlertChange("door_held_open", "raised", "warning")]
        return []

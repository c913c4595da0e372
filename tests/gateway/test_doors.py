"""DoorState: the door's contact, unlock windows, forced and held-open detection (pure, no I/O).

Times are plain seconds on the monotonic clock the gateway feeds in.
"""

from __future__ import annotations

from datetime import time

from config.models import DoorConfig
from gateway.access import Window
from gateway.doors import GRACE_S, AlertChange, DoorState, policy_of

FORCED = AlertChange("door_forced", "raised", "critical")
HELD = AlertChange("door_held_open", "raised", "warning")
HELD_CLEARED = AlertChange("door_held_open", "cleared", "info")
FORCED_CLEARED = AlertChange("door_forced", "cleared", "info")


def door(**extra: object) -> DoorState:
    cfg = DoorConfig.model_validate({"id": "main", "lock": {"io": "io1", "coil": 0}, "held_open_s": 30, **extra})
    return DoorState(cfg)


def test_policy_carries_id_mode_and_schedule() -> None:
    cfg = DoorConfig.model_validate({
        "id": "side", "mode": "card_and_face", "reader": "r1", "lock": {"io": "io1", "coil": 1},
        "schedule": [{"days": ["mon", "fri"], "from": "05:00", "to": "23:30"}],
    })  # fmt: skip
    policy = policy_of(cfg)
    assert (policy.id, policy.mode) == ("side", "card_and_face")
    assert policy.schedule == (Window(frozenset({"mon", "fri"}), time(5), time(23, 30)),)
    assert policy_of(DoorConfig.model_validate({"id": "x", "lock": {"io": "io1", "coil": 0}})).schedule == ()


def test_a_new_door_is_closed_and_locked() -> None:
    d = door()
    assert (d.is_open, d.held_alert, d.fire) == (False, False, False)
    assert d.tick(1000.0) == []
    assert d.contact(False, 1.0) == []  # closed again: nothing changes


def test_opening_a_locked_door_is_forced() -> None:
    d = door()
    assert d.contact(True, 100.0) == [FORCED]
    assert d.is_open and d.open_since == 100.0
    assert d.contact(True, 101.0) == []  # still open: one alert per opening, open_since kept
    assert d.open_since == 100.0
    assert d.contact(False, 102.0) == [FORCED_CLEARED]  # closed again: the forced door is cleared
    assert d.contact(False, 102.5) == []  # once
    assert d.contact(True, 103.0) == [FORCED]  # a new opening


def test_the_unlock_window_is_the_pulse_plus_grace_and_its_end_is_inclusive() -> None:
    d = door()
    d.unlocked(100.0, 3.0)
    assert d.unlocked_until == 100.0 + 3.0 + GRACE_S
    assert d.contact(True, 100.0 + 3.0 + GRACE_S) == []  # at the very end: still authorised
    d.contact(False, 106.0)
    assert d.contact(True, 100.0 + 3.0 + GRACE_S + 0.001) == [FORCED]  # just after: forced


def test_opening_during_the_pulse_is_not_forced() -> None:
    d = door()
    d.unlocked(10.0, 0.5)
    assert d.contact(True, 10.1) == []


def test_an_unlock_never_shortens_an_open_window() -> None:
    d = door()
    d.unlocked(0.0, 10.0)
    d.unlocked(1.0, 0.1)  # a short pulse later: the long window stands
    assert d.unlocked_until == 10.0 + GRACE_S
    d.unlocked(20.0, 1.0)  # a later one extends it
    assert d.unlocked_until == 21.0 + GRACE_S


def test_held_open_is_raised_once_at_held_open_s_and_cleared_on_closing() -> None:
    d = door(held_open_s=30)
    d.unlocked(0.0, 3.0)
    assert d.contact(True, 1.0) == []
    assert d.tick(30.999) == []  # 29.999 s open
    assert d.tick(31.0) == [HELD]  # exactly held_open_s: raised
    assert d.held_alert
    assert d.tick(31.5) == [] and d.tick(500.0) == []  # once per opening
    assert d.contact(False, 600.0) == [HELD_CLEARED]
    assert not d.held_alert
    assert d.contact(False, 601.0) == []  # cleared once


def test_closing_before_held_open_s_clears_nothing() -> None:
    d = door(held_open_s=5)
    d.unlocked(0.0, 1.0)
    d.contact(True, 0.5)
    assert d.contact(False, 4.0) == []
    assert d.tick(100.0) == []  # closed: no held-open whatever the time


def test_each_opening_starts_its_own_held_open_clock() -> None:
    d = door(held_open_s=5)
    d.unlocked(0.0, 100.0)
    d.contact(True, 0.0)
    d.contact(False, 4.0)
    d.contact(True, 10.0)
    assert d.tick(14.9) == []  # 4.9 s of this opening, although 14.9 s since the first
    assert d.tick(15.0) == [HELD]
    assert d.contact(False, 16.0) == [HELD_CLEARED]
    d.contact(True, 20.0)
    assert d.tick(25.0) == [HELD]  # raised again for a later opening


def test_a_forced_door_left_open_is_also_held_open() -> None:
    d = door(held_open_s=2)
    assert d.contact(True, 50.0) == [FORCED]
    assert d.tick(52.0) == [HELD]
    assert d.contact(False, 53.0) == [FORCED_CLEARED, HELD_CLEARED]  # closing ends both


def test_during_a_fire_alarm_nothing_is_forced_or_held_open() -> None:
    d = door(held_open_s=2)
    d.fire = True
    assert d.contact(True, 10.0) == []
    assert d.tick(1000.0) == []
    d.fire = False  # the alarm ends with the door still open: held-open counts from the opening
    assert d.tick(1000.0) == [HELD]
    assert d.contact(False, 1001.0) == [HELD_CLEARED]


def test_a_held_open_alert_raised_before_a_fire_is_still_cleared() -> None:
    d = door(held_open_s=2)
    d.contact(True, 0.0)
    assert d.tick(2.0) == [HELD]
    d.fire = True
    assert d.contact(False, 3.0) == [HELD_CLEARED]

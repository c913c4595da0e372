"""Door supervision completed (issue 13 item 2): door_forced cleared, cabinet tamper, repeated denials,
and the fire alarm end to end.

The counter of refusals is pure (gateway.denials) and tested alone; the rest runs `accessgw run` on
real peers: pymodbus's RTU server as the relay/input board and wiegand-text readers on socat ptys,
mosquitto, and the platform-side subscriber of tests/gateway/rig.py.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from config.models import ConfigReferenceError, GatewayConfig, check_references
from drivers.simulators import VirtualSerialLink
from gateway.denials import MAX_KEPT, Burst, DenialCounter, DenialRule
from testing.peers import Mosquitto, wait_until
from tests.gateway.rig import Rig

RULE = DenialRule(denials=5, within_s=60.0, per_card=3)
FIRE, TAMPER = 2, 3  # board inputs (0: main's contact, 1: its exit button)


# --- the counter (pure) --------------------------------------------------------------------------


def feed(counter: DenialCounter, refusals: list[tuple[float, int | None]], door: str = "main") -> list[Burst]:
    return [b for t, card in refusals if (b := counter.denied(t, door, card)) is not None]


def test_n_refusals_within_the_window_raise_one_alert_for_the_burst() -> None:
    counter = DenialCounter({"main": RULE})
    assert feed(counter, [(float(t), 100 + t) for t in range(4)]) == []  # four different cards: not yet
    assert feed(counter, [(4.0, 104)]) == [Burst("door", 5, (100, 101, 102, 103, 104), None, 60.0)]
    assert feed(counter, [(5.0 + t, 200 + t) for t in range(20)]) == []  # the same burst goes on: no more


def test_refusals_spread_wider_than_the_window_raise_nothing() -> None:
    counter = DenialCounter({"main": RULE})
    # One every 16 s: at most four (t-60 .. t, inclusive) in any 60 s window.
    assert feed(counter, [(16.0 * i, 100 + i) for i in range(50)]) == []


def test_one_card_refused_k_times_raises_with_that_card() -> None:
    counter = DenialCounter({"main": RULE})
    got = feed(counter, [(0.0, 7), (1.0, 8), (2.0, 7), (3.0, 7)])
    assert got == [Burst("card", 4, (7, 8), 7, 60.0)]
    assert got[0].details() == {"trigger": "card", "count": 4, "cards": [7, 8], "card": 7, "window_s": 60.0}


def test_a_card_counts_only_within_the_window() -> None:
    counter = DenialCounter({"main": RULE})
    assert feed(counter, [(0.0, 7), (30.0, 7), (61.0, 7), (92.0, 7)]) == []  # never three in 60 s
    assert feed(counter, [(93.0, 7)]) == [Burst("card", 3, (7,), 7, 60.0)]  # 61, 92, 93


def test_a_steady_trickle_is_one_burst_and_a_quiet_window_ends_it() -> None:
    counter = DenialCounter({"main": DenialRule(denials=3, within_s=60.0, per_card=None)})
    trickle = [(30.0 * i, 100 + i) for i in range(120)]  # one refusal every 30 s for an hour
    assert [b.count for b in feed(counter, trickle)] == [3]
    last = trickle[-1][0]
    again = [(last + 60.5 + i, 900 + i) for i in range(3)]  # after more than a whole window of quiet
    assert [b.count for b in feed(counter, again)] == [3]


def test_faces_count_for_the_door_not_per_card_and_doors_are_apart() -> None:
    counter = DenialCounter({"main": RULE, "side": RULE})
    assert feed(counter, [(float(t), None) for t in range(4)]) == []
    assert feed(counter, [(float(t), 5) for t in range(2)], door="side") == []  # another door's window
    assert feed(counter, [(4.0, None)]) == [Burst("door", 5, (), None, 60.0)]
    assert counter.denied(5.0, "unwatched", 1) is None  # a door without a rule is not counted


def test_a_flood_keeps_memory_bounded() -> None:
    counter = DenialCounter({"main": DenialRule(denials=2, within_s=3600.0, per_card=None)})
    assert len(feed(counter, [(i * 0.001, i) for i in range(5 * MAX_KEPT)])) == 1
    counter = DenialCounter({"main": DenialRule(denials=MAX_KEPT + 10, within_s=3600.0, per_card=None)})
    assert feed(counter, [(i * 0.001, i) for i in range(5 * MAX_KEPT)]) == []  # at most MAX_KEPT are held


# --- config ----------------------------------------------------------------------------------------


def config(**io: Any) -> dict[str, Any]:
    return {"gateway_id": "gw", "readers": [{"id": "r1", "protocol": "wiegand-text", "port": "/dev/null"}],
            "io_modules": [{"id": "io1", "port": "/dev/null", "inputs": 4, **io}],
            "doors": [{"id": "main", "reader": "r1", "lock": {"io": "io1", "coil": 0},
                       "contact": {"io": "io1", "input": 0}}]}  # fmt: skip


def test_tamper_input_must_be_polled_and_no_door_input() -> None:
    with pytest.raises(ValidationError, match="tamper_input.input 4 is not polled"):
        GatewayConfig.model_validate(config(tamper_input={"input": 4}))
    with pytest.raises(ConfigReferenceError, match="'main' contact is the cabinet tamper input of io 'io1'") as err:
        check_references(GatewayConfig.model_validate(config(tamper_input={"input": 0})))
    assert err.value.loc == ("doors", 0, "contact", "input")
    cfg = GatewayConfig.model_validate(config(tamper_input={"input": 3, "active_low": True}))
    check_references(cfg)
    assert cfg.io_modules[0].tamper_input is not None and cfg.io_modules[0].tamper_input.active_low


def test_repeated_denials_config_defaults_and_bounds() -> None:
    door = {"id": "main", "lock": {"io": "io1", "coil": 0}, "reader": "r1"}
    cfg = GatewayConfig.model_validate({"gateway_id": "gw", "doors": [door | {"repeated_denials": {}}]})
    rule = cfg.doors[0].repeated_denials
    assert rule is not None and (rule.denials, rule.within_s, rule.per_card) == (5, 60.0, 3)
    assert GatewayConfig.model_validate({"gateway_id": "gw", "doors": [door]}).doors[0].repeated_denials is None
    with pytest.raises(ValidationError, match="denials"):
        GatewayConfig.model_validate({"gateway_id": "gw", "doors": [door | {"repeated_denials": {"denials": 1}}]})


# --- end to end: the gateway process on a pymodbus board -----------------------------------------


class Building(Rig):
    """Rig's door `main` (reader r1, coil 0, contact 0, exit 1) plus `side` (r2, coil 1) and `store` (r3, coil
    2) on the same board; one fire panel input for all three, `main` and `side` fail-safe; a cabinet tamper
    switch on the board; repeated denials watched at `main`."""

    def __init__(self, tmp_path: Path, broker: Mosquitto) -> None:
        super().__init__(tmp_path, broker, pulse_ms=300)
        self.links = [VirtualSerialLink(tmp_path / f"ports/{r}-sim", tmp_path / f"ports/{r}-gw") for r in ("r2", "r3")]
        fire = {"io": "io1", "input": FIRE}
        self.config["readers"] += [{"id": r, "protocol": "wiegand-text", "port": str(tmp_path / f"ports/{r}-gw")}
                                   for r in ("r2", "r3")]  # fmt: skip
        self.config["io_modules"][0]["tamper_input"] = {"input": TAMPER}
        main = self.config["doors"][0]
        main["lock"]["fail_safe"] = True
        main |= {"fire_alarm": fire, "repeated_denials": {"denials": 4, "within_s": 30, "per_card": 3}}
        self.config["doors"] += [
            {"id": "side", "reader": "r2", "lock": {"io": "io1", "coil": 1, "fail_safe": True}, "fire_alarm": fire},
            {"id": "store", "reader": "r3", "lock": {"io": "io1", "coil": 2}, "fire_alarm": fire},
        ]

    def alerts_of(self, kind: str) -> list[dict[str, Any]]:
        return [a for a in self.alerts() if a["kind"] == kind]

    def wait_alerts(self, kind: str, state: str, n: int = 1, timeout: float = 5) -> list[dict[str, Any]]:
        """The alerts of `kind` in `state` once there are `n` (more fail the caller's unpacking)."""

        def found() -> list[dict[str, Any]] | None:
            alerts = [a for a in self.alerts_of(kind) if a["state"] == state]
            return alerts if len(alerts) >= n else None

        try:
            return wait_until(found, timeout, what=f"{n} {kind} {state}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.log_tail()}") from None

    def close(self) -> None:
        try:
            super().close()
        finally:
            for link in self.links:
                link.close()


@pytest.fixture
def building(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[Building]:
    b = Building(tmp_path, mosquitto)
    try:
        yield b
    finally:
        b.close()


@pytest.mark.slow
def test_fire_alarm_holds_fail_safe_doors_open_then_normal_service(building: Building) -> None:
    b = building
    b.enrol("alice", 4242, valid_to=date.today() + timedelta(days=30))
    b.start()

    b.board.set_input(FIRE, True)
    wait_until(lambda: b.board.coils()[:3] == [True, True, False], 5, what="fail-safe locks released")
    raised = b.wait_alerts("fire_alarm", "raised", 3)
    assert sorted(a["door"] for a in raised) == ["main", "side", "store"]
    assert {a["severity"] for a in raised} == {"critical"}
    b.board.set_input(0, True)  # people leave through main: no door_forced, no door_held_open during a fire
    time.sleep(0.3 + 0.5)  # longer than a pulse: a held relay is not a pulse
    assert b.board.coils()[:3] == [True, True, False]
    b.board.set_input(0, False)

    b.board.set_input(FIRE, False)
    wait_until(lambda: b.board.coils()[:3] == [False, False, False], 5, what="locks back")
    cleared = b.wait_alerts("fire_alarm", "cleared", 3)
    assert sorted(a["door"] for a in cleared) == ["main", "side", "store"]
    assert not b.alerts_of("door_forced") and not b.alerts_of("door_held_open")

    b.board.clear_history()
    b.card.swipe(4242, 34)
    entry = wait_until(lambda: [e for e in b.entries() if e["method"] == "card"], 5, what="the swipe")[0]
    assert (entry["decision"], entry["tenant_id"], entry["door"]) == ("granted", "alice", "main")
    wait_until(lambda: [(c, v) for _, c, v in b.board.write_history()] == [(0, True), (0, False)], 5,
               what="main pulsed and locked again")  # fmt: skip


@pytest.mark.slow
def test_repeated_denials_cabinet_tamper_and_forced_door_cleared(building: Building) -> None:
    b = building
    b.start()

    for card in (999, 999, 999, 998, 997):  # one card refused three times, then two more: one burst
        b.card.swipe(card, 34)
    entries = b.wait_entries(5)
    assert [e["reason"] for e in entries] == ["unknown_card"] * 5

    b.board.set_input(TAMPER, True)  # the controller's cabinet opened
    [tamper] = b.wait_alerts("tamper", "raised")
    assert (tamper["severity"], tamper["door"]) == ("critical", None)
    assert tamper["details"] == {"source": "cabinet", "io": "io1", "input": TAMPER}
    b.board.set_input(TAMPER, False)
    b.wait_alerts("tamper", "cleared")

    b.board.set_input(0, True)  # main opened with nobody let in
    b.wait_alerts("door_forced", "raised")
    b.board.set_input(0, False)
    [forced_cleared] = b.wait_alerts("door_forced", "cleared")
    assert (forced_cleared["door"], forced_cleared["severity"]) == ("main", "info")

    # Everything before the last alert has been delivered (one outbox, in seq order): one burst, one alert.
    [burst] = b.alerts_of("repeated_denials")
    assert (burst["door"], burst["state"], burst["severity"]) == ("main", "raised", "warning")
    assert burst["details"] == {"trigger": "card", "count": 3, "cards": [999], "card": 999, "window_s": 30.0}
    assert entries[2]["seq"] < burst["seq"] < entries[3]["seq"]  # raised by the third refusal
    assert len(b.alerts_of("tamper")) == 2 and len(b.alerts_of("door_forced")) == 2

"""Mode dispatch and the card-and-face wait: pure, no I/O (gateway.door_modes)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from drivers.events import CardPresented
from gateway.access import CardHolder, DoorPolicy, FaceAtDoor, Reason, TenantRecord
from gateway.door_modes import (
    RECENT_FACES,
    CardAndFaceWaits,
    CardStep,
    FaceStep,
    PendingSwipe,
    card_step,
    face_step,
)

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
ALICE = TenantRecord("alice", "active", None, date(2030, 1, 1))
POLICY = DoorPolicy("main", "card_and_face")


def swipe(mono: float, holders: list[CardHolder] | None = None, window_s: float = 5.0) -> PendingSwipe:
    event = CardPresented(reader="r1", card_number=7, card_bits=34, ts=NOW, mono=mono)
    return PendingSwipe("main", window_s, event, [CardHolder(7, ALICE)] if holders is None else holders)


def settle(waits: CardAndFaceWaits[str], now_mono: float) -> list:
    return waits.settle(now_mono, lambda door_id: POLICY, lambda ts: ts)


@pytest.mark.parametrize(
    ("mode", "cameras", "step"),
    [
        ("card", True, CardStep.DECIDE),
        ("card_or_face", True, CardStep.DECIDE),
        ("face", True, CardStep.DECIDE),
        ("card_and_face", True, CardStep.AWAIT_FACE),
        ("card_and_face", False, CardStep.DECIDE),  # no camera: decided at once, and never opens
    ],
)
def test_what_a_card_does(mode: str, cameras: bool, step: CardStep) -> None:
    assert card_step(mode, cameras) is step


@pytest.mark.parametrize(
    ("mode", "step"),
    [("face", FaceStep.DECIDE), ("card_or_face", FaceStep.DECIDE), ("card_and_face", FaceStep.PAIR_WITH_CARD),
     ("card", FaceStep.NONE)],
)  # fmt: skip
def test_what_a_face_does(mode: str, step: FaceStep) -> None:
    assert face_step(mode) is step


def test_the_tenants_face_in_the_window_opens_at_once_and_names_the_face() -> None:
    waits: CardAndFaceWaits[str] = CardAndFaceWaits()
    waits.swipe(swipe(100.0))
    assert settle(waits, 100.1) == []  # nobody yet: keep waiting
    waits.face("main", FaceAtDoor("alice", 101.0), "frame-of-alice")
    (done,) = settle(waits, 101.0)
    assert (done.decision.granted, done.decision.reason, done.face) == (True, Reason.GRANTED, "frame-of-alice")
    assert waits.pending == []


def test_a_face_seen_just_before_the_swipe_counts() -> None:
    waits: CardAndFaceWaits[str] = CardAndFaceWaits()
    waits.face("main", FaceAtDoor("alice", 97.0), "early")
    waits.swipe(swipe(100.0))
    (done,) = settle(waits, 100.0)
    assert done.decision.granted and done.face == "early"


def test_another_tenants_face_is_a_mismatch_only_at_the_end_of_the_window() -> None:
    waits: CardAndFaceWaits[str] = CardAndFaceWaits()
    waits.swipe(swipe(100.0))
    waits.face("main", FaceAtDoor("bob", 101.0), "frame-of-bob")
    assert settle(waits, 104.9) == []  # Alice may still come
    (done,) = settle(waits, 105.0)
    assert (done.decision.reason, done.decision.face_tenant_id, done.face) == (Reason.FACE_MISMATCH, "bob",
                                                                               "frame-of-bob")  # fmt: skip


def test_no_face_or_only_unknown_faces_is_a_timeout_without_a_face() -> None:
    waits: CardAndFaceWaits[str] = CardAndFaceWaits()
    waits.swipe(swipe(100.0))
    waits.face("main", FaceAtDoor(None, 101.0), "stranger")
    (done,) = settle(waits, 105.5)
    assert (done.decision.reason, done.face) == (Reason.FACE_TIMEOUT, None)


def test_an_unknown_card_is_refused_at_once_without_waiting() -> None:
    waits: CardAndFaceWaits[str] = CardAndFaceWaits()
    waits.swipe(swipe(100.0, holders=[]))
    (done,) = settle(waits, 100.0)
    assert (done.decision.reason, done.face) == (Reason.UNKNOWN_CARD, None)


def test_faces_at_other_doors_do_not_count_and_each_door_keeps_a_bounded_history() -> None:
    waits: CardAndFaceWaits[str] = CardAndFaceWaits()
    waits.face("back", FaceAtDoor("alice", 100.5), "at-the-back")
    waits.swipe(swipe(100.0))
    assert settle(waits, 101.0) == []
    for i in range(RECENT_FACES + 10):
        waits.face("main", FaceAtDoor(None, 90.0 + i * 0.01), f"f{i}")
    assert len(waits.recent["main"]) == RECENT_FACES

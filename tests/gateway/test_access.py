"""The decision module: pure, no I/O, every reason and its precedence."""

from __future__ import annotations

from datetime import date, datetime, time

import pytest

from gateway.access import (
    CardHolder,
    DoorPolicy,
    FaceAtDoor,
    Reason,
    TenantRecord,
    Window,
    decide_card,
    decide_card_and_face,
    decide_face,
    lookup_for_read,
    tenant_verdict,
)

DOOR = DoorPolicy("main", "card")
NOW = datetime(2026, 11, 23, 10, 0)  # a Monday


def holder(status: str = "active", valid_from: date | None = None, valid_to: date = date(2027, 1, 1)) -> CardHolder:
    return CardHolder(0x12345678, TenantRecord("t1", status, valid_from, valid_to))


def test_granted() -> None:
    d = decide_card([holder()], DOOR, NOW)
    assert (d.granted, d.reason, d.tenant_id) == (True, Reason.GRANTED, "t1")


def test_unknown_card() -> None:
    d = decide_card([], DOOR, NOW)
    assert (d.granted, d.reason, d.tenant_id, d.ambiguous) == (False, Reason.UNKNOWN_CARD, None, False)


def test_ambiguous_26_bit_read_is_unknown_card() -> None:
    other = CardHolder(0xAB345678, TenantRecord("t2", "active", None, date(2027, 1, 1)))
    d = decide_card([holder(), other], DOOR, NOW)
    assert (d.granted, d.reason, d.ambiguous, d.tenant_id) == (False, Reason.UNKNOWN_CARD, True, None)


@pytest.mark.parametrize(
    ("status", "reason"), [("suspended", Reason.SUSPENDED), ("revoked", Reason.REVOKED), ("active", Reason.GRANTED)]
)
def test_status(status: str, reason: Reason) -> None:
    assert decide_card([holder(status)], DOOR, NOW).reason is reason


@pytest.mark.parametrize(
    ("today", "reason"),
    [
        (date(2026, 11, 30), Reason.PERMIT_NOT_YET_VALID),  # the day before valid_from
        (date(2026, 12, 1), Reason.GRANTED),  # first valid day, inclusive
        (date(2026, 12, 31), Reason.GRANTED),  # last valid day, inclusive
        (date(2027, 1, 1), Reason.PERMIT_EXPIRED),  # the day after valid_to
    ],
)
def test_permit_boundaries_are_inclusive_calendar_days(today: date, reason: Reason) -> None:
    h = holder(valid_from=date(2026, 12, 1), valid_to=date(2026, 12, 31))
    for clock in (time(0, 0), time(23, 59, 59)):
        assert decide_card([h], DOOR, datetime.combine(today, clock)).reason is reason


def test_precedence_revoked_over_everything() -> None:
    t = TenantRecord("t1", "revoked", date(2030, 1, 1), date(2020, 1, 1))
    assert tenant_verdict(t, DOOR, NOW) is Reason.REVOKED
    t = TenantRecord("t1", "suspended", date(2030, 1, 1), date(2020, 1, 1))
    assert tenant_verdict(t, DOOR, NOW) is Reason.SUSPENDED
    t = TenantRecord("t1", "active", date(2030, 1, 1), date(2020, 1, 1))
    assert tenant_verdict(t, DOOR, NOW) is Reason.PERMIT_NOT_YET_VALID


def test_schedule_windows_and_precedence() -> None:
    door = DoorPolicy("main", "card", (Window(frozenset({"mon", "tue"}), time(7), time(9)),))
    assert decide_card([holder()], door, datetime(2026, 11, 23, 8, 0)).reason is Reason.GRANTED
    assert decide_card([holder()], door, datetime(2026, 11, 23, 9, 0)).reason is Reason.OUTSIDE_SCHEDULE
    assert decide_card([holder()], door, datetime(2026, 11, 25, 8, 0)).reason is Reason.OUTSIDE_SCHEDULE  # Wed
    expired = holder(valid_to=date(2026, 1, 1))
    assert decide_card([expired], door, datetime(2026, 11, 23, 10, 0)).reason is Reason.PERMIT_EXPIRED


def test_lookup_rules() -> None:
    assert lookup_for_read(0x345678, 26) == ("low24", 0x345678)
    assert lookup_for_read(0x12345678, 34) == ("number", 0x12345678)
    assert lookup_for_read(0x12345678, 40) == ("number", 0x12345678)


def test_card_and_face_door_never_opens_on_a_card_alone() -> None:
    door = DoorPolicy("side", "card_and_face")
    d = decide_card([holder()], door, NOW)
    assert (d.granted, d.reason, d.tenant_id) == (False, Reason.FACE_TIMEOUT, "t1")
    assert decide_card([holder("revoked")], door, NOW).reason is Reason.REVOKED


def test_face_decisions() -> None:
    door = DoorPolicy("main", "face")
    assert decide_face(None, door, NOW).reason is Reason.UNKNOWN_FACE
    assert decide_face(holder().tenant, door, NOW).granted
    assert decide_face(holder("suspended").tenant, door, NOW).reason is Reason.SUSPENDED


def test_card_and_face_window() -> None:
    door = DoorPolicy("side", "card_and_face")
    me, other, unknown = FaceAtDoor("t1", 100.0), FaceAtDoor("t2", 101.0), FaceAtDoor(None, 101.0)

    def decide(faces: list[FaceAtDoor], now: float):
        return decide_card_and_face([holder()], faces, door, NOW, swipe_mono=100.0, now_mono=now, window_s=10)

    assert decide([], 101.0) is None  # still waiting for the face
    assert decide([FaceAtDoor("t1", 92.0)], 100.0).granted  # seen 8 s before the swipe: inside the window
    assert decide([FaceAtDoor("t1", 85.0)], 110.0).reason is Reason.FACE_TIMEOUT  # 15 s before: too early
    assert decide([unknown], 110.0).reason is Reason.FACE_TIMEOUT
    assert decide([other, me], 104.0).granted  # the right face wins, even with someone else around
    assert decide([other], 105.0) is None
    mismatch = decide([other], 110.0)
    assert (mismatch.reason, mismatch.tenant_id, mismatch.face_tenant_id) == (Reason.FACE_MISMATCH, "t1", "t2")
    revoked = decide_card_and_face([holder("revoked")], [], door, NOW, swipe_mono=100, now_mono=100, window_s=10)
    assert revoked.reason is Reason.REVOKED  # the card's own refusal needs no face
    assert (
        decide_card_and_face([], [], door, NOW, swipe_mono=100, now_mono=100, window_s=10).reason is Reason.UNKNOWN_CARD
    )

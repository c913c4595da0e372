"""Entry decisions: pure functions of (event, roster records, door policy, clock).

No I/O happens here. The gateway fetches the roster records an event can
match, calls these functions, and acts on the returned `Decision`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from enum import StrEnum


class Reason(StrEnum):
    """The closed set of reason codes shared by the API, MQTT and logs (DESIGN §5)."""

    GRANTED = "granted"
    UNKNOWN_CARD = "unknown_card"
    UNKNOWN_FACE = "unknown_face"
    REVOKED = "revoked"
    SUSPENDED = "suspended"
    PERMIT_EXPIRED = "permit_expired"
    PERMIT_NOT_YET_VALID = "permit_not_yet_valid"
    FACE_MISMATCH = "face_mismatch"
    FACE_TIMEOUT = "face_timeout"
    OUTSIDE_SCHEDULE = "outside_schedule"
    ANTI_PASSBACK = "anti_passback"  # entered and not left since (gateway.passback); after outside_schedule


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True, slots=True)
class TenantRecord:
    id: str
    status: str  # active / suspended / revoked
    valid_from: date | None
    valid_to: date
    watchlist: bool = False


@dataclass(frozen=True, slots=True)
class CardHolder:
    card_number: int
    tenant: TenantRecord


@dataclass(frozen=True, slots=True)
class Window:
    days: frozenset[str]
    start: time
    end: time


@dataclass(frozen=True, slots=True)
class DoorPolicy:
    id: str
    mode: str
    schedule: tuple[Window, ...] = ()


@dataclass(frozen=True, slots=True)
class Decision:
    granted: bool
    reason: Reason
    tenant_id: str | None = None
    card_number: int | None = None  # the enrolled number that matched
    ambiguous: bool = False  # a 26-bit read that matched several enrolled cards
    face_tenant_id: str | None = None  # card_and_face: whose face was seen instead (face_mismatch)


@dataclass(frozen=True, slots=True)
class FaceAtDoor:
    """A confirmed face on the door's camera: `tenant_id` None is an unknown face."""

    tenant_id: str | None
    mono: float  # when its frame was captured (time.monotonic)


def lookup_for_read(number: int, bits: int) -> tuple[str, int]:
    """How an enrolled card is found for a read (DESIGN §4).

    A 26-bit frame carries only 24 data bits, so it matches cards on their
    low 24 bits; every other read matches the whole 32-bit number.
    Returns ("low24", value) or ("number", value).
    """
    if bits == 26:
        return ("low24", number & 0xFFFFFF)
    return ("number", number & 0xFFFFFFFF)


def in_schedule(windows: Sequence[Window], local_now: datetime) -> bool:
    if not windows:
        return True
    day = WEEKDAYS[local_now.weekday()]
    clock = local_now.time()
    return any(day in w.days and w.start <= clock < w.end for w in windows)


def tenant_verdict(tenant: TenantRecord, door: DoorPolicy, local_now: datetime) -> Reason:
    """The reason for a known tenant, in the precedence of DESIGN §5."""
    today = local_now.date()
    if tenant.status == "revoked":
        return Reason.REVOKED
    if tenant.status == "suspended":
        return Reason.SUSPENDED
    if tenant.valid_from is not None and today < tenant.valid_from:
        return Reason.PERMIT_NOT_YET_VALID
    if today > tenant.valid_to:
        return Reason.PERMIT_EXPIRED
    if not in_schedule(door.schedule, local_now):
        return Reason.OUTSIDE_SCHEDULE
    return Reason.GRANTED


def decide_card(holders: Sequence[CardHolder], door: DoorPolicy, local_now: datetime) -> Decision:
    """Decide a card swipe at a door in `card` or `card_or_face` mode.

    `holders` are the enrolled cards the read matches (see `lookup_for_read`);
    `local_now` is the swipe time in the gateway's time zone.
    """
    if not holders:
        return Decision(False, Reason.UNKNOWN_CARD)
    if len(holders) > 1:
        return Decision(False, Reason.UNKNOWN_CARD, ambiguous=True)
    holder = holders[0]
    reason = tenant_verdict(holder.tenant, door, local_now)
    if reason is Reason.GRANTED and door.mode == "card_and_face":
        # 人证合一: the card alone never opens; without a matching face it is a timeout.
        reason = Reason.FACE_TIMEOUT
    return Decision(reason is Reason.GRANTED, reason, holder.tenant.id, holder.card_number)


def decide_face(tenant: TenantRecord | None, door: DoorPolicy, local_now: datetime) -> Decision:
    """A confirmed face track at a `face` or `card_or_face` door; None is an unknown face."""
    if tenant is None:
        return Decision(False, Reason.UNKNOWN_FACE)
    reason = tenant_verdict(tenant, door, local_now)
    return Decision(reason is Reason.GRANTED, reason, tenant.id)


def decide_card_and_face(
    holders: Sequence[CardHolder],
    faces: Sequence[FaceAtDoor],
    door: DoorPolicy,
    local_now: datetime,
    *,
    swipe_mono: float,
    now_mono: float,
    window_s: float,
) -> Decision | None:
    """人证合一: the card names the tenant, whose face must be seen within ± window_s.

    Returns None while it is still worth waiting for the face. The card's own
    refusals (unknown, revoked, expired…) come first and need no face. At the
    end of the window, another enrolled tenant's face means face_mismatch;
    no face, or only unknown ones, means face_timeout.
    """
    verdict = decide_card(holders, DoorPolicy(door.id, "card", door.schedule), local_now)
    if not verdict.granted:
        return verdict
    tenant_id = verdict.tenant_id
    in_window = [f for f in faces if f.tenant_id is not None and abs(f.mono - swipe_mono) <= window_s]
    if any(f.tenant_id == tenant_id for f in in_window):
        return verdict
    if now_mono < swipe_mono + window_s:
        return None
    others = [f.tenant_id for f in in_window if f.tenant_id != tenant_id]
    if others:
        return Decision(False, Reason.FACE_MISMATCH, tenant_id, verdict.card_number, face_tenant_id=others[-1])
    return Decision(False, Reason.FACE_TIMEOUT, tenant_id, verdict.card_number)

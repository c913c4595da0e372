"""What a card or a face does at a door of each mode, and the card-and-face wait: pure, no I/O.

The one place where a door's `mode` chooses the decision (DESIGN §5); the
card path (gateway.door_path) and the face path (gateway.vision) both ask here.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Generic, TypeVar

from drivers.events import CardPresented
from gateway.access import CardHolder, Decision, DoorPolicy, FaceAtDoor, decide_card_and_face

RECENT_FACES = 64  # per door: enough for every face within a card_and_face window


class CardStep(Enum):
    DECIDE = "decide"  # decide_card now: card, card_or_face (and face doors that have a reader)
    AWAIT_FACE = "await_face"  # card_and_face with cameras: wait for the tenant's face


class FaceStep(Enum):
    DECIDE = "decide"  # decide_face now: face, card_or_face
    PAIR_WITH_CARD = "pair_with_card"  # card_and_face: a face only completes a swipe
    NONE = "none"  # a card door: faces there open nothing


def card_step(mode: str, has_cameras: bool) -> CardStep:
    # Without cameras a card_and_face door still decides the card, which never opens it (fail secure).
    return CardStep.AWAIT_FACE if mode == "card_and_face" and has_cameras else CardStep.DECIDE


def face_step(mode: str) -> FaceStep:
    if mode in ("face", "card_or_face"):
        return FaceStep.DECIDE
    if mode == "card_and_face":
        return FaceStep.PAIR_WITH_CARD
    return FaceStep.NONE


Face = TypeVar("Face")  # what the caller keeps with each face (the FaceSeen, for its snapshot)


@dataclass(frozen=True, slots=True)
class PendingSwipe:
    """A card at a card_and_face door, waiting for its tenant's face."""

    door_id: str
    window_s: float
    event: CardPresented
    holders: Sequence[CardHolder]


@dataclass(frozen=True, slots=True)
class Settled(Generic[Face]):
    swipe: PendingSwipe
    decision: Decision
    face: Face | None  # the face that decided it (the tenant's, or the mismatching one), if any


@dataclass
class CardAndFaceWaits(Generic[Face]):
    """Swipes waiting for faces and the recent faces at each door; settled by the clock."""

    pending: list[PendingSwipe] = field(default_factory=list)
    recent: dict[str, deque[tuple[FaceAtDoor, Face]]] = field(default_factory=dict)

    def swipe(self, swipe: PendingSwipe) -> None:
        self.pending.append(swipe)

    def face(self, door_id: str, at: FaceAtDoor, face: Face) -> None:
        self.recent.setdefault(door_id, deque(maxlen=RECENT_FACES)).append((at, face))

    def settle(
        self, now_mono: float, policy_of: Callable[[str], DoorPolicy], local: Callable[[datetime], datetime]
    ) -> list[Settled[Face]]:
        """The swipes that can be decided now (and are no longer pending)."""
        settled: list[Settled[Face]] = []
        still: list[PendingSwipe] = []
        for p in self.pending:
            faces = list(self.recent.get(p.door_id, ()))
            decision = decide_card_and_face(
                p.holders,
                [at for at, _ in faces],
                policy_of(p.door_id),
                local(p.event.ts),
                swipe_mono=p.event.mono,
                now_mono=now_mono,
                window_s=p.window_s,
            )
            if decision is None:
                still.append(p)
                continue
            wanted = decision.tenant_id if decision.granted else decision.face_tenant_id
            seen = next((face for at, face in reversed(faces) if wanted and at.tenant_id == wanted), None)
            settled.append(Settled(p, decision, seen))
        self.pending = still
        return settled

"""Repeated denials at a door (DESIGN §5): a sliding window over its refusals → one alert per burst.

Pure: fed (seconds, door, card) by the door's path, no I/O. The caller feeds the monotonic clock, so
an NTP step of the wall clock neither starts nor ends a burst.

A burst starts when the door has refused `denials` times within `within_s`, or one card `per_card`
times; it raises one alert, and further refusals belong to it until the door has been quiet (no
refusal) for `within_s`. A door alerting once per burst, not once per refusal, is what an operator
can act on.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

# Refusals kept per door: the window is a count, so a flood (a fuzzer, a stuck reader) must not grow
# memory; beyond this the count in the alert's details says "at least".
MAX_KEPT = 1000


@dataclass(frozen=True, slots=True)
class DenialRule:
    denials: int  # this many refusals at the door within within_s …
    within_s: float
    per_card: int | None  # … or one card refused this many times (None: the door's count only)


@dataclass(frozen=True, slots=True)
class Burst:
    """What the alert says: why it was raised and what the window held at that moment."""

    trigger: Literal["door", "card"]
    count: int  # refusals at the door in the window, this one included
    cards: tuple[int, ...]  # the distinct cards refused in the window, ascending
    card: int | None  # the card refused per_card times (trigger "card")
    window_s: float

    def details(self) -> dict[str, Any]:
        return {"trigger": self.trigger, "count": self.count, "cards": list(self.cards), "card": self.card,
                "window_s": self.window_s}  # fmt: skip


class _DoorWindow:
    def __init__(self, rule: DenialRule) -> None:
        self.rule = rule
        self.seen: deque[tuple[float, int | None]] = deque()
        self.per_card: Counter[int] = Counter()
        self.in_burst = False

    def add(self, now: float, card: int | None) -> Burst | None:
        self._forget_before(now - self.rule.within_s)
        if not self.seen:
            self.in_burst = False  # quiet for a whole window: the last burst is over
        if len(self.seen) >= MAX_KEPT:
            self._drop_oldest()
        self.seen.append((now, card))
        if card is not None:
            self.per_card[card] += 1
        if self.in_burst:
            return None
        if len(self.seen) >= self.rule.denials:
            trigger: Literal["door", "card"] = "door"
        elif card is not None and self.rule.per_card is not None and self.per_card[card] >= self.rule.per_card:
            trigger = "card"
        else:
            return None
        self.in_burst = True
        return Burst(trigger, len(self.seen), tuple(sorted(self.per_card)), card if trigger == "card" else None,
                     self.rule.within_s)  # fmt: skip

    def _forget_before(self, oldest: float) -> None:
        # A clock fed backwards (it should not be: monotonic) only keeps entries longer, never loses count.
        while self.seen and self.seen[0][0] < oldest:
            self._drop_oldest()

    def _drop_oldest(self) -> None:
        _, card = self.seen.popleft()
        if card is not None:
            self.per_card[card] -= 1
            if self.per_card[card] <= 0:
                del self.per_card[card]


class DenialCounter:
    """One sliding window per watched door; doors without a rule are not counted."""

    def __init__(self, rules: Mapping[str, DenialRule]) -> None:
        self._doors = {door: _DoorWindow(rule) for door, rule in rules.items()}

    def denied(self, now: float, door: str, card: int | None) -> Burst | None:
        """A refusal at `door` (of `card`, or None for a face): the burst it starts, if it starts one."""
        window = self._doors.get(door)
        return None if window is None else window.add(now, card)

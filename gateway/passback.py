"""Anti-passback: a tenant who went in at a door cannot go in again before going out (pure, no I/O).

A door with `readers: {in, out}` knows, per tenant, whether the last read there
was an entry or an exit (kept in the store: gateway.store.presence). Everyone
counts as out again at `reset_at` each day (local time in the gateway's zone).

The reset compares *periods*, not elapsed time: a presence counts only when it
was recorded in the same period (the time since the latest `reset_at`) as the
read being decided. A clock stepped forward past `reset_at` starts a new period
(everyone out, as if the reset had passed); one stepped back before it starts
another (everyone out again, never stuck in): a tenant is never kept in past the
next `reset_at` on whatever the clock says.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum

from gateway.access import CardHolder, Decision, Reason


class Mode(StrEnum):
    OFF = "off"
    SOFT = "soft"  # let in, raise an anti_passback alert
    HARD = "hard"  # refuse with reason anti_passback


class Direction(StrEnum):
    IN = "in"
    OUT = "out"


@dataclass(frozen=True, slots=True)
class PassbackRule:
    mode: Mode
    reset_at: time  # local wall-clock time


@dataclass(frozen=True, slots=True)
class Presence:
    """A tenant's last passage at a door, as stored."""

    inside: bool
    period: datetime  # start of the period it was recorded in (aware, UTC)


@dataclass(frozen=True, slots=True)
class Checked:
    """What anti-passback made of an entry decision."""

    decision: Decision
    alert: bool = False  # soft mode let a tenant in who was already in
    direction: Direction | None = None  # the passage to store, if any (granted with a tenant)


def period_start(local_now: datetime, reset_at: time) -> datetime:
    """The latest `reset_at` at or before `local_now` (an aware local time), in UTC."""
    zone = local_now.tzinfo
    if zone is None:
        raise ValueError("local_now must be timezone-aware")
    today = datetime.combine(local_now.date(), reset_at, tzinfo=zone)
    start = today if today <= local_now else datetime.combine(local_now.date() - timedelta(days=1), reset_at, zone)
    return start.astimezone(UTC)


def is_inside(presence: Presence | None, rule: PassbackRule, local_now: datetime) -> bool:
    return presence is not None and presence.inside and presence.period == period_start(local_now, rule.reset_at)


def check_entry(decision: Decision, presence: Presence | None, rule: PassbackRule, local_now: datetime) -> Checked:
    """An entry (the `in` reader, or a face at the door) after the roster's decision.

    Applied only to a grant, so anti_passback comes after every other refusal
    (DESIGN §5 precedence: … > outside_schedule > anti_passback).
    """
    if rule.mode is Mode.OFF or not decision.granted or decision.tenant_id is None:
        return Checked(decision)
    if not is_inside(presence, rule, local_now):
        return Checked(decision, direction=Direction.IN)
    if rule.mode is Mode.HARD:
        return Checked(replace(decision, granted=False, reason=Reason.ANTI_PASSBACK))
    return Checked(decision, alert=True, direction=Direction.IN)


def decide_exit(holders: Sequence[CardHolder]) -> Decision:
    """A read on the `out` reader: any enrolled tenant is let out, whatever their status or hours.

    Keeping someone inside is a safety matter, not access control: a revoked,
    expired or off-hours tenant who is inside must be able to leave (the entry
    log still names them). An unknown (or ambiguous 26-bit) card does not open
    from inside: nobody can be let out by name, the read is kept as evidence of
    someone who came in without a card of this building, and the exit button or
    the lever handle (free egress) is still there.
    """
    if len(holders) != 1:
        return Decision(False, Reason.UNKNOWN_CARD, ambiguous=len(holders) > 1)
    holder = holders[0]
    return Decision(True, Reason.GRANTED, holder.tenant.id, holder.card_number)


def check_passage(
    decision: Decision, direction: Direction, presence: Presence | None, rule: PassbackRule, local_now: datetime
) -> Checked:
    """An entry or an exit at an anti-passback door; `presence` matters only for entries."""
    if direction is Direction.IN:
        return check_entry(decision, presence, rule, local_now)
    moved = rule.mode is not Mode.OFF and decision.granted and decision.tenant_id is not None
    return Checked(decision, direction=Direction.OUT if moved else None)

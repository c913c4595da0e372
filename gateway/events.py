"""Typed events that drivers hand to the gateway.

Drivers translate bytes into these and never decide; the gateway decides.
Every event records when it was observed: `ts` (wall clock, UTC) for the
entry log and `mono` (time.monotonic) for latency measurements.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class CardPresented:
    """A card frame that passed every framing and parity check."""

    reader: str
    card_number: int
    card_bits: int  # 26 or 34 for Wiegand, 40 for rdm6300
    ts: datetime = field(default_factory=_utcnow)
    mono: float = field(default_factory=time.monotonic)


@dataclass(frozen=True, slots=True)
class BadFrame:
    """A frame rejected by the framer: counted and logged, never decided on."""

    reader: str
    kind: str  # "parity", "length", "checksum", "garbage", "overlong"
    detail: str
    ts: datetime = field(default_factory=_utcnow)


@dataclass(frozen=True, slots=True)
class ReaderStatus:
    reader: str
    online: bool
    error: str | None = None
    ts: datetime = field(default_factory=_utcnow)


@dataclass(frozen=True, slots=True)
class DoorInput:
    """A change of one discrete input of an I/O module."""

    io: str
    input: int
    active: bool
    ts: datetime = field(default_factory=_utcnow)


@dataclass(frozen=True, slots=True)
class IoStatus:
    io: str
    online: bool
    error: str | None = None
    ts: datetime = field(default_factory=_utcnow)


DriverEvent = CardPresented | BadFrame | ReaderStatus | DoorInput | IoStatus

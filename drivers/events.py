"""Typed events that drivers hand to the gateway.

Drivers translate bytes into these and never decide; the gateway decides.
Every event records when it was observed: `ts` (wall clock, UTC) for the
entry log and `mono` (time.monotonic) for latency measurements.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


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
class ReaderTamper:
    """A reader reports its tamper switch (OSDP local status): `active` while it is opened or pulled off the wall."""

    reader: str
    active: bool
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


@dataclass(frozen=True, slots=True)
class CameraStatus:
    """A camera's stream started or stopped delivering frames."""

    camera: str
    online: bool
    error: str | None = None
    ts: datetime = field(default_factory=_utcnow)


@dataclass(frozen=True, slots=True)
class FaceSeen:
    """One face in one analysed frame, with what its track has established so far.

    Emitted by recognition/ for every face of every analysed frame. The gateway
    applies policy (one decision per track and door, stranger alerts).
    """

    camera: str
    track_id: int  # unique per camera while the process runs
    tenant_id: str | None  # the track's identity once confirmed, else None (unknown so far)
    confirmed: bool  # the mean template of >= min_frames frames of this track matches tenant_id
    distance: float | None  # this frame's distance to tenant_id's nearest template (None if unknown)
    track_age_s: float  # seconds from the track's first frame to this frame
    box: tuple[int, int, int, int]  # top, right, bottom, left in full-frame pixels
    frame_ts: datetime  # when the frame was captured (UTC)
    frame_mono: float  # time.monotonic() when the frame was captured
    frame: Any = field(default=None, repr=False, compare=False)  # the BGR frame (numpy), for snapshots
    mono: float = field(default_factory=time.monotonic)
    watch_id: str | None = None  # the town watch-list entry the track matched, if any (never a tenant)
    watch_distance: float | None = None


DriverEvent = CardPresented | BadFrame | ReaderStatus | ReaderTamper | DoorInput | IoStatus | CameraStatus

"""The entry log and alerts, each written with its outbox row in one transaction."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select
from sqlalchemy.orm import Session
from ulid import ULID

from gateway.store.models import Alert, OutboxItem
from sync import topics


def rfc3339(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class EntryDraft:
    ts: datetime
    door: str
    method: str  # card / face / card_and_face / remote / exit_button
    decision: str  # granted / denied
    reason: str
    reader: str | None = None
    card_number: int | None = None
    card_bits: int | None = None
    tenant_id: str | None = None
    face_distance: float | None = None
    camera: str | None = None
    snapshot: str | None = None
    details: dict[str, Any] | None = None
    direction: str | None = None  # "in" / "out" at a door with entry and exit readers (anti-passback)


@dataclass(frozen=True, slots=True)
class AlertDraft:
    ts: datetime
    kind: str
    state: str  # raised / cleared
    severity: str  # info / warning / critical
    door: str | None = None
    camera: str | None = None
    tenant_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    snapshot: str | None = None


# The door's hot path (an entry and its outbox row) is written with plain SQL
# through the engine's connection: the ORM's and even Core's per-statement
# Python work cost more than SQLite itself (bench/card_latency.py). Column
# formats match what the SQLAlchemy models read back (tests/gateway/test_store).
_ALERTS = Alert.__table__
_INSERT_OUTBOX = "INSERT INTO outbox (topic, payload, created_at) VALUES (?, ?, ?)"
_INSERT_ENTRY = (
    "INSERT INTO entries (id, seq, ts, door, method, reader, card_number, card_bits, tenant_id, decision, reason,"
    " face_distance, camera, snapshot, details, direction) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _connection(db: Session | Connection) -> Connection:
    return db.connection() if isinstance(db, Session) else db


def _sql_time(ts: datetime) -> str:
    """The text SQLAlchemy's SQLite DateTime stores: naive UTC with microseconds."""
    return ts.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def enqueue(db: Session | Connection, topic: str, payload: dict[str, Any], now: datetime) -> int:
    """Add an outbox row; returns its seq (SQLite AUTOINCREMENT)."""
    body = json.dumps(payload, separators=(",", ":"))
    result = _connection(db).exec_driver_sql(_INSERT_OUTBOX, (topic, body, _sql_time(now)))
    return int(result.lastrowid)


def entry_payload(entry_id: str, gateway_id: str, d: EntryDraft) -> dict[str, Any]:
    """The …/events/entry payload of DESIGN §6, without `seq` (added on publish)."""
    return {
        "id": entry_id,
        "ts": rfc3339(d.ts),
        "gateway_id": gateway_id,
        "door": d.door,
        "method": d.method,
        "card_number": d.card_number,
        "card_bits": d.card_bits,
        "tenant_id": d.tenant_id,
        "decision": d.decision,
        "reason": d.reason,
        "face_distance": d.face_distance,
        "camera": d.camera,
        "snapshot": d.snapshot,
        "direction": d.direction,
    }


def alert_payload(alert_id: str, gateway_id: str, d: AlertDraft) -> dict[str, Any]:
    return {
        "id": alert_id,
        "ts": rfc3339(d.ts),
        "gateway_id": gateway_id,
        "kind": d.kind,
        "state": d.state,
        "severity": d.severity,
        "door": d.door,
        "camera": d.camera,
        "tenant_id": d.tenant_id,
        "details": d.details,
        "snapshot": d.snapshot,
    }


@dataclass(frozen=True, slots=True)
class Recorded:
    id: str
    seq: int


def new_event_id(ts: datetime) -> str:
    """A ULID: sortable by time, unique without coordination."""
    return str(ULID.from_datetime(ts))


def record_entry(db: Session | Connection, gateway_id: str, draft: EntryDraft, entry_id: str | None = None) -> Recorded:
    """Add the entry and its outbox row; the caller commits both at once."""
    entry_id = entry_id or new_event_id(draft.ts)
    seq = enqueue(db, topics.ENTRY, entry_payload(entry_id, gateway_id, draft), draft.ts)
    d = draft
    row = (
        entry_id,
        seq,
        _sql_time(d.ts),
        d.door,
        d.method,
        d.reader,
        d.card_number,
        d.card_bits,
        d.tenant_id,
        d.decision,
        d.reason,
        d.face_distance,
        d.camera,
        d.snapshot,
        None if d.details is None else json.dumps(d.details),
        d.direction,
    )
    _connection(db).exec_driver_sql(_INSERT_ENTRY, row)
    return Recorded(entry_id, seq)


def record_alert(db: Session | Connection, gateway_id: str, draft: AlertDraft, alert_id: str | None = None) -> Recorded:
    alert_id = alert_id or new_event_id(draft.ts)
    seq = enqueue(db, topics.ALERT, alert_payload(alert_id, gateway_id, draft), draft.ts)
    values = dict(
        id=alert_id,
        seq=seq,
        ts=draft.ts,
        kind=draft.kind,
        state=draft.state,
        severity=draft.severity,
        door=draft.door,
        camera=draft.camera,
        tenant_id=draft.tenant_id,
        details=draft.details,
        snapshot=draft.snapshot,
        acknowledged_at=None,
        acknowledged_by=None,
    )
    db.execute(insert(_ALERTS).values(**values))
    return Recorded(alert_id, seq)


def request_snapshot(db: Session | Connection, gateway_id: str, version: int, reason: str, now: datetime) -> bool:
    """Queue an `events/roster_request` (DESIGN §6.1) unless one is still waiting in the outbox; True if queued."""
    waiting = (
        _connection(db)
        .exec_driver_sql("SELECT 1 FROM outbox WHERE topic = ? LIMIT 1", (topics.ROSTER_REQUEST,))
        .first()
    )
    if waiting is not None:
        return False
    payload = {"id": new_event_id(now), "ts": rfc3339(now), "gateway_id": gateway_id, "version": version,
               "reason": reason}  # fmt: skip
    enqueue(db, topics.ROSTER_REQUEST, payload, now)
    return True


@dataclass(frozen=True, slots=True)
class PendingEvent:
    seq: int
    topic: str
    payload: str  # JSON with "seq" filled in


class SqlOutbox:
    """The store side of the outbox, as `sync.outbox.OutboxStore` expects it."""

    def __init__(self, sessions: Any) -> None:  # sessionmaker[Session]
        self._sessions = sessions

    def pending(self, after_seq: int, limit: int) -> list[PendingEvent]:
        with self._sessions() as s:
            rows = s.execute(
                select(OutboxItem.seq, OutboxItem.topic, OutboxItem.payload)
                .where(OutboxItem.seq > after_seq)
                .order_by(OutboxItem.seq)
                .limit(limit)
            ).all()
        # Splice seq into the stored JSON object rather than re-encoding it.
        return [PendingEvent(seq, topic, f'{{"seq":{seq},{payload[1:]}') for seq, topic, payload in rows]

    def remove(self, seqs: list[int]) -> None:
        with self._sessions.begin() as s:
            s.execute(delete(OutboxItem).where(OutboxItem.seq.in_(seqs)))

    def depth(self) -> int:
        with self._sessions() as s:
            return s.scalar(select(func.count()).select_from(OutboxItem)) or 0

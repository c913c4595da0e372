"""Roster changes made at the building, up to the town (DESIGN §6.1 "Up").

Each change queues one `events/roster` outbox row in the caller's transaction, so it commits with the
change or not at all and leaves like an entry (at least once, in `seq` order, across outages and
restarts). The row carries the tenant's whole record as it stands after the change, in the field
names of the platform's own patches, so the platform replaces its copy of that tenant (cards and
templates included) and ordering by `seq` is all it needs:

    {"id", "seq", "ts", "gateway_id", "change": "tenant.create", "by": "admin name", "tenant_id": "T1",
     "tenant": {"id", "name", "permit", "valid_from", "valid_to", "room", "status", "watchlist",
                "cards": [305419896], "templates": [{"id", "vector", "quality", "photo_sha256"}]}}

`"tenant": null` means the tenant was deleted here. Templates travel as base64 of 128 little-endian
float32, never as photos. Changes applied from the platform's own patches and snapshots do not come
back up (they are written by `gateway.store.roster_sync`, which never calls this).
"""

from __future__ import annotations

import base64
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.orm import Session
from ulid import ULID

from gateway.store.journal import enqueue, new_event_id, rfc3339
from sync import topics


def _conn(db: Session | Connection) -> Connection:
    return db.connection() if isinstance(db, Session) else db


def new_template_id() -> str:
    """A town-wide id for a template enrolled here: the platform echoes it back in its patches."""
    return f"F{ULID()}"


def _day(value: Any) -> str | None:
    if value is None:
        return None
    return value.isoformat() if isinstance(value, date) else str(value)


def tenant_record(db: Session | Connection, tenant_id: str) -> dict[str, Any] | None:
    """The tenant's whole record as the platform's patches spell it; None if there is no such tenant."""
    conn = _conn(db)
    row = conn.exec_driver_sql(
        "SELECT id, name, permit_number, valid_from, valid_to, room, status, watchlist FROM tenants WHERE id = ?",
        (tenant_id,),
    ).first()
    if row is None:
        return None
    cards = [n for (n,) in conn.exec_driver_sql(
        "SELECT number FROM cards WHERE tenant_id = ? ORDER BY number", (tenant_id,))]  # fmt: skip
    unnamed = conn.exec_driver_sql(
        "SELECT id FROM face_templates WHERE tenant_id = ? AND platform_id IS NULL", (tenant_id,)
    ).all()
    for (local_id,) in unnamed:  # enrolled before templates got town-wide ids
        conn.exec_driver_sql("UPDATE face_templates SET platform_id = ? WHERE id = ?", (new_template_id(), local_id))
    templates = [
        {"id": pid, "vector": base64.b64encode(bytes(emb)).decode("ascii"), "quality": quality,
         "photo_sha256": sha}  # fmt: skip
        for pid, emb, quality, sha in conn.exec_driver_sql(
            "SELECT platform_id, embedding, quality, photo_sha256 FROM face_templates WHERE tenant_id = ? ORDER BY id",
            (tenant_id,),
        )
    ]
    tid, name, permit, valid_from, valid_to, room, status, watchlist = row
    return {"id": tid, "name": name, "permit": permit, "valid_from": _day(valid_from), "valid_to": _day(valid_to),
            "room": room, "status": status, "watchlist": bool(watchlist), "cards": cards,
            "templates": templates}  # fmt: skip


def queue_roster_change(
    db: Session | Connection, gateway_id: str, tenant_id: str, change: str, by: str, now: datetime | None = None
) -> int:
    """Queue the tenant's record after `change` (e.g. "card.bind") by `by`; returns the outbox seq.

    Call it after the change, in the same transaction (an ORM session is flushed first so the
    record read here is the one being committed).
    """
    if isinstance(db, Session):
        db.flush()
    now = now or datetime.now(UTC)
    payload = {"id": new_event_id(now), "ts": rfc3339(now), "gateway_id": gateway_id, "change": change, "by": by,
               "tenant_id": tenant_id, "tenant": tenant_record(db, tenant_id)}  # fmt: skip
    return enqueue(db, topics.ROSTER, payload, now)

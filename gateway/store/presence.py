"""Who is inside, per anti-passback door (gateway.passback): read and written in the door's transaction.

Plain SQL on the door's hot path, like the entry itself (gateway.store.journal).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Connection

from gateway.passback import Direction, Presence
from gateway.store.journal import _sql_time

_SELECT = "SELECT inside, period FROM presence WHERE door = ? AND tenant_id = ?"
_UPSERT = (
    "INSERT INTO presence (door, tenant_id, inside, period, at) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT(door, tenant_id) DO UPDATE SET inside = excluded.inside, period = excluded.period, at = excluded.at"
)


def presence_of(conn: Connection, door: str, tenant_id: str) -> Presence | None:
    row = conn.exec_driver_sql(_SELECT, (door, tenant_id)).first()
    if row is None:
        return None
    return Presence(bool(row[0]), datetime.fromisoformat(row[1]).replace(tzinfo=UTC))


def record_passage(
    conn: Connection, door: str, tenant_id: str, direction: Direction, period: datetime, at: datetime
) -> None:
    """The tenant went in or out at `door` at `at`, in the reset period starting at `period`."""
    conn.exec_driver_sql(_UPSERT, (door, tenant_id, direction is Direction.IN, _sql_time(period), _sql_time(at)))

"""Fill a gateway store with a large roster, fast (one executemany per table)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert

from gateway.store.db import open_store
from gateway.store.models import Card, Tenant
from sync.roster_messages import MAX_MESSAGE, snapshot_messages  # one builder, shared with the town

__all__ = ["MAX_MESSAGE", "card_number", "fill_roster", "snapshot_messages"]


def card_number(i: int) -> int:
    # Spread over 32 bits, distinct low 24 bits, so 26-bit reads stay unambiguous too.
    return ((i * 2654435761) & 0xFF000000) | (i + 1)


def fill_roster(data_dir: Path, tenants: int) -> list[int]:
    engine, sessions = open_store(data_dir)
    now = datetime.now(UTC)
    today = date.today()
    numbers = [card_number(i) for i in range(tenants)]
    with sessions.begin() as s:
        s.execute(
            insert(Tenant),
            [
                {
                    "id": f"t{i:06d}",
                    "name": f"Tenant {i}",
                    "permit_number": f"P{i:09d}",
                    "valid_from": today - timedelta(days=30),
                    "valid_to": today + timedelta(days=365),
                    "room": f"{i % 40 + 1}{i % 20:02d}",
                    "status": "active",
                    "watchlist": False,
                    "created_at": now,
                    "updated_at": now,
                }
                for i in range(tenants)
            ],
        )
        s.execute(
            insert(Card),
            [
                {"number": n, "low24": n & 0xFFFFFF, "tenant_id": f"t{i:06d}", "created_at": now}
                for i, n in enumerate(numbers)
            ],
        )
    with engine.connect() as conn:  # the gateway starts on a settled database, not a 20 MB WAL to checkpoint
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return numbers

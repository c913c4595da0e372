"""Fill a gateway store with a large roster, fast (one executemany per table)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from gateway.store.db import open_store
from gateway.store.models import Card, Tenant
from sync.signing import sign


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


MAX_MESSAGE = 200_000  # DESIGN §6.1: a snapshot chunk is at most 200 KB
ENVELOPE = 400  # transaction, issued_at, version, snapshot_id, chunk, chunks, sig


def _compact(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def snapshot_messages(key: Any, version: int, ops: Iterable[dict[str, Any]]) -> list[bytes]:
    """A signed `roster/snapshot` as the platform sends it: ops packed into chunks of at most MAX_MESSAGE bytes."""
    chunks: list[list[dict[str, Any]]] = [[]]
    size = ENVELOPE
    for op in ops:
        n = len(_compact(op).encode()) + 1
        if size + n > MAX_MESSAGE:
            chunks.append([])
            size = ENVELOPE
        chunks[-1].append(op)
        size += n
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    return [_compact(sign({"transaction": f"s{version}-{i}", "issued_at": now, "version": version,
                           "snapshot_id": f"snap-{version}", "chunk": i, "chunks": len(chunks), "ops": c},
                          key)).encode() for i, c in enumerate(chunks)]  # fmt: skip

"""WAL checkpoints in the background, so that no commit on the door's path runs one (db.py turns
SQLite's automatic checkpoints off)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy import Engine

log = logging.getLogger(__name__)

# Every 10 s, not every second: each checkpoint fsyncs the database file, and under load those fsyncs
# collided with the doors' commits (decision p99 20 ms at 1 s, 8.5 ms at 10 s; bench/door_under_load).
CHECKPOINT_EVERY_S = 10.0


def checkpoint(engine: Engine) -> tuple[int, int, int]:
    """PASSIVE: copies what no reader still needs, never waits for readers or blocks writers.

    Returns SQLite's (busy, WAL frames, frames checkpointed)."""
    with engine.connect() as conn:
        row = conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
    return int(row[0]), int(row[1]), int(row[2])


async def checkpoint_loop(engine: Engine, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            await asyncio.to_thread(checkpoint, engine)
        except Exception:
            log.exception("WAL checkpoint failed; will try again")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), CHECKPOINT_EVERY_S)

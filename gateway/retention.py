"""Retention: entries, alerts and snapshots older than configured are removed, with an audit row."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from config.models import RetentionConfig
from gateway.snapshots import SnapshotStore
from gateway.store.audit import audit
from gateway.store.models import Alert, Entry

BATCH_ROWS = 2000  # one batch holds SQLite's write lock for milliseconds, never a door's whole budget
PAUSE_S = 0.02  # between batches the door's commits go first


def delete_before(sessions: sessionmaker[Session], model: type[Entry] | type[Alert], before: datetime) -> int:
    """Delete rows older than `before` in small transactions; returns how many went."""
    total = 0
    while True:
        with sessions.begin() as s:
            batch = select(model.id).where(model.ts < before).limit(BATCH_ROWS).scalar_subquery()
            removed = s.execute(delete(model).where(model.id.in_(batch))).rowcount
        total += removed
        if removed < BATCH_ROWS:
            return total
        time.sleep(PAUSE_S)


def prune(sessions: sessionmaker[Session], snapshots: SnapshotStore, cfg: RetentionConfig, now: datetime) -> dict:
    """Remove what is past retention; returns (and audits) what was removed."""
    entries_before = now - timedelta(days=cfg.entries_days)
    snapshots_before = (now - timedelta(days=cfg.snapshots_days)).date()
    entries = delete_before(sessions, Entry, entries_before)
    alerts = delete_before(sessions, Alert, entries_before)
    folders, files = snapshots.prune_before(snapshots_before)
    with sessions.begin() as s:
        removed = {
            "entries": entries,
            "alerts": alerts,
            "snapshot_days": folders,
            "snapshots": files,
            "entries_before": entries_before.isoformat(timespec="seconds"),
            "snapshots_before": snapshots_before.isoformat(),
        }
        audit(s, "system", "retention.prune", removed, rows=entries + alerts + files)
    return removed

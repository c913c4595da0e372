"""Retention: entries, alerts and snapshots older than configured are removed, with an audit row."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.orm import Session, sessionmaker

from config.models import RetentionConfig
from gateway.snapshots import SnapshotStore
from gateway.store.audit import audit
from gateway.store.models import Alert, Entry


def prune(sessions: sessionmaker[Session], snapshots: SnapshotStore, cfg: RetentionConfig, now: datetime) -> dict:
    """Remove what is past retention; returns (and audits) what was removed."""
    entries_before = now - timedelta(days=cfg.entries_days)
    snapshots_before = (now - timedelta(days=cfg.snapshots_days)).date()
    with sessions.begin() as s:
        entries = s.execute(delete(Entry).where(Entry.ts < entries_before)).rowcount
        alerts = s.execute(delete(Alert).where(Alert.ts < entries_before)).rowcount
        folders, files = snapshots.prune_before(snapshots_before)
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

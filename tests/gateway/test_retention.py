"""Retention removes old entries, alerts and snapshot days, and audits what it removed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from config.models import RetentionConfig
from gateway.retention import prune
from gateway.snapshots import SnapshotStore
from gateway.store.db import open_store
from gateway.store.journal import AlertDraft, EntryDraft, record_alert, record_entry
from gateway.store.models import AuditLog, Entry


def test_prune(tmp_path: Path) -> None:
    _, sessions = open_store(tmp_path)
    snaps = SnapshotStore(tmp_path)
    now = datetime(2026, 11, 23, 12, tzinfo=UTC)
    with sessions.begin() as s:
        for days in (400, 366, 364, 1):
            ts = now - timedelta(days=days)
            e = record_entry(s, "gw", EntryDraft(ts, "main", "face", "granted", "granted"))
            snaps.save("entries", e.id, ts, b"\xff\xd8jpeg")
        record_alert(s, "gw", AlertDraft(now - timedelta(days=500), "stranger", "raised", "warning"))
    removed = prune(sessions, snaps, RetentionConfig(entries_days=365, snapshots_days=30), now)
    assert (removed["entries"], removed["alerts"], removed["snapshots"]) == (2, 1, 3)
    with sessions() as s:
        left = [e.ts for e in s.scalars(select(Entry))]
        assert sorted(left) == [now - timedelta(days=364), now - timedelta(days=1)]
        row = s.scalars(select(AuditLog).where(AuditLog.action == "retention.prune")).one()
        assert row.rows == 6 and row.details["entries"] == 2 and row.actor == "system"
    assert len(list(snaps.root.glob("*/*.jpg"))) == 1


def test_prune_deletes_in_small_transactions(tmp_path: Path, monkeypatch) -> None:
    """A large backlog goes in batches, so that a door's commit never waits for the whole delete."""
    import gateway.retention as retention

    monkeypatch.setattr(retention, "BATCH_ROWS", 7)
    monkeypatch.setattr(retention, "PAUSE_S", 0)
    _, sessions = open_store(tmp_path)
    now = datetime(2026, 11, 23, 12, tzinfo=UTC)
    with sessions.begin() as s:
        for i in range(30):
            ts = now - timedelta(days=400, minutes=i)
            record_entry(s, "gw", EntryDraft(ts, "main", "card", "granted", "granted"))
    transactions = []
    real_begin = sessions.begin
    monkeypatch.setattr(sessions, "begin", lambda: transactions.append(1) or real_begin())
    removed = prune(sessions, SnapshotStore(tmp_path), RetentionConfig(entries_days=365, snapshots_days=30), now)
    assert removed["entries"] == 30
    assert len(transactions) >= 30 // 7 + 1

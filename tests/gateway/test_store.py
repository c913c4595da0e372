"""The SQLite store: migrations, roster rules, entry + outbox atomicity."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import func, inspect, select

from gateway.store.db import alembic_config, open_store
from gateway.store.journal import AlertDraft, EntryDraft, SqlOutbox, record_alert, record_entry
from gateway.store.models import Entry, OutboxItem
from gateway.store.roster import NewTenant, RosterError, add_card, add_tenant, holders_for_read, remove_card


def new_tenant(tid: str = "t1", permit: str = "P1") -> NewTenant:
    return NewTenant(tid, "Li Lei", permit, date(2027, 1, 1))


def test_migrations_create_every_table_in_wal_mode(tmp_path: Path) -> None:
    engine, _ = open_store(tmp_path)
    names = set(inspect(engine).get_table_names())
    assert {"tenants", "cards", "entries", "alerts", "outbox", "roster_meta", "audit_log"} <= names
    with engine.connect() as c:
        assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    command.check(alembic_config(engine))  # models and migrations agree


def test_roster_rules(tmp_path: Path) -> None:
    _, sessions = open_store(tmp_path)
    with sessions.begin() as s:
        add_tenant(s, new_tenant())
        add_card(s, "t1", 0x12345678)
    with sessions.begin() as s, pytest.raises(RosterError, match="already exists"):
        add_tenant(s, new_tenant())
    with sessions.begin() as s, pytest.raises(RosterError, match="permit number"):
        add_tenant(s, new_tenant("t2", "P1"))
    with sessions.begin() as s, pytest.raises(RosterError, match="already enrolled"):
        add_card(s, "t1", 0x12345678)
    with sessions.begin() as s, pytest.raises(RosterError, match="unknown tenant"):
        add_card(s, "nobody", 5)
    with sessions.begin() as s, pytest.raises(RosterError, match="32-bit"):
        add_card(s, "t1", 1 << 32)
    with sessions.begin() as s, pytest.raises(RosterError, match="after valid-to"):
        add_tenant(s, NewTenant("t3", "X", "P3", date(2026, 1, 1), date(2026, 2, 1)))
    with sessions.begin() as s, pytest.raises(RosterError, match="not enrolled"):
        remove_card(s, 999)


def test_26_bit_reads_match_low_24_bits(tmp_path: Path) -> None:
    _, sessions = open_store(tmp_path)
    with sessions.begin() as s:
        add_tenant(s, new_tenant())
        add_tenant(s, new_tenant("t2", "P2"))
        add_card(s, "t1", 0x12345678)
        add_card(s, "t2", 0x00ABCDEF)
        add_card(s, "t2", 0x77ABCDEF)  # same low 24 bits as the card above
    with sessions() as s:
        assert [h.tenant.id for h in holders_for_read(s, 0x345678, 26)] == ["t1"]
        assert holders_for_read(s, 0x345678, 34) == []
        assert [h.card_number for h in holders_for_read(s, 0x12345678, 34)] == [0x12345678]
        assert len(holders_for_read(s, 0xABCDEF, 26)) == 2  # ambiguous


def test_entry_and_outbox_commit_together_and_seq_never_reused(tmp_path: Path) -> None:
    _, sessions = open_store(tmp_path)
    draft = EntryDraft(datetime.now(UTC), "main", "card", "denied", "unknown_card", card_number=7, card_bits=34)
    with sessions.begin() as s:
        e1 = record_entry(s, "gw", draft)
        a1 = record_alert(s, "gw", AlertDraft(datetime.now(UTC), "door_forced", "raised", "critical", door="main"))
    assert (e1.seq, a1.seq) == (1, 2)
    with pytest.raises(RuntimeError), sessions.begin() as s:
        record_entry(s, "gw", draft)
        raise RuntimeError("power cut before commit")
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Entry)) == 1
        assert s.scalar(select(func.count()).select_from(OutboxItem)) == 2
    outbox = SqlOutbox(sessions)
    pending = outbox.pending(0, 10)
    body = json.loads(pending[0].payload)
    assert body["seq"] == 1 and body["id"] == e1.id and body["reason"] == "unknown_card"
    assert set(body) == {
        "id",
        "seq",
        "ts",
        "gateway_id",
        "door",
        "method",
        "card_number",
        "card_bits",
        "tenant_id",
        "decision",
        "reason",
        "face_distance",
        "camera",
        "snapshot",
        "direction",
    }
    outbox.remove([1, 2])
    with sessions.begin() as s:
        e3 = record_entry(s, "gw", draft)
    assert e3.seq > 2  # AUTOINCREMENT: a deleted seq is never handed out again


def test_hot_path_rows_read_back_through_the_models(tmp_path: Path) -> None:
    _, sessions = open_store(tmp_path)
    ts = datetime(2026, 11, 23, 8, 30, 0, 0, tzinfo=UTC)  # zero microseconds: the format must still hold them
    draft = EntryDraft(
        ts,
        "main",
        "card",
        "denied",
        "unknown_card",
        reader="r1",
        card_number=0xABCDEF,
        card_bits=26,
        details={"ambiguous": True, "matches": 2},
    )
    with sessions.begin() as s:
        rec = record_entry(s, "gw", draft)
    with sessions() as s:
        row = s.get(Entry, rec.id)
        assert row is not None
        assert (row.ts, row.seq, row.card_number, row.card_bits, row.details) == (
            ts,
            rec.seq,
            0xABCDEF,
            26,
            {"ambiguous": True, "matches": 2},
        )
        newer = s.scalars(select(Entry).where(Entry.ts >= datetime(2026, 11, 23, 8, 0, tzinfo=UTC))).all()
        assert [e.id for e in newer] == [rec.id]  # time filters compare correctly with ORM-written bounds


def test_revoking_drops_templates_from_the_index_source_and_counts_a_change(tmp_path: Path) -> None:
    from gateway.store.roster import (
        add_face_templates,
        change_counter,
        delete_face_templates,
        face_templates_of_matchable_tenants,
        set_status,
    )

    _, sessions = open_store(tmp_path)
    with sessions.begin() as s:
        add_tenant(s, new_tenant())
        add_tenant(s, new_tenant("t2", "P2"))
        add_face_templates(s, "t1", [(bytes(512), 0.9, "a" * 64)])
        add_face_templates(s, "t2", [(bytes(512), 0.9, "b" * 64)] * 2)
    with sessions() as s:
        before = change_counter(s)
        assert [t for t, _ in face_templates_of_matchable_tenants(s)] == ["t1", "t2", "t2"]
    with sessions.begin() as s:
        set_status(s, "t2", "revoked")
    with sessions() as s:
        assert change_counter(s) > before  # a running gateway reloads its index on this
        assert [t for t, _ in face_templates_of_matchable_tenants(s)] == ["t1"]
    with sessions.begin() as s:
        assert delete_face_templates(s, "t1") == 1
    with sessions() as s:
        assert face_templates_of_matchable_tenants(s) == []

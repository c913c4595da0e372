"""A full disk under the gateway (issue 13 item 4): its data_dir on a small tmpfs that a filler file fills.

The doors keep deciding (a granted card still pulses the relay, a refused one does not), the outbox
stops growing and `storage_full` is raised, nothing corrupts, and when space returns the entries
decided meanwhile are written in order, delivered, and the alert cleared.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from gateway import journal_writer
from gateway.journal_writer import JournalWriter
from gateway.store.db import database_path, open_store
from gateway.store.journal import EntryDraft
from testing.peers import Mosquitto, wait_until
from testing.tmpfs import can_mount, fill_up, small_tmpfs
from tests.gateway.rig import Rig

pytestmark = pytest.mark.skipif(not can_mount(), reason="mounting a tmpfs needs root (CI runs as root)")

TODAY = date.today()
GRANTED, REFUSED = 0x0A0B0C0D, 0x0BADCAFE


@pytest.fixture
def full_able(tmp_path: Path) -> Iterator[Path]:
    """A data_dir on its own 8 MB tmpfs."""
    with small_tmpfs(tmp_path / "data", "8m") as data:
        yield data


def counts(data_dir: Path) -> tuple[int, int]:
    """(entries, outbox rows) as the database file says, read by a connection of our own."""
    with sqlite3.connect(database_path(data_dir), timeout=5) as db:
        entries = db.execute("SELECT count(*) FROM entries").fetchone()[0]
        outbox = db.execute("SELECT count(*) FROM outbox").fetchone()[0]
    db.close()
    return entries, outbox


def truncate_wal(data_dir: Path) -> int:
    """Checkpoint the WAL into the database and truncate it; returns SQLite's busy flag (0: done)."""
    db = sqlite3.connect(database_path(data_dir), timeout=5)
    try:
        return db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
    finally:
        db.close()


def integrity(data_dir: Path) -> str:
    db = sqlite3.connect(database_path(data_dir), timeout=5)
    try:
        return db.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        db.close()


def lock_writes(rig: Rig) -> list[bool]:
    """The values written to the lock's coil (0), oldest first."""
    return [on for _, coil, on in rig.board.write_history() if coil == 0]


@pytest.mark.slow
def test_a_full_disk_keeps_the_doors_deciding_and_loses_nothing(
    tmp_path: Path, mosquitto: Mosquitto, full_able: Path
) -> None:
    rig = Rig(tmp_path, mosquitto, pulse_ms=200)
    try:
        rig.enrol("ok", GRANTED, valid_to=TODAY + timedelta(days=30))
        rig.start()
        rig.card.swipe(GRANTED, 34)
        rig.wait_entries(1)
        wait_until(lambda: counts(full_able)[1] == 0, 10, 0.05, "the first entry acknowledged")
        wait_until(lambda: lock_writes(rig)[-2:] == [True, False], 5, 0.01, "the first pulse over")
        entries_before = counts(full_able)[0]

        # An empty WAL: the next commit must grow it (a WAL restarted after a checkpoint would reuse its
        # file's old pages and let a few commits through on a full disk, depending on timing).
        assert truncate_wal(full_able) == 0
        filler = fill_up(full_able)
        rig.board.clear_history()
        rig.card.swipe(GRANTED, 34)
        # The door opens although its entry cannot be committed.
        wait_until(lambda: True in lock_writes(rig), 5, 0.01, "the relay pulse")
        wait_until(lambda: rig.log().count(f"card {GRANTED}/34 -> granted") >= 2, 5, 0.02, "the grant logged")
        rig.card.swipe(REFUSED, 34)
        wait_until(lambda: f"card {REFUSED}/34 -> denied" in rig.log(), 5, 0.02, "the refusal logged")
        raised = wait_until(lambda: [a for a in rig.alerts() if a["kind"] == "storage_full"], 10, 0.02,
                            "storage_full raised at the platform")  # fmt: skip
        assert [(a["state"], a["severity"]) for a in raised] == [("raised", "critical")]
        wait_until(lambda: "storage full" in (rig.state().get("last_error") or ""), 10, 0.05, "…/state saying so")
        wait_until(lambda: len(lock_writes(rig)) >= 2, 5, 0.01, "pulse off")
        assert lock_writes(rig) == [True, False]  # the refusal did not open
        # The outbox stopped growing: no entry row was added while full, and nothing was published.
        assert counts(full_able)[0] == entries_before
        assert len(rig.entries()) == 1
        assert integrity(full_able) == "ok"

        filler.unlink()
        got = rig.wait_entries(3, timeout=15)
        assert [(e["tenant_id"], e["decision"], e["reason"]) for e in got] == [
            ("ok", "granted", "granted"),
            ("ok", "granted", "granted"),
            (None, "denied", "unknown_card"),
        ]
        assert len({e["id"] for e in got}) == 3
        seqs = [e["seq"] for e in got]
        assert seqs == sorted(seqs) and len(set(seqs)) == 3
        cleared = wait_until(lambda: [a for a in rig.alerts() if a["kind"] == "storage_full" and
                                      a["state"] == "cleared"], 10, 0.02, "storage_full cleared")  # fmt: skip
        assert cleared[0]["details"]["kept"] == 2 and cleared[0]["details"]["dropped"] == 0
        assert raised[0]["seq"] < seqs[1] < seqs[2] < cleared[0]["seq"]
        wait_until(lambda: counts(full_able)[1] == 0, 10, 0.05, "the outbox empty again")
        assert integrity(full_able) == "ok"
        # Normal service after.
        rig.card.swipe(GRANTED, 34)
        assert rig.wait_entries(4)[-1]["seq"] > cleared[0]["seq"]
        assert rig.stop() == 0
    finally:
        rig.close()


def test_the_memory_queue_keeps_order_and_its_bound(full_able: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In one process: SQLITE_FULL keeps events in order, beyond MAX_KEPT counts drops, space returns → written."""
    monkeypatch.setattr(journal_writer, "MAX_KEPT", 5)
    monkeypatch.setattr(journal_writer, "CHUNK", 2)  # several chunks, and events added between them
    engine, _ = open_store(full_able)
    writer = JournalWriter(engine, "gw", full_able)

    def draft(n: int) -> EntryDraft:
        return EntryDraft(datetime.now(UTC), "main", "card", "granted", "granted", card_number=n, card_bits=34)

    with writer.transaction() as w:
        w.entry(draft(0))
    filler = fill_up(full_able)
    ids = []
    for n in range(1, 8):
        with writer.transaction() as w:
            ids.append(w.entry(draft(n)).id)
    assert writer.full and writer.dropped == 2 and writer.depth() == 5  # entries 6 and 7 dropped
    with engine.connect() as db:  # the raised alert went in with the reserve's room; no entry did
        assert db.exec_driver_sql("SELECT count(*) FROM entries").scalar() == 1
        assert db.exec_driver_sql("SELECT kind, state FROM alerts").all() == [("storage_full", "raised")]

    async def recover() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(writer.run(stop))
        await asyncio.sleep(0.1)
        filler.unlink()
        for _ in range(100):
            if not writer.full:
                break
            await asyncio.sleep(0.05)
        stop.set()
        await task

    asyncio.run(recover())
    assert not writer.full
    with engine.connect() as db:
        rows = db.exec_driver_sql("SELECT id, card_number FROM entries ORDER BY seq").all()
        alerts = db.exec_driver_sql("SELECT state, details FROM alerts ORDER BY seq").all()
        assert db.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
    assert [n for _, n in rows] == [0, 1, 2, 3, 4, 5]
    assert [i for i, _ in rows[1:]] == ids[:5]
    assert [s for s, _ in alerts] == ["raised", "cleared"]
    engine.dispose()

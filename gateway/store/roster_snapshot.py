"""A roster snapshot from the platform (DESIGN §6.1), applied without holding the doors up.

A snapshot replaces the platform's part of the roster. Applied as one big transaction, a 100,000-tenant
snapshot held SQLite's write lock for ~0.7 s, and every door's entry commit waited behind it. So:

1. `stage_snapshot` (no write lock: TEMP tables and reads only) copies the snapshot into TEMP tables and
   sorts every staged row into `todo` 0 (the store already holds it as is), 1 (it changes a row the
   store holds) or 2 (a row the store does not hold: a new tenant, a new card or template, or a card or
   template moving to a new tenant), and lists what the store holds that the snapshot does not (`gone_*`).
2. `apply_changes`, in one write transaction: every removal and every change to what the store holds,
   and rows moving to a new tenant taken out. The lock is held for the changes, not the size: a
   snapshot equal to the store (the usual one, after a version gap) writes almost nothing.
3. `apply_new_rows`, in write transactions of `NEW_ROW_BATCH` rows each: new tenants, then new cards,
   then new templates; the version moves with the last batch.

Departure from "applied in one transaction" (DESIGN §6.1), on purpose: after step 2 nobody is granted
whom the snapshot does not grant (every removal and change is in), and step 3 only adds what the
snapshot grants; the version moves with the last batch, so a crash in between leaves the old version
and the next snapshot finishes the job. If the roster changed locally between 1 and 2, step 2 sorts
again inside its transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.store.roster import change_counter, mark_changed
from gateway.store.roster_sync import (
    CardOp,
    Op,
    RosterSyncError,
    TemplateOp,
    TenantOp,
    WatchOp,
    apply_ops,
    check_permits,
    integrity_message,
    set_version,
)

NEW_ROW_BATCH = 5000  # rows per write transaction of step 3: a few ms of lock each

STAGE_TABLES = {
    "stage_tenant": "(id TEXT PRIMARY KEY, name, permit, valid_from, valid_to, room, status, todo INTEGER)",
    "stage_card": "(number INTEGER PRIMARY KEY, tenant, todo INTEGER)",
    "stage_template": "(id TEXT PRIMARY KEY, tenant, vector, quality, photo_sha256, todo INTEGER)",
    "stage_watch": "(id TEXT PRIMARY KEY)",
    "gone_tenant": "(id TEXT PRIMARY KEY)",
    "gone_card": "(number INTEGER PRIMARY KEY)",
    "gone_template": "(id INTEGER PRIMARY KEY)",
    "gone_watch": "(id TEXT PRIMARY KEY)",
}

# todo: 0 = held as is, 1 = changes a row the store holds, 2 = a row the store does not hold, 3 = a row the store
# holds that moves to a tenant new to the store (taken out in step 2, back in step 3).
_SORT = (
    "UPDATE temp.stage_tenant SET todo = CASE"
    " WHEN NOT EXISTS (SELECT 1 FROM main.tenants t WHERE t.id = stage_tenant.id) THEN 2"
    " WHEN EXISTS (SELECT 1 FROM main.tenants t WHERE t.id = stage_tenant.id AND t.name = stage_tenant.name"
    "  AND t.permit_number = stage_tenant.permit AND t.valid_from IS stage_tenant.valid_from"
    "  AND t.valid_to = stage_tenant.valid_to AND t.room IS stage_tenant.room AND t.status = stage_tenant.status)"
    " THEN 0 ELSE 1 END",
    "UPDATE temp.stage_card SET todo = CASE"
    " WHEN NOT EXISTS (SELECT 1 FROM main.cards c WHERE c.number = stage_card.number) THEN 2"
    " WHEN (SELECT s.todo FROM temp.stage_tenant s WHERE s.id = stage_card.tenant) = 2 THEN 3"
    " WHEN EXISTS (SELECT 1 FROM main.cards c WHERE c.number = stage_card.number AND c.tenant_id = stage_card.tenant)"
    " THEN 0 ELSE 1 END",
    "UPDATE temp.stage_template SET todo = CASE"
    " WHEN NOT EXISTS (SELECT 1 FROM main.face_templates f WHERE f.platform_id = stage_template.id) THEN 2"
    " WHEN (SELECT s.todo FROM temp.stage_tenant s WHERE s.id = stage_template.tenant) = 2 THEN 3"
    " WHEN EXISTS (SELECT 1 FROM main.face_templates f WHERE f.platform_id = stage_template.id"
    "  AND f.tenant_id = stage_template.tenant AND f.embedding = stage_template.vector"
    "  AND f.quality = stage_template.quality AND f.photo_sha256 = stage_template.photo_sha256)"
    " THEN 0 ELSE 1 END",
    "DELETE FROM temp.gone_tenant",
    "INSERT INTO temp.gone_tenant SELECT id FROM main.tenants WHERE id NOT IN (SELECT id FROM temp.stage_tenant)",
    "DELETE FROM temp.gone_card",
    "INSERT INTO temp.gone_card SELECT number FROM main.cards WHERE number NOT IN (SELECT number FROM temp.stage_card)",
    "DELETE FROM temp.gone_template",
    "INSERT INTO temp.gone_template SELECT id FROM main.face_templates"
    " WHERE platform_id IS NULL OR platform_id NOT IN (SELECT id FROM temp.stage_template)",
    "DELETE FROM temp.gone_watch",
    "INSERT INTO temp.gone_watch SELECT id FROM main.watch_entries WHERE id NOT IN (SELECT id FROM temp.stage_watch)",
    # Steps 2 and 3 pick rows by `todo`: indexed, they never scan the whole stage under the lock.
    "CREATE INDEX IF NOT EXISTS temp.stage_tenant_todo ON stage_tenant (todo)",
    "CREATE INDEX IF NOT EXISTS temp.stage_card_todo ON stage_card (todo)",
    "CREATE INDEX IF NOT EXISTS temp.stage_template_todo ON stage_template (todo)",
)

_REMOVE = (
    "DELETE FROM main.cards WHERE number IN (SELECT number FROM temp.gone_card)",
    "DELETE FROM main.cards WHERE tenant_id IN (SELECT id FROM temp.gone_tenant)",
    "DELETE FROM main.face_templates WHERE id IN (SELECT id FROM temp.gone_template)",
    "DELETE FROM main.face_templates WHERE tenant_id IN (SELECT id FROM temp.gone_tenant)",
    "DELETE FROM main.tenants WHERE id IN (SELECT id FROM temp.gone_tenant)",
    # Rows moving to a tenant the store does not hold yet: out now, back with their tenant (step 3).
    "DELETE FROM main.cards WHERE number IN (SELECT number FROM temp.stage_card WHERE todo = 3)",
    "DELETE FROM main.face_templates WHERE platform_id IN (SELECT id FROM temp.stage_template WHERE todo = 3)",
    "DELETE FROM main.watch_vectors WHERE watch_id IN (SELECT id FROM temp.gone_watch)",
    "DELETE FROM main.watch_entries WHERE id IN (SELECT id FROM temp.gone_watch)",
)

_UPSERT_TENANTS = (
    "INSERT INTO main.tenants (id, name, permit_number, valid_from, valid_to, room, status, watchlist, created_at,"
    " updated_at) SELECT id, name, permit, valid_from, valid_to, room, status, 0, ?, ? FROM temp.stage_tenant"
    " WHERE {where} ON CONFLICT(id) DO UPDATE SET name = excluded.name, permit_number = excluded.permit_number,"
    " valid_from = excluded.valid_from, valid_to = excluded.valid_to, room = excluded.room,"
    " status = excluded.status, updated_at = excluded.updated_at"
)  # a tenant kept keeps its local watch-list flag
_UPSERT_CARDS = (
    "INSERT INTO main.cards (number, low24, tenant_id, created_at) SELECT number, number & 16777215, tenant, ?"
    " FROM temp.stage_card WHERE {where} ON CONFLICT(number) DO UPDATE SET tenant_id = excluded.tenant_id"
)
_UPSERT_TEMPLATES = (
    "INSERT INTO main.face_templates (platform_id, tenant_id, embedding, quality, photo_sha256, created_at)"
    " SELECT id, tenant, vector, quality, photo_sha256, ? FROM temp.stage_template WHERE {where}"
    " ON CONFLICT(platform_id) DO UPDATE SET tenant_id = excluded.tenant_id, embedding = excluded.embedding,"
    " quality = excluded.quality, photo_sha256 = excluded.photo_sha256"
)
_NEW_ROWS = {"stage_tenant": _UPSERT_TENANTS, "stage_card": _UPSERT_CARDS, "stage_template": _UPSERT_TEMPLATES}


@dataclass(frozen=True, slots=True)
class StagedSnapshot:
    """A snapshot sorted in this connection's TEMP tables, ready for `apply_changes`."""

    version: int
    watch: list[WatchOp]  # watch entries that differ from the store's
    sorted_at: int  # the store's roster change counter when sorted


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _conn(db: Session | Connection) -> Connection:
    return db.connection() if isinstance(db, Session) else db


def _rows(ops: list[Op]) -> tuple[dict[str, list[tuple[Any, ...]]], list[WatchOp], list[TenantOp]]:
    """Staged rows per table, the last upsert of a key winning (as in a patch)."""
    tenants: dict[str, TenantOp] = {}
    cards: dict[int, tuple[Any, ...]] = {}
    templates: dict[str, tuple[Any, ...]] = {}
    watch: dict[str, WatchOp] = {}
    for op in ops:
        if isinstance(op, TenantOp):
            tenants[op.id] = op
        elif isinstance(op, CardOp):
            cards[op.number] = (op.number, op.tenant, 1)
        elif isinstance(op, TemplateOp):
            templates[op.id] = (op.id, op.tenant, op.vector, op.quality, op.photo_sha256, 1)
        elif isinstance(op, WatchOp):
            watch[op.id] = op
        else:
            raise RosterSyncError("malformed", "a snapshot holds upserts only")
    tenant_rows = [(t.id, t.name, t.permit, t.valid_from and t.valid_from.isoformat(), t.valid_to.isoformat(), t.room,
                    t.status, 1) for t in tenants.values()]  # fmt: skip
    rows = {"stage_tenant": tenant_rows, "stage_card": list(cards.values()),
            "stage_template": list(templates.values()), "stage_watch": [(w,) for w in watch]}  # fmt: skip
    return rows, list(watch.values()), list(tenants.values())


def stage_snapshot(db: Session | Connection, version: int, ops: list[Op]) -> StagedSnapshot:
    """Copy and sort a snapshot (upserts only) in TEMP tables; takes no write lock on the store.

    Raises `RosterSyncError("malformed")` for a permit number given twice, or a card or template of a
    tenant the snapshot does not hold.
    """
    conn = _conn(db)
    rows, watch, tenants = _rows(ops)
    check_permits(tenants)
    for table, columns in STAGE_TABLES.items():
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS temp.{table}")
        conn.exec_driver_sql(f"CREATE TEMP TABLE {table} {columns}")
        if rows.get(table):
            marks = ", ".join("?" * len(rows[table][0]))
            conn.exec_driver_sql(f"INSERT INTO temp.{table} VALUES ({marks})", rows[table])
    for what, table in (("card", "stage_card"), ("template", "stage_template")):
        orphan = conn.exec_driver_sql(f"SELECT tenant FROM temp.{table} WHERE tenant NOT IN"
                                      " (SELECT id FROM temp.stage_tenant) LIMIT 1").scalar()  # fmt: skip
        if orphan is not None:
            raise RosterSyncError("malformed", f"snapshot: a {what} of tenant {orphan!r}, which it does not hold")
    return _sort(conn, version, watch)


def _sort(conn: Connection, version: int, watch: list[WatchOp]) -> StagedSnapshot:
    counter = change_counter(conn)
    for sql in _SORT:
        conn.exec_driver_sql(sql)
    return StagedSnapshot(version, _changed_watch(conn, watch), counter)


def _changed_watch(conn: Connection, watch: list[WatchOp]) -> list[WatchOp]:
    entries = conn.exec_driver_sql("SELECT id, name, note FROM main.watch_entries")
    held: dict[str, tuple[str, str, list[bytes]]] = {wid: (name, note, []) for wid, name, note in entries}
    for wid, emb in conn.exec_driver_sql("SELECT watch_id, embedding FROM main.watch_vectors ORDER BY id"):
        held[wid][2].append(bytes(emb))
    return [w for w in watch if held.get(w.id) != (w.name, w.note, list(w.vectors))]


def apply_changes(db: Session | Connection, staged: StagedSnapshot) -> StagedSnapshot:
    """Step 2, in the caller's write transaction: every removal and every change to what the store holds.

    Returns the snapshot as applied (sorted again if the roster changed since `stage_snapshot`). When no
    tenant is new, this also sets the version: the snapshot is applied.
    """
    conn = _conn(db)
    if change_counter(conn) != staged.sorted_at:
        staged = _sort(conn, staged.version, staged.watch)
    now = _now()
    try:
        for sql in _REMOVE:
            conn.exec_driver_sql(sql)
        conn.exec_driver_sql(_UPSERT_TENANTS.format(where="todo = 1"), (now, now))
        conn.exec_driver_sql(_UPSERT_CARDS.format(where="todo = 1"), (now,))
        conn.exec_driver_sql(_UPSERT_TEMPLATES.format(where="todo = 1"), (now,))
    except IntegrityError as exc:
        raise RosterSyncError("malformed", f"snapshot: {integrity_message(exc)}") from None
    apply_ops(conn, list(staged.watch))
    if not any(conn.exec_driver_sql(f"SELECT 1 FROM temp.{t} WHERE todo >= 2 LIMIT 1").first() for t in _NEW_ROWS):
        set_version(conn, staged.version)
    mark_changed(conn)
    return staged


Batch = tuple[str, int, int]  # stage table, first and last rowid


def new_row_batches(db: Session | Connection, size: int = NEW_ROW_BATCH) -> list[Batch]:
    """Step 3's batches: rowid ranges of `size` new rows, tenants first (cards and templates need them)."""
    batches: list[Batch] = []
    for table in _NEW_ROWS:
        found = _conn(db).exec_driver_sql(f"SELECT rowid FROM temp.{table} WHERE todo >= 2 ORDER BY rowid")
        ids = [r for (r,) in found]
        batches += [(table, ids[i], ids[min(i + size, len(ids)) - 1]) for i in range(0, len(ids), size)]
    return batches


def apply_new_rows(db: Session | Connection, staged: StagedSnapshot, batch: Batch, last: bool) -> None:
    """Step 3, in the caller's write transaction: one batch of new rows.

    The last batch sets the version and tells the gateway the roster changed (it reloads its face index).
    """
    conn = _conn(db)
    now = _now()
    table, first, end = batch
    sql = _NEW_ROWS[table].format(where="todo >= 2 AND rowid BETWEEN ? AND ?")
    try:
        conn.exec_driver_sql(sql, (now,) * (sql.count("?") - 2) + (first, end))  # created/updated, then the range
    except IntegrityError as exc:  # a tenant enrolled here meanwhile with the same permit number
        raise RosterSyncError("malformed", f"snapshot: {integrity_message(exc)}") from None
    if last:
        set_version(conn, staged.version)
        mark_changed(conn)


def drop_stage(db: Session | Connection) -> None:
    conn = _conn(db)
    for table in STAGE_TABLES:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS temp.{table}")


def apply_snapshot(db: Session | Connection, version: int, ops: list[Op]) -> int:
    """All three steps in the caller's transaction (tests, tools); the gateway runs them apart (RosterRequests)."""
    staged = apply_changes(db, stage_snapshot(db, version, ops))
    batches = new_row_batches(db)
    for i, batch in enumerate(batches):
        apply_new_rows(db, staged, batch, last=i == len(batches) - 1)
    drop_stage(db)
    return version


"""The read side of the town's store: searches across every gateway, in SQLAlchemy Core so that PostgreSQL
(production) and SQLite (a demo) run the same statements.

What it shares with the gateway's gateway.store.queries: the filters (EntryFilter and friends, extended
here with `gateway_id` and `permit`), the page shape (Page), the limits, the cursor encoding
(encode_cursor / decode_cursor: opaque, "<kind>:<key>:<ts>") and the CSV cell guard (exports).

Order and cursors: newest first by (ts, id); every index on entries is (column, ts), so a page is one
index range read. On PostgreSQL the entries table is partitioned by month on ts: every entries query
here bounds ts on both sides (no `since`: the last DEFAULT_WINDOW_DAYS; no `until`: a day ahead of now,
for a building whose clock runs fast), so the planner prunes partitions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    Table,
    and_,
    func,
    literal_column,
    or_,
    select,
    union_all,
)
from sqlalchemy.orm import Session

from gateway.store import people
from gateway.store.queries import (
    MAX_BATCH,
    MAX_LIMIT,
    MAX_OFFSET,
    TOTAL_CAP,
    AlertFilter,
    AuditFilter,
    EntryFilter,
    Page,
    decode_cursor,
    encode_cursor,
    time_text,
)
from town.store.models import Gateway, TownAlert, TownCard, TownEntry, TownTemplate, TownTenant, WatchEntry, audit_log

__all__ = [
    "DEFAULT_WINDOW_DAYS",
    "OPEN_ALERT_DAYS",
    "AlertFilter",
    "AuditFilter",
    "Page",
    "TownEntryFilter",
    "count_audit",
    "count_entries",
    "fleet",
    "iter_audit",
    "iter_entries",
    "person_entries",
    "search_alerts",
    "search_audit",
    "search_entries",
]

DEFAULT_WINDOW_DAYS = 366  # an entries search without `since` looks back this far
AHEAD = timedelta(days=1)  # an entries search without `until` reaches this far past now
OPEN_ALERT_DAYS = 30  # the fleet view counts open alerts raised this recently
_CHUNK = 500  # ids per IN (…) list

ENTRIES: Table = TownEntry.__table__  # type: ignore[assignment]
ALERTS: Table = TownAlert.__table__  # type: ignore[assignment]
TENANTS: Table = TownTenant.__table__  # type: ignore[assignment]
CARDS: Table = TownCard.__table__  # type: ignore[assignment]
AUDIT: Table = audit_log

Db = Session | Connection


@dataclass(frozen=True)
class TownEntryFilter(EntryFilter):
    """The gateway's entry filter, plus the building and an exact permit number."""

    gateway_id: str | None = None
    permit: str | None = None


def _connection(db: Db) -> Connection:
    return db.connection() if isinstance(db, Session) else db


def _text(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{name} must be text")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{name} is not valid UTF-8 text") from None
    return value


def _aware(value: datetime | None, name: str) -> datetime | None:
    if value is not None:
        time_text(value, name)  # a datetime with a zone, in range
    return value


def rfc3339(ts: datetime | None) -> str | None:
    """A stored time as RFC 3339 UTC with milliseconds, as the gateways write them."""
    if ts is None:
        return None
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _check_size(value: object, name: str, largest: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= largest:
        raise ValueError(f"{name} must be an integer from 1 to {largest}")
    return value


def _check_offset(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_OFFSET:
        raise ValueError(f"offset must be an integer from 0 to {MAX_OFFSET}")
    return value


# --- the keyset query ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Keyset:
    table: Table
    tag: str  # cursor kind
    key: str  # the tiebreak after ts
    text_key: bool

    @property
    def ts(self) -> Any:
        return self.table.c.ts

    @property
    def key_col(self) -> Any:
        return self.table.c[self.key]


_ENTRIES = _Keyset(ENTRIES, "e", "id", True)
_ALERTS = _Keyset(ALERTS, "a", "id", True)
_AUDIT = _Keyset(AUDIT, "u", "id", False)


@dataclass(frozen=True, slots=True)
class _After:
    ts: datetime
    key: int | str


def _decode(ks: _Keyset, cursor: str) -> _After:
    ts_text, key = decode_cursor(ks.tag, cursor, text_key=ks.text_key)
    return _After(datetime.strptime(ts_text, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC), key)


def _encode(ks: _Keyset, row: Any) -> str:
    return encode_cursor(ks.tag, time_text(row.ts, "ts"), row._mapping[ks.key])


@dataclass(frozen=True)
class _Range:
    lo: datetime | None
    hi: datetime | None


def _where(ks: _Keyset, conditions: Sequence[ColumnElement[bool]], rng: _Range, after: _After | None
           ) -> list[ColumnElement[bool]]:  # fmt: skip
    """Rows matching, in [lo, hi), strictly older than `after` in (ts, key) order."""
    clauses = list(conditions)
    if rng.lo is not None and rng.hi is not None and rng.lo > rng.hi:
        raise ValueError("since must not be after until")
    if rng.lo is not None:
        clauses.append(ks.ts >= rng.lo)
    if after is not None and (rng.hi is None or after.ts < rng.hi):
        # (ts, key) < (after.ts, after.key), written so that `ts <= ?` bounds the index range.
        clauses.append(and_(ks.ts <= after.ts, or_(ks.ts < after.ts, ks.key_col < after.key)))
    elif rng.hi is not None:
        clauses.append(ks.ts < rng.hi)
    return clauses


def _page_query(ks: _Keyset, conditions: Sequence[ColumnElement[bool]], rng: _Range, after: _After | None,
                limit: int, offset: int = 0) -> Select[Any]:  # fmt: skip
    query = (select(ks.table).where(*_where(ks, conditions, rng, after))
             .order_by(ks.ts.desc(), ks.key_col.desc()).limit(limit))  # fmt: skip
    return query.offset(offset) if offset else query


def _count(conn: Connection, ks: _Keyset, conditions: Sequence[ColumnElement[bool]], rng: _Range, cap: int) -> int:
    """How many rows match, counting no further than cap + 1."""
    inner = select(literal_column("1")).select_from(ks.table).where(*_where(ks, conditions, rng, None)).limit(cap + 1)
    return int(conn.scalar(select(func.count()).select_from(inner.subquery())) or 0)


def _search(conn: Connection, ks: _Keyset, conditions: Sequence[ColumnElement[bool]], rng: _Range,
            cursor: str | None, limit: int, offset: int | None, with_total: bool,
            item: Callable[[Any], dict[str, Any]]) -> Page:  # fmt: skip
    limit = _check_size(limit, "limit", MAX_LIMIT)
    if cursor is not None and offset is not None:
        raise ValueError("give a cursor or an offset, not both")
    skip = 0 if offset is None else _check_offset(offset)
    after = None if cursor is None else _decode(ks, cursor)
    rows = list(conn.execute(_page_query(ks, conditions, rng, after, limit + 1, skip)))
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = _encode(ks, rows[-1])
    items = [item(r) for r in rows]
    if not with_total:
        return Page(items, next_cursor)
    total = _count(conn, ks, conditions, rng, TOTAL_CAP)
    return Page(items, next_cursor, min(total, TOTAL_CAP), total > TOTAL_CAP)


def _batches(conn: Connection, ks: _Keyset, conditions: Sequence[ColumnElement[bool]], rng: _Range, batch: int
             ) -> Iterator[list[Any]]:  # fmt: skip
    after: _After | None = None
    while True:
        rows = list(conn.execute(_page_query(ks, conditions, rng, after, batch)))
        if rows:
            yield rows
        if len(rows) < batch:
            return
        after = _After(rows[-1].ts, rows[-1]._mapping[ks.key])


# --- entries ------------------------------------------------------------------------------------


def _entry_range(f: EntryFilter, now: datetime | None = None) -> _Range:
    since, until = _aware(f.since, "since"), _aware(f.until, "until")
    if since is not None and until is not None and since > until:
        raise ValueError("since must not be after until")
    now = now or datetime.now(UTC)
    hi = until if until is not None else now + AHEAD
    lo = since if since is not None else min(hi, now) - timedelta(days=DEFAULT_WINDOW_DAYS)
    return _Range(lo, hi)


def person_tenant_ids(conn: Connection, person: str, limit: int) -> list[str]:
    """Ids of the register's tenants `person` names: the id, part of the name, or the start of a permit
    number (letters in any case), as the gateway's person filter (gateway.store.people)."""
    t = TENANTS.c
    query = (select(t.id).where(or_(t.id == person, t.name.icontains(person, autoescape=True),
                                    t.permit_number.istartswith(person, autoescape=True)))
             .order_by(t.id).limit(limit))  # fmt: skip
    return list(conn.scalars(query))


def _person(conn: Connection, f: TownEntryFilter) -> tuple[list[str] | None, str | None]:
    """(tenant ids, hint) of the `person` and `permit` filters; (None, None) without either."""
    ids: list[str] | None = None
    hint = None
    if f.person is not None and _text(f.person, "person").strip():
        found = person_tenant_ids(conn, f.person.strip(), people.MAX_PERSON_IDS + 1)
        if len(found) > people.MAX_PERSON_IDS:
            found, hint = found[: people.MAX_PERSON_IDS], "many_people"
        ids = found
    if f.permit is not None and _text(f.permit, "permit").strip():
        holder = list(conn.scalars(select(TENANTS.c.id).where(TENANTS.c.permit_number == f.permit.strip())))
        ids = holder if ids is None else [i for i in ids if i in holder]
    if ids is not None and not ids:
        return [], "no_person"
    return ids, hint


def _entry_conditions(f: TownEntryFilter, tenant_ids: list[str] | None) -> list[ColumnElement[bool]]:
    c = ENTRIES.c
    clauses: list[ColumnElement[bool]] = []
    for column in ("gateway_id", "tenant_id", "door", "method", "decision", "reason"):
        value = getattr(f, column)
        if value is not None:
            clauses.append(c[column] == _text(value, column))
    if f.card_number is not None:
        if isinstance(f.card_number, bool) or not isinstance(f.card_number, int) or not 0 <= f.card_number < 2**63:
            raise ValueError("card_number must be a non-negative integer")
        clauses.append(c.card_number == f.card_number)
    if tenant_ids is not None:
        clauses.append(c.tenant_id.in_(tenant_ids))  # an empty list matches nothing
    return clauses


def _as_town(f: EntryFilter) -> TownEntryFilter:
    if isinstance(f, TownEntryFilter):
        return f
    return TownEntryFilter(**{k: getattr(f, k) for k in f.__dataclass_fields__})


def _entry_where(conn: Connection, f: EntryFilter) -> tuple[list[ColumnElement[bool]], _Range, str | None]:
    tf = _as_town(f)
    rng = _entry_range(tf)
    ids, hint = _person(conn, tf)
    return _entry_conditions(tf, ids), rng, hint


def _entry_item(r: Any) -> dict[str, Any]:
    m = r._mapping
    return {
        "id": m["id"], "seq": m["seq"], "ts": rfc3339(m["ts"]), "gateway_id": m["gateway_id"], "door": m["door"],
        "method": m["method"], "card_number": m["card_number"], "card_bits": m["card_bits"],
        "tenant_id": m["tenant_id"], "decision": m["decision"], "reason": m["reason"],
        "face_distance": m["face_distance"], "camera": m["camera"], "snapshot": m["snapshot"],
    }  # fmt: skip


def names_and_rooms(conn: Connection, tenant_ids: Sequence[str | None]) -> dict[str, tuple[str, str | None, str]]:
    """tenant id -> (name, room, gateway id) for those of `tenant_ids` in the register."""
    wanted = sorted({t for t in tenant_ids if t is not None})
    found: dict[str, tuple[str, str | None, str]] = {}
    t = TENANTS.c
    for i in range(0, len(wanted), _CHUNK):
        rows = conn.execute(select(t.id, t.name, t.room, t.gateway_id).where(t.id.in_(wanted[i : i + _CHUNK])))
        for tid, name, room, gw in rows:
            found[tid] = (name, room, gw)
    return found


def _cards_of(conn: Connection, tenant_ids: Sequence[str]) -> dict[str, list[int]]:
    wanted = sorted(set(tenant_ids))
    found: dict[str, list[int]] = {}
    for i in range(0, len(wanted), _CHUNK):
        chunk = wanted[i : i + _CHUNK]
        rows = conn.execute(select(CARDS.c.tenant_id, CARDS.c.number).where(CARDS.c.tenant_id.in_(chunk)))
        for tid, number in rows:
            found.setdefault(tid, []).append(number)
    return found


def add_names(conn: Connection, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`tenant_name`, `room` (None when no tenant, or one the register no longer has) and, for a 26-bit read,
    `matched_card`: the tenant's card whose low 24 bits it carries (as the gateway's items)."""
    known = names_and_rooms(conn, [item["tenant_id"] for item in items])
    short = [i["tenant_id"] for i in items if i.get("card_bits") == 26 and i["tenant_id"] is not None]
    cards = _cards_of(conn, short) if short else {}
    for item in items:
        name, room, _ = known.get(item["tenant_id"], (None, None, None))
        item["tenant_name"], item["room"] = name, room
        number = item.get("card_number")
        item["matched_card"] = None
        if item.get("card_bits") == 26 and number is not None and item["tenant_id"] in cards:
            matches = [n for n in cards[item["tenant_id"]] if n & 0xFFFFFF == number & 0xFFFFFF]
            item["matched_card"] = matches[0] if len(matches) == 1 else None
    return items


def search_entries(db: Db, f: EntryFilter, *, cursor: str | None = None, limit: int = 50, offset: int | None = None,
                   with_total: bool = False) -> Page:  # fmt: skip
    """One page of entries from every gateway, newest first (the rules of the gateway's search_entries)."""
    conn = _connection(db)
    conditions, rng, hint = _entry_where(conn, f)
    page = _search(conn, _ENTRIES, conditions, rng, cursor, limit, offset, with_total, _entry_item)
    return replace(page, items=add_names(conn, page.items), hint=hint)


def count_entries(db: Db, f: EntryFilter, *, cap: int = TOTAL_CAP) -> int:
    conn = _connection(db)
    conditions, rng, _ = _entry_where(conn, f)
    return _count(conn, _ENTRIES, conditions, rng, cap)


def iter_entries(db: Db, f: EntryFilter, *, batch: int = 5000) -> Iterator[dict[str, Any]]:
    """Every matching entry, newest first, `batch` rows at a time; the filter is checked at once."""
    batch = _check_size(batch, "batch", MAX_BATCH)
    conn = _connection(db)
    conditions, rng, _ = _entry_where(conn, f)
    return (item for rows in _batches(conn, _ENTRIES, conditions, rng, batch)
            for item in add_names(conn, [_entry_item(r) for r in rows]))  # fmt: skip


def person_entries(db: Db, tenant_id: str, cards: Sequence[int], since: datetime, until: datetime, limit: int
                   ) -> list[dict[str, Any]]:  # fmt: skip
    """Where a person was seen in [since, until), newest first, at every gateway: entries naming the tenant,
    and reads of their cards (a building that does not know them logs `unknown_card` with the number).

    Two index ranges, (tenant_id, ts) and (card_number, ts), each bounded in ts (partition pruning), as
    one UNION ALL (the second branch leaves out what the first has)."""
    c = ENTRIES.c
    bounds = (c.ts >= since, c.ts < until)
    branches = [select(ENTRIES).where(c.tenant_id == tenant_id, *bounds)]
    if cards:
        branches.append(select(ENTRIES).where(c.card_number.in_(list(cards)), *bounds,
                                              or_(c.tenant_id.is_(None), c.tenant_id != tenant_id)))  # fmt: skip
    both = union_all(*branches).subquery() if len(branches) > 1 else branches[0].subquery()
    query = select(both).order_by(both.c.ts.desc(), both.c.id.desc()).limit(limit)
    conn = _connection(db)
    return add_names(conn, [_entry_item(r) for r in conn.execute(query)])


# --- alerts and the audit log -------------------------------------------------------------------


def _alert_conditions(f: AlertFilter, gateway_id: str | None) -> list[ColumnElement[bool]]:
    c = ALERTS.c
    clauses: list[ColumnElement[bool]] = []
    if gateway_id is not None:
        clauses.append(c.gateway_id == _text(gateway_id, "gateway_id"))
    for column in ("kind", "state", "door", "camera", "tenant_id"):
        value = getattr(f, column)
        if value is not None:
            clauses.append(c[column] == _text(value, column))
    if f.acknowledged is not None:
        clauses.append(c.acknowledged_at.isnot(None) if f.acknowledged else c.acknowledged_at.is_(None))
    if f.hidden_kinds:
        clauses.append(c.kind.not_in([_text(k, "kind") for k in f.hidden_kinds]))
    return clauses


def _alert_item(r: Any) -> dict[str, Any]:
    m = r._mapping
    return {
        "id": m["id"], "seq": m["seq"], "ts": rfc3339(m["ts"]), "gateway_id": m["gateway_id"], "kind": m["kind"],
        "state": m["state"], "severity": m["severity"], "door": m["door"], "camera": m["camera"],
        "tenant_id": m["tenant_id"], "details": m["details"], "snapshot": m["snapshot"],
        "acknowledged_at": rfc3339(m["acknowledged_at"]), "acknowledged_by": m["acknowledged_by"],
    }  # fmt: skip


def search_alerts(db: Db, f: AlertFilter, *, gateway_id: str | None = None, cursor: str | None = None,
                  limit: int = 50, offset: int | None = None, with_total: bool = False) -> Page:  # fmt: skip
    rng = _Range(_aware(f.since, "since"), _aware(f.until, "until"))
    return _search(_connection(db), _ALERTS, _alert_conditions(f, gateway_id), rng, cursor, limit, offset,
                   with_total, _alert_item)  # fmt: skip


def _audit_conditions(f: AuditFilter) -> list[ColumnElement[bool]]:
    clauses: list[ColumnElement[bool]] = []
    for column in ("actor", "action"):
        value = getattr(f, column)
        if value is not None:
            clauses.append(AUDIT.c[column] == _text(value, column))
    return clauses


def _audit_item(r: Any) -> dict[str, Any]:
    m = r._mapping
    return {"id": m["id"], "ts": rfc3339(m["ts"]), "actor": m["actor"], "action": m["action"], "route": m["route"],
            "details": m["details"], "rows": m["rows"]}  # fmt: skip


def _audit_range(f: AuditFilter) -> _Range:
    return _Range(_aware(f.since, "since"), _aware(f.until, "until"))


def search_audit(db: Db, f: AuditFilter, *, cursor: str | None = None, limit: int = 50, offset: int | None = None,
                 with_total: bool = False) -> Page:  # fmt: skip
    return _search(_connection(db), _AUDIT, _audit_conditions(f), _audit_range(f), cursor, limit, offset,
                   with_total, _audit_item)  # fmt: skip


def count_audit(db: Db, f: AuditFilter, *, cap: int = TOTAL_CAP) -> int:
    return _count(_connection(db), _AUDIT, _audit_conditions(f), _audit_range(f), cap)


def iter_audit(db: Db, f: AuditFilter, *, batch: int = 5000) -> Iterator[dict[str, Any]]:
    batch = _check_size(batch, "batch", MAX_BATCH)
    conn = _connection(db)
    conditions, rng = _audit_conditions(f), _audit_range(f)
    return (_audit_item(r) for rows in _batches(conn, _AUDIT, conditions, rng, batch) for r in rows)


# --- the fleet ----------------------------------------------------------------------------------


def fleet(db: Db, *, now: datetime | None = None, availability: str | None = None) -> list[dict[str, Any]]:
    """Every gateway the town knows, by id, with its open alerts: raised, not acknowledged, in the last
    OPEN_ALERT_DAYS (the ts bound keeps the count on the (gateway_id, ts) index)."""
    conn = _connection(db)
    since = (now or datetime.now(UTC)) - timedelta(days=OPEN_ALERT_DAYS)
    a = ALERTS.c
    open_alerts = dict(conn.execute(
        select(a.gateway_id, func.count()).where(a.ts >= since, a.state == "raised", a.acknowledged_at.is_(None))
        .group_by(a.gateway_id)).all())  # fmt: skip
    g: Any = Gateway.__table__.c
    query = select(Gateway.__table__).order_by(g.gateway_id)
    if availability is not None:
        query = query.where(g.availability == availability)
    out = []
    for r in conn.execute(query):
        m = r._mapping
        state = m["state"] if isinstance(m["state"], dict) else {}
        out.append({
            "gateway_id": m["gateway_id"], "availability": m["availability"], "last_seen": rfc3339(m["last_seen"]),
            "roster_version": m["roster_version"], "target_version": m["target_version"],
            "outbox_depth": m["outbox_depth"], "open_alerts": int(open_alerts.get(m["gateway_id"], 0)),
            "missing_seqs": m["missing_seqs"], "last_seq": m["last_seq"], "software": state.get("version"),
            "last_error": state.get("last_error"),
        })  # fmt: skip
    return out


# --- the register -------------------------------------------------------------------------------


def tenant_cards_and_faces(conn: Connection, tenant_ids: Sequence[str]) -> tuple[dict[str, list[int]], dict[str, int],
                                                                                 set[str]]:  # fmt: skip
    """Cards (sorted), template counts and whether on the watch list, for tenants' rows."""
    cards = {k: sorted(v) for k, v in _cards_of(conn, tenant_ids).items()}
    faces: dict[str, int] = {}
    watched: set[str] = set()
    wanted = sorted(set(tenant_ids))
    tt: Any = TownTemplate.__table__.c
    w: Any = WatchEntry.__table__.c
    for i in range(0, len(wanted), _CHUNK):
        chunk = wanted[i : i + _CHUNK]
        faces.update(conn.execute(select(tt.tenant_id, func.count()).where(tt.tenant_id.in_(chunk))
                                  .group_by(tt.tenant_id)).all())  # fmt: skip
        watched.update(conn.scalars(select(w.tenant_id).where(w.tenant_id.in_(chunk))))
    return cards, faces, watched

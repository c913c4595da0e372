"""The read side of the store: police/admin searches, CSV export, the hourly chart.

What the API calls (DESIGN §8, issue 4 item 5). Every function is synchronous and
takes a `Session` or a `Connection`; call it from a worker thread, never on the
event loop that runs the doors. A streamed export (`iter_entries`) reads in
batches inside the caller's transaction: in WAL mode that never blocks the door's
writes, and the export sees one consistent snapshot.

Safety: every filter value reaches SQLite as a bound parameter. The only text
formatted into SQL is column names and clauses written in this module.

Order and cursors: newest first by `(ts, seq)` — the event time, then the
gateway's sequence as the tiebreaker (`(ts, id)` for the audit log, whose id is
its rowid). Every index the police filters use is `(column, ts)`, and SQLite
appends the rowid, so a page is one index range read of `limit` rows whatever the
size of the result, and a page deep down costs what the first page costs. Keyset
on `seq` alone would not have that: the indexes are ordered by time, so each page
would sort the whole matching time range again, and an export would cost O(n²).
`seq` and `ts` normally agree; where they do not (a face entry stamped with its
frame's time committed after a card entry, a clock step) this order is still
total and exact. A cursor is opaque to clients: urlsafe base64 of
`"<kind>:<seq>:<ts>"` of the last item returned, so it stays valid when that row
is pruned by retention. `offset` (page numbers on the web page) is the other way
to page: it costs what it skips, hence MAX_OFFSET; `with_total` counts the
matches, stopping at TOTAL_CAP.

People: an entry item carries its tenant's `tenant_name` and `room` (one batched
lookup per page or export batch; null when the tenant is gone). A `person` filter
is resolved first to at most MAX_PERSON_IDS tenant ids (person_tenant_ids).
"""

from __future__ import annotations

import base64
import binascii
import csv
import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.orm import Session

from gateway.store.people import MAX_PERSON_IDS, add_names, person_tenant_ids

__all__ = [
    "CSV_COLUMNS",
    "MAX_LIMIT",
    "MAX_OFFSET",
    "MAX_PERSON_IDS",
    "TOTAL_CAP",
    "AlertFilter",
    "AlertPage",
    "AuditFilter",
    "AuditPage",
    "EntryFilter",
    "EntryPage",
    "Page",
    "count_audit",
    "count_entries",
    "count_entries_per_hour",
    "csv_lines",
    "decode_cursor",
    "encode_cursor",
    "explain_entries",
    "iter_audit",
    "iter_entries",
    "person_tenant_ids",
    "safe_cell",
    "search_alerts",
    "search_audit",
    "search_entries",
    "time_text",
]

MAX_LIMIT = 1000  # largest page; exports go through iter_entries
MAX_BATCH = 100_000
MAX_OFFSET = 100_000  # deepest page by number; deeper than that, follow cursors
TOTAL_CAP = 100_000  # with_total stops counting here (a count costs what it counts)
_MAX_CURSOR_CHARS = 200
_INT64_MAX = (1 << 63) - 1
_INT64_MIN = -(1 << 63)

Db = Session | Connection


# --- filters and pages --------------------------------------------------------------


@dataclass(frozen=True)
class EntryFilter:
    """Exact matches on the entry log; `since`/`until` are aware datetimes, half-open [since, until).

    `person`: entries of the tenants person_tenant_ids finds for this text (id, part of the name, permit).
    """

    since: datetime | None = None
    until: datetime | None = None
    tenant_id: str | None = None
    card_number: int | None = None
    door: str | None = None
    method: str | None = None
    decision: str | None = None
    reason: str | None = None
    person: str | None = None


@dataclass(frozen=True)
class AlertFilter:
    """Exact matches on alerts; `acknowledged` True/False selects acknowledged or open ones."""

    since: datetime | None = None
    until: datetime | None = None
    kind: str | None = None
    state: str | None = None
    door: str | None = None
    camera: str | None = None
    tenant_id: str | None = None
    acknowledged: bool | None = None
    hidden_kinds: tuple[str, ...] | None = None  # kinds this reader may not see (watch-list hits for operators)


@dataclass(frozen=True)
class AuditFilter:
    since: datetime | None = None
    until: datetime | None = None
    actor: str | None = None
    action: str | None = None


@dataclass(frozen=True)
class Page:
    """One page of entries, alerts or audit rows."""

    items: list[dict[str, Any]]
    next_cursor: str | None  # None: this was the last page
    total: int | None = None  # with_total: every match, up to TOTAL_CAP
    total_capped: bool = False  # the count stopped at TOTAL_CAP
    hint: str | None = None  # "no_person": the person filter found nobody; "many_people": more than MAX_PERSON_IDS


# One shape serves all three; the names say what a function returns.
EntryPage = AlertPage = AuditPage = Page


# --- value checks -------------------------------------------------------------------


def _connection(db: Db) -> Connection:
    return db.connection() if isinstance(db, Session) else db


def time_text(value: object, name: str) -> str:
    """An aware datetime as the stored text: naive UTC 'YYYY-MM-DD HH:MM:SS.ffffff'.

    Formatted by hand: strftime('%Y') does not pad years below 1000 on glibc, and
    an unpadded year would compare wrongly as text.
    """
    if not isinstance(value, datetime):
        raise ValueError(f"{name} must be a datetime")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must carry a time zone")
    try:
        u = value.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{name} is out of range") from None
    return f"{u.year:04d}-{u.month:02d}-{u.day:02d} {u.hour:02d}:{u.minute:02d}:{u.second:02d}.{u.microsecond:06d}"


_sql_time = time_text


def _text(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{name} must be text")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: SQLite cannot bind them
        raise ValueError(f"{name} is not valid UTF-8 text") from None
    return value


def _int64(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer")
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise ValueError(f"{name} is out of range")
    return value


def _check_size(value: int, name: str, largest: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= largest:
        raise ValueError(f"{name} must be an integer from 1 to {largest}")
    return value


# --- cursors ------------------------------------------------------------------------

_TS_TEXT = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{6}")
# The key: an integer (seq, rowid) or, for the town's tables keyed by event id, a short token (a ULID).
_CURSOR = re.compile(r"(?P<tag>[a-z]):(?P<key>[0-9A-Za-z_.-]{1,64}):(?P<ts>.{26})", re.ASCII | re.DOTALL)
_CURSOR_KINDS = {"e": "an entries", "a": "an alerts", "u": "an audit"}


@dataclass(frozen=True, slots=True)
class _Position:
    ts: str  # stored text
    key: int  # seq (entries, alerts) or id (audit log)


def encode_cursor(tag: str, ts: str, key: int | str) -> str:
    """An opaque cursor: urlsafe base64 of "<tag>:<key>:<ts>" (`ts` as time_text writes it). Shared with
    the town's searches (town.api.queries), whose keys are event ids."""
    raw = f"{tag}:{key}:{ts}".encode("ascii")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(tag: str, cursor: object, *, text_key: bool = False) -> tuple[str, int | str]:
    """(ts text, key) of a cursor made by encode_cursor with this `tag`; ValueError if it is not one.
    The key is an integer (at most 2**63 - 1) unless `text_key`."""
    bad = ValueError(f"malformed cursor: pass back the next_cursor of {_CURSOR_KINDS.get(tag, 'a')} page unchanged")
    if not isinstance(cursor, str) or not 0 < len(cursor) <= _MAX_CURSOR_CHARS:
        raise bad
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise bad from None
    m = _CURSOR.fullmatch(raw)
    if m is None or m["tag"] != tag or not _TS_TEXT.fullmatch(m["ts"]):
        raise bad
    if not text_key and not (m["key"].isdigit() and len(m["key"]) <= 19 and int(m["key"]) <= _INT64_MAX):
        raise bad
    try:
        datetime.strptime(m["ts"], "%Y-%m-%d %H:%M:%S.%f")
    except ValueError:
        raise bad from None
    return m["ts"], (m["key"] if text_key else int(m["key"]))


def _encode_cursor(tag: str, pos: _Position) -> str:
    return encode_cursor(tag, pos.ts, pos.key)


def _decode_cursor(tag: str, cursor: object) -> _Position:
    ts, key = decode_cursor(tag, cursor)
    return _Position(ts, int(key))


# --- the keyset query ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Table:
    name: str
    tag: str  # cursor kind
    key: str  # tiebreak column after ts
    columns: tuple[str, ...]

    @property
    def key_index(self) -> int:
        return self.columns.index(self.key)

    @property
    def ts_index(self) -> int:
        return self.columns.index("ts")


_ENTRIES = _Table(
    "entries",
    "e",
    "seq",
    (
        "id",
        "seq",
        "ts",
        "door",
        "method",
        "reader",
        "card_number",
        "card_bits",
        "tenant_id",
        "decision",
        "reason",
        "face_distance",
        "camera",
        "snapshot",
        "direction",
    ),
)
_ALERTS = _Table(
    "alerts",
    "a",
    "seq",
    (
        "id",
        "seq",
        "ts",
        "kind",
        "state",
        "severity",
        "door",
        "camera",
        "tenant_id",
        "details",
        "snapshot",
        "acknowledged_at",
        "acknowledged_by",
    ),
)
_AUDIT = _Table("audit_log", "u", "id", ("id", "ts", "actor", "action", "route", "details", "rows"))


def _entry_conditions(f: EntryFilter, tenant_ids: Sequence[str] | None = None) -> tuple[list[str], list[Any]]:
    """WHERE clauses of `f`; `tenant_ids` is what its `person` resolved to (_person)."""
    clauses: list[str] = []
    params: list[Any] = []
    for column in ("tenant_id", "door", "method", "decision", "reason"):
        value = getattr(f, column)
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(_text(value, column))
    if f.card_number is not None:
        clauses.append("card_number = ?")
        params.append(_int64(f.card_number, "card_number"))
    if tenant_ids is not None:  # SQLite takes an empty IN (): it matches nothing
        clauses.append(f"tenant_id IN ({', '.join('?' * len(tenant_ids))})")
        params += tenant_ids
    return clauses, params


def _person(conn: Connection, f: EntryFilter) -> tuple[list[str] | None, str | None]:
    """(tenant ids, hint) of `f.person`: (None, None) without one; a blank one is no filter."""
    if f.person is None or not _text(f.person, "person").strip():
        return None, None
    ids = person_tenant_ids(conn, f.person.strip(), MAX_PERSON_IDS + 1)
    if not ids:
        return [], "no_person"
    if len(ids) > MAX_PERSON_IDS:
        return ids[:MAX_PERSON_IDS], "many_people"
    return ids, None


def _entry_where(conn: Connection, f: EntryFilter) -> tuple[tuple[list[str], list[Any]], str | None]:
    ids, hint = _person(conn, f)
    return _entry_conditions(f, ids), hint


def _alert_conditions(f: AlertFilter) -> tuple[list[str], list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    for column in ("kind", "state", "door", "camera", "tenant_id"):
        value = getattr(f, column)
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(_text(value, column))
    if f.acknowledged is not None:
        if not isinstance(f.acknowledged, bool):
            raise ValueError("acknowledged must be true or false")
        clauses.append("acknowledged_at IS NOT NULL" if f.acknowledged else "acknowledged_at IS NULL")
    if f.hidden_kinds:
        clauses.append(f"kind NOT IN ({', '.join('?' * len(f.hidden_kinds))})")
        params.extend(_text(k, "kind") for k in f.hidden_kinds)
    return clauses, params


def _audit_conditions(f: AuditFilter) -> tuple[list[str], list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    for column in ("actor", "action"):
        value = getattr(f, column)
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(_text(value, column))
    return clauses, params


def _where(
    table: _Table,
    conditions: tuple[list[str], list[Any]],
    since: datetime | None,
    until: datetime | None,
    after: _Position | None,
) -> tuple[str, list[Any]]:
    """The WHERE of rows matching, strictly older than `after`."""
    clauses, params = conditions
    clauses, params = list(clauses), list(params)
    lo = None if since is None else _sql_time(since, "since")
    hi = None if until is None else _sql_time(until, "until")
    if lo is not None and hi is not None and lo > hi:
        raise ValueError("since must not be after until")
    if lo is not None:
        clauses.append("ts >= ?")
        params.append(lo)
    if after is not None and (hi is None or after.ts < hi):
        # (ts, key) < (after.ts, after.key), written so that `ts <= ?` bounds the index range.
        clauses.append(f"ts <= ? AND (ts < ? OR {table.key} < ?)")
        params += [after.ts, after.ts, after.key]
    elif hi is not None:  # a cursor at or past `until` is no tighter than `until` itself
        clauses.append("ts < ?")
        params.append(hi)
    return (f" WHERE {' AND '.join(clauses)}" if clauses else ""), params


def _page_sql(
    table: _Table,
    conditions: tuple[list[str], list[Any]],
    since: datetime | None,
    until: datetime | None,
    after: _Position | None,
    limit: int,
    offset: int = 0,
) -> tuple[str, tuple[Any, ...]]:
    """SELECT of the `limit` newest rows matching, strictly older than `after`, `offset` skipped."""
    where, params = _where(table, conditions, since, until, after)
    sql = f"SELECT {', '.join(table.columns)} FROM {table.name}{where} ORDER BY ts DESC, {table.key} DESC LIMIT ?"
    params.append(limit)
    if offset:
        sql += " OFFSET ?"
        params.append(offset)
    return sql, tuple(params)


def _fetch(
    conn: Connection,
    table: _Table,
    conditions: tuple[list[str], list[Any]],
    since: datetime | None,
    until: datetime | None,
    after: _Position | None,
    limit: int,
    offset: int = 0,
) -> Sequence[Any]:
    sql, params = _page_sql(table, conditions, since, until, after, limit, offset)
    return conn.exec_driver_sql(sql, params).fetchall()


def _count(
    conn: Connection,
    table: _Table,
    conditions: tuple[list[str], list[Any]],
    since: datetime | None,
    until: datetime | None,
    cap: int,
) -> int:
    """How many rows match, counting no further than cap + 1 (so a caller can tell "more than cap")."""
    where, params = _where(table, conditions, since, until, None)
    sql = f"SELECT count(*) FROM (SELECT 1 FROM {table.name}{where} LIMIT ?)"
    return int(conn.exec_driver_sql(sql, (*params, cap + 1)).scalar() or 0)


def _rfc3339(ts: str | None) -> str | None:
    """Stored text → RFC 3339 UTC with milliseconds, as journal.rfc3339 writes MQTT payloads."""
    if ts is None:
        return None
    if len(ts) == 26 and ts[10] == " ":
        return f"{ts[:10]}T{ts[11:23]}Z"
    parsed = datetime.fromisoformat(ts).replace(tzinfo=UTC)  # not written by this gateway; be lenient
    return parsed.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _json(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _entry_item(r: Sequence[Any]) -> dict[str, Any]:
    return {
        "id": r[0],
        "seq": r[1],
        "ts": _rfc3339(r[2]),
        "door": r[3],
        "method": r[4],
        "reader": r[5],
        "card_number": r[6],
        "card_bits": r[7],
        "tenant_id": r[8],
        "decision": r[9],
        "reason": r[10],
        "face_distance": r[11],
        "camera": r[12],
        "snapshot": r[13],
        "direction": r[14],  # in / out at a door with entry and exit readers, else None
    }


def _alert_item(r: Sequence[Any]) -> dict[str, Any]:
    return {
        "id": r[0],
        "seq": r[1],
        "ts": _rfc3339(r[2]),
        "kind": r[3],
        "state": r[4],
        "severity": r[5],
        "door": r[6],
        "camera": r[7],
        "tenant_id": r[8],
        "details": _json(r[9]),
        "snapshot": r[10],
        "acknowledged_at": _rfc3339(r[11]),
        "acknowledged_by": r[12],
    }


def _audit_item(r: Sequence[Any]) -> dict[str, Any]:
    return {
        "id": r[0],
        "ts": _rfc3339(r[1]),
        "actor": r[2],
        "action": r[3],
        "route": r[4],
        "details": _json(r[5]),
        "rows": r[6],
    }


def _search(
    conn: Connection,
    table: _Table,
    conditions: tuple[list[str], list[Any]],
    since: datetime | None,
    until: datetime | None,
    paging: _Paging,
    item: Callable[[Sequence[Any]], dict[str, Any]],
) -> Page:
    """One page of items made by `item` and, when asked, the total (capped)."""
    limit = _check_size(paging.limit, "limit", MAX_LIMIT)
    if paging.cursor is not None and paging.offset is not None:
        raise ValueError("give a cursor or an offset, not both")
    offset = 0 if paging.offset is None else _check_offset(paging.offset)
    after = None if paging.cursor is None else _decode_cursor(table.tag, paging.cursor)
    rows = list(_fetch(conn, table, conditions, since, until, after, limit + 1, offset))
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_cursor = _encode_cursor(table.tag, _Position(last[table.ts_index], last[table.key_index]))
    if not paging.with_total:
        return Page([item(r) for r in rows], next_cursor)
    total = _count(conn, table, conditions, since, until, TOTAL_CAP)
    return Page([item(r) for r in rows], next_cursor, min(total, TOTAL_CAP), total > TOTAL_CAP)


@dataclass(frozen=True, slots=True)
class _Paging:
    cursor: str | None
    offset: int | None
    limit: int
    with_total: bool


def _check_offset(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_OFFSET:
        raise ValueError(f"offset must be an integer from 0 to {MAX_OFFSET}")
    return value


# --- public searches ----------------------------------------------------------------


def search_entries(
    db: Db,
    f: EntryFilter,
    *,
    cursor: str | None = None,
    limit: int = 50,
    offset: int | None = None,
    with_total: bool = False,
) -> EntryPage:
    """One page of entries, newest first; `next_cursor` continues after its last item.

    Page by `cursor` or by `offset`, not both. `with_total` also counts every match (up to
    TOTAL_CAP). Raises ValueError for a malformed cursor, a naive or inverted time range, a limit
    outside 1…MAX_LIMIT, an offset outside 0…MAX_OFFSET, or a filter value of the wrong type.
    """
    conn = _connection(db)
    conditions, hint = _entry_where(conn, f)
    paging = _Paging(cursor, offset, limit, with_total)
    page = _search(conn, _ENTRIES, conditions, f.since, f.until, paging, _entry_item)
    return replace(page, items=add_names(conn, page.items), hint=hint)


def count_entries(db: Db, f: EntryFilter, *, cap: int = TOTAL_CAP) -> int:
    """How many entries match, counting at most cap + 1 (a result above `cap` means "more")."""
    conn = _connection(db)
    conditions, _ = _entry_where(conn, f)
    return _count(conn, _ENTRIES, conditions, f.since, f.until, cap)


def iter_entries(db: Db, f: EntryFilter, *, batch: int = 5000) -> Iterator[dict[str, Any]]:
    """Every matching entry, newest first, read `batch` rows at a time (constant memory), each item
    with its tenant's name and room.

    Consume it on one thread; the caller's transaction stays open until it ends.
    """
    batch = _check_size(batch, "batch", MAX_BATCH)
    conn = _connection(db)
    conditions, _ = _entry_where(conn, f)  # validated before the first row is asked for
    _page_sql(_ENTRIES, conditions, f.since, f.until, None, batch)
    return (item for rows in _batches(conn, _ENTRIES, conditions, f.since, f.until, batch)
            for item in add_names(conn, [_entry_item(r) for r in rows]))  # fmt: skip


def iter_audit(db: Db, f: AuditFilter, *, batch: int = 5000) -> Iterator[dict[str, Any]]:
    """Every matching audit row, newest first, `batch` rows at a time (as iter_entries)."""
    batch = _check_size(batch, "batch", MAX_BATCH)
    conn = _connection(db)
    conditions = _audit_conditions(f)
    _page_sql(_AUDIT, conditions, f.since, f.until, None, batch)
    return (_audit_item(r) for rows in _batches(conn, _AUDIT, conditions, f.since, f.until, batch) for r in rows)


def count_audit(db: Db, f: AuditFilter, *, cap: int = TOTAL_CAP) -> int:
    """How many audit rows match, counting at most cap + 1."""
    return _count(_connection(db), _AUDIT, _audit_conditions(f), f.since, f.until, cap)


def _batches(
    conn: Connection,
    table: _Table,
    conditions: tuple[list[str], list[Any]],
    since: datetime | None,
    until: datetime | None,
    batch: int,
) -> Iterator[Sequence[Any]]:
    after: _Position | None = None
    while True:
        rows = _fetch(conn, table, conditions, since, until, after, batch)
        if rows:
            yield rows
        if len(rows) < batch:
            return
        after = _Position(rows[-1][table.ts_index], rows[-1][table.key_index])


def search_alerts(
    db: Db,
    f: AlertFilter,
    *,
    cursor: str | None = None,
    limit: int = 50,
    offset: int | None = None,
    with_total: bool = False,
) -> AlertPage:
    """One page of alerts, newest first (same rules as search_entries)."""
    paging = _Paging(cursor, offset, limit, with_total)
    return _search(_connection(db), _ALERTS, _alert_conditions(f), f.since, f.until, paging, _alert_item)


def search_audit(
    db: Db,
    f: AuditFilter,
    *,
    cursor: str | None = None,
    limit: int = 50,
    offset: int | None = None,
    with_total: bool = False,
) -> AuditPage:
    """One page of the audit log, newest first (same rules as search_entries)."""
    paging = _Paging(cursor, offset, limit, with_total)
    return _search(_connection(db), _AUDIT, _audit_conditions(f), f.since, f.until, paging, _audit_item)


def explain_entries(db: Db, f: EntryFilter, *, cursor: str | None = None, limit: int = 50) -> list[str]:
    """SQLite's EXPLAIN QUERY PLAN of the page query search_entries would run (diagnostics, tests)."""
    limit = _check_size(limit, "limit", MAX_LIMIT)
    after = None if cursor is None else _decode_cursor("e", cursor)
    conn = _connection(db)
    conditions, _ = _entry_where(conn, f)
    sql, params = _page_sql(_ENTRIES, conditions, f.since, f.until, after, limit + 1)
    return [str(r[-1]) for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params)]


# --- CSV ----------------------------------------------------------------------------

CSV_COLUMNS: tuple[str, ...] = (
    "id",
    "seq",
    "ts",
    "door",
    "reader",
    "method",
    "card_number",
    "card_bits",
    "tenant_id",
    "decision",
    "reason",
    "face_distance",
    "camera",
    "snapshot",
)
# A cell a spreadsheet would read as a formula gets a leading apostrophe (OWASP CSV
# injection): = + - @, and tab and carriage return, which some spreadsheets skip first.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class _LastLine:
    """A file for csv.writer that keeps the one line each writerow writes."""

    __slots__ = ("line",)

    def __init__(self) -> None:
        self.line = ""

    def write(self, s: str) -> int:
        self.line = s
        return len(s)


def safe_cell(value: Any) -> Any:
    """A value as a spreadsheet cell: None empty, text that starts like a formula behind an apostrophe."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def csv_lines(rows: Iterable[dict[str, Any]], columns: Sequence[str] = CSV_COLUMNS) -> Iterator[str]:
    """RFC 4180 CSV: a header line, then one record per row (CRLF endings, quoted where needed).

    Numbers are written as numbers; None as an empty field; text starting like a
    formula gets a leading apostrophe.
    """
    out = _LastLine()
    writer = csv.writer(out, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(columns)
    yield out.line
    for row in rows:
        writer.writerow([safe_cell(row.get(c)) for c in columns])
        yield out.line


# --- chart --------------------------------------------------------------------------


def count_entries_per_hour(db: Db, day_start: datetime, day_end: datetime) -> list[int]:
    """Entries in [day_start, day_end) per local hour of day (0…23) in day_start's time zone.

    Meant for one local day (at most 25 hours: a day when clocks go back puts
    both of its 01:00 hours in bucket 1; a day when they go forward leaves one
    bucket empty). Counted per UTC minute in SQL, so zones offset by half an hour
    bucket correctly.
    """
    lo, hi = _sql_time(day_start, "day_start"), _sql_time(day_end, "day_end")
    if day_end < day_start:
        raise ValueError("day_start must not be after day_end")
    if day_end - day_start > timedelta(hours=25):
        raise ValueError("count_entries_per_hour covers one day (at most 25 hours)")
    tz = day_start.tzinfo
    buckets = [0] * 24
    rows = _connection(db).exec_driver_sql(
        "SELECT substr(ts, 1, 16) AS minute, count(*) FROM entries WHERE ts >= ? AND ts < ? GROUP BY minute",
        (lo, hi),
    )
    for m, n in rows:  # 'YYYY-MM-DD HH:MM'
        at = datetime(int(m[:4]), int(m[5:7]), int(m[8:10]), int(m[11:13]), int(m[14:16]), tzinfo=UTC)
        buckets[at.astimezone(tz).hour] += n
    return buckets

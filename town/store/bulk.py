"""Batched writes of the ingest, one statement per table and batch, on either back-end.

PostgreSQL: `INSERT … SELECT FROM unnest(arrays) ON CONFLICT DO NOTHING RETURNING id` — one short
statement text whatever the batch size (psycopg parses a long multi-row VALUES text on every call,
which cost more than the insert itself), one round trip. SQLite: the same through SQLAlchemy's
executemany (`INSERT … ON CONFLICT DO NOTHING RETURNING`), in-process and cheap.

Rows are dicts keyed by column name, times timezone-aware (stored as naive UTC, like
gateway.store.models.UTCDateTime), JSON columns as Python objects.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any

from sqlalchemy import JSON, Connection, Table, bindparam, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from town.store.models import Gateway

GATEWAYS: Table = Gateway.__table__  # type: ignore[assignment]
# What a batch may change on a gateway's row; None in an update row leaves the column as it is.
GATEWAY_NEWS = ("last_seen", "availability", "state", "roster_version", "outbox_depth", "last_seq", "missing_seqs")

_PG = postgresql.dialect()


def _is_pg(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def _pg_type(table: Table, column: str) -> str:
    return table.c[column].type.compile(dialect=_PG)


def _pg_value(table: Table, column: str, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(table.c[column].type, JSON):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def _pg_arrays(table: Table, columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> dict[str, list[Any]]:
    return {f"p{i}": [_pg_value(table, c, row.get(c)) for row in rows] for i, c in enumerate(columns)}


@cache
def _pg_insert_sql(table: Table, columns: tuple[str, ...], returning: str | None) -> str:
    names = ", ".join(f'"{c}"' for c in columns)
    arrays = ", ".join(f"%(p{i})s::{_pg_type(table, c)}[]" for i, c in enumerate(columns))
    tail = f' RETURNING "{returning}"' if returning else ""
    return (f'INSERT INTO "{table.name}" ({names}) SELECT * FROM unnest({arrays}) '
            f"ON CONFLICT DO NOTHING{tail}")  # fmt: skip


def insert_new(conn: Connection, table: Table, rows: Sequence[dict[str, Any]], key: str = "id") -> set[Any]:
    """Insert-or-ignore on the table's key; returns the `key` of the rows actually inserted."""
    if not rows:
        return set()
    # In key order: two instances inserting the same keys (a redelivery) wait for each other, never deadlock.
    rows = sorted(rows, key=lambda r: r[key])
    columns = tuple(rows[0])
    if _is_pg(conn):
        sql = _pg_insert_sql(table, columns, key)
        return {k for (k,) in conn.exec_driver_sql(sql, _pg_arrays(table, columns, rows))}
    stmt = sqlite.insert(table).on_conflict_do_nothing().returning(table.c[key])
    return {k for (k,) in conn.execute(stmt, list(rows))}


def ensure_gateways(conn: Connection, gateway_ids: Iterable[str], now: datetime) -> None:
    """A `gateways` row for each id not yet known."""
    rows = [{"gateway_id": g, "availability": "unknown", "roster_version": 0, "target_version": 0, "last_seq": 0,
             "missing_seqs": 0, "first_seen": now} for g in sorted(gateway_ids)]  # fmt: skip
    if not rows:
        return
    if _is_pg(conn):
        columns = tuple(rows[0])
        conn.exec_driver_sql(_pg_insert_sql(GATEWAYS, columns, None), _pg_arrays(GATEWAYS, columns, rows))
    else:
        conn.execute(sqlite.insert(GATEWAYS).on_conflict_do_nothing(), rows)


def lock_seq_counts(conn: Connection, gateway_ids: Iterable[str]) -> dict[str, tuple[int, int]]:
    """(last_seq, missing_seqs) of each gateway, its row locked until the transaction ends (PostgreSQL:
    FOR UPDATE, in id order; SQLite: the writer's lock is the database's)."""
    ids = sorted(gateway_ids)
    if not ids:
        return {}
    query = select(GATEWAYS.c.gateway_id, GATEWAYS.c.last_seq, GATEWAYS.c.missing_seqs)
    query = query.where(GATEWAYS.c.gateway_id.in_(ids)).order_by(GATEWAYS.c.gateway_id)
    if _is_pg(conn):
        query = query.with_for_update()
    return {g: (last, missing) for g, last, missing in conn.execute(query)}


@cache
def _pg_update_sql() -> str:
    columns = ("gateway_id", *GATEWAY_NEWS)
    arrays = ", ".join(f"%(p{i})s::{_pg_type(GATEWAYS, c)}[]" for i, c in enumerate(columns))
    sets = ", ".join(f'"{c}" = COALESCE(v."{c}", g."{c}")' for c in GATEWAY_NEWS)
    names = ", ".join(f'"{c}"' for c in columns)
    return f"UPDATE gateways AS g SET {sets} FROM unnest({arrays}) AS v({names}) WHERE g.gateway_id = v.gateway_id"


def _null_type(column: str) -> Any:
    kind = GATEWAYS.c[column].type
    return JSON(none_as_null=True) if isinstance(kind, JSON) else kind  # None: SQL NULL, not JSON 'null'


def update_gateways(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Each row: `gateway_id` and any of GATEWAY_NEWS; a missing or None value leaves that column alone."""
    if not rows:
        return
    rows = sorted(rows, key=lambda r: r["gateway_id"])
    if _is_pg(conn):
        conn.exec_driver_sql(_pg_update_sql(), _pg_arrays(GATEWAYS, ("gateway_id", *GATEWAY_NEWS), rows))
        return
    stmt = (
        update(GATEWAYS)
        .where(GATEWAYS.c.gateway_id == bindparam("g"))
        .values({c: func.coalesce(bindparam(f"v_{c}", type_=_null_type(c)), GATEWAYS.c[c]) for c in GATEWAY_NEWS})
    )
    conn.execute(stmt, [{"g": r["gateway_id"], **{f"v_{c}": r.get(c) for c in GATEWAY_NEWS}} for r in rows])

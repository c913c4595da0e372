"""Monthly partitions of `entries` on PostgreSQL (DESIGN §6.3).

`entries` is `PARTITION BY RANGE (ts)`; each month is a partition `entries_YYYYMM` holding
[first day of the month, first day of the next) in UTC (ts is stored as naive UTC). A DEFAULT
partition `entries_default` catches what has no month yet (a gateway's clock far off, a month not
created in time); creating a month's partition moves that month's rows out of the default first,
so the new partition never conflicts with it.

`ensure_partitions` runs at every open and daily from the service: it creates the months from the
previous one to `months_ahead` ahead, plus a month for any row the default holds in the last two
years. All of it under an advisory lock, so two instances never race.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime

from sqlalchemy import Connection, Engine

log = logging.getLogger(__name__)

# pg_advisory_xact_lock keys: one for migrations, one for partition upkeep.
MIGRATION_LOCK = 0x70776E01
PARTITION_LOCK = 0x70776E02

PARENT = "entries"
DEFAULT_PARTITION = "entries_default"
BACKFILL_MONTHS = 24  # months of the default partition's rows that get a partition of their own


def month_start(day: date | datetime) -> date:
    return date(day.year, day.month, 1)


def add_months(month: date, n: int) -> date:
    index = month.year * 12 + (month.month - 1) + n
    return date(index // 12, index % 12 + 1, 1)


def partition_name(month: date) -> str:
    return f"{PARENT}_{month.year:04d}{month.month:02d}"


def existing_partitions(conn: Connection) -> set[str]:
    rows = conn.exec_driver_sql(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = %(parent)s",
        {"parent": PARENT},
    )
    return {name for (name,) in rows}


def create_default_partition(conn: Connection) -> None:
    conn.exec_driver_sql(f"CREATE TABLE IF NOT EXISTS {DEFAULT_PARTITION} PARTITION OF {PARENT} DEFAULT")


def create_month_partition(conn: Connection, month: date) -> bool:
    """Create `month`'s partition if missing (moving its rows out of the default); True if created."""
    month = month_start(month)
    name = partition_name(month)
    if name in existing_partitions(conn):
        return False
    lo, hi = month.isoformat(), add_months(month, 1).isoformat()
    waiting = conn.exec_driver_sql(
        f"SELECT 1 FROM {DEFAULT_PARTITION} WHERE ts >= %(lo)s AND ts < %(hi)s LIMIT 1", {"lo": lo, "hi": hi}
    ).first()
    if waiting is None:
        conn.exec_driver_sql(f"CREATE TABLE {name} PARTITION OF {PARENT} FOR VALUES FROM ('{lo}') TO ('{hi}')")
        return True
    # Rows of this month sit in the default partition: a plain CREATE … PARTITION OF would fail.
    conn.exec_driver_sql(f"CREATE TABLE {name} (LIKE {PARENT} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
    moved = conn.exec_driver_sql(
        f"WITH moved AS (DELETE FROM {DEFAULT_PARTITION} WHERE ts >= %(lo)s AND ts < %(hi)s RETURNING *) "
        f"INSERT INTO {name} SELECT * FROM moved",
        {"lo": lo, "hi": hi},
    ).rowcount
    conn.exec_driver_sql(f"ALTER TABLE {PARENT} ATTACH PARTITION {name} FOR VALUES FROM ('{lo}') TO ('{hi}')")
    log.info("partition %s created with %d rows moved from %s", name, moved, DEFAULT_PARTITION)
    return True


def ensure_partitions_on(conn: Connection, months_ahead: int = 2, now: datetime | None = None) -> list[str]:
    """On an open transaction of a PostgreSQL connection: the partitions created."""
    conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({PARTITION_LOCK})")
    this_month = month_start(now or datetime.now(UTC))
    months = {add_months(this_month, n) for n in range(-1, months_ahead + 1)}
    oldest = add_months(this_month, -BACKFILL_MONTHS)
    stray = conn.exec_driver_sql(
        f"SELECT DISTINCT date_trunc('month', ts)::date FROM {DEFAULT_PARTITION} WHERE ts >= %(lo)s AND ts < %(hi)s",
        {"lo": oldest.isoformat(), "hi": add_months(this_month, months_ahead + 1).isoformat()},
    )
    months.update(month for (month,) in stray)
    return [partition_name(m) for m in sorted(months) if create_month_partition(conn, m)]


def ensure_partitions(engine: Engine, months_ahead: int = 2, now: datetime | None = None) -> list[str]:
    """Create the missing monthly partitions (previous month … `months_ahead` ahead); returns their
    names. Nothing to do on SQLite. Call at open and daily."""
    if engine.dialect.name != "postgresql":
        return []
    with engine.begin() as conn:
        created = ensure_partitions_on(conn, months_ahead, now)
    if created:
        log.info("entries partitions created: %s", ", ".join(created))
    return created

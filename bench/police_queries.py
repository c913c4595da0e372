"""Benchmark: police queries and CSV export on a 10,000,000-entry store (issue 4 item 5).

Builds a store through the migrations (gateway.store.db.open_store) in a
temporary folder, loads N entries spread over 3 years (2,000 tenants, 8 doors,
5% denied, 20% face, the rest card), then prints p50/p95 of the common police
queries through gateway.store.queries, and the CSV export rate through
iter_entries + csv_lines. Targets: p95 <= 50 ms, CSV >= 50,000 rows/s.

    .venv/bin/python -m bench.police_queries [--rows 10000000] [--runs 50] [--keep | --reuse DIR]

The load is one transaction of executemany in chunks with the entries'
secondary indexes dropped and rebuilt afterwards, journal_mode=OFF and
synchronous=OFF (the store is back in WAL before any query is timed). The
database is several GB: it goes under /tmp and is deleted at the end unless
--keep. Timings are with the file in the OS page cache (warm), on one
connection kept open, as the API keeps one per thread.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Connection
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.schema import CreateIndex

from gateway.store.db import database_path, open_store
from gateway.store.models import Entry
from gateway.store.queries import (
    EntryFilter,
    count_entries_per_hour,
    csv_lines,
    explain_entries,
    iter_entries,
    search_entries,
)

TENANTS = 2000
DOORS = [f"door-{i}" for i in range(1, 9)]
YEARS = 3
END = datetime(2026, 11, 23, tzinfo=UTC)
START = END - timedelta(days=365 * YEARS)
CARD_DENIALS = ["unknown_card", "revoked", "suspended", "permit_expired", "outside_schedule"]
FACE_DENIALS = ["unknown_face", "face_mismatch", "revoked", "suspended", "permit_expired"]
CROCKFORD = np.frombuffer(b"0123456789ABCDEFGHJKMNPQRSTVWXYZ", dtype=np.uint8)
COLUMNS = (
    "id, seq, ts, door, method, reader, card_number, card_bits, tenant_id, decision, reason,"
    " face_distance, camera, snapshot"
)
CHUNK = 250_000


def _chunk_rows(rng: np.random.Generator, ts_us: np.ndarray, first_seq: int) -> list[tuple[Any, ...]]:
    """Entry rows for sorted UTC microsecond timestamps, vectorised with NumPy."""
    n = len(ts_us)
    # Stored text 'YYYY-MM-DD HH:MM:SS.ffffff' (what the door's path writes).
    iso = np.datetime_as_string(ts_us.astype("datetime64[us]"), unit="us").astype("S26")
    iso.view(np.uint8).reshape(n, 26)[:, 10] = ord(" ")
    ts_text = iso.astype("U26").tolist()
    # ULIDs: 48-bit milliseconds then 80 random bits, Crockford base32.
    ms = ts_us // 1000
    chars = np.empty((n, 26), dtype=np.uint8)
    for k in range(10):
        chars[:, k] = CROCKFORD[(ms >> (45 - 5 * k)) & 31]
    chars[:, 10:] = CROCKFORD[rng.integers(0, 32, size=(n, 16))]
    ids = chars.view("S26").ravel().astype("U26")

    tenant = rng.integers(0, TENANTS, n)
    door = rng.integers(0, len(DOORS), n)
    face = rng.random(n) < 0.20
    denied = rng.random(n) < 0.05
    denial = rng.integers(0, len(CARD_DENIALS), n)
    unknown = denied & (denial == 0)  # unknown_card / unknown_face: no tenant

    doors = np.array(DOORS, dtype=object)[door]
    tenant_ids = np.array([f"t{i:04d}" for i in range(TENANTS)], dtype=object)[tenant]
    tenant_ids[unknown] = None
    reasons = np.full(n, "granted", dtype=object)
    reasons[denied & ~face] = np.array(CARD_DENIALS, dtype=object)[denial[denied & ~face]]
    reasons[denied & face] = np.array(FACE_DENIALS, dtype=object)[denial[denied & face]]
    card = (10_000_000 + tenant * 2 + rng.integers(0, 2, n)).astype(object)
    card[unknown] = rng.integers(0, 1 << 32, int(unknown.sum())).astype(object)
    card[face] = None
    bits = np.where(face, None, 34).astype(object)
    readers = np.array([f"{d}-r1" for d in DOORS], dtype=object)[door]
    readers[face] = None
    dist = np.round(rng.uniform(0.22, 0.47, n), 4).astype(object)
    dist[denied & face & unknown] = np.round(rng.uniform(0.5, 0.8, int((denied & face & unknown).sum())), 4)
    dist[~face] = None
    cameras = np.array([f"cam-{d}" for d in DOORS], dtype=object)[door]
    cameras[~face] = None
    snapshots = np.full(n, None, dtype=object)
    snapshots[face] = np.char.add(np.char.add("/api/v1/entries/", ids[face]), "/snapshot").astype(object)
    return list(
        zip(
            ids.tolist(),
            range(first_seq, first_seq + n),
            ts_text,
            doors.tolist(),
            np.where(face, "face", "card").tolist(),
            readers.tolist(),
            card.tolist(),
            bits.tolist(),
            tenant_ids.tolist(),
            np.where(denied, "denied", "granted").tolist(),
            reasons.tolist(),
            dist.tolist(),
            cameras.tolist(),
            snapshots.tolist(),
            strict=True,
        )
    )


def load(path: Path, rows: int, seed: int) -> None:
    """Bulk load into a store the migrations created; back in WAL at the end."""
    rng = np.random.default_rng(seed)
    span_us = int((END - START).total_seconds() * 1_000_000)
    start_us = int(START.timestamp() * 1_000_000)
    ts_all = np.sort(rng.integers(0, span_us, rows, dtype=np.int64)) + start_us
    indexes = sorted(Entry.__table__.indexes, key=lambda i: i.name)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=OFF")
    db.execute("PRAGMA synchronous=OFF")
    db.execute("PRAGMA cache_size=-2000000")  # 2 GB for the load and the index builds
    db.execute("BEGIN")
    for ix in indexes:
        db.execute(f"DROP INDEX {ix.name}")
    sql = f"INSERT INTO entries ({COLUMNS}) VALUES ({', '.join('?' * 14)})"
    for first in range(0, rows, CHUNK):
        db.executemany(sql, _chunk_rows(rng, ts_all[first : first + CHUNK], first + 1))
    t = time.perf_counter()
    for ix in indexes:
        db.execute(str(CreateIndex(ix).compile(dialect=sqlite_dialect.dialect())))
    db.execute("COMMIT")
    print(f"  index builds {time.perf_counter() - t:.1f} s (included in load time)")
    db.execute("PRAGMA journal_mode=WAL")
    db.close()


def percentiles(samples: list[float]) -> tuple[float, float]:
    qs = statistics.quantiles(samples, n=100, method="inclusive")
    return qs[49], qs[94]


def no_eviction() -> None:
    pass


def page_cache_evictor(path: Path) -> Callable[[], None]:
    """Drop the store's files (only them) from the OS page cache: --cold."""

    def evict() -> None:
        for p in path.parent.glob(f"{path.name}*"):
            fd = os.open(p, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)

    return evict


def timed(
    conn: Connection, runs: int, make: Callable[[], tuple[EntryFilter, str | None]], evict: Callable[[], None]
) -> tuple[list[float], int]:
    samples: list[float] = []
    returned = 0
    for _ in range(runs):
        f, cursor = make()
        evict()
        t = time.perf_counter()
        page = search_entries(conn, f, cursor=cursor, limit=50)
        samples.append((time.perf_counter() - t) * 1000)
        returned += len(page.items)
        conn.rollback()  # end the read transaction as a request would
    return samples, returned


def cursor_deep(conn: Connection, f: EntryFilter, pages: int) -> tuple[str, list[float]]:
    """Follow real cursors `pages` pages down; the cursor of the next page and each page's time."""
    cursor: str | None = None
    times = []
    for _ in range(pages):
        t = time.perf_counter()
        page = search_entries(conn, f, cursor=cursor, limit=50)
        times.append((time.perf_counter() - t) * 1000)
        cursor = page.next_cursor
        assert cursor is not None, "fewer rows than pages x 50"
    conn.rollback()
    return cursor, times


def export(conn: Connection, f: EntryFilter) -> tuple[int, int, float]:
    t = time.perf_counter()
    n = size = 0
    for line in csv_lines(iter_entries(conn, f)):
        size += len(line.encode("utf-8"))
        n += 1
    elapsed = time.perf_counter() - t
    conn.rollback()
    return n - 1, size, elapsed


def day_of(rnd: random.Random, days: int) -> datetime:
    """A random midnight such that [it, it + days) lies inside the data."""
    return START + timedelta(days=rnd.randrange(0, 365 * YEARS - days + 1))


def run(conn: Connection, runs: int, seed: int, depth: int, evict: Callable[[], None]) -> None:
    rnd = random.Random(seed)
    results: list[tuple[str, list[float], int]] = []

    def add(name: str, make: Callable[[], tuple[EntryFilter, str | None]]) -> None:
        samples, returned = timed(conn, runs, make, evict)
        results.append((name, samples, returned))

    def tenant_30d() -> tuple[EntryFilter, str | None]:
        since = day_of(rnd, 30)
        return EntryFilter(
            since=since, until=since + timedelta(days=30), tenant_id=f"t{rnd.randrange(TENANTS):04d}"
        ), None

    def door_1d() -> tuple[EntryFilter, str | None]:
        since = day_of(rnd, 1)
        return EntryFilter(since=since, until=since + timedelta(days=1), door=rnd.choice(DOORS)), None

    def denied_7d() -> tuple[EntryFilter, str | None]:
        since = day_of(rnd, 7)
        return EntryFilter(since=since, until=since + timedelta(days=7), decision="denied"), None

    def card_30d() -> tuple[EntryFilter, str | None]:
        since = day_of(rnd, 30)
        card = 10_000_000 + rnd.randrange(TENANTS * 2)
        return EntryFilter(since=since, until=since + timedelta(days=30), card_number=card), None

    def reason_7d() -> tuple[EntryFilter, str | None]:
        since = day_of(rnd, 7)
        return EntryFilter(since=since, until=since + timedelta(days=7), reason=rnd.choice(CARD_DENIALS)), None

    def method_1d() -> tuple[EntryFilter, str | None]:
        since = day_of(rnd, 1)
        return EntryFilter(since=since, until=since + timedelta(days=1), method="face"), None

    add("one tenant, 30 days (page 1 of 50)", tenant_30d)
    add("one door, one day (page 1 of 50)", door_1d)
    add("denied, 7 days (page 1 of 50)", denied_7d)
    add("first page, no filter", lambda: (EntryFilter(), None))

    # `depth` pages deep by real cursors: walked once per filter, then the page
    # after them is timed with a random filter each run.
    deep_filters = [EntryFilter(), EntryFilter(decision="denied")] + [EntryFilter(door=d) for d in DOORS]
    evict()
    t = time.perf_counter()
    walks = [cursor_deep(conn, f, depth) for f in deep_filters]
    walk_s = time.perf_counter() - t
    walk_times = [ms for _, times in walks for ms in times]
    deep = [(f, c) for f, (c, _) in zip(deep_filters, walks, strict=True)]
    add(f"page {depth + 1:,} by cursor (no filter / denied / a door)", lambda: rnd.choice(deep))

    print(f"\n{'query (limit 50, ' + str(runs) + ' runs, random parameters)':<58} {'p50 ms':>8} {'p95 ms':>8}  rows")
    for name, samples, returned in results:
        p50, p95 = percentiles(samples)
        flag = "" if p95 <= 50 else f"  MISSED by {p95 - 50:.1f} ms"
        print(f"{name:<58} {p50:8.2f} {p95:8.2f}  {returned / runs:.0f}/page{flag}")
    p50, p95 = percentiles(walk_times)
    print(
        f"{f'every page while walking {depth:,} pages deep (10 filters)':<58} {p50:8.2f} {p95:8.2f}"
        f"  ({len(walk_times)} pages in {walk_s:.1f} s)"
    )

    extras: list[tuple[str, list[float], int]] = []
    for name, make in (
        ("one card, 30 days", card_30d),
        ("one denial reason, 7 days (no reason index)", reason_7d),
        ("method face, one day (no method index)", method_1d),
    ):
        samples, returned = timed(conn, runs, make, evict)
        extras.append((name, samples, returned))
    chart: list[float] = []
    for _ in range(runs):
        since = day_of(rnd, 1)
        evict()
        t = time.perf_counter()
        count_entries_per_hour(conn, since, since + timedelta(days=1))
        chart.append((time.perf_counter() - t) * 1000)
        conn.rollback()
    print("\nother queries")
    for name, samples, returned in extras:
        p50, p95 = percentiles(samples)
        print(f"{name:<58} {p50:8.2f} {p95:8.2f}  {returned / runs:.0f}/page")
    p50, p95 = percentiles(chart)
    print(f"{'count_entries_per_hour, one day':<58} {p50:8.2f} {p95:8.2f}")

    print("\nCSV export (iter_entries batch 5000 + csv_lines, UTF-8 encoded)")
    since = END - timedelta(days=90)
    for name, f in (
        ("one door, last 90 days", EntryFilter(since=since, until=END, door=DOORS[0])),
        ("everything, last 120 days", EntryFilter(since=END - timedelta(days=120), until=END)),
    ):
        evict()
        n, size, elapsed = export(conn, f)
        rate = n / elapsed
        flag = "" if rate >= 50_000 else f"  MISSED by {50_000 - rate:,.0f} rows/s"
        print(f"{name:<34} {n:>9,} rows {size / 1e6:7.1f} MB {elapsed:6.2f} s {rate:>10,.0f} rows/s{flag}")


def show_plans(conn: Connection) -> None:
    day = START + timedelta(days=500)
    print("\nquery plans")
    for name, f in (
        ("tenant 30 d", EntryFilter(since=day, until=day + timedelta(days=30), tenant_id="t0001")),
        ("door 1 d", EntryFilter(since=day, until=day + timedelta(days=1), door=DOORS[0])),
        ("denied 7 d", EntryFilter(since=day, until=day + timedelta(days=7), decision="denied")),
        ("first page", EntryFilter()),
    ):
        print(f"  {name:<12} {' | '.join(explain_entries(conn, f))}")
    conn.rollback()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--keep", action="store_true", help="keep the store and print where it is")
    parser.add_argument("--reuse", type=Path, help="a data folder kept by an earlier --keep run: skip the load")
    parser.add_argument(
        "--cold", action="store_true", help="drop the store's files from the OS page cache before each timed query"
    )
    parser.add_argument("--tmp", type=Path, default=Path("/tmp"), help="where the temporary store goes")
    args = parser.parse_args()

    work = args.reuse or Path(tempfile.mkdtemp(prefix="accessgw-bench-police-", dir=args.tmp))
    try:
        engine, _ = open_store(work)  # the migrations create the schema
        path = database_path(work)
        if args.reuse is None:
            engine.dispose()
            print(f"loading {args.rows:,} entries into {path}")
            t = time.perf_counter()
            load(path, args.rows, args.seed)
            print(f"load time {time.perf_counter() - t:.1f} s")
        size = sum(p.stat().st_size for p in work.glob(f"{path.name}*"))
        with engine.connect() as conn:
            count = conn.exec_driver_sql("SELECT max(rowid) FROM entries").scalar()
            conn.rollback()
            print(f"store {size / 1e9:.2f} GB ({size / max(count or 1, 1):.0f} B/entry), ~{count:,} entries")
            show_plans(conn)
            # 1,000 pages deep at 10M rows; fewer on a small --rows so that denied (5%) has them.
            evict = page_cache_evictor(path) if args.cold else no_eviction
            cache = "COLD: the store is evicted from the OS page cache before each query" if args.cold else "warm"
            print(f"\nOS page cache: {cache}")
            run(conn, args.runs, args.seed, min(1000, (count or 0) // (50 * 25)), evict)
        engine.dispose()
    finally:
        if args.keep or args.reuse:
            print(f"\nstore kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

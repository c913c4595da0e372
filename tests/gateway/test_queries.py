"""Police/admin queries: every filter against brute force, cursors, hostile input, CSV, query plans."""

from __future__ import annotations

import base64
import csv
import io
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from gateway.store.db import open_store
from gateway.store.journal import AlertDraft, EntryDraft, record_alert, record_entry, rfc3339
from gateway.store.models import Alert, AuditLog, Entry
from gateway.store.queries import (
    CSV_COLUMNS,
    AlertFilter,
    AuditFilter,
    EntryFilter,
    count_audit,
    count_entries,
    count_entries_per_hour,
    csv_lines,
    explain_entries,
    iter_audit,
    iter_entries,
    search_alerts,
    search_audit,
    search_entries,
)

T0 = datetime(2026, 10, 1, tzinfo=UTC)
DAYS = 60
ENTRIES = 3000
TENANTS = [f"t{i:02d}" for i in range(12)]
DOORS = ["main", "garage", "roof", "O'Brien's gate"]  # a quote in real data must still match exactly
METHODS = ["card", "face", "card_and_face", "remote", "exit_button"]
DENIALS = ["unknown_card", "revoked", "suspended", "permit_expired", "face_mismatch"]
CARDS = [0x10, 0x11, 0xABCDEF, 0x12345678]
HOSTILE = [
    "x' OR '1'='1",
    "%",
    "_",
    "; DROP TABLE entries;--",
    "' OR 1=1 --",
    '" OR ""="',
    "main' --",
    "\\",
    "\x00",
    "*",
]


@dataclass
class Store:
    sessions: sessionmaker[Session]
    entries: list[Entry]  # brute-force reference, read back through the ORM
    alerts: list[Alert]
    audit: list[AuditLog]


def _entry_drafts(rnd: random.Random) -> Iterator[EntryDraft]:
    ts = T0
    for i in range(ENTRIES):
        if i % 40 != 0:  # every 40th entry has the same ts as the one before: ties need the seq tiebreak
            ts = T0 + timedelta(seconds=rnd.uniform(0, DAYS * 86400))
            ts = ts.replace(microsecond=rnd.choice([0, ts.microsecond]))
        method = rnd.choice(METHODS)
        denied = rnd.random() < 0.15
        reason = rnd.choice(DENIALS) if denied else "granted"
        card = method in ("card", "card_and_face")
        face = method in ("face", "card_and_face")
        tenant = None if reason == "unknown_card" or rnd.random() < 0.05 else rnd.choice(TENANTS)
        yield EntryDraft(
            ts,
            rnd.choice(DOORS),
            method,
            "denied" if denied else "granted",
            reason,
            reader="r1" if card else None,
            card_number=rnd.choice(CARDS) if card else None,
            card_bits=rnd.choice([26, 34]) if card else None,
            tenant_id=tenant,
            face_distance=round(rnd.uniform(0.2, 0.6), 4) if face else None,
            camera="cam-1" if face else None,
            snapshot=f"/api/v1/entries/{i}/snapshot" if face else None,
        )


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    rnd = random.Random(4)
    _, sessions = open_store(tmp_path_factory.mktemp("queries"))
    with sessions.begin() as s:
        # Written in random time order through the door's own path: seq order is not ts order.
        for draft in _entry_drafts(rnd):
            record_entry(s, "gw", draft)
        for i in range(400):
            record_alert(
                s,
                "gw",
                AlertDraft(
                    T0 + timedelta(seconds=rnd.uniform(0, DAYS * 86400)),
                    rnd.choice(["stranger", "door_forced", "watchlist"]),
                    rnd.choice(["raised", "cleared"]),
                    rnd.choice(["info", "warning", "critical"]),
                    door=rnd.choice([*DOORS, None]),
                    camera=rnd.choice(["cam-1", "cam-2", None]),
                    tenant_id=rnd.choice([*TENANTS[:3], None]),
                    details={"n": i},
                ),
            )
    with sessions.begin() as s:
        acked = [a for a in s.scalars(select(Alert.id)) if rnd.random() < 0.3]
        s.execute(update(Alert).where(Alert.id.in_(acked)).values(acknowledged_at=T0, acknowledged_by="officer"))
        for i in range(400):
            ts = T0 + timedelta(seconds=rnd.uniform(0, DAYS * 86400)) if i % 25 else T0 + timedelta(days=1)
            s.add(
                AuditLog(
                    ts=ts,
                    actor=rnd.choice(["admin", "police-1", "police-2", "system"]),
                    action=rnd.choice(["entries.search", "entries.export", "watchlist.set", "retention.prune"]),
                    route="/api/v1/entries",
                    details={"i": i},
                    rows=i,
                )
            )
    with sessions() as s:
        return Store(
            sessions,
            list(s.scalars(select(Entry))),
            list(s.scalars(select(Alert))),
            list(s.scalars(select(AuditLog))),
        )


# --- brute force ---------------------------------------------------------------------


def _in_range(ts: datetime, since: datetime | None, until: datetime | None) -> bool:
    return (since is None or ts >= since) and (until is None or ts < until)


def expected_entries(store: Store, f: EntryFilter) -> list[str]:
    rows = [
        e
        for e in store.entries
        if _in_range(e.ts, f.since, f.until)
        and all(
            getattr(f, k) is None or getattr(e, k) == getattr(f, k)
            for k in ("tenant_id", "card_number", "door", "method", "decision", "reason")
        )
    ]
    return [e.id for e in sorted(rows, key=lambda e: (e.ts, e.seq), reverse=True)]


def expected_alerts(store: Store, f: AlertFilter) -> list[str]:
    rows = [
        a
        for a in store.alerts
        if _in_range(a.ts, f.since, f.until)
        and all(getattr(f, k) is None or getattr(a, k) == getattr(f, k) for k in ("kind", "state", "door", "camera"))
        and (f.tenant_id is None or a.tenant_id == f.tenant_id)
        and (f.acknowledged is None or (a.acknowledged_at is not None) == f.acknowledged)
    ]
    return [a.id for a in sorted(rows, key=lambda a: (a.ts, a.seq), reverse=True)]


def expected_audit(store: Store, f: AuditFilter) -> list[int]:
    rows = [
        r
        for r in store.audit
        if _in_range(r.ts, f.since, f.until)
        and (f.actor is None or r.actor == f.actor)
        and (f.action is None or r.action == f.action)
    ]
    return [r.id for r in sorted(rows, key=lambda r: (r.ts, r.id), reverse=True)]


def page_through(search: Callable[..., Any], db: Any, f: Any, limit: int) -> list[Any]:
    """Every item by following next_cursor; asserts pages are full until the last."""
    out: list[Any] = []
    cursor = None
    while True:
        page = search(db, f, cursor=cursor, limit=limit)
        out += [item["id"] for item in page.items]
        if page.next_cursor is None:
            return out
        assert len(page.items) == limit
        cursor = page.next_cursor


# --- entries -----------------------------------------------------------------------


def entry_filters() -> list[EntryFilter]:
    day = T0 + timedelta(days=20)
    ranges = [
        (None, None),
        (day, None),
        (None, day),
        (day, day + timedelta(days=1)),
        (day, day + timedelta(days=7)),
        (day, day),  # empty: half-open
    ]
    out = []
    for since, until in ranges:
        base = EntryFilter(since=since, until=until)
        out += [
            base,
            replace(base, tenant_id="t03"),
            replace(base, card_number=0xABCDEF),
            replace(base, door="garage"),
            replace(base, door="O'Brien's gate"),
            replace(base, method="face"),
            replace(base, decision="denied"),
            replace(base, reason="revoked"),
            replace(base, door="main", decision="denied", method="card"),
            replace(base, tenant_id="t01", door="roof"),
            replace(base, tenant_id="nobody"),
        ]
    return out


def test_every_entry_filter_matches_brute_force_through_every_page(store: Store) -> None:
    with store.sessions() as s:
        for f in entry_filters():
            want = expected_entries(store, f)
            for limit in (1000, 37):
                got = page_through(search_entries, s, f, limit)
                assert got == want, f
            assert [e["id"] for e in iter_entries(s, f, batch=101)] == want, f
    assert len(expected_entries(store, EntryFilter(door="O'Brien's gate"))) > 100


def test_time_bounds_are_half_open_to_the_microsecond(store: Store) -> None:
    e = store.entries[1234]
    with store.sessions() as s:
        at = [i["id"] for i in search_entries(s, EntryFilter(since=e.ts, until=e.ts + timedelta(microseconds=1))).items]
        assert e.id in at
        assert e.id not in [i["id"] for i in search_entries(s, EntryFilter(until=e.ts), limit=1000).items]
        # Any zone: the same instant.
        local = e.ts.astimezone(timezone(timedelta(hours=8)))
        page = search_entries(s, EntryFilter(since=local, until=local + timedelta(seconds=1)))
        assert e.id in [i["id"] for i in page.items]


def test_paging_twenty_per_page_has_no_gap_and_no_duplicate(store: Store) -> None:
    with store.sessions() as s:
        got = page_through(search_entries, s, EntryFilter(), 20)
    assert len(got) == len(set(got)) == ENTRIES
    assert got == expected_entries(store, EntryFilter())


def test_page_numbers_totals_and_counts_match_brute_force(store: Store) -> None:
    f = EntryFilter(door="roof")
    want = expected_entries(store, f)
    with store.sessions() as s:
        pages = [search_entries(s, f, offset=n, limit=40).items for n in range(0, len(want) + 40, 40)]
        by_offset = [i["id"] for items in pages for i in items]
        assert by_offset == want
        page = search_entries(s, f, offset=40, limit=40, with_total=True)
        assert (page.total, page.total_capped) == (len(want), False) and page.next_cursor is not None
        after = search_entries(s, f, cursor=page.next_cursor, limit=40).items
        assert [i["id"] for i in after] == want[80:120]  # a numbered page's cursor continues after it
        assert count_entries(s, f) == len(want) and count_entries(s, f, cap=10) == 11  # "more than 10"
        with pytest.raises(ValueError, match="not both"):
            search_entries(s, f, cursor=page.next_cursor, offset=1)
        with pytest.raises(ValueError, match="offset"):
            search_entries(s, f, offset=100_001)
        audit = AuditFilter(action="watchlist.set")
        assert [i["id"] for i in iter_audit(s, audit, batch=7)] == [
            i["id"] for i in search_audit(s, audit, limit=1000).items]  # fmt: skip
        assert count_audit(s, audit) == len(search_audit(s, audit, limit=1000).items)


def test_items_carry_the_mqtt_entry_fields_plus_reader(store: Store) -> None:
    with store.sessions() as s:
        page = search_entries(s, EntryFilter(method="card_and_face"), limit=1)
    item = page.items[0]
    e = next(x for x in store.entries if x.id == item["id"])
    assert item == {
        "id": e.id,
        "seq": e.seq,
        "ts": rfc3339(e.ts),
        "door": e.door,
        "method": e.method,
        "reader": e.reader,
        "card_number": e.card_number,
        "card_bits": e.card_bits,
        "tenant_id": e.tenant_id,
        "decision": e.decision,
        "reason": e.reason,
        "face_distance": e.face_distance,
        "camera": e.camera,
        "snapshot": e.snapshot,
        "direction": None,  # in / out only at a door with entry and exit readers (anti-passback)
        "tenant_name": None,  # the fixture's tenant ids name no tenant row
        "room": None,
        "matched_card": None,  # only a 26-bit read needs one
    }
    assert item["ts"].endswith("Z") and isinstance(item["card_number"], int)


def test_a_connection_works_as_well_as_a_session(store: Store) -> None:
    engine = store.sessions.kw["bind"]
    with engine.connect() as conn:
        page = search_entries(conn, EntryFilter(door="roof"), limit=10)
    assert [i["id"] for i in page.items] == expected_entries(store, EntryFilter(door="roof"))[:10]


def _b64(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "abc",
        "!!!!",
        "é",
        "A" * 5000,
        _b64("e:12"),
        _b64("e:x:2026-10-01 00:00:00.000000"),
        _b64("e:-1:2026-10-01 00:00:00.000000"),
        _b64("e:99999999999999999999:2026-10-01 00:00:00.000000"),
        _b64("e:12:2026-13-45 00:00:00.000000"),
        _b64("e:12:2026-10-01T00:00:00.000000"),
        _b64("e:12:2026-10-01 00:00:00.000000' OR '1'='1"),
        _b64("a:12:2026-10-01 00:00:00.000000"),  # an alerts cursor
    ],
)
def test_a_malformed_cursor_is_a_value_error(store: Store, cursor: str) -> None:
    with store.sessions() as s, pytest.raises(ValueError, match="malformed cursor"):
        search_entries(s, EntryFilter(), cursor=cursor)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(f=EntryFilter(since=datetime(2026, 10, 1))), "time zone"),
        (dict(f=EntryFilter(until=datetime(2026, 10, 1))), "time zone"),
        (dict(f=EntryFilter(since=T0 + timedelta(days=2), until=T0)), "since must not be after until"),
        (dict(f=EntryFilter(), limit=0), "limit"),
        (dict(f=EntryFilter(), limit=1001), "limit"),
        (dict(f=EntryFilter(card_number=1 << 64)), "card_number"),
        (dict(f=EntryFilter(card_number="5")), "card_number"),  # type: ignore[arg-type]
        (dict(f=EntryFilter(door="\ud800")), "door"),  # a lone surrogate from JSON
        (dict(f=EntryFilter(since=datetime.min.replace(tzinfo=timezone(timedelta(hours=1))))), "since"),
    ],
)
def test_bad_arguments_are_value_errors(store: Store, kwargs: dict[str, Any], message: str) -> None:
    with store.sessions() as s, pytest.raises(ValueError, match=message):
        search_entries(s, **kwargs)
    if "limit" not in kwargs:
        with store.sessions() as s, pytest.raises(ValueError, match=message):
            iter_entries(s, kwargs["f"])  # raised at the call, before any row is streamed


def test_a_year_below_1000_is_padded_like_the_stored_text(store: Store) -> None:
    with store.sessions() as s:
        page = search_entries(s, EntryFilter(since=datetime(5, 1, 1, tzinfo=UTC)), limit=5)
    assert len(page.items) == 5


def _fingerprint(s: Session) -> tuple[Any, ...]:
    conn = s.connection()
    tables = conn.exec_driver_sql("SELECT type, name, sql FROM sqlite_master ORDER BY name").all()
    counts = [conn.exec_driver_sql(f"SELECT count(*) FROM {t}").scalar() for t in ("entries", "alerts", "audit_log")]
    return tuple(tables), tuple(counts)


def test_sql_ish_filter_values_match_nothing_and_change_nothing(store: Store) -> None:
    with store.sessions() as s:
        before = _fingerprint(s)
        raw = s.connection().connection.driver_connection
        changes = raw.total_changes
        for value in HOSTILE:
            for name in ("tenant_id", "door", "method", "decision", "reason"):
                f = EntryFilter(**{name: value})
                assert search_entries(s, f).items == [], (name, value)
                assert list(iter_entries(s, f)) == []
            for name in ("kind", "state", "door", "camera", "tenant_id"):
                assert search_alerts(s, AlertFilter(**{name: value})).items == [], (name, value)
            for name in ("actor", "action"):
                assert search_audit(s, AuditFilter(**{name: value})).items == [], (name, value)
        assert raw.total_changes == changes
        assert _fingerprint(s) == before


# --- query plans -------------------------------------------------------------------


def _assert_indexed(plan: list[str], index: str) -> None:
    text = " | ".join(plan)
    entry_steps = [p for p in plan if " entries" in p]
    assert entry_steps, text
    for step in entry_steps:
        assert "USING INDEX" in step or "USING COVERING INDEX" in step, text  # never a full SCAN entries
    assert f"INDEX {index} " in text + " ", text
    assert "USE TEMP B-TREE FOR ORDER BY" not in text, text  # at most the ts ties get sorted


def test_common_police_queries_use_an_index(store: Store) -> None:
    day = T0 + timedelta(days=20)
    with store.sessions() as s:
        first = search_entries(s, EntryFilter(), limit=50)
        deep = first.next_cursor
        for _ in range(20):
            deep = search_entries(s, EntryFilter(), cursor=deep, limit=50).next_cursor
        assert deep is not None
        cases = [
            (EntryFilter(since=day, until=day + timedelta(days=30), tenant_id="t03"), None, "ix_entries_tenant_ts"),
            (EntryFilter(since=day, until=day + timedelta(days=1), door="garage"), None, "ix_entries_door_ts"),
            (EntryFilter(since=day, until=day + timedelta(days=7), decision="denied"), None, "ix_entries_decision_ts"),
            (EntryFilter(since=day, until=day + timedelta(days=30), card_number=0x10), None, "ix_entries_card_ts"),
            (EntryFilter(), None, "ix_entries_ts"),
            (EntryFilter(), deep, "ix_entries_ts"),
            (EntryFilter(door="roof"), deep, "ix_entries_door_ts"),
        ]
        for f, cursor, index in cases:
            plan = explain_entries(s, f, cursor=cursor, limit=50)
            _assert_indexed(plan, index)
            if cursor is not None:  # the cursor bounds the index range: the deep page does not walk the top
                assert any("ts<?" in p for p in plan), plan


# --- alerts and audit --------------------------------------------------------------


def test_alert_filters_match_brute_force(store: Store) -> None:
    day = T0 + timedelta(days=10)
    base = [AlertFilter(), AlertFilter(since=day, until=day + timedelta(days=20))]
    variants = [
        dict(kind="stranger"),
        dict(state="cleared"),
        dict(door="O'Brien's gate"),
        dict(camera="cam-2"),
        dict(tenant_id="t01"),
        dict(acknowledged=True),
        dict(acknowledged=False),
        dict(kind="door_forced", acknowledged=False, door="main"),
        {},
    ]
    with store.sessions() as s:
        for b in base:
            for v in variants:
                f = replace(b, **v)
                assert page_through(search_alerts, s, f, 17) == expected_alerts(store, f), f
        item = search_alerts(s, AlertFilter(acknowledged=True), limit=1).items[0]
    a = next(x for x in store.alerts if x.id == item["id"])
    assert item["details"] == a.details and item["acknowledged_by"] == "officer"
    assert item["acknowledged_at"] == rfc3339(T0) and item["ts"] == rfc3339(a.ts) and item["seq"] == a.seq


def test_audit_filters_match_brute_force(store: Store) -> None:
    day = T0 + timedelta(days=1)
    with store.sessions() as s:
        for f in [
            AuditFilter(),
            AuditFilter(actor="police-1"),
            AuditFilter(action="entries.export"),
            AuditFilter(actor="admin", action="watchlist.set"),
            AuditFilter(since=day, until=day + timedelta(days=9)),
            AuditFilter(since=day, until=day + timedelta(microseconds=1)),  # the tied rows
            AuditFilter(since=day, actor="system"),
        ]:
            assert page_through(search_audit, s, f, 7) == expected_audit(store, f), f
        item = search_audit(s, AuditFilter(), limit=1).items[0]
        with pytest.raises(ValueError, match="malformed cursor"):
            search_audit(s, AuditFilter(), cursor=search_entries(s, EntryFilter(), limit=1).next_cursor)
    assert set(item) == {"id", "ts", "actor", "action", "route", "details", "rows"}


def test_audit_queries_use_an_index(store: Store) -> None:
    with store.sessions() as s:
        conn = s.connection()
        for column, index in (("actor", "ix_audit_actor_ts"), ("action", "ix_audit_action_ts")):
            plan = conn.exec_driver_sql(
                f"EXPLAIN QUERY PLAN SELECT id FROM audit_log WHERE {column} = ? AND ts >= ? ORDER BY ts DESC, id DESC",
                ("x", "2026-01-01"),
            ).all()
            assert index in str(plan) and "TEMP B-TREE" not in str(plan), plan


# --- CSV -----------------------------------------------------------------------------


def test_csv_is_rfc4180_and_formula_safe() -> None:
    rows = [
        dict(id="a", seq=1, door='=HYPERLINK("http://x")', reader="+1", tenant_id="-2+3", reason="@SUM(A1)"),
        dict(id="b", seq=2, door="a,b", reader='say "hi"', tenant_id="two\r\nlines", reason="\tTAB", camera="\rCR"),
        dict(id="c", seq=-5, card_number=0xABCDEF, face_distance=0.4123, door="plain", snapshot=None),
    ]
    lines = list(csv_lines(rows))
    assert lines[0] == ",".join(CSV_COLUMNS) + "\r\n"
    assert all(line.endswith("\r\n") for line in lines) and len(lines) == 4
    text = "".join(lines)
    assert '"a,b"' in text and '"say ""hi"""' in text
    parsed = list(csv.DictReader(io.StringIO(text, newline="")))
    assert parsed[0]["door"] == '\'=HYPERLINK("http://x")'
    assert (parsed[0]["reader"], parsed[0]["tenant_id"], parsed[0]["reason"]) == ("'+1", "'-2+3", "'@SUM(A1)")
    assert (parsed[1]["door"], parsed[1]["reader"], parsed[1]["tenant_id"]) == ("a,b", 'say "hi"', "two\r\nlines")
    assert (parsed[1]["reason"], parsed[1]["camera"]) == ("'\tTAB", "'\rCR")
    assert (parsed[2]["seq"], parsed[2]["card_number"], parsed[2]["face_distance"]) == ("-5", str(0xABCDEF), "0.4123")
    assert parsed[2]["snapshot"] == "" and parsed[2]["method"] == ""
    for row in parsed:  # nothing a spreadsheet would evaluate
        assert not any(v.startswith(("=", "+", "@", "\t", "\r")) for v in row.values())


def test_csv_export_of_the_store_round_trips(store: Store) -> None:
    f = EntryFilter(door="O'Brien's gate", since=T0 + timedelta(days=5))
    with store.sessions() as s:
        text = "".join(csv_lines(iter_entries(s, f, batch=64)))
    parsed = list(csv.DictReader(io.StringIO(text, newline="")))
    assert [r["id"] for r in parsed] == expected_entries(store, f)
    by_id = {e.id: e for e in store.entries}
    for r in parsed:
        e = by_id[r["id"]]
        assert r["door"] == "O'Brien's gate" and int(r["seq"]) == e.seq and r["ts"] == rfc3339(e.ts)
        assert r["card_number"] == ("" if e.card_number is None else str(e.card_number))


# --- chart -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "hours"),
    [
        (datetime(2026, 10, 20, tzinfo=timezone(timedelta(hours=8))), 24),
        (datetime(2026, 11, 1, tzinfo=ZoneInfo("America/New_York")), 25),  # clocks go back: two 01:00 hours
        (datetime(2026, 10, 21, tzinfo=ZoneInfo("Asia/Kolkata")), 24),  # +05:30
        (datetime(2026, 10, 22, tzinfo=UTC), 24),
    ],
)
def test_entries_per_hour_matches_brute_force(store: Store, start: datetime, hours: int) -> None:
    end = (start.astimezone(UTC) + timedelta(hours=hours)).astimezone(start.tzinfo)
    assert end.hour == 0
    want = [0] * 24
    for e in store.entries:
        if start <= e.ts < end:
            want[e.ts.astimezone(start.tzinfo).hour] += 1
    with store.sessions() as s:
        got = count_entries_per_hour(s, start, end)
    assert got == want and sum(got) > 20


def test_entries_per_hour_refuses_more_than_a_day(store: Store) -> None:
    with store.sessions() as s:
        with pytest.raises(ValueError, match="one day"):
            count_entries_per_hour(s, T0, T0 + timedelta(hours=26))
        with pytest.raises(ValueError, match="time zone"):
            count_entries_per_hour(s, datetime(2026, 10, 1), datetime(2026, 10, 2))
        with pytest.raises(ValueError, match="after"):
            count_entries_per_hour(s, T0 + timedelta(hours=1), T0)


def test_filters_are_frozen_dataclasses_with_optional_fields() -> None:
    for cls in (EntryFilter, AlertFilter, AuditFilter):
        assert all(f.default is None for f in fields(cls))
        with pytest.raises(AttributeError):
            cls().since = T0  # type: ignore[misc]


def test_store_fixture_is_sane(store: Store) -> None:
    assert len(store.entries) == ENTRIES and len(store.alerts) == 400 and len(store.audit) == 400
    seq_order = [e.id for e in sorted(store.entries, key=lambda e: e.seq)]
    ts_order = [e.id for e in sorted(store.entries, key=lambda e: (e.ts, e.seq))]
    assert seq_order != ts_order  # the keyset must not rely on seq following ts

"""The ingest's rules, on both back-ends, messages handed straight to it (no broker): each event
stored once under its gateway, gaps counted, health taken, hooks called, bad payloads counted and
acknowledged, and nothing acknowledged before its commit."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from config.town import TownConfig
from sync.mqtt_client import InboundMessage
from tests.town.rigs import alert, count, entry, inbound, stored_ids
from town import ingest as ingest_module
from town.ingest import Ingest, shared_filters
from town.store import bulk, open_town_store
from town.store.models import Gateway, RosterEvent, TownAlert, TownEntry


@pytest.fixture
def town(town_cfg: TownConfig) -> Iterator[sessionmaker[Session]]:
    engine, sessions = open_town_store(town_cfg)
    yield sessions
    engine.dispose()


class Acks(list):
    def __call__(self, msg: InboundMessage) -> bool:
        self.append(msg)
        return True


def make_ingest(sessions: sessionmaker[Session], **kwargs) -> tuple[Ingest, Acks]:
    ing = Ingest(sessions, **kwargs)
    acks = Acks()
    ing._ack = acks  # what start(ack) sets; process() is called directly here
    return ing, acks


def gateway(sessions: sessionmaker[Session], gateway_id: str) -> Gateway:
    with sessions() as s:
        row = s.get(Gateway, gateway_id)
        assert row is not None, gateway_id
        return row


def test_filters_are_the_groups_shared_subscriptions() -> None:
    assert shared_filters("accessgw", "platform") == [
        "$share/platform/accessgw/+/events/#", "$share/platform/accessgw/+/availability",
        "$share/platform/accessgw/+/state", "$share/platform/accessgw/+/response/#"]  # fmt: skip


def test_entries_and_alerts_of_two_gateways_are_stored_once_each_under_their_gateway(town) -> None:
    ing, acks = make_ingest(town)
    msgs, expected = [], {}
    for gw in ("gw-a", "gw-b"):
        for seq in range(1, 41):
            payload = entry(gw, seq) if seq % 4 else alert(gw, seq)
            expected[payload["id"]] = gw
            msgs.append(inbound(f"accessgw/{gw}/events/{'entry' if seq % 4 else 'alert'}", payload, len(msgs) + 1))
    assert ing.process(msgs)
    assert len(acks) == 80
    assert stored_ids(town) == {i: [gw] for i, gw in expected.items()}
    assert ing.process(msgs)  # delivered again: nothing more
    assert stored_ids(town) == {i: [gw] for i, gw in expected.items()}
    assert (ing.counters.inserted, ing.counters.duplicates, ing.counters.malformed) == (80, 80, 0)
    with town() as s:
        e = s.scalars(select(TownEntry).where(TownEntry.gateway_id == "gw-a").order_by(TownEntry.seq)).first()
        assert (e.seq, e.card_number, e.card_bits, e.decision, e.ts.tzinfo) == (1, 305419896, 34, "granted", UTC)
        a = s.scalars(select(TownAlert).where(TownAlert.gateway_id == "gw-b")).first()
        assert (a.kind, a.details, a.acknowledged_at) == ("door_forced", {"input": 2}, None)
    for gw in ("gw-a", "gw-b"):
        row = gateway(town, gw)
        assert (row.last_seq, row.missing_seqs) == (40, 0)
        assert row.last_seen is not None


def test_the_same_event_twice_in_one_batch_is_stored_once(town) -> None:
    ing, acks = make_ingest(town)
    payload = entry("gw-a", 1)
    assert ing.process([inbound("accessgw/gw-a/events/entry", payload, 1),
                        inbound("accessgw/gw-a/events/entry", payload, 2)])  # fmt: skip
    assert count(town, TownEntry) == 1 and len(acks) == 2
    assert (ing.counters.inserted, ing.counters.duplicates) == (1, 1)
    assert (gateway(town, "gw-a").last_seq, gateway(town, "gw-a").missing_seqs) == (1, 0)


def test_gaps_are_counted_and_late_events_fill_them_but_duplicates_change_nothing(town) -> None:
    ing, _ = make_ingest(town)
    events = {seq: entry("gw-a", seq) for seq in (1, 2, 3, 5, 6, 9, 4)}

    def feed(*seqs: int) -> tuple[int, int]:
        ing.process([inbound("accessgw/gw-a/events/entry", events[s]) for s in seqs])
        row = gateway(town, "gw-a")
        return row.last_seq, row.missing_seqs

    assert feed(1, 2) == (2, 0)
    assert feed(5, 6) == (6, 2)  # 3 and 4 missing
    assert feed(9) == (9, 4)  # 7 and 8 too
    assert feed(3) == (9, 3)  # late
    assert feed(3, 5, 9) == (9, 3)  # delivered again: no change
    assert feed(4) == (9, 2)
    # A roster request shares the sequence; it has no row: counted when above last_seq.
    ing.process(
        [
            inbound(
                "accessgw/gw-a/events/roster_request",
                {"id": "R1", "seq": 11, "ts": "2026-11-26T08:00:00Z", "version": 3, "reason": "version_gap"},
            )
        ]
    )
    assert (gateway(town, "gw-a").last_seq, gateway(town, "gw-a").missing_seqs) == (11, 3)  # 7, 8, 10


def test_a_gateway_first_seen_mid_sequence_counts_what_came_before_as_missing(town) -> None:
    ing, _ = make_ingest(town)
    ing.process([inbound("accessgw/gw-new/events/alert", alert("gw-new", 5))])
    row = gateway(town, "gw-new")
    assert (row.last_seq, row.missing_seqs, row.availability) == (5, 4, "unknown")


def test_availability_state_and_responses_update_the_gateway(town) -> None:
    responses, requests = [], []
    ing, acks = make_ingest(
        town,
        on_response=lambda s, gw, cmd, p: responses.append((gw, cmd, p["transaction"], s.in_transaction())),
        on_roster_request=requests.append,
    )
    state = {"ts": "2026-11-26T08:00:00Z", "version": "0.1.0", "roster_version": 41, "outbox_depth": 7,
             "swipes": 3, "bad_frames": {}, "readers": {"r1": {"online": True, "error": None}}, "io_modules": {},
             "cameras": {}, "last_error": None}  # fmt: skip
    ing.process([inbound("accessgw/gw-a/availability", "online"), inbound("accessgw/gw-a/state", state)])
    row = gateway(town, "gw-a")
    assert (row.availability, row.roster_version, row.outbox_depth, row.state) == ("online", 41, 7, state)
    seen = row.last_seen
    assert seen is not None

    ing.process([inbound("accessgw/gw-a/response/roster/patch", {"transaction": "t-1", "status": "ok", "version": 42})])
    assert gateway(town, "gw-a").roster_version == 42
    ing.process(
        [
            inbound(
                "accessgw/gw-a/response/roster/patch",
                {"transaction": "t-2", "status": "error", "error": "version_gap", "message": "…"},
            )
        ]
    )
    assert gateway(town, "gw-a").roster_version == 42
    ing.process(
        [
            inbound(
                "accessgw/gw-a/response/state",
                {"transaction": "t-3", "status": "ok", "state": state | {"outbox_depth": 0, "roster_version": 42}},
            )
        ]
    )
    assert gateway(town, "gw-a").outbox_depth == 0
    assert [r[:3] for r in responses] == [("gw-a", "roster/patch", "t-1"), ("gw-a", "roster/patch", "t-2"),
                                          ("gw-a", "state", "t-3")]  # fmt: skip
    assert all(r[3] for r in responses)  # in the ingest's transaction

    ing.process(
        [
            inbound(
                "accessgw/gw-a/events/roster_request",
                {"id": "R1", "seq": 1, "ts": "2026-11-26T08:00:00Z", "version": 42, "reason": "version_gap"},
            )
        ]
    )
    assert requests == ["gw-a"]
    ing.process([inbound("accessgw/gw-a/availability", "offline")])
    row = gateway(town, "gw-a")
    assert row.availability == "offline" and row.roster_version == 42 and row.state["outbox_depth"] == 0
    assert len(acks) == 7


def test_roster_events_are_kept_and_the_hook_sees_each_new_one_once_in_the_transaction(town) -> None:
    merged = []

    def merge(session: Session, gateway_id: str, payload: dict) -> None:
        assert session.get(RosterEvent, payload["id"]) is not None  # its row is there, same transaction
        merged.append((gateway_id, payload["tenant_id"]))

    ing, _ = make_ingest(town, on_roster_event=merge)
    event = {
        "id": "01JROSTER00000000000000001",
        "seq": 1,
        "ts": "2026-11-26T08:00:00.000Z",
        "gateway_id": "gw-a",
        "change": "tenant.create",
        "by": "admin",
        "tenant_id": "T1",
        "tenant": {"id": "T1", "name": "王芳", "permit": "440106199001011234", "cards": [1], "templates": []},
    }
    ing.process([inbound("accessgw/gw-a/events/roster", event)])
    ing.process([inbound("accessgw/gw-a/events/roster", event)])
    assert merged == [("gw-a", "T1")]
    with town() as s:
        row = s.get(RosterEvent, event["id"])
        assert (row.gateway_id, row.change, row.tenant_id, row.payload["tenant"]["name"]) == (
            "gw-a", "tenant.create", "T1", "王芳")  # fmt: skip


def test_a_failing_hook_is_rolled_back_and_logged_but_the_event_is_kept(town) -> None:
    def merge(session: Session, gateway_id: str, payload: dict) -> None:
        session.add(Gateway(gateway_id="half-done"))
        session.flush()
        raise RuntimeError("register bug")

    ing, acks = make_ingest(town, on_roster_event=merge)
    event = {"id": "R2", "seq": 1, "ts": "2026-11-26T08:00:00Z", "change": "tenant.delete", "tenant_id": "T1",
             "tenant": None}  # fmt: skip
    ing.process(
        [inbound("accessgw/gw-a/events/roster", event), inbound("accessgw/gw-a/events/entry", entry("gw-a", 2))]
    )
    assert count(town, RosterEvent) == 1 and count(town, TownEntry) == 1 and len(acks) == 2
    assert ing.counters.hook_errors == 1
    with town() as s:
        assert s.get(Gateway, "half-done") is None


BAD = [
    ("accessgw/gw-a/events/entry", b"{not json"),
    ("accessgw/gw-a/events/entry", b"[1, 2]"),
    ("accessgw/gw-a/events/entry", {"id": "X1", "seq": 3}),  # fields missing
    ("accessgw/gw-a/events/entry", {**entry("gw-a", 4), "seq": "4"}),  # wrong type
    ("accessgw/gw-a/events/entry", {**entry("gw-a", 5), "seq": True}),
    ("accessgw/gw-a/events/entry", {**entry("gw-a", 6), "ts": "yesterday"}),
    ("accessgw/gw-a/events/entry", {**entry("gw-a", 7), "ts": "2026-11-26T08:00:00"}),  # no offset
    ("accessgw/gw-a/events/entry", {**entry("gw-a", 8), "door": "d" * 65}),  # too long for its column
    ("accessgw/gw-a/events/entry", {**entry("gw-a", 9), "door": "a\x00b"}),
    ("accessgw/gw-a/events/entry", {**entry("gw-a", 10), "card_number": 2**64}),
    ("accessgw/gw-a/events/entry", {**entry("gw-a", 11), "gateway_id": "gw-b"}),  # another gateway's event
    ("accessgw/gw-a/events/alert", {**alert("gw-a", 12), "details": [1]}),
    ("accessgw/gw-a/events/alert", {**alert("gw-a", 13), "seq": 0}),
    ("accessgw/gw-a/events/whatever", {"id": "X"}),
    ("accessgw/gw-a/availability", b"maybe"),
    ("accessgw/gw-a/response/roster/patch", {"transaction": "t"}),  # no status
    ("other/gw-a/events/entry", entry("gw-a", 14)),
    ("accessgw/" + "g" * 65 + "/events/entry", entry("g" * 65, 1)),
]


def test_malformed_payloads_are_counted_and_acknowledged_and_the_good_ones_stored(town) -> None:
    ing, acks = make_ingest(town)
    good = entry("gw-a", 1)
    msgs = [inbound(topic, payload, i + 1) for i, (topic, payload) in enumerate(BAD)]
    msgs.insert(5, inbound("accessgw/gw-a/events/entry", good, 99))
    assert ing.process(msgs)
    assert len(acks) == len(BAD) + 1
    assert ing.counters.malformed == len(BAD)
    assert list(stored_ids(town)) == [good["id"]]
    assert ing.counters.inserted == 1


def test_nan_and_infinite_numbers_are_malformed(town) -> None:
    ing, acks = make_ingest(town)
    raw = json.dumps({**entry("gw-a", 1), "face_distance": math.nan})  # Python writes NaN, json.loads reads it
    ing.process([inbound("accessgw/gw-a/events/entry", raw.encode())])
    assert ing.counters.malformed == 1 and count(town, TownEntry) == 0 and len(acks) == 1


def test_a_failed_commit_acknowledges_nothing_and_is_tried_again(town, monkeypatch) -> None:
    ing, acks = make_ingest(town, retry_max_s=0.05)
    real = bulk.insert_new
    failures = []

    def flaky(conn, table, rows, key="id"):
        if len(failures) < 3:
            failures.append(len(acks))  # how many acks had gone out when the write failed
            raise OperationalError("INSERT", {}, Exception("database is away"))
        return real(conn, table, rows, key)

    monkeypatch.setattr(ingest_module.bulk, "insert_new", flaky)
    msgs = [inbound("accessgw/gw-a/events/entry", entry("gw-a", s), s) for s in range(1, 6)]
    assert ing.process(msgs)
    assert failures == [0, 0, 0]
    assert len(acks) == 5 and count(town, TownEntry) == 5
    assert ing.counters.commit_failures == 3 and ing.counters.batches == 1
    assert gateway(town, "gw-a").last_seq == 5


def test_a_batch_stopped_while_failing_acknowledges_nothing(town, monkeypatch) -> None:
    ing, acks = make_ingest(town)

    def down(*args, **kwargs):
        ing._stop.set()  # stop() while the database is away
        raise OperationalError("INSERT", {}, Exception("database is away"))

    monkeypatch.setattr(ingest_module.bulk, "insert_new", down)
    assert not ing.process([inbound("accessgw/gw-a/events/entry", entry("gw-a", 1))])
    assert acks == []


def test_a_message_the_database_refuses_is_isolated_acknowledged_and_counted(town, monkeypatch) -> None:
    ing, acks = make_ingest(town)
    poison = entry("gw-a", 2)
    real = bulk.insert_new

    def picky(conn, table, rows, key="id"):
        if any(r["id"] == poison["id"] for r in rows):
            raise IntegrityError("INSERT", {}, Exception("refused"))
        return real(conn, table, rows, key)

    monkeypatch.setattr(ingest_module.bulk, "insert_new", picky)
    msgs = [inbound("accessgw/gw-a/events/entry", e, i) for i, e in
            enumerate([entry("gw-a", 1), poison, entry("gw-a", 3)], 1)]  # fmt: skip
    assert ing.process(msgs)
    assert len(acks) == 3 and count(town, TownEntry) == 2 and ing.counters.malformed == 1
    assert (gateway(town, "gw-a").last_seq, gateway(town, "gw-a").missing_seqs) == (3, 1)


def test_entries_keep_their_time_in_utc(town) -> None:
    ing, _ = make_ingest(town)
    local = datetime(2026, 11, 26, 16, 30, 5, 123000, tzinfo=UTC) + timedelta(0)
    payload = entry("gw-a", 1) | {"ts": "2026-11-27T00:30:05.123+08:00"}
    ing.process([inbound("accessgw/gw-a/events/entry", payload)])
    with town() as s:
        assert s.scalars(select(TownEntry.ts)).one() == local

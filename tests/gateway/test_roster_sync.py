"""The platform's roster applied to the store (DESIGN §6.1): versions, patches, snapshots, strict validation.

On a real SQLite store, no broker; the request handlers through the real router and guard."""

from __future__ import annotations

import asyncio
import base64
import json
import struct
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from gateway.access import DoorPolicy, decide_card
from gateway.platform_requests import RosterRequests
from gateway.store.db import open_store, session_factory, write_now, write_now_on
from gateway.store.replay import SqlReplayMemory
from gateway.store.roster import NewTenant, add_tenant, change_counter, holders_for_read
from gateway.store.roster_snapshot import (
    apply_changes,
    apply_new_rows,
    apply_snapshot,
    drop_stage,
    new_row_batches,
    stage_snapshot,
)
from gateway.store.roster_sync import RosterSyncError, apply_patch, current_version, parse_ops
from sync.commands import CommandRouter, RequestGuard
from sync.signing import new_key_pair, public_key, sign

TODAY = date.today()
VALID_TO = f"{TODAY.year + 1}-06-30"
NAN_VECTOR = base64.b64encode(struct.pack("<128f", *[float("nan")] * 128)).decode()


def vector(seed: float = 0.1) -> str:
    return base64.b64encode(struct.pack("<128f", *[seed + i / 1000 for i in range(128)])).decode()


def tenant(tid: str, **extra: Any) -> dict[str, Any]:
    op = {"op": "upsert", "kind": "tenant", "id": tid, "name": f"Tenant {tid}", "permit": f"P-{tid}",
          "valid_from": "2026-01-01", "valid_to": VALID_TO, "room": "302", "status": "active"}  # fmt: skip
    return op | extra


def card(number: int, tid: str) -> dict[str, Any]:
    return {"op": "upsert", "kind": "card", "number": number, "tenant": tid}


def template(fid: str, tid: str, seed: float = 0.1) -> dict[str, Any]:
    return {"op": "upsert", "kind": "template", "id": fid, "tenant": tid, "vector": vector(seed)}


def watch(wid: str, n: int = 2) -> dict[str, Any]:
    return {"op": "upsert", "kind": "watch", "id": wid, "name": "someone", "note": "seen at the station",
            "vectors": [vector(0.5 + i) for i in range(n)]}  # fmt: skip


def delete(kind: str, **key: Any) -> dict[str, Any]:
    return {"op": "delete", "kind": kind, **key}


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine, _ = open_store(tmp_path / "data")
    try:
        yield engine
    finally:
        engine.dispose()


def patch(engine: Engine, from_version: int, to_version: int, ops: list[dict[str, Any]]) -> tuple[str, int]:
    parsed = parse_ops(ops)
    with write_now(engine) as conn:
        outcome = apply_patch(conn, from_version, to_version, parsed)
    return outcome.status, outcome.version


def rows(engine: Engine, sql: str) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.exec_driver_sql(sql)]


def decision(engine: Engine, number: int) -> str:
    with engine.connect() as conn:
        return decide_card(holders_for_read(conn, number, 34), DoorPolicy("main", "card"), datetime.now()).reason


def everything(engine: Engine) -> list[Any]:
    return [rows(engine, f"SELECT * FROM {t} ORDER BY 1") for t in ("tenants", "cards", "watch_entries")] + [
        rows(engine, "SELECT platform_id, tenant_id, embedding FROM face_templates ORDER BY 1"),
        rows(engine, "SELECT watch_id, embedding FROM watch_vectors ORDER BY 1, 2"),
        current_version(engine.connect()),
    ]


def test_a_new_gateway_is_at_version_0_and_a_patch_enrols_and_versions(engine: Engine) -> None:
    with engine.connect() as conn:
        assert current_version(conn) == 0
        counter = change_counter(conn)
    ops = [tenant("T1"), card(305419896, "T1"), template("F9", "T1"), watch("W3")]
    assert patch(engine, 0, 1, ops) == ("applied", 1)
    assert decision(engine, 305419896) == "granted"
    assert rows(engine, "SELECT id, permit_number, valid_from, valid_to, room, status FROM tenants") == [
        ("T1", "P-T1", "2026-01-01", VALID_TO, "302", "active")
    ]
    assert rows(engine, "SELECT platform_id, tenant_id, length(embedding) FROM face_templates") == [("F9", "T1", 512)]
    assert rows(engine, "SELECT id, name, note FROM watch_entries") == [("W3", "someone", "seen at the station")]
    assert rows(engine, "SELECT watch_id, length(embedding) FROM watch_vectors") == [("W3", 512)] * 2
    with engine.connect() as conn:
        assert current_version(conn) == 1
        assert change_counter(conn) > counter  # the face index reloads

    # The same patch again: nothing changes, ok.
    before = everything(engine)
    assert patch(engine, 0, 1, ops) == ("already", 1)
    assert everything(engine) == before

    # Revoke, then delete: the tenant's cards and templates go; entries (no foreign key) would stay.
    assert patch(engine, 1, 2, [tenant("T1", status="revoked")]) == ("applied", 2)
    assert decision(engine, 305419896) == "revoked"
    assert patch(engine, 2, 3, [delete("tenant", id="T1"), delete("watch", id="W3")]) == ("applied", 3)
    assert decision(engine, 305419896) == "unknown_card"
    assert [rows(engine, f"SELECT count(*) FROM {t}")[0][0] for t in
            ("tenants", "cards", "face_templates", "watch_entries", "watch_vectors")] == [0] * 5  # fmt: skip


def test_a_gap_changes_nothing(engine: Engine) -> None:
    patch(engine, 0, 5, [tenant("T1"), card(1, "T1")])
    before = everything(engine)
    assert patch(engine, 6, 7, [delete("tenant", id="T1")]) == ("gap", 5)
    assert patch(engine, 3, 4, [delete("tenant", id="T1")]) == ("gap", 5)
    assert everything(engine) == before


def test_upserts_update_in_place_and_keep_the_local_watchlist_flag(engine: Engine) -> None:
    patch(engine, 0, 1, [tenant("T1"), card(7, "T1"), template("F1", "T1", 0.1)])
    with write_now(engine) as conn:
        conn.exec_driver_sql("UPDATE tenants SET watchlist = 1 WHERE id = 'T1'")
    patch(engine, 1, 2, [tenant("T1", room="101", valid_from=None), template("F1", "T1", 0.9), tenant("T2"),
                         card(7, "T2")])  # fmt: skip
    assert rows(engine, "SELECT id, room, valid_from, watchlist FROM tenants ORDER BY id") == [
        ("T1", "101", None, 1), ("T2", "302", "2026-01-01", 0)]  # fmt: skip
    assert rows(engine, "SELECT number, tenant_id FROM cards") == [(7, "T2")]
    assert rows(engine, "SELECT count(*) FROM face_templates") == [(1,)]
    assert rows(engine, "SELECT embedding FROM face_templates")[0][0] == base64.b64decode(vector(0.9))


@pytest.mark.parametrize(
    "bad",
    [
        "not a list",
        [{"op": "upsert", "kind": "pet", "id": "x"}],
        [{"op": "merge", "kind": "tenant", "id": "x"}],
        [{"op": ["upsert"], "kind": "tenant", "id": "x"}],
        [{"op": "upsert", "kind": {"a": 1}, "id": "x"}],
        [tenant("T9", name="Bad\x00Name")],
        [tenant("T9", room="3\u202e02")],
        [tenant("T9", name="")],
        [tenant("T9", id="x" * 65)],
        [tenant("T9", status="banned")],
        [tenant("T9", valid_to="2027-13-01")],
        [tenant("T9", valid_to="20270101")],
        [tenant("T9", valid_from="2028-01-01", valid_to="2027-01-01")],
        [tenant("T9", valid_to=None)],
        [tenant("T9", extra=1)],
        [{k: v for k, v in tenant("T9").items() if k != "permit"}],
        [tenant("T9"), card(2**32, "T9")],
        [tenant("T9"), card(-1, "T9")],
        [tenant("T9"), card(True, "T9")],
        [tenant("T9"), card("12", "T9")],
        [tenant("T9"), template("F1", "T9") | {"vector": base64.b64encode(b"\0" * 508).decode()}],
        [tenant("T9"), template("F1", "T9") | {"vector": "not base64!"}],
        [tenant("T9"), template("F1", "T9") | {"vector": NAN_VECTOR}],
        [watch("W1") | {"vectors": "abc"}],
        [watch("W1") | {"vectors": [vector()] * 33}],
        [tenant("T9"), card(5, "nobody")],  # a card of an unknown tenant
        [tenant("T9"), template("F1", "nobody")],
        [tenant("T9"), tenant("T8", permit="P-T9")],  # one permit, two tenants
        [tenant("T8", permit="P-T1")],  # the permit of an existing tenant
        [tenant("T9"), "not an op"],
    ],
)
def test_a_malformed_op_anywhere_changes_nothing(engine: Engine, bad: Any) -> None:
    patch(engine, 0, 1, [tenant("T1"), card(1, "T1")])
    before = everything(engine)
    with pytest.raises(RosterSyncError) as caught:
        patch(engine, 1, 2, bad)
    assert caught.value.code == "malformed"
    assert everything(engine) == before


def test_a_snapshot_replaces_the_platforms_roster(engine: Engine) -> None:
    patch(engine, 0, 3, [tenant("T1"), card(1, "T1"), template("F1", "T1"), tenant("T2"), card(2, "T2"),
                         template("F2", "T2"), watch("W1"), watch("W2")])  # fmt: skip
    with session_factory(engine).begin() as s:  # a tenant and a template enrolled at the building, not echoed yet
        add_tenant(s, NewTenant("L1", "Local", "P-L1", date(2030, 1, 1)))
    with write_now(engine) as conn:
        conn.exec_driver_sql("UPDATE tenants SET watchlist = 1 WHERE id = 'T2'")
        conn.exec_driver_sql("INSERT INTO face_templates (tenant_id, embedding, quality, photo_sha256, created_at)"
                             " VALUES ('T2', x'00', 0.5, '', '2026-01-01 00:00:00.000000')")  # fmt: skip
        counter = change_counter(conn)
    ops = parse_ops([tenant("T2", room="9"), card(3, "T2"), template("F2", "T2", 0.7), tenant("T3"), watch("W2", 1)],
                    upserts_only=True)  # fmt: skip
    with write_now(engine) as conn:
        assert apply_snapshot(conn, 42, ops) == 42
    assert rows(engine, "SELECT id, room, watchlist FROM tenants ORDER BY id") == [("T2", "9", 1), ("T3", "302", 0)]
    assert rows(engine, "SELECT number, tenant_id FROM cards") == [(3, "T2")]
    assert rows(engine, "SELECT platform_id, tenant_id FROM face_templates") == [("F2", "T2")]
    assert rows(engine, "SELECT id FROM watch_entries") == [("W2",)]
    assert rows(engine, "SELECT count(*) FROM watch_vectors") == [(1,)]
    with engine.connect() as conn:
        assert (current_version(conn), change_counter(conn) > counter) == (42, True)
    with pytest.raises(RosterSyncError):
        parse_ops([delete("card", number=3)], upserts_only=True)


def staged_in_steps(engine: Engine, version: int, ops: list[dict[str, Any]], size: int, batches: int | None = None,
                    between: Any = None) -> None:
    """The steps RosterRequests runs, with `size` new tenants a batch; stop after `batches` (a crash)."""
    parsed = parse_ops(ops, upserts_only=True)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("BEGIN")
        staged = stage_snapshot(conn, version, parsed)
        conn.exec_driver_sql("COMMIT")
        if between is not None:
            between()
        with write_now_on(conn):
            staged = apply_changes(conn, staged)
        todo = new_row_batches(conn, size)
        for i, batch in enumerate(todo[:batches]):
            with write_now_on(conn):
                apply_new_rows(conn, staged, batch, last=i == len(todo) - 1)
        drop_stage(conn)


def test_a_snapshot_equal_to_the_store_writes_nothing(engine: Engine) -> None:
    ops = [tenant("T1"), card(1, "T1"), template("F1", "T1"), tenant("T2"), card(2, "T2"), watch("W1")]
    staged_in_steps(engine, 1, ops, size=1)
    before = rows(engine, "SELECT id, updated_at FROM tenants ORDER BY id")
    staged_in_steps(engine, 2, ops, size=1)
    assert rows(engine, "SELECT id, updated_at FROM tenants ORDER BY id") == before  # not even rewritten
    assert current_version(engine.connect()) == 2


def test_new_tenants_come_in_batches_and_the_version_with_the_last(engine: Engine) -> None:
    patch(engine, 0, 1, [tenant("T0"), card(7, "T0"), tenant("OLD"), card(9, "OLD")])
    ops = [tenant("T0", status="revoked"), card(8, "T0")]  # T0 loses card 7; OLD is gone; card 9 moves to N3
    ops += [x for i in range(5) for x in (tenant(f"N{i}"), card(100 + i, f"N{i}"), template(f"F{i}", f"N{i}"))]
    ops += [card(9, "N3")]
    staged_in_steps(engine, 5, ops, size=2, batches=0)  # a crash after the changes, before any new row
    assert [decision(engine, n) for n in (7, 9, 8, 100)] == ["unknown_card"] * 4  # removals came first
    assert rows(engine, "SELECT id, status FROM tenants") == [("T0", "revoked")]
    # The platform sends it again; a crash after 4 batches of 2: the 5 new tenants, then cards 8 and 9.
    staged_in_steps(engine, 5, ops, size=2, batches=4)
    assert [decision(engine, n) for n in (8, 9, 100)] == ["revoked", "granted", "unknown_card"]
    assert current_version(engine.connect()) == 1  # not applied yet
    staged_in_steps(engine, 5, ops, size=2)  # the platform sends it again
    assert [decision(engine, 100 + i) for i in range(5)] == ["granted"] * 5
    assert rows(engine, "SELECT tenant_id FROM cards WHERE number = 9") == [("N3",)]
    assert rows(engine, "SELECT count(*) FROM face_templates") == [(5,)]
    assert rows(engine, "SELECT id FROM tenants WHERE id = 'OLD'") == [] and current_version(engine.connect()) == 5


def test_a_local_change_between_sorting_and_applying_is_sorted_again(engine: Engine) -> None:
    patch(engine, 0, 1, [tenant("T1"), card(1, "T1")])

    def enrol_here() -> None:
        with session_factory(engine).begin() as s:
            add_tenant(s, NewTenant("L1", "Local", "P-L1", date(2030, 1, 1)))

    staged_in_steps(engine, 2, [tenant("T1"), card(1, "T1")], size=10, between=enrol_here)
    assert rows(engine, "SELECT id FROM tenants ORDER BY id") == [("T1",)]  # replacement: the platform's roster


def test_a_snapshot_card_of_a_tenant_it_does_not_hold_is_malformed(engine: Engine) -> None:
    patch(engine, 0, 1, [tenant("T1")])
    with pytest.raises(RosterSyncError, match="does not hold"):
        staged_in_steps(engine, 2, [tenant("T2"), card(1, "T1")], size=10)
    assert rows(engine, "SELECT id FROM tenants") == [("T1",)] and current_version(engine.connect()) == 1


# --- the request handlers, through the router and its guard (no broker) -------------------------------
def now_text() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class Harness:
    def __init__(self, engine: Engine) -> None:
        self.key, public = new_key_pair()
        self.answers: list[tuple[str, dict[str, Any]]] = []
        self.notified = 0
        guard = RequestGuard(public_key(public), SqlReplayMemory(engine))
        self.router = CommandRouter(lambda cmd, payload: self.answers.append((cmd, json.loads(payload))), guard)
        self.roster = RosterRequests(self.router, engine, "gw-1", self._notify)
        self.n = 0

    def _notify(self) -> None:
        self.notified += 1

    def ask(self, command: str, **body: Any) -> dict[str, Any]:
        self.n += 1
        message = sign({"transaction": f"t-{self.n}", "issued_at": now_text(), **body}, self.key)
        return asyncio.run(self.router.dispatch(command, json.dumps(message).encode())) or {}


def test_patch_requests_answer_version_gap_and_queue_a_roster_request(engine: Engine) -> None:
    h = Harness(engine)
    ok = h.ask("roster/patch", from_version=0, to_version=1, ops=[tenant("T1"), card(9, "T1")])
    assert (ok["status"], ok["version"]) == ("ok", 1)
    again = h.ask("roster/patch", from_version=0, to_version=1, ops=[tenant("T1"), card(9, "T1")])
    assert (again["status"], again["version"]) == ("ok", 1)
    gap = h.ask("roster/patch", from_version=4, to_version=5, ops=[])
    assert (gap["status"], gap["error"]) == ("error", "version_gap")
    h.ask("roster/patch", from_version=5, to_version=6, ops=[])  # a second gap: one request is enough
    queued = rows(engine, "SELECT topic, payload FROM outbox")
    assert [t for t, _ in queued] == ["events/roster_request"]
    body = json.loads(queued[0][1])
    assert (body["gateway_id"], body["version"], body["reason"]) == ("gw-1", 1, "version_gap")
    assert h.notified == 2
    bad = h.ask("roster/patch", from_version=1, to_version=2, ops=[tenant("T2", name="a\nb")])
    assert (bad["error"], current_version(engine.connect())) == ("malformed", 1)
    for body in ({"from_version": "1", "to_version": 2, "ops": []}, {"from_version": 1, "to_version": 1, "ops": []},
                 {"from_version": 1, "to_version": -2, "ops": []}, {"to_version": 2, "ops": []}):  # fmt: skip
        assert h.ask("roster/patch", **body)["error"] == "malformed", body


def test_snapshot_chunks_apply_only_when_all_are_in(engine: Engine) -> None:
    h = Harness(engine)
    h.ask("roster/patch", from_version=0, to_version=1, ops=[tenant("OLD"), card(1, "OLD")])
    first = h.ask("roster/snapshot", version=9, snapshot_id="s-1", chunk=1, chunks=2, ops=[card(2, "T2")])
    assert (first["status"], first["complete"]) == ("ok", False)
    assert current_version(engine.connect()) == 1 and decision(engine, 1) == "granted"
    dup = h.ask("roster/snapshot", version=9, snapshot_id="s-1", chunk=1, chunks=2, ops=[card(2, "T2")])
    assert dup["complete"] is False
    last = h.ask("roster/snapshot", version=9, snapshot_id="s-1", chunk=0, chunks=2, ops=[tenant("T2")])
    assert (last["status"], last["complete"], last["version"]) == ("ok", True, 9)
    assert (decision(engine, 1), decision(engine, 2), current_version(engine.connect())) == ("unknown_card",
                                                                                            "granted", 9)  # fmt: skip
    late = h.ask("roster/snapshot", version=9, snapshot_id="s-1", chunk=1, chunks=2, ops=[card(2, "T2")])
    assert (late["complete"], late["version"]) == (True, 9)
    refused = [
        {"version": 10, "snapshot_id": "s-2", "chunk": 0, "chunks": 2, "ops": [delete("card", number=2)]},
        {"version": 10, "snapshot_id": "s-2", "chunk": 2, "chunks": 2, "ops": []},
        {"version": 10, "snapshot_id": "s-2", "chunk": 0, "chunks": 10_001, "ops": []},
        {"version": 10, "snapshot_id": "", "chunk": 0, "chunks": 1, "ops": []},
        {"version": 10, "snapshot_id": "s-2", "chunk": "0", "chunks": 1, "ops": []},
        {"version": 10, "snapshot_id": "s-3", "chunk": 0, "chunks": 1, "ops": [card(5, "nobody")]},
    ]
    for body in refused:
        assert h.ask("roster/snapshot", **body)["error"] == "malformed", body
    assert (current_version(engine.connect()), decision(engine, 2)) == (9, "granted")


def test_the_simulations_key_and_demo_patch(tmp_path: Path, engine: Engine) -> None:
    from gateway.simulation import PLATFORM_KEY, ROSTER_CARD, demo_patch, platform_key, sim_dir, simulation_config
    from sync.signing import verify

    key = platform_key(tmp_path / "var")
    assert (sim_dir(tmp_path / "var") / PLATFORM_KEY).stat().st_mode & 0o777 == 0o600
    public = simulation_config(tmp_path / "var").sync.platform_public_key
    assert public is not None and bytes(public_key(public)) == bytes(key.verify_key)
    message = demo_patch(key, 4, now_text(), "sim-1")
    assert verify(message, public_key(public)) and (message["from_version"], message["to_version"]) == (4, 5)
    patch(engine, 0, 4, [])
    assert patch(engine, 4, 5, message["ops"]) == ("applied", 5)
    assert decision(engine, ROSTER_CARD) == "granted"

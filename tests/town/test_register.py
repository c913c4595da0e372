"""The town's register of record (town.register): each change appends the right wire operations to the roster
log of each gateway concerned, as its next version, in the change's transaction; a patch built from the log is
signed and applies on a real gateway store through the gateway's own request path (signature guard, replay
memory, RosterRequests); a building's change (events/roster, as the gateway builds it) merges into the register.
Both database back-ends (`town_cfg`)."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from nacl.signing import SigningKey
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from config.town import TownConfig
from gateway.platform_requests import RosterRequests
from gateway.store.db import open_store
from gateway.store.models import AuditLog, Card, FaceTemplate, OutboxItem, Tenant
from gateway.store.models import WatchEntry as GatewayWatch
from gateway.store.replay import SqlReplayMemory
from gateway.store.roster import NewTenant
from gateway.store.roster import add_card as gw_add_card
from gateway.store.roster import add_face_templates as gw_add_faces
from gateway.store.roster import add_tenant as gw_add_tenant
from gateway.store.roster_events import queue_roster_change
from gateway.store.roster_sync import current_version
from sync.commands import CommandRouter, RequestGuard
from sync.roster_messages import compact, patch_message, snapshot_messages
from sync.signing import public_key, verify
from town import register as reg
from town.keys import load_or_create_key, public_key_b64
from town.roster_ops import slice_ops
from town.store.db import open_town_store
from town.store.models import Gateway, RosterLogEntry, TownCard, TownTemplate, TownTenant, WatchEntry

VALID_TO = date(date.today().year + 1, 6, 30)


def vec(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 0.1, 128).astype("<f4")


@pytest.fixture
def town(town_cfg: TownConfig) -> Iterator[sessionmaker[Session]]:
    engine, sessions = open_town_store(town_cfg)
    try:
        yield sessions
    finally:
        engine.dispose()


def log_of(sessions: sessionmaker[Session], gateway_id: str) -> list[tuple[int, list[dict[str, Any]]]]:
    with sessions() as s:
        query = select(RosterLogEntry.version, RosterLogEntry.ops).where(RosterLogEntry.gateway_id == gateway_id)
        rows = s.execute(query.order_by(RosterLogEntry.version)).all()
    return [(v, ops) for v, ops in rows]


def versions(sessions: sessionmaker[Session], gateway_id: str) -> tuple[int, int]:
    with sessions() as s:
        g = s.get(Gateway, gateway_id)
        assert g is not None
        return g.roster_version, g.target_version


def shapes(ops: list[dict[str, Any]]) -> list[tuple[str, str, Any]]:
    return [(o["op"], o["kind"], o.get("id", o.get("number"))) for o in ops]


def enrol(s: Session, tid: str = "T1", gateway_id: str = "gw-a", permit: str | None = None, card: int | None = None,
          templates: int = 0) -> TownTenant:  # fmt: skip
    t = reg.add_tenant(s, "admin1", gateway_id=gateway_id, id=tid, name="王芳", permit=permit or f"P-{tid}",
                       valid_from=date(2026, 1, 1), valid_to=VALID_TO, room="302")  # fmt: skip
    if card is not None:
        reg.add_card(s, "admin1", tid, card)
    if templates:
        reg.add_templates(s, "admin1", tid, [vec(i) for i in range(templates)])
    return t


# --- the log -------------------------------------------------------------------------------------------------
def test_each_change_appends_its_wire_ops_as_the_next_version(town: sessionmaker[Session]) -> None:
    with town.begin() as s:
        enrol(s, "T1")
    assert versions(town, "gw-a") == (0, 1)
    [(v1, ops)] = log_of(town, "gw-a")
    assert v1 == 1
    assert ops == [
        {
            "op": "upsert",
            "kind": "tenant",
            "id": "T1",
            "name": "王芳",
            "permit": "P-T1",
            "valid_from": "2026-01-01",
            "valid_to": VALID_TO.isoformat(),
            "room": "302",
            "status": "active",
        }
    ]

    with town.begin() as s:
        reg.add_card(s, "admin1", "T1", 305419896)
        [fid] = reg.add_templates(s, "admin1", "T1", [vec(1)])
        reg.set_status(s, "admin1", "T1", "revoked", reason="moved out")
    log = log_of(town, "gw-a")
    assert [v for v, _ in log] == [1, 2, 3, 4]
    assert log[1][1] == [{"op": "upsert", "kind": "card", "number": 305419896, "tenant": "T1"}]
    [template] = log[2][1]
    assert (template["op"], template["kind"], template["id"], template["tenant"]) == ("upsert", "template", fid, "T1")
    assert fid.startswith("F") and len(fid) == 27
    assert np.array_equal(np.frombuffer(base64.b64decode(template["vector"]), "<f4"), vec(1))
    assert log[3][1][0]["status"] == "revoked"
    assert versions(town, "gw-a") == (0, 4)

    with town.begin() as s:
        assert reg.remove_card(s, "admin1", 305419896) == "T1"
        assert reg.delete_templates(s, "admin1", "T1") == 1
        reg.delete_tenant(s, "admin1", "T1", reason="left")
    assert [shapes(ops) for _, ops in log_of(town, "gw-a")[4:]] == [
        [("delete", "card", 305419896)], [("delete", "template", fid)], [("delete", "tenant", "T1")]]  # fmt: skip
    with town() as s:
        assert s.scalar(select(func.count()).select_from(TownTenant)) == 0
        actions = [a for (a,) in s.execute(select(AuditLog.action).order_by(AuditLog.id))]
        wanted = AuditLog.action.in_(["tenant.revoke", "tenant.delete"])
        reasons = s.scalars(select(AuditLog.details).where(wanted).order_by(AuditLog.id))
        assert [d["reason"] for d in reasons] == ["moved out", "left"]
    assert actions == ["tenant.create", "card.bind", "face.enrol", "tenant.revoke", "card.unbind", "face.delete",
                       "tenant.delete"]  # fmt: skip


def test_a_refused_change_leaves_nothing(town: sessionmaker[Session]) -> None:
    with town.begin() as s:
        enrol(s, "T1", card=7)
        enrol(s, "T2", gateway_id="gw-b")
    before = (log_of(town, "gw-a"), log_of(town, "gw-b"))
    cases = [
        (lambda s: enrol(s, "T1"), "conflict"),  # the id
        (lambda s: enrol(s, "T3", permit="P-T1"), "conflict"),  # the permit number, town-wide
        (lambda s: reg.add_card(s, "admin1", "T2", 7), "conflict"),  # a card belongs to one tenant town-wide
        (lambda s: reg.add_card(s, "admin1", "T2", 2**32), "invalid"),
        (lambda s: reg.add_card(s, "admin1", "T9", 8), "not_found"),
        (lambda s: reg.update_tenant(s, "admin1", "T1", name="a\x1bb"), "invalid"),  # as the gateway would refuse
        (lambda s: reg.update_tenant(s, "admin1", "T1", valid_from=VALID_TO + timedelta(days=1)), "invalid"),
        (lambda s: reg.update_tenant(s, "admin1", "T1", gateway_id="no/such"), "invalid"),
        (lambda s: reg.set_status(s, "admin1", "T1", "gone"), "invalid"),
        (lambda s: reg.add_templates(s, "admin1", "T1", [np.full(128, np.nan)]), "invalid"),
        (lambda s: reg.add_templates(s, "admin1", "T1", [b"\0" * 100]), "invalid"),
    ]
    for change, code in cases:
        with pytest.raises(reg.RegisterError) as caught, town.begin() as s:
            change(s)
        assert caught.value.code == code, caught.value
    assert (log_of(town, "gw-a"), log_of(town, "gw-b")) == before


def test_moving_a_tenant_deletes_it_at_the_old_building_and_sends_the_whole_record_to_the_new(
    town: sessionmaker[Session],
) -> None:
    with town.begin() as s:
        enrol(s, "T1", card=42, templates=2)
        enrol(s, "T2", gateway_id="gw-b")
    with town.begin() as s:
        reg.update_tenant(s, "admin1", "T1", gateway_id="gw-b", room="101")
    assert shapes(log_of(town, "gw-a")[-1][1]) == [("delete", "tenant", "T1")]
    last = log_of(town, "gw-b")[-1]
    assert last[0] == 2
    kinds = shapes(last[1])
    assert kinds[:2] == [("upsert", "tenant", "T1"), ("upsert", "card", 42)]
    assert [k for k in kinds[2:]] and all(k[:2] == ("upsert", "template") for k in kinds[2:]) and len(kinds) == 4
    assert last[1][0]["room"] == "101"
    with town() as s:
        [details] = s.scalars(select(AuditLog.details).where(AuditLog.action == "tenant.update"))
    assert (details["from_gateway"], details["to_gateway"]) == ("gw-a", "gw-b")


def test_the_watch_list_goes_to_every_gateway_and_a_new_gateway_gets_it_first(town: sessionmaker[Session]) -> None:
    with town.begin() as s:
        for i in range(3):
            enrol(s, f"T{i}", gateway_id=f"gw-{i}")
    with town.begin() as s:
        entry = reg.add_watch(s, "police1", name="某人", note="wanted", vectors=[vec(1), vec(2)], reason="case 7")
        wid = entry.id
    assert wid.startswith("W") and len(wid) == 27
    for i in range(3):
        (v, ops) = log_of(town, f"gw-{i}")[-1]
        assert v == 2 and shapes(ops) == [("upsert", "watch", wid)]
        assert ops[0]["name"] == "某人" and ops[0]["note"] == "wanted" and len(ops[0]["vectors"]) == 2
    # A building new to the town: its first version holds the watch list, then its own change.
    with town.begin() as s:
        enrol(s, "T9", gateway_id="gw-new")
    [(v, ops)] = log_of(town, "gw-new")
    assert v == 1 and shapes(ops) == [("upsert", "watch", wid), ("upsert", "tenant", "T9")]
    # A building the ingest met (a row at version 0, nothing enrolled): initialize_gateway gives it version 1.
    with town.begin() as s:
        reg.ensure_gateways(s, ["gw-quiet"])
    with town.begin() as s:
        assert reg.initialize_gateway(s, "gw-quiet") == 1
        assert reg.initialize_gateway(s, "gw-quiet") is None
    assert shapes(log_of(town, "gw-quiet")[0][1]) == [("upsert", "watch", wid)]
    with town.begin() as s:
        reg.update_watch(s, "police1", wid, note="arrested?", vectors=[vec(3)])
        reg.remove_watch(s, "police1", wid, reason="closed")
    for gid in ("gw-0", "gw-new", "gw-quiet"):
        assert shapes(log_of(town, gid)[-1][1]) == [("delete", "watch", wid)]
        assert log_of(town, gid)[-2][1][0]["note"] == "arrested?"
    with town() as s:
        assert s.scalar(select(func.count()).select_from(WatchEntry)) == 0
        audited = [
            (a, d.get("reason"))
            for a, d in s.execute(
                select(AuditLog.action, AuditLog.details).where(AuditLog.action.like("watch.%")).order_by(AuditLog.id)
            )
        ]
    assert audited == [("watch.add", "case 7"), ("watch.update", None), ("watch.remove", "closed")]


def test_watch_entry_of_a_tenant_takes_their_templates(town: sessionmaker[Session]) -> None:
    with town.begin() as s:
        enrol(s, "T1", templates=2)
        entry = reg.add_watch(s, "police1", name="王芳", tenant_id="T1")
        assert entry.tenant_id == "T1"
    assert len(log_of(town, "gw-a")[-1][1][0]["vectors"]) == 2


# --- down to a real gateway store ---------------------------------------------------------------------------------
class Building:
    """A real gateway store behind the gateway's own request path: router + signature guard + RosterRequests."""

    def __init__(self, data_dir: Path, platform_public_key: str, gateway_id: str = "gw-a") -> None:
        self.engine, self.sessions = open_store(data_dir)
        self.answers: list[dict[str, Any]] = []
        self.router = CommandRouter(
            lambda cmd, payload: self.answers.append(json.loads(payload)),
            RequestGuard(public_key(platform_public_key), SqlReplayMemory(self.engine)),
        )
        self.gaps = 0
        self.roster = RosterRequests(self.router, self.engine, gateway_id, self._gap)

    def _gap(self) -> None:
        self.gaps += 1

    def send(self, command: str, raw: bytes) -> dict[str, Any]:
        answer = asyncio.run(self.router.dispatch(command, raw))
        assert answer is not None
        return answer

    @property
    def version(self) -> int:
        with self.sessions() as s:
            return current_version(s)

    def tenants(self) -> dict[str, tuple[str, str, list[int], int]]:
        with self.sessions() as s:
            return {t.id: (t.status, t.room or "", sorted(s.scalars(select(Card.number).where(Card.tenant_id == t.id))),
                           len(s.scalars(select(FaceTemplate.id).where(FaceTemplate.tenant_id == t.id)).all()))
                    for t in s.scalars(select(Tenant))}  # fmt: skip

    def watch(self) -> list[str]:
        with self.sessions() as s:
            return sorted(s.scalars(select(GatewayWatch.id)))

    def close(self) -> None:
        self.engine.dispose()


@pytest.fixture
def key(tmp_path: Path) -> SigningKey:
    return load_or_create_key(tmp_path / "town-data")


def patch_from_log(sessions: sessionmaker[Session], key: SigningKey, gateway_id: str, from_version: int,
                   to_version: int) -> bytes:  # fmt: skip
    ops = [op for v, vops in log_of(sessions, gateway_id) if from_version < v <= to_version for op in vops]
    return compact(patch_message(key, from_version, to_version, ops)).encode()


def test_patches_from_the_log_are_signed_and_apply_on_a_real_gateway_store(
    town: sessionmaker[Session], key: SigningKey, tmp_path: Path
) -> None:
    building = Building(tmp_path / "gw", public_key_b64(key))
    try:
        with town.begin() as s:
            enrol(s, "T1", card=305419896, templates=2)
            enrol(s, "T2", card=77)
            reg.add_watch(s, "police1", name="某人", vectors=[vec(9)])
        _, target = versions(town, "gw-a")
        raw = patch_from_log(town, key, "gw-a", 0, target)
        assert verify(json.loads(raw), key.verify_key)
        answer = building.send("roster/patch", raw)
        assert (answer["status"], answer["version"]) == ("ok", target)
        assert building.tenants() == {"T1": ("active", "302", [305419896], 2), "T2": ("active", "302", [77], 0)}
        assert len(building.watch()) == 1

        with town.begin() as s:  # one patch spanning several versions
            reg.set_status(s, "admin1", "T1", "revoked")
            reg.remove_card(s, "admin1", 77)
            reg.update_tenant(s, "admin1", "T2", gateway_id="gw-b")
        answer = building.send("roster/patch", patch_from_log(town, key, "gw-a", target, target + 3))
        assert (answer["status"], answer["version"]) == ("ok", target + 3)
        assert building.tenants() == {"T1": ("revoked", "302", [305419896], 2)}

        # Another key: refused, nothing changes.
        stranger = SigningKey.generate()
        with town.begin() as s:
            reg.delete_tenant(s, "admin1", "T1")
        refused = building.send("roster/patch", patch_from_log(town, stranger, "gw-a", target + 3, target + 4))
        assert refused["error"] == "bad_signature" and building.version == target + 3
        # From a version the gateway does not hold: version_gap, the gateway asks for a snapshot.
        with town.begin() as s:
            enrol(s, "T5")
        gap = building.send("roster/patch", patch_from_log(town, key, "gw-a", target + 4, target + 5))
        assert gap["error"] == "version_gap" and building.gaps == 1
        # The snapshot of its slice (upserts at target_version) sets it right.
        with town() as s:
            ops = slice_ops(s, "gw-a")
        _, now_target = versions(town, "gw-a")
        for raw_chunk in snapshot_messages(key, now_target, ops, snapshot_id="s-test", max_bytes=10_000):
            answer = building.send("roster/snapshot", raw_chunk)
        assert (answer["complete"], answer["version"]) == (True, now_target)
        assert building.tenants() == {"T5": ("active", "302", [], 0)} and len(building.watch()) == 1
    finally:
        building.close()


# --- up from a building -----------------------------------------------------------------------------------------
def building_event(building: Building, tenant_id: str, change: str, ts: datetime | None = None) -> dict[str, Any]:
    """The events/roster payload the gateway queues for its outbox (gateway.store.roster_events), taken back out."""
    with building.sessions.begin() as s:
        seq = queue_roster_change(s, "gw-a", tenant_id, change, "admin", ts)
        row = s.get(OutboxItem, seq)
        assert row is not None and row.topic == "events/roster"
        return {**json.loads(row.payload), "seq": seq}


def test_a_building_change_merges_into_the_register_and_is_echoed(
    town: sessionmaker[Session], key: SigningKey, tmp_path: Path
) -> None:
    building = Building(tmp_path / "gw", public_key_b64(key))
    try:
        with building.sessions.begin() as s:  # enrolled at the building: tenant, card, two faces
            gw_add_tenant(s, NewTenant("B1", "李雷", "P-B1", VALID_TO, date(2026, 1, 1), "501"))
            gw_add_card(s, "B1", 1234)
            gw_add_faces(s, "B1", [(vec(1).tobytes(), 0.9, "a" * 64), (vec(2).tobytes(), 0.8, "b" * 64)])
        payload = building_event(building, "B1", "tenant.enrol")
        with town.begin() as s:
            assert reg.merge_roster_event(s, "gw-a", payload) == "applied"
        with town() as s:
            t = s.get(TownTenant, "B1")
            assert t is not None and (t.gateway_id, t.name, t.room, t.updated_by) == (
                "gw-a",
                "李雷",
                "501",
                "gateway:gw-a",
            )
            assert list(s.scalars(select(TownCard.number).where(TownCard.tenant_id == "B1"))) == [1234]
            faces = {f.id: (f.quality, f.photo_sha256) for f in s.scalars(select(TownTemplate))}
        assert sorted(faces.values()) == [(0.8, "b" * 64), (0.9, "a" * 64)]
        # The echo: the register's record, in the gateway's next version; it applies as a no-op.
        (v, echo) = log_of(town, "gw-a")[-1]
        assert shapes(echo)[:2] == [("upsert", "tenant", "B1"), ("upsert", "card", 1234)]
        assert {o["id"] for o in echo[2:]} == set(faces)
        answer = building.send("roster/patch", patch_from_log(town, key, "gw-a", 0, v))
        assert answer["version"] == v
        assert building.tenants() == {"B1": ("active", "501", [1234], 2)}

        # The building unbinds the card and deletes a face: the town follows.
        with building.sessions.begin() as s:
            s.execute(Card.__table__.delete().where(Card.number == 1234))
            first = s.scalars(select(FaceTemplate).order_by(FaceTemplate.id)).first()
            s.delete(first)
        with town.begin() as s:
            assert reg.merge_roster_event(s, "gw-a", building_event(building, "B1", "card.unbind")) == "applied"
        with town() as s:
            assert s.scalar(select(func.count()).select_from(TownCard)) == 0
            assert s.scalar(select(func.count()).select_from(TownTemplate)) == 1
        # Deleted at the building: deleted in the register, the echo a delete.
        with building.sessions.begin() as s:
            s.execute(FaceTemplate.__table__.delete())
            s.execute(Tenant.__table__.delete())
        with town.begin() as s:
            assert reg.merge_roster_event(s, "gw-a", building_event(building, "B1", "tenant.delete")) == "deleted"
            assert s.get(TownTenant, "B1") is None
        assert shapes(log_of(town, "gw-a")[-1][1]) == [("delete", "tenant", "B1")]
        with town() as s:
            merges = [d["result"] for d in s.scalars(select(AuditLog.details).where(AuditLog.action == "roster.merge"))]
        assert merges == ["applied", "applied", "deleted"]
    finally:
        building.close()


def test_where_they_disagree_the_platform_wins(town: sessionmaker[Session], key: SigningKey, tmp_path: Path) -> None:
    building = Building(tmp_path / "gw", public_key_b64(key))
    try:
        with town.begin() as s:
            enrol(s, "T1", gateway_id="gw-a", card=555)
            enrol(s, "X1", gateway_id="gw-b", permit="P-X")
        with building.sessions.begin() as s:  # a stale copy of T1, and a local tenant with a permit the town gives X1
            gw_add_tenant(s, NewTenant("T1", "王芳", "P-T1", VALID_TO, None, "999"))
            gw_add_tenant(s, NewTenant("L1", "某", "P-X", VALID_TO))
            gw_add_card(s, "T1", 556)
        stale = building_event(building, "T1", "tenant.update", datetime.now(UTC) - timedelta(hours=1))
        local = building_event(building, "L1", "tenant.create")
        with town.begin() as s:
            reg.set_status(s, "admin1", "T1", "revoked")  # at the town, after the building's change
        with town.begin() as s:
            assert reg.merge_roster_event(s, "gw-a", stale) == "kept"
            assert reg.merge_roster_event(s, "gw-a", local) == "refused"
            t = s.get(TownTenant, "T1")
            assert t is not None and (t.status, t.room) == ("revoked", "302")
            assert s.get(TownTenant, "L1") is None
        *_, (_, kept), (_, refused) = log_of(town, "gw-a")
        assert kept[0]["status"] == "revoked" and shapes(kept)[1] == ("upsert", "card", 555)
        assert shapes(refused) == [("delete", "tenant", "L1")]

        # A tenant id the town gives to another person at another building: refused, the echo deletes it here.
        with building.sessions.begin() as s:
            gw_add_tenant(s, NewTenant("X1", "别人", "P-OTHER", VALID_TO))
        with town.begin() as s:
            assert reg.merge_roster_event(s, "gw-a", building_event(building, "X1", "tenant.create")) == "refused"
            x = s.get(TownTenant, "X1")
            assert x is not None and x.gateway_id == "gw-b"
        # The same person (same permit) enrolled at this building: the tenant moves here.
        with building.sessions.begin() as s:
            s.execute(Tenant.__table__.delete().where(Tenant.id == "X1"))
            s.execute(Tenant.__table__.delete().where(Tenant.id == "L1"))
            gw_add_tenant(s, NewTenant("X1", "某", "P-X", VALID_TO))
        with town.begin() as s:
            assert reg.merge_roster_event(s, "gw-a", building_event(building, "X1", "tenant.create")) == "moved"
            x = s.get(TownTenant, "X1")
            assert x is not None and x.gateway_id == "gw-a"
        assert shapes(log_of(town, "gw-b")[-1][1]) == [("delete", "tenant", "X1")]
        # Garbage is audited, never raised.
        with town.begin() as s:
            assert reg.merge_roster_event(s, "gw-a", {"tenant_id": "Z", "tenant": {"id": "Z"}}) == "refused"
            assert reg.merge_roster_event(s, "gw-a", {"tenant": None}) == "refused"
    finally:
        building.close()


def test_the_town_key_is_made_once_private_and_kept(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = load_or_create_key(data)
    assert (data / "platform.key").stat().st_mode & 0o777 == 0o600
    assert data.stat().st_mode & 0o777 == 0o700
    assert bytes(load_or_create_key(data)) == bytes(first)
    assert base64.b64decode(public_key_b64(first)) == bytes(first.verify_key)
    (data / "platform.key").write_text("garbage")
    with pytest.raises(ValueError):
        load_or_create_key(data)


@pytest.mark.slow
def test_photos_enrolled_at_the_town_are_encoded_as_a_gateway_encodes_them(town: sessionmaker[Session]) -> None:
    """enrol_photos uses the gateway's own assessment (landmarks, jitters, mirror from RecognitionConfig): the
    templates are those `gateway.enrolment.assess_photos` makes with the same settings; a refused photo stores
    nothing."""
    from config.models import RecognitionConfig
    from gateway.enrolment import assess_photos
    from testing.faces import lfw_photo

    cfg = RecognitionConfig(enrol_jitters=1)  # no random jitter: the same photo gives the same template
    photos = [(f"{n}.jpg", lfw_photo("Alvaro_Uribe", n).read_bytes()) for n in (1, 2)]
    with town.begin() as s:
        enrol(s, "T1")
        done = reg.enrol_photos(s, "admin1", "T1", photos, cfg)
    assert done.ok and len(done.template_ids) == 2
    expected = assess_photos(photos, cfg)
    with town() as s:
        stored = {t.photo_sha256: t for t in s.scalars(select(TownTemplate))}
    for r in expected:
        t = stored[r.verdict.sha256]
        assert np.allclose(np.frombuffer(t.vector, "<f4"), r.verdict.encoding, atol=1e-6)
        assert t.quality == r.verdict.quality
    [(_, ops)] = log_of(town, "gw-a")[-1:]
    assert {o["photo_sha256"] for o in ops} == set(stored)
    # Another person among the photos: nothing stored, the verdicts say why.
    odd = [*photos, ("x.jpg", lfw_photo("Andre_Agassi", 1).read_bytes())]
    with town.begin() as s:
        refused = reg.enrol_photos(s, "admin1", "T1", odd, cfg)
    assert not refused.ok and any(r.verdict.reason == "not_the_same_person" for r in refused.results)
    assert len(log_of(town, "gw-a")) == 2

"""The town's API as its users meet it (issue 12), on both back-ends (`town_cfg`: SQLite and PostgreSQL):
roles on every route, police reads audited, the entries of every building with the gateway_id and permit
filters, a person's home and whereabouts in one request, the fleet view, the register and the watch list
(each change in the building's roster log, the pusher woken), exports with a building column, the page.

create_town_app in this process over the town's real store (open_town_store), through httpx's ASGI transport.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import anyio
import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from openpyxl import load_workbook
from sqlalchemy import event, select
from sqlalchemy.orm import Session, sessionmaker

from config.town import TownConfig
from gateway.api.users import create_user
from gateway.store.models import AuditLog
from testing.faces import faces_dir_path
from town import register as reg
from town.api import queries
from town.api.app import create_town_app
from town.api.context import TownContext
from town.store.db import open_town_store
from town.store.models import Gateway, RosterLogEntry, TownAlert, TownEntry

T = "/api/v1"
ROLES = ("admin", "police", "auditor", "operator")
NOW = datetime.now(UTC).replace(microsecond=0)
PERMIT1, PERMIT2 = "440106199001011234", "440106199202021111"
CARD1 = 305419896


@dataclass
class Pusher:
    woken: int = 0

    def wake(self) -> None:
        self.woken += 1


@dataclass
class Town:
    cfg: TownConfig
    ctx: TownContext
    app: FastAPI
    sessions: sessionmaker[Session]
    tokens: dict[str, str]
    pusher: Pusher
    ids: dict[str, str] = field(default_factory=dict)

    def request(self, method: str, path: str, role: str | None = None, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}
        headers |= kwargs.pop("headers", {})

        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
                return await client.request(method, path, headers=headers, **kwargs)

        return anyio.run(go)

    def get(self, path: str, role: str = "police", **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, role, **kwargs)

    def audit_rows(self, action: str) -> list[tuple[str, int | None, dict[str, Any]]]:
        with self.sessions() as s:
            rows = s.scalars(select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id))
            return [(r.actor, r.rows, r.details) for r in rows]

    def log_of(self, gateway_id: str) -> list[list[dict[str, Any]]]:
        with self.sessions() as s:
            query = select(RosterLogEntry.ops).where(RosterLogEntry.gateway_id == gateway_id)
            return list(s.scalars(query.order_by(RosterLogEntry.version)))


def vec(i: int) -> np.ndarray:
    v = np.random.default_rng(i).normal(size=128).astype("<f4")
    return v / np.linalg.norm(v)


def entry(n: int, gateway_id: str, ts: datetime, **over: Any) -> TownEntry:
    values = {"id": f"01J{n:023d}", "ts": ts, "gateway_id": gateway_id, "seq": n, "door": "main", "method": "card",
              "card_number": None, "card_bits": None, "tenant_id": None, "decision": "granted", "reason": "granted",
              "face_distance": None, "camera": None, "snapshot": None} | over  # fmt: skip
    return TownEntry(**values)


def alert(n: int, gateway_id: str, ts: datetime, kind: str, **over: Any) -> TownAlert:
    values = {"id": f"01A{n:023d}", "ts": ts, "gateway_id": gateway_id, "seq": n, "kind": kind, "state": "raised",
              "severity": "warning", "door": "main", "camera": None, "tenant_id": None, "details": {},
              "snapshot": None} | over  # fmt: skip
    return TownAlert(**values)


@pytest.fixture
def town(town_cfg: TownConfig) -> Iterator[Town]:
    engine, sessions = open_town_store(town_cfg)
    pusher = Pusher()
    ctx = TownContext(town_cfg, engine, sessions, pusher=pusher)
    with sessions.begin() as s:
        tokens = {role: create_user(s, f"{role}-1", role, "test") for role in ROLES}
        valid = date.today() + timedelta(days=365)
        reg.add_tenant(s, "seed", gateway_id="gw-a", id="T1", name="王芳", permit=PERMIT1, valid_to=valid, room="302")
        reg.add_tenant(s, "seed", gateway_id="gw-b", id="T2", name="Li Lei", permit=PERMIT2, valid_to=valid, room="5B")
        reg.add_tenant(s, "seed", gateway_id="gw-a", id="T3", name="LILY Chen", permit="4499", valid_to=valid)
        reg.add_card(s, "seed", "T1", CARD1)
        reg.add_card(s, "seed", "T3", 0x1000005)
        reg.add_templates(s, "seed", "T1", [vec(1), vec(2)])
        reg.ensure_gateways(s, ["gw-c"])
    with sessions.begin() as s:
        for gw, availability, seen, held, depth, missing in (("gw-a", "online", NOW - timedelta(seconds=20), 5, 0, 0),
                                                             ("gw-b", "offline", NOW - timedelta(hours=3), 1, 120, 4),
                                                             ("gw-c", "unknown", None, 0, None, 0)):  # fmt: skip
            g = s.get(Gateway, gw)
            assert g is not None
            g.availability, g.last_seen, g.roster_version = availability, seen, held
            g.outbox_depth, g.missing_seqs = depth, missing
        s.add_all([
            entry(1, "gw-a", NOW - timedelta(hours=1), tenant_id="T1", card_number=CARD1, card_bits=34),
            entry(2, "gw-b", NOW - timedelta(hours=2), card_number=CARD1, card_bits=34, decision="denied",
                  reason="unknown_card"),  # T1's card at a building that does not know it
            entry(3, "gw-b", NOW - timedelta(hours=3), tenant_id="T2", method="face", face_distance=0.41),
            entry(4, "gw-a", NOW - timedelta(days=40), tenant_id="T1", card_number=CARD1, card_bits=34),
            entry(5, "gw-c", NOW - timedelta(hours=5), card_number=99, card_bits=34, decision="denied",
                  reason="unknown_card", door="=HYPERLINK(\"x\")"),
            entry(6, "gw-a", NOW - timedelta(hours=6), tenant_id="T3", card_number=5, card_bits=26),
            entry(7, "gw-a", NOW - timedelta(days=400), tenant_id="T1", card_number=CARD1, card_bits=34),
            alert(1, "gw-a", NOW - timedelta(hours=1), "door_forced", severity="critical"),
            alert(2, "gw-a", NOW - timedelta(hours=2), "stranger", acknowledged_at=NOW, acknowledged_by="x"),
            alert(3, "gw-b", NOW - timedelta(hours=2), "watchlist_hit", tenant_id="T2",
                  details={"watch_id": "W1", "distance": 0.3}),
            alert(4, "gw-b", NOW - timedelta(days=40), "door_held_open"),
        ])  # fmt: skip
    app = create_town_app(ctx)
    try:
        yield Town(town_cfg, ctx, app, sessions, tokens, pusher)
    finally:
        ctx.photos.close()
        engine.dispose()


def items(r: httpx.Response) -> list[dict[str, Any]]:
    assert r.status_code == 200, r.text
    return r.json()["items"]


# --- roles on every route -------------------------------------------------------------------------

READ = ("admin", "police")
ACK = ("admin", "police", "operator")
ALL = ROLES
ROUTES: list[tuple[str, str, tuple[str, ...]]] = [
    ("GET", "/me", ALL),
    ("POST", "/users", ("admin",)),
    ("GET", "/users", ("admin",)),
    ("DELETE", "/users/nobody", ("admin",)),
    ("POST", "/users/nobody/rotate", ("admin",)),
    ("GET", "/gateways", ("admin", "police", "operator")),
    ("GET", "/entries", READ),
    ("GET", "/entries.csv", READ),
    ("GET", "/entries.xlsx", READ),
    ("GET", f"/people/{PERMIT1}", READ),
    ("GET", "/alerts", ACK),
    ("POST", "/alerts/nothing/ack", ACK),
    ("GET", "/audit", ("auditor",)),
    ("GET", "/audit.csv", ("auditor",)),
    ("GET", "/audit.xlsx", ("auditor",)),
    ("GET", "/tenants", READ),
    ("GET", "/tenants/nobody", READ),
    ("POST", "/tenants", ("admin",)),
    ("PATCH", "/tenants/nobody", ("admin",)),
    ("POST", "/tenants/nobody/suspend", ("admin",)),
    ("POST", "/tenants/nobody/revoke", ("admin",)),
    ("POST", "/tenants/nobody/activate", ("admin",)),
    ("DELETE", "/tenants/nobody", ("admin",)),
    ("POST", "/tenants/nobody/cards", ("admin",)),
    ("DELETE", "/cards/1", ("admin",)),
    ("POST", "/tenants/nobody/faces", ("admin",)),
    ("DELETE", "/tenants/nobody/faces", ("admin",)),
    ("POST", "/enrolments", ("admin",)),
    ("GET", "/watch", ("police",)),
    ("POST", "/watch", ("police",)),
    ("DELETE", "/watch/nobody", ("police",)),
    ("PUT", "/tenants/nobody/watchlist", ("police",)),
    ("DELETE", "/tenants/nobody/watchlist", ("police",)),
]


def _template(path: str) -> str:
    for concrete, pattern in ((f"/people/{PERMIT1}", "/people/{permit}"), ("/users/nobody", "/users/{name}"),
                              ("/tenants/nobody", "/tenants/{tenant_id}"), ("/alerts/nothing", "/alerts/{alert_id}"),
                              ("/cards/1", "/cards/{number}"), ("/watch/nobody", "/watch/{watch_id}")):  # fmt: skip
        path = path.replace(concrete, pattern)
    return T + path


def test_the_role_table_covers_every_route(town: Town) -> None:
    spec = town.request("GET", f"{T}/openapi.json").json()
    served = {(m.upper(), path) for path, ops in spec["paths"].items() for m in ops}
    tested = {(m, _template(p)) for m, p, _ in ROUTES}
    open_routes = {("GET", f"{T}/health"), ("POST", f"{T}/session"), ("DELETE", f"{T}/session")}
    assert served - open_routes == tested


def test_roles_on_every_route(town: Town) -> None:
    for method, path, allowed in ROUTES:
        assert town.request(method, T + path).status_code == 401, (method, path)
        for role in ROLES:
            status = town.request(method, T + path, role).status_code
            if role in allowed:
                assert status not in (401, 403), (method, path, role, status)
            else:
                assert status == 403, (method, path, role, status)
    assert town.request("GET", f"{T}/health").json() == {"status": "ok"}
    bad = town.request("GET", f"{T}/entries", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401 and bad.json()["error"]["code"] == "unauthenticated"


def test_me_and_the_sign_in_cookie(town: Town) -> None:
    assert town.get(f"{T}/me", "operator").json() == {"name": "operator-1", "role": "operator",
                                                      "timezone": "Asia/Shanghai"}  # fmt: skip

    async def go() -> tuple[int, int, int]:
        transport = httpx.ASGITransport(app=town.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
            signed = await c.post(f"{T}/session", json={"token": town.tokens["police"]})
            me = await c.get(f"{T}/me")
            csrf = await c.post(f"{T}/alerts/01A{1:023d}/ack")  # a change with the cookie needs the header
            return signed.status_code, me.status_code, csrf.status_code

    assert anyio.run(go) == (200, 200, 403)


def test_admin_manages_users_and_tokens(town: Town) -> None:
    made = town.request("POST", f"{T}/users", "admin", json={"name": "clerk", "role": "police"})
    assert made.status_code == 201
    token = made.json()["token"]
    assert town.request("GET", f"{T}/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    rotated = town.request("POST", f"{T}/users/clerk/rotate", "admin").json()["token"]
    assert town.request("GET", f"{T}/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert town.request("DELETE", f"{T}/users/clerk", "admin").status_code == 204
    assert town.request("GET", f"{T}/me", headers={"Authorization": f"Bearer {rotated}"}).status_code == 401
    assert [a for _, _, a in town.audit_rows("user.create")][-1] == {"name": "clerk", "role": "police"}


# --- entries of every building ------------------------------------------------------------------------


def test_entries_of_every_building_newest_first_with_names(town: Town) -> None:
    found = items(town.get(f"{T}/entries"))
    assert [e["seq"] for e in found] == [1, 2, 3, 5, 6, 4]  # 7 is older than the default window
    first = found[0]
    assert (first["gateway_id"], first["tenant_name"], first["room"]) == ("gw-a", "王芳", "302")
    assert first["ts"] == (NOW - timedelta(hours=1)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    t3 = next(e for e in found if e["tenant_id"] == "T3")
    assert t3["matched_card"] == 0x1000005  # a 26-bit read names the enrolled card whose low 24 bits it carries
    old = items(town.get(f"{T}/entries", params={"since": (NOW - timedelta(days=500)).isoformat()}))
    assert [e["seq"] for e in old][-1] == 7


def test_gateway_id_and_permit_filters(town: Town) -> None:
    assert [e["seq"] for e in items(town.get(f"{T}/entries", params={"gateway_id": "gw-b"}))] == [2, 3]
    assert [e["seq"] for e in items(town.get(f"{T}/entries", params={"permit": PERMIT1}))] == [1, 4]
    both = town.get(f"{T}/entries", params={"permit": PERMIT1, "gateway_id": "gw-b"})
    assert items(both) == []
    nobody = town.get(f"{T}/entries", params={"permit": "4401061990", "with_total": "true"}).json()  # a prefix
    assert nobody == {"items": [], "next_cursor": None, "total": 0, "total_capped": False, "hint": "no_person"}
    assert [e["seq"] for e in items(town.get(f"{T}/entries", params={"person": "li"}))] == [3, 6]  # T2, T3
    assert [e["seq"] for e in items(town.get(f"{T}/entries", params={"card_number": CARD1}))] == [1, 2, 4]
    denied = town.get(f"{T}/entries", params={"decision": "denied", "reason": "unknown_card", "door": "main"})
    assert [e["seq"] for e in items(denied)] == [2]


def test_pages_by_cursor_and_by_number(town: Town) -> None:
    everything = [e["id"] for e in items(town.get(f"{T}/entries"))]
    seen, cursor = [], None
    while True:
        page = town.get(f"{T}/entries", params={"limit": 2} | ({"cursor": cursor} if cursor else {})).json()
        seen += [e["id"] for e in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == everything
    second = town.get(f"{T}/entries", params={"limit": 2, "offset": 2, "with_total": "true"}).json()
    assert [e["id"] for e in second["items"]] == everything[2:4] and second["total"] == len(everything)
    assert town.get(f"{T}/entries", params={"cursor": "bad"}).status_code == 422
    assert town.get(f"{T}/entries", params={"cursor": "x", "offset": 1}).status_code == 422
    assert town.get(f"{T}/entries", params={"since": "2026-01-01T00:00:00"}).status_code == 422  # no zone


def test_police_reads_are_audited(town: Town) -> None:
    town.get(f"{T}/entries", params={"gateway_id": "gw-a", "permit": PERMIT1})
    [(actor, rows, details)] = town.audit_rows("entries.search")
    assert (actor, rows) == ("police-1", 2)
    assert details["filters"]["gateway_id"] == "gw-a" and details["filters"]["permit"] == PERMIT1
    town.get(f"{T}/alerts", params={"gateway_id": "gw-b"})
    [(actor, rows, details)] = town.audit_rows("alerts.search")
    assert (actor, rows, details["filters"]["gateway_id"]) == ("police-1", 2, "gw-b")
    town.get(f"{T}/tenants", params={"q": "li"})
    town.get(f"{T}/tenants/T1")
    town.get(f"{T}/tenants", "admin")  # the admin's own register work is not a police read
    assert [(a, n) for a, n, _ in town.audit_rows("tenants.search")] == [("police-1", 2)]
    assert [(a, n) for a, n, _ in town.audit_rows("tenants.read")] == [("police-1", 1)]
    town.get(f"{T}/people/{PERMIT1}")
    town.get(f"{T}/people/{PERMIT1}", "admin")
    assert [(a, d["filters"]) for a, _, d in town.audit_rows("people.read")] == [
        ("police-1", {"permit": PERMIT1, "days": 30}), ("admin-1", {"permit": PERMIT1, "days": 30})]
    town.get(f"{T}/watch")
    assert [(a, n) for a, n, _ in town.audit_rows("watch.search")] == [("police-1", 0)]
    csv_text = town.get(f"{T}/entries.csv", params={"gateway_id": "gw-b"}).text
    assert csv_text.count("\r\n") == 3
    [(actor, rows, details)] = town.audit_rows("entries.export")
    assert (actor, rows, details["state"], details["filters"]) == ("police-1", 2, "completed", {"gateway_id": "gw-b"})
    # The auditor reads it all; nobody changes it.
    log = items(town.get(f"{T}/audit", "auditor", params={"action": "people.read"}))
    assert len(log) == 2
    assert town.request("DELETE", f"{T}/audit", "auditor").status_code == 405


def test_where_a_permit_holder_lives_and_was_seen(town: Town) -> None:
    r = town.get(f"{T}/people/{PERMIT1}")
    assert r.status_code == 200, r.text
    found = r.json()
    tenant = found["tenant"]
    assert (tenant["id"], tenant["gateway_id"], tenant["room"], tenant["cards"]) == ("T1", "gw-a", "302", [CARD1])
    # Newest first, every building: the tenant's own entries and a read of their card at gw-b; not 40 days ago.
    assert [(e["seq"], e["gateway_id"]) for e in found["entries"]] == [(1, "gw-a"), (2, "gw-b")]
    assert found["truncated"] is False
    longer = town.get(f"{T}/people/{PERMIT1}", params={"days": 60}).json()["entries"]
    assert [e["seq"] for e in longer] == [1, 2, 4]
    missing = town.get(f"{T}/people/0000")
    assert missing.status_code == 404
    assert town.audit_rows("people.read")[-1][1] == 0
    assert town.get(f"{T}/people/{PERMIT1}", params={"days": 0}).status_code == 422


def test_exports_have_a_building_column(town: Town) -> None:
    r = town.get(f"{T}/entries.csv", params={"lang": "zh-CN"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert rows[0][:3] == ["时间 (Asia/Shanghai)", "楼栋", "门"]
    assert [row[1] for row in rows[1:]] == ["gw-a", "gw-b", "gw-b", "gw-c", "gw-a", "gw-a"]
    assert rows[4][2] == "'=HYPERLINK(\"x\")"  # the formula guard
    book = load_workbook(io.BytesIO(town.get(f"{T}/entries.xlsx", params={"lang": "en"}).content))
    sheet = book.active
    assert [c.value for c in sheet[1]][:3] == ["Time (Asia/Shanghai)", "Building", "Door"]
    assert sheet["B2"].value == "gw-a" and sheet.max_row == 7
    audit_csv = town.get(f"{T}/audit.csv", "auditor")
    assert audit_csv.status_code == 200 and "entries.export" not in audit_csv.text  # actions in words


# --- alerts and the fleet ------------------------------------------------------------------------------


def test_alerts_by_building_and_for_operators(town: Town) -> None:
    assert [a["seq"] for a in items(town.get(f"{T}/alerts", params={"gateway_id": "gw-a"}))] == [1, 2]
    assert [a["seq"] for a in items(town.get(f"{T}/alerts", params={"acknowledged": "false"}))] == [1, 3, 4]
    seen = items(town.get(f"{T}/alerts", "operator"))
    assert "watchlist_hit" not in {a["kind"] for a in seen} and all(a["tenant_id"] is None for a in seen)
    assert town.get(f"{T}/alerts", "operator", params={"tenant_id": "T2"}).status_code == 403
    assert town.request("POST", f"{T}/alerts/01A{3:023d}/ack", "operator").status_code == 404  # not theirs
    acked = town.request("POST", f"{T}/alerts/01A{1:023d}/ack", "operator")
    assert acked.status_code == 200 and acked.json()["acknowledged_by"] == "operator-1"
    [(actor, _, details)] = town.audit_rows("alert.ack")
    assert (actor, details["gateway_id"]) == ("operator-1", "gw-a")


def test_the_fleet_view(town: Town) -> None:
    fleet = {g["gateway_id"]: g for g in town.get(f"{T}/gateways", "operator").json()}
    assert sorted(fleet) == ["gw-a", "gw-b", "gw-c"]
    a, b, c = fleet["gw-a"], fleet["gw-b"], fleet["gw-c"]
    assert (a["availability"], a["roster_version"], a["target_version"], a["outbox_depth"]) == ("online", 5, 5, 0)
    assert a["last_seen"] == (NOW - timedelta(seconds=20)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert (b["availability"], b["roster_version"], b["target_version"], b["missing_seqs"]) == ("offline", 1, 1, 4)
    assert (c["availability"], c["last_seen"], c["outbox_depth"]) == ("unknown", None, None)
    # Open: raised, not acknowledged, in the last 30 days (gw-b's 40-day-old one is not counted).
    assert (a["open_alerts"], b["open_alerts"], c["open_alerts"]) == (1, 1, 0)
    town.request("POST", f"{T}/alerts/01A{1:023d}/ack", "admin")
    assert {g["gateway_id"]: g["open_alerts"] for g in town.get(f"{T}/gateways").json()}["gw-a"] == 0
    online = town.get(f"{T}/gateways", params={"availability": "online"}).json()
    assert [g["gateway_id"] for g in online] == ["gw-a"]
    # A change to a building's roster raises its target: the fleet shows it behind.
    town.request("POST", f"{T}/tenants/T2/suspend", "admin", json={"reason": "unpaid"})
    b = {g["gateway_id"]: g for g in town.get(f"{T}/gateways").json()}["gw-b"]
    assert b["target_version"] == b["roster_version"] + 1


# --- the register ---------------------------------------------------------------------------------------


def tenant_body(tid: str, gateway_id: str, permit: str, **over: Any) -> dict[str, Any]:
    return {"id": tid, "gateway_id": gateway_id, "name": "张伟", "permit_number": permit,
            "valid_from": "2026-01-01", "valid_to": "2030-12-31", "room": "101"} | over  # fmt: skip


def test_register_changes_go_to_the_building_and_wake_the_pusher(town: Town) -> None:
    before = town.pusher.woken
    made = town.request("POST", f"{T}/tenants", "admin", json=tenant_body("T9", "gw-c", "P9"))
    assert made.status_code == 201, made.text
    assert made.json() | {"created_at": None, "updated_at": None} == {
        "id": "T9", "gateway_id": "gw-c", "name": "张伟", "permit_number": "P9", "valid_from": "2026-01-01",
        "valid_to": "2030-12-31", "room": "101", "status": "active", "watchlist": False, "cards": [],
        "face_templates": 0, "created_at": None, "updated_at": None, "updated_by": "admin-1"}  # fmt: skip
    assert town.pusher.woken == before + 1
    assert town.log_of("gw-c")[-1][0]["kind"] == "tenant"
    assert town.request("POST", f"{T}/tenants", "admin", json=tenant_body("T9", "gw-c", "P10")).status_code == 409
    clash = town.request("POST", f"{T}/tenants", "admin", json=tenant_body("T10", "gw-c", PERMIT1))
    assert clash.status_code == 409 and "T1" in clash.json()["error"]["message"]
    bad = town.request("POST", f"{T}/tenants", "admin", json=tenant_body("T11", "no such/building", "P11"))
    assert bad.status_code == 422

    card = town.request("POST", f"{T}/tenants/T9/cards", "admin", json={"number": 42})
    assert card.status_code == 201 and card.json()["cards"] == [42]
    assert town.request("POST", f"{T}/tenants/T2/cards", "admin", json={"number": 42}).status_code == 409
    assert town.log_of("gw-c")[-1] == [{"op": "upsert", "kind": "card", "number": 42, "tenant": "T9"}]
    status = town.request("POST", f"{T}/tenants/T9/suspend", "admin", json={"reason": "rent"})
    assert status.json()["status"] == "suspended"
    assert town.audit_rows("tenant.suspend")[-1][2]["reason"] == "rent"
    moved = town.request("PATCH", f"{T}/tenants/T9", "admin", json={"gateway_id": "gw-a", "room": "707"})
    assert moved.status_code == 200 and (moved.json()["gateway_id"], moved.json()["room"]) == ("gw-a", "707")
    assert town.log_of("gw-c")[-1] == [{"op": "delete", "kind": "tenant", "id": "T9"}]
    assert [o["kind"] for o in town.log_of("gw-a")[-1]] == ["tenant", "card"]
    assert town.request("DELETE", f"{T}/cards/42", "admin").status_code == 204
    assert town.request("DELETE", f"{T}/cards/42", "admin").status_code == 404
    assert town.request("DELETE", f"{T}/tenants/T1/faces", "admin").status_code == 204
    assert town.get(f"{T}/tenants/T1", "admin").json()["face_templates"] == 0
    assert town.request("DELETE", f"{T}/tenants/T9", "admin", json={"reason": "left"}).status_code == 204
    assert town.get(f"{T}/tenants/T9", "admin").status_code == 404
    assert town.log_of("gw-a")[-1] == [{"op": "delete", "kind": "tenant", "id": "T9"}]
    listed = town.get(f"{T}/tenants", "admin", params={"gateway_id": "gw-a"}).json()
    assert [t["id"] for t in listed["items"]] == ["T1", "T3"] and listed["total"] == 2


def test_enrolment_in_one_step(town: Town) -> None:
    tenant = json.dumps(tenant_body("T20", "gw-b", "P20"))
    made = town.request("POST", f"{T}/enrolments", "admin", data={"tenant": tenant, "cards": "[7, 8]"})
    assert made.status_code == 201, made.text
    assert (made.json()["gateway_id"], made.json()["cards"]) == ("gw-b", [7, 8])
    assert [o["kind"] for ops in town.log_of("gw-b")[-3:] for o in ops] == ["tenant", "card", "card"]
    again = town.request("POST", f"{T}/enrolments", "admin", data={"tenant": tenant, "cards": "[7]"})
    assert again.status_code == 409
    assert {p["field"] for p in again.json()["error"]["problems"]} == {"tenant.id", "tenant.permit_number", "cards[0]"}
    broken = town.request("POST", f"{T}/enrolments", "admin",
                          data={"tenant": json.dumps({"id": "T21", "name": "x"}), "cards": "[\"a\"]"})
    assert broken.status_code == 422
    fields = {p["field"] for p in broken.json()["error"]["problems"]}
    assert {"tenant.gateway_id", "tenant.permit_number", "tenant.valid_to", "cards[0]"} <= fields


def photo(person: str, n: int) -> tuple[str, tuple[str, bytes, str]]:
    path = sorted((faces_dir_path() / "lfw_subset" / person).glob("*.jpg"))[n]
    return "photos", (path.name, path.read_bytes(), "image/jpeg")


@pytest.mark.slow  # dlib checks the photos in a worker process
def test_faces_from_photos_at_the_town(town: Town) -> None:
    added = town.request("POST", f"{T}/tenants/T2/faces", "admin", files=[photo("Kofi_Annan", 0),
                                                                         photo("Kofi_Annan", 1)])  # fmt: skip
    assert added.status_code == 201, added.text
    assert added.json()["stored"] == 2
    assert [o["kind"] for o in town.log_of("gw-b")[-1]] == ["template", "template"]
    refused = town.request("POST", f"{T}/tenants/T2/faces", "admin",
                           files=[photo("Serena_Williams", 0), ("photos", ("b.txt", b"hello", "text/plain"))])
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "photo_rejected"
    watched = town.request("POST", f"{T}/watch", "police", data={"name": "Serena", "reason": "case 7"},
                           files=[photo("Serena_Williams", 0)])  # fmt: skip
    assert watched.status_code == 201, watched.text
    assert watched.json()["templates"] == 1 and watched.json()["tenant_id"] is None


# --- the watch list -------------------------------------------------------------------------------------


def test_the_watch_list(town: Town) -> None:
    added = town.request("POST", f"{T}/watch", "police", data={"name": "王芳", "note": "seen with W2",
                                                               "tenant_id": "T1", "reason": "case 12"})  # fmt: skip
    assert added.status_code == 201, added.text
    entry = added.json()
    assert (entry["tenant_id"], entry["templates"], entry["created_by"]) == ("T1", 2, "police-1")
    for gw in ("gw-a", "gw-b", "gw-c"):  # pushed to every gateway
        assert town.log_of(gw)[-1][0] | {"vectors": None} == {"op": "upsert", "kind": "watch", "id": entry["id"],
                                                              "name": "王芳", "note": "seen with W2", "vectors": None}
    assert town.audit_rows("watch.add")[-1][2]["reason"] == "case 12"
    assert town.get(f"{T}/tenants/T1").json()["watchlist"] is True
    listed = town.get(f"{T}/watch").json()
    assert listed["total"] == 1 and listed["items"][0]["id"] == entry["id"]
    assert town.get(f"{T}/watch", params={"q": "W2"}).json()["total"] == 1
    assert town.request("POST", f"{T}/watch", "police", data={"name": "x", "reason": "r"}).status_code == 422
    faceless = town.request("POST", f"{T}/watch", "police", data={"name": "x", "tenant_id": "T3"})
    assert faceless.status_code == 422 and faceless.json()["error"]["code"] == "no_faces"
    assert town.request("POST", f"{T}/watch", "police", data={"name": "x", "tenant_id": "T404"}).status_code == 404
    gone = town.request("DELETE", f"{T}/watch/{entry['id']}", "police", json={"reason": "closed"})
    assert gone.status_code == 204
    assert town.log_of("gw-c")[-1] == [{"op": "delete", "kind": "watch", "id": entry["id"]}]
    assert town.audit_rows("watch.remove")[-1][2]["reason"] == "closed"
    assert town.request("DELETE", f"{T}/watch/{entry['id']}", "police").status_code == 404
    # The gateway page's person screen puts a tenant on the list and off it the same way.
    on = town.request("PUT", f"{T}/tenants/T1/watchlist", "police", json={"reason": "again"})
    assert on.status_code == 200 and on.json()["watchlist"] is True
    off = town.request("DELETE", f"{T}/tenants/T1/watchlist", "police", json={"reason": "done"})
    assert off.status_code == 200 and off.json()["watchlist"] is False
    assert town.get(f"{T}/watch").json()["total"] == 0


# --- OpenAPI and the page -------------------------------------------------------------------------------


def test_openapi_and_the_page_from_the_gateways_folder(town: Town) -> None:
    spec = town.request("GET", f"{T}/openapi.json").json()
    assert {f"{T}/people/{{permit}}", f"{T}/gateways", f"{T}/watch", f"{T}/entries"} <= set(spec["paths"])
    page = town.request("GET", "/")
    assert page.status_code == 200 and "/town/js/app.js" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for path in ("/js/shell.js", "/js/ui.js", "/js/views/entries.js", "/i18n/zh-CN/town.json", "/i18n/en/codes.json",
                 "/style.css", "/town/js/app.js", "/town/js/views/fleet.js"):
        assert town.request("GET", path).status_code == 200, path
    assert town.request("GET", "/js/nothing.js").status_code == 404
    zh = town.request("GET", "/i18n/zh-CN/town.json").json()
    en = town.request("GET", "/i18n/en/town.json").json()
    assert set(zh) == set(en)


# --- PostgreSQL: every entries query bounds ts and reads indexes ----------------------------------------


def test_postgresql_plans_prune_partitions_and_use_indexes(town: Town) -> None:
    if town.ctx.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's plans")
    statements: list[tuple[str, Any]] = []

    def grab(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if "FROM entries" in statement or "FROM alerts" in statement:
            statements.append((statement, parameters))

    event.listen(town.ctx.engine, "before_cursor_execute", grab)
    try:
        with town.sessions() as s:
            week = queries.TownEntryFilter(since=NOW - timedelta(days=7), gateway_id="gw-a")
            queries.search_entries(s, week, with_total=True)
            queries.search_entries(s, queries.TownEntryFilter(tenant_id="T1"))
            queries.search_entries(s, queries.TownEntryFilter(card_number=CARD1))
            queries.person_entries(s, "T1", [CARD1], NOW - timedelta(days=30), NOW + timedelta(days=1), 100)
            queries.fleet(s)
    finally:
        event.remove(town.ctx.engine, "before_cursor_execute", grab)
    assert len(statements) >= 6
    this_month = f"entries_{NOW:%Y%m}"
    with town.ctx.engine.connect() as conn:
        conn.exec_driver_sql("SET enable_seqscan = off")  # an index that can serve must then be chosen
        for statement, parameters in statements:
            plan = "\n".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + statement, parameters))
            if "UNION ALL" in statement:  # a person's whereabouts: both of their index ranges
                assert "tenant_id_ts_idx" in plan and "card_number_ts_idx" in plan, plan
            assert "Seq Scan" not in plan, plan
            if "FROM entries" in statement:
                assert "ts >=" in statement and "ts <" in statement, statement
                assert this_month in plan
                months = {w for w in plan.replace("(", " ").split() if w.startswith("entries_2")}
                assert len(months) <= 15, plan  # pruned to the window, never every partition ever made
        week_plan = "\n".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + statements[0][0], statements[0][1]))
        assert f"entries_{(NOW - timedelta(days=200)):%Y%m}" not in week_plan


def test_an_entries_search_without_times_is_bounded_both_ways() -> None:
    rng = queries._entry_range(queries.TownEntryFilter(), NOW)
    assert (rng.lo, rng.hi) == (NOW - timedelta(days=queries.DEFAULT_WINDOW_DAYS), NOW + queries.AHEAD)
    until = NOW - timedelta(days=3)
    rng = queries._entry_range(queries.TownEntryFilter(until=until), NOW)
    assert (rng.lo, rng.hi) == (until - timedelta(days=queries.DEFAULT_WINDOW_DAYS), until)

"""Hardening of the API: export auditing, input bounds, security headers, snapshot files, busy limits."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import anyio
import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Receive, Scope, Send
from ulid import ULID

from config.models import GatewayConfig
from gateway.api import limits
from gateway.api.app import create_app
from gateway.api.context import ApiContext
from gateway.api.errors import ApiError
from gateway.api.headers import SecurityHeaders
from gateway.api.users import create_user
from gateway.snapshots import SnapshotStore
from gateway.store.db import open_store
from gateway.store.roster import NewTenant, RosterError, add_tenant
from testing.peers import wait_until
from tests.api.conftest import Api

T = "/api/v1"
ROW_FILLER = "x" * 60  # wide CSV rows: a few MB no socket buffer can swallow
# tcp_wmem's usual maximum is 4 MB; well past it, a server writing an export to a client that
# stops reading must wait mid-stream.
BIG_EXPORT_ROWS = 60_000


def db(api: Api) -> sqlite3.Connection:
    return sqlite3.connect(api.data_dir / "gateway.sqlite3", timeout=10)


def audit_rows(api: Api, action: str) -> list[tuple[str, int | None, dict[str, Any]]]:
    rows = db(api).execute("SELECT actor, rows, details FROM audit_log WHERE action = ? ORDER BY id", (action,))
    return [(actor, n, json.loads(details)) for actor, n, details in rows]


def bulk_entries(api: Api, n: int, snapshot: str | None = None) -> list[str]:
    """Entries straight into the table (no outbox rows: the daemon has nothing to publish)."""
    now = datetime.now(UTC)
    rows, ids = [], []
    for i in range(n):
        ts = now - timedelta(seconds=i)
        entry_id = str(ULID.from_datetime(ts))
        ids.append(entry_id)
        path = snapshot.format(id=entry_id) if snapshot else None
        rows.append((entry_id, 10_000_000 + i, ts.strftime("%Y-%m-%d %H:%M:%S.%f"), "main", "card", ROW_FILLER, i, 34,
                     None, "denied", "unknown_card", None, ROW_FILLER, path))  # fmt: skip
    with db(api) as conn:
        conn.executemany(
            "INSERT INTO entries (id, seq, ts, door, method, reader, card_number, card_bits, tenant_id, decision,"
            " reason, face_distance, camera, snapshot) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    return ids


def add_tenant_via_api(api: Api, tenant_id: str = "T1") -> None:
    r = api.client("admin").post(f"{T}/tenants", json={"id": tenant_id, "name": "王芳", "permit_number": tenant_id,
                                                       "valid_to": "2030-01-01"})  # fmt: skip
    assert r.status_code == 201, r.text


# --- 1. audit -------------------------------------------------------------------------------------


@pytest.mark.slow  # the daemon (api fixture)
@pytest.mark.parametrize("api", [{"max_exports": 1}], indirect=True)
def test_export_audited_at_start_completed_on_abort_and_its_slot_held_until_the_stream_ends(api: Api) -> None:
    bulk_entries(api, BIG_EXPORT_ROWS)
    police = api.client("police")
    with police.stream("GET", f"{T}/entries.csv") as r:
        assert r.status_code == 200
        chunks = r.iter_raw()  # kept: dropping the iterator would close the connection
        assert next(chunks).startswith("\ufeffTime (Asia/Shanghai),Door,Method,".encode())
        # Mid-stream: the row is there already, without a count.
        [(actor, rows, details)] = audit_rows(api, "entries.export")
        assert (actor, rows, details["state"]) == ("police-1", None, "started") and "completed" not in details
        # The one export slot is taken: another export waits, then is refused.
        busy = api.client("admin").get(f"{T}/entries.csv")
        assert busy.status_code == 429 and busy.json()["error"]["code"] == "busy", busy.text
        assert int(busy.headers["Retry-After"]) > 0
        # Searches have their own slots.
        assert police.get(f"{T}/entries", params={"limit": 1}).status_code == 200
    # The client went away: the same row gets the rows sent so far, and the slot comes back.
    aborted = wait_until(lambda: audit_rows(api, "entries.export")[0][1] is not None, 10, 0.05, "row completed")
    [(_, rows, details)] = audit_rows(api, "entries.export")
    assert aborted and 0 <= rows < BIG_EXPORT_ROWS and (details["state"], details["completed"]) == ("aborted", False)
    assert details["filters"] == {} and details["address"] == "127.0.0.1"
    full = police.get(f"{T}/entries.csv", params={"door": "main"})
    assert full.status_code == 200 and full.text.count("\r\n") == BIG_EXPORT_ROWS + 1
    last = audit_rows(api, "entries.export")[-1]
    assert (last[1], last[2]["completed"], last[2]["filters"]) == (BIG_EXPORT_ROWS, True, {"door": "main"})
    assert len(audit_rows(api, "entries.export")) == 2  # the refused export wrote nothing


@pytest.mark.slow  # the daemon (api fixture)
def test_police_reads_of_tenants_are_audited(api: Api) -> None:
    add_tenant_via_api(api)
    police, admin = api.client("police"), api.client("admin")
    assert police.get(f"{T}/tenants", params={"q": "T"}).json()["total"] == 1
    assert police.get(f"{T}/tenants/T1").status_code == 200
    assert police.get(f"{T}/tenants/nobody").status_code == 404
    assert admin.get(f"{T}/tenants").status_code == 200 and admin.get(f"{T}/tenants/T1").status_code == 200
    searches = audit_rows(api, "tenants.search")
    assert [(a, n, d["filters"]) for a, n, d in searches] == [("police-1", 1, {"q": "T", "limit": 50, "offset": 0})]
    reads = audit_rows(api, "tenants.read")
    assert [(a, n, d["filters"]) for a, n, d in reads] == [("police-1", 1, {"id": "T1"}),
                                                           ("police-1", 0, {"id": "nobody"})]  # fmt: skip


# --- 2. input validation --------------------------------------------------------------------------


def assert_422(r: httpx.Response) -> None:
    assert r.status_code == 422, (r.request.url, r.status_code, r.text)
    assert set(r.json()["error"]) >= {"code", "message"}, r.text


@pytest.mark.slow  # the daemon (api fixture)
def test_dates_out_of_range_are_refused_before_anything_runs(api: Api) -> None:
    police, admin, auditor = api.client("police"), api.client("admin"), api.client("auditor")
    assert_422(police.get(f"{T}/entries/per-hour", params={"day": "9999-12-31"}))  # was a 500
    assert_422(police.get(f"{T}/entries/per-hour", params={"day": "1999-12-31"}))
    assert_422(police.get(f"{T}/entries.csv", params={"since": "0001-01-01T00:00:00+08:00"}))  # was a cut-off 200
    assert_422(police.get(f"{T}/entries.csv", params={"until": "2101-01-01T00:00:00Z"}))
    assert_422(police.get(f"{T}/entries", params={"since": "1970-01-01T00:00:00Z"}))
    assert_422(police.get(f"{T}/alerts", params={"until": "9999-12-31T23:59:59+14:00"}))
    assert_422(auditor.get(f"{T}/audit", params={"since": "0001-01-01T00:00:00-12:00"}))
    assert police.get(f"{T}/entries/per-hour", params={"day": "2100-12-31"}).status_code == 200
    assert audit_rows(api, "entries.export") == []  # refused before the export started
    for body in ({"valid_to": "2201-01-01"}, {"valid_to": "2030-01-01", "valid_from": "1899-12-31"}):
        assert_422(admin.post(f"{T}/tenants", json={"id": "X", "name": "N", "permit_number": "P", **body}))
    add_tenant_via_api(api)
    assert_422(admin.patch(f"{T}/tenants/T1", json={"valid_to": "9999-12-31"}))
    assert admin.patch(f"{T}/tenants/T1", json={"valid_to": "2199-12-31"}).status_code == 200


BAD_TEXT = [("name", "Ali\u202ecod.exe"), ("name", "A\nB"), ("permit_number", "44\x0001"), ("room", "3\x1b[2J"),
            ("name", "x\u2066y"), ("permit_number", "\u200f123"), ("room", "\x85"), ("name", "\u061c")]  # fmt: skip


@pytest.mark.slow  # the daemon (api fixture)
def test_control_and_bidi_characters_are_refused(api: Api) -> None:
    admin = api.client("admin")
    add_tenant_via_api(api)
    for field, value in BAD_TEXT:
        body = {"id": "T9", "name": "王芳", "permit_number": "P9", "valid_to": "2030-01-01", field: value}
        assert_422(admin.post(f"{T}/tenants", json=body))
        assert_422(admin.patch(f"{T}/tenants/T1", json={field: value}))
    assert_422(admin.post(f"{T}/users", json={"name": "u\u202e1", "role": "police"}))
    assert [r[0] for r in db(api).execute("SELECT id FROM tenants")] == ["T1"]
    assert admin.get(f"{T}/tenants/T1").json()["name"] == "王芳"


def test_the_shared_roster_rule_refuses_them_for_the_cli_too(tmp_path: Path) -> None:
    engine, sessions = open_store(tmp_path)
    try:
        with sessions.begin() as s:
            with pytest.raises(RosterError, match="U\\+202E"):
                add_tenant(s, NewTenant("T1", "a\u202eb", "P1", datetime(2030, 1, 1).date()))
            with pytest.raises(RosterError, match="U\\+0000"):
                add_tenant(s, NewTenant("T1", "ab", "P\x001", datetime(2030, 1, 1).date()))
            with pytest.raises(RosterError, match="years 1900 to 2200"):
                add_tenant(s, NewTenant("T1", "ab", "P1", datetime(2230, 1, 1).date()))
            add_tenant(s, NewTenant("T1", "王\u200d芳", "P1", datetime(2030, 1, 1).date(), room="302"))  # ZWJ passes
    finally:
        engine.dispose()


@pytest.mark.slow  # the daemon (api fixture)
def test_card_numbers_are_strict_integers(api: Api) -> None:
    add_tenant_via_api(api)
    admin = api.client("admin")
    for number in (True, "12", 1.0, 12.5, None, [12]):
        assert_422(admin.post(f"{T}/tenants/T1/cards", json={"number": number}))
    assert admin.get(f"{T}/tenants/T1").json()["cards"] == []
    assert admin.post(f"{T}/tenants/T1/cards", json={"number": 12}).json()["cards"] == [12]


# --- 4. snapshots ---------------------------------------------------------------------------------


def test_snapshot_store_serves_only_regular_files_inside_its_folder(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    ts = datetime(2026, 11, 23, 8, tzinfo=UTC)
    store.save("entries", "01AAA", ts, b"\xff\xd8real")
    assert store.read("01AAA") == b"\xff\xd8real"
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(b"not yours")
    day = store.root / "2026-11-23"
    (day / "01LINK.jpg").symlink_to(secret)  # a linked file
    linked_day = store.root / "2026-11-24"
    linked_day.symlink_to(tmp_path)  # a linked day folder, holding secret.jpg
    (day / "01DIR.jpg").mkdir()
    for event_id in ("01LINK", "secret", "01DIR", "../secret", "..", "01AAA/../01AAA", "", "a" * 65, "01AAA\x00"):
        assert store.find(event_id) is None and store.read(event_id) is None, event_id


@pytest.mark.slow  # the daemon (api fixture)
def test_snapshot_route_refuses_a_linked_file(api: Api) -> None:
    good, linked = bulk_entries(api, 2, snapshot="/api/v1/entries/{id}/snapshot")
    store = SnapshotStore(api.data_dir)
    store.save("entries", good, datetime.now(UTC), b"\xff\xd8jpeg")
    outside = api.data_dir / "outside.jpg"
    outside.write_bytes(b"secret")
    os.symlink(outside, store.path_of(linked, datetime.now(UTC).date()))
    police = api.client("police")
    ok = police.get(f"{T}/entries/{good}/snapshot")
    assert ok.status_code == 200 and ok.content == b"\xff\xd8jpeg" and ok.headers["content-type"] == "image/jpeg"
    refused = police.get(f"{T}/entries/{linked}/snapshot")
    assert refused.status_code == 404 and refused.json()["error"]["code"] == "not_found"
    assert [n for _, n, _ in audit_rows(api, "entries.snapshot")] == [1, 0]


# --- in-process app: headers and the search limit -------------------------------------------------


class NoDoors:
    def open_door(self, door_id: str, actor: str) -> None:
        raise AssertionError("not in these tests")

    def door_states(self) -> list[dict[str, Any]]:
        return []

    def readiness(self) -> dict[str, Any]:
        return {"ready": True}

    def metrics_text(self) -> str:
        return ""


@dataclass
class Local:
    """create_app in this process (no daemon), with SecurityHeaders added as create_app is to add it."""

    app: FastAPI
    tokens: dict[str, str]

    def request(self, method: str, path: str, role: str | None = None, app: ASGIApp | None = None,
                **kwargs: Any) -> httpx.Response:  # fmt: skip
        headers = {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}

        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=app or self.app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
                return await client.request(method, path, headers=headers, **kwargs)

        return anyio.run(go)


@pytest.fixture
def local(tmp_path: Path) -> Iterator[Local]:
    cfg = GatewayConfig(gateway_id="local", data_dir=tmp_path, api={"max_searches": 1})
    engine, sessions = open_store(tmp_path)
    ctx = ApiContext(cfg=cfg, engine=engine, sessions=sessions, hooks=NoDoors(), snapshots=SnapshotStore(tmp_path))
    with sessions.begin() as s:
        tokens = {role: create_user(s, f"{role}-1", role, "test") for role in ("admin", "police")}
    app = create_app(ctx)
    app.add_middleware(SecurityHeaders)  # the line create_app is to get, after its other middleware

    def boom() -> None:
        raise RuntimeError("a bug")

    app.router.routes.insert(0, APIRoute(f"{T}/boom", boom))  # before the page's catch-all mount
    yield Local(app, tokens)
    engine.dispose()


def assert_secure(r: httpx.Response, api: bool) -> None:
    csp = r.headers.get("content-security-policy", "")
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp, (r.request.url, dict(r.headers))
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["x-frame-options"] == "DENY"
    assert (r.headers.get("cache-control") == "no-store") is api, r.request.url


def test_security_headers_on_every_kind_of_response(local: Local) -> None:
    answers = [
        (local.request("GET", f"{T}/health"), True, 200),
        (local.request("GET", f"{T}/me"), True, 401),
        (local.request("GET", f"{T}/me", "admin"), True, 200),
        (local.request("GET", f"{T}/audit", "admin"), True, 403),
        (local.request("GET", f"{T}/nothing-here"), True, 404),
        (local.request("POST", f"{T}/tenants", "admin", json={"id": "X"}), True, 422),
        (local.request("GET", f"{T}/entries.csv", "police"), True, 200),
        (local.request("GET", "/"), False, 200),
        (local.request("GET", "/js/app.js"), False, 200),
        (local.request("GET", "/no-such-file.js"), False, 404),
        (local.request("GET", f"{T}/boom"), True, 500),  # answered from outside every middleware
    ]
    for r, api, status in answers:
        assert r.status_code == status, (r.request.url, r.status_code)
        assert_secure(r, api)
    page = answers[7][0].headers["content-security-policy"]
    assert "script-src 'self'" in page and "img-src 'self' blob:" in page and "unsafe-inline" not in page

    async def too_large(scope: Scope, receive: Receive, send: Send) -> None:  # as an outer body limit answers
        await send({"type": "http.response.start", "status": 413, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"too large"})

    r = local.request("POST", f"{T}/tenants", content=b"x", app=SecurityHeaders(too_large))
    assert r.status_code == 413
    assert_secure(r, True)


def test_a_search_beyond_the_limit_waits_then_gets_429_busy(local: Local, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "WAIT_S", 0.2)
    slot = limits.slots(SimpleNamespace(app=local.app), "search")  # type: ignore[arg-type]
    slot.take()  # api.max_searches is 1: this holds the only slot
    for path in ("/entries", "/alerts", "/tenants"):
        r = local.request("GET", f"{T}{path}", "police")
        assert r.status_code == 429 and r.json()["error"]["code"] == "busy", r.text
        assert r.headers["retry-after"].isdigit()
    # A waiting search gets the slot when it comes back within the wait, and gives it back.
    threading.Timer(0.05, slot.release).start()
    assert local.request("GET", f"{T}/entries", "police").status_code == 200
    with slot.held():
        pass


def test_slots_wait_then_refuse() -> None:
    slots = limits.Slots(2, "exports", wait_s=0.05)
    slots.take()
    slots.take()
    with pytest.raises(ApiError) as refused:
        slots.take()
    assert (refused.value.status, refused.value.code) == (429, "busy") and "Retry-After" in refused.value.headers
    slots.release()
    with slots.held():
        pass
    slots.take()

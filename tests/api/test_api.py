"""The API's behaviour: enrolment, search, export, audit rows, bad input, token life cycle."""

from __future__ import annotations

import csv
import io
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from gateway.store.db import open_store
from gateway.store.journal import EntryDraft, record_entry
from testing.faces import faces_dir_path
from testing.gateway import ROOT
from tests.api.conftest import Api

pytestmark = pytest.mark.slow  # every test runs the daemon (the api fixture)

T = "/api/v1"
LFW = faces_dir_path() / "lfw_subset"


def audit_rows(api: Api, action: str) -> list[tuple]:
    db = sqlite3.connect(api.data_dir / "gateway.sqlite3")
    return db.execute(
        "SELECT actor, route, rows, details FROM audit_log WHERE action = ? ORDER BY id", (action,)
    ).fetchall()


def tenant_count(api: Api) -> int:
    return sqlite3.connect(api.data_dir / "gateway.sqlite3").execute("SELECT COUNT(*) FROM tenants").fetchone()[0]


def test_enrol_search_export_and_audit(api: Api) -> None:
    admin, police = api.client("admin"), api.client("police")
    r = admin.post(f"{T}/tenants", json={"id": "T1", "name": "王芳", "permit_number": "4401", "valid_to": "2030-01-01",
                                         "room": "302"})  # fmt: skip
    assert r.status_code == 201 and r.json()["status"] == "active"
    assert admin.post(f"{T}/tenants/T1/cards", json={"number": 305419896}).json()["cards"] == [305419896]
    assert admin.post(f"{T}/tenants/T1/cards", json={"number": 305419896}).status_code == 409
    person = sorted(LFW.iterdir())[3]
    good = sorted(person.glob("*.jpg"))[0].read_bytes()
    bad = admin.post(f"{T}/tenants/T1/faces", files=[("photos", ("a.jpg", good, "image/jpeg")),
                                                     ("photos", ("b.txt", b"hello", "text/plain"))])  # fmt: skip
    assert bad.status_code == 422
    assert [(v["name"], v["ok"], v["reason"]) for v in bad.json()["error"]["verdicts"]] == [
        ("a.jpg", True, "ok"), ("b.txt", False, "unreadable")]  # fmt: skip
    assert admin.get(f"{T}/tenants/T1").json()["face_templates"] == 0  # nothing stored
    ok = admin.post(f"{T}/tenants/T1/faces", files=[("photos", ("a.jpg", good, "image/jpeg"))])
    assert ok.status_code == 201 and ok.json()["stored"] == 1

    # Entries written as the door's path writes them; then searched, paged and exported.
    _, sessions = open_store(api.data_dir)
    now = datetime.now(UTC)
    with sessions.begin() as s:
        for i in range(120):
            record_entry(s, "api-test", EntryDraft(now - timedelta(minutes=i), "main", "card",
                                                   "granted" if i % 10 else "denied", "granted" if i % 10 else
                                                   "unknown_card", card_number=305419896, card_bits=34,
                                                   tenant_id="T1" if i % 10 else None))  # fmt: skip
    page1 = police.get(f"{T}/entries", params={"tenant_id": "T1", "limit": 50}).json()
    page2 = police.get(f"{T}/entries", params={"tenant_id": "T1", "limit": 50, "cursor": page1["next_cursor"]}).json()
    page3 = police.get(f"{T}/entries", params={"tenant_id": "T1", "limit": 50, "cursor": page2["next_cursor"]}).json()
    ids = [e["id"] for e in page1["items"] + page2["items"] + page3["items"]]
    assert len(ids) == 108 == len(set(ids)) and page3["next_cursor"] is None
    denied = police.get(f"{T}/entries", params={"decision": "denied", "since": (now - timedelta(hours=3)).isoformat()})
    assert len(denied.json()["items"]) == 12
    export = police.get(f"{T}/entries.csv", params={"door": "main"})
    assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(export.content.decode("utf-8-sig"))))  # a BOM, for Excel
    assert len(rows) == 120 and {r["Entry ID"] for r in rows} >= set(ids)
    hours = police.get(f"{T}/entries/per-hour", params={"day": datetime.now().date().isoformat()})
    assert hours.status_code == 200 and len(hours.json()["counts"]) == 24

    # Every read is audited with who, route, filters and rows returned.
    searches = audit_rows(api, "entries.search")
    assert [(a, rows) for a, _, rows, _ in searches] == [("police-1", 50), ("police-1", 50), ("police-1", 8),
                                                         ("police-1", 12)]  # fmt: skip
    assert '"tenant_id": "T1"' in searches[0][3] and searches[0][1] == "/api/v1/entries"
    assert [(a, rows) for a, _, rows, _ in audit_rows(api, "entries.export")] == [("police-1", 120)]

    # Watch list: police only, audited.
    assert police.put(f"{T}/tenants/T1/watchlist").json()["watchlist"] is True
    assert [a for a, *_ in audit_rows(api, "watchlist.set")] == ["police-1"]
    # Delete: cards and templates go, entries stay.
    assert admin.delete(f"{T}/tenants/T1").status_code == 204
    assert admin.get(f"{T}/tenants/T1").status_code == 404
    assert len(police.get(f"{T}/entries", params={"tenant_id": "T1", "limit": 500}).json()["items"]) == 108


def test_bad_input_gets_a_clear_4xx_and_changes_nothing(api: Api) -> None:
    admin = api.client("admin")
    before = tenant_count(api)
    cases = [
        admin.post(f"{T}/tenants", json={"id": "X", "name": "N", "permit_number": "P", "valid_to": "2027-02-30"}),
        admin.post(f"{T}/tenants", json={"id": "X", "name": "N", "permit_number": "P", "valid_to": 5}),
        admin.post(
            f"{T}/tenants",
            json={"id": "X'; DROP TABLE tenants;--", "name": "N", "permit_number": "P", "valid_to": "2027-01-01"},
        ),  # fmt: skip
        admin.post(
            f"{T}/tenants",
            json={"id": "X", "name": "N", "permit_number": "P", "valid_to": "2027-01-01", "valid_from": "2028-01-01"},
        ),  # fmt: skip
        admin.post(f"{T}/tenants", content=b"{not json", headers={"content-type": "application/json"}),
        admin.post(f"{T}/tenants/ghost/cards", json={"number": -1}),
        admin.post(f"{T}/tenants/ghost/cards", json={"number": 5}),
        admin.get(f"{T}/entries", params={"since": "yesterday"}),
        admin.get(f"{T}/entries", params={"since": "2026-01-02T00:00:00"}),  # no zone
        admin.get(f"{T}/entries", params={"cursor": "not-a-cursor"}),
        admin.get(f"{T}/entries", params={"limit": 100000}),
        admin.post(f"{T}/tenants/ghost/faces", files=[("photos", ("big.jpg", b"\xff" * 10_500_000, "image/jpeg"))]),
    ]
    for r in cases:
        assert 400 <= r.status_code < 500, (r.request.url, r.status_code, r.text)
        assert set(r.json()["error"]) >= {"code", "message"}, r.text
    sqlish = admin.get(f"{T}/entries", params={"tenant_id": "x' OR '1'='1", "door": "%", "reason": "_"})
    assert sqlish.status_code == 200 and sqlish.json()["items"] == []
    assert tenant_count(api) == before


def test_token_life_cycle_and_cli(api: Api) -> None:
    admin = api.client("admin")
    created = admin.post(f"{T}/users", json={"name": "officer-9", "role": "police"}).json()
    old = created["token"]
    assert api.client(token=old).get(f"{T}/me").json() == {"name": "officer-9", "role": "police",
                                                           "timezone": "Asia/Shanghai", "gateway_id": "api-test"}
    new = admin.post(f"{T}/users/officer-9/rotate").json()["token"]
    assert api.client(token=old).get(f"{T}/me").status_code == 401
    assert api.client(token=new).get(f"{T}/me").status_code == 200
    assert admin.delete(f"{T}/users/officer-9").status_code == 204
    assert api.client(token=new).get(f"{T}/me").status_code == 401
    assert [a for a, *_ in audit_rows(api, "user.rotate")] == ["admin"]
    # The CLI: the token alone on the last line, and revocation.
    cmd = [sys.executable, "-m", "gateway", "user", "add", "--config", str(api.config_path), "--name", "aud"]
    out = subprocess.run([*cmd, "--role", "auditor"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    token = out.stdout.strip().splitlines()[-1]
    assert api.client(token=token).get(f"{T}/audit").status_code == 200
    subprocess.run([sys.executable, "-m", "gateway", "user", "revoke", "--config", str(api.config_path), "--name",
                    "aud"], check=True, capture_output=True, timeout=60, cwd=ROOT)  # fmt: skip
    assert api.client(token=token).get(f"{T}/audit").status_code == 401
    mode = (api.data_dir / "initial-admin-token").stat().st_mode & 0o777
    assert mode == 0o600


def test_audit_log_cannot_be_changed_through_the_api(api: Api) -> None:
    auditor = api.client("auditor")
    rows = auditor.get(f"{T}/audit").json()["items"]
    assert rows and {r["action"] for r in rows} >= {"user.create"}
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        assert auditor.request(method, f"{T}/audit").status_code in (404, 405)
        assert api.client("admin").request(method, f"{T}/audit").status_code in (403, 404, 405)


def test_metrics_in_prometheus_format(api: Api) -> None:
    text = api.client("operator").get("/metrics").text
    for name in ("accessgw_swipes", "accessgw_decisions", "accessgw_bad_frames", "accessgw_outbox_depth",
                 "accessgw_faces_seen", "accessgw_recognition_frames_analysed"):  # fmt: skip
        assert f"# TYPE {name}" in text, name

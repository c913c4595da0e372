"""The API side of the web page as a product (issue 11): names and rooms on entries, person search, totals
and page numbers, exports a clerk opens (CSV with a BOM, XLSX) in Chinese or English with local times,
and the small gaps (watch-list filter, reasons, replacing faces, /me's zone).

create_app in this process over a real SQLite store (as tests/api/test_hardening.py's `local`).
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from fastapi import FastAPI
from openpyxl import load_workbook

from config.models import GatewayConfig
from gateway.api import exports
from gateway.api.app import create_app
from gateway.api.context import ApiContext
from gateway.api.users import create_user
from gateway.clock import named_zone
from gateway.snapshots import SnapshotStore
from gateway.store import queries
from gateway.store.db import open_store
from gateway.store.journal import AlertDraft, EntryDraft, record_alert, record_entry
from gateway.store.roster import NewTenant, add_tenant
from testing.faces import faces_dir_path

T = "/api/v1"
ROLES = ("admin", "police", "auditor", "operator")
AT = datetime(2026, 11, 23, 0, 30, tzinfo=UTC)  # 08:30:00 in Asia/Shanghai
ZH_ENTRY_HEADER = ["时间 (Asia/Shanghai)", "门", "通行方式", "结果", "原因", "住户编号", "姓名", "房号", "卡号",
                   "摄像头", "人脸比对距离", "记录编号"]  # fmt: skip
EN_ENTRY_HEADER = ["Time (Asia/Shanghai)", "Door", "Method", "Decision", "Reason", "Tenant ID", "Name", "Room",
                   "Card number", "Camera", "Face distance", "Entry ID"]  # fmt: skip
CODES = ("unknown_card", "granted", "denied", "card_and_face", "exit_button", "permit_expired")


@dataclass
class Doors:
    opened: list[tuple[str, str]] = field(default_factory=list)

    def open_door(self, door_id: str, actor: str) -> None:
        self.opened.append((door_id, actor))

    def door_states(self) -> list[dict[str, Any]]:
        return [{"id": "main", "mode": "card", "open": False, "unlocked": False, "fire_alarm": False}]

    def readiness(self) -> dict[str, Any]:
        return {"ready": True}

    def metrics_text(self) -> str:
        return ""


@dataclass
class Page:
    ctx: ApiContext
    app: FastAPI
    tokens: dict[str, str]
    data_dir: Path
    doors: Doors

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

    def db(self) -> sqlite3.Connection:
        return sqlite3.connect(self.data_dir / "gateway.sqlite3", timeout=10)

    def audit_rows(self, action: str) -> list[tuple[str, int | None, dict[str, Any]]]:
        rows = self.db().execute("SELECT actor, rows, details FROM audit_log WHERE action = ? ORDER BY id", (action,))
        return [(actor, n, json.loads(details)) for actor, n, details in rows]


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Page]:
    cfg = GatewayConfig(gateway_id="page-test", data_dir=tmp_path, timezone="Asia/Shanghai")
    engine, sessions = open_store(tmp_path)
    doors = Doors()
    ctx = ApiContext(cfg=cfg, engine=engine, sessions=sessions, hooks=doors, snapshots=SnapshotStore(tmp_path))
    with sessions.begin() as s:
        tokens = {role: create_user(s, f"{role}-1", role, "test") for role in ROLES}
        add_tenant(s, NewTenant("T1", "王芳", "440106199001011234", date(2030, 1, 1), room="302"))
        add_tenant(s, NewTenant("T2", "Li Lei", "440106199202021111", date(2030, 1, 1), room="5B"))
        add_tenant(s, NewTenant("T3", "LILY Chen", "4499", date(2030, 1, 1)))
        entries = [
            EntryDraft(AT, "main", "card", "granted", "granted", card_number=305419896, card_bits=34, tenant_id="T1"),
            EntryDraft(AT + timedelta(minutes=1), "main", "card", "denied", "unknown_card", card_number=77,
                       card_bits=34),
            EntryDraft(AT + timedelta(minutes=2), "main", "face", "granted", "granted", tenant_id="T2",
                       face_distance=0.41, camera="cam1"),
            EntryDraft(AT + timedelta(minutes=3), "=HYPERLINK(\"x\")", "card_and_face", "denied", "permit_expired",
                       tenant_id="T3", card_number=5, card_bits=26),
            EntryDraft(AT + timedelta(minutes=4), "main", "exit_button", "granted", "granted", tenant_id="T9"),
        ]  # fmt: skip
        for draft in entries:
            record_entry(s, "page-test", draft)
        for i in range(3):
            record_alert(s, "page-test", AlertDraft(AT + timedelta(minutes=i), "stranger", "raised", "warning"))
    try:
        yield Page(ctx, create_app(ctx), tokens, tmp_path, doors)
    finally:
        ctx.photos.close()
        engine.dispose()
        assert ctx.reader_engine is not None
        ctx.reader_engine.dispose()


def items(r: httpx.Response) -> list[dict[str, Any]]:
    assert r.status_code == 200, r.text
    return r.json()["items"]


# --- /me ------------------------------------------------------------------------------------------


def test_me_names_the_gateway_and_its_zone(page: Page) -> None:
    me = page.get(f"{T}/me", "operator").json()
    assert me == {"name": "operator-1", "role": "operator", "timezone": "Asia/Shanghai", "gateway_id": "page-test"}


# --- entries: names, rooms, person ----------------------------------------------------------------


def test_entries_carry_the_tenants_name_and_room(page: Page) -> None:
    got = {e["tenant_id"]: (e["tenant_name"], e["room"]) for e in items(page.get(f"{T}/entries"))}
    assert got == {"T1": ("王芳", "302"), None: (None, None), "T2": ("Li Lei", "5B"), "T3": ("LILY Chen", None),
                   "T9": (None, None)}  # fmt: skip  # T9: no such tenant (deleted)
    assert page.request("DELETE", f"{T}/tenants/T1", "admin").status_code == 204
    after = {e["tenant_id"]: e["tenant_name"] for e in items(page.get(f"{T}/entries"))}
    assert after["T1"] is None and after["T2"] == "Li Lei"


@pytest.mark.parametrize(
    ("person", "tenants"),
    [
        ("王", {"T1"}),  # part of a name
        ("li", {"T2", "T3"}),  # ASCII letters in any case
        ("LEI", {"T2"}),
        ("T2", {"T2"}),  # the id
        ("4401061990", {"T1"}),  # the beginning of a permit number
        ("440106199202021111", {"T2"}),  # a whole permit number
        ("4499", {"T3"}),
        (" 王芳 ", {"T1"}),
    ],
)
def test_the_person_filter(page: Page, person: str, tenants: set[str]) -> None:
    r = page.get(f"{T}/entries", params={"person": person, "with_total": "true"})
    found = items(r)
    assert {e["tenant_id"] for e in found} == tenants and r.json()["hint"] is None
    assert r.json()["total"] == len(found)
    [(_, rows, details)] = page.audit_rows("entries.search")
    assert details["filters"]["person"] == person and rows == len(found)


@pytest.mark.parametrize("person", ["nobody", "01011234", "%", "_", "T9"])  # a permit's middle is not its start
def test_a_person_nobody_is_an_empty_page_with_a_hint(page: Page, person: str) -> None:
    r = page.get(f"{T}/entries", params={"person": person, "with_total": "true"})
    assert r.status_code == 200
    assert r.json() == {"items": [], "next_cursor": None, "total": 0, "total_capped": False, "hint": "no_person"}
    assert page.get(f"{T}/entries.csv", params={"person": person}).text.count("\r\n") == 1  # the header alone


def test_a_person_naming_too_many_people_searches_the_first_ones(page: Page, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(queries, "MAX_PERSON_IDS", 1)
    r = page.get(f"{T}/entries", params={"person": "li"})
    assert r.json()["hint"] == "many_people" and {e["tenant_id"] for e in items(r)} == {"T2"}  # ids in order


# --- totals and page numbers ----------------------------------------------------------------------


def test_totals_and_page_numbers(page: Page, monkeypatch: pytest.MonkeyPatch) -> None:
    everything = [e["id"] for e in items(page.get(f"{T}/entries"))]
    assert len(everything) == 5
    first = page.get(f"{T}/entries", params={"limit": 2, "with_total": "true"}).json()
    assert (first["total"], first["total_capped"]) == (5, False)
    by_number = [e["id"] for e in items(page.get(f"{T}/entries", params={"limit": 2, "offset": 2}))]
    by_cursor = [e["id"] for e in items(page.get(f"{T}/entries", params={"limit": 2, "cursor": first["next_cursor"]}))]
    assert by_number == by_cursor == everything[2:4]
    assert items(page.get(f"{T}/entries", params={"offset": 5})) == []
    no_total = page.get(f"{T}/entries").json()
    assert (no_total["total"], no_total["total_capped"], no_total["hint"]) == (None, False, None)
    for params in ({"cursor": first["next_cursor"], "offset": 2}, {"offset": 100_001}, {"offset": -1}):
        r = page.get(f"{T}/entries", params=params)
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request", r.text
    monkeypatch.setattr(queries, "TOTAL_CAP", 3)
    capped = page.get(f"{T}/entries", params={"with_total": "true"}).json()
    assert (capped["total"], capped["total_capped"]) == (3, True)  # 5 match
    exact = page.get(f"{T}/entries", params={"with_total": "true", "decision": "granted"}).json()
    assert (exact["total"], exact["total_capped"]) == (3, False)  # 3 match
    # Alerts and the audit log page the same way.
    alerts = page.get(f"{T}/alerts", params={"limit": 1, "offset": 1, "with_total": "true"}).json()
    assert (len(alerts["items"]), alerts["total"], alerts["total_capped"]) == (1, 3, False)
    assert page.get(f"{T}/alerts", params={"offset": 1, "cursor": "x"}).status_code == 422
    monkeypatch.setattr(queries, "TOTAL_CAP", 100_000)
    log = page.get(f"{T}/audit", "auditor", params={"action": "entries.search", "with_total": "true"}).json()
    assert log["total"] == len(page.audit_rows("entries.search")) > 0
    second = page.get(f"{T}/audit", "auditor", params={"action": "entries.search", "limit": 1, "offset": 1}).json()
    assert second["items"] == log["items"][1:2]
    assert page.get(f"{T}/audit", "auditor", params={"offset": 1, "cursor": "x"}).status_code == 422
    searches = [d["filters"] for _, _, d in page.audit_rows("entries.search")]
    assert searches[1] == {"limit": 2, "with_total": True}
    assert searches[2] == {"limit": 2, "offset": 2}


# --- exports --------------------------------------------------------------------------------------


def csv_rows(r: httpx.Response) -> list[list[str]]:
    assert r.status_code == 200, r.text
    assert r.content.startswith(b"\xef\xbb\xbf") and r.headers["content-type"].startswith("text/csv")
    text = r.content.decode("utf-8-sig")
    assert text.count("\r\n") == text.count("\n")  # CRLF only
    return list(csv.reader(io.StringIO(text, newline="")))


def test_entries_csv_in_chinese_with_local_times(page: Page) -> None:
    r = page.get(f"{T}/entries.csv", params={"lang": "zh-CN"})
    header, *rows = csv_rows(r)
    assert header == ZH_ENTRY_HEADER and len(rows) == 5
    by_id = {row[5]: row for row in rows}
    assert by_id["T1"][:8] == ["2026-11-23 08:30:00", "main", "门卡", "允许", "准予通行", "T1", "王芳", "302"]
    assert by_id["T1"][8] == "305419896"
    assert by_id[""][2:5] == ["门卡", "拒绝", "未登记的卡"] and by_id[""][0] == "2026-11-23 08:31:00"
    assert by_id["T2"][2] == "人脸" and by_id["T2"][9:11] == ["cam1", "0.41"]
    assert by_id["T3"][1] == "'=HYPERLINK(\"x\")" and by_id["T3"][2:5] == ["门卡+人脸", "拒绝", "证件已过期"]
    assert by_id["T9"][2] == "出门按钮" and by_id["T9"][6:8] == ["", ""]
    text = r.content.decode("utf-8-sig")
    assert not any(code in text for code in CODES), text  # words, not codes
    [(actor, n, details)] = page.audit_rows("entries.export")
    assert (actor, n, details["format"], details["lang"], details["state"]) == ("police-1", 5, "csv", "zh-CN",
                                                                                   "completed")  # fmt: skip


def test_the_export_language_follows_the_browser_unless_asked(page: Page) -> None:
    assert csv_rows(page.get(f"{T}/entries.csv"))[0] == EN_ENTRY_HEADER
    zh = page.get(f"{T}/entries.csv", headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"})
    assert csv_rows(zh)[0] == ZH_ENTRY_HEADER
    en = page.get(f"{T}/entries.csv", params={"lang": "en"}, headers={"Accept-Language": "zh-CN"})
    header, *rows = csv_rows(en)
    assert header == EN_ENTRY_HEADER and ["Card", "Denied", "Unknown card"] in [row[2:5] for row in rows]
    assert page.get(f"{T}/entries.csv", params={"lang": "fr"}).status_code == 422
    # The filters of /entries apply, person included.
    header, *rows = csv_rows(page.get(f"{T}/entries.csv", params={"person": "王芳", "lang": "zh-CN"}))
    assert [row[6] for row in rows] == ["王芳"]


def test_entries_xlsx(page: Page) -> None:
    r = page.get(f"{T}/entries.xlsx", params={"lang": "zh-CN", "decision": "denied"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == exports.XLSX_TYPE and r.headers["content-disposition"].endswith('.xlsx"')
    assert int(r.headers["content-length"]) == len(r.content)
    sheet = load_workbook(io.BytesIO(r.content)).active
    assert sheet.freeze_panes == "A2" and sheet.title == "通行记录"
    rows = [[c.value for c in row] for row in sheet.iter_rows()]
    assert rows[0] == ZH_ENTRY_HEADER and len(rows) == 3
    newest, older = rows[1], rows[2]
    assert newest[0] == datetime(2026, 11, 23, 8, 33) and sheet["A2"].number_format == "yyyy-mm-dd hh:mm:ss"
    assert newest[1:8] == ['=HYPERLINK("x")', "门卡+人脸", "拒绝", "证件已过期", "T3", "LILY Chen", None]
    assert sheet["B2"].data_type == "s"  # text, never a formula
    assert older[2:5] == ["门卡", "拒绝", "未登记的卡"] and older[8] == 77
    assert sheet.column_dimensions["A"].width >= 20 and sheet.column_dimensions["L"].width >= 26
    flat = json.dumps(rows, default=str, ensure_ascii=False)
    assert not any(code in flat for code in CODES)
    [(_, n, details)] = page.audit_rows("entries.export")
    assert (n, details["format"], details["filters"], details["completed"]) == (2, "xlsx", {"decision": "denied"},
                                                                                 True)  # fmt: skip
    granted = load_workbook(io.BytesIO(page.get(f"{T}/entries.xlsx", params={"decision": "granted"}).content))
    names = {row[6] for row in granted.active.iter_rows(min_row=2, values_only=True)}
    assert names == {"王芳", "Li Lei", None}


def test_an_xlsx_export_beyond_what_a_spreadsheet_holds_is_refused(page: Page, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(exports, "XLSX_MAX_ROWS", 4)
    r = page.get(f"{T}/entries.xlsx")
    assert r.status_code == 422 and r.json()["error"]["code"] == "too_many_rows", r.text
    assert page.audit_rows("entries.export") == []  # nothing was read
    assert page.get(f"{T}/entries.xlsx", params={"door": "main"}).status_code == 200  # the slot came back
    assert page.get(f"{T}/entries.xlsx", params={"since": "2026-11-23T00:00:00"}).status_code == 422  # no zone
    assert list((page.data_dir).glob("tmp*")) == []  # the temporary file has no name to leave behind


def test_audit_exports_are_the_auditors(page: Page) -> None:
    page.get(f"{T}/entries", params={"person": "王"})
    assert page.get(f"{T}/audit.csv").status_code == 403 and page.get(f"{T}/audit.xlsx", "admin").status_code == 403
    header, *rows = csv_rows(page.get(f"{T}/audit.csv", "auditor", params={"lang": "zh-CN"}))
    assert header == ["时间 (Asia/Shanghai)", "操作人", "操作", "接口", "条数", "详情", "审计序号"]
    search = next(row for row in rows if row[1] == "police-1")
    assert search[2] == "查询通行记录" and search[3] == "/api/v1/entries" and '"person": "王"' in search[5]
    assert {row[2] for row in rows} >= {"新建账号", "导出审计日志"}  # its own row, started, is in it
    when = datetime.strptime(search[0], "%Y-%m-%d %H:%M:%S")
    now = datetime.now(UTC).astimezone(named_zone(page.ctx.cfg)[1]).replace(tzinfo=None)
    assert abs(when - now) < timedelta(minutes=5)
    book = load_workbook(io.BytesIO(page.get(f"{T}/audit.xlsx", "auditor", params={"action": "user.create"}).content))
    rows = list(book.active.iter_rows(values_only=True))
    assert rows[0][2] == "Action" and {r[2] for r in rows[1:]} == {"User created"} and len(rows) == 5
    assert [(a, d["format"]) for a, _, d in page.audit_rows("audit.export")] == [("auditor-1", "csv"),
                                                                                 ("auditor-1", "xlsx")]  # fmt: skip


# --- small gaps -----------------------------------------------------------------------------------


def test_tenants_on_the_watch_list(page: Page) -> None:
    assert page.request("PUT", f"{T}/tenants/T2/watchlist", "police").status_code == 200
    watched = page.get(f"{T}/tenants", params={"watchlist": "true"}).json()
    assert [t["id"] for t in watched["items"]] == ["T2"] and watched["total"] == 1
    others = page.get(f"{T}/tenants", "admin", params={"watchlist": "false"}).json()
    assert [t["id"] for t in others["items"]] == ["T1", "T3"]
    assert page.audit_rows("tenants.search")[0][2]["filters"]["watchlist"] is True


def test_status_changes_and_remote_opens_keep_their_reason(page: Page) -> None:
    r = page.request("POST", f"{T}/tenants/T1/suspend", "admin", json={"reason": "欠租，房东要求暂停"})
    assert r.status_code == 200 and r.json()["status"] == "suspended"
    assert page.request("POST", f"{T}/tenants/T1/activate", "admin").status_code == 200  # the body is optional
    assert page.request("POST", f"{T}/tenants/T1/revoke", "admin", json={}).status_code == 200
    for bad in ({"reason": "x" * 201}, {"reason": "a\u202eb"}, {"why": "x"}):
        assert page.request("POST", f"{T}/tenants/T1/activate", "admin", json=bad).status_code == 422
    details = [(action, d) for action in ("tenant.suspend", "tenant.activate", "tenant.revoke")
               for _, _, d in page.audit_rows(action)]  # fmt: skip
    assert details == [("tenant.suspend", {"tenant_id": "T1", "reason": "欠租，房东要求暂停"}),
                       ("tenant.activate", {"tenant_id": "T1"}), ("tenant.revoke", {"tenant_id": "T1"})]  # fmt: skip
    assert page.request("POST", f"{T}/doors/main/open", "operator", json={"reason": "快递员送货"}).status_code == 200
    assert page.request("POST", f"{T}/doors/main/open", "operator").status_code == 200
    assert page.doors.opened == [("main", "operator-1"), ("main", "operator-1")]
    opens = [d for _, _, d in page.audit_rows("door.open")]
    assert opens[0]["reason"] == "快递员送货" and "reason" not in opens[1]


def photo(person: str, n: int) -> tuple[str, tuple[str, bytes, str]]:
    path = sorted((faces_dir_path() / "lfw_subset" / person).glob("*.jpg"))[n]
    return "photos", (path.name, path.read_bytes(), "image/jpeg")


def templates(page: Page) -> list[str]:
    return [sha for (sha,) in page.db().execute("SELECT photo_sha256 FROM face_templates WHERE tenant_id = 'T1'"
                                                " ORDER BY id")]  # fmt: skip


def roster_events(page: Page) -> list[dict[str, Any]]:
    rows = page.db().execute("SELECT payload FROM outbox WHERE topic LIKE '%events/roster' ORDER BY seq")
    return [json.loads(p) for (p,) in rows]


@pytest.mark.slow  # dlib checks the photos in a worker process
def test_replacing_faces_is_all_or_nothing(page: Page) -> None:
    added = page.request("POST", f"{T}/tenants/T1/faces", "admin", files=[photo("Kofi_Annan", 0),
                                                                            photo("Kofi_Annan", 1)])  # fmt: skip
    assert added.status_code == 201 and added.json()["stored"] == 2, added.text
    before, events = templates(page), len(roster_events(page))
    refused = page.request("POST", f"{T}/tenants/T1/faces?replace=true", "admin",
                           files=[photo("Serena_Williams", 0), ("photos", ("b.txt", b"hello", "text/plain"))])
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "photo_rejected"
    assert templates(page) == before and len(roster_events(page)) == events  # nothing changed, nothing sent
    replaced = page.request("POST", f"{T}/tenants/T1/faces", "admin", params={"replace": "true"},
                            files=[photo("Serena_Williams", 0)])  # fmt: skip
    assert replaced.status_code == 201 and replaced.json()["stored"] == 1, replaced.text
    after = templates(page)
    assert len(after) == 1 and after[0] not in before
    [event] = roster_events(page)[events:]  # one event, with the whole new record
    assert event["change"] == "face.replace" and len(event["tenant"]["templates"]) == 1
    [(_, _, details)] = page.audit_rows("face.replace")
    assert details == {"tenant_id": "T1", "templates": 1, "removed": 2}
    assert page.request("GET", f"{T}/tenants/T1", "admin").json()["face_templates"] == 1


def test_watch_list_changes_and_deletions_keep_their_reason(page: Page) -> None:
    r = page.request("PUT", f"{T}/tenants/T2/watchlist", "police", json={"reason": "协查通报 2026-118"})
    assert r.status_code == 200
    assert page.request("DELETE", f"{T}/tenants/T2/watchlist", "police", json={"reason": "已结案"}).status_code == 200
    assert page.request("DELETE", f"{T}/tenants/T3", "admin", json={"reason": "已退租"}).status_code == 204
    assert [d["reason"] for _, _, d in page.audit_rows("watchlist.set")] == ["协查通报 2026-118"]
    assert [d["reason"] for _, _, d in page.audit_rows("watchlist.clear")] == ["已结案"]
    assert [d for _, _, d in page.audit_rows("tenant.delete")] == [{"tenant_id": "T3", "reason": "已退租"}]


def test_operators_read_door_alerts_but_not_watch_list_hits_nor_whom_an_alert_was_about(page: Page) -> None:
    with page.ctx.sessions.begin() as s:
        record_alert(s, "page-test", AlertDraft(AT, "watchlist_hit", "raised", "critical", tenant_id="T1",
                                                details={"watch_id": "W1", "distance": 0.3}))  # fmt: skip
        record_alert(s, "page-test", AlertDraft(AT, "door_forced", "raised", "critical", door="main", tenant_id="T2",
                                                details={"tenant_id": "T2", "input": 0}))  # fmt: skip
    police = items(page.get(f"{T}/alerts", "police"))
    operator = items(page.get(f"{T}/alerts", "operator", params={"with_total": "true"}))
    assert {a["kind"] for a in police} == {"stranger", "watchlist_hit", "door_forced"}
    assert {a["kind"] for a in operator} == {"stranger", "door_forced"}
    forced = next(a for a in operator if a["kind"] == "door_forced")
    assert forced["tenant_id"] is None and forced["details"] == {"input": 0} and forced["door"] == "main"
    hit = next(a for a in police if a["kind"] == "watchlist_hit")
    assert page.get(f"{T}/alerts/{hit['id']}/snapshot", "operator").status_code == 404
    assert page.get(f"{T}/alerts", "operator", params={"tenant_id": "T1"}).status_code == 403
    assert page.get(f"{T}/alerts", "operator", params={"with_total": "true"}).json()["total"] == 4


def test_a_26_bit_read_shows_the_number_on_the_tenants_card(page: Page) -> None:
    card = 0x01000005  # a 26-bit read of it carries 5, its low 24 bits
    assert page.request("POST", f"{T}/tenants/T3/cards", "admin", json={"number": card}).status_code == 201
    entries = items(page.get(f"{T}/entries"))
    got = {e["tenant_id"]: (e["card_number"], e["card_bits"], e["matched_card"]) for e in entries}
    assert got["T3"] == (5, 26, card)
    assert got["T1"] == (305419896, 34, None)  # a whole number needs no matching

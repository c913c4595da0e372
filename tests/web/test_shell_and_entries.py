"""The page's shell and the police home, in Chromium: sign-in through the form into an HttpOnly
cookie, reload, language, sign-out, each role's home and menu, and the entry search a police
officer uses (by name, presets, totals, snapshot facts, person link, CSV and XLSX exports)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import openpyxl
import pytest

from gateway.snapshots import SnapshotStore
from gateway.store.db import open_store
from gateway.store.journal import EntryDraft, new_event_id, record_entry
from tests.web.conftest import VIEWPORTS, ZONE, Screens, WebGateway, open_snapshot, photos_of

pytestmark = pytest.mark.slow  # the daemon and a headless Chromium

HOMES = {"admin": "tenants", "police": "entries", "operator": "doors", "auditor": "audit"}
MENUS = {
    "admin": {"entries", "alerts", "tenants", "enrol", "doors", "users"},
    "police": {"entries", "alerts", "watchlist", "tenants", "doors"},
    "operator": {"alerts", "doors"},
    "auditor": {"audit"},
}


def face_entry(gw: WebGateway, tenant_id: str | None, jpeg: Path) -> str:
    """A face entry with its snapshot, written through the gateway's own journal and snapshot
    store as its vision path writes one (this rig has no camera)."""
    ts = datetime.now(UTC)
    engine, sessions = open_store(gw.gateway.data_dir)
    try:
        entry_id = new_event_id(ts)
        path = SnapshotStore(gw.gateway.data_dir).save("entries", entry_id, ts, jpeg.read_bytes())
        draft = EntryDraft(ts=ts, door="main", method="face", decision="granted" if tenant_id else "denied",
                           reason="granted" if tenant_id else "unknown_face", tenant_id=tenant_id,
                           face_distance=0.31, camera="cam-lobby", snapshot=path)  # fmt: skip
        with sessions.begin() as s:
            record_entry(s, gw.gateway_id, draft, entry_id)
    finally:
        engine.dispose()
    return entry_id


def test_sign_in_keeps_the_token_out_of_scripts_survives_a_reload_and_signs_out(
    web_gw: WebGateway, browser: Any, page_as: Any, viewport: str, shot: Screens
) -> None:
    from playwright.sync_api import expect

    # A wrong token: refused with a message in Chinese, no cookie.
    context = browser.new_context(locale="zh-CN", timezone_id=ZONE, viewport=VIEWPORTS[viewport])
    try:
        page = context.new_page()
        page.goto(web_gw.base + "/")
        expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
        expect(page.locator("#signin-h")).to_have_text("登录")
        shot(page, "signin")
        page.fill("[data-testid=token-input]", "agw_not-a-token")
        page.click("[data-testid=sign-in-btn]")
        expect(page.locator("[data-testid=signin-msg]")).to_contain_text("令牌无效")
        assert context.cookies() == []
    finally:
        context.close()

    page = page_as("police")
    assert page.evaluate("document.cookie") == ""  # HttpOnly: no script of the page can read the token
    cookie = next(c for c in page.context.cookies() if c["name"] == "accessgw_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/api/"
    assert not any(web_gw.tokens["police"] in str(v) for v in page.evaluate("Object.values(localStorage)"))
    expect(page.locator("[data-testid=zone]")).to_contain_text("Asia/Shanghai (UTC+08:00)")
    expect(page.locator("[data-testid=whoami]")).to_contain_text("民警")

    page.reload()
    expect(page.locator("[data-testid=whoami]")).to_have_attribute("data-role", "police")  # the cookie held

    page.click("[data-testid=lang-toggle]")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("[data-testid=nav-entries]")).to_have_text("Entries")
    page.click("[data-testid=lang-toggle]")
    expect(page.locator("[data-testid=nav-entries]")).to_have_text("出入记录")

    page.click("[data-testid=sign-out]")
    expect(page.locator("[data-testid=signin-msg]")).to_have_text("您已退出登录。")
    page.reload()
    expect(page.locator("body[data-view=signin]")).to_have_count(1)
    assert not [c for c in page.context.cookies() if c["name"] == "accessgw_session"]


def test_each_role_lands_on_its_home_with_its_menu(page_as: Any, shot: Screens) -> None:
    from playwright.sync_api import expect

    for role, home in HOMES.items():
        page = page_as(role)
        expect(page.locator(f"body[data-view={home}]")).to_have_count(1)
        expect(page.locator(f"[data-testid=view-{home}] h2")).to_be_visible()
        menu = set(page.locator(".main-nav a").evaluate_all("links => links.map(a => a.dataset.testid.slice(4))"))
        assert menu == MENUS[role], (role, menu)
        page.wait_for_load_state("networkidle")
        shot(page, f"home-{role}")
        page.context.close()


def test_police_find_a_person_s_entries_by_name_and_export_them(
    web_gw: WebGateway, page_as: Any, viewport: str, shot: Screens, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    card = 0x00A1B200 + (1 if viewport == "phone" else 0)
    name = f"李娜{viewport}"
    tenant = f"t-entries-{viewport}"
    web_gw.add_tenant(tenant, name, room="5-101", card=card)
    granted = web_gw.swipe(card)
    web_gw.swipe(990_000 + len(viewport))  # a stranger
    face_id = face_entry(web_gw, tenant, photos_of(0)[0])
    local = datetime.fromisoformat(granted["ts"].replace("Z", "+00:00")).astimezone(ZoneInfo(ZONE))

    page = page_as("police")
    rows = page.locator("[data-testid=entry-row]")
    expect(rows.first).to_be_visible()  # the home loads without a button
    expect(page.locator("[data-testid=entries-pager-total]")).to_contain_text("共")

    page.fill("[data-testid=filter-person]", name[:2] + viewport[:2])  # part of the name
    page.click("[data-testid=entries-search]")
    expect(rows).to_have_count(2)
    expect(page.locator("[data-testid=entries-pager-total]")).to_contain_text("共 2 条")
    row = page.locator(f"[data-testid=entry-row][data-id='{granted['id']}']")
    expect(row.locator("[data-testid=entry-person]")).to_have_text(name)
    expect(row).to_contain_text("5-101")
    expect(row).to_contain_text("允许")
    expect(row).to_contain_text(local.strftime("%Y-%m-%d %H:%M:%S"))
    shot(page, "entries-by-name")

    face_row = page.locator(f"[data-testid=entry-row][data-id='{face_id}']")
    open_snapshot(page, face_row, "main", name, "允许")
    shot(page, "snapshot")
    page.click("[data-testid=snapshot-close]")

    # Exports with the same filter: a clerk's Excel opens them with names and words.
    with page.expect_download() as got:
        page.click("[data-testid=entries-export-csv]")
    text = Path(got.value.path()).read_bytes()
    assert text.startswith(b"\xef\xbb\xbf"), text[:20]
    table = list(csv.reader(io.StringIO(text.decode("utf-8-sig"))))
    assert "时间" in table[0][0] and "姓名" in table[0], table[0]
    assert {r[table[0].index("姓名")] for r in table[1:]} == {name} and len(table) == 3, table
    with page.expect_download() as got:
        page.click("[data-testid=entries-export-xlsx]")
    sheet = openpyxl.load_workbook(io.BytesIO(Path(got.value.path()).read_bytes()), read_only=True).active
    values = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert len(values) == 3 and any(name in r for r in values[1:]), values

    page.fill("[data-testid=filter-person]", "没有这个人")
    page.click("[data-testid=entries-search]")
    expect(page.locator("[data-testid=entries-msg]")).to_contain_text("没有住户")

    page.fill("[data-testid=filter-person]", "")
    page.click("[data-testid=entries-range-hour]")  # a preset searches at once
    expect(rows.first).to_be_visible()
    row.locator("[data-testid=entry-person]").click()
    expect(page.locator("body[data-view=person]")).to_have_count(1)
    assert tenant in page.url
    with httpx.Client(base_url=web_gw.base, headers={"Authorization": f"Bearer {web_gw.tokens['auditor']}"}) as c:
        audit = c.get("/api/v1/audit", params={"actor": "police-1", "limit": 200}).json()["items"]
    assert any(a["action"].startswith("entries.export") or "csv" in (a["route"] or "") for a in audit), audit[:5]

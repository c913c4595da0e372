"""The other roles' homes, in Chromium, in zh-CN, at desktop and phone size: the operator's doors
(live state, a remote open with a reason that pulses the relay and lands in the audit log), alerts
(a real door_forced from the board's contact input, acknowledged), the auditor's log (filtered by
account, exported as CSV), the administrator's accounts (token shown once, rotated, revoked) and
the police watch list (add, remove)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.snapshots import SnapshotStore
from gateway.store.db import open_store
from gateway.store.journal import AlertDraft, new_event_id, record_alert
from testing.peers import wait_until
from tests.web.conftest import Screens, WebGateway, open_snapshot, photos_of

pytestmark = pytest.mark.slow  # the daemon and a headless Chromium

API = "/api/v1"


def api(gw: WebGateway, role: str, method: str, path: str, **kw: Any) -> httpx.Response:
    with gw.client(role) as c:
        return c.request(method, API + path, **kw)


def audit_rows(gw: WebGateway, **params: Any) -> list[dict[str, Any]]:
    r = api(gw, "auditor", "GET", "/audit", params={"limit": 500, **params})
    assert r.status_code == 200, r.text
    return r.json()["items"]


def alerts_of(gw: WebGateway, **params: Any) -> list[dict[str, Any]]:
    r = api(gw, "admin", "GET", "/alerts", params={"limit": 500, **params})
    assert r.status_code == 200, r.text
    return r.json()["items"]


def stranger_alert(gw: WebGateway, jpeg: Path) -> str:
    """A stranger alert with its snapshot, written through the gateway's journal and snapshot store
    as its vision path writes one (this rig has no camera)."""
    ts = datetime.now(UTC)
    engine, sessions = open_store(gw.gateway.data_dir)
    try:
        alert_id = new_event_id(ts)
        path = SnapshotStore(gw.gateway.data_dir).save("alerts", alert_id, ts, jpeg.read_bytes())
        draft = AlertDraft(ts, "stranger", "raised", "warning", door="main", camera="cam-lobby",
                           details={"track": 7, "seen_s": 4.2}, snapshot=path)  # fmt: skip
        with sessions.begin() as s:
            record_alert(s, gw.gateway_id, draft, alert_id)
    finally:
        engine.dispose()
    return alert_id


def force_the_door(gw: WebGateway) -> str:
    """Open the door contact with nobody let in (the lock's window and grace long past): door_forced."""
    before = {a["id"] for a in alerts_of(gw, kind="door_forced")}
    wait_until(lambda: not api(gw, "admin", "GET", "/doors/main").json()["unlocked"], 10, 0.1, "the lock shut")
    gw.board.set_input(0, True)
    try:
        forced = wait_until(lambda: [a for a in alerts_of(gw, kind="door_forced") if a["id"] not in before], 10, 0.1,
                            "a door_forced alert")  # fmt: skip
    finally:
        gw.board.set_input(0, False)
    return forced[0]["id"]


def test_operator_opens_the_door_remotely_with_a_reason(
    web_gw: WebGateway, page_as: Any, viewport: str, shot: Screens
) -> None:
    from playwright.sync_api import expect

    page = page_as("operator")
    expect(page.locator("body[data-view=doors]")).to_have_count(1)  # the operator's home
    card = page.locator("[data-testid=door-card][data-door=main]")
    expect(card).to_be_visible()
    expect(card.locator("[data-testid=door-mode]")).to_have_text("刷卡")
    expect(card.locator("[data-testid=door-lock]")).to_have_text("已上锁")
    expect(card.locator("[data-testid=door-contact]")).to_have_text("门已关")
    expect(page.locator("[data-testid=device][data-device=r1]")).to_have_text("r1 在线")
    expect(page.locator("[data-testid=device][data-device=io1]")).to_have_attribute("data-online", "true")
    expect(page.locator("[data-testid=doors-updated]")).to_contain_text("更新于")
    shot(page, "doors")

    web_gw.board.clear_history()
    card.locator("[data-testid=door-open]").click()
    dialog = page.locator("[data-testid=confirm-dialog]")
    expect(dialog).to_contain_text("远程打开")
    expect(page.locator("[data-testid=confirm-reason]")).to_be_focused()
    page.click("[data-testid=confirm-ok]")  # no reason: refused on the page
    expect(dialog).to_contain_text("请填写原因")
    reason = f"快递员送货上门（{viewport}）"
    page.fill("[data-testid=confirm-reason]", reason)
    shot(page, "doors-confirm")
    page.click("[data-testid=confirm-ok]")
    msg = page.locator("[data-testid=doors-msg]")
    expect(msg).to_have_attribute("data-kind", "ok")
    expect(msg).to_contain_text("“main”已开锁")
    expect(card).to_have_attribute("data-unlocked", "true")  # refreshed at once after the open
    expect(card.locator("[data-testid=door-lock]")).to_have_text("已开锁")
    shot(page, "doors-opened")
    # The relay pulsed: coil 0 on, then off again.
    wait_until(lambda: any(w[1] == 0 and w[2] for w in web_gw.board.write_history()), 5, 0.05, "the relay on")
    wait_until(lambda: any(w[1] == 0 and not w[2] for w in web_gw.board.write_history()), 5, 0.05, "the relay off")
    expect(card).to_have_attribute("data-unlocked", "false")  # the 2-second refresh saw it lock again
    opens = audit_rows(web_gw, actor="operator-1", action="door.open")
    opens = [a for a in opens if a["details"].get("reason") == reason]
    assert len(opens) == 1 and opens[0]["details"]["door"] == "main", opens

    # Leaving the screen stops the refresh.
    polled: list[str] = []
    page.on("request", lambda req: polled.append(req.url) if "/api/v1/doors" in req.url else None)
    page.click("[data-testid=nav-alerts]")
    expect(page.locator("body[data-view=alerts]")).to_have_count(1)
    page.wait_for_timeout(2500)
    assert polled == [], polled
    page.context.close()

    # Police see the state, without the button.
    page = page_as("police")
    page.click("[data-testid=nav-doors]")
    expect(page.locator("[data-testid=door-card][data-door=main] [data-testid=door-lock]")).to_be_visible()
    expect(page.locator("[data-testid=door-open]")).to_have_count(0)
    expect(page.locator("[data-testid=view-doors]")).to_contain_text("只有值班员可以远程开门")


def test_alerts_are_listed_in_words_and_acknowledged(
    web_gw: WebGateway, page_as: Any, viewport: str, shot: Screens
) -> None:
    from playwright.sync_api import expect

    forced = force_the_door(web_gw)
    stranger = stranger_alert(web_gw, photos_of(0)[0])

    page = page_as("police")
    page.click("[data-testid=nav-alerts]")
    rows = page.locator("[data-testid=alert-row]")
    expect(rows.first).to_be_visible()  # loads without a button
    expect(page.locator("[data-testid=alerts-pager-total]")).to_contain_text("共")
    row = page.locator(f"[data-testid=alert-row][data-id='{forced}']")
    expect(row.locator("[data-testid=alert-kind]")).to_have_text("门被强行打开")
    expect(row.locator("[data-testid=alert-severity]")).to_have_text("严重")
    expect(row.locator("[data-testid=alert-state]")).to_have_text("报警中")
    expect(row).to_contain_text("门 main")
    shot(page, "alerts")

    row.locator("[data-testid=alert-ack]").click()
    expect(row.locator("[data-testid=alert-acked]")).to_contain_text("police-1")
    expect(page.locator("[data-testid=alerts-msg]")).to_contain_text("已确认告警“门被强行打开”")
    acked = next(a for a in alerts_of(web_gw, kind="door_forced") if a["id"] == forced)
    assert acked["acknowledged_by"] == "police-1", acked

    other = page.locator(f"[data-testid=alert-row][data-id='{stranger}']")
    expect(other).to_contain_text("停留秒数：4.2")
    open_snapshot(page, other, "陌生人")
    shot(page, "alerts-snapshot")
    page.click("[data-testid=snapshot-close]")

    # Filters: unacknowledged stranger alerts only.
    page.select_option("[data-testid=filter-kind]", "stranger")
    page.select_option("[data-testid=filter-acked]", "false")
    page.click("[data-testid=alerts-search]")
    expect(page.locator("[data-testid=alert-row][data-kind=door_forced]")).to_have_count(0)
    expect(other).to_be_visible()
    page.context.close()

    # Operators answer the doors' alarms: they list alerts (no watch-list hits, no person) and acknowledge.
    page = page_as("operator")
    page.click("[data-testid=nav-alerts]")
    other = page.locator(f"[data-testid=alert-row][data-id='{stranger}']")
    expect(other).to_be_visible()
    other.locator("[data-testid=alert-ack]").click()
    expect(other.locator("[data-testid=alert-acked]")).to_contain_text("operator-1")
    shot(page, "alerts-operator")
    acked = next(a for a in alerts_of(web_gw, kind="stranger") if a["id"] == stranger)
    assert acked["acknowledged_by"] == "operator-1", acked


def test_auditor_filters_by_account_and_exports_csv(
    web_gw: WebGateway, page_as: Any, viewport: str, shot: Screens
) -> None:
    from playwright.sync_api import expect

    r = api(web_gw, "police", "GET", "/entries", params={"door": "main", "decision": "denied"})
    assert r.status_code == 200, r.text

    page = page_as("auditor")
    expect(page.locator("body[data-view=audit]")).to_have_count(1)  # the auditor's home
    rows = page.locator("[data-testid=audit-row]")
    expect(rows.first).to_be_visible()
    expect(page.locator("[data-testid=audit-pager-total]")).to_contain_text("共")

    page.fill("[data-testid=filter-actor]", "police-1")
    page.click("[data-testid=audit-search]")
    expect(page.locator("[data-testid=audit-row]:not([data-actor=police-1])")).to_have_count(0)
    search = page.locator("[data-testid=audit-row][data-action='entries.search']").first
    expect(search.locator("[data-testid=audit-action]")).to_have_text("查询通行记录")
    expect(search.locator("[data-testid=audit-details]")).to_contain_text("查询条件：")
    expect(search.locator("[data-testid=audit-details]")).to_contain_text("门 = main")
    expect(search.locator("[data-testid=audit-details]")).to_contain_text("结果 = 拒绝")
    shot(page, "audit-police")

    with page.expect_download() as got:
        page.click("[data-testid=audit-export-csv]")
    raw = Path(got.value.path()).read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf"), raw[:20]
    table = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    head = table[0]
    assert "时间" in head[0] and "操作人" in head and "操作" in head, head
    assert len(table) > 1 and {r[head.index("操作人")] for r in table[1:]} == {"police-1"}, table[:3]
    assert "查询通行记录" in {r[head.index("操作")] for r in table[1:]}, table[:3]

    page.select_option("[data-testid=filter-action]", "audit.export")
    page.fill("[data-testid=filter-actor]", "auditor-1")
    page.click("[data-testid=audit-search]")
    export = page.locator("[data-testid=audit-row][data-action='audit.export']").first
    expect(export.locator("[data-testid=audit-action]")).to_have_text("导出审计日志")
    expect(export.locator("[data-testid=audit-details]")).to_contain_text("操作人 = police-1")
    expect(export.locator("[data-testid=audit-details]")).to_contain_text("格式：CSV")


def test_admin_creates_rotates_and_revokes_a_token(
    web_gw: WebGateway, page_as: Any, viewport: str, shot: Screens
) -> None:
    from playwright.sync_api import expect

    name = f"clerk-{viewport}"
    page = page_as("admin")
    page.click("[data-testid=nav-users]")
    expect(page.locator("[data-testid=user-row][data-user=operator-1]")).to_contain_text("值班员")

    page.fill("[data-testid=user-name]", name)
    page.select_option("[data-testid=user-role]", "police")
    page.click("[data-testid=user-create]")
    box = page.locator("[data-testid=token-box]")
    expect(box).to_contain_text("只显示这一次")
    expect(page.locator("[data-testid=token-value]")).to_be_focused()
    first = page.locator("[data-testid=token-value]").input_value()
    assert first
    row = page.locator(f"[data-testid=user-row][data-user='{name}']")
    expect(row).to_contain_text("民警")
    expect(row.locator("[data-testid=user-status]")).to_have_text("有效")
    page.click("[data-testid=token-copy]")
    expect(page.locator("[data-testid=token-copied]")).to_be_visible()
    shot(page, "users-token")
    with httpx.Client(base_url=web_gw.base, headers={"Authorization": f"Bearer {first}"}) as c:
        assert c.get(f"{API}/me").json()["role"] == "police"
    page.click("[data-testid=token-done]")
    expect(box).to_have_count(0)
    assert first not in page.content()  # shown once: gone from the page

    page.fill("[data-testid=user-name]", name)  # the same name again: refused in words
    page.click("[data-testid=user-create]")
    expect(page.locator("[data-testid=users-msg]")).to_contain_text(f"账号 {name} 已存在")

    row.locator("[data-testid=user-rotate]").click()
    expect(page.locator("[data-testid=confirm-dialog]")).to_contain_text("旧令牌立即失效")
    page.click("[data-testid=confirm-ok]")
    expect(box).to_contain_text("新令牌")
    second = page.locator("[data-testid=token-value]").input_value()
    assert second and second != first
    shot(page, "users-rotated")
    with httpx.Client(base_url=web_gw.base) as c:
        assert c.get(f"{API}/me", headers={"Authorization": f"Bearer {first}"}).status_code == 401
        assert c.get(f"{API}/me", headers={"Authorization": f"Bearer {second}"}).status_code == 200

    row.locator("[data-testid=user-revoke]").click()
    dialog = page.locator("[data-testid=confirm-dialog]")
    expect(dialog).to_contain_text("停用账号")
    expect(dialog.locator("[data-testid=confirm-ok]")).to_have_class("danger")
    page.click("[data-testid=confirm-ok]")
    expect(row).to_have_attribute("data-status", "revoked")
    expect(row.locator("[data-testid=user-status]")).to_contain_text("已停用")
    expect(row.locator("[data-testid=user-revoke]")).to_have_count(0)
    expect(page.locator("[data-testid=users-msg]")).to_contain_text(f"已停用账号 {name}")
    shot(page, "users-revoked")
    with httpx.Client(base_url=web_gw.base, headers={"Authorization": f"Bearer {second}"}) as c:
        assert c.get(f"{API}/me").status_code == 401
    for action in ("user.create", "user.rotate", "user.revoke"):
        assert [a for a in audit_rows(web_gw, action=action) if a["details"].get("name") == name], action


def test_police_put_a_tenant_on_the_watch_list_and_take_them_off(
    web_gw: WebGateway, page_as: Any, viewport: str, shot: Screens
) -> None:
    from playwright.sync_api import expect

    tenant, name = f"t-watch-{viewport}", f"王芳{viewport}"
    web_gw.add_tenant(tenant, name, room="7-702")
    page = page_as("police")
    page.click("[data-testid=nav-watchlist]")
    expect(page.locator("[data-testid=view-watchlist] h2")).to_have_text("布控名单")
    listed = page.locator(f"[data-testid=watch-row][data-id='{tenant}']")
    expect(page.locator("[data-testid=watch-pager-total]")).to_contain_text("共")  # loads at once
    expect(listed).to_have_count(0)

    page.fill("[data-testid=watch-query]", name)
    page.click("[data-testid=watch-search]")
    found = page.locator(f"[data-testid=watch-found-row][data-id='{tenant}']")
    expect(found).to_contain_text("7-702")
    found.locator("[data-testid=watch-add]").click()
    expect(page.locator("[data-testid=confirm-dialog]")).to_contain_text(f"将 {name} 列入布控名单")
    page.fill("[data-testid=confirm-reason]", "协查通报 118 号")
    page.click("[data-testid=confirm-ok]")
    expect(page.locator("[data-testid=watch-msg]")).to_contain_text(f"已将 {name} 列入布控名单")
    expect(listed).to_be_visible()
    expect(listed.locator("[data-testid=watch-person]")).to_have_attribute("href", f"#/person/{tenant}")
    expect(found.locator("[data-testid=watch-already]")).to_have_text("已在名单中")
    shot(page, "watchlist")
    assert api(web_gw, "admin", "GET", f"/tenants/{tenant}").json()["watchlist"] is True

    listed.locator("[data-testid=watch-remove]").click()
    expect(page.locator("[data-testid=confirm-dialog]")).to_contain_text("移出布控名单")
    page.fill("[data-testid=confirm-reason]", "已结案")
    page.click("[data-testid=confirm-ok]")
    expect(page.locator("[data-testid=watch-msg]")).to_contain_text(f"已将 {name} 移出布控名单")
    expect(listed).to_have_count(0)
    expect(found.locator("[data-testid=watch-add]")).to_be_visible()
    assert api(web_gw, "admin", "GET", f"/tenants/{tenant}").json()["watchlist"] is False
    changes = {a["action"]: a["details"].get("reason") for a in audit_rows(web_gw, actor="police-1")
               if a["details"].get("tenant_id") == tenant and a["action"].startswith("watchlist.")}  # fmt: skip
    assert changes == {"watchlist.set": "协查通报 118 号", "watchlist.clear": "已结案"}, changes

"""The tenants screens as an administrator and a police officer use them, in zh-CN, at desktop and
phone sizes: enrolment in one step (all stored, or nothing), the person's page (edit, cards, faces,
status with a reason, delete), the roster search, the person's entries and the watch list."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from playwright.sync_api import expect

from testing.gateway import API
from tests.web.conftest import photos_of

pytestmark = pytest.mark.slow

CARD_BASE = {"desktop": 0, "phone": 50}
PHOTO_MS = 60_000  # the first photo check loads the face models in the worker process


def go(page: Any, web_gw: Any, route: str, view: str) -> None:
    page.goto(f"{web_gw.base}/#/{route}")
    expect(page.locator(f"body[data-view={view}]")).to_have_count(1)


def confirm(page: Any, reason: str | None = None) -> None:
    dialog = page.locator("[data-testid=confirm-dialog]")
    expect(dialog).to_be_visible()
    if reason is not None:
        dialog.locator("[data-testid=confirm-reason]").fill(reason)
    dialog.locator("[data-testid=confirm-ok]").click()
    expect(dialog).to_have_count(0)


def tenant(web_gw: Any, tenant_id: str) -> tuple[int, dict[str, Any]]:
    with web_gw.client() as c:
        r = c.get(f"{API}/tenants/{tenant_id}")
        return r.status_code, r.json()


def in_days(n: int) -> str:
    return (date.today() + timedelta(days=n)).isoformat()


def test_admin_enrols_a_tenant_with_card_and_photo(page_as, web_gw, viewport, shot) -> None:
    tid = f"t-enrol-{viewport}"
    card = 710001 + CARD_BASE[viewport]
    page = page_as("admin")
    expect(page.locator("body[data-view=tenants]")).to_have_count(1)  # the administrator's home
    page.click("[data-testid=tenants-enrol]")
    expect(page.locator("body[data-view=enrol]")).to_have_count(1)

    page.fill("[data-testid=enrol-id]", tid)
    page.fill("[data-testid=enrol-name]", "张伟")
    page.fill("[data-testid=enrol-permit-number]", f"4401060001-{viewport}")
    page.fill("[data-testid=enrol-room]", "1203")
    page.fill("[data-testid=enrol-valid-to]", in_days(200))
    page.locator("[data-testid=enrol-card]").first.fill(str(card))
    with page.expect_file_chooser() as chooser:
        page.click("[data-testid=enrol-photos-choose]")  # the page's own button opens the browser's chooser
    chooser.value.set_files([str(p) for p in photos_of(0, 1)])
    expect(page.locator("[data-testid=enrol-photos-thumb]")).to_have_count(1)
    expect(page.locator("[data-testid=enrol-photos-verdict]")).to_have_text("待检查")
    expect(page.locator("[data-testid=enrol-photos-count]")).to_have_text("已选 1 / 5 张")
    shot(page, "enrol-form")

    page.click("[data-testid=enrol-submit]")
    expect(page.locator("body[data-view=person]")).to_have_count(1, timeout=PHOTO_MS)
    expect(page.locator("[data-testid=person-name]")).to_have_text("张伟")
    expect(page.locator("[data-testid=person-msg]")).to_have_text("已登记 张伟。")
    expect(page.locator("[data-testid=person-badges]")).to_contain_text("正常")
    expect(page.locator("[data-testid=person-room]")).to_have_text("1203")
    expect(page.locator("[data-testid=person-valid-to]")).to_contain_text("天后到期")
    expect(page.locator("[data-testid=person-card]")).to_have_attribute("data-card", str(card))
    expect(page.locator("[data-testid=person-face-count]")).to_have_text("已录入 1 个人脸模板。")
    status, body = tenant(web_gw, tid)
    assert status == 200 and body["cards"] == [card] and body["face_templates"] == 1, body
    assert body["name"] == "张伟" and body["room"] == "1203" and body["valid_from"] == date.today().isoformat()
    shot(page, "person")


def test_enrolment_problems_store_nothing(page_as, web_gw, viewport, shot, tmp_path) -> None:
    owner = f"t-owner-{viewport}"
    card = 720001 + CARD_BASE[viewport]
    web_gw.add_tenant(owner, "李娜", room="0801", card=card)
    tid = f"t-nothing-{viewport}"
    page = page_as("admin")
    go(page, web_gw, "enrol", "enrol")
    problems = page.locator("[data-testid=enrol-problems]")

    # The page's own checks first: every problem named by its field, nothing sent.
    page.fill("[data-testid=enrol-valid-from]", in_days(10))
    page.fill("[data-testid=enrol-valid-to]", in_days(5))
    page.locator("[data-testid=enrol-card]").first.fill("12a")
    page.click("[data-testid=enrol-submit]")
    expect(problems).to_be_visible()
    expect(problems).to_be_focused()
    for text in ("住户编号：必须填写", "姓名：必须填写", "居住证号码：必须填写", "有效期至：不能早于有效期起",
                 "门卡 1：只能填数字"):  # fmt: skip
        expect(problems).to_contain_text(text)
    expect(page.locator("[data-testid=enrol-id]")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("[data-testid=enrol-card]").first).to_have_attribute("aria-invalid", "true")

    # Fixed on the page, but the card belongs to someone else and one file is not a photo.
    page.fill("[data-testid=enrol-id]", tid)
    page.fill("[data-testid=enrol-name]", "赵磊")
    page.fill("[data-testid=enrol-permit-number]", f"4401060002-{viewport}")
    page.fill("[data-testid=enrol-valid-from]", in_days(0))
    page.fill("[data-testid=enrol-valid-to]", in_days(5))
    page.locator("[data-testid=enrol-card]").first.fill(str(card))
    page.click("[data-testid=enrol-add-card]")
    expect(page.locator("[data-testid=enrol-card]")).to_have_count(2)
    expect(page.locator("[data-testid=enrol-card]").nth(1)).to_be_focused()
    page.locator("[data-testid=enrol-card]").nth(1).fill(str(card + 1))
    not_photo = tmp_path / "not-a-photo.jpg"
    not_photo.write_text("这不是照片 / not a photo\n")
    page.set_input_files("[data-testid=enrol-photos-input]", [str(photos_of(2, 1)[0]), str(not_photo)])
    expect(page.locator("[data-testid=enrol-photos-item]")).to_have_count(2)
    expect(page.locator("[data-testid=enrol-photos-nopreview]")).to_have_text("无法预览")
    page.click("[data-testid=enrol-submit]")

    expect(problems).to_contain_text("没有保存任何内容")
    expect(problems).to_contain_text(f"门卡 1：卡号 {card} 已登记给住户 {owner}")
    expect(problems).to_contain_text("照片 2（not-a-photo.jpg）：无法识别的图片文件")
    expect(problems.locator("[data-testid=enrol-problems-item]")).to_have_count(2)
    verdicts = page.locator("[data-testid=enrol-photos-verdict]")
    expect(verdicts.nth(0)).to_have_text("合格")
    expect(verdicts.nth(1)).to_have_text("无法识别的图片文件")
    expect(page.locator("[data-testid=enrol-photos-item]").nth(1)).to_have_attribute("data-ok", "false")
    expect(page.locator("[data-testid=enrol-card]").first).to_have_attribute("aria-invalid", "true")
    shot(page, "enrol-problems")

    status, _ = tenant(web_gw, tid)
    assert status == 404  # nothing left behind: no tenant, no second card
    with web_gw.client() as c:
        assert c.get(f"{API}/tenants", params={"q": f"4401060002-{viewport}"}).json()["total"] == 0
        assert c.get(f"{API}/tenants/{owner}").json()["cards"] == [card]
        assert c.delete(f"{API}/cards/{card + 1}").status_code == 404


def test_admin_edits_cards_faces_status_and_deletes(page_as, web_gw, viewport, shot) -> None:
    tid = f"t-manage-{viewport}"
    card1, card2 = 730001 + CARD_BASE[viewport], 730002 + CARD_BASE[viewport]
    web_gw.add_tenant(tid, "王芳", room="0502", card=card1)
    page = page_as("admin")
    go(page, web_gw, f"person/{tid}", "person")
    expect(page.locator("[data-testid=person-name]")).to_have_text("王芳")

    # Edit the name and the room: stored, and the page shows the values from the answer.
    expect(page.locator("[data-testid=edit-name]")).to_have_value("王芳")
    page.fill("[data-testid=edit-name]", "王芳芳")
    page.fill("[data-testid=edit-room]", "0503")
    page.click("[data-testid=edit-save]")
    expect(page.locator("[data-testid=edit-msg]")).to_have_text("已保存，上方显示的是保存后的信息。")
    expect(page.locator("[data-testid=edit-msg]")).to_be_focused()
    expect(page.locator("[data-testid=person-name]")).to_have_text("王芳芳")
    expect(page.locator("[data-testid=person-room]")).to_have_text("0503")
    body = tenant(web_gw, tid)[1]
    assert (body["name"], body["room"]) == ("王芳芳", "0503"), body

    # Add a card, then remove the first one.
    page.fill("[data-testid=card-add-input]", "99999999999")
    page.click("[data-testid=card-add]")
    expect(page.locator("[data-testid=card-add-input]")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("[data-testid=person-cards-box] [data-testid=field-problem]")).to_contain_text("4294967295")
    page.fill("[data-testid=card-add-input]", str(card2))
    page.click("[data-testid=card-add]")
    expect(page.locator("[data-testid=cards-msg]")).to_have_text(f"已添加门卡 {card2}。")
    expect(page.locator("[data-testid=person-card]")).to_have_count(2)
    page.locator(f"[data-testid=person-card][data-card='{card1}'] [data-testid=card-remove]").click()
    confirm(page)
    expect(page.locator("[data-testid=cards-msg]")).to_have_text(f"已解绑门卡 {card1}。")
    expect(page.locator("[data-testid=person-card]")).to_have_count(1)
    assert tenant(web_gw, tid)[1]["cards"] == [card2]

    # Replace the face with two photos, then delete it.
    page.set_input_files("[data-testid=faces-photos-input]", [str(p) for p in photos_of(1, 2)])
    expect(page.locator("[data-testid=faces-photos-thumb]")).to_have_count(2)
    page.click("[data-testid=faces-replace]")
    expect(page.locator("[data-testid=faces-msg]")).to_have_text("已替换，现在有 2 个人脸模板。", timeout=30_000)
    expect(page.locator("[data-testid=faces-photos-verdict]")).to_have_text(["合格", "合格"])
    expect(page.locator("[data-testid=person-face-count]")).to_have_text("已录入 2 个人脸模板。")
    assert tenant(web_gw, tid)[1]["face_templates"] == 2
    shot(page, "person-faces")
    page.click("[data-testid=faces-delete]")
    confirm(page)
    expect(page.locator("[data-testid=faces-msg]")).to_have_text("已删除全部人脸模板。")
    expect(page.locator("[data-testid=person-face-count]")).to_have_text("已录入 0 个人脸模板。")
    assert tenant(web_gw, tid)[1]["face_templates"] == 0

    # Suspend with a reason (a reason is required), audited with it.
    reason = f"拖欠物业费，暂停通行（{viewport}）"
    page.click("[data-testid=person-suspend]")
    page.locator("[data-testid=confirm-ok]").click()
    expect(page.locator("[data-testid=confirm-dialog]")).to_contain_text("请填写原因")
    confirm(page, reason)
    expect(page.locator("[data-testid=person-msg]")).to_have_text("已暂停 王芳芳 的通行。")
    expect(page.locator("[data-testid=person-status]")).to_have_text("已暂停")
    assert tenant(web_gw, tid)[1]["status"] == "suspended"
    with web_gw.client("auditor") as c:
        items = c.get(f"{API}/audit", params={"action": "tenant.suspend", "limit": 50}).json()["items"]
    assert any(i["details"].get("tenant_id") == tid and i["details"].get("reason") == reason for i in items), items

    # Activate again from the list's row.
    go(page, web_gw, "tenants", "tenants")
    page.fill("[data-testid=tenants-q]", tid)
    page.click("[data-testid=tenants-search]")
    row = page.locator(f"[data-testid=tenant-row][data-id='{tid}']")
    expect(page.locator("[data-testid=tenant-row]")).to_have_count(1)
    expect(row).to_contain_text("已暂停")
    row.locator("[data-testid=tenant-activate]").click()
    confirm(page, "已补缴")
    expect(page.locator("[data-testid=tenants-msg]")).to_have_text("已恢复 王芳芳 的通行。")
    expect(row).to_have_attribute("data-status", "active")
    expect(row).to_contain_text("正常")
    shot(page, "tenants-admin")

    # Delete: back on the list, gone from the API.
    row.locator("[data-testid=tenant-link]").click()
    expect(page.locator("[data-testid=person-name]")).to_have_text("王芳芳")
    page.click("[data-testid=person-delete]")
    confirm(page)
    expect(page.locator("body[data-view=tenants]")).to_have_count(1)
    expect(page.locator("[data-testid=tenants-msg]")).to_have_text(f"已删除住户 {tid}。")
    assert tenant(web_gw, tid)[0] == 404


def test_police_search_entries_and_watch_list(page_as, web_gw, viewport, shot) -> None:
    tid = f"t-police-{viewport}"
    card = 740001 + CARD_BASE[viewport]
    web_gw.add_tenant(tid, "陈静", room="1101", card=card)
    entry = web_gw.swipe(card)
    assert entry["tenant_id"] == tid
    page = page_as("police")
    page.click("[data-testid=nav-tenants]")
    expect(page.locator("body[data-view=tenants]")).to_have_count(1)
    expect(page.locator("[data-testid=tenants-enrol]")).to_have_count(0)

    page.fill("[data-testid=tenants-q]", "陈静")
    page.click("[data-testid=tenants-search]")
    row = page.locator(f"[data-testid=tenant-row][data-id='{tid}']")
    expect(row).to_contain_text("1101")
    expect(row).to_contain_text("正常")
    expect(row).to_contain_text("天后到期")
    expect(page.locator("[data-testid=tenants-table] th")).to_have_count(8)  # no actions column
    expect(page.locator("[data-testid=tenants-table] th", has_text="操作")).to_have_count(0)
    expect(page.locator("[data-testid^=tenant-suspend], [data-testid^=tenant-revoke]")).to_have_count(0)
    shot(page, "tenants-police")

    row.locator("[data-testid=tenant-link]").click()
    expect(page.locator("body[data-view=person]")).to_have_count(1)
    expect(page.locator("[data-testid=person-name]")).to_have_text("陈静")
    entries = page.locator("[data-testid=person-entries] [data-testid=entry-row]")
    expect(entries).to_have_count(1)
    expect(entries.first).to_have_attribute("data-id", entry["id"])
    expect(page.locator("[data-testid=person-entries-pager-total]")).to_contain_text("共 1 条")
    for admin_only in ("edit-form", "card-add-form", "card-remove", "faces-replace", "faces-delete", "person-delete",
                       "person-suspend", "person-revoke", "person-status-actions"):  # fmt: skip
        expect(page.locator(f"[data-testid={admin_only}]")).to_have_count(0)

    watch = page.locator("[data-testid=person-watch]")
    expect(watch).to_have_text("列为重点人员")
    watch.click()
    confirm(page, "涉嫌盗窃，请留意出入")
    expect(page.locator("[data-testid=person-msg]")).to_have_text("已把 陈静 列为重点人员。")
    expect(page.locator("[data-testid=person-watch-badge]")).to_have_text("重点人员")
    expect(watch).to_be_focused()
    assert tenant(web_gw, tid)[1]["watchlist"] is True
    shot(page, "person-police")
    watch.click()
    confirm(page, "已排除嫌疑")
    expect(page.locator("[data-testid=person-msg]")).to_have_text("已取消 陈静 的重点人员标记。")
    expect(page.locator("[data-testid=person-watch-badge]")).to_have_count(0)
    assert tenant(web_gw, tid)[1]["watchlist"] is False

    go(page, web_gw, "person/nobody-here", "person")
    expect(page.locator("[data-testid=person-missing]")).to_have_text("没有编号为“nobody-here”的住户，可能已被删除。")

    # The same screen in English: every word from the catalogue, none left in Chinese.
    page.click("[data-testid=lang-toggle]")
    expect(page.locator("[data-testid=person-missing]")).to_have_text(
        "There is no tenant with the id “nobody-here”; they may have been deleted."
    )
    go(page, web_gw, f"person/{tid}", "person")
    expect(page.locator("[data-testid=person-watch]")).to_have_text("Put on the watch list")
    expect(page.locator("[data-testid=person-status]")).to_have_text("Active")
    expect(page.locator("[data-testid=person-valid-to]")).to_contain_text("expires in")

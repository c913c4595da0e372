"""The town's page as its users meet it: the town platform's API and page on a real uvicorn (one per
module, SQLite store), Debian's Chromium through Playwright, signed in through the form, in zh-CN, at
1366×768 and 390×844: the fleet (refreshing itself), entries of every building and a person's
whereabouts, the register (tenants with their building, enrolment at the town), the watch list.
Screenshots: tests/web/screenshots/test_town_page/<test>/<name>-<viewport>.png.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from playwright.sync_api import expect
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from config.models import ApiConfig
from config.town import TownConfig
from gateway.api.server import make_server
from gateway.api.users import create_user
from gateway.store.models import AuditLog
from testing.peers import free_port, wait_until
from tests.web import conftest as web
from tests.web.conftest import VIEWPORTS, WAIT_MS, ZONE, Screens, photos_of
from town import register as reg
from town.api.app import create_town_app
from town.api.context import TownContext
from town.store.db import open_town_store
from town.store.models import Gateway, RosterLogEntry, TownAlert, TownEntry

pytestmark = pytest.mark.slow
# The gateway page's browser fixtures: Debian's Chromium, both sizes, screenshots under tests/web/screenshots.
browser, viewport, shot = web.browser, web.viewport, web.shot

API = "/api/v1"
ROLES = ("admin", "police", "operator", "auditor")
NOW = datetime.now(UTC).replace(microsecond=0)
PHOTO_MS = 60_000  # the first photo check loads the face models in the worker process
BUILDINGS = ("gw-01", "gw-02", "gw-03", "gw-04")


@dataclass
class WebTown:
    base: str
    sessions: sessionmaker[Session]
    tokens: dict[str, str] = field(default_factory=dict)

    def client(self, role: str = "admin") -> httpx.Client:
        return httpx.Client(base_url=self.base, headers={"Authorization": f"Bearer {self.tokens[role]}"}, timeout=30)

    def audit(self, action: str) -> list[AuditLog]:
        with self.sessions() as s:
            return list(s.scalars(select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id)))


def vec(i: int) -> np.ndarray:
    v = np.random.default_rng(i).normal(size=128).astype("<f4")
    return v / np.linalg.norm(v)


def seed(sessions: sessionmaker[Session]) -> dict[str, str]:
    valid = date.today() + timedelta(days=300)
    with sessions.begin() as s:
        tokens = {role: create_user(s, f"{role}-1", role, "test") for role in ROLES}
        people = [("T1", "gw-01", "王芳", "440106199001011234", "302", 305419896),
                  ("T2", "gw-02", "李雷", "440106199202021111", "5B", 77001),
                  ("T3", "gw-01", "陈丽", "440106199303033333", "1201", 77002),
                  ("T4", "gw-03", "张强", "440106199404044444", "808", 77003)]  # fmt: skip
        for tid, gw, name, permit, room, card in people:
            reg.add_tenant(s, "seed", gateway_id=gw, id=tid, name=name, permit=permit, valid_to=valid, room=room,
                           valid_from=date.today() - timedelta(days=30))  # fmt: skip
            reg.add_card(s, "seed", tid, card)
        reg.add_templates(s, "seed", "T3", [vec(3), vec(4)])
        reg.add_watch(s, "police-1", name="赵某", note="盗窃嫌疑", vectors=[vec(9)], reason="案件 12")
        reg.ensure_gateways(s, BUILDINGS)
    with sessions.begin() as s:
        states = {"gw-01": ("online", 20, None), "gw-02": ("online", 45, 2), "gw-03": ("offline", 7200, 0),
                  "gw-04": ("unknown", None, None)}  # fmt: skip
        for gw, (availability, seconds, behind) in states.items():
            g = s.get(Gateway, gw)
            assert g is not None
            g.availability = availability
            g.last_seen = None if seconds is None else NOW - timedelta(seconds=seconds)
            g.roster_version = g.target_version - (behind or 0) if behind is not None else g.target_version
            g.outbox_depth = {"gw-01": 0, "gw-02": 3, "gw-03": 812}.get(gw)
            g.missing_seqs = 2 if gw == "gw-03" else 0
            g.state = {"version": "0.1.0", "last_error": None}
        n = 0
        for hours, gw, tenant, card, decision, reason in (
            (1, "gw-01", "T1", 305419896, "granted", "granted"),
            (2, "gw-02", None, 305419896, "denied", "unknown_card"),
            (3, "gw-02", "T2", 77001, "granted", "granted"),
            (4, "gw-01", "T3", 77002, "granted", "granted"),
            (5, "gw-03", "T4", 77003, "denied", "permit_expired"),
            (240, "gw-01", "T1", 305419896, "granted", "granted"),
        ):
            n += 1
            s.add(TownEntry(id=f"01J{n:023d}", ts=NOW - timedelta(hours=hours), gateway_id=gw, seq=n, door="main",
                            method="card", card_number=card, card_bits=34, tenant_id=tenant, decision=decision,
                            reason=reason))  # fmt: skip
        s.add(TownAlert(id=f"01A{1:023d}", ts=NOW - timedelta(minutes=30), gateway_id="gw-03", seq=90,
                        kind="door_forced", state="raised", severity="critical", door="main", details={}))  # fmt: skip
        s.add(TownAlert(id=f"01A{2:023d}", ts=NOW - timedelta(minutes=50), gateway_id="gw-02", seq=91,
                        kind="io_offline", state="raised", severity="warning", door=None, details={}))  # fmt: skip
    return tokens


@pytest.fixture(scope="module")
def web_town(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebTown]:
    tmp = tmp_path_factory.mktemp("town-web")
    cfg = TownConfig(data_dir=tmp / "town", instance="web", api=ApiConfig(port=free_port()))
    engine, sessions = open_town_store(cfg)
    ctx = TownContext(cfg, engine, sessions)
    tokens = seed(sessions)
    server = make_server(create_town_app(ctx), cfg.api)
    thread = threading.Thread(target=server.run, name="town-api", daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, 15, 0.05, "the town's API up")
        yield WebTown(f"http://127.0.0.1:{cfg.api.port}", sessions, tokens)
    finally:
        server.should_exit = True
        thread.join(10)
        ctx.photos.close()
        engine.dispose()


@pytest.fixture
def page_as(web_town: WebTown, browser: Any, viewport: str, shot: Screens) -> Iterator[Callable[..., Any]]:
    """page_as("police") → a page signed in through the form, in zh-CN, in the town's zone, at this size.
    Page errors, CSP violations and requests leaving the town fail the test."""
    opened: list[Any] = []
    problems: list[str] = []

    def open_as(role: str, route: str = "") -> Any:
        context = browser.new_context(locale="zh-CN", timezone_id=ZONE, accept_downloads=True,
                                      viewport=VIEWPORTS[viewport])  # fmt: skip
        context.set_default_timeout(WAIT_MS)
        page = context.new_page()
        opened.append(context)
        page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
        page.on("console", lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None)
        page.on("request", lambda req: None if req.url.startswith((web_town.base, "blob:", "data:"))
                else problems.append(f"request outside the town: {req.url}"))  # fmt: skip
        page.goto(f"{web_town.base}/{route}", wait_until="load")
        expect(page.locator("body[data-view=signin]")).to_have_count(1)
        expect(page.locator("h1")).to_have_text("镇级平台")
        page.fill("[data-testid=token-input]", web_town.tokens[role])
        page.click("[data-testid=sign-in-btn]")
        expect(page.locator("[data-testid=whoami]")).to_have_attribute("data-role", role)
        return page

    ok = False
    try:
        yield open_as
        ok = True
    finally:
        for n, context in enumerate(opened):
            if not ok:
                for page in context.pages:
                    try:
                        page.screenshot(path=str(shot.folder / f"failure-{n}-{viewport}.png"), full_page=True)
                    except Exception:
                        pass
            context.close()
    assert not problems, problems


def go(page: Any, web_town: WebTown, route: str, view: str) -> None:
    page.goto(f"{web_town.base}/#/{route}")
    expect(page.locator(f"body[data-view={view}]")).to_have_count(1)


def confirm(page: Any, reason: str) -> None:
    dialog = page.locator("[data-testid=confirm-dialog]")
    expect(dialog).to_be_visible()
    dialog.locator("[data-testid=confirm-reason]").fill(reason)
    dialog.locator("[data-testid=confirm-ok]").click()
    expect(dialog).to_have_count(0)


# --- the fleet --------------------------------------------------------------------------------------------


def test_the_fleet_refreshes_itself(page_as, web_town, viewport, shot) -> None:
    page = page_as("admin", "#/fleet?every=2")
    expect(page.locator("body[data-view=fleet]")).to_have_count(1)
    rows = page.locator("[data-testid=fleet-row]")
    expect(rows).to_have_count(4)
    expect(page.locator("[data-testid=fleet-summary]")).to_contain_text("共 4 个网关：在线 2，离线 1，未知 1")
    gw02 = page.locator("[data-testid=fleet-row][data-id=gw-02]")
    expect(gw02.locator("[data-testid=fleet-availability-badge]")).to_have_text("在线")
    expect(gw02.locator("[data-testid=fleet-roster]")).to_have_attribute("data-behind", "2")
    expect(gw02.locator("[data-testid=fleet-roster]")).to_contain_text("落后 2")
    gw03 = page.locator("[data-testid=fleet-row][data-id=gw-03]")
    expect(gw03.locator("[data-testid=fleet-availability-badge]")).to_have_text("离线")
    expect(gw03.locator("[data-testid=fleet-open-alerts]")).to_have_text("1")
    expect(gw03.locator("[data-testid=fleet-missing]")).to_have_text("2")
    expect(gw03).to_contain_text("812")
    expect(page.locator("[data-testid=fleet-row][data-id=gw-04]")).to_contain_text("从未")
    shot(page, "fleet")

    # The gateway comes back: the screen shows it without a reload.
    with web_town.sessions.begin() as s:
        g = s.get(Gateway, "gw-03")
        assert g is not None
        g.availability, g.last_seen = "online", datetime.now(UTC)
    expect(gw03.locator("[data-testid=fleet-availability-badge]")).to_have_text("在线", timeout=10_000)
    with web_town.sessions.begin() as s:
        g = s.get(Gateway, "gw-03")
        assert g is not None
        g.availability = "offline"

    # Open alerts lead to that building's alerts.
    gw03.locator("a[href*=alerts]").click()
    expect(page.locator("body[data-view=alerts]")).to_have_count(1)
    expect(page.locator("[data-testid=filter-building]")).to_have_value("gw-03")
    alert_rows = page.locator("[data-testid=alert-row]")
    expect(alert_rows).to_have_count(1)
    expect(alert_rows.first.locator("[data-testid=building]")).to_have_text("gw-03")
    shot(page, "alerts-of-a-building")


# --- entries of every building, and a person's whereabouts ------------------------------------------------


def test_police_search_entries_of_every_building(page_as, web_town, viewport, shot) -> None:
    page = page_as("police")
    expect(page.locator("body[data-view=entries]")).to_have_count(1)  # the police home
    rows = page.locator("[data-testid=entry-row]")
    expect(rows).to_have_count(6)
    expect(rows.first.locator("[data-testid=building]")).to_have_text("gw-01")
    expect(page.locator("[data-testid=snapshot-open]")).to_have_count(0)  # no pictures at the town
    expect(page.locator("[data-testid=per-hour]")).to_have_count(0)
    shot(page, "entries")

    building = page.locator("[data-testid=filter-building]")
    expect(building.locator("option")).to_have_count(1 + len(BUILDINGS))
    building.select_option("gw-02")
    page.click("[data-testid=entries-search]")
    expect(rows).to_have_count(2)
    for i in range(2):
        expect(rows.nth(i).locator("[data-testid=building]")).to_have_text("gw-02")
    csv_link = page.locator("[data-testid=entries-export-csv]")
    expect(csv_link).to_have_attribute("href", re.compile(r".*gateway_id=gw-02.*"))
    building.select_option("")
    page.fill("[data-testid=filter-permit]", "440106199001011234")
    page.click("[data-testid=entries-search]")
    expect(rows).to_have_count(2)
    expect(page.locator("[data-testid=entries-pager-total]")).to_contain_text("共 2 条")
    shot(page, "entries-by-permit")
    filters = web_town.audit("entries.search")[-1].details["filters"]
    assert filters["permit"] == "440106199001011234"

    # Where does this person live, and where were they seen? One look-up, audited.
    page.click("[data-testid=nav-people]")
    expect(page.locator("body[data-view=people]")).to_have_count(1)
    page.fill("[data-testid=people-permit]", "440106199001011234")
    page.click("[data-testid=people-search]")
    expect(page.locator("[data-testid=people-building]")).to_have_text("gw-01")
    expect(page.locator("[data-testid=people-room]")).to_have_text("302")
    seen = page.locator("[data-testid=people-seen] [data-testid=entry-row]")
    expect(seen).to_have_count(3)  # at home twice, and their card at gw-02
    expect(page.locator("[data-testid=people-buildings]")).to_contain_text("gw-02：1 次")
    shot(page, "whereabouts")
    last = web_town.audit("people.read")[-1]
    assert last.actor == "police-1" and last.details["filters"] == {"permit": "440106199001011234", "days": 30}
    page.select_option("[data-testid=people-days]", "7")
    expect(seen).to_have_count(2)
    page.fill("[data-testid=people-permit]", "000")
    page.click("[data-testid=people-search]")
    expect(page.locator("[data-testid=people-msg]")).to_contain_text("登记册中没有持居住证 000 的住户")


# --- the register -----------------------------------------------------------------------------------------


def test_admin_enrols_at_the_town_for_a_building(page_as, web_town, viewport, shot) -> None:
    tid = f"t-town-{viewport}"
    card = {"desktop": 880001, "phone": 880002}[viewport]
    page = page_as("admin", "#/tenants")
    expect(page.locator("body[data-view=tenants]")).to_have_count(1)
    rows = page.locator("[data-testid=tenant-row]")
    expect(rows.first.locator("[data-testid=building]")).to_be_visible()
    page.locator("[data-testid=filter-building]").select_option("gw-01")
    expect(rows).to_have_count(2)  # T1, T3 (the select submits the search)
    shot(page, "register")

    page.click("[data-testid=tenants-enrol]")
    expect(page.locator("body[data-view=enrol]")).to_have_count(1)
    page.click("[data-testid=enrol-submit]")  # nothing filled: the building is asked for first
    expect(page.locator("[data-testid=enrol-problems-item]").first).to_contain_text("楼栋")
    page.locator("[data-testid=enrol-building]").select_option("gw-04")
    page.fill("[data-testid=enrol-id]", tid)
    page.fill("[data-testid=enrol-name]", "刘洋")
    page.fill("[data-testid=enrol-permit-number]", f"4401069999-{viewport}")
    page.fill("[data-testid=enrol-room]", "404")
    page.fill("[data-testid=enrol-valid-to]", (date.today() + timedelta(days=200)).isoformat())
    page.locator("[data-testid=enrol-card]").first.fill(str(card))
    with page.expect_file_chooser() as chooser:
        page.click("[data-testid=enrol-photos-choose]")
    chooser.value.set_files([str(p) for p in photos_of(0, 1)])
    expect(page.locator("[data-testid=enrol-photos-thumb]")).to_have_count(1)
    shot(page, "enrol")
    page.click("[data-testid=enrol-submit]")
    expect(page.locator("body[data-view=person]")).to_have_count(1, timeout=PHOTO_MS)
    expect(page.locator("[data-testid=person-name]")).to_have_text("刘洋")
    expect(page.locator("[data-testid=person-building]")).to_have_text("gw-04")
    expect(page.locator("[data-testid=person-face-count]")).to_have_text("已录入 1 个人脸模板。")
    shot(page, "person")
    with web_town.sessions() as s:  # the building's roster log has the tenant, their card and template
        ops = [op for (ops,) in s.execute(select(RosterLogEntry.ops).where(RosterLogEntry.gateway_id == "gw-04"))
               for op in ops]  # fmt: skip
    mine = [o for o in ops if o.get("tenant") == tid or (o["kind"] == "tenant" and o.get("id") == tid)]
    assert [o["kind"] for o in mine] == ["tenant", "card", "template"]
    assert mine[1]["number"] == card

    # Suspended with a reason, from the person's page.
    page.click("[data-testid=person-suspend]")
    confirm(page, "欠租")
    expect(page.locator("[data-testid=person-badges]")).to_contain_text("暂停")
    assert web_town.audit("tenant.suspend")[-1].details["reason"] == "欠租"


# --- the watch list ---------------------------------------------------------------------------------------


def test_police_keep_the_watch_list(page_as, web_town, viewport, shot) -> None:
    name = f"孙某-{viewport}"
    page = page_as("police", "#/watch")
    expect(page.locator("body[data-view=watch]")).to_have_count(1)
    rows = page.locator("[data-testid=watch-row]")
    expect(rows.filter(has_text="赵某")).to_have_count(1)
    shot(page, "watch-list")

    page.fill("[data-testid=watch-name]", name)
    page.fill("[data-testid=watch-note]", "多次尾随进门")
    page.click("[data-testid=watch-submit]")
    expect(page.locator("[data-testid=watch-add-msg]")).to_have_text("请填写原因。")
    page.fill("[data-testid=watch-reason]", "案件 31")
    page.click("[data-testid=watch-submit]")
    expect(page.locator("[data-testid=watch-add-msg]")).to_contain_text("请选择此人的照片")
    with page.expect_file_chooser() as chooser:
        page.click("[data-testid=watch-photos-choose]")
    chooser.value.set_files([str(p) for p in photos_of(1, 1)])
    page.click("[data-testid=watch-submit]")
    expect(page.locator("[data-testid=watch-add-msg]")).to_contain_text(f"{name} 已加入布控名单（1 张人脸）",
                                                                        timeout=PHOTO_MS)  # fmt: skip
    expect(rows.filter(has_text=name)).to_have_count(1)
    added = [a for a in web_town.audit("watch.add") if a.details["name"] == name]
    assert len(added) == 1 and added[0].details["reason"] == "案件 31" and added[0].actor == "police-1"
    shot(page, "watch-added")

    # A tenant with enrolled faces, by id (no photos).
    page.fill("[data-testid=watch-name]", f"陈丽-{viewport}")
    page.fill("[data-testid=watch-reason]", "协查")
    page.fill("[data-testid=watch-tenant-id]", "T3")
    page.click("[data-testid=watch-submit]")
    tenant_row = rows.filter(has_text=f"陈丽-{viewport}")
    expect(tenant_row).to_have_count(1)
    expect(tenant_row.locator("[data-testid=watch-tenant]")).to_have_text("T3")

    for who, reason in ((name, "已结案"), (f"陈丽-{viewport}", "误报")):
        rows.filter(has_text=who).locator("[data-testid=watch-remove]").click()
        confirm(page, reason)
        expect(page.locator("[data-testid=watch-msg]")).to_have_text(f"{who} 已移出布控名单。")
        expect(rows.filter(has_text=who)).to_have_count(0)
    assert [a.details["reason"] for a in web_town.audit("watch.remove")][-2:] == ["已结案", "误报"]
    assert web_town.audit("watch.search")[-1].actor == "police-1"
    shot(page, "watch-removed")


def test_every_role_finds_its_home_and_no_one_elses(page_as, web_town, viewport) -> None:
    homes = {"admin": "fleet", "police": "entries", "operator": "fleet", "auditor": "audit"}
    navs = {"admin": {"fleet", "entries", "people", "alerts", "tenants", "enrol", "users"},
            "police": {"fleet", "entries", "people", "alerts", "watch", "tenants"},
            "operator": {"fleet", "alerts"}, "auditor": {"audit"}}  # fmt: skip
    for role, home in homes.items():
        page = page_as(role)
        expect(page.locator(f"body[data-view={home}]")).to_have_count(1)
        found = {t.removeprefix("nav-") for t in page.locator("nav a").evaluate_all(
            "links => links.map(a => a.dataset.testid)")}  # fmt: skip
        assert found == navs[role], (role, found)
        page.context.close()


def test_the_page_is_served_from_the_gateways_folder(web_town) -> None:
    gateway_web = Path(__file__).resolve().parents[2] / "gateway" / "web"
    with httpx.Client(base_url=web_town.base) as c:
        assert c.get("/js/ui.js").text == (gateway_web / "js" / "ui.js").read_text(encoding="utf-8")
        assert c.get("/style.css").text == (gateway_web / "style.css").read_text(encoding="utf-8")
        assert c.get("/i18n/zh-CN/town.json").json()["town.title"] == "镇级平台"
        assert "/town/js/app.js" in c.get("/").text

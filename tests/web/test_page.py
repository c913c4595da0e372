"""The web page in a real headless Chromium against a running gateway: sign in,
switch language, enrol a tenant with a card and a real photo, swipe the card on
the simulated reader, find the entry, see a snapshot thumbnail, export CSV,
the per-hour chart, suspend, sign out, and a revoked token sent back to sign-in."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from gateway.snapshots import SnapshotStore
from gateway.store.db import open_store
from gateway.store.journal import EntryDraft, new_event_id, record_entry
from testing.faces import faces_dir_path as faces_dir
from testing.peers import wait_until
from tests.web.conftest import WebGateway

pytestmark = pytest.mark.slow  # the daemon and a headless Chromium

CARD = 0x00C0FFEE
STRANGER_CARD = 999_999
TENANT = "t-web-1"
WAIT_MS = 15_000


def first_photo() -> Path:
    person = sorted(p for p in (faces_dir() / "lfw_subset").iterdir() if p.is_dir())[0]
    photos = sorted(person.glob("*.jpg"))
    assert photos, f"no photo in {person}"
    return photos[0]


def shown(page: Any, key: str) -> list[str]:
    """A data-* value of every entry row on the page, top to bottom."""
    return page.locator("[data-testid=entry-row]").evaluate_all(f"rows => rows.map(r => r.dataset.{key})")


def api_entries(gw: WebGateway, **params: Any) -> list[dict[str, Any]]:
    with gw.api.client("admin") as c:
        r = c.get("/api/v1/entries", params=params)
        assert r.status_code == 200, r.text
        return r.json()["items"]


@pytest.mark.timeout(300)
def test_page_end_to_end(web_gateway: WebGateway, browser: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    gw = web_gateway
    base = gw.api.base
    context = browser.new_context(
        locale="en-US", timezone_id=gw.zone, accept_downloads=True, viewport={"width": 1366, "height": 900}
    )
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    crashes: list[str] = []
    page.on("pageerror", lambda exc: crashes.append(str(exc)))
    page.on("console", lambda m: crashes.append(m.text) if "Content Security Policy" in m.text else None)
    outside: list[str] = []
    page.on("request", lambda req: None if req.url.startswith((base, "blob:", "data:")) else outside.append(req.url))

    try:
        page.goto(base + "/", wait_until="load")
        expect(page.locator("body[data-ready=true]")).to_have_count(1)
        expect(page.locator("#token-input")).to_be_visible()
        expect(page.locator("html")).to_have_attribute("lang", "en")  # navigator.language en-US -> English

        # --- language: once to Chinese and back ---------------------------------------------
        page.click("#lang-toggle")
        expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
        expect(page.locator("#signin-h")).to_have_text("登录")
        expect(page.locator("label[for=token-input]")).to_have_text("API 令牌")
        page.click("#lang-toggle")
        expect(page.locator("html")).to_have_attribute("lang", "en")
        expect(page.locator("#signin-h")).to_have_text("Sign in")

        # --- a wrong token is refused with a message; the right one signs in ----------------
        page.fill("#token-input", "not-a-token")
        page.click("#sign-in-btn")
        expect(page.locator("#signin-msg")).to_contain_text("not accepted")
        expect(page.locator("#app")).to_be_hidden()
        page.fill("#token-input", gw.api.tokens["admin"])
        page.click("#sign-in-btn")
        expect(page.locator("#app")).to_be_visible()
        expect(page.locator("#whoami")).to_have_attribute("data-role", "admin")
        expect(page.locator("#whoami")).to_contain_text("administrator")
        expect(page.locator("#sign-out")).to_be_visible()

        # --- enrol: an empty form is refused on the page, naming what is missing -----------------
        page.click("#enrol-submit")
        expect(page.locator("[data-testid=enrol-problem]").first).to_contain_text("Fill in: Tenant id, Name")
        expect(page.locator("#enrol-id")).to_have_attribute("aria-invalid", "true")
        expect(page.locator("[data-testid=step-create]")).to_have_count(0)

        # --- enrol: tenant, card, one real photo; its verdict is shown ----------------------
        photo = first_photo()
        today = datetime.now(ZoneInfo(gw.zone)).date()
        page.fill("#enrol-id", TENANT)
        page.fill("#enrol-name", "Zhang Wei 张伟")
        page.fill("#enrol-permit", "P-44030012345")
        page.fill("#enrol-room", "3-201")
        page.fill("#enrol-valid-from", (today - timedelta(days=1)).isoformat())
        page.fill("#enrol-valid-to", (today + timedelta(days=365)).isoformat())
        page.fill("#enrol-card", str(CARD))
        page.set_input_files("#enrol-photos", str(photo))
        expect(page.locator("[data-testid=enrol-preview]")).to_have_count(1)
        page.click("#enrol-submit")
        outcome = page.locator("[data-testid=enrol-outcome]")
        expect(outcome).to_be_visible(timeout=60_000)  # the first photo starts the recognition pool
        expect(page.locator("[data-testid=step-create]")).to_have_attribute("data-state", "ok")
        expect(page.locator("[data-testid=step-card]")).to_have_attribute("data-state", "ok")
        expect(page.locator("[data-testid=step-photos]")).to_have_attribute("data-state", "ok")
        rows = page.locator("[data-testid=verdict-row]")
        expect(rows).to_have_count(1)
        expect(rows.first).to_have_attribute("data-ok", "true")
        expect(rows.first.locator("[data-testid=verdict-name]")).to_have_text(photo.name)
        expect(rows.first.locator("[data-testid=verdict-reason]")).to_have_attribute("data-reason", "ok")
        expect(outcome).to_contain_text(f"Tenant {TENANT} enrolled: 1 card(s), 1 face template(s)")
        with gw.api.client("admin") as c:
            stored = c.get(f"/api/v1/tenants/{TENANT}").json()
        assert (stored["cards"], stored["face_templates"], stored["room"]) == ([CARD], 1, "3-201"), stored

        # --- a rejected photo: every verdict shown, nothing stored --------------------------
        not_a_photo = tmp_path / "notes.jpg"
        not_a_photo.write_bytes(b"this is not a JPEG")
        page.fill("#enrol-id", "t-web-2")
        page.fill("#enrol-name", "Li Na")
        page.fill("#enrol-permit", "P-2")
        page.fill("#enrol-valid-to", (today + timedelta(days=30)).isoformat())
        page.set_input_files("#enrol-photos", [str(photo), str(not_a_photo)])
        page.click("#enrol-submit")
        expect(page.locator("[data-testid=step-photos]")).to_have_attribute("data-state", "failed", timeout=60_000)
        expect(page.locator("[data-testid=step-photos-state]")).to_have_text("rejected: see the photo checks below")
        expect(rows).to_have_count(2)
        expect(page.locator("[data-testid=verdict-row][data-ok=false] [data-testid=verdict-reason]")).to_have_attribute(
            "data-reason", "unreadable"
        )
        expect(page.locator("[data-testid=verdict-row][data-ok=true]")).to_have_count(1)
        expect(page.locator("[data-testid=enrol-outcome]")).to_contain_text("no photo was stored")

        # --- swipe the card (granted) and an unknown card (denied); the page finds each by filter ----
        gw.card.swipe(CARD, 34)
        entry = wait_until(lambda: api_entries(gw, tenant_id=TENANT), 15, 0.1, "the swipe's entry")[0]
        assert (entry["decision"], entry["reason"], entry["method"]) == ("granted", "granted", "card"), entry
        gw.card.swipe(STRANGER_CARD, 34)
        stranger = wait_until(lambda: api_entries(gw, card_number=STRANGER_CARD), 15, 0.1, "the stranger's entry")[0]
        assert (stranger["decision"], stranger["reason"], stranger["tenant_id"]) == ("denied", "unknown_card", None)
        local_ts = datetime.fromisoformat(entry["ts"].replace("Z", "+00:00")).astimezone(ZoneInfo(gw.zone))

        page.select_option("#f-decision", "denied")
        page.click("#f-search")
        expect(page.locator("#entries-msg")).to_have_text("1 entr(ies) shown.")
        assert shown(page, "entryId") == [stranger["id"]]
        expect(page.locator("[data-testid=entry-row] [data-testid=entry-reason]")).to_have_text("Unknown card")

        page.click("#f-reset")
        page.fill("#f-tenant", TENANT)
        page.fill("#f-since", (local_ts + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S"))
        page.click("#f-search")  # the browser's zone is the gateway's: nothing after the swipe
        expect(page.locator("#entries-msg")).to_have_text("No entry matches.")
        page.fill("#f-since", (local_ts - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S"))
        page.fill("#f-until", (local_ts + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S"))
        page.click("#f-search")
        expect(page.locator("#entries-msg")).to_have_text("1 entr(ies) shown.")
        assert shown(page, "entryId") == [entry["id"]]  # the tenant filter left the stranger out
        row = page.locator(f"[data-testid=entry-row][data-entry-id='{entry['id']}']")
        expect(row).to_have_attribute("data-tenant-id", TENANT)
        expect(row).to_have_attribute("data-decision", "granted")
        expect(row.locator("[data-testid=entry-decision]")).to_have_text("Granted")
        expect(row.locator("[data-testid=entry-reason]")).to_have_text("Granted")
        expect(row.locator("[data-testid=entry-card]")).to_contain_text(str(CARD))
        expect(row.locator("[data-testid=entry-door]")).to_have_text("main")
        expect(row.locator("[data-testid=entry-time]")).to_have_text(local_ts.strftime("%Y-%m-%d %H:%M:%S"))

        # --- export CSV with the same filters --------------------------------------------------
        with page.expect_download(timeout=WAIT_MS) as download_info:
            page.click("#f-export")
        download = download_info.value
        assert re.fullmatch(r"entries-\d{8}T\d{6}Z\.csv", download.suggested_filename), download.suggested_filename
        csv_path = tmp_path / download.suggested_filename
        download.save_as(csv_path)
        text = csv_path.read_text(encoding="utf-8")
        assert entry["id"] in text and TENANT in text and stranger["id"] not in text, text
        assert len(text.strip().splitlines()) == 2, text  # header + the tenant's one entry
        expect(page.locator("#entries-msg")).to_contain_text(download.suggested_filename)

        # --- a face entry with a snapshot (written as the gateway writes one): thumbnail --------
        face_id = add_face_entry(gw, photo)
        page.click("#f-reset")
        page.select_option("#f-method", "face")
        page.click("#f-search")
        face_row = page.locator(f"[data-testid=entry-row][data-entry-id='{face_id}']")
        expect(face_row).to_have_count(1)
        thumb = face_row.locator("[data-testid=snapshot-thumb]")
        expect(thumb).to_be_visible()
        wait_until(lambda: thumb.evaluate("img => img.complete && img.naturalWidth") > 0, 10, 0.1, "thumbnail decoded")
        assert thumb.get_attribute("src").startswith("blob:")
        face_row.locator("[data-testid=snapshot-open]").click()
        expect(page.locator("#snapshot-dialog")).to_be_visible()
        page.click("#snapshot-close")
        expect(page.locator("#snapshot-dialog")).to_be_hidden()

        # --- entries per hour for the day of the swipe -------------------------------------------
        page.fill("#chart-day", local_ts.date().isoformat())
        page.click("#chart-show")
        hour = page.locator(f"[data-testid=chart-row][data-hour='{local_ts.hour}']")
        expect(hour).to_have_attribute("data-count", re.compile(r"^[1-9]\d*$"))
        expect(page.locator("#chart-msg")).to_contain_text(local_ts.date().isoformat())
        assert page.locator("#chart-canvas").evaluate("c => c.width") > 0

        # --- suspend: the page shows it, and the next swipe is denied -------------------------------
        page.fill("#manage-q", TENANT)
        page.click("#manage-search")
        tenant_row = page.locator(f"[data-testid=tenant-row][data-tenant-id='{TENANT}']")
        expect(tenant_row.locator("[data-testid=tenant-status]")).to_have_text("Active")
        tenant_row.locator("[data-testid=suspend-btn]").click()
        expect(tenant_row.locator("[data-testid=tenant-status]")).to_have_text("Suspended")
        expect(page.locator("#manage-msg")).to_have_text(f"Tenant {TENANT} is suspended.")

        def denied() -> list[dict[str, Any]]:
            gw.card.swipe(CARD, 34)  # until the daemon has reloaded the roster
            return wait_until_quiet(lambda: api_entries(gw, tenant_id=TENANT, decision="denied"))

        wait_until(denied, 15, 0.5, "a denied swipe after suspension")
        page.click("#f-reset")
        page.select_option("#f-reason", "suspended")
        page.click("#f-search")
        expect(page.locator("[data-testid=entry-row][data-reason=suspended]").first).to_be_visible()
        assert set(shown(page, "reason")) == {"suspended"}
        page.click("#f-reset")
        page.fill("#f-card", str(CARD))
        page.click("#f-search")
        expected = [e["id"] for e in api_entries(gw, card_number=CARD)]
        expect(page.locator("[data-testid=entry-row]")).to_have_count(len(expected))
        assert shown(page, "entryId") == expected and len(expected) >= 2  # no stranger, no face entry
        cards = page.locator("[data-testid=entry-row] [data-testid=entry-card]").all_inner_texts()
        assert all(c.startswith(str(CARD)) for c in cards), cards

        # --- the whole page in Chinese, then a screenshot for people to look at -------------------------
        page.click("#f-reset")
        page.click("#f-search")
        expect(page.locator("[data-testid=entry-row]")).to_have_count(len(api_entries(gw)))
        expect(page.locator("[data-testid=snapshot-thumb]")).to_be_visible()
        page.click("#lang-toggle")
        expect(page.locator("#entries-h")).to_have_text("查询通行记录")
        expect(page.locator("[data-testid=entry-row] [data-testid=entry-reason]").first).to_have_text("已暂停")
        page.screenshot(path=str(tmp_path / "page-zh.png"), full_page=True)
        page.click("#lang-toggle")
        expect(page.locator("#entries-h")).to_have_text("Search entries")
        page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
        assert (tmp_path / "page.png").stat().st_size > 10_000

        # --- more than a page: "More" follows next_cursor ----------------------------------------------
        add_exit_entries(gw, 55)
        page.click("#f-reset")
        page.select_option("#f-method", "exit_button")
        page.click("#f-search")
        expect(page.locator("[data-testid=entry-row]")).to_have_count(50)
        expect(page.locator("#entries-more")).to_be_visible()
        page.click("#entries-more")
        expect(page.locator("[data-testid=entry-row]")).to_have_count(55)
        expect(page.locator("#entries-more")).to_be_hidden()
        expect(page.locator("#entries-msg")).to_have_text("55 entr(ies) shown.")
        ids = page.locator("[data-testid=entry-row]").evaluate_all("rows => rows.map(r => r.dataset.entryId)")
        assert len(set(ids)) == 55 and ids == sorted(ids, reverse=True), ids  # newest first, none twice

        # --- sign out; a token revoked while signed in sends the page back to sign-in -----------------
        page.click("#sign-out")
        expect(page.locator("#signin")).to_be_visible()
        expect(page.locator("#signin-msg")).to_have_text("Signed out.")
        assert page.evaluate("sessionStorage.getItem('accessgw.token')") is None
        with gw.api.client("admin") as c:
            police = c.post("/api/v1/users", json={"name": "officer-1", "role": "police"}).json()["token"]
        page.fill("#token-input", police)
        page.click("#sign-in-btn")
        expect(page.locator("#whoami")).to_have_attribute("data-role", "police")
        expect(page.locator("#enrol")).to_be_hidden()  # admin only
        expect(page.locator("#entries")).to_be_visible()
        page.reload()  # the token survives a reload of the tab
        expect(page.locator("#whoami")).to_have_attribute("data-role", "police")
        with gw.api.client("admin") as c:
            assert c.delete("/api/v1/users/officer-1").status_code == 204
        page.click("#f-search")
        expect(page.locator("#signin")).to_be_visible()
        expect(page.locator("#signin-msg")).to_contain_text("no longer accepted")
        expect(page.locator("#app")).to_be_hidden()

        assert not crashes, crashes
        assert not outside, f"the page asked for something outside the gateway: {outside}"
        assert "Traceback" not in gw.api.log(), gw.api.log()[-3000:]
    except BaseException:
        page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
        print(f"screenshot of the failure: {tmp_path / 'failure.png'}\ngateway log tail:\n{gw.api.log()[-3000:]}")
        raise
    finally:
        context.close()


def wait_until_quiet(fetch: Any) -> Any:
    try:
        return wait_until(fetch, 1.5, 0.1, "entry")
    except AssertionError:
        return None


def add_exit_entries(gw: WebGateway, n: int) -> None:
    """`n` exit-button entries a second apart, written through the gateway's journal."""
    start = datetime.now(ZoneInfo("UTC")) - timedelta(hours=2)
    engine, sessions = open_store(gw.api.data_dir)
    try:
        with sessions.begin() as s:
            for i in range(n):
                draft = EntryDraft(ts=start + timedelta(seconds=i), door="main", method="exit_button",
                                   decision="granted", reason="granted")  # fmt: skip
                record_entry(s, gw.gateway_id, draft)
    finally:
        engine.dispose()


def add_face_entry(gw: WebGateway, jpeg_path: Path) -> str:
    """A denied face entry with its snapshot, written through the gateway's own journal and
    snapshot store, as its vision path writes one (this rig has no camera)."""
    ts = datetime.now(ZoneInfo("UTC"))
    engine, sessions = open_store(gw.api.data_dir)
    try:
        store = SnapshotStore(gw.api.data_dir)
        entry_id = new_event_id(ts)
        api_path = store.save("entries", entry_id, ts, jpeg_path.read_bytes())
        draft = EntryDraft(ts=ts, door="main", method="face", decision="denied", reason="unknown_face",
                           face_distance=0.71, camera="cam-lobby", snapshot=api_path)  # fmt: skip
        with sessions.begin() as s:
            record_entry(s, gw.gateway_id, draft, entry_id)
    finally:
        engine.dispose()
    with httpx.Client(base_url=gw.api.base, headers={"Authorization": f"Bearer {gw.api.tokens['admin']}"}) as c:
        assert c.get(f"/api/v1/entries/{entry_id}/snapshot").status_code == 200
    return entry_id

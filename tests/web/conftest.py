"""The page as its users meet it: one gateway per test module (`accessgw run` as its own process,
API and page on a loopback port, a simulated card reader on a socat pty, pymodbus's RTU server
as the relay board, a real mosquitto), Debian's Chromium driven by Playwright, every role signed
in through the sign-in form, in zh-CN, at 1366×768 and at 390×844.

Each test asking for `page_as` runs at both sizes (the `viewport` fixture); the gateway is shared
by the module's tests, so a test makes its own tenants (suffix them with `viewport`).
Screenshots: `shot(page, "name")` writes tests/web/screenshots/<test>/<name>-<viewport>.png
(or under $ACCESSGW_SCREENSHOTS): look at them there after a run.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from drivers.simulators import SimulatedCardReader, SimulatedRelayBoard
from testing.faces import faces_dir_path
from testing.gateway import API, DoorPeers, GatewayProcess, gateway_config
from testing.peers import Mosquitto, wait_until

CHROMIUM = Path(os.environ.get("ACCESSGW_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
GATEWAY_ID = "web-test"
ZONE = "Asia/Shanghai"
ROLES = ("admin", "police", "operator", "auditor")
VIEWPORTS = {"desktop": {"width": 1366, "height": 768}, "phone": {"width": 390, "height": 844}}
SCREENSHOTS = Path(os.environ.get("ACCESSGW_SCREENSHOTS", Path(__file__).parent / "screenshots"))
WAIT_MS = 15_000


@dataclass
class WebGateway:
    gateway: GatewayProcess
    card: SimulatedCardReader
    board: SimulatedRelayBoard
    tokens: dict[str, str] = field(default_factory=dict)
    zone: str = ZONE
    gateway_id: str = GATEWAY_ID

    @property
    def base(self) -> str:
        return self.gateway.base

    def client(self, role: str = "admin") -> httpx.Client:
        return self.gateway.client(self.tokens[role])

    def log(self) -> str:
        return self.gateway.log()

    def add_tenant(self, tenant_id: str, name: str, *, room: str | None = None, card: int | None = None,
                   permit: str | None = None, valid_days: int = 365) -> dict[str, Any]:  # fmt: skip
        """A tenant (and card) through the API, valid from yesterday for `valid_days`."""
        body = {"id": tenant_id, "name": name, "permit_number": permit or f"P-{tenant_id}",
                "valid_from": (date.today() - timedelta(days=1)).isoformat(),
                "valid_to": (date.today() + timedelta(days=valid_days)).isoformat(), "room": room}  # fmt: skip
        with self.client() as c:
            r = c.post(f"{API}/tenants", json=body)
            assert r.status_code == 201, r.text
            if card is not None:
                r = c.post(f"{API}/tenants/{tenant_id}/cards", json={"number": card})
                assert r.status_code == 201, r.text
            return r.json()

    def swipe(self, card: int, bits: int = 34) -> dict[str, Any]:
        """Present a card on the simulated reader; the entry it made."""
        with self.client() as c:
            before = {e["id"] for e in c.get(f"{API}/entries", params={"card_number": card}).json()["items"]}
            self.card.swipe(card, bits)

            def new() -> dict[str, Any] | None:
                items = c.get(f"{API}/entries", params={"card_number": card}).json()["items"]
                return next((e for e in items if e["id"] not in before), None)

            return wait_until(new, 15, 0.1, f"the entry of card {card}")


@pytest.fixture(scope="module")
def web_gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebGateway]:
    tmp = tmp_path_factory.mktemp("web")
    broker = Mosquitto(tmp / "broker")
    broker.start()
    peers = DoorPeers(tmp / "ports")
    cfg = gateway_config(tmp / "data", broker.port, gateway_id=GATEWAY_ID, timezone=ZONE,
                         **peers.sections(300))  # fmt: skip
    gateway = GatewayProcess(tmp, cfg)
    try:
        gateway.start()

        def ready() -> bool:
            assert gateway.running, gateway.log()
            try:
                return httpx.get(f"{gateway.base}{API}/ready", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, 30, 0.1, "gateway ready (store, broker, reader, I/O module)")
        peers.wait_polled()
        assert peers.card is not None and peers.board is not None
        gw = WebGateway(gateway, peers.card, peers.board)
        gw.tokens["admin"] = gateway.admin_token()
        with gw.client() as c:
            for role in ROLES[1:]:
                r = c.post(f"{API}/users", json={"name": f"{role}-1", "role": role})
                assert r.status_code == 201, r.text
                gw.tokens[role] = r.json()["token"]
        yield gw
    finally:
        try:
            gateway.stop()
        finally:
            peers.close()
            broker.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, driven by Playwright (never `playwright install`: no browser download)."""
    if not CHROMIUM.exists():
        raise RuntimeError(f"{CHROMIUM} not found: apt-get install -y --no-install-recommends chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        raise RuntimeError("Playwright's Python package is missing: .venv/bin/pip install playwright") from exc
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True, timeout=30_000)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(params=list(VIEWPORTS))
def viewport(request: pytest.FixtureRequest) -> str:
    return request.param


# Every visible form control has a name a screen reader can say (a <label>, aria-label or -labelledby).
UNLABELLED = """() => [...document.querySelectorAll('input, select, textarea')]
  .filter(e => e.type !== 'hidden' && e.offsetParent !== null)
  .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.getAttribute('aria-labelledby'))
  .map(e => e.outerHTML.slice(0, 120))"""
# The page itself never scrolls sideways (a wide table may, inside its own box).
OVERFLOW = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"


@dataclass
class Screens:
    folder: Path
    viewport: str

    def __call__(self, page: Any, name: str) -> Path:
        """Screenshot a screen, after checking what every screen must hold: labelled controls,
        no sideways scrolling of the page at this width."""
        path = self.folder / f"{name}-{self.viewport}.png"
        page.screenshot(path=str(path), full_page=True)
        unlabelled = page.evaluate(UNLABELLED)
        assert not unlabelled, f"{name}: controls without a label: {unlabelled}"
        overflow = page.evaluate(OVERFLOW)
        assert overflow <= 1, f"{name}: the page scrolls sideways by {overflow} px at {self.viewport}"
        return path


@pytest.fixture
def shot(request: pytest.FixtureRequest, viewport: str) -> Screens:
    test = re.sub(r"\[.*\]$", "", request.node.name)
    folder = SCREENSHOTS / request.module.__name__.rsplit(".", 1)[-1] / test
    folder.mkdir(parents=True, exist_ok=True)
    return Screens(folder, viewport)


@pytest.fixture
def page_as(web_gw: WebGateway, browser: Any, viewport: str, shot: Screens) -> Iterator[Callable[..., Any]]:
    """page_as("police") → a Playwright page signed in through the form as that role, in zh-CN, in
    the gateway's zone, at this test's viewport. Page errors, CSP violations and requests leaving
    the gateway fail the test; a failing test leaves failure-<n>.png beside its screenshots."""
    from playwright.sync_api import expect

    opened: list[tuple[Any, Any]] = []
    problems: list[str] = []

    def open_as(role: str, *, lang: str = "zh-CN") -> Any:
        context = browser.new_context(locale=lang, timezone_id=ZONE, accept_downloads=True,
                                      viewport=VIEWPORTS[viewport])  # fmt: skip
        context.set_default_timeout(WAIT_MS)
        page = context.new_page()
        opened.append((context, page))
        page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
        page.on("console", lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None)
        page.on("request", lambda req: None if req.url.startswith((web_gw.base, "blob:", "data:"))
                else problems.append(f"request outside the gateway: {req.url}"))  # fmt: skip
        page.goto(web_gw.base + "/", wait_until="load")
        expect(page.locator("body[data-view=signin]")).to_have_count(1)
        page.fill("[data-testid=token-input]", web_gw.tokens[role])
        page.click("[data-testid=sign-in-btn]")
        expect(page.locator("[data-testid=whoami]")).to_have_attribute("data-role", role)
        return page

    ok = False
    try:
        yield open_as
        ok = True
    finally:
        for n, (context, page) in enumerate(opened):
            if not ok:
                try:
                    page.screenshot(path=str(shot.folder / f"failure-{n}-{viewport}.png"), full_page=True)
                except Exception:
                    pass
            context.close()
    assert not problems, problems


def photos_of(person_index: int = 0, count: int = 1) -> list[Path]:
    """Real face photos of one person of the shared set (sorted, so the same on every machine)."""
    people = sorted(p for p in (faces_dir_path() / "lfw_subset").iterdir() if p.is_dir())
    photos = sorted(people[person_index].glob("*.jpg"))[:count]
    assert len(photos) == count, f"{people[person_index]} has fewer than {count} photos"
    return photos


def open_snapshot(page: Any, row: Any, *facts: str) -> None:
    """Open a row's snapshot: the picture loads and the dialog states `facts` (time zone always)."""
    from playwright.sync_api import expect

    row.locator("[data-testid=snapshot-open]").click()
    shown = page.locator("[data-testid=snapshot-facts]")
    for text in (*facts, ZONE):
        expect(shown).to_contain_text(text)
    picture = page.locator("[data-testid=snapshot-dialog] img")
    expect(picture).to_have_js_property("complete", True)
    assert picture.evaluate("img => img.naturalWidth") > 0, "the snapshot did not load"

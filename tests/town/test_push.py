"""The roster pushed down (town.pusher): signed patches from the roster log and snapshots, until each gateway
answers that it holds its target version.

Fast: the pusher against a responder that checks each patch's signature and answers as a gateway would, on
both database back-ends: one patch per gateway per resend period, 550 gateways at a new watch-list version
within seconds. Slow (`-m slow`): the real town service (ingest, consumer, pusher) on a real mosquitto with
real gateway daemons (`python -m gateway run`) trusting the town's key: enrol → the gateway's API shows the
tenant and card within 5 s; revoke; a change made with the CLI while the service runs; a gateway at version
0 joining late; a version gap answered by a snapshot; a building's own enrolment merged and echoed.
"""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from nacl.signing import SigningKey
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from config.models import ApiConfig
from config.town import RosterPushConfig, TownConfig, TownMqttConfig
from gateway.cli import main
from sync.signing import verify
from testing.gateway import GatewayProcess, gateway_config
from testing.peers import Mosquitto, free_port, wait_until
from town import register as reg
from town.keys import load_or_create_key
from town.pusher import Pusher
from town.store.db import open_town_store
from town.store.models import Gateway, TownTenant

VALID_TO = date(date.today().year + 1, 6, 30)


# --- the pusher against a responder -------------------------------------------------------------------------
class Responder:
    """Gateways as the pusher sees them: each publish is checked (signature, versions) and answered through
    `on_response`, as the ingest does: from another thread, answers that arrived together in one transaction."""

    def __init__(self, sessions: sessionmaker[Session], key: SigningKey, answer: bool = True) -> None:
        self.sessions, self.key, self.answer = sessions, key, answer
        self.held: dict[str, int] = {}  # gateway -> version it holds
        self.sent: list[tuple[str, str, dict[str, Any]]] = []
        self.pusher: Pusher | None = None
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[tuple[str, str, dict[str, Any]] | None] = queue.SimpleQueue()
        self._worker = threading.Thread(target=self._answering, daemon=True)
        self._worker.start()

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> int:
        _, gateway_id, _, command = topic.split("/", 3)
        message = json.loads(payload)
        assert verify(message, self.key.verify_key) and qos == 1 and not retain
        with self._lock:
            self.sent.append((gateway_id, command, message))
        if self.answer:
            self._queue.put((gateway_id, command, message))
        return 1

    def _answering(self) -> None:
        while (item := self._queue.get()) is not None:
            batch = [item]
            while len(batch) < 500:
                try:
                    more = self._queue.get(timeout=0.005)
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)
                    break
                batch.append(more)
            with self.sessions.begin() as s:
                for gateway_id, command, message in batch:
                    self.respond(s, gateway_id, command, message)

    def respond(self, s: Session, gateway_id: str, command: str, message: dict[str, Any]) -> None:
        assert self.pusher is not None
        held = self.held.get(gateway_id, 0)
        if command == "roster/patch":
            if message["to_version"] == held or message["from_version"] == held:
                self.held[gateway_id] = message["to_version"]
                response = {"status": "ok", "version": message["to_version"]}
            else:
                response = {"status": "error", "error": "version_gap"}
        else:
            if message["chunk"] < message["chunks"] - 1:
                return
            self.held[gateway_id] = message["version"]
            response = {"status": "ok", "complete": True, "version": message["version"]}
        self.pusher.on_response(s, gateway_id, command, {"transaction": message["transaction"], **response})

    def count(self, command: str) -> int:
        with self._lock:
            return sum(1 for _, c, _ in self.sent if c == command)

    def close(self) -> None:
        self._queue.put(None)
        self._worker.join(5)


@pytest.fixture
def town(town_cfg: TownConfig) -> Iterator[tuple[TownConfig, sessionmaker[Session]]]:
    engine, sessions = open_town_store(town_cfg)
    try:
        yield town_cfg, sessions
    finally:
        engine.dispose()


def pending(sessions: sessionmaker[Session]) -> int:
    with sessions() as s:
        return len(s.scalars(select(Gateway.gateway_id).where(Gateway.roster_version < Gateway.target_version)).all())


def test_one_patch_per_gateway_per_resend_period_until_it_answers(
    town: tuple[TownConfig, sessionmaker[Session]], tmp_path: Path
) -> None:
    cfg, sessions = town
    key = load_or_create_key(tmp_path / "key")
    responder = Responder(sessions, key, answer=False)
    now = [1000.0]
    pusher = Pusher(sessions, key, responder.publish, RosterPushConfig(resend_s=5), "accessgw", clock=lambda: now[0])
    responder.pusher = pusher
    try:
        with sessions.begin() as s:
            reg.add_tenant(s, "a", gateway_id="gw-1", id="T1", name="n", permit="P1", valid_to=VALID_TO)
        pusher.tick()
        pusher.tick()
        with sessions.begin() as s:  # a second change while the first patch waits for its answer
            reg.add_card(s, "a", "T1", 99)
        pusher.tick()
        assert [(c, m["from_version"], m["to_version"]) for _, c, m in responder.sent] == [("roster/patch", 0, 1)]
        now[0] += 5  # no answer within resend_s: again, from what the gateway holds to the newest version
        pusher.tick()
        pusher.tick()
        assert [(m["from_version"], m["to_version"], len(m["ops"])) for _, _, m in responder.sent[1:]] == [(0, 2, 2)]
        assert responder.sent[0][2]["transaction"] != responder.sent[1][2]["transaction"]
        # The answer: the gateway holds 2, nothing more to send.
        responder.answer = True
        with sessions.begin() as s:
            responder.respond(s, "gw-1", "roster/patch", responder.sent[1][2])
        assert pending(sessions) == 0
        now[0] += 60
        pusher.tick()
        assert len(responder.sent) == 2
        # A roster request: a snapshot of the slice at the target version; and one only, while it is on its way.
        pusher.request_snapshot("gw-1")
        pusher.request_snapshot("gw-1")
        pusher.tick()
        wait_until(lambda: responder.count("roster/snapshot") == 1, 5, what="the snapshot")
        snapshot = responder.sent[-1][2]
        assert (snapshot["version"], snapshot["chunks"]) == (2, 1)
        assert [(o["kind"], o.get("id", o.get("number"))) for o in snapshot["ops"]] == [("tenant", "T1"), ("card", 99)]
        wait_until(lambda: "gw-1" not in pusher.in_flight()["snapshots"], 5, what="the snapshot's answer")
        # A patch the gateway cannot apply (malformed there): the snapshot replaces its slice.
        with sessions.begin() as s:
            reg.set_status(s, "a", "T1", "suspended")
        responder.answer = False
        pusher.tick()
        patch = responder.sent[-1][2]
        assert (patch["from_version"], patch["to_version"]) == (2, 3)
        with sessions.begin() as s:
            refusal = {"transaction": patch["transaction"], "status": "error", "error": "malformed"}
            pusher.on_response(s, "gw-1", "roster/patch", refusal)
        pusher.tick()
        wait_until(lambda: responder.count("roster/snapshot") == 2, 5, what="a snapshot after `malformed`")
        assert responder.sent[-1][2]["version"] == 3
    finally:
        pusher.stop()
        responder.close()


def test_550_gateways_reach_a_new_watch_list_version_within_seconds(
    town: tuple[TownConfig, sessionmaker[Session]], tmp_path: Path
) -> None:
    cfg, sessions = town
    key = load_or_create_key(tmp_path / "key")
    responder = Responder(sessions, key)
    pusher = Pusher(sessions, key, responder.publish, RosterPushConfig(resend_s=5), "accessgw")
    responder.pusher = pusher
    with sessions.begin() as s:
        reg.ensure_gateways(s, [f"gw-{i:03d}" for i in range(550)])
    pusher.start()
    try:
        wait_until(lambda: pending(sessions) == 0 and responder.count("roster/patch") >= 550, 30, 0.05,
                   "550 new gateways at their first version")  # fmt: skip
        before = responder.count("roster/patch")
        t0 = time.monotonic()
        with sessions.begin() as s:
            reg.add_watch(s, "police", name="某人", vectors=[np.zeros(128)])
        pusher.wake()
        wait_until(lambda: pending(sessions) == 0, 10, 0.02, "550 gateways at the new watch-list version")
        took = time.monotonic() - t0
        with sessions() as s:
            assert set(s.scalars(select(Gateway.target_version))) == {2}
            assert set(s.scalars(select(Gateway.roster_version))) == {2}
        assert responder.count("roster/patch") - before == 550  # one each
        print(f"550 gateways at the new version in {took:.2f} s")
        assert took < 10, took
    finally:
        pusher.stop()
        responder.close()


# --- the real service, broker and gateways ---------------------------------------------------------------------
class TownRig:
    def __init__(self, tmp_path: Path, town_cfg: TownConfig, broker: Mosquitto) -> None:
        from town.service import TownService

        self.cfg = town_cfg.model_copy(update={
            "instance": "test",
            "mqtt": TownMqttConfig(host="127.0.0.1", port=broker.port, reconnect_max_s=1),
            "roster": RosterPushConfig(resend_s=1.0, chunk_bytes=20_000, chunk_interval_s=0.01),
            "api": ApiConfig(host="127.0.0.1", port=free_port()),
        })  # fmt: skip
        self.config_path = tmp_path / "town.yaml"
        data = json.loads(self.cfg.model_dump_json())
        if self.cfg.database_url is not None:
            data["database_url"] = self.cfg.database_url.get_secret_value()
        self.config_path.write_text(yaml.safe_dump(data))
        self.service = TownService(self.cfg, serve_api=False)
        self.sessions = self.service.sessions
        self.service.start()
        wait_until(lambda: self.service.consumer.subscribed, 10, what="the town subscribed")
        self.broker = broker
        self.tmp = tmp_path
        self.gateways: list[GatewayProcess] = []

    def gateway(self, gateway_id: str, start: bool = True) -> GatewayProcess:
        folder = self.tmp / gateway_id
        folder.mkdir()
        cfg = gateway_config(folder / "data", self.broker.port, gateway_id=gateway_id,
                             sync={"platform_public_key": self.service.public_key})  # fmt: skip
        gw = GatewayProcess(folder, cfg)
        self.gateways.append(gw)
        if start:
            gw.start()
        return gw

    def cli(self, *args: str) -> str:
        result = CliRunner().invoke(main, ["town", *args, "--config", str(self.config_path)])
        assert result.exit_code == 0, result.output
        return result.output

    def versions(self, gateway_id: str) -> tuple[int, int]:
        with self.sessions() as s:
            g = s.get(Gateway, gateway_id)
            return (g.roster_version, g.target_version) if g is not None else (-1, -1)

    def close(self) -> None:
        for gw in self.gateways:
            gw.stop()
        self.service.stop()


@pytest.fixture
def rig(tmp_path: Path, town_cfg: TownConfig, mosquitto: Mosquitto) -> Iterator[TownRig]:
    r = TownRig(tmp_path, town_cfg, mosquitto)
    try:
        yield r
    finally:
        r.close()


def tenants_at(gw: GatewayProcess, token: str) -> dict[str, dict[str, Any]]:
    with gw.client(token) as c:
        return {t["id"]: t for t in c.get("/api/v1/tenants", params={"limit": 500}).json()["items"]}


def gateway_holds(gw: GatewayProcess, token: str, predicate: Any, timeout: float, what: str) -> float:
    """Seconds until predicate(tenants) holds at the gateway's API."""
    t0 = time.monotonic()

    def check() -> bool:
        try:
            return bool(predicate(tenants_at(gw, token)))
        except httpx.HTTPError:
            return False

    wait_until(check, timeout, 0.05, what)
    return time.monotonic() - t0


@pytest.mark.slow
def test_enrolled_at_the_town_the_gateway_holds_it_within_seconds(rig: TownRig) -> None:
    gw = rig.gateway("gw-a")
    token = gw.admin_token()
    wait_until(lambda: rig.versions("gw-a")[0] >= 1, 10, 0.05, "gw-a at its first version (the town met it)")

    with rig.sessions.begin() as s:
        reg.add_tenant(s, "admin1", gateway_id="gw-a", id="T1", name="王芳", permit="440106199001011234",
                       valid_from=date(2026, 1, 1), valid_to=VALID_TO, room="302")  # fmt: skip
        reg.add_card(s, "admin1", "T1", 305419896)
    took = gateway_holds(gw, token, lambda t: t.get("T1", {}).get("cards") == [305419896], 5, "T1 and its card")
    assert took < 5
    t1 = tenants_at(gw, token)["T1"]
    assert (t1["name"], t1["permit_number"], t1["room"], t1["status"]) == (
        "王芳",
        "440106199001011234",
        "302",
        "active",
    )

    with rig.sessions.begin() as s:
        reg.set_status(s, "admin1", "T1", "revoked", reason="test")
    gateway_holds(gw, token, lambda t: t["T1"]["status"] == "revoked", 5, "T1 revoked at the gateway")

    # The CLI, another process as far as the store knows: the running service's poll pushes it.
    rig.cli("tenant", "add", "--gateway", "gw-a", "--id", "T2", "--name", "李雷", "--permit", "P2",
            "--valid-to", VALID_TO.isoformat())  # fmt: skip
    rig.cli("card", "add", "--tenant", "T2", "--number", "4242")
    rig.cli("tenant", "suspend", "--id", "T2")
    gateway_holds(gw, token, lambda t: t.get("T2", {}).get("status") == "suspended" and t["T2"]["cards"] == [4242],
                  10, "T2 from the CLI")  # fmt: skip
    wait_until(lambda: rig.versions("gw-a")[0] == rig.versions("gw-a")[1], 10, 0.05, "gw-a at the target version")
    assert rig.cli("key").strip().splitlines()[-1] == rig.service.public_key


@pytest.mark.slow
def test_a_gateway_joining_late_gets_everything_and_a_version_gap_gets_a_snapshot(rig: TownRig) -> None:
    with rig.sessions.begin() as s:
        for i in range(30):
            reg.add_tenant(s, "admin1", gateway_id="gw-late", id=f"T{i:02d}", name=f"租户 {i}", permit=f"P{i:04d}",
                           valid_to=VALID_TO, room=str(100 + i))  # fmt: skip
            reg.add_card(s, "admin1", f"T{i:02d}", 1000 + i)
        reg.add_watch(s, "police1", name="某人", vectors=[np.full(128, 0.01)])
    assert rig.versions("gw-late") == (0, 61)
    gw = rig.gateway("gw-late")  # at version 0, never met the town
    token = gw.admin_token()
    gateway_holds(gw, token, lambda t: len(t) == 30 and t["T29"]["cards"] == [1029], 15, "all 30 tenants")
    wait_until(lambda: rig.versions("gw-late") == (61, 61), 10, 0.05, "the town sees gw-late at 61")

    # The town believes the gateway is behind where it is: the patch it sends cannot apply (version_gap),
    # the gateway asks for a snapshot, and the snapshot (several chunks) brings it to the newest version.
    sent = rig.service.pusher.sent_snapshots if rig.service.pusher else 0
    with rig.sessions.begin() as s:
        s.execute(update(Gateway).where(Gateway.gateway_id == "gw-late").values(roster_version=50))
        reg.set_status(s, "admin1", "T00", "revoked")
        reg.delete_tenant(s, "admin1", "T01")
    gateway_holds(gw, token, lambda t: "T01" not in t and t["T00"]["status"] == "revoked", 15,
                  "the snapshot applied")  # fmt: skip
    wait_until(lambda: rig.versions("gw-late") == (63, 63), 10, 0.05, "the town sees gw-late at 63")
    assert rig.service.pusher is not None and rig.service.pusher.sent_snapshots > sent
    log = gw.log()
    assert "not 50; a snapshot is requested" in log and "roster snapshot" in log, log[-3000:]


@pytest.mark.slow
def test_a_building_enrolment_is_merged_and_echoed(rig: TownRig) -> None:
    gw = rig.gateway("gw-b")
    token = gw.admin_token()
    wait_until(lambda: rig.versions("gw-b")[0] >= 1, 10, 0.05, "gw-b at its first version")
    with gw.client(token) as c:
        r = c.post("/api/v1/tenants", json={"id": "B1", "name": "韩梅梅", "permit_number": "P-B1",
                                            "valid_to": VALID_TO.isoformat(), "room": "808"})  # fmt: skip
        assert r.status_code == 201, r.text
        assert c.post("/api/v1/tenants/B1/cards", json={"number": 8080}).status_code == 201

    def merged() -> TownTenant | None:
        with rig.sessions() as s:
            t = s.get(TownTenant, "B1")
            return t if t is not None and t.room == "808" else None

    t = wait_until(merged, 15, 0.05, "B1 in the town's register")
    assert (t.gateway_id, t.updated_by) == ("gw-b", "gateway:gw-b")
    with rig.sessions() as s:
        from town.store.models import TownCard

        wait_until(lambda: s.get(TownCard, 8080) is not None or s.expire_all(), 15, 0.05, "card 8080 merged")
    # The echo went down in the next patch and the gateway is at the town's newest version, B1 unchanged.
    wait_until(lambda: rig.versions("gw-b")[0] == rig.versions("gw-b")[1] >= 3, 15, 0.05, "the echo applied")
    b1 = tenants_at(gw, token)["B1"]
    assert (b1["room"], b1["cards"], b1["status"]) == ("808", [8080], "active")
    # And the town's change to the building's tenant goes back down.
    with rig.sessions.begin() as s:
        reg.update_tenant(s, "admin1", "B1", room="809")
    gateway_holds(gw, token, lambda t: t["B1"]["room"] == "809", 5, "the town's change at the building")


@pytest.mark.slow
def test_town_run_serves_the_api_pushes_its_enrolments_and_stops_on_sigterm(
    tmp_path: Path, town_cfg: TownConfig, mosquitto: Mosquitto
) -> None:
    """`accessgw town run` as its own process: first start's admin token, the API's enrolment at the gateway
    within 5 s, a clean exit on SIGTERM."""
    cfg = town_cfg.model_copy(update={
        "mqtt": TownMqttConfig(host="127.0.0.1", port=mosquitto.port, reconnect_max_s=1),
        "roster": RosterPushConfig(resend_s=1.0), "api": ApiConfig(host="127.0.0.1", port=free_port()),
    })  # fmt: skip
    data = json.loads(cfg.model_dump_json())
    if cfg.database_url is not None:
        data["database_url"] = cfg.database_url.get_secret_value()
    config_path = tmp_path / "town.yaml"
    config_path.write_text(yaml.safe_dump(data))
    key = CliRunner().invoke(main, ["town", "key", "--config", str(config_path)])
    assert key.exit_code == 0, key.output
    public = key.output.strip().splitlines()[-1]
    log_path = tmp_path / "town.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "gateway", "town", "run", "--config", str(config_path)],
                                stdout=log, stderr=log, cwd=Path(__file__).resolve().parents[2])  # fmt: skip
    gw = GatewayProcess(tmp_path / "gw", gateway_config(tmp_path / "gw" / "data", mosquitto.port, gateway_id="gw-run",
                                                        sync={"platform_public_key": public}))  # fmt: skip
    (tmp_path / "gw").mkdir()
    try:
        token_file = cfg.data_dir / "initial-admin-token"
        wait_until(token_file.exists, 30, 0.05, f"the town's first admin token\n{log_path.read_text()}")
        town_token = token_file.read_text().strip()
        wait_until(lambda: town_token in log_path.read_text(), 10, 0.05, "the token printed once")  # after the file
        base = f"http://127.0.0.1:{cfg.api.port}/api/v1"
        wait_until(lambda: _answers(f"{base}/health"), 30, 0.05, "the town's API")
        gw.start()
        gw_token = gw.admin_token()
        headers = {"Authorization": f"Bearer {town_token}"}
        body = {"gateway_id": "gw-run", "id": "R1", "name": "张三", "permit_number": "P-R1",
                "valid_to": VALID_TO.isoformat(), "room": "1201"}  # fmt: skip
        assert httpx.post(f"{base}/tenants", json=body, headers=headers, timeout=10).status_code == 201
        assert httpx.post(f"{base}/tenants/R1/cards", json={"number": 12010}, headers=headers,
                          timeout=10).status_code == 201  # fmt: skip
        gateway_holds(gw, gw_token, lambda t: t.get("R1", {}).get("cards") == [12010], 5, "R1 at the gateway")
    finally:
        gw.stop()
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
            raise AssertionError(f"town run did not stop on SIGTERM\n{log_path.read_text()[-3000:]}") from None
    assert code == 0, log_path.read_text()[-3000:]
    assert "stopped" in log_path.read_text()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False

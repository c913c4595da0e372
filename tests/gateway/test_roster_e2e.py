"""The roster from the town platform, end to end (DESIGN §6.1): signed patches and snapshots published on a real
mosquitto to the real daemon, decided on by card swipes through the pty reader and pymodbus's relay board."""

from __future__ import annotations

import json
import shutil
import time
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from nacl.signing import SigningKey

from gateway.cli import main
from gateway.simulation import PLATFORM_KEY, ROSTER_CARD, ROSTER_TENANT, platform_key, sim_dir, simulation_config
from sync.signing import sign
from testing.peers import Mosquitto, wait_until
from tests.gateway.rig import GATEWAY_ID, Rig
from tests.gateway.test_signed_requests import now_text, online

pytestmark = pytest.mark.slow
BASE = f"accessgw/{GATEWAY_ID}"
VALID_TO = f"{date.today().year + 1}-06-30"


@pytest.fixture
def rig(signed_rig: Rig) -> Rig:
    return signed_rig


def tenant(tid: str, status: str = "active") -> dict[str, Any]:
    return {"op": "upsert", "kind": "tenant", "id": tid, "name": "王芳", "permit": f"4401061990{tid}",
            "valid_from": "2026-01-01", "valid_to": VALID_TO, "room": "302", "status": status}  # fmt: skip


class Platform:
    """The town platform's side: signs requests and waits for their answers."""

    def __init__(self, rig: Rig, key: SigningKey) -> None:
        self.rig, self.key, self.n = rig, key, 0

    def ask(self, command: str, **body: Any) -> dict[str, Any]:
        self.n += 1
        transaction = f"t-{self.n}"
        message = sign({"transaction": transaction, "issued_at": now_text(), **body}, self.key)
        self.rig.sub.publish(f"{BASE}/request/{command}", json.dumps(message, ensure_ascii=False))

        def answer() -> dict[str, Any] | None:
            return next((a for a in self.rig.sub.payloads(f"/response/{command}") if a["transaction"] == transaction),
                        None)  # fmt: skip

        wait_until(lambda: answer() is not None, 10, what=f"the answer to {transaction}")
        got = answer()
        assert got is not None
        return got


def swipe(rig: Rig, number: int, n: int) -> dict[str, Any]:
    rig.card.swipe(number, 34)
    return rig.wait_entries(n, timeout=5)[-1]


def test_patches_and_snapshots_from_the_platform_drive_the_door(rig: Rig, keys: tuple[SigningKey, str]) -> None:
    rig.start()
    online(rig)
    wait_until(lambda: rig.state().get("roster_version") == 0, 10, what="a new gateway at roster version 0")
    platform = Platform(rig, keys[0])

    # A signed patch enrols a tenant with a card: the next swipe is granted, within 5 s of the answer.
    ops = [tenant("T0001"), {"op": "upsert", "kind": "card", "number": 305419896, "tenant": "T0001"}]
    ok = platform.ask("roster/patch", from_version=0, to_version=1, ops=ops)
    assert (ok["status"], ok["version"]) == ("ok", 1)
    enrolled = time.monotonic()
    entry = swipe(rig, 305419896, 1)
    assert (entry["decision"], entry["reason"], entry["tenant_id"]) == ("granted", "granted", "T0001")
    assert time.monotonic() - enrolled < 5
    wait_until(lambda: rig.state().get("roster_version") == 1, 10, what="roster_version 1 in …/state")
    again = platform.ask("roster/patch", from_version=0, to_version=1, ops=ops)  # the same version twice
    assert (again["status"], again["version"]) == ("ok", 1)

    # Revoked, then deleted, by patch.
    assert platform.ask("roster/patch", from_version=1, to_version=2, ops=[tenant("T0001", "revoked")])["version"] == 2
    assert swipe(rig, 305419896, 2)["reason"] == "revoked"
    deleted = platform.ask("roster/patch", from_version=2, to_version=3,
                           ops=[{"op": "delete", "kind": "tenant", "id": "T0001"}])  # fmt: skip
    assert deleted["version"] == 3
    assert swipe(rig, 305419896, 3)["reason"] == "unknown_card"

    # A gap: nothing changes, version_gap, and the gateway asks for a snapshot through the outbox.
    gap = platform.ask("roster/patch", from_version=7, to_version=8, ops=[tenant("T0002")])
    assert (gap["status"], gap["error"]) == ("error", "version_gap")
    wait_until(lambda: rig.sub.payloads("/events/roster_request"), 10, what="events/roster_request")
    request = rig.sub.payloads("/events/roster_request")[0]
    assert (request["gateway_id"], request["version"], request["reason"]) == (GATEWAY_ID, 3, "version_gap")
    assert isinstance(request["seq"], int) and request["seq"] > max(e["seq"] for e in rig.entries())

    # A two-chunk snapshot: applied only when both are in.
    card = {"op": "upsert", "kind": "card", "number": 4242, "tenant": "T0003"}
    first = platform.ask("roster/snapshot", version=8, snapshot_id="s-5", chunk=1, chunks=2, ops=[card])
    assert (first["status"], first["complete"]) == ("ok", False)
    assert swipe(rig, 4242, 4)["reason"] == "unknown_card"
    last = platform.ask("roster/snapshot", version=8, snapshot_id="s-5", chunk=0, chunks=2, ops=[tenant("T0003")])
    assert (last["status"], last["complete"], last["version"]) == ("ok", True, 8)
    entry = swipe(rig, 4242, 5)
    assert (entry["decision"], entry["tenant_id"]) == ("granted", "T0003")
    wait_until(lambda: rig.state().get("roster_version") == 8, 10, what="roster_version 8 in …/state")

    # The version survives a restart.
    rig.stop()
    rig.start()
    online(rig)
    assert platform.ask("roster/patch", from_version=8, to_version=9, ops=[])["version"] == 9


def test_simulate_roster_signs_a_patch_the_gateway_applies(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """`accessgw simulate roster`: the simulation's own platform key (0600 under sim/), a signed demo patch."""
    var = tmp_path / "var"
    key = platform_key(var)
    assert (sim_dir(var) / PLATFORM_KEY).stat().st_mode & 0o777 == 0o600
    assert bytes(platform_key(var)) == bytes(key)  # made once, then read
    public = simulation_config(var).sync.platform_public_key
    rig = Rig(tmp_path, mosquitto, pulse_ms=200)
    rig.config["sync"] = {"platform_public_key": public}
    try:
        rig.start()
        online(rig)
        shutil.copy(rig.write_config(), sim_dir(var) / "gateway.yaml")
        result = CliRunner().invoke(main, ["simulate", "roster", "--data-dir", str(var)])
        assert result.exit_code == 0, result.output
        assert "applied: roster version 1" in result.output
        entry = swipe(rig, ROSTER_CARD, 1)
        assert (entry["decision"], entry["tenant_id"]) == ("granted", ROSTER_TENANT)
        assert CliRunner().invoke(main, ["simulate", "roster", "--data-dir", str(var)]).exit_code == 0
        wait_until(lambda: rig.state().get("roster_version") == 2, 10, what="roster_version 2")
    finally:
        rig.close()

"""Roster changes made at the building go up to the town (DESIGN §6.1 "Up", issue 9 item 3).

A running gateway, its API and CLI, a real mosquitto and a platform-side subscriber: every change
arrives on `…/events/roster` with the tenant's whole record (templates as base64 float32, never a
photo), in order, and a change made while the broker is down arrives once it is back.
"""

from __future__ import annotations

import base64
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

from testing.faces import faces_dir_path
from testing.gateway import ROOT
from testing.peers import Mosquitto, Subscriber, wait_until
from tests.api.conftest import Api

pytestmark = pytest.mark.slow  # every test runs the daemon (the api fixture)

T = "/api/v1"
TOPIC = "accessgw/api-test/events/roster"


def photo() -> bytes:
    person = sorted((faces_dir_path() / "lfw_subset").iterdir())[3]
    return sorted(person.glob("*.jpg"))[0].read_bytes()


def events(sub: Subscriber, n: int, timeout: float = 15) -> list[dict[str, Any]]:
    wait_until(lambda: len(sub.payloads("/events/roster")) >= n, timeout, what=f"{n} roster events")
    got = sub.payloads("/events/roster")
    return sorted({e["id"]: e for e in got}.values(), key=lambda e: e["seq"])  # at least once: by id, in seq order


def cli(api: Api, *args: str) -> None:
    out = subprocess.run([sys.executable, "-m", "gateway", *args, "--config", str(api.config_path)],
                         capture_output=True, text=True, timeout=60, cwd=ROOT)  # fmt: skip
    assert out.returncode == 0, out.stderr


def test_every_local_change_leaves_with_the_whole_record(api: Api, mosquitto: Mosquitto) -> None:
    sub = Subscriber(mosquitto.port, TOPIC, client_id="town-roster")
    admin, police = api.client("admin"), api.client("police")
    assert admin.post(f"{T}/tenants", json={"id": "T1", "name": "王芳", "permit_number": "4401",
                                            "valid_to": "2030-01-01", "room": "302"}).status_code == 201  # fmt: skip
    assert admin.post(f"{T}/tenants/T1/cards", json={"number": 305419896}).status_code == 201
    assert admin.post(f"{T}/tenants/T1/faces", files=[("photos", ("a.jpg", photo(), "image/jpeg"))]).status_code == 201
    assert admin.patch(f"{T}/tenants/T1", json={"room": "303"}).status_code == 200
    assert admin.post(f"{T}/tenants/T1/suspend").status_code == 200
    assert police.put(f"{T}/tenants/T1/watchlist").status_code == 200
    assert admin.delete(f"{T}/cards/305419896").status_code == 204
    assert admin.delete(f"{T}/tenants/T1/faces").status_code == 204
    assert admin.delete(f"{T}/tenants/T1").status_code == 204
    # The CLI's changes go up the same way.
    cli(api, "tenant", "add", "--id", "T2", "--name", "Li Lei", "--permit", "4402", "--valid-to", "2031-01-01")
    cli(api, "card", "add", "--tenant", "T2", "--number", "77")
    cli(api, "tenant", "revoke", "--id", "T2")
    cli(api, "tenant", "watch", "--id", "T2", "--by", "officer-9")
    cli(api, "card", "remove", "--number", "77")

    got = events(sub, 14)
    assert [(e["change"], e["tenant_id"]) for e in got] == [
        ("tenant.create", "T1"), ("card.bind", "T1"), ("face.enrol", "T1"), ("tenant.update", "T1"),
        ("tenant.suspend", "T1"), ("watchlist.set", "T1"), ("card.unbind", "T1"), ("face.delete", "T1"),
        ("tenant.delete", "T1"), ("tenant.create", "T2"), ("card.bind", "T2"), ("tenant.revoke", "T2"),
        ("watchlist.set", "T2"), ("card.unbind", "T2")]  # fmt: skip
    assert all(e["gateway_id"] == "api-test" and e["id"] and e["ts"].endswith("Z") for e in got)
    assert [e["by"] for e in got[:2]] == ["admin", "admin"] and got[5]["by"] == "police-1"
    assert got[12]["by"] == "cli:officer-9" and got[9]["by"].startswith("cli:")
    created, enrolled, watched = got[0]["tenant"], got[2]["tenant"], got[5]["tenant"]
    assert created == {"id": "T1", "name": "王芳", "permit": "4401", "valid_from": None, "valid_to": "2030-01-01",
                       "room": "302", "status": "active", "watchlist": False, "cards": [], "templates": []}  # fmt: skip
    assert enrolled["cards"] == [305419896] and len(enrolled["templates"]) == 1
    template = enrolled["templates"][0]
    assert set(template) == {"id", "vector", "quality", "photo_sha256"}  # never the photo
    vector = np.frombuffer(base64.b64decode(template["vector"]), dtype="<f4")
    assert vector.shape == (128,) and np.isfinite(vector).all() and 0.5 < np.linalg.norm(vector) < 2
    assert len(template["photo_sha256"]) == 64 and template["id"].startswith("F")
    assert got[3]["tenant"]["room"] == "303" and got[4]["tenant"]["status"] == "suspended"
    assert watched["watchlist"] is True and watched["templates"] == enrolled["templates"]  # the same id each time
    assert got[6]["tenant"]["cards"] == [] and got[7]["tenant"]["templates"] == []
    assert got[8]["tenant"] is None  # deleted here
    assert got[11]["tenant"]["status"] == "revoked" and got[13]["tenant"]["cards"] == []
    # A refused change sends nothing.
    assert admin.post(f"{T}/tenants/T2/cards", json={"number": 2**40}).status_code == 422
    assert admin.delete(f"{T}/cards/12345").status_code == 404
    sub.close()


def test_a_local_enrolment_arrives_after_a_broker_outage(api: Api, mosquitto: Mosquitto) -> None:
    sub = Subscriber(mosquitto.port, TOPIC, client_id="town-roster")
    wait_until(lambda: api.gateway.log().count("MQTT connected") >= 1, 10, what="the gateway's uplink")
    mosquitto.stop()
    admin = api.client("admin")
    assert admin.post(f"{T}/tenants", json={"id": "T9", "name": "Offline", "permit_number": "4409",
                                            "valid_to": "2030-01-01"}).status_code == 201  # fmt: skip
    assert admin.post(f"{T}/tenants/T9/cards", json={"number": 99}).status_code == 201
    assert admin.post(f"{T}/tenants/T9/faces", files=[("photos", ("a.jpg", photo(), "image/jpeg"))]).status_code == 201
    mosquitto.start()
    got = events(sub, 3, timeout=30)
    assert [e["change"] for e in got] == ["tenant.create", "card.bind", "face.enrol"]
    assert got[-1]["tenant"]["cards"] == [99] and len(got[-1]["tenant"]["templates"]) == 1
    sub.close()

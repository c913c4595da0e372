"""The town watch list on a live camera (DESIGN §6.1, issue 9 item 4): a person of interest pushed by a signed
patch joins the face index of every camera; seen on a real RTSP stream of a real photo, they raise
`watchlist_hit` with the watch entry's id, at a face-mode door, and the door stays shut."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest
from nacl.signing import SigningKey

from recognition.quality import assess_photo
from testing.media.rtsp_fixture import RtspCamera
from testing.peers import wait_until
from tests.gateway.rig import Rig
from tests.gateway.test_face_e2e import ALICE, WATCHED, enrol_face, photos
from tests.gateway.test_roster_e2e import Platform
from tests.gateway.test_signed_requests import online

pytestmark = pytest.mark.slow  # the daemon, an RTSP camera and dlib


@pytest.fixture
def cams() -> Iterator[tuple[RtspCamera, RtspCamera]]:
    door_cam, hall_cam = RtspCamera(None, fps=10), RtspCamera(None, fps=10)
    try:
        yield door_cam, hall_cam
    finally:
        door_cam.close()
        hall_cam.close()


@pytest.fixture
def rig(signed_rig: Rig, cams: tuple[RtspCamera, RtspCamera]) -> Rig:
    door_cam, hall_cam = cams
    signed_rig.config["recognition"] = {"min_frames": 2, "track_gap_s": 1.0, "workers": 2}
    signed_rig.config["cameras"] = [
        {"id": "c-door", "rtsp_url": door_cam.url, "door": "main", "fps": 5, "role": "entry", "stranger_after_s": 60},
        {"id": "c-hall", "rtsp_url": hall_cam.url, "fps": 5, "role": "watch"},
    ]
    signed_rig.config["doors"][0] |= {"mode": "face"}  # the mode that opens on a face alone
    return signed_rig


def vector_of(photo: Path) -> str:
    verdict = assess_photo(photo.read_bytes())
    assert verdict.ok and verdict.encoding is not None, verdict
    return base64.b64encode(np.asarray(verdict.encoding, dtype="<f4").tobytes()).decode("ascii")


def pulses(rig: Rig, since: float) -> list[tuple[float, int, bool]]:
    return [w for w in rig.board.write_history() if w[0] >= since and w[2]]


def test_a_watch_list_face_raises_watchlist_hit_and_opens_nothing(
    rig: Rig, keys: tuple[SigningKey, str], cams: tuple[RtspCamera, RtspCamera]
) -> None:
    door_cam, hall_cam = cams
    rig.enrol("alice", 1111, valid_to=date.today() + timedelta(days=30))
    rig.start()
    online(rig)
    enrol_face(rig, "alice", ALICE)
    platform = Platform(rig, keys[0])
    # Three enrolment photos of the person of interest; the cameras show a fourth (PROBE), never enrolled.
    watch = {"op": "upsert", "kind": "watch", "id": "W3", "name": "Person of interest", "note": "case 2026-118",
             "vectors": [vector_of(p) for p in photos(WATCHED)[:3]]}  # fmt: skip
    assert platform.ask("roster/patch", from_version=0, to_version=1, ops=[watch])["status"] == "ok"
    wait_until(lambda: "3 of 1 watch-list entries" in rig.log(), 10, 0.05, "the watch list in the face index")

    shown = time.monotonic()
    door_cam.switch(photos(WATCHED)[5])
    hit = wait_until(lambda: next((a for a in rig.alerts() if a["kind"] == "watchlist_hit"), None), 20,
                     what=f"watchlist_hit\n{rig.log()[-3000:]}")  # fmt: skip
    assert (hit["camera"], hit["door"], hit["severity"], hit["state"]) == ("c-door", "main", "critical", "raised")
    assert hit["details"]["watch_id"] == "W3" and 0 <= hit["details"]["distance"] <= 0.45
    assert hit["tenant_id"] is None  # a person of interest is no tenant
    time.sleep(2.0)  # the point: the face stays in front of a face-mode door and nothing opens
    assert not [e for e in rig.entries() if e["decision"] == "granted"]
    assert not pulses(rig, shown)
    assert len([a for a in rig.alerts() if a["kind"] == "watchlist_hit"]) == 1  # one per track

    # Every camera, door or not.
    door_cam.switch(None)
    hall_cam.switch(photos(WATCHED)[5])
    wait_until(lambda: [a for a in rig.alerts() if a["kind"] == "watchlist_hit" and a["camera"] == "c-hall"], 20,
               what="watchlist_hit on the hall camera")  # fmt: skip

    # A tenant at the same door still opens it and raises no watch-list alert.
    hall_cam.switch(None)
    door_cam.switch(photos(ALICE)[6])
    entry = wait_until(lambda: next((e for e in rig.entries() if e["decision"] == "granted"), None), 20,
                       what="alice's entry")  # fmt: skip
    assert entry["tenant_id"] == "alice"
    assert len([a for a in rig.alerts() if a["kind"] == "watchlist_hit"]) == 2

    # Taken off the town's list by patch: the face index forgets the entry.
    assert platform.ask("roster/patch", from_version=1, to_version=2,
                        ops=[{"op": "delete", "kind": "watch", "id": "W3"}])["status"] == "ok"  # fmt: skip
    wait_until(lambda: "0 of 0 watch-list entries" in rig.log(), 10, 0.05, "the watch list emptied")

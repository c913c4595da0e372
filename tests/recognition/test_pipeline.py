"""FacePipeline end to end: real frames through real worker processes (spawned), FaceSeen out."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import numpy as np
import pytest

from config.models import RecognitionConfig
from drivers.events import FaceSeen
from recognition.index import TemplateIndex
from recognition.pipeline import FacePipeline
from recognition.quality import assess_photo
from testing.faces import lfw_photo, on_canvas
from testing.peers import wait_until
from tests.drivers.support import Events

# accept_at 0: no match is clear here, so every confirmation waits for min_frames (clear matches: test_tracker).
CFG = RecognitionConfig(track_gap_s=0.5, accept_at=0.0)


@pytest.fixture(scope="module")
def index() -> TemplateIndex:
    idx = TemplateIndex()
    for tenant, person in (("kofi", "Kofi_Annan"), ("tom", "Tom_Ridge")):
        idx.add(tenant, [assess_photo(lfw_photo(person, n).read_bytes()).encoding for n in (1, 2, 3)])
    return idx


@pytest.fixture(scope="module")
def events() -> Events:
    return Events()


@pytest.fixture(scope="module")
def pipeline(index, events) -> Iterator[FacePipeline]:
    with FacePipeline(CFG, index, events) as p:
        yield p


def frame_of(person: str, number: int) -> np.ndarray:
    return on_canvas(lfw_photo(person, number), size=400)  # face ~170 px, as the RTSP test camera shows it


def feed_and_wait(p: FacePipeline, events: Events, camera: str, frame: np.ndarray) -> FaceSeen:
    ts, mono = datetime.now(UTC), time.monotonic()
    p.feed(camera, frame, ts, mono)
    return events.wait(lambda e: e.camera == camera and e.frame_mono == mono, timeout=10)


def of_camera(events: Events, camera: str) -> list[FaceSeen]:
    return [e for e in events.of(FaceSeen) if e.camera == camera]


def test_an_enrolled_tenant_is_confirmed_after_min_frames(pipeline, events) -> None:
    frames = [frame_of("Kofi_Annan", n) for n in (4, 5, 6)]
    seen = [feed_and_wait(pipeline, events, "door", f) for f in frames]
    assert [(e.track_id, e.tenant_id, e.confirmed) for e in seen] == [
        (1, None, False),
        (1, "kofi", True),
        (1, "kofi", True),
    ]
    last = seen[-1]
    assert 0 < last.distance <= CFG.threshold and last.track_age_s > 0
    assert last.frame is frames[-1] and last.frame_ts.tzinfo is UTC
    top, right, bottom, left = last.box
    assert 0 <= left < right <= 640 and 0 <= top < bottom <= 480 and right - left > 120  # full-frame pixels


def test_a_stranger_stays_unknown(pipeline, events) -> None:
    seen = [feed_and_wait(pipeline, events, "lobby", frame_of("Serena_Williams", n)) for n in (1, 2, 3)]
    assert {(e.track_id, e.tenant_id, e.confirmed, e.distance) for e in seen} == {(1, None, False, None)}


def test_revocation_applies_to_the_next_track(pipeline, events, index) -> None:
    index.add("tom-revoked", [assess_photo(lfw_photo("Tom_Ridge", 4).read_bytes()).encoding])
    index.remove("tom")
    try:
        seen = [feed_and_wait(pipeline, events, "side", frame_of("Tom_Ridge", n)) for n in (5, 6)]
        assert seen[-1].tenant_id == "tom-revoked"
        index.remove("tom-revoked")
        time.sleep(CFG.track_gap_s + 0.1)  # the point: no frame for track_gap_s ends the track
        seen = [feed_and_wait(pipeline, events, "side", frame_of("Tom_Ridge", n)) for n in (5, 6)]
        assert [(e.track_id, e.confirmed) for e in seen] == [(2, False), (2, False)]
    finally:
        index.add("tom", [assess_photo(lfw_photo("Tom_Ridge", n).read_bytes()).encoding for n in (1, 2, 3)])


def test_only_the_newest_frame_waits_and_order_is_kept(pipeline, events) -> None:
    before = pipeline.stats()
    frames = [frame_of("Kofi_Annan", 7), frame_of("Tom_Ridge", 7)]
    for i in range(40):  # far faster than two workers analyse
        pipeline.feed("busy", frames[i % 2], datetime.now(UTC), time.monotonic())

    def settled() -> bool:
        now = pipeline.stats()
        return now.frames_analysed + now.frames_dropped >= before.frames_analysed + before.frames_dropped + 40

    wait_until(settled, timeout=15, what="every frame analysed or dropped")
    after = pipeline.stats()
    assert after.frames_fed - before.frames_fed == 40
    assert after.frames_dropped - before.frames_dropped >= 20
    monos = [e.frame_mono for e in of_camera(events, "busy")]
    assert monos and monos == sorted(monos)  # results of one camera never overtake each other
    assert after.timings["encode"].count >= after.frames_analysed - 1 and after.timings["encode"].mean_s > 0.01


def test_cameras_are_served_round_robin(pipeline, events) -> None:
    frame = frame_of("Kofi_Annan", 8)
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:  # both cameras flood at once
        for camera in ("rr-a", "rr-b"):
            pipeline.feed(camera, frame, datetime.now(UTC), time.monotonic())
        time.sleep(0.005)  # pacing: a frame per camera every ~5 ms, far faster than the workers
    wait_until(lambda: pipeline.stats().frames_analysed > 0 and len(of_camera(events, "rr-b")) > 0, timeout=5)
    a, b = len(of_camera(events, "rr-a")), len(of_camera(events, "rr-b"))
    assert a >= 3 and b >= 3 and abs(a - b) <= 2, (a, b)


def test_a_dead_worker_and_a_failing_consumer_do_not_stop_it(index) -> None:
    events = Events()
    calls = {"n": 0}

    def emit(event: FaceSeen) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("consumer bug")
        events(event)

    frame = frame_of("Kofi_Annan", 9)
    with FacePipeline(CFG, index, emit) as p:
        p.feed("c", frame, datetime.now(UTC), time.monotonic())
        wait_until(lambda: calls["n"] >= 1, timeout=10, what="the first (failing) emit")
        old = p.worker_pids()
        assert len(old) == CFG.workers
        os.kill(old[0], signal.SIGKILL)

        def recovered() -> bool:
            p.feed("c", frame, datetime.now(UTC), time.monotonic())
            return bool(events.of(FaceSeen))

        wait_until(recovered, timeout=30, interval=0.05, what="a FaceSeen after the worker was killed")
        assert p.stats().pool_restarts >= 1
        assert set(p.worker_pids()).isdisjoint(old)
    assert p.worker_pids() == []
    p.feed("c", frame, datetime.now(UTC), time.monotonic())  # after stop: ignored, counted as dropped

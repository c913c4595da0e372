"""FaceTracks: what each face track has already caused (pure bookkeeping, no I/O)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from drivers.events import FaceSeen
from gateway.face_tracks import FaceTracks, Triggers

NOTHING = Triggers()
IDENTIFIED = Triggers(identified=True)
STRANGER = Triggers(stranger=True)


def seen(
    mono: float,
    *,
    camera: str = "c1",
    track: int = 1,
    tenant: str | None = None,
    confirmed: bool = False,
    age: float = 0.0,
) -> FaceSeen:
    return FaceSeen(camera, track, tenant, confirmed, 0.3 if tenant else None, age, (10, 110, 110, 10),
                    datetime.now(UTC), mono)  # fmt: skip


def entry(tracks: FaceTracks, face: FaceSeen, stranger_after_s: float = 3.0) -> Triggers:
    return tracks.observe(face, entry_camera=True, stranger_after_s=stranger_after_s)


def test_a_track_is_identified_once_when_confirmed() -> None:
    t = FaceTracks(forget_after_s=30)
    assert entry(t, seen(0.0, tenant="alice", confirmed=False)) == NOTHING  # a match, not yet confirmed
    assert entry(t, seen(0.1, tenant="alice", confirmed=True)) == IDENTIFIED
    assert entry(t, seen(0.2, tenant="alice", confirmed=True)) == NOTHING  # one decision per track
    assert entry(t, seen(0.3, tenant="alice", confirmed=True, age=60)) == NOTHING


def test_confirmed_without_a_tenant_identifies_nobody() -> None:
    t = FaceTracks(forget_after_s=30)
    assert entry(t, seen(0.0, tenant=None, confirmed=True)) == NOTHING
    assert not t.tracks[("c1", 1)].identified


def test_a_stranger_is_reported_once_from_stranger_after_s_on() -> None:
    t = FaceTracks(forget_after_s=30)
    assert entry(t, seen(0.0, age=0.0)) == NOTHING
    assert entry(t, seen(2.9, age=2.999)) == NOTHING
    assert entry(t, seen(3.0, age=3.0)) == STRANGER  # exactly stranger_after_s
    assert entry(t, seen(4.0, age=4.0)) == NOTHING  # one alert per track
    assert entry(t, seen(5.0, track=2, age=3.5)) == STRANGER  # another track, another alert


def test_stranger_after_zero_reports_the_first_frame() -> None:
    t = FaceTracks(forget_after_s=30)
    assert entry(t, seen(0.0, age=0.0), stranger_after_s=0) == STRANGER


def test_a_watch_camera_reports_no_stranger() -> None:
    t = FaceTracks(forget_after_s=30)
    got = t.observe(seen(0.0, age=100.0), entry_camera=False, stranger_after_s=3)
    assert got == NOTHING
    assert t.observe(seen(1.0, tenant="bob", confirmed=True), entry_camera=False, stranger_after_s=3) == IDENTIFIED


def test_an_identified_track_is_never_a_stranger() -> None:
    t = FaceTracks(forget_after_s=30)
    assert entry(t, seen(0.0, tenant="alice", confirmed=True)) == IDENTIFIED
    # The tracker may lose the identity for a frame; the track was already someone.
    assert entry(t, seen(5.0, tenant=None, age=5.0)) == NOTHING


def test_a_tenant_match_that_is_not_yet_confirmed_is_no_stranger() -> None:
    t = FaceTracks(forget_after_s=30)
    assert entry(t, seen(5.0, tenant="alice", confirmed=False, age=5.0)) == NOTHING


def test_a_stranger_later_confirmed_is_also_identified() -> None:
    t = FaceTracks(forget_after_s=30)
    assert entry(t, seen(3.0, age=3.0)) == STRANGER
    assert entry(t, seen(4.0, tenant="alice", confirmed=True, age=4.0)) == IDENTIFIED


def test_tracks_are_per_camera() -> None:
    t = FaceTracks(forget_after_s=30)
    assert entry(t, seen(0.0, camera="c1", track=7, tenant="alice", confirmed=True)) == IDENTIFIED
    assert entry(t, seen(0.0, camera="c2", track=7, tenant="alice", confirmed=True)) == IDENTIFIED
    assert set(t.tracks) == {("c1", 7), ("c2", 7)}


def test_a_track_unseen_for_longer_than_forget_after_s_is_forgotten() -> None:
    t = FaceTracks(forget_after_s=10)
    entry(t, seen(0.0, track=1, tenant="alice", confirmed=True))
    entry(t, seen(10.0, track=2))  # exactly forget_after_s later: track 1 is kept
    assert ("c1", 1) in t.tracks
    entry(t, seen(10.001, track=2))  # a moment more: gone
    assert ("c1", 1) not in t.tracks and ("c1", 2) in t.tracks
    # Seen again after being forgotten, it starts over (the gateway's tracker never reuses an id).
    assert entry(t, seen(10.5, track=1, tenant="alice", confirmed=True)) == IDENTIFIED


def test_an_older_frame_does_not_move_a_track_back_in_time() -> None:
    t = FaceTracks(forget_after_s=10)
    entry(t, seen(20.0, track=1))
    entry(t, seen(15.0, track=1))  # a frame that arrives late
    assert t.tracks[("c1", 1)].last_mono == 20.0
    entry(t, seen(29.0, track=2))
    assert ("c1", 1) in t.tracks  # 9 s after its newest frame


def test_the_observed_track_itself_is_never_forgotten() -> None:
    t = FaceTracks(forget_after_s=1)
    assert entry(t, seen(0.0, age=0.0)) == NOTHING
    assert entry(t, seen(100.0, age=100.0)) == STRANGER  # long gap, same track: its memo is refreshed first
    assert list(t.tracks) == [("c1", 1)]


def test_a_watch_list_match_is_reported_once_per_track_on_any_camera() -> None:
    t = FaceTracks(forget_after_s=30)
    hit = Triggers(watch_hit=True)
    face = seen(0.0)
    assert t.observe(face, entry_camera=False, stranger_after_s=3) == NOTHING
    watched = replace(face, frame_mono=0.1, watch_id="W3", watch_distance=0.3)
    assert t.observe(watched, entry_camera=False, stranger_after_s=3) == hit  # a watch camera too
    assert t.observe(watched, entry_camera=False, stranger_after_s=3) == NOTHING
    other = replace(watched, track_id=2)
    assert entry(t, other) == hit

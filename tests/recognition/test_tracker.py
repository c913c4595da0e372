"""FaceTracker: association, track ends, confirmation by the mean template (real templates)."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest

from recognition.decision import Match, MatchRule
from recognition.index import TemplateIndex
from recognition.quality import assess_photo
from recognition.tracker import FaceTracker, Observation
from testing.faces import lfw_photo

BOX = (100, 300, 300, 100)  # top, right, bottom, left: a 200 px face


@pytest.fixture(scope="module")
def enc() -> dict[str, list[np.ndarray]]:
    """Photos 1-2 enrol; 3-5 are what the camera sees."""
    out = {}
    for person in ("Kofi_Annan", "Tom_Ridge", "Serena_Williams"):
        verdicts = [assess_photo(lfw_photo(person, n).read_bytes()) for n in (1, 2, 3, 4, 5)]
        assert all(v.ok for v in verdicts), [v.detail for v in verdicts]
        out[person] = [v.encoding for v in verdicts]
    return out


@pytest.fixture(scope="module")
def index(enc) -> TemplateIndex:
    idx = TemplateIndex()
    idx.add("kofi", enc["Kofi_Annan"][:2])
    idx.add("tom", enc["Tom_Ridge"][:2])  # Serena is not enrolled: a stranger
    return idx


def tracker(index: TemplateIndex, min_frames: int = 2, gap: float = 2.0) -> FaceTracker:
    return FaceTracker(gap, min_frames, partial(index.match, threshold=0.5))


def shifted(box: tuple[int, int, int, int], dx: int, dy: int = 0) -> tuple[int, int, int, int]:
    return box[0] + dy, box[1] + dx, box[2] + dy, box[3] + dx


def test_confirmed_after_min_frames_with_the_right_tenant(enc, index) -> None:
    t = tracker(index)
    (u1,) = t.update(10.0, [Observation(BOX, enc["Kofi_Annan"][2])])
    assert (u1.track_id, u1.tenant_id, u1.confirmed, u1.distance, u1.track_age_s) == (1, None, False, None, 0.0)
    (u2,) = t.update(10.1, [(shifted(BOX, 5), enc["Kofi_Annan"][3], None, None)])  # plain tuples work too
    assert (u2.track_id, u2.tenant_id, u2.confirmed) == (1, "kofi", True)
    assert 0 < u2.distance <= 0.5 and u2.track_age_s == pytest.approx(0.1)
    assert u2.box == shifted(BOX, 5)


def test_min_frames_three_needs_three(enc, index) -> None:
    t = tracker(index, min_frames=3)
    updates = [t.update(1.0 + i / 10, [Observation(BOX, enc["Tom_Ridge"][2 + i])])[0] for i in range(3)]
    assert [u.confirmed for u in updates] == [False, False, True]
    assert updates[-1].tenant_id == "tom"


def test_a_stranger_stays_unknown(enc, index) -> None:
    t = tracker(index)
    for i in range(3):
        (u,) = t.update(i / 10, [Observation(BOX, enc["Serena_Williams"][i])])
        assert (u.track_id, u.tenant_id, u.confirmed, u.distance) == (1, None, False, None)


def test_a_confirmed_track_keeps_its_identity(enc) -> None:
    idx = TemplateIndex()
    idx.add("kofi", enc["Kofi_Annan"][:2])
    t = tracker(idx)
    t.update(0.0, [Observation(BOX, enc["Kofi_Annan"][2])])
    assert t.update(0.1, [Observation(BOX, enc["Kofi_Annan"][3])])[0].tenant_id == "kofi"
    idx.remove("kofi")  # the index no longer knows him: the track still does (the gateway checks the roster)
    (u,) = t.update(0.2, [Observation(BOX, enc["Kofi_Annan"][4])])
    assert (u.tenant_id, u.confirmed) == ("kofi", True)


def test_association_by_overlap_then_by_centre(enc, index) -> None:
    t = tracker(index)
    e = enc["Kofi_Annan"]
    assert t.update(0.0, [Observation(BOX, e[2])])[0].track_id == 1
    assert t.update(0.1, [Observation(shifted(BOX, 40), e[3])])[0].track_id == 1  # IoU 0.67
    # Moved 100 px right and 50 down (IoU 0.23 < 0.3), but the centre is 112 px away, within 0.75 of the
    # 200 px face width: the same person moving fast.
    assert t.update(0.2, [Observation(shifted(BOX, 140, 50), e[4])])[0].track_id == 1
    # 300 px away: another track.
    assert t.update(0.3, [Observation(shifted(BOX, 430), e[2])])[0].track_id == 2


def test_a_track_ends_after_the_gap(enc, index) -> None:
    t = tracker(index, gap=2.0)
    e = enc["Tom_Ridge"]
    assert t.update(0.0, [Observation(BOX, e[2])])[0].track_id == 1
    assert t.update(1.9, [Observation(BOX, e[3])])[0].track_id == 1  # 1.9 s unseen: same track
    assert t.update(2.5, []) == []
    (u,) = t.update(4.0, [Observation(BOX, e[4])])  # 2.1 s unseen: the track ended
    assert (u.track_id, u.confirmed, u.track_age_s) == (2, False, 0.0)
    assert t.live_tracks == 1


def test_two_faces_keep_their_tracks_whatever_the_order(enc, index) -> None:
    t = tracker(index)
    left, right = BOX, shifted(BOX, 300)
    a = t.update(0.0, [Observation(left, enc["Kofi_Annan"][2]), Observation(right, enc["Tom_Ridge"][2])])
    b = t.update(0.1, [Observation(right, enc["Tom_Ridge"][3]), Observation(left, enc["Kofi_Annan"][3])])
    assert [u.track_id for u in a] == [1, 2] and [u.track_id for u in b] == [2, 1]
    assert [(u.tenant_id, u.confirmed) for u in b] == [("tom", True), ("kofi", True)]


def test_someone_else_at_the_same_spot_does_not_inherit_the_identity(enc, index) -> None:
    t = tracker(index)
    t.update(0.0, [Observation(BOX, enc["Kofi_Annan"][2])])
    assert t.update(0.1, [Observation(BOX, enc["Kofi_Annan"][3])])[0].confirmed
    (u,) = t.update(0.2, [Observation(BOX, enc["Serena_Williams"][2])])  # steps in within the gap
    assert (u.track_id, u.tenant_id, u.confirmed) == (2, None, False)


def test_without_a_match_function_each_frame_votes(enc) -> None:
    t = FaceTracker(2.0, 2)
    e = enc["Tom_Ridge"]
    assert not t.update(0.0, [Observation(BOX, e[2], "tom", 0.41)])[0].confirmed
    assert not t.update(0.1, [Observation(BOX, e[3], None, None)])[0].confirmed
    (u,) = t.update(0.2, [Observation(BOX, e[4], "tom", 0.38)])
    assert (u.tenant_id, u.confirmed, u.distance) == ("tom", True, 0.38)


def test_the_watch_list_is_a_separate_question_asked_after_watch_min_frames(enc, index) -> None:
    watch = TemplateIndex()
    watch.add("W3", enc["Serena_Williams"][:2])  # a person of interest, not a tenant
    asked: list[int] = []

    def match_watch(probe: np.ndarray) -> Match:  # as the pipeline asks: recognition.decision.Match
        asked.append(1)
        return watch.judge(probe, MatchRule(0.45))

    t = FaceTracker(2.0, 2, partial(index.match, threshold=0.5), watch=match_watch, watch_min_frames=3)
    seen = [t.update(10.0 + i / 10, [Observation(shifted(BOX, i), enc["Serena_Williams"][2 + i])])[0]
            for i in range(3)]  # fmt: skip
    assert [u.watch_id for u in seen] == [None, None, "W3"] and len(asked) == 1  # from the 3rd frame on
    assert all(u.tenant_id is None and not u.confirmed for u in seen)  # a watched face is no tenant
    assert 0 <= (seen[2].watch_distance or -1) <= 0.45
    more = t.update(10.4, [Observation(shifted(BOX, 4), enc["Serena_Williams"][4])])[0]
    assert more.watch_id == "W3" and len(asked) == 1  # kept, not asked again
    # A tenant's track is asked too, and keeps its identity whatever the watch list says.
    t2 = FaceTracker(2.0, 2, partial(index.match, threshold=0.5), watch=match_watch, watch_min_frames=2)
    kofi = [t2.update(20.0 + i / 10, [Observation(BOX, enc["Kofi_Annan"][2 + i])])[0] for i in range(3)]
    assert [u.tenant_id for u in kofi] == [None, "kofi", "kofi"] and all(u.watch_id is None for u in kofi)

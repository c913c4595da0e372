"""Per-camera face tracks: one person in front of a camera is one track (DESIGN.md §5).

A track averages the templates of its faces and matches that mean against the index: the
mean of several frames of a moving person is closer to their true template than any single frame.
The identity is confirmed when the mean of at least `min_frames` frames matches an identity the index
accepts (recognition.decision), or at once when the match is clear, and never changes after.
Without a match function, each observation's own match is a vote and `min_frames` votes confirm.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from recognition.faces import Box

# template -> (identity if acceptable | None, distance[, clear]): recognition.decision.Match, or a plain pair
MatchFn = Callable[[np.ndarray], tuple[Any, ...]]

MIN_IOU = 0.3  # overlap that makes a face the same track without further checks
# Otherwise centres closer than this fraction of the track's face width: a face moving fast, or across
# frames dropped under load, overlaps little but has not gone far. The appearance check below guards it.
CENTRE_FRACTION = 0.75
# A face this far (dlib distance) from a track's mean template is another person, even at the same spot:
# it keeps someone stepping into the place of a confirmed tenant from inheriting that identity.
# 0.6 is dlib's own same-person tolerance; frames of one person in one track are typically < 0.3 apart.
MAX_APPEARANCE_DISTANCE = 0.6


class Observation(NamedTuple):
    box: Box
    encoding: np.ndarray
    tenant_id: str | None = None  # this frame's own match, used when the tracker has no match function
    distance: float | None = None


@dataclass(frozen=True, slots=True)
class TrackUpdate:
    track_id: int
    tenant_id: str | None  # the confirmed identity, else None
    confirmed: bool
    distance: float | None  # the track's distance to tenant_id as of this frame; None when not confirmed
    track_age_s: float
    box: Box
    watch_id: str | None = None  # the watch-list entry this track matched (once set, kept)
    watch_distance: float | None = None


@dataclass(slots=True)
class _Track:
    track_id: int
    first_mono: float
    last_mono: float
    box: Box
    encoding_sum: np.ndarray
    frames: int = 1
    votes: Counter[str] = field(default_factory=Counter)
    tenant_id: str | None = None  # set once confirmed
    distance: float | None = None  # latest distance to tenant_id
    watch_id: str | None = None  # set once the mean matches a watch-list entry
    watch_distance: float | None = None

    @property
    def mean(self) -> np.ndarray:
        return self.encoding_sum / self.frames


class FaceTracker:
    def __init__(
        self,
        track_gap_s: float,
        min_frames: int,
        match: MatchFn | None = None,
        *,
        max_appearance_distance: float = MAX_APPEARANCE_DISTANCE,
        watch: MatchFn | None = None,
        watch_min_frames: int = 3,
    ) -> None:
        self.track_gap_s = track_gap_s
        self.min_frames = min_frames
        self.match = match
        # The watch list is a second, independent question about the same track: it never changes
        # the track's tenant identity (a watched face is no key to any door).
        self.watch = watch
        self.watch_min_frames = watch_min_frames
        self.max_appearance_distance = max_appearance_distance
        self._tracks: list[_Track] = []
        self._next_id = 1

    @property
    def live_tracks(self) -> int:
        return len(self._tracks)

    def update(self, frame_mono: float, observations: list[Observation]) -> list[TrackUpdate]:
        """Feed one analysed frame (frames in capture order); one TrackUpdate per observation, same order."""
        self._tracks = [t for t in self._tracks if frame_mono - t.last_mono <= self.track_gap_s]
        obs = [Observation(*o) for o in observations]
        assigned = self._associate(obs)
        updates = []
        for i, o in enumerate(obs):
            track = assigned.get(i) or self._new_track(frame_mono, o)
            if i in assigned:
                track.encoding_sum += o.encoding
                track.frames += 1
                track.box, track.last_mono = o.box, frame_mono
            self._decide(track, o)
            self._check_watch(track)
            updates.append(self._update_of(track, frame_mono))
        return updates

    # -- association ---------------------------------------------------------------------------
    def _associate(self, obs: list[Observation]) -> dict[int, _Track]:
        """Greedy: best IoU pairs first, then nearest centres for what is left."""
        pairs = []
        for i, o in enumerate(obs):
            for t in self._tracks:
                if self._same_person(t, o):
                    iou = box_iou(t.box, o.box)
                    if iou >= MIN_IOU:
                        pairs.append((0, -iou, i, t))
                    else:
                        gap = centre_distance(t.box, o.box)
                        if gap <= CENTRE_FRACTION * (t.box[1] - t.box[3]):
                            pairs.append((1, gap, i, t))
        assigned: dict[int, _Track] = {}
        taken: set[int] = set()
        for _, _, i, t in sorted(pairs, key=lambda p: (p[0], p[1])):
            if i not in assigned and t.track_id not in taken:
                assigned[i] = t
                taken.add(t.track_id)
        return assigned

    def _same_person(self, track: _Track, o: Observation) -> bool:
        return float(np.linalg.norm(track.mean - o.encoding)) <= self.max_appearance_distance

    def _new_track(self, mono: float, o: Observation) -> _Track:
        track = _Track(self._next_id, mono, mono, o.box, np.array(o.encoding, dtype=np.float64))
        self._next_id += 1
        self._tracks.append(track)
        return track

    # -- identity ------------------------------------------------------------------------------
    def _decide(self, track: _Track, o: Observation) -> None:
        clear = False
        if self.match is not None:
            result = self.match(track.mean.astype(np.float32))
            best, distance = result[0], result[1]
            clear = len(result) > 2 and bool(result[2])  # a clear match needs no more frames
            evidence = track.frames  # the mean stands for every frame averaged into it
        else:
            best, distance = o.tenant_id, o.distance
            if best is None:
                return
            track.votes[best] += 1
            evidence = track.votes[best]
        if best is None:
            return
        if track.tenant_id is None and (evidence >= self.min_frames or clear):
            track.tenant_id = best
        if best == track.tenant_id:
            track.distance = distance

    def _check_watch(self, track: _Track) -> None:
        if self.watch is None or track.watch_id is not None or track.frames < self.watch_min_frames:
            return
        result = self.watch(track.mean.astype(np.float32))
        watch_id, distance = result[0], result[1]
        if watch_id is not None:
            track.watch_id, track.watch_distance = watch_id, distance

    @staticmethod
    def _update_of(track: _Track, mono: float) -> TrackUpdate:
        confirmed = track.tenant_id is not None
        return TrackUpdate(track.track_id, track.tenant_id, confirmed, track.distance, mono - track.first_mono,
                           track.box, track.watch_id, track.watch_distance)  # fmt: skip


def box_iou(a: Box, b: Box) -> float:
    top, right, bottom, left = max(a[0], b[0]), min(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3])
    inter = max(0, right - left) * max(0, bottom - top)
    union = _area(a) + _area(b) - inter
    return inter / union if union > 0 else 0.0


def centre_distance(a: Box, b: Box) -> float:
    return float(np.hypot((a[1] + a[3] - b[1] - b[3]) / 2, (a[0] + a[2] - b[0] - b[2]) / 2))


def _area(box: Box) -> int:
    return max(0, box[1] - box[3]) * max(0, box[2] - box[0])

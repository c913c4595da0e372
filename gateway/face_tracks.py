"""What each face track has already caused: one decision per door, one alert per kind.

Pure bookkeeping over `FaceSeen` events (no I/O). The gateway asks what a
new observation should trigger and acts on the answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from drivers.events import FaceSeen


@dataclass
class TrackMemo:
    last_mono: float
    identified: bool = False
    stranger_alerted: bool = False
    watch_alerted: bool = False


@dataclass(frozen=True, slots=True)
class Triggers:
    identified: bool = False  # the track was confirmed as a tenant just now
    stranger: bool = False  # an unknown face has lingered stranger_after_s on an entry camera
    watch_hit: bool = False  # the track matched a town watch-list entry just now (any camera)


@dataclass
class FaceTracks:
    forget_after_s: float
    tracks: dict[tuple[str, int], TrackMemo] = field(default_factory=dict)

    def observe(self, face: FaceSeen, *, entry_camera: bool, stranger_after_s: float) -> Triggers:
        key = (face.camera, face.track_id)
        memo = self.tracks.get(key)
        if memo is None:
            memo = self.tracks[key] = TrackMemo(face.frame_mono)
        memo.last_mono = max(memo.last_mono, face.frame_mono)
        identified = face.confirmed and face.tenant_id is not None and not memo.identified
        if identified:
            memo.identified = True
        stranger = (
            entry_camera
            and not memo.identified
            and not memo.stranger_alerted
            and face.tenant_id is None
            and face.track_age_s >= stranger_after_s
        )
        if stranger:
            memo.stranger_alerted = True
        watch_hit = face.watch_id is not None and not memo.watch_alerted
        if watch_hit:
            memo.watch_alerted = True
        self._forget(face.frame_mono)
        return Triggers(identified, stranger, watch_hit)

    def _forget(self, now_mono: float) -> None:
        stale = [k for k, m in self.tracks.items() if now_mono - m.last_mono > self.forget_after_s]
        for key in stale:
            del self.tracks[key]

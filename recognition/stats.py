"""Counters and per-stage timings of the face pipeline, read by health and metrics."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class StageTiming:
    count: int = 0
    total_s: float = 0.0
    max_s: float = 0.0

    @property
    def mean_s(self) -> float:
        return self.total_s / self.count if self.count else 0.0

    def add(self, seconds: float) -> StageTiming:
        return StageTiming(self.count + 1, self.total_s + seconds, max(self.max_s, seconds))


STAGES = ("queue", "detect", "encode", "round_trip", "match_track")
# queue: feed -> submitted to a worker; detect / encode: inside the worker; round_trip: submitted -> result
# back in this process (worker time plus pickling); match_track: index match, tracking and emit.


@dataclass(frozen=True, slots=True)
class PipelineStats:
    frames_fed: int = 0
    frames_analysed: int = 0
    frames_dropped: int = 0  # replaced by a newer frame of the same camera before a worker was free
    faces_seen: int = 0
    errors: int = 0  # frames whose analysis raised
    pool_restarts: int = 0
    timings: dict[str, StageTiming] = field(default_factory=lambda: {s: StageTiming() for s in STAGES})


class StatsRecorder:
    """Thread-safe accumulation; snapshot() returns an immutable copy."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = {"frames_fed": 0, "frames_analysed": 0, "frames_dropped": 0, "faces_seen": 0}
        self._counts |= {"errors": 0, "pool_restarts": 0}
        self._timings = {s: StageTiming() for s in STAGES}

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

    def time(self, stage: str, seconds: float) -> None:
        with self._lock:
            self._timings[stage] = self._timings[stage].add(seconds)

    def snapshot(self) -> PipelineStats:
        with self._lock:
            return PipelineStats(**self._counts, timings=dict(self._timings))

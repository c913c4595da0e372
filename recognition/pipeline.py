"""Camera frames in, FaceSeen events out: detection and encoding in a process pool, matching and tracking here.

Threads:
- any capture thread calls feed(): it only replaces the camera's pending frame (newest wins) and returns;
- the dispatcher hands pending frames to the pool, round-robin between cameras, at most `workers` in flight;
- the result thread takes each camera's results in submission order, matches, tracks and calls emit().
emit() runs on the result thread: it must hand the event over (e.g. loop.call_soon_threadsafe), not block.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from config.models import RecognitionConfig
from drivers.events import FaceSeen
from recognition.faces import FrameAnalysis, analyse_frame_timed, warm_up
from recognition.index import TemplateIndex
from recognition.matcher import Matcher
from recognition.stats import PipelineStats, StatsRecorder
from recognition.tracker import FaceTracker, Observation

log = logging.getLogger(__name__)

# Face workers keep both cores busy whenever a face is in view. At nice 10 they yield to everything ordinary
# as well: the kernel's journal thread, whose turn a door's commit (fsync) waits for, was queued behind them
# (card commit p99 5.6 ms with two busy cameras at nice 0; bench/card_latency.py --cameras 2).
WORKER_NICE = 10

# "spawn": a forked child would inherit the locks of this process's threads (capture, MQTT, asyncio) in
# whatever state they were; spawn starts clean and imports only what analyse_frame needs.
MP_CONTEXT = "spawn"


@dataclass(frozen=True, slots=True)
class _Frame:
    camera: str
    image: np.ndarray
    ts: datetime
    mono: float
    fed: float  # perf_counter() at feed, for the queue timing


@dataclass(frozen=True, slots=True)
class _Job:
    frame: _Frame
    futures: tuple[Future[FrameAnalysis], ...]  # one, or the plain and mirrored halves on two workers
    generation: int  # which pool ran it: a broken pool is replaced once, not once per failed job
    submitted: float

    def done(self) -> bool:
        return all(f.done() for f in self.futures)


class FacePipeline:
    def __init__(
        self,
        cfg: RecognitionConfig,
        index: TemplateIndex,
        emit: Callable[[FaceSeen], None],
        *,
        warm_up_timeout_s: float = 120.0,
        watch_index: TemplateIndex | None = None,
        worker_setup: Callable[[], None] | None = None,
    ) -> None:
        self.cfg = cfg
        # Run in each worker before anything else (picklable: a module function or a partial of one), e.g.
        # the gateway's "die with me": a SIGKILLed gateway must not leave its face workers running.
        self.worker_setup = worker_setup
        self.index = index
        self.matcher = Matcher(cfg, index, watch_index)  # watch_index: the town's persons of interest
        self.emit = emit
        self.warm_up_timeout_s = warm_up_timeout_s
        self._stats = StatsRecorder()
        self._cond = threading.Condition()  # guards everything below; both threads wait on it
        self._pending: dict[str, _Frame] = {}
        self._order: deque[str] = deque()  # cameras, in round-robin order
        self._jobs: dict[str, deque[_Job]] = {}
        self._in_flight = 0
        self._trackers: dict[str, FaceTracker] = {}
        self._pool: ProcessPoolExecutor | None = None
        self._generation = 0
        self._broken = False
        self._running = False
        self._threads: list[threading.Thread] = []

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the workers (blocks until each has loaded the models) and the two threads."""
        self._pool = self._new_pool()
        self._running = True
        self._threads = [
            threading.Thread(target=self._dispatch_loop, name="faces-dispatch", daemon=True),
            threading.Thread(target=self._result_loop, name="faces-results", daemon=True),
        ]
        for t in self._threads:
            t.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        with self._cond:
            self._running = False
            self._stats.count("frames_dropped", len(self._pending))
            self._pending.clear()
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout_s)
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> FacePipeline:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- input ----------------------------------------------------------------------------------
    def feed(self, camera: str, frame_bgr: np.ndarray, frame_ts: datetime, frame_mono: float) -> None:
        """Offer a frame; never blocks. The frame must not be modified afterwards (it is not copied)."""
        frame = _Frame(camera, frame_bgr, frame_ts, frame_mono, time.perf_counter())
        with self._cond:
            self._stats.count("frames_fed")
            if not self._running:
                self._stats.count("frames_dropped")
                return
            if camera in self._pending:
                self._stats.count("frames_dropped")
            elif camera not in self._jobs:
                self._order.append(camera)
                self._jobs[camera] = deque()
                self._trackers[camera] = FaceTracker(
                    self.cfg.track_gap_s, self.cfg.min_frames, self.matcher.tenant,
                    watch=self.matcher.watch if self.matcher.watch_list is not None else None,
                    watch_min_frames=self.cfg.watch_min_frames,
                )  # fmt: skip
            self._pending[camera] = frame
            self._cond.notify_all()

    def stats(self) -> PipelineStats:
        return self._stats.snapshot()

    def worker_pids(self) -> list[int]:
        """Process ids of the pool's workers (health checks, and tests that kill one)."""
        pool = self._pool
        processes = getattr(pool, "_processes", None) or {}
        return sorted(processes)

    # -- dispatcher -----------------------------------------------------------------------------
    def _dispatch_loop(self) -> None:
        while True:
            with self._cond:
                while self._running and not self._broken and not self._can_submit():
                    self._cond.wait()
                if not self._running:
                    return
                broken = self._broken
                frame = None if broken else self._next_frame()
                # With mirrored templates and two free workers, a frame's two encoder runs go to both at
                # once: the frame is analysed in about half the time (bench/face_unlock.py).
                parts = 2 if frame is not None and self.cfg.mirror and self.cfg.workers - self._in_flight >= 2 else 1
                if frame is not None:
                    self._in_flight += parts
            if broken:
                self._restart_pool()
            elif frame is not None:
                self._submit(frame, parts)

    def _can_submit(self) -> bool:
        return bool(self._pending) and self._in_flight < self.cfg.workers

    def _next_frame(self) -> _Frame | None:
        """Round-robin: the first camera after the last one served that has a pending frame."""
        for _ in range(len(self._order)):
            camera = self._order[0]
            self._order.rotate(-1)
            if camera in self._pending:
                return self._pending.pop(camera)
        return None

    def _submit(self, frame: _Frame, parts: int) -> None:
        assert self._pool is not None
        submitted = time.perf_counter()
        self._stats.time("queue", submitted - frame.fed)
        cfg = self.cfg
        halves = ("plain", "mirrored") if parts == 2 else ("both",)
        futures: list[Future[FrameAnalysis]] = []
        try:
            for half in halves:
                futures.append(self._pool.submit(analyse_frame_timed, frame.image, cfg.downscale, cfg.detector,
                                                 cfg.landmarks, cfg.mirror, half))  # fmt: skip
        except (BrokenProcessPool, RuntimeError) as exc:
            log.warning("face worker pool unusable (%s); it will be recreated", exc)
            with self._cond:
                self._in_flight -= parts - len(futures)  # those submitted free their slots when done
                self._broken = True
                self._stats.count("frames_dropped")
            for f in futures:
                f.add_done_callback(self._on_done)
            return
        job = _Job(frame, tuple(futures), self._generation, submitted)
        with self._cond:
            self._jobs[frame.camera].append(job)
        for f in futures:
            f.add_done_callback(self._on_done)

    def _on_done(self, _future: Future[FrameAnalysis]) -> None:
        # Runs on the pool's management thread: free the slot at once, leave the work to the result thread.
        with self._cond:
            self._in_flight -= 1
            self._cond.notify_all()

    def _restart_pool(self) -> None:
        old = self._pool
        if old is not None:
            old.shutdown(wait=False, cancel_futures=True)
        try:
            pool = self._new_pool()
        except Exception:
            log.exception("face workers failed to start; retrying in 5 s")
            time.sleep(5.0)
            return
        with self._cond:
            if not self._running:  # stop() came while the new workers were starting
                pool.shutdown(wait=False, cancel_futures=True)
                return
            self._pool = pool
            self._generation += 1
            self._broken = False
        self._stats.count("pool_restarts")
        log.warning("face worker pool recreated (generation %d)", self._generation)

    def _new_pool(self) -> ProcessPoolExecutor:
        workers = self.cfg.workers
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context(MP_CONTEXT),
                                   initializer=_behind_the_doors, initargs=(self.worker_setup,))  # fmt: skip
        # Every worker must load the models before the first frame: repeat until each pid has answered
        # (an already-warm worker may take several warm-up calls while another is still importing).
        deadline = time.monotonic() + self.warm_up_timeout_s
        pids: set[int] = set()
        try:
            while len(pids) < workers:
                futures = [pool.submit(warm_up) for _ in range(workers)]
                pids |= {f.result(timeout=max(0.1, deadline - time.monotonic())) for f in futures}
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        log.info("face workers ready: pids %s", sorted(pids))
        return pool

    # -- results --------------------------------------------------------------------------------
    def _result_loop(self) -> None:
        while True:
            with self._cond:
                ready = self._take_ready()
                while self._running and not ready:
                    self._cond.wait()
                    ready = self._take_ready()
                if not self._running:
                    return
            for job in ready:
                try:
                    self._handle(job)
                except Exception:  # one bad result must not end recognition for every camera
                    self._stats.count("errors")
                    log.exception("face results of camera %s could not be handled", job.frame.camera)

    def _take_ready(self) -> list[_Job]:
        """Finished jobs, each camera's in submission order (a later frame never overtakes an earlier one)."""
        ready = []
        for jobs in self._jobs.values():
            while jobs and jobs[0].done():
                ready.append(jobs.popleft())
        return ready

    def _handle(self, job: _Job) -> None:
        analysis = self._analysis_of(job)
        if analysis is None:
            return
        started = time.perf_counter()
        self._stats.time("round_trip", started - job.submitted)
        self._stats.time("detect", analysis.detect_s)
        self._stats.time("encode", analysis.encode_s)
        frame = job.frame
        observations = [Observation(box, encoding) for box, encoding in analysis.faces]
        updates = self._trackers[frame.camera].update(frame.mono, observations)
        for u in updates:
            event = FaceSeen(
                camera=frame.camera,
                track_id=u.track_id,
                tenant_id=u.tenant_id,
                confirmed=u.confirmed,
                distance=u.distance,
                track_age_s=u.track_age_s,
                box=u.box,
                frame_ts=frame.ts,
                frame_mono=frame.mono,
                frame=frame.image,
                watch_id=u.watch_id,
                watch_distance=u.watch_distance,
            )
            try:
                self.emit(event)
            except Exception:
                log.exception("FaceSeen consumer raised; event dropped")
        self._stats.count("frames_analysed")
        self._stats.count("faces_seen", len(updates))
        self._stats.time("match_track", time.perf_counter() - started)

    def _analysis_of(self, job: _Job) -> FrameAnalysis | None:
        try:
            results = [f.result() for f in job.futures]
            return results[0] if len(results) == 1 else _mirror_average(*results)
        except CancelledError:
            self._stats.count("frames_dropped")
        except BrokenProcessPool:
            self._stats.count("errors")
            with self._cond:
                if job.generation == self._generation and not self._broken:
                    log.error("a face worker died (camera %s); recreating the pool", job.frame.camera)
                    self._broken = True
                    self._cond.notify_all()
        except Exception:
            self._stats.count("errors")
            log.exception("face analysis failed on a frame of camera %s", job.frame.camera)
        return None


def _mirror_average(plain: FrameAnalysis, mirrored: FrameAnalysis) -> FrameAnalysis:
    """The two halves of a frame analysed on two workers, as `encode(..., mirror=True)` would give them."""
    boxes = [box for box, _ in plain.faces]
    if boxes != [box for box, _ in mirrored.faces]:  # cannot happen with deterministic detection; be safe
        return plain
    faces = [(box, (a + b) / 2) for (box, a), (_, b) in zip(plain.faces, mirrored.faces, strict=True)]
    return FrameAnalysis(faces, max(plain.detect_s, mirrored.detect_s), max(plain.encode_s, mirrored.encode_s))


def _behind_the_doors(setup: Callable[[], None] | None = None) -> None:
    """In each face worker, before any frame: the owner's setup, and a lower priority than anything the
    controller runs."""
    if setup is not None:
        setup()
    os.setpriority(os.PRIO_PROCESS, 0, max(WORKER_NICE, os.getpriority(os.PRIO_PROCESS, 0)))

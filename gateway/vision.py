"""Cameras and faces wired to doors: capture → recognition → policy → entries and alerts.

The capture threads (drivers/) and the recognition pipeline (recognition/)
hand frames and `FaceSeen` events over; everything here runs on the loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import Engine

from config.models import CameraConfig, DoorConfig, GatewayConfig
from drivers.events import CardPresented, DriverEvent, FaceSeen
from drivers.rtsp_capture import Frame, RtspCapture
from drivers.snapshots import encode_jpeg
from gateway import metrics
from gateway.access import CardHolder, Decision, FaceAtDoor, Reason, decide_face
from gateway.alerts import AlertLog
from gateway.door_modes import CardAndFaceWaits, FaceStep, PendingSwipe, Settled, face_step
from gateway.door_path import DoorPath, card_draft
from gateway.doors import DoorState
from gateway.face_tracks import FaceTracks
from gateway.priorities import exit_with_parent
from gateway.snapshots import SnapshotStore, api_path
from gateway.store.journal import AlertDraft, EntryDraft, new_event_id
from gateway.store.roster import change_counter, face_templates_of_matchable_tenants, tenant_records, watch_vectors
from recognition.index import TemplateIndex
from recognition.pipeline import FacePipeline

log = logging.getLogger("accessgw.vision")


class Vision:
    def __init__(
        self,
        cfg: GatewayConfig,
        engine: Engine,
        zone: ZoneInfo,
        doors: dict[str, DoorState],
        door_path: DoorPath,
        alerts: AlertLog,
        emit: Callable[[DriverEvent], None],
        call_in_loop: Callable[..., None],
    ) -> None:
        self.cfg, self.engine, self.zone, self.doors = cfg, engine, zone, doors
        self.door_path, self.alerts, self.call_in_loop = door_path, alerts, call_in_loop
        self.cameras: dict[str, CameraConfig] = {c.id: c for c in cfg.cameras}
        self.index = TemplateIndex()
        self.watch_index = TemplateIndex()  # the town's persons of interest: alerts only, never a door
        self.pipeline = (
            FacePipeline(cfg.recognition, self.index, self._face_from_thread, watch_index=self.watch_index,
                         worker_setup=partial(exit_with_parent, os.getpid()))
            if cfg.cameras
            else None
        )
        # Each kept frame (the capture keeps at most the camera's `fps`) goes to recognition from the capture
        # thread the moment it is decoded: polling for it on the loop cost up to a frame period of latency.
        self.captures = {c.id: RtspCapture(c.id, c, emit, on_frame=self._feeder(c.id)) for c in cfg.cameras}
        self.tracks = FaceTracks(forget_after_s=max(30.0, 4 * cfg.recognition.track_gap_s))
        self.waits: CardAndFaceWaits[FaceSeen] = CardAndFaceWaits()
        self.snapshots = SnapshotStore(cfg.data_dir)
        self._roster_seen = -1
        self._tasks: list[asyncio.Task[None]] = []
        door_path.await_face = self.card_swiped
        pipeline = self.pipeline
        if pipeline is not None:
            metrics.bind(metrics.FRAMES_ANALYSED, lambda: pipeline.stats().frames_analysed)
            metrics.bind(metrics.FRAMES_DROPPED, lambda: pipeline.stats().frames_dropped)
        metrics.bind(metrics.TEMPLATES, lambda: len(self.index))

    # --- lifecycle -------------------------------------------------------------
    def start(self, stop: asyncio.Event) -> None:
        self.reload_index()
        if self.pipeline is not None:
            self.pipeline.start()
        for capture in self.captures.values():
            capture.start()
        self._tasks = [asyncio.create_task(self._housekeeping(stop), name="vision-housekeeping")]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        # A camera stuck connecting can take seconds to stop: not on the loop.
        await asyncio.gather(*(asyncio.to_thread(c.stop) for c in self.captures.values()))
        if self.pipeline is not None:
            await asyncio.to_thread(self.pipeline.stop)

    def reload_index(self) -> None:
        """Reload templates when the roster changed (CLI, API or platform, in any process)."""
        with self.engine.connect() as conn:
            counter = change_counter(conn)
            if counter == self._roster_seen:
                return
            rows = face_templates_of_matchable_tenants(conn)
            watched = watch_vectors(conn)
        self.index.replace_all((tid, np.frombuffer(emb, dtype="<f4")) for tid, emb in rows)
        self.watch_index.replace_all((wid, np.frombuffer(emb, dtype="<f4")) for wid, emb in watched)
        self._roster_seen = counter
        log.info("face index: %d templates of %d tenants, %d of %d watch-list entries", len(self.index),
                 len(self.index.tenants()), len(self.watch_index), len(self.watch_index.tenants()))  # fmt: skip

    def _feeder(self, camera_id: str) -> Callable[[Frame], None]:
        def feed(frame: Frame) -> None:  # on the capture thread; FacePipeline.feed never blocks
            if self.pipeline is not None:
                self.pipeline.feed(camera_id, frame.image, frame.ts, frame.mono)

        return feed

    async def _housekeeping(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                # In a thread: reading and stacking a town-sized roster's templates takes long enough
                # to hold up the loop, where cards are decided (the index swaps in atomically).
                await asyncio.to_thread(self.reload_index)
                self.settle_pending(time.monotonic())
            except Exception:  # never let bookkeeping end the cameras
                log.exception("vision housekeeping failed")
            await asyncio.sleep(0.2)

    # --- faces -------------------------------------------------------------------
    def _face_from_thread(self, face: FaceSeen) -> None:
        self.call_in_loop(self.on_face, face)

    def on_face(self, face: FaceSeen) -> None:
        cam = self.cameras.get(face.camera)
        if cam is None:
            return
        metrics.FACES.labels(face.camera).inc()
        at_door = cam.door is not None and cam.role == "entry"
        triggers = self.tracks.observe(face, entry_camera=at_door, stranger_after_s=cam.stranger_after_s)
        if triggers.watch_hit:  # whatever the camera's door and mode; it decides nothing
            self._alert("watchlist_hit", "critical", face, cam, watch_id=face.watch_id,
                        distance=None if face.watch_distance is None else round(face.watch_distance, 4))  # fmt: skip
        if triggers.identified:
            self._identified(face, cam)
        if triggers.stranger:
            self._stranger(face, cam)

    def _snapshot_path(self, kind: str, event_id: str, face: FaceSeen) -> str | None:
        """The API path an event names; its file is written after the door's pulse (`_write_snapshot`)."""
        return api_path(kind, event_id) if self.cfg.snapshots.enabled and face.frame is not None else None

    def _write_snapshot(self, kind: str, event_id: str, ts: datetime, face: FaceSeen) -> None:
        """JPEG encoding and the disk write happen off the loop, after the door was decided and driven."""
        if not self.cfg.snapshots.enabled or face.frame is None:
            return
        frame = face.frame

        def write() -> None:
            try:
                self.snapshots.save(kind, event_id, ts, encode_jpeg(frame))
            except OSError as exc:  # a full disk must not stop the door; the API then answers 404
                log.warning("snapshot %s not saved: %s", event_id, exc)

        asyncio.get_running_loop().run_in_executor(None, write)

    def _alert(self, kind: str, severity: str, face: FaceSeen, cam: CameraConfig, **details: Any) -> None:
        ts = datetime.now(UTC)
        alert_id = new_event_id(ts)
        draft = AlertDraft(
            ts,
            kind,
            "raised",
            severity,
            door=cam.door,
            camera=cam.id,
            tenant_id=face.tenant_id,
            details={"track": face.track_id, **details},
            snapshot=self._snapshot_path("alerts", alert_id, face),
        )
        self.alerts.raise_(draft, alert_id)
        self._write_snapshot("alerts", alert_id, ts, face)

    def _identified(self, face: FaceSeen, cam: CameraConfig) -> None:
        assert face.tenant_id is not None
        with self.engine.connect() as conn:
            tenant = tenant_records(conn, [face.tenant_id]).get(face.tenant_id)
        if tenant is not None and tenant.watchlist:
            self._alert("watchlist_hit", "critical", face, cam, distance=face.distance)
        if cam.door is None or cam.role != "entry":
            return
        door = self.doors[cam.door]
        step = face_step(door.cfg.mode)
        if step is FaceStep.DECIDE:
            decision = decide_face(tenant, door.policy, face.frame_ts.astimezone(self.zone))
            self._record_face_entry(door.cfg, decision, face, "face")
        elif step is FaceStep.PAIR_WITH_CARD:
            self.waits.face(door.cfg.id, FaceAtDoor(face.tenant_id, face.frame_mono), face)
            self.settle_pending(time.monotonic())

    def _stranger(self, face: FaceSeen, cam: CameraConfig) -> None:
        self._alert("stranger", "warning", face, cam, seen_s=round(face.track_age_s, 1))
        if cam.door is not None and face_step(self.doors[cam.door].cfg.mode) is FaceStep.DECIDE:
            self._record_face_entry(self.doors[cam.door].cfg, Decision(False, Reason.UNKNOWN_FACE), face, "face")

    def _record_face_entry(
        self, door: DoorConfig, decision: Decision, face: FaceSeen, method: str, card: CardPresented | None = None
    ) -> None:
        ts = datetime.now(UTC)
        entry_id = new_event_id(ts)
        draft = EntryDraft(
            ts=ts,
            door=door.id,
            method=method,
            decision="granted" if decision.granted else "denied",
            reason=decision.reason.value,
            reader=card.reader if card else None,
            card_number=card.card_number if card else None,
            card_bits=card.card_bits if card else None,
            tenant_id=decision.tenant_id,
            face_distance=None if face.distance is None else round(float(face.distance), 4),
            camera=face.camera,
            snapshot=self._snapshot_path("entries", entry_id, face),
            details={"face_tenant_id": decision.face_tenant_id} if decision.face_tenant_id else None,
        )
        self.door_path.record(draft, door, decision.granted, entry_id=entry_id, since_mono=face.frame_mono)
        self._write_snapshot("entries", entry_id, ts, face)

    # --- card_and_face -------------------------------------------------------------
    def card_swiped(self, door: DoorConfig, event: CardPresented, holders: Sequence[CardHolder]) -> None:
        self.waits.swipe(PendingSwipe(door.id, door.face_window_s, event, holders))
        self.settle_pending(time.monotonic())

    def settle_pending(self, now_mono: float) -> None:
        settled = self.waits.settle(now_mono, lambda door_id: self.doors[door_id].policy,
                                    lambda ts: ts.astimezone(self.zone))  # fmt: skip
        for s in settled:
            self._settle(s)

    def _settle(self, s: Settled[FaceSeen]) -> None:
        door, event, decision = self.doors[s.swipe.door_id].cfg, s.swipe.event, s.decision
        if s.face is None:
            self.door_path.record(card_draft(door, event, decision, "card_and_face"), door, decision.granted)
            return
        self._record_face_entry(door, decision, s.face, "card_and_face", card=event)
        if decision.reason is Reason.FACE_MISMATCH:
            self._alert("card_face_mismatch", "warning", s.face, self.cameras[s.face.camera],
                        card_tenant_id=decision.tenant_id, card_number=event.card_number)  # fmt: skip

"""Cameras and faces wired to doors: capture → recognition → policy → entries and alerts.

The capture threads (drivers/) and the recognition pipeline (recognition/)
hand frames and `FaceSeen` events over; everything here runs on the loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from config.models import CameraConfig, DoorConfig
from drivers.events import CardPresented, FaceSeen
from drivers.rtsp_capture import RtspCapture
from drivers.snapshots import encode_jpeg
from gateway import metrics
from gateway.access import CardHolder, Decision, FaceAtDoor, Reason, decide_card_and_face, decide_face
from gateway.face_tracks import FaceTracks
from gateway.snapshots import SnapshotStore
from gateway.store.journal import AlertDraft, EntryDraft, new_event_id
from gateway.store.roster import change_counter, face_templates_of_matchable_tenants, tenant_records
from recognition.index import TemplateIndex
from recognition.pipeline import FacePipeline

if TYPE_CHECKING:
    from gateway.app import Gateway

log = logging.getLogger("accessgw.vision")

RECENT_FACES = 64  # per door: enough for every face within a card_and_face window


@dataclass
class PendingSwipe:
    """A card at a card_and_face door, waiting for its tenant's face."""

    door: DoorConfig
    event: CardPresented
    holders: list[CardHolder]


class Vision:
    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway
        cfg = gateway.cfg
        self.cameras: dict[str, CameraConfig] = {c.id: c for c in cfg.cameras}
        self.index = TemplateIndex()
        self.captures = {c.id: RtspCapture(c.id, c, gateway.emit) for c in cfg.cameras}
        self.pipeline = FacePipeline(cfg.recognition, self.index, self._face_from_thread) if cfg.cameras else None
        self.tracks = FaceTracks(forget_after_s=max(30.0, 4 * cfg.recognition.track_gap_s))
        self.recent: dict[str, deque[tuple[FaceAtDoor, FaceSeen]]] = {
            d.id: deque(maxlen=RECENT_FACES) for d in cfg.doors
        }
        self.pending: list[PendingSwipe] = []
        self.snapshots = SnapshotStore(cfg.data_dir)
        self._roster_seen = -1
        self._tasks: list[asyncio.Task[None]] = []
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
        self._tasks = [
            asyncio.create_task(self._sample(cam, stop), name=f"sample-{cam.id}") for cam in self.cameras.values()
        ]
        self._tasks.append(asyncio.create_task(self._housekeeping(stop), name="vision-housekeeping"))

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
        with self.gw.engine.connect() as conn:
            counter = change_counter(conn)
            if counter == self._roster_seen:
                return
            rows = face_templates_of_matchable_tenants(conn)
        self.index.replace_all((tid, np.frombuffer(emb, dtype="<f4")) for tid, emb in rows)
        self._roster_seen = counter
        log.info("face index: %d templates of %d tenants", len(self.index), len(self.index.tenants()))

    async def _sample(self, cam: CameraConfig, stop: asyncio.Event) -> None:
        """Hand the newest frame to recognition at the camera's configured rate."""
        capture, interval, last_seq = self.captures[cam.id], 1.0 / cam.fps, -1
        assert self.pipeline is not None
        while not stop.is_set():
            frame = capture.latest()
            if frame is not None and frame.seq != last_seq:
                last_seq = frame.seq
                self.pipeline.feed(cam.id, frame.image, frame.ts, frame.mono)
            await asyncio.sleep(interval)

    async def _housekeeping(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                self.reload_index()
                self.settle_pending(time.monotonic())
            except Exception:  # never let bookkeeping end the cameras
                log.exception("vision housekeeping failed")
            await asyncio.sleep(0.2)

    # --- faces -------------------------------------------------------------------
    def _face_from_thread(self, face: FaceSeen) -> None:
        self.gw.call_in_loop(self.on_face, face)

    def on_face(self, face: FaceSeen) -> None:
        cam = self.cameras.get(face.camera)
        if cam is None:
            return
        metrics.FACES.labels(face.camera).inc()
        at_door = cam.door is not None and cam.role == "entry"
        triggers = self.tracks.observe(face, entry_camera=at_door, stranger_after_s=cam.stranger_after_s)
        if triggers.identified:
            self._identified(face, cam)
        if triggers.stranger:
            self._stranger(face, cam)

    def _snapshot(self, kind: str, event_id: str, ts: datetime, face: FaceSeen) -> str | None:
        if not self.gw.cfg.snapshots.enabled or face.frame is None:
            return None
        try:
            return self.snapshots.save(kind, event_id, ts, encode_jpeg(face.frame))
        except OSError as exc:  # a full disk must not stop the door
            log.warning("snapshot %s not saved: %s", event_id, exc)
            return None

    def _alert(self, kind: str, severity: str, face: FaceSeen, cam: CameraConfig, **details: Any) -> None:
        ts = datetime.now(UTC)
        alert_id = new_event_id(ts)
        snapshot = self._snapshot("alerts", alert_id, ts, face)
        draft = AlertDraft(
            ts,
            kind,
            "raised",
            severity,
            door=cam.door,
            camera=cam.id,
            tenant_id=face.tenant_id,
            details={"track": face.track_id, **details},
            snapshot=snapshot,
        )
        self.gw.raise_alert(draft, alert_id)

    def _identified(self, face: FaceSeen, cam: CameraConfig) -> None:
        assert face.tenant_id is not None
        with self.gw.engine.connect() as conn:
            tenant = tenant_records(conn, [face.tenant_id]).get(face.tenant_id)
        if tenant is not None and tenant.watchlist:
            self._alert("watchlist_hit", "critical", face, cam, distance=face.distance)
        if cam.door is None or cam.role != "entry":
            return
        door = self.gw.doors[cam.door].cfg
        if door.mode in ("face", "card_or_face"):
            decision = decide_face(tenant, self.gw.doors[door.id].policy, face.frame_ts.astimezone(self.gw.zone))
            self._record_face_entry(door, decision, face, "face")
        elif door.mode == "card_and_face":
            self.recent[door.id].append((FaceAtDoor(face.tenant_id, face.frame_mono), face))
            self.settle_pending(time.monotonic())

    def _stranger(self, face: FaceSeen, cam: CameraConfig) -> None:
        self._alert("stranger", "warning", face, cam, seen_s=round(face.track_age_s, 1))
        if cam.door is not None and self.gw.doors[cam.door].cfg.mode in ("face", "card_or_face"):
            door = self.gw.doors[cam.door].cfg
            self._record_face_entry(door, Decision(False, Reason.UNKNOWN_FACE), face, "face")

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
            snapshot=self._snapshot("entries", entry_id, ts, face),
            details={"face_tenant_id": decision.face_tenant_id} if decision.face_tenant_id else None,
        )
        self.gw.record_decision(draft, door, decision.granted, entry_id=entry_id, since_mono=face.frame_mono)

    # --- card_and_face -------------------------------------------------------------
    def card_swiped(self, door: DoorConfig, event: CardPresented, holders: list[CardHolder]) -> None:
        self.pending.append(PendingSwipe(door, event, holders))
        self.settle_pending(time.monotonic())

    def settle_pending(self, now_mono: float) -> None:
        still: list[PendingSwipe] = []
        for p in self.pending:
            faces = list(self.recent[p.door.id])
            decision = decide_card_and_face(
                p.holders,
                [f for f, _ in faces],
                self.gw.doors[p.door.id].policy,
                p.event.ts.astimezone(self.gw.zone),
                swipe_mono=p.event.mono,
                now_mono=now_mono,
                window_s=p.door.face_window_s,
            )
            if decision is None:
                still.append(p)
                continue
            self._settle(p, decision, faces)
        self.pending = still

    def _settle(self, p: PendingSwipe, decision: Decision, faces: list[tuple[FaceAtDoor, FaceSeen]]) -> None:
        wanted = decision.tenant_id if decision.granted else decision.face_tenant_id
        seen = next((face for at, face in reversed(faces) if wanted and at.tenant_id == wanted), None)
        if seen is None:
            self.gw.record_card_entry(p.door, p.event, decision, method="card_and_face")
            return
        self._record_face_entry(p.door, decision, seen, "card_and_face", card=p.event)
        if decision.reason is Reason.FACE_MISMATCH:
            cam = self.cameras[seen.camera]
            self._alert(
                "card_face_mismatch",
                "warning",
                seen,
                cam,
                card_tenant_id=decision.tenant_id,
                card_number=p.event.card_number,
            )

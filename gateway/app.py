"""The running gateway: drivers → decisions → store → relay, and the uplink.

One asyncio loop. Driver threads hand their events over with
`call_soon_threadsafe`; the door's path (decide, commit, pulse) runs on the
loop and never waits for the broker.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sdnotify
from prometheus_client import generate_latest

from config.models import GatewayConfig
from drivers.events import (
    BadFrame,
    CameraStatus,
    CardPresented,
    DoorInput,
    DriverEvent,
    IoStatus,
    ReaderStatus,
    ReaderTamper,
)
from drivers.modbus_io import ModbusIoModule
from drivers.serial_reader import SerialCardReader
from gateway import metrics
from gateway.alerts import AlertLog
from gateway.api_supervisor import STOP_WAIT_S, ApiSupervisor
from gateway.clock import local_zone
from gateway.device_alerts import DeviceAlerts
from gateway.door_path import DoorPath
from gateway.door_watch import DoorWatch
from gateway.doors import DoorState
from gateway.health import Health
from gateway.journal_writer import JournalWriter
from gateway.platform_requests import PlatformRequests, RosterRequests
from gateway.priorities import door_realtime
from gateway.retention import prune
from gateway.snapshots import SnapshotStore
from gateway.store.checkpoint import checkpoint_loop
from gateway.store.db import make_engine, open_store
from gateway.store.journal import SqlOutbox
from gateway.store.replay import SqlReplayMemory
from gateway.store.roster_sync import current_version

if TYPE_CHECKING:
    from drivers.devices import Reader
    from gateway.vision import Vision
from sync.commands import CommandRouter, RequestGuard
from sync.mqtt_client import LinkCallbacks, MqttLink
from sync.outbox import OutboxPump, receipt_policy
from sync.signing import public_key
from sync.topics import Topics

log = logging.getLogger("accessgw")

DRAIN_ON_STOP_S = 5.0
RETENTION_EVERY_S = 24 * 3600


class Gateway:
    def __init__(self, cfg: GatewayConfig) -> None:
        self.cfg = cfg
        self.zone = local_zone(cfg)
        self.engine, self.sessions = open_store(cfg.data_dir)
        self.health = Health()
        self.topics = Topics(cfg.mqtt.base_topic, cfg.gateway_id)
        self.outbox = SqlOutbox(self.sessions)
        self.pump = OutboxPump(self.outbox, self.topics.under, receipts=receipt_policy(cfg.sync, cfg.gateway_id))
        key = public_key(cfg.sync.platform_public_key) if cfg.sync.platform_public_key else None
        # Its commits are not fsynced one by one (durable with the doors' next commit or the checkpoint, as the
        # API's): a burst of signed requests must not put an fsync ahead of every door's (bench/fault_mqtt.py).
        self.replay_engine = make_engine(cfg.data_dir, sync_each_commit=False)
        guard = RequestGuard(key, SqlReplayMemory(self.replay_engine), cfg.sync.max_skew_s)
        self.router = CommandRouter(self._respond, guard)
        self.link = MqttLink(
            cfg.mqtt,
            self.topics,
            LinkCallbacks(
                on_connected=self._on_link_up,
                on_disconnected=lambda reason: self.pump.on_disconnected(),
                on_ack=self.pump.on_ack,
                on_message=self._on_mqtt_message,
                on_receipt=self.pump.on_receipt,
            ),
        )
        self.pump.attach(self.link)
        self.doors = {d.id: DoorState(d) for d in cfg.doors}
        self.reader_devices = self._card_readers()
        self.readers = list(self.reader_devices.values())
        self.io = {m.id: ModbusIoModule(m, self.emit) for m in cfg.io_modules}
        self.journal = JournalWriter(self.engine, cfg.gateway_id, cfg.data_dir, self.pump.notify,
                                     self._storage_state)  # fmt: skip
        self.alerts = AlertLog(self.engine, cfg.gateway_id, self.pump.notify, self.journal)
        self.door_path = DoorPath(self.engine, cfg.gateway_id, self.zone, self.doors, dict(self.io), cfg.readers,
                                  self.health, self.pump.notify, self.journal)  # fmt: skip
        self.door_path.reader_devices = self.reader_devices  # LED and buzzer feedback after each decision
        self.requests = PlatformRequests(self.router, self.doors, self.door_path, self.sessions, self.state_payload,
                                         self.publish_state)  # fmt: skip
        self.roster_requests = RosterRequests(self.router, self.engine, cfg.gateway_id, self.pump.notify,
                                              lambda: self._state_dirty.set())  # fmt: skip
        self.door_watch = DoorWatch(self.doors, dict(self.io), self.door_path, self.alerts, cfg.io_modules)
        self.device_alerts = DeviceAlerts(self.health, self.alerts, lambda: self._state_dirty.set())
        self.vision: Vision | None = None
        if cfg.cameras:
            from gateway.vision import Vision  # dlib and OpenCV load only where cameras exist

            self.vision = Vision(cfg, self.engine, self.zone, self.doors, self.door_path, self.alerts, self.emit,
                                 self.call_in_loop)  # fmt: skip
        self._loop: asyncio.AbstractEventLoop | None = None
        self._state_dirty = asyncio.Event()
        self._stop = asyncio.Event()
        self.api = ApiSupervisor(cfg, self._control_handlers(), self._api_error)
        metrics.bind(metrics.OUTBOX_DEPTH, self.outbox.depth)

    def _card_readers(self) -> dict[str, Reader]:
        """reader id → its driver: a serial converter each, or a view of its OSDP bus (one per port)."""
        readers: dict[str, Reader] = {
            r.id: SerialCardReader(r, self.emit) for r in self.cfg.readers if r.protocol != "osdp"
        }
        if any(r.protocol == "osdp" for r in self.cfg.readers):
            from drivers.osdp_reader import osdp_readers  # libosdp loads only where OSDP readers exist

            readers |= osdp_readers(self.cfg.readers, self.emit)
        return readers

    # --- driver events, from driver threads --------------------------------
    def call_in_loop(self, fn: Callable[..., None], *args: object) -> None:
        """Run `fn(*args)` on the gateway's loop, from any thread."""
        loop = self._loop
        if loop is not None and not loop.is_closed() and not self._stop.is_set():
            loop.call_soon_threadsafe(fn, *args)

    def emit(self, event: DriverEvent) -> None:
        loop = self._loop
        # After stop, drivers going away is our own doing, not news for the platform.
        if loop is not None and not loop.is_closed() and not self._stop.is_set():
            loop.call_soon_threadsafe(self.handle_event, event)

    def handle_event(self, event: DriverEvent) -> None:
        try:
            match event:
                case CardPresented():
                    self.door_path.on_card(event)
                case BadFrame():
                    self.health.count_bad_frame(event.reader, event.kind)
                    metrics.BAD_FRAMES.labels(event.reader, event.kind).inc()
                    log.warning("reader %s: bad frame (%s): %s", event.reader, event.kind, event.detail)
                    self._state_dirty.set()
                case ReaderStatus():
                    self.device_alerts.status("reader", event.reader, event.online, event.error)
                case ReaderTamper():
                    self.device_alerts.reader_tamper(event.reader, event.active)
                case IoStatus():
                    self.device_alerts.status("io", event.io, event.online, event.error)
                case CameraStatus():
                    self.device_alerts.status("camera", event.camera, event.online, event.error)
                case DoorInput():
                    self.door_watch.on_input(event)
        except Exception:  # one bad event must not stop the doors
            log.exception("failed to handle %r", event)

    # --- what the API process asks of the doors (gateway.control) ------------
    def door_states(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        return [
            {"id": d.cfg.id, "mode": d.cfg.mode, "open": d.is_open if d.cfg.contact else None,
             "unlocked": now < d.unlocked_until, "fire_alarm": d.fire}
            for d in self.doors.values()
        ]  # fmt: skip

    def readiness(self) -> dict[str, Any]:
        try:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
            store = True
        except Exception:
            store = False

        def devices(table: dict) -> dict[str, bool]:
            return {k: v.online for k, v in table.items()}

        report = {
            "store": store,
            "broker": self.link.connected,
            "outbox_depth": self.outbox.depth() if store else None,
            "readers": devices(self.health.readers),
            "io_modules": devices(self.health.io_modules),
            "cameras": devices(self.health.cameras),
        }
        # Ready = the doors can be decided and driven; a broker outage only delays reports.
        report["ready"] = store and all(report["readers"].values()) and all(report["io_modules"].values())
        return report

    # --- uplink --------------------------------------------------------------
    def roster_version(self) -> int:
        """The platform's roster version held (0: never received one), DESIGN §6.1."""
        with self.engine.connect() as conn:
            return current_version(conn)

    def state_payload(self) -> dict[str, Any]:
        payload = self.health.state_payload(self.roster_version(), self.outbox.depth())
        if self.link.last_error:  # a broker or certificate problem, said once by the link
            payload["last_error"] = self.link.last_error
        return payload

    def publish_state(self) -> None:
        if self.link.connected:
            self.link.publish(self.topics.state, json.dumps(self.state_payload()), qos=1, retain=True)

    def _on_link_up(self) -> None:
        self.pump.on_connected()
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._state_dirty.set)

    def _on_mqtt_message(self, topic: str, payload: bytes, retained: bool) -> None:
        command = self.topics.command_of(topic)
        if command is not None and retained:  # a request kept by the broker is old news, whoever signed it
            log.warning("retained request on %s ignored (%d bytes)", topic[:120], len(payload))
            return
        if command is not None and self._loop is not None:
            self.router.submit(command, payload, self._loop)

    def _respond(self, command: str, payload: str) -> None:
        self.link.publish(self.topics.response(command), payload, qos=1)

    # --- lifecycle -------------------------------------------------------------
    async def _state_loop(self) -> None:
        interval = self.cfg.mqtt.state_interval_s
        while not self._stop.is_set():
            try:
                await asyncio.wait_for(self._state_dirty.wait(), timeout=interval)
            except TimeoutError:
                pass
            self._state_dirty.clear()
            self.publish_state()
            await asyncio.sleep(1.0)  # at most one state message a second

    async def _door_ticks(self) -> None:
        while not self._stop.is_set():
            self.door_watch.tick(time.monotonic())
            await asyncio.sleep(1.0)

    async def _retention(self) -> None:
        """Once at start, then daily: past-retention entries and snapshots go (DESIGN §7)."""
        snapshots = SnapshotStore(self.cfg.data_dir)
        while not self._stop.is_set():
            try:
                removed = await asyncio.to_thread(
                    prune, self.sessions, snapshots, self.cfg.retention, datetime.now(UTC)
                )
                log.info("retention: %s", removed)
            except Exception:
                log.exception("retention pruning failed; will try again")
            try:
                await asyncio.wait_for(self._stop.wait(), timeout=RETENTION_EVERY_S)
            except TimeoutError:
                pass

    async def _watchdog(self, notifier: sdnotify.SystemdNotifier) -> None:
        usec = int(os.environ.get("WATCHDOG_USEC", "0") or 0)
        if usec <= 0:
            return
        while not self._stop.is_set():
            notifier.notify("WATCHDOG=1")  # from the loop: a stuck loop misses it and systemd restarts us
            await asyncio.sleep(usec / 2_000_000)

    def _ensure_first_admin(self) -> None:
        """On first start, an admin whose token is shown once (DESIGN §8)."""
        from gateway.api.users import INITIAL_TOKEN_FILE, ensure_initial_admin

        with self.sessions.begin() as s:
            token = ensure_initial_admin(s, self.cfg.data_dir)
        if token is not None:
            log.warning("first start: admin created; its token is in %s (mode 0600) and below, shown once",
                        self.cfg.data_dir / INITIAL_TOKEN_FILE)  # fmt: skip
            print(f"initial admin token: {token}", flush=True)

    def _control_handlers(self) -> dict[str, Any]:
        """What the API process may ask of the doors, over gateway.control (nothing else)."""

        async def ready(_: dict[str, Any]) -> dict[str, Any]:
            return self.readiness()

        async def doors(_: dict[str, Any]) -> list[dict[str, Any]]:
            return self.door_states()

        async def open_door(request: dict[str, Any]) -> str:
            door = self.doors.get(str(request.get("door")))
            if door is None:
                raise KeyError(f"no door {request.get('door')!r}")
            log.info("remote open of door %s by %s (API)", door.cfg.id, str(request.get("actor"))[:64])
            self.door_path.open(door.cfg, "remote")
            return door.cfg.id

        async def metrics_text(_: dict[str, Any]) -> str:
            return (await asyncio.to_thread(generate_latest)).decode()

        return {"ready": ready, "doors": doors, "open": open_door, "metrics": metrics_text}

    def _storage_state(self, error: str | None) -> None:
        """A full disk, and its end, in `…/state`'s last_error (published directly, not through the outbox)."""
        if error is not None or (self.health.last_error or "").startswith("storage full"):
            self.health.last_error = error
        self._state_dirty.set()

    def _api_error(self, message: str) -> None:
        self.health.last_error = message
        self._state_dirty.set()

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)

    def _start_door_threads(self) -> None:
        # Every lock relay off first: a pulse cut short by a crash or a power cut of this process (not of
        # the board) would otherwise leave its door unlocked until the next grant (bench/fault_kill.py).
        # A fire alarm still active holds its fail-safe doors open again from the inputs' first read.
        for door in self.cfg.doors:
            lock = self.io.get(door.lock.io)
            if lock is not None:
                lock.release(door.lock.coil)
        for module in self.io.values():
            module.start()
        for reader in self.readers:
            reader.start()

    async def run(self, ready: Callable[[], None] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        # Driver threads (a relay write, a card frame) must get the GIL quickly
        # while the loop is busy: Python's default hand-over interval is 5 ms.
        sys.setswitchinterval(0.0005)
        notifier = sdnotify.SystemdNotifier()
        self.link.start()
        if self.vision is not None:
            self.vision.start(self._stop)
        # Last: the loop and the door's own threads get the real-time class; nothing started later does.
        realtime = door_realtime(self._start_door_threads)
        self._ensure_first_admin()
        api_task = asyncio.create_task(self.api.run(self._stop), name="api")
        tasks = [
            asyncio.create_task(self.pump.run(self._stop), name="outbox"),
            asyncio.create_task(self._state_loop(), name="state"),
            asyncio.create_task(self._door_ticks(), name="doors"),
            asyncio.create_task(self._watchdog(notifier), name="watchdog"),
            asyncio.create_task(self._retention(), name="retention"),
            asyncio.create_task(checkpoint_loop(self.engine, self._stop), name="checkpoint"),
            asyncio.create_task(self.journal.run(self._stop), name="journal"),
        ]
        log.info(
            "gateway %s running: %d reader(s), %d I/O module(s), %d door(s); outbox depth %d; broker %s:%s%s",
            self.cfg.gateway_id,
            len(self.readers),
            len(self.io),
            len(self.doors),
            self.outbox.depth(),
            self.cfg.mqtt.host,
            self.cfg.mqtt.port,
            "; door threads real-time (SCHED_RR)" if realtime else "",
        )
        notifier.notify("READY=1")
        if ready is not None:
            ready()
        await self._stop.wait()
        notifier.notify("STOPPING=1")
        for reader in self.readers:
            reader.stop()
        if self.vision is not None:
            await self.vision.stop()
        left = await self.pump.drain(DRAIN_ON_STOP_S)
        await asyncio.wait([api_task], timeout=STOP_WAIT_S + 1)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.link.stop()
        for module in self.io.values():
            module.stop()
        self.engine.dispose()
        self.replay_engine.dispose()
        log.info("gateway stopped; %d event(s) kept in the outbox for next start", left)

"""A simulated fleet of real gateway uplinks, for the town's load test (bench/town_load.py) and its tests.

Each simulated gateway is the gateway's own uplink without doors or drivers (the parts of gateway.app.Gateway
that face the town, built the same way):
- its own SQLite store (gateway.store.db.open_store, migrations, WAL, synchronous=FULL);
- entries written through its journal (gateway.store.journal.record_entry: the entry and its outbox row in
  one BEGIN IMMEDIATE transaction, as the door's path writes them), then the pump is notified;
- its own MqttLink (client id accessgw-<gw>, LWT `offline`, retained `online` after the SUBACK of its
  `request/#`) and OutboxPump (seq order, QoS 1, a row deleted only on PUBACK);
- the platform's signed requests answered by the gateway's own CommandRouter + RequestGuard (Ed25519
  signature, stale, replay memory in the store) with RosterRequests (roster/patch, roster/snapshot: verified,
  applied to the store's roster, answered `response/roster/patch` with the version) and PlatformRequests
  (`state`; no doors, so `door/open` answers `unknown_door`);
- `…/state` (gateway.health.Health.state_payload with the store's roster_version and outbox depth), published
  as gateway.app does: at connect, after a roster change (at most once a second), every state_interval_s.

N gateways are split over P processes (multiprocessing, spawn); in each, one asyncio loop runs the pumps, the
routers and the state loops, paho runs a network thread per gateway, and writer threads write the entries.
The parent drives the processes with `Fleet` (one request, one answer per process, over a pipe).

    fleet = Fleet(FleetSpec(broker_port=…, root=…, platform_key=…), [f"gw{i:04d}" for i in range(550)], 4)
    fleet.start(); fleet.connect(); fleet.peak(300, 30.0); fleet.peak_wait(); ids = fleet.entry_ids(); fleet.stop()
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import math
import multiprocessing as mp
import os
import random
import resource
import select
import signal
import sys
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FleetSpec:
    broker_port: int
    root: Path  # each gateway's store in root/<gateway_id>
    platform_key: str | None = None  # base64 public key (sync.platform_public_key); None: only `state` requests
    receipts: bool = False  # sync.keep_until_receipt (needs platform_key): rows leave at the town's receipt
    base_topic: str = "accessgw"
    state_interval_s: float = 60.0  # the gateway's default (mqtt.state_interval_s)
    keepalive_s: int = 30
    reconnect_max_s: float = 30.0  # the gateway's default
    writers: int = 4  # entry-writing threads per process
    # gateway.app.Gateway.run sets 0.0005 (its door threads get the GIL quickly); here ~140 links' threads share
    # a process and a short interval costs throughput (GIL hand-overs): None keeps Python's 5 ms.
    switch_interval_s: float | None = None
    # The fleet stands for 550 machines; here it shares 2 cores with the town, and the kernel shares CPU by thread
    # (~150 a process here, a handful in a town instance): niced, the fleet gets what the town leaves over.
    nice: int = 10
    seed: int = 1


# --- one gateway, inside a worker process -------------------------------------------------------------------


class SimGateway:
    """One gateway's store, journal, link, pump and request handling (see the module's docstring)."""

    def __init__(self, gateway_id: str, spec: FleetSpec) -> None:
        from config.models import MqttConfig, SyncConfig
        from gateway.health import Health
        from gateway.platform_requests import PlatformRequests, RosterRequests
        from gateway.store.db import open_store
        from gateway.store.journal import SqlOutbox
        from gateway.store.replay import SqlReplayMemory
        from sync.commands import CommandRouter, RequestGuard
        from sync.outbox import OutboxPump, receipt_policy
        from sync.signing import public_key
        from sync.topics import Topics

        self.gateway_id = gateway_id
        self.spec = spec
        self.engine, self.sessions = open_store(spec.root / gateway_id)
        self.topics = Topics(spec.base_topic, gateway_id)
        self.outbox = SqlOutbox(self.sessions)
        receipts = spec.receipts and spec.platform_key is not None
        sync = SyncConfig(platform_public_key=spec.platform_key, keep_until_receipt=receipts)
        self.pump = OutboxPump(self.outbox, self.topics.under, receipts=receipt_policy(sync, gateway_id))
        self.health = Health()
        key = public_key(spec.platform_key) if spec.platform_key else None
        self.router = CommandRouter(self._respond, RequestGuard(key, SqlReplayMemory(self.engine)))
        # No doors here: door/open answers unknown_door before it would reach the door's path.
        PlatformRequests(self.router, {}, None, self.sessions, self.state_payload, self.publish_state)  # type: ignore[arg-type]
        self.roster = RosterRequests(self.router, self.engine, gateway_id, self.pump.notify, self._roster_changed)
        self.mqtt_cfg = MqttConfig(
            port=spec.broker_port, base_topic=spec.base_topic, keepalive_s=spec.keepalive_s,
            state_interval_s=spec.state_interval_s, reconnect_max_s=spec.reconnect_max_s,
        )  # fmt: skip
        self.link: Any = None  # an MqttLink per connect (a fresh paho client each time)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.state_dirty: asyncio.Event | None = None
        self.reached: dict[int, float] = {}  # roster version → wall-clock time it was first held
        self.version = self.roster_version()
        self.reached[self.version] = time.time()
        self.written = 0
        self.published_states = 0

    # --- the uplink, as gateway.app.Gateway ------------------------------------------------------------------
    def roster_version(self) -> int:
        from gateway.store.roster_sync import current_version

        with self.engine.connect() as conn:
            return current_version(conn)

    def state_payload(self) -> dict[str, Any]:
        payload = self.health.state_payload(self.roster_version(), self.outbox.depth())
        if self.link is not None and self.link.last_error:
            payload["last_error"] = self.link.last_error
        return payload

    def publish_state(self) -> None:
        link = self.link
        if link is not None and link.connected:
            link.publish(self.topics.state, json.dumps(self.state_payload()), qos=1, retain=True)
            self.published_states += 1

    def _respond(self, command: str, payload: str) -> None:
        if self.link is not None:
            self.link.publish(self.topics.response(command), payload, qos=1)

    def _roster_changed(self) -> None:  # on the loop, after a patch or snapshot applied
        self.version = self.roster_version()
        self.reached.setdefault(self.version, time.time())
        if self.state_dirty is not None:
            self.state_dirty.set()

    def _on_link_up(self) -> None:  # paho's thread
        self.pump.on_connected()
        loop, dirty = self.loop, self.state_dirty
        if loop is not None and dirty is not None and not loop.is_closed():
            loop.call_soon_threadsafe(dirty.set)

    def _on_message(self, topic: str, payload: bytes, retained: bool) -> None:  # paho's thread
        command = self.topics.command_of(topic)
        if command is None or retained:  # a retained request is old news (gateway.app ignores it too)
            return
        if self.loop is not None and not self.loop.is_closed():
            self.router.submit(command, payload, self.loop)

    def connect(self) -> None:
        from sync.mqtt_client import LinkCallbacks, MqttLink

        link = MqttLink(self.mqtt_cfg, self.topics, LinkCallbacks(
            on_connected=self._on_link_up, on_disconnected=lambda reason: self.pump.on_disconnected(),
            on_ack=self.pump.on_ack, on_message=self._on_message, on_receipt=self.pump.on_receipt))  # fmt: skip
        self.link = link
        self.pump.attach(link)
        link.start()

    def disconnect(self) -> None:
        if self.link is not None:
            self.link.stop(publish_offline=True)
            self.pump.on_disconnected()

    @property
    def connected(self) -> bool:
        return self.link is not None and self.link.connected

    async def state_loop(self, stop: asyncio.Event) -> None:
        """gateway.app.Gateway._state_loop: on change (at most once a second) and every state_interval_s."""
        assert self.state_dirty is not None
        while not stop.is_set():
            try:
                await asyncio.wait_for(self.state_dirty.wait(), timeout=self.spec.state_interval_s)
            except TimeoutError:
                pass
            if stop.is_set():
                break
            self.state_dirty.clear()
            try:
                self.publish_state()
            except Exception:
                log.exception("%s: state not published", self.gateway_id)
            await asyncio.sleep(1.0)

    # --- the door's side: entries through the journal -----------------------------------------------------------
    def write_entry(self, rng: random.Random) -> None:
        """One entry and its outbox row, committed (BEGIN IMMEDIATE, fsync), then the pump is told."""
        from gateway.store.db import write_now
        from gateway.store.journal import EntryDraft, record_entry

        tenant = rng.randrange(300)
        draft = EntryDraft(datetime.now(UTC), "main", "card", "granted", "granted", reader="r1",
                           card_number=rng.randrange(1, 2**32), card_bits=34, tenant_id=f"t{tenant:06d}")  # fmt: skip
        with write_now(self.engine) as conn:
            record_entry(conn, self.gateway_id, draft)
        self.written += 1
        self.pump.notify()

    def prefill(self, n: int, rng: random.Random) -> None:
        """`n` entries in one transaction (an outbox that filled while the broker was away)."""
        from gateway.store.journal import EntryDraft, record_entry

        with self.sessions.begin() as s:
            for _ in range(n):
                draft = EntryDraft(datetime.now(UTC), "main", "card", "granted", "granted", reader="r1",
                                   card_number=rng.randrange(1, 2**32), card_bits=34,
                                   tenant_id=f"t{rng.randrange(300):06d}")  # fmt: skip
                record_entry(s, self.gateway_id, draft)
        self.written += n

    def entry_ids(self) -> list[str]:
        with self.engine.connect() as conn:
            return [row[0] for row in conn.exec_driver_sql("SELECT id FROM entries")]

    def describe(self, ids: list[str]) -> list[str]:
        """`gateway seq ts id` of those of `ids` written here."""
        if not ids:
            return []
        with self.engine.connect() as conn:
            marks = ",".join("?" * len(ids))
            rows = conn.exec_driver_sql(f"SELECT id, seq, ts FROM entries WHERE id IN ({marks})", tuple(ids))
            return [f"{self.gateway_id} seq {seq} ts {ts} id {i}" for i, seq, ts in rows]

    def close(self) -> None:
        self.disconnect()
        self.engine.dispose()


# --- a worker process: its share of the fleet ---------------------------------------------------------------


@dataclass
class _PeakRun:
    started: float
    due: int
    late_max: float = 0.0
    late_sum: float = 0.0
    done: int = 0
    finished: float | None = None
    errors: list[str] = field(default_factory=list)


class _Worker:
    def __init__(self, spec: FleetSpec, gateway_ids: list[str], index: int) -> None:
        self.spec = spec
        self.index = index
        self.gateways = [SimGateway(g, spec) for g in gateway_ids]
        self.by_id = {g.gateway_id: g for g in self.gateways}
        self.stop = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []
        self.rng = random.Random(spec.seed * 1000 + index)
        self.writers = ThreadPoolExecutor(max(1, spec.writers), thread_name_prefix="fleet-writer")
        self.peak_run: _PeakRun | None = None
        self.peak_task: asyncio.Future[Any] | None = None

    async def begin(self) -> None:
        loop = asyncio.get_running_loop()
        loop.set_default_executor(ThreadPoolExecutor(12, thread_name_prefix="fleet-io"))
        for g in self.gateways:
            g.loop = loop
            g.state_dirty = asyncio.Event()
            self.tasks.append(asyncio.create_task(g.pump.run(self.stop)))
            self.tasks.append(asyncio.create_task(g.state_loop(self.stop)))

    # --- commands (cmd_<name>), each answered with a JSON-able value ----------------------------------------------
    async def cmd_connect(self, wait_s: float = 60.0) -> dict[str, Any]:
        t0 = time.monotonic()
        for g in self.gateways:
            g.connect()
        deadline = t0 + wait_s
        while time.monotonic() < deadline and not all(g.connected for g in self.gateways):
            await asyncio.sleep(0.05)
        return {"connected": sum(g.connected for g in self.gateways), "seconds": time.monotonic() - t0}

    async def cmd_disconnect(self) -> int:
        await asyncio.gather(*(asyncio.to_thread(g.disconnect) for g in self.gateways))
        return sum(g.connected for g in self.gateways)

    async def cmd_prefill(self, per_gateway: int) -> int:
        def fill() -> int:
            for g in self.gateways:
                g.prefill(per_gateway, self.rng)
            return per_gateway * len(self.gateways)

        return await asyncio.get_running_loop().run_in_executor(self.writers, fill)

    async def cmd_peak_start(self, per_gateway: int, duration_s: float, start_at: float) -> int:
        """Each gateway writes `per_gateway` entries at uniformly random times within `duration_s` from the
        wall-clock time `start_at` (the same for every process); returns at once (peak_wait waits)."""
        lanes: list[list[tuple[float, SimGateway]]] = [[] for _ in range(max(1, self.spec.writers))]
        for i, g in enumerate(self.gateways):
            lane = lanes[i % len(lanes)]
            lane.extend((start_at + self.rng.uniform(0, duration_s), g) for _ in range(per_gateway))
        for lane in lanes:
            lane.sort(key=lambda item: item[0])
        run = self.peak_run = _PeakRun(start_at, per_gateway * len(self.gateways))
        loop = asyncio.get_running_loop()

        def write_lane(lane: list[tuple[float, SimGateway]], seed: int) -> None:
            rng = random.Random(seed)
            for due, g in lane:
                if self.stop.is_set():
                    return
                wait = due - time.time()
                if wait > 0:
                    time.sleep(wait)
                late = max(0.0, time.time() - due)
                try:
                    g.write_entry(rng)
                except Exception as exc:  # counted and reported, the run goes on
                    run.errors.append(f"{g.gateway_id}: {exc}"[:200])
                    continue
                run.late_max = max(run.late_max, late)
                run.late_sum += late
                run.done += 1

        async def all_lanes() -> None:
            await asyncio.gather(*(loop.run_in_executor(self.writers, write_lane, lane, self.rng.random())
                                   for lane in lanes))  # fmt: skip
            run.finished = time.time()

        self.peak_task = asyncio.ensure_future(all_lanes())
        return run.due

    async def cmd_peak_wait(self, wait_s: float = 600.0) -> dict[str, Any]:
        run = self.peak_run
        if run is None or self.peak_task is None:
            return {}
        try:
            await asyncio.wait_for(asyncio.shield(self.peak_task), wait_s)
        except TimeoutError:
            pass
        return {"due": run.due, "done": run.done, "late_max": run.late_max, "late_sum": run.late_sum,
                "finished": run.finished, "errors": run.errors[:5], "error_count": len(run.errors)}  # fmt: skip

    async def cmd_status(self) -> dict[str, Any]:
        def read() -> dict[str, Any]:
            return {g.gateway_id: {"connected": g.connected, "version": g.version, "depth": g.outbox.depth(),
                                   "written": g.written, "delivered": g.pump.delivered,
                                   "states": g.published_states} for g in self.gateways}  # fmt: skip

        return await asyncio.to_thread(read)

    async def cmd_versions(self) -> dict[str, Any]:
        """Per gateway: the version held and when each version was first held (wall clock)."""
        return {g.gateway_id: {"version": g.version, "reached": {str(v): t for v, t in g.reached.items()}}
                for g in self.gateways}  # fmt: skip

    async def cmd_depth(self) -> int:
        return await asyncio.to_thread(lambda: sum(g.outbox.depth() for g in self.gateways))

    async def cmd_describe(self, ids: list[str]) -> list[str]:
        return await asyncio.to_thread(lambda: [d for g in self.gateways for d in g.describe(ids)])

    async def cmd_entry_ids(self) -> list[str]:
        return await asyncio.to_thread(lambda: [i for g in self.gateways for i in g.entry_ids()])

    async def cmd_stop(self) -> bool:
        self.stop.set()
        for g in self.gateways:
            g.pump.notify()
            if g.state_dirty is not None:
                g.state_dirty.set()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await asyncio.gather(*(asyncio.to_thread(g.close) for g in self.gateways), return_exceptions=True)
        self.writers.shutdown(wait=False, cancel_futures=True)
        return True


class _PollSelect:
    """`select.select` for paho's network loop, on poll(2).

    paho waits on its socket with select(), which refuses a file descriptor of 1024 or more (FD_SETSIZE) with a
    ValueError that paho takes for a lost connection, silently, at every retry. A gateway has one link in its
    process; here ~140 share one, each with its SQLite connections (3 descriptors each) and paho's socket pair,
    so a link connecting late (after a broker restart, or a reconnect) gets a descriptor above 1023 and never
    connects. Same semantics as select() for paho's use (readable on data, EOF or error; lists back)."""

    error = OSError

    @staticmethod
    def select(rlist: list[Any], wlist: list[Any], xlist: list[Any], timeout: float | None = None) -> tuple:
        poller = select.poll()
        wanted: dict[int, int] = {}
        for objects, flag in ((rlist, select.POLLIN), (wlist, select.POLLOUT)):
            for obj in objects:
                try:
                    fd = obj.fileno()
                except AttributeError:  # None: the socket is gone (select() raises TypeError, paho expects it)
                    raise TypeError("not a socket") from None
                if fd < 0:
                    raise ValueError("file descriptor cannot be a negative integer")
                wanted[fd] = wanted.get(fd, 0) | flag
        for fd, flags in wanted.items():
            poller.register(fd, flags)
        events = dict(poller.poll(-1 if timeout is None else max(0, math.ceil(timeout * 1000))))
        if any(ev & select.POLLNVAL for ev in events.values()):
            raise OSError(errno.EBADF, "bad file descriptor")
        bad = select.POLLERR | select.POLLHUP
        readable = [o for o in rlist if events.get(o.fileno(), 0) & (select.POLLIN | bad)]
        writable = [o for o in wlist if events.get(o.fileno(), 0) & (select.POLLOUT | bad)]
        return readable, writable, []


def _paho_on_poll() -> None:
    import paho.mqtt.client as paho_client

    paho_client.select = _PollSelect  # type: ignore[attr-defined]  # its only use: select.select(r, w, [], t)


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else 65536, hard))


def _worker_main(spec: FleetSpec, gateway_ids: list[str], index: int, conn: Connection) -> None:
    """A worker process: build its gateways, then answer the parent's commands until `stop` or EOF."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent tears down; Ctrl-C is its
    if spec.switch_interval_s is not None:
        sys.setswitchinterval(spec.switch_interval_s)
    if spec.nice:
        os.nice(spec.nice)
    _raise_fd_limit()
    _paho_on_poll()
    logging.basicConfig(level=logging.WARNING, format=f"fleet[{index}] %(levelname)s %(name)s: %(message)s")
    for noisy in ("sync.mqtt_client", "sync.commands", "gateway.platform_requests"):
        logging.getLogger(noisy).setLevel(logging.ERROR)  # reconnects after a broker restart x 138
    try:
        asyncio.run(_serve(spec, gateway_ids, index, conn))
    except BaseException:  # the parent sees the pipe close
        traceback.print_exc()
    finally:
        conn.close()
        os._exit(0)  # paho threads and SQLite pools: nothing left worth waiting for


async def _serve(spec: FleetSpec, gateway_ids: list[str], index: int, conn: Connection) -> None:
    """Commands one at a time (the parent waits for each answer), but `stop` is taken at once, even while a
    long command (peak_wait) is still running: it ends the writers and the command, then the gateways."""
    loop = asyncio.get_running_loop()
    receiver = ThreadPoolExecutor(1, thread_name_prefix="fleet-pipe")
    try:
        worker = _Worker(spec, gateway_ids, index)
        await worker.begin()
    except Exception:
        conn.send(("error", traceback.format_exc()))
        return
    conn.send(("ok", len(worker.gateways)))

    def answer(message: tuple[str, Any]) -> None:
        try:
            conn.send(message)
        except (OSError, ValueError):  # the parent is gone
            pass

    async def run(name: str, kwargs: dict[str, Any]) -> None:
        try:
            answer(("ok", await getattr(worker, f"cmd_{name}")(**kwargs)))
        except asyncio.CancelledError:
            answer(("error", f"{name} cancelled by stop"))
        except Exception:
            answer(("error", traceback.format_exc()))

    current: asyncio.Task[None] | None = None
    while True:
        try:
            name, kwargs = await loop.run_in_executor(receiver, conn.recv)
        except (EOFError, OSError):  # the parent is gone
            name, kwargs = "stop", {}
        if name == "stop":
            worker.stop.set()
            if current is not None and not current.done():
                current.cancel()
                await asyncio.gather(current, return_exceptions=True)
            await run("stop", {})
            return
        if current is not None and not current.done():
            await current  # one at a time, in the order they came
        current = asyncio.create_task(run(name, kwargs))


# --- the parent's handle -------------------------------------------------------------------------------------


class FleetError(RuntimeError):
    pass


class Fleet:
    """N simulated gateways over P worker processes (see the module's docstring)."""

    def __init__(self, spec: FleetSpec, gateway_ids: list[str], processes: int = 4) -> None:
        self.spec = spec
        self.gateway_ids = list(gateway_ids)
        n = max(1, min(processes, len(self.gateway_ids)))
        self.shares = [self.gateway_ids[i::n] for i in range(n)]
        self.procs: list[mp.process.BaseProcess] = []
        self.pipes: list[Connection] = []

    def start(self, timeout: float = 300.0) -> float:
        """Spawn the workers; each opens its gateways' stores (migrations). Returns the seconds it took."""
        t0 = time.monotonic()
        ctx = mp.get_context("spawn")
        self.spec.root.mkdir(parents=True, exist_ok=True)
        for i, share in enumerate(self.shares):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker_main, args=(self.spec, share, i, child), name=f"fleet-{i}", daemon=True)
            proc.start()
            child.close()
            self.procs.append(proc)
            self.pipes.append(parent)
        self._collect("start", timeout)
        return time.monotonic() - t0

    def _collect(self, what: str, timeout: float) -> list[Any]:
        deadline = time.monotonic() + timeout
        results = []
        for i, pipe in enumerate(self.pipes):
            left = deadline - time.monotonic()
            if not pipe.poll(max(0.0, left)):
                raise FleetError(f"fleet process {i}: no answer to {what} within {timeout:.0f} s")
            try:
                status, value = pipe.recv()
            except EOFError:
                raise FleetError(f"fleet process {i} exited during {what}") from None
            if status != "ok":
                raise FleetError(f"fleet process {i}: {what} failed:\n{value}")
            results.append(value)
        return results

    def call(self, name: str, timeout: float = 120.0, **kwargs: Any) -> list[Any]:
        """Run `cmd_<name>(**kwargs)` in every process; their answers, in process order."""
        for pipe in self.pipes:
            pipe.send((name, kwargs))
        return self._collect(name, timeout)

    # --- conveniences ----------------------------------------------------------------------------------------
    def connect(self, wait_s: float = 60.0) -> dict[str, Any]:
        results = self.call("connect", wait_s + 30, wait_s=wait_s)
        return {"connected": sum(r["connected"] for r in results), "seconds": max(r["seconds"] for r in results)}

    def disconnect(self) -> None:
        self.call("disconnect", 60)

    def prefill(self, per_gateway: int) -> int:
        return sum(self.call("prefill", 600, per_gateway=per_gateway))

    def peak(self, per_gateway: int, duration_s: float, start_in_s: float = 1.0) -> float:
        """Start the entry schedule in every process; returns its wall-clock start."""
        start_at = time.time() + start_in_s
        self.call("peak_start", 60, per_gateway=per_gateway, duration_s=duration_s, start_at=start_at)
        return start_at

    def peak_wait(self, wait_s: float = 600.0) -> dict[str, Any]:
        results = self.call("peak_wait", wait_s + 30, wait_s=wait_s)
        done = sum(r.get("done", 0) for r in results)
        finished = [r.get("finished") for r in results]
        return {
            "due": sum(r.get("due", 0) for r in results),
            "done": done,
            "late_max": max((r.get("late_max", 0.0) for r in results), default=0.0),
            "late_mean": sum(r.get("late_sum", 0.0) for r in results) / done if done else 0.0,
            "finished": max(f for f in finished if f is not None) if all(finished) else None,
            "errors": [e for r in results for e in r.get("errors", [])],
            "error_count": sum(r.get("error_count", 0) for r in results),
        }

    def status(self) -> dict[str, dict[str, Any]]:
        merged: dict[str, dict[str, Any]] = {}
        for part in self.call("status", 120):
            merged.update(part)
        return merged

    def versions(self) -> dict[str, dict[str, Any]]:
        merged: dict[str, dict[str, Any]] = {}
        for part in self.call("versions", 60):
            merged.update(part)
        return merged

    def depth(self) -> int:
        return sum(self.call("depth", 120))

    def entry_ids(self) -> list[str]:
        return [i for part in self.call("entry_ids", 300) for i in part]

    def describe(self, ids: list[str]) -> list[str]:
        """Where and when each of `ids` was written (gateway, seq, ts), for a report."""
        return sorted(d for part in self.call("describe", 120, ids=ids) for d in part)

    def wait(self, predicate: Callable[[], bool], timeout: float, interval: float = 0.5) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(interval)
        return predicate()

    def stop(self, timeout: float = 60.0) -> None:
        """Stop every worker (links closed, `offline` published); kill what does not stop in time."""
        try:
            if self.pipes:
                for pipe in self.pipes:
                    try:
                        pipe.send(("stop", {}))
                    except (OSError, ValueError):
                        pass
                deadline = time.monotonic() + timeout
                for pipe in self.pipes:  # stop's answer is True; a command it cancelled may answer first
                    try:
                        while pipe.poll(max(0.0, deadline - time.monotonic())):
                            if pipe.recv() == ("ok", True):
                                break
                    except (EOFError, OSError):
                        pass
        finally:
            for proc in self.procs:
                proc.join(5)
                if proc.is_alive():
                    proc.kill()
                    proc.join(5)
            for pipe in self.pipes:
                pipe.close()
            self.procs.clear()
            self.pipes.clear()

    def __enter__(self) -> Fleet:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def gateway_ids(n: int, prefix: str = "gw") -> list[str]:
    return [f"{prefix}{i:04d}" for i in range(n)]

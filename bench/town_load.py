"""Town platform load test (issue 12 item 7): a simulated fleet of real gateway uplinks (bench/fleet.py)
against one mosquitto and 1 or 2 `accessgw town run` instances on PostgreSQL or SQLite.

Phases, in this order, all on loopback:
1. saturation: every gateway's outbox pre-filled while disconnected, then all connected at once; ingest
   events/s from the town's DB row count over time. Run for the other database, for the other number of
   instances (the baseline), and last for the main configuration, which stays up for the phases below;
2. publish → commit latency below saturation: the real shift-change rate (x1) for a few seconds;
3. one roster patch (a watch-list entry, through town.register.add_watch) to every gateway: time until
   all hold the new version, from the gateways' side and from the town's fleet view (GET /gateways);
4. the shift-change peak, time-compressed, with a broker restart at 1/3 and a SIGKILL of town instance 1
   at 2/3 (restarted 2 s later); then lost (written at a gateway, absent from the town's DB) and duplicated
   (count(*) - count(distinct id)) events over every entry written while this configuration was up;
5. each town instance's RSS (/proc VmRSS, sampled every second), peak per configuration.

    .venv/bin/python -m bench.town_load --quick                     # 20 gateways, 10 s peak: ~2 minutes
    .venv/bin/python -m bench.town_load --gateways 550 --processes 4 --db postgresql --instances 1 --compress 20
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from bench.fleet import Fleet, FleetSpec, gateway_ids
from testing.peers import Mosquitto, free_port, wait_until

REPO = Path(__file__).resolve().parent.parent
ENTRIES_PER_BUILDING = 300  # the shift change: 300 entries per building …
WINDOW_S = 600.0  # … in 10 minutes
STILL_S = 20.0  # every outbox empty and the town's row count still for this long: what is missing is lost


def say(text: str) -> None:
    """A progress line, with the machine's 1-minute load average (other work on it shows in the figures)."""
    print(f"[{time.strftime('%H:%M:%S')} load {os.getloadavg()[0]:4.1f}] {text}", flush=True)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


# --- the broker, with its subscriptions in its log (how the bench knows an instance is subscribed) -----------


class Broker(Mosquitto):
    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        with self.conf.open("a") as f:  # the defaults, plus one line per SUBSCRIBE
            f.write("".join(f"log_type {t}\n" for t in ("error", "warning", "notice", "information", "subscribe")))
        self.log = self.dir / "mosquitto.log"

    def log_size(self) -> int:
        return self.log.stat().st_size if self.log.exists() else 0

    def subscribed_since(self, offset: int, client_id: str) -> int:
        if not self.log.exists():
            return 0
        with self.log.open("rb") as f:
            f.seek(offset)
            text = f.read().decode("utf-8", "replace")
        return sum(1 for line in text.splitlines() if f": {client_id} 1 $share/" in line)


# --- a town instance: `accessgw town run` in a process of its own ---------------------------------------------


class TownInstance:
    FILTERS = 4  # town.ingest.shared_filters: events/#, availability, state, response/#

    def __init__(self, name: str, cfg_path: Path, broker: Broker, api_port: int, data_dir: Path) -> None:
        self.name, self.cfg_path, self.broker, self.api_port, self.data_dir = name, cfg_path, broker, api_port, data_dir
        self.client_id = f"accessgw-town-{name}"
        self.log = cfg_path.with_suffix(".log")
        self.proc: subprocess.Popen[bytes] | None = None
        self.rss_peak_mb = 0.0
        self.rss_last_mb = 0.0

    def start(self, ready_timeout: float = 90.0) -> float:
        t0 = time.monotonic()
        offset = self.broker.log_size()
        with self.log.open("ab") as out:
            argv = [sys.executable, "-m", "gateway", "town", "run", "--config", str(self.cfg_path)]
            self.proc = subprocess.Popen(argv, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                         env=os.environ | {"PYTHONUNBUFFERED": "1"})  # fmt: skip
        proc = self.proc

        def ready() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"town instance {self.name} exited {proc.returncode}:\n{self.tail()}")
            return self.broker.subscribed_since(offset, self.client_id) >= self.FILTERS

        wait_until(ready, ready_timeout, 0.1, f"town instance {self.name} subscribed")
        return time.monotonic() - t0

    def tail(self, n: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def sample_rss(self) -> None:
        if not self.alive():
            return
        assert self.proc is not None
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    self.rss_last_mb = int(line.split()[1]) / 1024
                    self.rss_peak_mb = max(self.rss_peak_mb, self.rss_last_mb)
        except (OSError, ValueError):
            pass

    def retire_session(self) -> None:
        """Connect once with its client id and a clean session: the broker drops the persistent session and
        its place in the shared subscription (nothing is queued for an instance that will not come back)."""
        import paho.mqtt.client as paho
        from paho.mqtt.enums import CallbackAPIVersion

        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id, clean_session=True)
        client.connect("127.0.0.1", self.broker.port, keepalive=10)
        client.loop_start()
        try:
            wait_until(client.is_connected, 5, 0.02, "session retired")
        finally:
            client.disconnect()
            client.loop_stop()

    def admin_token(self) -> str:
        return (self.data_dir / "initial-admin-token").read_text().strip()

    def fleet_view(self, token: str) -> list[dict[str, Any]]:
        request = urllib.request.Request(f"http://127.0.0.1:{self.api_port}/api/v1/gateways",
                                         headers={"Authorization": f"Bearer {token}"})  # fmt: skip
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())


# --- the town's database, read by the bench ------------------------------------------------------------------


class TownDb:
    def __init__(self, url: str) -> None:
        from sqlalchemy import create_engine

        self.engine = create_engine(url, pool_size=2, max_overflow=2) if url.startswith("postgresql") else \
            create_engine(url, connect_args={"timeout": 30})  # fmt: skip

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.exec_driver_sql("SELECT count(*) FROM entries").scalar() or 0)

    def counts(self) -> tuple[int, int]:
        with self.engine.connect() as conn:
            row = conn.exec_driver_sql("SELECT count(*), count(DISTINCT id) FROM entries").one()
            return int(row[0]), int(row[1])

    def ids(self) -> set[str]:
        with self.engine.connect() as conn:
            return {r[0] for r in conn.exec_driver_sql("SELECT id FROM entries")}

    def latencies(self, since: datetime, until: datetime) -> list[tuple[str, datetime, datetime]]:
        from sqlalchemy import select

        from town.store.models import TownEntry

        with self.engine.connect() as conn:
            rows = conn.execute(select(TownEntry.id, TownEntry.ts, TownEntry.received_at)
                                .where(TownEntry.ts >= since, TownEntry.ts <= until)).all()  # fmt: skip
        return [(i, ts, rx) for i, ts, rx in rows]

    def visible_since(self, since: datetime) -> list[tuple[str, datetime]]:
        from sqlalchemy import select

        from town.store.models import TownEntry

        with self.engine.connect() as conn:
            return [(i, ts) for i, ts in conn.execute(select(TownEntry.id, TownEntry.ts)
                                                     .where(TownEntry.received_at >= since))]  # fmt: skip

    def fleet(self) -> dict[str, dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.exec_driver_sql("SELECT gateway_id, roster_version, missing_seqs, availability FROM gateways")
            return {g: {"roster_version": v, "missing_seqs": m, "availability": a} for g, v, m, a in rows}

    def close(self) -> None:
        self.engine.dispose()


# --- one configuration of the town: its database and its instances -------------------------------------------


@dataclass
class Setup:
    tag: str
    db: str  # postgresql / sqlite
    instances: int
    url: str = ""
    towns: list[TownInstance] = field(default_factory=list)
    reader: TownDb | None = None
    data_dir: Path | None = None

    @property
    def label(self) -> str:
        return f"{self.db}, {self.instances} instance{'s' if self.instances > 1 else ''}"

    def start(self, work: Path, broker: Broker, key_file: Path, postgres: Any) -> None:
        self.data_dir = work / f"town-{self.tag}"
        self.data_dir.mkdir(parents=True, mode=0o700)
        shutil.copy(key_file, self.data_dir / key_file.name)
        (self.data_dir / key_file.name).chmod(0o600)
        if self.db == "postgresql":
            self.url = postgres.create_database(f"town_{self.tag}")
        else:
            self.url = f"sqlite:///{self.data_dir / 'town.db'}"
        for i in range(self.instances):
            name = f"load-{self.tag}-{i + 1}"
            cfg: dict[str, Any] = {"instance": name, "data_dir": str(self.data_dir),
                                   "mqtt": {"host": "127.0.0.1", "port": broker.port},
                                   "api": {"host": "127.0.0.1", "port": free_port()}}  # fmt: skip
            if self.db == "postgresql":
                cfg["database_url"] = self.url
            path = work / f"{name}.yaml"
            path.write_text(yaml.safe_dump(cfg))
            town = TownInstance(name, path, broker, cfg["api"]["port"], self.data_dir)
            self.towns.append(town)
            took = town.start()  # one after the other: the first makes the schema and the admin
            say(f"  town instance {name} ({self.label}) subscribed in {took:.1f} s")
        self.reader = TownDb(self.url)

    def stop(self, retire: bool = True) -> None:
        for town in self.towns:
            town.stop()
        if retire:
            for town in self.towns:
                try:
                    town.retire_session()
                except Exception as exc:
                    say(f"  (session of {town.name} not retired: {exc})")
        if self.reader is not None:
            self.reader.close()


class RssSampler:
    def __init__(self) -> None:
        self.towns: list[TownInstance] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="rss")

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            for town in list(self.towns):
                town.sample_rss()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


class CpuMeter:
    """CPU time (user + system, /proc/<pid>/stat) of groups of processes over a phase, in cores used."""

    TICK = os.sysconf("SC_CLK_TCK")

    def __init__(self, groups: dict[str, Callable[[], list[int]]]) -> None:
        self.groups = groups
        self._start: dict[str, dict[int, float]] = {}
        self._t0 = 0.0

    @classmethod
    def cpu(cls, pid: int) -> float | None:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / cls.TICK
        except (OSError, IndexError, ValueError):
            return None

    def snapshot(self) -> dict[str, dict[int, float]]:
        out: dict[str, dict[int, float]] = {}
        for name, pids in self.groups.items():
            out[name] = {pid: t for pid in pids() if (t := self.cpu(pid)) is not None}
        return out

    def start(self) -> None:
        self._start, self._t0 = self.snapshot(), time.monotonic()

    def cores(self) -> dict[str, float]:
        """Since start(): each group's CPU seconds per second (a process that appeared meanwhile counts whole)."""
        now, wall = self.snapshot(), max(1e-6, time.monotonic() - self._t0)
        return {name: sum(t - self._start.get(name, {}).get(pid, 0.0) for pid, t in pids.items()) / wall
                for name, pids in now.items()}  # fmt: skip


def children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (OSError, ValueError):
        return []


def cpu_groups(fleet: Fleet, towns: Callable[[], list[TownInstance]], broker: Broker, postgres: Any) -> dict:
    def pg() -> list[int]:
        if postgres is None or postgres.dir is None:
            return []
        try:
            master = int((postgres.dir / "data" / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return []
        return [master, *children(master)]

    return {
        "town": lambda: [t.proc.pid for t in towns() if t.proc is not None],
        "fleet": lambda: [p.pid for p in fleet.procs if p.pid is not None],
        "mosquitto": lambda: [broker.proc.pid] if broker.proc is not None else [],
        "postgres": pg,
    }


def cores_text(cores: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.2f}" for name, value in cores.items() if value >= 0.005)


# --- the phases ----------------------------------------------------------------------------------------------


@dataclass
class Saturation:
    label: str
    events: int
    seconds: float
    rate_total: float
    rate_steady: float
    connect_s: float
    cores: dict[str, float]


def saturation(fleet: Fleet, setup: Setup, per_gateway: int, timeout: float, meter: CpuMeter) -> Saturation:
    """Outboxes pre-filled while disconnected, all gateways connected at once; committed rows over time."""
    assert setup.reader is not None
    db = setup.reader
    fleet.disconnect()
    filled = fleet.prefill(per_gateway)
    base = db.count()
    target = base + filled
    samples: list[tuple[float, int]] = []
    say(f"  {filled:,} entries in the outboxes; connecting {len(fleet.gateway_ids)} gateways at once")
    t0 = time.monotonic()
    meter.start()
    connect = threading.Thread(target=lambda: fleet.connect(wait_s=120), daemon=True)
    connect.start()
    deadline = t0 + timeout
    n = base
    while time.monotonic() < deadline:
        n = db.count()
        samples.append((time.monotonic(), n))
        if n >= target:
            break
        time.sleep(0.25)
    cores = meter.cores()
    connect.join(150)
    if n < target:
        raise RuntimeError(f"saturation ({setup.label}): {n - base:,} of {filled:,} committed within {timeout:.0f} s")
    first = next(t for t, c in samples if c > base)
    last = samples[-1][0]

    def when(fraction: float) -> float:
        goal = base + fraction * filled
        return next(t for t, c in samples if c >= goal)

    t10, t90 = when(0.1), when(0.9)
    steady = 0.8 * filled / (t90 - t10) if t90 > t10 else float("nan")
    return Saturation(setup.label, filled, last - t0, filled / max(1e-6, last - first), steady, first - t0, cores)


@dataclass
class Latency:
    samples: int
    rate: float
    at_broker: list[float]  # ts → at the broker (the fleet's part: its commit, its pump, paho)
    town_rx: list[float]  # at the broker → received_at (the town's part, before its COMMIT)
    town_vis: list[float]  # at the broker → visible in the DB (after its COMMIT, + up to the 50 ms poll)
    total_rx: list[float]  # ts → received_at


def latency(fleet: Fleet, setup: Setup, broker: Broker, per_gateway: int, duration_s: float) -> Latency:
    """Entries at the real rate (x1). Times, all on this host's clock, for each entry:
    - ts: the gateway's, when the entry is recorded (just before its outbox commit, its pump, its PUBLISH);
    - at the broker: when a plain (not shared) subscriber of the bench on `+/events/entry` receives it: the
      broker's fan-out moment, which separates the fleet's part from the town's;
    - received_at: the town's, set when the ingest takes the message's batch, just before INSERT and COMMIT
      (a lower bound of the commit time);
    - visible: when a 50 ms poll of the DB from the bench first sees the row (after the COMMIT; an upper bound,
      + up to 50 ms)."""
    from testing.peers import Subscriber

    assert setup.reader is not None
    db = setup.reader
    start_dt = datetime.now(UTC)
    visible: dict[str, float] = {}
    arrived: dict[str, float] = {}
    stop = threading.Event()

    def poll() -> None:
        since = start_dt
        while not stop.is_set():
            now = time.time()
            try:
                rows = db.visible_since(since)
            except Exception:
                rows = []
            for i, _ in rows:
                visible.setdefault(i, now)
            since = max(start_dt, datetime.fromtimestamp(now - 2.0, UTC))  # a batch commits well within 2 s
            stop.wait(0.05)

    sub = Subscriber(broker.port, "accessgw/+/events/entry", client_id="bench-latency-probe")
    sub.client.on_message = lambda c, u, m: arrived.setdefault(json.loads(m.payload)["id"], time.time())
    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        fleet.peak(per_gateway, duration_s, start_in_s=0.5)
        run = fleet.peak_wait(duration_s + 120)
        expected = run["done"]
        wait_until(lambda: len(db.latencies(start_dt, datetime.now(UTC))) >= expected, 120, 0.25, "latency entries")
        time.sleep(0.3)
    finally:
        stop.set()
        poller.join(5)
        sub.close()
    rows = db.latencies(start_dt, datetime.now(UTC))
    ms = 1000.0
    return Latency(
        samples=len(rows), rate=expected / duration_s,
        at_broker=[(arrived[i] - ts.timestamp()) * ms for i, ts, _ in rows if i in arrived],
        town_rx=[(rx.timestamp() - arrived[i]) * ms for i, _, rx in rows if i in arrived],
        town_vis=[(visible[i] - arrived[i]) * ms for i, _, _ in rows if i in arrived and i in visible],
        total_rx=[(rx - ts).total_seconds() * ms for _, ts, rx in rows],
    )  # fmt: skip


def light_latency(setup: Setup, broker: Broker, rate: float, seconds: float, gateways: int = 20) -> list[float]:
    """The same latency with the fleet stopped: the bench publishes entry payloads itself (QoS 1, one paho
    client, `gateways` synthetic gateway ids `lt00…`), so the town does not share the CPU with 550 simulated
    uplinks. publish → received_at, in ms."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion
    from ulid import ULID

    assert setup.reader is not None
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-light-publisher")
    client.max_inflight_messages_set(1000)
    client.connect("127.0.0.1", broker.port, keepalive=30)
    client.loop_start()
    sent: dict[str, float] = {}
    seqs = [0] * gateways
    rng = random.Random(3)
    start_dt = datetime.now(UTC)
    try:
        wait_until(client.is_connected, 10, 0.02, "light publisher connected")
        t0 = time.time()
        for k in range(int(rate * seconds)):
            wait = t0 + k / rate - time.time()
            if wait > 0:
                time.sleep(wait)
            g = rng.randrange(gateways)
            seqs[g] += 1
            now = datetime.now(UTC)
            entry_id = str(ULID.from_datetime(now))
            ts = now.isoformat(timespec="milliseconds").replace("+00:00", "Z")
            payload = {"id": entry_id, "seq": seqs[g], "ts": ts, "gateway_id": f"lt{g:04d}", "door": "main",
                       "method": "card", "card_number": rng.randrange(2**32), "card_bits": 34, "tenant_id": None,
                       "decision": "granted", "reason": "granted", "face_distance": None, "camera": None,
                       "snapshot": None}  # fmt: skip
            sent[entry_id] = time.time()
            client.publish(f"accessgw/lt{g:04d}/events/entry", json.dumps(payload), qos=1)
        n = len(sent)
        wait_until(lambda: len(setup.reader.latencies(start_dt, datetime.now(UTC))) >= n, 120, 0.25, "light entries")  # type: ignore[union-attr]
    finally:
        client.disconnect()
        client.loop_stop()
    rows = setup.reader.latencies(start_dt, datetime.now(UTC))
    return [(rx.timestamp() - sent[i]) * 1000 for i, _, rx in rows if i in sent]


@dataclass
class Fanout:
    gateways: int
    version: int
    first_s: float
    p50_s: float
    all_gw_s: float
    all_town_s: float


def roster_fanout(fleet: Fleet, setup: Setup, timeout: float) -> Fanout:
    """One watch-list entry (town.register.add_watch, committed by the bench: another process than the town,
    so the pusher sees it at its next poll, roster.resend_s), then the time until every gateway holds it."""
    import numpy as np

    from config.town import TownConfig
    from town.register import add_watch
    from town.store.db import open_town_store

    assert setup.reader is not None and setup.data_dir is not None
    n = len(fleet.gateway_ids)
    held = {v["version"] for v in fleet.versions().values()}
    if len(held) != 1:
        raise RuntimeError(f"the gateways hold different roster versions before the patch: {sorted(held)}")
    version = held.pop() + 1
    cfg = TownConfig(data_dir=setup.data_dir, database_url=setup.url if setup.db == "postgresql" else None)
    engine, sessions = open_town_store(cfg)
    vector = base64.b64encode(np.random.default_rng(7).normal(size=128).astype("<f4").tobytes()).decode()
    try:
        with sessions.begin() as s:
            add_watch(s, "bench", name="Load test person", note="bench.town_load", vectors=[vector],
                      reason="load test", route="bench")  # fmt: skip
        t_commit = time.time()
    finally:
        engine.dispose()
    token = setup.towns[0].admin_token()
    town_all: float | None = None
    gw_all: float | None = None
    view_error = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and (town_all is None or gw_all is None):
        if town_all is None:
            try:
                view = setup.towns[0].fleet_view(token)
                if sum(1 for g in view if g["roster_version"] >= version and g["gateway_id"] in fleet.gateway_ids) >= n:
                    town_all = time.time() - t_commit
            except OSError as exc:  # the API busy for a moment: asked again
                view_error = f"{type(exc).__name__}: {exc}"
        if gw_all is None:
            versions = fleet.versions()
            if all(v["version"] >= version for v in versions.values()):
                gw_all = time.time() - t_commit
        time.sleep(0.25)
    versions = fleet.versions()
    reached = [v["reached"].get(str(version)) for v in versions.values()]
    got = sorted(t - t_commit for t in reached if t is not None)
    if len(got) < n or town_all is None:
        raise RuntimeError(
            f"roster patch: {len(got)} of {n} gateways hold version {version} after {timeout:.0f} s; "
            f"the town's fleet view {'agrees' if town_all is not None else 'does not show them all ' + view_error}"
        )
    return Fanout(n, version, got[0], pct(got, 50), got[-1], town_all)


@dataclass
class Peak:
    written: int
    window_s: float
    late_mean_s: float
    late_max_s: float
    schedule_end_s: float
    all_committed_s: float
    rate_best_5s: float
    broker_down_s: float
    town_down_s: float
    lost: int
    lost_examples: list[str]
    extra: int
    rows: int
    distinct: int
    missing_seqs: int
    before: int  # entries written before this configuration was up (their seqs are in the earlier databases)
    fleet_depth: int
    fleet_rate: float  # entries/s the fleet managed to write
    cores: dict[str, float]


def peak(fleet: Fleet, setup: Setup, broker: Broker, per_gateway: int, window_s: float, expected_before: set[str],
         timeout: float, meter: CpuMeter) -> Peak:  # fmt: skip
    """The shift change; the broker restarted once a third of the peak's entries have committed at the town, a
    town instance SIGKILLed (and started again 2 s later) at two thirds: in the middle of the flow, whatever the
    pace the fleet manages on this machine."""
    assert setup.reader is not None
    db = setup.reader
    base = db.count()
    due = per_gateway * len(fleet.gateway_ids)
    meter.start()
    start_at = fleet.peak(per_gateway, window_s, start_in_s=1.0)
    samples: list[tuple[float, int]] = []
    faults = [(1 / 3, "broker"), (2 / 3, "town")]
    broker_down = town_down = 0.0
    run: dict[str, Any] = {}
    cores: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    last_progress = 0.0
    still_count, still_since = -1, time.monotonic()
    while time.monotonic() < deadline:
        n = db.count()
        samples.append((time.time(), n))
        if faults and n - base >= faults[0][0] * due:
            _, what = faults.pop(0)
            at = f"+{time.time() - start_at:.1f} s, {n - base:,} of {due:,} committed"
            if what == "broker":
                t = time.monotonic()
                broker.stop()
                broker.start()
                broker_down = time.monotonic() - t
                say(f"  broker restarted (down {broker_down:.1f} s) at {at}")
            else:
                cores = meter.cores()  # up to here: the instance killed now takes its CPU time with it
                town = setup.towns[0]
                t = time.monotonic()
                town.kill()
                say(f"  town instance {town.name} SIGKILLed at {at}")
                time.sleep(2.0)
                took = town.start()
                town_down = time.monotonic() - t
                say(f"  … restarted, subscribed again after {town_down:.1f} s (its start {took:.1f} s)")
            continue
        if time.monotonic() - last_progress > 2.0:
            run, last_progress = fleet.peak_wait(0), time.monotonic()  # progress, without waiting
            if run.get("finished") and not faults and fleet.depth() == 0:
                if n >= base + run["done"]:
                    break
                # Every outbox empty (every entry acknowledged by the broker) but rows missing: lost, unless the
                # count still moves. Stop once it has not moved for STILL_S.
                if n != still_count:
                    still_count, still_since = n, time.monotonic()
                elif time.monotonic() - still_since > STILL_S:
                    say(f"  every outbox empty, {base + run['done'] - n:,} entries still missing after {STILL_S:.0f} s")
                    break
        time.sleep(0.5)
    run = fleet.peak_wait(0)
    end = samples[-1][0]
    say(f"  {run['done']:,}/{due:,} written (late by {run['late_mean']:.1f} s mean, {run['late_max']:.1f} s max), "
        f"{samples[-1][1] - base:,} committed at +{end - start_at:.1f} s")  # fmt: skip
    best = 0.0
    for i, (t, c) in enumerate(samples):  # the best 5 s of committing
        j = next((k for k in range(i, len(samples)) if samples[k][0] - t >= 5.0), None)
        if j is not None:
            best = max(best, (samples[j][1] - c) / (samples[j][0] - t))
    written = set(fleet.entry_ids())
    expected = written - expected_before
    stored = db.ids()
    rows, distinct = db.counts()
    fleet_rows = db.fleet()
    missing_seqs = sum(v["missing_seqs"] or 0 for g, v in fleet_rows.items() if g in fleet.gateway_ids)
    finished = run.get("finished") or end
    return Peak(
        written=run["done"], window_s=window_s, late_mean_s=run["late_mean"], late_max_s=run["late_max"],
        schedule_end_s=finished - start_at, all_committed_s=end - start_at, rate_best_5s=best,
        broker_down_s=broker_down, town_down_s=town_down, lost=len(expected - stored),
        lost_examples=fleet.describe(sorted(expected - stored)), extra=len(stored - written),
        rows=rows, distinct=distinct, missing_seqs=missing_seqs, before=len(expected_before), fleet_depth=fleet.depth(),
        fleet_rate=run["done"] / max(1e-6, finished - start_at), cores=cores,
    )  # fmt: skip


# --- the run -------------------------------------------------------------------------------------------------


@contextmanager
def terminated_on_sigterm() -> Iterator[None]:
    """SIGTERM (e.g. a CI timeout) unwinds like Ctrl-C, so every process started here is stopped."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gateways", type=int, default=550)
    parser.add_argument("--processes", type=int, default=4, help="fleet worker processes")
    parser.add_argument("--db", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--instances", type=int, choices=[1, 2], default=1)
    parser.add_argument("--compress", type=float, default=20.0, help="time compression of the 10-minute peak")
    parser.add_argument("--prefill", type=int, default=200, help="entries per gateway's outbox for saturation")
    parser.add_argument("--latency-s", type=float, default=20.0, help="seconds at the real rate for the latency")
    parser.add_argument("--no-baselines", action="store_true", help="saturation on the main configuration only")
    parser.add_argument("--pg-fsync-off", action="store_true", help="PostgreSQL without fsync (default: durable)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, stores)")
    parser.add_argument("--quick", action="store_true", help="20 gateways, 2 processes, 10 s peak (x60)")
    args = parser.parse_args(argv)
    if args.quick:
        args.gateways, args.processes, args.prefill, args.latency_s = 20, 2, 1000, 10.0
        args.compress = WINDOW_S / 10.0
    window_s = WINDOW_S / args.compress
    other_db = "sqlite" if args.db == "postgresql" else "postgresql"
    other_n = 2 if args.instances == 1 else 1
    configs = [] if args.no_baselines else [(other_db, args.instances), (args.db, other_n)]
    configs.append((args.db, args.instances))  # last: it stays up for the other phases
    uses_pg = any(db == "postgresql" for db, _ in configs)

    work = Path(tempfile.mkdtemp(prefix="accessgw-town-load-"))
    fleet_root = Path(tempfile.mkdtemp(prefix="accessgw-fleet-", dir="/dev/shm" if Path("/dev/shm").is_dir() else None))
    say(f"work folder {work}; gateway stores in {fleet_root}")
    broker = Broker(work / "broker")
    postgres: Any = None
    fleet: Fleet | None = None
    setups: list[Setup] = []
    sampler = RssSampler()
    results: dict[str, Any] = {"saturation": []}
    failed = False
    try:
        with terminated_on_sigterm():
            broker.start()
            if uses_pg:
                from testing.postgres import Postgres

                postgres = Postgres(durable=not args.pg_fsync_off)
                postgres.start()
                say(f"PostgreSQL on port {postgres.port} ({'fsync off' if args.pg_fsync_off else 'durable: fsync on'})")
            from town.keys import key_path, load_or_create_key, public_key_b64

            key_dir = work / "key"
            public = public_key_b64(load_or_create_key(key_dir))
            # As the README's buildings under a town: rows leave at the town's receipt (sync.keep_until_receipt).
            spec = FleetSpec(broker_port=broker.port, root=fleet_root, platform_key=public, receipts=True)
            fleet = Fleet(spec, gateway_ids(args.gateways), args.processes)
            took = fleet.start()
            say(f"fleet: {args.gateways} gateways in {len(fleet.shares)} processes, stores ready in {took:.1f} s")
            sampler.start()
            meter = CpuMeter(cpu_groups(fleet, lambda: sampler.towns, broker, postgres))

            say(f"1. saturation: {args.prefill} entries in each outbox, then every gateway connects at once")
            for k, (db, instances) in enumerate(configs):
                setup = Setup(f"c{k}", db, instances)
                setups.append(setup)
                setup.start(work, broker, key_path(key_dir), postgres)
                sampler.towns = list(setup.towns)
                if k == len(configs) - 1:
                    expected_before = set(fleet.entry_ids())  # written before this configuration was up
                sat = saturation(fleet, setup, args.prefill, timeout=900, meter=meter)
                results["saturation"].append(sat)
                say(
                    f"  {sat.label}: {sat.events:,} events in {sat.seconds:.1f} s: {sat.rate_total:,.0f} events/s "
                    f"(steady 10→90 %: {sat.rate_steady:,.0f}/s); CPU cores: {cores_text(sat.cores)}"
                )
                if k < len(configs) - 1:
                    fleet.disconnect()
                    setup.stop()
                    say(f"  RSS of {setup.label}: " + ", ".join(f"{t.name} peak {t.rss_peak_mb:.0f} MB"
                                                                 for t in setup.towns))  # fmt: skip
            main_setup = setups[-1]
            assert main_setup.reader is not None
            wait_until(lambda: fleet.depth() == 0, 300, 0.5, "empty outboxes")
            # Every gateway on the main configuration's roster version before anything else is measured.
            wait_until(lambda: len({v["version"] for v in fleet.versions().values()}) == 1, 120, 1.0,
                       "one roster version across the fleet")  # fmt: skip

            per_gw = max(1, round(ENTRIES_PER_BUILDING * args.latency_s / WINDOW_S))
            say(f"2. latency below saturation: {per_gw} entries per gateway in {args.latency_s:.0f} s (x1, the real "
                f"rate)")  # fmt: skip
            results["latency"] = latency(fleet, main_setup, broker, per_gw, args.latency_s)

            say("3. one roster patch (a watch-list entry) to every gateway")
            results["fanout"] = roster_fanout(fleet, main_setup, timeout=60 if args.quick else 300)

            say(f"4. shift-change peak: {ENTRIES_PER_BUILDING} entries per building in 10 min, x{args.compress:g} "
                f"→ {window_s:.0f} s; broker restart at 1/3, SIGKILL of a town instance at 2/3")  # fmt: skip
            results["peak"] = peak(fleet, main_setup, broker, ENTRIES_PER_BUILDING, window_s, expected_before,
                                   timeout=1800, meter=meter)  # fmt: skip

            light_rate = per_gw * args.gateways / args.latency_s
            say(f"5. baseline latency without the fleet: the fleet stopped, the bench publishes {light_rate:,.0f} "
                f"entries/s itself for {args.latency_s:.0f} s")  # fmt: skip
            fleet.stop()
            results["light"] = light_latency(main_setup, broker, light_rate, args.latency_s)
    except BaseException as exc:
        failed = True
        say(f"FAILED: {type(exc).__name__}: {exc}")
        for setup in setups:
            for town in setup.towns:
                if town.log.exists():
                    say(f"--- tail of {town.log.name} ---\n{town.tail(2000)}")
    finally:
        sampler.stop()
        if fleet is not None:
            try:
                fleet.stop()
            except Exception as exc:
                say(f"fleet stop: {exc}")
        for setup in setups:
            try:
                setup.stop(retire=False)
            except Exception as exc:
                say(f"town stop: {exc}")
        broker.stop()
        if postgres is not None:
            postgres.stop()
        shutil.rmtree(fleet_root, ignore_errors=True)
        if args.keep or failed:
            say(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    report(args, results, setups, window_s)
    return 1 if failed else 0


def report(args: argparse.Namespace, r: dict[str, Any], setups: list[Setup], window_s: float) -> None:
    if not setups:
        return
    pg = "PostgreSQL (" + ("fsync off" if args.pg_fsync_off else "durable, fsync on") + "), "
    print()
    print(f"machine: {os.cpu_count()} cores, all on it: mosquitto (persistence on), "
          f"{pg if any(s.db == 'postgresql' for s in setups) else ''}the town instance(s) and the fleet: "
          f"{args.gateways} gateways in {args.processes} processes (nice 10, their stores on tmpfs)")  # fmt: skip
    main_label = f"{args.db}, {args.instances} instance{'s' if args.instances > 1 else ''}"
    print(f"main configuration: {main_label}; the ingest's default batch (500 messages, 5 ms)")
    print("saturation (outboxes pre-filled, every gateway connected at once; committed rows in the town's DB):")
    for s in r["saturation"]:
        print(
            f"  {s.label:<26} {s.events:>8,} events in {s.seconds:6.1f} s = {s.rate_total:>7,.0f} events/s "
            f"(10→90 %: {s.rate_steady:,.0f}/s; first row after {s.connect_s:.1f} s)"
        )
        print(f"  {'':<26} CPU cores used meanwhile: {cores_text(s.cores)}")
    if "latency" not in r:
        return
    lat: Latency = r["latency"]

    def dist(values: list[float]) -> str:
        return f"p50 {pct(values, 50):,.0f} ms, p99 {pct(values, 99):,.0f} ms ({len(values):,})"

    print(f"publish → commit latency at {lat.rate:,.0f} events/s (x1, below saturation), {lat.samples:,} entries:")
    print(f"  the town's part: at the broker → received_at (before COMMIT) {dist(lat.town_rx)}; "
          f"→ visible in the DB (after COMMIT, 50 ms poll) {dist(lat.town_vis)}")  # fmt: skip
    print(f"  the fleet's part: ts (recorded at the gateway) → at the broker {dist(lat.at_broker)}; "
          f"end to end ts → received_at {dist(lat.total_rx)}")  # fmt: skip
    if "light" in r:
        print(
            f"  baseline, the fleet stopped (the bench publishes, same rate): publish → received_at {dist(r['light'])}"
        )
    if "fanout" not in r:
        return
    f: Fanout = r["fanout"]
    print(f"roster patch (one watch-list entry → version {f.version}) to {f.gateways} gateways, from its commit:")
    print(f"  gateways' side: first {f.first_s:.2f} s, half {f.p50_s:.2f} s, all {f.all_gw_s:.2f} s; town's fleet view "
          f"(GET /gateways, 0.25 s poll): all {f.all_town_s:.2f} s")  # fmt: skip
    print(
        "  (committed by another process: the pusher sees it at its next poll, roster.resend_s = 5 s; "
        "up to 5 s of the first gateway's time can be that wait)"
    )
    if "peak" in r:
        print_peak(args, r["peak"], window_s)
    print("town instance RSS (peak, last):")
    for setup in setups:
        for town in setup.towns:
            print(f"  {setup.label:<26} {town.name:<14} {town.rss_peak_mb:6.0f} MB, {town.rss_last_mb:6.0f} MB")


def print_peak(args: argparse.Namespace, p: Peak, window_s: float) -> None:
    print(f"shift-change peak: {args.gateways} x {ENTRIES_PER_BUILDING} = {p.written:,} entries, "
          f"10 min x{args.compress:g} → {window_s:.0f} s ({p.written / window_s:,.0f} events/s asked)")  # fmt: skip
    print(f"  the fleet wrote them by +{p.schedule_end_s:.1f} s ({p.fleet_rate:,.0f} entries/s), entries late by "
          f"{p.late_mean_s:.1f} s mean, {p.late_max_s:.1f} s max")  # fmt: skip
    print(f"  faults: broker restart (down {p.broker_down_s:.1f} s) at 1/3 of the entries committed; town instance "
          f"SIGKILL at 2/3, subscribed again after {p.town_down_s:.1f} s")  # fmt: skip
    print(f"  every entry committed at +{p.all_committed_s:.1f} s; best 5 s: {p.rate_best_5s:,.0f} events/s; "
          f"CPU cores used until the SIGKILL: {cores_text(p.cores)}")  # fmt: skip
    print(f"  lost: {p.lost} (written at a gateway, not in the town's DB); duplicated: {p.rows - p.distinct} "
          f"(count(*) {p.rows:,} vs count(distinct id) {p.distinct:,}); rows not from the fleet: {p.extra}; "
          f"outbox rows left: {p.fleet_depth}")  # fmt: skip
    if p.lost_examples:
        times = sorted(e.split(" ts ")[1].split(" id ")[0] for e in p.lost_examples)
        gateways = {e.split(" ")[0] for e in p.lost_examples}
        print(f"    lost: written {times[0]} … {times[-1]} UTC at {len(gateways)} gateways, e.g.:")
        for example in p.lost_examples[:3]:
            print(f"      {example}")
    print(
        f"  missing seqs in the town's fleet view: {p.missing_seqs:,} (the entries written before this "
        f"configuration was up, sent to the earlier configurations' databases: {p.before:,})"
    )


if __name__ == "__main__":
    sys.exit(main())

"""The door under HTTP load: one scenario shared by bench/door_under_load.py and its acceptance test.

A whole gateway (`python -m gateway run`, unchanged) on real local peers, as in
bench/card_latency.py: mosquitto, socat pty pairs, a wiegand-text card reader
and pymodbus's RTU server as the relay board. Its store holds a roster
(bench.roster.fill_roster) and a large entry log (bench.police_queries.load) so
that police searches and CSV exports do real work.

A card is swiped every 2 s, first on the idle daemon (baseline), then while a
separate load process runs: anonymous clients polling /ready, police clients
searching and exporting, an admin enrolling five 4000x3000 photos in a loop and
an anonymous client posting a 200 MB body. Measured: each swipe's frame→coil
write latency (the board timestamps the request's arrival), the gateway's own
logged decision time, HTTP outcomes per client kind, the big body's answers,
and the RSS of the daemon and of its child processes.

The load runs in its own process: 55 client threads in this one would hold
the GIL that the relay board's thread needs to timestamp writes, and the
latency measured would be the bench's, not the gateway's.
"""

from __future__ import annotations

import contextlib
import io
import math
import multiprocessing
import os
import random
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path
from typing import Any

from bench.roster import fill_roster
from drivers.simulators import SimulatedCardReader, SimulatedRelayBoard
from gateway.store.db import database_path, open_store
from testing.gateway import API, DoorPeers, GatewayProcess, gateway_config
from testing.peers import Mosquitto

FACE_TENANT = "load-face-tenant"
# The log line of a card decision: "entry main card 123/34 -> granted (granted) tenant=… id=… in 1.23 ms".
DECISION_LINE = re.compile(rb"entry (\S+) card (\d+)/(\d+) -> (\w+) \((\w+)\)[^\n]*? in ([0-9.]+) ms")


@dataclass(frozen=True)
class Plan:
    """How big the store is and how hard the load pushes; bench and test differ only here."""

    tenants: int = 100_000
    entries: int = 200_000
    swipes: int = 60  # under load, one every swipe_every_s
    baseline_swipes: int = 10  # on the idle daemon, same run, before the load
    warmup_swipes: int = 2  # first swipes after start fill caches: not counted
    swipe_every_s: float = 2.0
    swipe_timeout_s: float = 5.0  # a coil write later than this counts as "door did not open"
    ready_clients: int = 48
    police_clients: int = 6
    photos: int = 5
    photo_size: tuple[int, int] = (4000, 3000)
    big_body_bytes: int = 200 * 1024 * 1024
    big_posts: int = 3
    pulse_ms: int = 200
    seed: int = 7


# --- processes: liveness and RSS -------------------------------------------------------------


def rss_mb(pid: int) -> float | None:
    """VmRSS of a live process in MB, None once it is gone (or a zombie, which has no VmRSS)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return None


def descendants(pid: int) -> list[int]:
    """Every live descendant of `pid`, from /proc/*/stat (psutil is not a dependency)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        # "pid (comm) state ppid …": comm may hold spaces and parentheses, so split after the last ')'.
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (tells a pid from a reused one); None if gone or zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # fields 3.. of proc(5): state, ppid, …, starttime (22)
    return None if fields[0] in ("Z", "X") else int(fields[19])


def command_of(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return "?"
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()[:100] or "?"


@dataclass
class RssSample:
    t: float  # time.monotonic()
    daemon_mb: float | None
    children_mb: dict[int, float]


class ProcessWatch:
    """Samples the daemon's and its children's RSS every `interval_s`, and notes when the daemon dies."""

    def __init__(
        self, proc: subprocess.Popen[bytes], interval_s: float = 0.2, seen: dict[int, int] | None = None
    ) -> None:
        self.proc = proc
        self.interval_s = interval_s
        self.seen = seen if seen is not None else {}  # every descendant ever sampled: pid -> start time
        self.samples: list[RssSample] = []
        self.commands: dict[int, str] = {}
        self.died_at: float | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="rss-watch", daemon=True)

    def sample(self) -> RssSample:
        kids: dict[int, float] = {}
        for pid in descendants(self.proc.pid):
            mb = rss_mb(pid)
            if mb is not None:
                kids[pid] = mb
                if pid not in self.commands:
                    self.commands[pid] = command_of(pid)
                    started = start_time(pid)
                    if started is not None:
                        self.seen.setdefault(pid, started)
        s = RssSample(time.monotonic(), rss_mb(self.proc.pid), kids)
        with self._lock:
            self.samples.append(s)
        return s

    def alive(self) -> bool:
        if self.died_at is None and self.proc.poll() is not None:
            self.died_at = time.monotonic()
        return self.died_at is None

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            if self.alive():
                self.sample()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def between(self, t0: float, t1: float) -> list[RssSample]:
        with self._lock:
            return [s for s in self.samples if t0 <= s.t <= t1]


# --- the store, photos ---------------------------------------------------------------------


def load_entries(data_dir: Path, rows: int, seed: int) -> None:
    """`rows` entries over 3 years via bench.police_queries' bulk loader, into a store the migrations made."""
    from bench.police_queries import load  # numpy-vectorised executemany; imported only where needed

    engine, _ = open_store(data_dir)
    engine.dispose()
    path = database_path(data_dir)
    with contextlib.redirect_stdout(io.StringIO()):  # it prints its index build time
        load(path, rows, seed)
    # The loader numbers entries 1..rows, but a new entry takes its seq from the outbox's AUTOINCREMENT:
    # continue after them, as a gateway that had sent these entries would, or the first swipe collides.
    import sqlite3

    db = sqlite3.connect(path)
    try:
        with db:
            top = db.execute("SELECT coalesce(max(seq), 0) FROM entries").fetchone()[0]
            if db.execute("UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = 'outbox'", (top,)).rowcount == 0:
                db.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('outbox', ?)", (top,))
    finally:
        db.close()


def make_photos(faces_dir: Path, out: Path, count: int, size: tuple[int, int], quality: int = 90) -> list[Path]:
    """`count` real face photos of one person, cropped to the aspect of `size` and upscaled to it, as JPEG."""
    from PIL import Image

    people = sorted(p for p in (faces_dir / "lfw_subset").iterdir() if p.is_dir()) if faces_dir.is_dir() else []
    person = next((p for p in people if len(list(p.glob("*.jpg"))) >= count), None)
    if person is None:
        raise FileNotFoundError(f"no person with {count} photos under {faces_dir / 'lfw_subset'}")
    out.mkdir(parents=True, exist_ok=True)
    width, height = size
    paths = []
    for i, src in enumerate(sorted(person.glob("*.jpg"))[:count]):
        img = Image.open(src).convert("RGB")
        # Centre crop to width:height first, so that the face is not stretched.
        w, h = img.size
        crop_h = min(h, round(w * height / width))
        crop_w = min(w, round(crop_h * width / height))
        left, top = (w - crop_w) // 2, (h - crop_h) // 2
        big = img.crop((left, top, left + crop_w, top + crop_h)).resize(size, Image.Resampling.BICUBIC)
        path = out / f"face-{i}.jpg"
        big.save(path, "JPEG", quality=quality)
        paths.append(path)
    return paths


# --- the gateway on its peers --------------------------------------------------------------


@dataclass
class Swipe:
    phase: str  # "warmup", "baseline", "load"
    card: int
    t0: float  # time.monotonic() once the frame's last byte was in the pty
    t_before: float = 0.0  # time.monotonic() just before the frame was written
    early: bool = False  # the coil write arrived before write() had returned (this process was descheduled)
    relay_ms: float | None = None  # frame → coil ON write at the board; None: no write within the timeout
    write_index: int | None = None  # of that write in the board's history
    late_relay_ms: float | None = None  # when relay_ms is None: an ON write found later, before the next swipe
    off_seen: bool = False
    skipped: str | None = None  # why the swipe was not made (daemon dead)
    decision: str | None = None  # from the gateway's log
    reason: str | None = None
    logged_ms: float | None = None


def _poll(predicate: Callable[[], Any], timeout: float, interval: float = 0.002) -> Any:
    """The predicate's first truthy value, or None after `timeout` (never raises on timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


class LoadedGateway:
    """The daemon with a full store, its serial peers and broker. Use as a context manager: close() undoes all."""

    def __init__(self, work: Path, plan: Plan, say: Callable[[str], None] = print) -> None:
        self.work = work
        self.plan = plan
        self.say = say
        self.data_dir = work / "data"
        self.gateway: GatewayProcess | None = None
        self.tokens: dict[str, str] = {}
        self.cards: list[int] = []
        self.tree: dict[int, int] = {}  # the daemon's descendants ever seen: pid -> start time
        self.leftovers: list[str] = []  # of them, those still running 5 s after the daemon stopped
        self.board: SimulatedRelayBoard | None = None
        self.card: SimulatedCardReader | None = None
        self._stack = contextlib.ExitStack()

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        return self.gateway.proc if self.gateway is not None else None

    @property
    def port(self) -> int:
        assert self.gateway is not None
        return self.gateway.api_port

    @property
    def base(self) -> str:
        assert self.gateway is not None
        return self.gateway.base

    def __enter__(self) -> LoadedGateway:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Daemon (and anything it spawned) first, then board, ports and broker; each step runs even if one fails."""
        self._stack.close()

    # --- set-up ----------------------------------------------------------------------------
    def fill_store(self) -> None:
        t = time.perf_counter()
        self.cards = fill_roster(self.data_dir, self.plan.tenants)
        load_entries(self.data_dir, self.plan.entries, self.plan.seed)
        self.say(f"store: {self.plan.tenants:,} tenants and cards, {self.plan.entries:,} entries"
                 f" in {time.perf_counter() - t:.1f} s")  # fmt: skip

    def start(self) -> None:
        broker = Mosquitto(self.work / "broker")
        broker.start()
        self._stack.callback(broker.stop)
        peers = DoorPeers(self.work / "ports", baudrate=115200)
        self._stack.callback(peers.close)
        self.board, self.card = peers.board, peers.card
        cfg = gateway_config(
            self.data_dir, broker.port, gateway_id="door-load",
            # The loaded entries span 3 years: the start-up pruning must not delete two thirds of them under load.
            retention={"entries_days": 3650},
            **peers.sections(self.plan.pulse_ms, poll_ms=200, inputs=False),
        )  # fmt: skip
        # Its own session: the daemon and whatever it spawns (an API child) form one group that close() can end.
        self.gateway = GatewayProcess(self.work, cfg, new_session=True)
        self.gateway.spawn()
        self._stack.callback(self._stop_daemon)
        self.gateway.wait_ready(60)
        peers.wait_polled()
        self._users()

    def _stop_daemon(self) -> None:
        gateway, proc = self.gateway, self.proc
        if gateway is None or proc is None:
            return
        if proc.poll() is None:
            for pid in descendants(proc.pid):
                started = start_time(pid)
                if started is not None:
                    self.tree.setdefault(pid, started)
            try:
                gateway.stop(20)
            except AssertionError:
                self.say("daemon did not stop within 20 s of SIGTERM: killed")

        # Its children should end with it. Those that do not (orphans re-parented to init, possibly in a
        # process group of their own) are reported, then killed by pid: same pid *and* start time only.
        def left() -> list[int]:
            return [pid for pid, started in self.tree.items() if start_time(pid) == started]

        _poll(lambda: not left(), 5, 0.1)
        for pid in left():
            self.leftovers.append(f"pid {pid}: {command_of(pid)}")
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        gateway.killpg()  # and anything of its group that was never sampled

    def _users(self) -> None:
        """The first start's admin, a police user, and the tenant whose faces the admin enrols."""
        assert self.gateway is not None
        self.tokens["admin"] = self.gateway.admin_token()
        with self.gateway.client(self.tokens["admin"]) as c:
            r = c.post(f"{API}/users", json={"name": "police-load", "role": "police"})
            if r.status_code != 201:
                raise RuntimeError(f"creating the police user: {r.status_code} {r.text}")
            self.tokens["police"] = r.json()["token"]
            r = c.post(f"{API}/tenants", json={"id": FACE_TENANT, "name": "Face Load", "permit_number": "P-FACE-LOAD",
                                                "valid_to": str(date.today() + timedelta(days=365))})  # fmt: skip
            if r.status_code != 201:
                raise RuntimeError(f"creating the face tenant: {r.status_code} {r.text}")

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def log_tail(self, chars: int = 4000) -> str:
        return self.gateway.log_tail(chars) if self.gateway is not None else ""

    # --- swipes --------------------------------------------------------------------------------
    def swipe(self, card: int, phase: str, alive: Callable[[], bool]) -> Swipe:
        """One Wiegand 34 frame; waits (bounded) for the coil ON write and then the pulse's OFF write."""
        assert self.board is not None and self.card is not None
        board, plan = self.board, self.plan
        before = len(board.write_history())
        frame = self.card.frame(card, 34)
        t_before = time.monotonic()
        self.card.write_raw(frame)
        t0 = time.monotonic()  # the frame's last byte is now in the pty
        s = Swipe(phase, card, t0, t_before=t_before)

        def on_write() -> tuple[float, int] | None:
            history = board.write_history()
            for i in range(before, len(history)):
                t, coil, value = history[i]
                # From t_before: on a busy machine this process may lose the CPU between write() and
                # taking t0, long enough for the gateway to answer in between.
                if coil == 0 and value and t >= t_before:
                    return t, i
            return None if alive() else (-1.0, -1)  # a dead daemon writes nothing more: stop waiting

        found = _poll(on_write, plan.swipe_timeout_s)
        if found and found[1] >= 0:
            t_on, index = found
            s.early = t_on < t0
            # In that rare case the only sound figure is from before the write (an upper bound).
            s.relay_ms = (t_on - (t_before if s.early else t0)) * 1000
            s.write_index = index

            # Wait for the pulse's end so that the next swipe writes ON again, not into a still-open door.
            def off_write() -> bool:
                history = board.write_history()
                return any(c == 0 and not v for _, c, v in history[index + 1 :]) or not alive()

            s.off_seen = bool(_poll(off_write, plan.pulse_ms / 1000 + plan.swipe_timeout_s)) and alive()
        return s

    def run_swipes(self, cards: list[int], phase: str, alive: Callable[[], bool]) -> list[Swipe]:
        """One swipe every swipe_every_s (the next one at once if a swipe took longer)."""
        done: list[Swipe] = []
        t_next = time.monotonic()
        for card in cards:
            time.sleep(max(0.0, t_next - time.monotonic()))
            if not alive():
                done.append(Swipe(phase, card, time.monotonic(), skipped="daemon dead"))
                continue
            done.append(self.swipe(card, phase, alive))
            t_next = max(t_next + self.plan.swipe_every_s, time.monotonic())
        return done

    def decisions(self) -> dict[int, tuple[str, str, float]]:
        """card → (decision, reason, logged ms) from the gateway's own log lines."""
        found: dict[int, tuple[str, str, float]] = {}
        assert self.gateway is not None
        for m in DECISION_LINE.finditer(self.gateway.log_path.read_bytes()):
            found[int(m.group(2))] = (m.group(4).decode(), m.group(5).decode(), float(m.group(6)))
        return found


# --- the load (runs in its own process) -----------------------------------------------------


@dataclass(frozen=True)
class LoadSpec:
    host: str
    port: int
    admin_token: str
    police_token: str
    face_tenant: str
    photo_paths: list[str]
    duration_s: float  # upper bound; the parent normally stops the load earlier
    spread_s: float  # the planned length of the load, over which the big posts are spread
    ready_clients: int
    police_clients: int
    big_body_bytes: int
    big_posts: int
    seed: int
    max_requests_per_client: int = 1_000_000  # a second bound besides time, so that no loop is unbounded
    join_grace_s: float = 20.0  # how long clients may finish an in-flight request after stop


@dataclass
class BigBodyResult:
    status: int | None  # None: no status line before the connection closed or the time ran out
    sent: int  # body bytes sent before the answer came (or the connection closed)
    total: int
    elapsed_s: float
    error: str | None = None

    @property
    def refused_early(self) -> bool:
        """Answered before the whole body was sent: the server did not read it (kernel buffers aside)."""
        return self.status is not None and self.sent < self.total


class _Stats:
    """Per client kind: outcomes (HTTP status or error name) and latencies; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.outcomes: dict[str, Counter[str]] = {}
        self.latencies: dict[str, list[float]] = {}
        self.five_xx: list[str] = []
        self.big: list[BigBodyResult] = []
        self.extra: Counter[str] = Counter()

    def add(self, kind: str, outcome: int | str, t0: float, body: str = "") -> None:
        ms = (time.perf_counter() - t0) * 1000
        with self._lock:
            self.outcomes.setdefault(kind, Counter())[str(outcome)] += 1
            self.latencies.setdefault(kind, []).append(ms)
            if isinstance(outcome, int) and outcome >= 500 and len(self.five_xx) < 20:
                self.five_xx.append(f"{kind} {outcome}: {body[:200]}")

    def add_big(self, result: BigBodyResult) -> None:
        with self._lock:
            self.big.append(result)

    def count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self.extra[key] += n

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "outcomes": {k: dict(v) for k, v in self.outcomes.items()},
                "latencies_ms": {k: list(v) for k, v in self.latencies.items()},
                "five_xx": list(self.five_xx),
                "big_body": [asdict(b) for b in self.big],
                "extra": dict(self.extra),
            }


def _error_name(exc: BaseException) -> str:
    return f"error:{type(exc).__name__}"


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat()


def _search_params(rng: random.Random) -> dict[str, Any]:
    from bench.police_queries import CARD_DENIALS, DOORS, END, START, TENANTS

    def window(days: int) -> dict[str, str]:
        since = START + timedelta(days=rng.randrange(0, (END - START).days - days + 1))
        return {"since": _iso(since), "until": _iso(since + timedelta(days=days))}

    choice = rng.randrange(6)
    if choice == 0:
        return {"tenant_id": f"t{rng.randrange(TENANTS):04d}"} | window(30)
    if choice == 1:
        return {"door": rng.choice(DOORS)} | window(1)
    if choice == 2:
        return {"decision": "denied"} | window(7)
    if choice == 3:
        return {"reason": rng.choice(CARD_DENIALS)} | window(30)
    if choice == 4:
        return {"door": rng.choice(DOORS), "decision": "denied"}
    return {}  # newest first, no filter


def _export_params(rng: random.Random) -> dict[str, Any]:
    from bench.police_queries import DOORS, END, TENANTS

    choice = rng.randrange(4)
    if choice == 0:
        return {"door": rng.choice(DOORS), "since": _iso(END - timedelta(days=90))}
    if choice == 1:
        return {"since": _iso(END - timedelta(days=120))}
    if choice == 2:
        return {"tenant_id": f"t{rng.randrange(TENANTS):04d}"}
    return {}  # the whole log


class _Load:
    def __init__(self, spec: LoadSpec, stop: MpEvent) -> None:
        self.spec = spec
        self.stop = stop
        self.base = f"http://{spec.host}:{spec.port}"
        self.deadline = time.monotonic() + spec.duration_s
        self.stats = _Stats()

    def running(self, n: int) -> bool:
        return not self.stop.is_set() and time.monotonic() < self.deadline and n < self.spec.max_requests_per_client

    def pause_after_error(self) -> None:
        self.stop.wait(0.1)  # a refused connection returns at once: do not spin on a dead daemon

    def ready_client(self) -> None:
        import httpx

        n = 0
        with httpx.Client(base_url=self.base, timeout=10) as c:
            while self.running(n):
                n += 1
                t0 = time.perf_counter()
                try:
                    r = c.get(f"{API}/ready")
                    self.stats.add("ready", r.status_code, t0, r.text if r.status_code >= 500 else "")
                except httpx.HTTPError as exc:
                    self.stats.add("ready", _error_name(exc), t0)
                    self.pause_after_error()

    def police_client(self, index: int) -> None:
        import httpx

        rng = random.Random(self.spec.seed * 1000 + index)
        headers = {"Authorization": f"Bearer {self.spec.police_token}"}
        n = 0
        with httpx.Client(base_url=self.base, headers=headers, timeout=60) as c:
            while self.running(n):
                # A search, followed by a few pages of its cursor …
                params = _search_params(rng)
                cursor: str | None = None
                for _ in range(rng.randint(1, 4)):
                    if not self.running(n):
                        break
                    n += 1
                    t0 = time.perf_counter()
                    try:
                        r = c.get(f"{API}/entries", params=params | ({"cursor": cursor} if cursor else {}))
                        self.stats.add("police-search", r.status_code, t0, r.text if r.status_code >= 500 else "")
                    except httpx.HTTPError as exc:
                        self.stats.add("police-search", _error_name(exc), t0)
                        self.pause_after_error()
                        break
                    cursor = r.json().get("next_cursor") if r.status_code == 200 else None
                    if cursor is None:
                        break
                if not self.running(n):
                    break
                # … then an export, streamed and read to its end.
                n += 1
                t0 = time.perf_counter()
                try:
                    with c.stream("GET", f"{API}/entries.csv", params=_export_params(rng)) as r:
                        size = lines = 0
                        head = b""
                        for chunk in r.iter_bytes():
                            size += len(chunk)
                            lines += chunk.count(b"\n")
                            head = head or chunk[:200]
                    body = head.decode(errors="replace") if r.status_code >= 500 else ""
                    self.stats.add("police-export", r.status_code, t0, body)
                    if r.status_code == 200:
                        self.stats.count("export_rows", max(0, lines - 1))
                        self.stats.count("export_bytes", size)
                except httpx.HTTPError as exc:  # includes a stream cut short mid-way
                    self.stats.add("police-export", _error_name(exc), t0)
                    self.pause_after_error()

    def admin_client(self) -> None:
        import httpx

        photos = [(f"face-{i}.jpg", Path(p).read_bytes()) for i, p in enumerate(self.spec.photo_paths)]
        self.stats.count("photo_bytes", sum(len(d) for _, d in photos))
        headers = {"Authorization": f"Bearer {self.spec.admin_token}"}
        tenant = self.spec.face_tenant
        n = 0
        with httpx.Client(base_url=self.base, headers=headers, timeout=120) as c:
            while self.running(n):
                n += 1
                t0 = time.perf_counter()
                try:
                    files = [("photos", (name, data, "image/jpeg")) for name, data in photos]
                    r = c.post(f"{API}/tenants/{tenant}/faces", files=files)
                    self.stats.add("admin-faces", r.status_code, t0, r.text if r.status_code >= 500 else "")
                    if r.status_code == 201:
                        self.stats.count("faces_stored", r.json().get("stored", 0))
                        # Remove them again: every round enrols from scratch and the table stays small.
                        t0 = time.perf_counter()
                        r = c.delete(f"{API}/tenants/{tenant}/faces")
                        self.stats.add("admin-delete", r.status_code, t0, r.text if r.status_code >= 500 else "")
                except httpx.HTTPError as exc:
                    self.stats.add("admin-faces", _error_name(exc), t0)
                    self.pause_after_error()

    def big_body_client(self) -> None:
        # Spread the posts over the run: the first one soon, the others evenly after it.
        spacing = max(1.0, self.spec.spread_s / max(1, self.spec.big_posts))
        for i in range(self.spec.big_posts):
            if self.stop.wait(1.0 if i == 0 else spacing) or time.monotonic() >= self.deadline:
                break
            t0 = time.perf_counter()
            result = post_big_body(self.spec.host, self.spec.port, f"{API}/tenants", self.spec.big_body_bytes,
                                   timeout_s=60, stop=self.stop)  # fmt: skip
            self.stats.add_big(result)
            self.stats.add("big-body", result.status if result.status is not None else f"error:{result.error}", t0)

    def run(self, started: MpEvent) -> dict[str, Any]:
        threads = [threading.Thread(target=self.ready_client, name=f"ready-{i}", daemon=True)
                   for i in range(self.spec.ready_clients)]  # fmt: skip
        threads += [threading.Thread(target=self.police_client, args=(i,), name=f"police-{i}", daemon=True)
                    for i in range(self.spec.police_clients)]  # fmt: skip
        threads.append(threading.Thread(target=self.admin_client, name="admin", daemon=True))
        threads.append(threading.Thread(target=self.big_body_client, name="big-body", daemon=True))
        t_start = time.monotonic()
        for t in threads:
            t.start()
        started.set()
        # Bounded: the deadline or the parent's stop, then a grace for in-flight requests.
        self.stop.wait(max(0.0, self.deadline - time.monotonic()))
        self.stop.set()
        t_stop = time.monotonic()
        for t in threads:
            t.join(max(0.0, t_stop + self.spec.join_grace_s - time.monotonic()))
        result = self.stats.snapshot()
        result["elapsed_s"] = t_stop - t_start
        result["unfinished"] = [t.name for t in threads if t.is_alive()]
        return result


def _load_main(spec: LoadSpec, stop: MpEvent, started: MpEvent, out: Connection) -> None:
    """Entry point of the load process: runs the clients, then sends the stats back."""
    try:
        result = _Load(spec, stop).run(started)
    except BaseException as exc:  # report it rather than leave the parent waiting
        result = {"crashed": repr(exc)}
        started.set()
    out.send(result)
    out.close()


class LoadProcess:
    """The load in a spawned process; `finish()` stops it and returns its stats. Always bounded."""

    def __init__(self, spec: LoadSpec) -> None:
        self.spec = spec
        ctx = multiprocessing.get_context("spawn")  # no fork of a process holding threads and a pty
        self.stop = ctx.Event()
        self.started = ctx.Event()
        self._recv, send = ctx.Pipe(duplex=False)
        self.proc = ctx.Process(target=_load_main, args=(spec, self.stop, self.started, send), name="load")
        self.proc.start()
        send.close()
        self.t_start = time.monotonic()

    def wait_started(self, timeout: float = 60) -> None:
        if not self.started.wait(timeout):
            raise RuntimeError(f"load process did not start its clients within {timeout} s")

    def finish(self) -> dict[str, Any]:
        self.stop.set()
        result: dict[str, Any] = {"crashed": "no result from the load process"}
        if self._recv.poll(self.spec.join_grace_s + 30):
            with contextlib.suppress(EOFError):
                result = self._recv.recv()
        self.close()
        return result

    def close(self) -> None:
        self.stop.set()
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)
        self._recv.close()

    def __enter__(self) -> LoadProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _json_body(total: int, chunk: int = 1 << 20) -> Iterator[bytes]:
    """A syntactically valid TenantIn JSON of exactly `total` bytes, made on the fly (never held whole)."""
    head = b'{"id": "big-body", "permit_number": "P-BIG", "valid_to": "2030-01-01", "name": "'
    tail = b'"}'
    filler = b"a" * chunk
    left = total - len(head) - len(tail)
    if left < 0:
        raise ValueError(f"a body of {total} bytes is too small")
    yield head
    while left > 0:
        n = min(left, chunk)
        yield filler if n == chunk else filler[:n]
        left -= n
    yield tail


def post_big_body(
    host: str, port: int, path: str, total: int, *, timeout_s: float = 60, stop: MpEvent | None = None
) -> BigBodyResult:
    """POST `total` bytes without a token on a raw socket, reading the answer while still sending.

    A server may answer (401/413) and close before the body is through; an HTTP client library would
    then report a broken pipe and lose the answer. Here the socket is polled for a status line before
    every chunk, and after a reset whatever arrived is still read.
    """
    t0 = time.monotonic()
    deadline = t0 + timeout_s
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {total}\r\nConnection: close\r\n\r\n").encode()  # fmt: skip
    chunks = _json_body(total)
    pending = memoryview(head)
    sent = 0
    body_started = False
    writing = True
    received = b""

    def result(status: int | None, error: str | None = None) -> BigBodyResult:
        return BigBodyResult(status, sent, total, round(time.monotonic() - t0, 3), error)

    try:
        sock = socket.create_connection((host, port), timeout=5)
    except OSError as exc:
        return result(None, type(exc).__name__)
    with sock:
        sock.setblocking(False)
        while time.monotonic() < deadline and not (stop is not None and stop.is_set() and writing):
            readable, writable, _ = select.select([sock], [sock] if writing else [], [], 0.5)
            if readable:
                try:
                    data = sock.recv(65536)
                except (ConnectionResetError, BrokenPipeError):
                    data = b""
                if not data:
                    return result(None, "closed before a status line")
                received += data
                if b"\r\n" in received:
                    line = received.split(b"\r\n", 1)[0].decode("latin-1")
                    parts = line.split()
                    if len(parts) >= 2 and parts[0].startswith("HTTP/") and parts[1].isdigit():
                        return result(int(parts[1]))
                    return result(None, f"bad status line {line[:60]!r}")
                continue
            if writable and writing:
                if not pending:
                    try:
                        pending = memoryview(next(chunks))
                        body_started = True
                    except StopIteration:
                        writing = False  # all sent: now only wait for the answer
                        continue
                try:
                    n = sock.send(pending)
                except BlockingIOError:
                    continue
                except (BrokenPipeError, ConnectionResetError):
                    writing = False  # the server closed its side; an answer may still be waiting to be read
                    continue
                if body_started:
                    sent += n
                pending = pending[n:]
        return result(None, "stopped" if stop is not None and stop.is_set() else f"no answer within {timeout_s:.0f} s")


# --- the scenario and its report ------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


@dataclass
class Report:
    plan: Plan
    cores: int
    swipes: list[Swipe] = field(default_factory=list)
    load: dict[str, Any] = field(default_factory=dict)
    load_s: float = 0.0
    daemon_pid: int = 0
    daemon_exit: int | None = None  # None: alive at the end
    died_after_load_start_s: float | None = None
    rss_start_mb: float | None = None
    rss_peak_mb: float | None = None
    children: dict[int, dict[str, Any]] = field(default_factory=dict)  # pid → command, start_mb, peak_mb
    children_start_mb: float = 0.0
    children_peak_mb: float = 0.0  # peak of the sum
    log_tail: str = ""
    stray_relay_writes: int = 0  # coil ON writes that no swipe accounts for
    leftovers: list[str] = field(default_factory=list)  # the daemon's descendants alive 5 s after it stopped

    def phase(self, name: str) -> list[Swipe]:
        return [s for s in self.swipes if s.phase == name]

    @property
    def rss_growth_mb(self) -> float | None:
        if self.rss_start_mb is None or self.rss_peak_mb is None:
            return None
        return self.rss_peak_mb - self.rss_start_mb

    def five_xx(self) -> dict[str, int]:
        return {f"{kind} {status}": n for kind, outcomes in self.load.get("outcomes", {}).items()
                for status, n in outcomes.items() if status.isdigit() and int(status) >= 500}  # fmt: skip

    def big_bodies(self) -> list[BigBodyResult]:
        return [BigBodyResult(**b) for b in self.load.get("big_body", [])]


def match_late_writes(swipes: list[Swipe], history: list[tuple[float, int, bool]]) -> int:
    """Give each swipe that timed out the first unclaimed ON write before the next swipe; count the rest."""
    claimed = {s.write_index for s in swipes if s.write_index is not None}
    made = sorted((s for s in swipes if s.skipped is None), key=lambda s: s.t0)
    for i, s in enumerate(made):
        if s.write_index is not None:
            continue
        until = made[i + 1].t_before if i + 1 < len(made) else math.inf
        for index, (t, coil, value) in enumerate(history):
            if coil == 0 and value and s.t_before <= t < until and index not in claimed:
                s.late_relay_ms = (t - s.t0) * 1000
                claimed.add(index)
                break
    first = made[0].t_before if made else math.inf
    return sum(1 for i, (t, c, v) in enumerate(history) if c == 0 and v and t >= first and i not in claimed)


def run_scenario(work: Path, plan: Plan, faces_dir: Path, say: Callable[[str], None] = print) -> Report:
    """Set up, baseline swipes, swipes under load, tear down (always). Returns what was measured."""
    report = Report(plan=plan, cores=os.cpu_count() or 0)
    photos = make_photos(faces_dir, work / "photos", plan.photos, plan.photo_size)
    rng = random.Random(plan.seed)
    # Python's default GIL hand-over interval is 5 ms: the relay board's thread here must get it sooner.
    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)
    with LoadedGateway(work, plan, say) as gw:
        gw.fill_store()
        gw.start()
        assert gw.proc is not None
        report.daemon_pid = gw.proc.pid
        say(f"gateway pid {gw.proc.pid} up on {gw.base}")
        watch = ProcessWatch(gw.proc, seen=gw.tree)
        watch.start()
        # Distinct cards, so that each swipe's log line is found by its card number.
        cards = rng.sample(gw.cards, plan.warmup_swipes + plan.baseline_swipes + plan.swipes)
        try:
            report.swipes += gw.run_swipes(cards[: plan.warmup_swipes], "warmup", watch.alive)
            report.swipes += gw.run_swipes(cards[plan.warmup_swipes : plan.warmup_swipes + plan.baseline_swipes],
                                           "baseline", watch.alive)  # fmt: skip
            say(f"baseline: {plan.baseline_swipes} swipes on the idle daemon done")
            start = watch.sample()
            report.rss_start_mb = start.daemon_mb
            report.children_start_mb = sum(start.children_mb.values())
            spec = LoadSpec(
                host="127.0.0.1", port=gw.port, admin_token=gw.tokens["admin"], police_token=gw.tokens["police"],
                face_tenant=FACE_TENANT, photo_paths=[str(p) for p in photos],
                duration_s=plan.swipes * plan.swipe_every_s + plan.swipe_timeout_s + 30,
                spread_s=plan.swipes * plan.swipe_every_s,
                ready_clients=plan.ready_clients, police_clients=plan.police_clients,
                big_body_bytes=plan.big_body_bytes, big_posts=plan.big_posts, seed=plan.seed,
            )  # fmt: skip
            t_load = time.monotonic()
            with LoadProcess(spec) as load:
                load.wait_started()
                say(f"load: {plan.ready_clients} /ready, {plan.police_clients} police, 1 admin, 1 big body;"
                    f" {plan.swipes} swipes every {plan.swipe_every_s:g} s")  # fmt: skip
                time.sleep(1.0)  # let every client connect before the first swipe under load
                report.swipes += gw.run_swipes(cards[plan.warmup_swipes + plan.baseline_swipes :], "load", watch.alive)
                report.load = load.finish()
            t_end = time.monotonic()
            report.load_s = t_end - t_load
            if gw.board is not None:
                report.stray_relay_writes = match_late_writes(report.swipes, gw.board.write_history())
        finally:
            watch.stop()
            sys.setswitchinterval(old_interval)
        alive = watch.alive()
        report.daemon_exit = None if alive else gw.proc.returncode
        if watch.died_at is not None:
            report.died_after_load_start_s = watch.died_at - t_load
        window = watch.between(t_load, t_end)
        peaks = [s.daemon_mb for s in window if s.daemon_mb is not None]
        report.rss_peak_mb = max(peaks, default=report.rss_start_mb)
        for s in window:
            for pid, mb in s.children_mb.items():
                child = report.children.setdefault(
                    pid, {"command": watch.commands.get(pid, "?"), "start_mb": mb, "peak_mb": mb}
                )
                child["peak_mb"] = max(child["peak_mb"], mb)
        report.children_peak_mb = max((sum(s.children_mb.values()) for s in window), default=0.0)
        logged = gw.decisions()
        for s in report.swipes:
            if s.card in logged:
                s.decision, s.reason, s.logged_ms = logged[s.card]
        report.log_tail = gw.log_tail()
    report.leftovers = gw.leftovers  # known only once close() stopped the daemon
    return report


def format_report(r: Report) -> str:
    p = r.plan
    lines = [
        f"machine: {r.cores} cores; roster {p.tenants:,} tenants and cards; {p.entries:,} entries in the log",
        f"load: {r.load_s:.1f} s; {p.ready_clients} anonymous /ready pollers, {p.police_clients} police"
        f" (search + CSV export), 1 admin enrolling {p.photos} {p.photo_size[0]}x{p.photo_size[1]} photos,"
        f" 1 anonymous {p.big_body_bytes / 2**20:.0f} MB body x{p.big_posts}",
    ]

    def lat(name: str, values: list[float]) -> str:
        if not values:
            return f"{name}: no values"
        return (f"{name}: p50 {percentile(values, 50):.2f}  p95 {percentile(values, 95):.2f}"
                f"  p99 {percentile(values, 99):.2f}  max {max(values):.2f}")  # fmt: skip

    for phase, title in (("baseline", "idle daemon (baseline)"), ("load", "under load")):
        swipes = r.phase(phase)
        granted = sum(1 for s in swipes if s.decision == "granted")
        opened = sum(1 for s in swipes if s.relay_ms is not None)
        skipped = sum(1 for s in swipes if s.skipped)
        not_made = f", {skipped} not made (daemon dead)" if skipped else ""
        lines.append(f"{title}: {len(swipes)} swipes, granted {granted}/{len(swipes)}, relay written"
                     f" {opened}/{len(swipes)}{not_made}")  # fmt: skip
        lines.append("  " + lat("swipe→relay write ms", [s.relay_ms for s in swipes if s.relay_ms is not None]))
        lines.append("  " + lat("decision as logged ms", [s.logged_ms for s in swipes if s.logged_ms is not None]))
    for s in r.swipes:
        if s.relay_ms is None and s.skipped is None:
            late = f"{s.late_relay_ms:.0f} ms (late)" if s.late_relay_ms is not None else "none seen"
            logged = f"{s.logged_ms:.2f} ms" if s.logged_ms is not None else "n/a"
            lines.append(f"  {s.phase} swipe card {s.card}: no relay write within {p.swipe_timeout_s:g} s;"
                         f" decision {s.decision} logged {logged}; relay write {late}")  # fmt: skip
    if r.stray_relay_writes:
        lines.append(f"relay ON writes matched to no swipe: {r.stray_relay_writes}")
    early = sum(1 for s in r.swipes if s.early)
    if early:
        lines.append(f"swipes whose relay write arrived before the frame's write() returned (timed from before it):"
                     f" {early}")  # fmt: skip
    if "crashed" in r.load:
        lines.append(f"LOAD PROCESS FAILED: {r.load['crashed']}")
    elapsed = max(r.load.get("elapsed_s", 0.0), 1e-9)
    lines.append(f"HTTP outcomes per client kind ({elapsed:.1f} s of load):")
    for kind, outcomes in sorted(r.load.get("outcomes", {}).items()):
        n = sum(outcomes.values())
        latencies = r.load.get("latencies_ms", {}).get(kind, [])
        counts = ", ".join(f"{k} x{v}" for k, v in sorted(outcomes.items()))
        lines.append(f"  {kind:<14} {n:>7} requests {n / elapsed:8.1f}/s  p50 {percentile(latencies, 50):8.1f} ms"
                     f"  p95 {percentile(latencies, 95):8.1f} ms  [{counts}]")  # fmt: skip
    extra = r.load.get("extra", {})
    if extra:
        lines.append("  " + ", ".join(f"{k} {v:,}" for k, v in sorted(extra.items())))
    for sample in r.load.get("five_xx", [])[:5]:
        lines.append(f"  5xx: {sample}")
    if r.load.get("unfinished"):
        lines.append(f"  clients still in a request at the end: {', '.join(r.load['unfinished'])}")
    bigs = r.big_bodies()
    lines.append(f"big body ({p.big_body_bytes:,} B, no token): {len(bigs)} posts")
    for b in bigs:
        answer = str(b.status) if b.status is not None else f"no answer ({b.error})"
        lines.append(
            f"  {answer}: {b.sent / 2**20:.1f} of {b.total / 2**20:.0f} MB sent before it, {b.elapsed_s:.2f} s"
        )
    if r.daemon_exit is None:
        lines.append(f"daemon pid {r.daemon_pid}: alive at the end")
    else:
        sig = f" (signal {signal.Signals(-r.daemon_exit).name})" if r.daemon_exit < 0 else ""
        when = f" {r.died_after_load_start_s:.1f} s after the load started" if r.died_after_load_start_s else ""
        lines.append(f"daemon pid {r.daemon_pid}: DIED{when}, exit status {r.daemon_exit}{sig}")
    growth = r.rss_growth_mb
    lines.append(f"daemon RSS: start of load {_mb(r.rss_start_mb)}, peak under load {_mb(r.rss_peak_mb)},"
                 f" growth {_mb(growth)}")  # fmt: skip
    if r.children:
        lines.append(f"children RSS: total at start {r.children_start_mb:.1f} MB, peak of the total"
                     f" {r.children_peak_mb:.1f} MB")  # fmt: skip
        for pid, c in sorted(r.children.items()):
            lines.append(
                f"  pid {pid} {c['command'][:60]}: first seen {c['start_mb']:.1f} MB, peak {c['peak_mb']:.1f} MB"
            )
    else:
        lines.append("children: none seen")
    for leftover in r.leftovers:
        lines.append(f"still running 5 s after the daemon stopped (killed by the harness): {leftover}")
    return "\n".join(lines)


def _mb(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} MB"


def problems(
    r: Report,
    *,
    relay_max_ms: float | None = None,
    relay_p95_ms: float | None = None,
    decision_p99_ms: float | None = None,
    rss_growth_mb: float = 100.0,
) -> list[str]:
    """What the run broke, in words; empty when it passed. Timing limits are optional (the test keeps them loose)."""
    found: list[str] = []
    if r.daemon_exit is not None:
        found.append(f"the daemon died (exit status {r.daemon_exit})")
    if "crashed" in r.load:
        found.append(f"the load process failed: {r.load['crashed']}")
    for phase in ("warmup", "baseline", "load"):
        swipes = r.phase(phase)
        bad = [s for s in swipes if s.decision != "granted" or s.relay_ms is None]
        if bad:
            b = bad[0]
            found.append(f"{phase}: {len(bad)} of {len(swipes)} swipes not granted with a relay write within"
                         f" {r.plan.swipe_timeout_s:g} s (first: card {b.card}, decision {b.decision}, relay"
                         f" {b.relay_ms}, late write {b.late_relay_ms}, {b.skipped or 'made'})")  # fmt: skip
    relay = [s.relay_ms for s in r.phase("load") if s.relay_ms is not None]
    logged = [s.logged_ms for s in r.phase("load") if s.logged_ms is not None]
    if relay_max_ms is not None and relay and max(relay) > relay_max_ms:
        found.append(f"a swipe's relay write took {max(relay):.0f} ms under load (limit {relay_max_ms:.0f} ms)")
    if relay_p95_ms is not None and relay and percentile(relay, 95) > relay_p95_ms:
        found.append(f"swipe→relay p95 {percentile(relay, 95):.1f} ms under load (limit {relay_p95_ms:.0f} ms)")
    if decision_p99_ms is not None and logged and percentile(logged, 99) > decision_p99_ms:
        found.append(f"logged decision p99 {percentile(logged, 99):.2f} ms under load (limit {decision_p99_ms:g} ms)")
    if r.five_xx():
        found.append(f"5xx answers: {r.five_xx()}")
    bigs = r.big_bodies()
    if not bigs:
        found.append("the big body was never posted")
    for b in bigs:
        if b.status not in (401, 413):
            found.append(f"big body answered {b.status} ({b.error}), not 401/413")
        elif not b.refused_early:
            found.append(f"big body answered {b.status} only after all {b.total:,} bytes were sent (the body was read)")
    growth = r.rss_growth_mb
    if growth is None:
        found.append("no RSS figure for the daemon")
    elif growth >= rss_growth_mb:
        found.append(f"daemon RSS grew {growth:.1f} MB under load (limit {rss_growth_mb:.0f} MB)")
    return found

"""What the fault campaigns share: a real gateway (`accessgw run`) on real peers, traffic that can be
accounted for, and the checks (the store as SQLite says, the platform side as the broker delivered it).

- Swipes: each swipe uses a card number of its own, so every swipe is identifiable in the entry log.
  Even swipes use enrolled cards (granted), odd ones unknown cards (refused).
- Remote opens: signed `door/open` requests over MQTT, each with its own `user`, which the gateway
  stores in the entry's details, so every one answered `ok` can be looked for.
- Faces (FaultRig(faces=True)): a real RTSP test camera (testing/media/rtsp_fixture.py) at the door
  (mode card_or_face), real photos from the faces folder, real dlib in the gateway's face workers.
  FaceFlow shows in turn an enrolled tenant's photo (a granted face entry) and a stranger's (a
  `stranger` alert and an `unknown_face` entry), each followed by an empty scene longer than
  track_gap_s, so that each face is a new track and new decisions keep coming. Face decisions cannot be
  predicted one by one like swipes: what the store holds is what must reach the consumer.
- The consumer: a platform-side subscriber with a persistent session on a persistent mosquitto,
  deduplicating by event id and checking that new ids arrive in `seq` order.
"""

from __future__ import annotations

import bisect
import json
import os
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from gateway.store.db import database_path, open_store
from gateway.store.roster import NewTenant, add_card, add_tenant
from sync.signing import new_key_pair, sign
from testing.faces import faces_dir_path
from testing.gateway import ROOT, DoorPeers, GatewayProcess, gateway_config
from testing.media.rtsp_fixture import RtspCamera, RtspServerError
from testing.peers import Mosquitto, Subscriber, wait_until

GATEWAY_ID = "gw-faults"
BASE = f"accessgw/{GATEWAY_ID}"
GRANTED_BASE = 10_000_000  # enrolled cards: GRANTED_BASE + n
REFUSED_BASE = 900_000_000  # never enrolled: REFUSED_BASE + n
CAMERA_ID = "c-door"
# As tests/gateway/test_face_e2e.py: a face is confirmed over 2 frames, a track ends 1 s after its last
# sighting, an unknown face at the door is a stranger after 1.5 s.
RECOGNITION = {"min_frames": 2, "track_gap_s": 1.0, "workers": 2}
STRANGER_AFTER_S = 1.5


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def ms(values: list[float]) -> str:
    if not values:
        return "n/a"
    return (f"p50 {pct(values, 0.5) * 1000:.0f} ms, p95 {pct(values, 0.95) * 1000:.0f} ms, "
            f"max {max(values) * 1000:.0f} ms (n={len(values)})")  # fmt: skip


def seconds(values: list[float]) -> str:
    if not values:
        return "n/a"
    return f"p50 {statistics.median(values):.2f} s, max {max(values):.2f} s (n={len(values)})"


_DECIDED = re.compile(r"entry \S+ card (\d+)/\d+ -> \w+ .*? in ([\d.]+) ms")


def decision_times(log: str, numbers: set[int]) -> list[float]:
    """Seconds from the frame's arrival to the relay hand-over, as the gateway logged them, for these cards."""
    return [float(m[2]) / 1000 for m in _DECIDED.finditer(log) if int(m[1]) in numbers]


@dataclass
class Swipe:
    number: int
    sent: float  # time.monotonic() when written to the reader's pty
    granted: bool


@dataclass
class Consumer:
    """The platform side: every message the broker delivered, deduplicated by id, in arrival order."""

    port: int
    sub: Subscriber = field(init=False)

    def __post_init__(self) -> None:
        self.sub = Subscriber(self.port, f"{BASE}/#", client_id="faults-platform")

    def events(self) -> list[dict[str, Any]]:
        """Entries and alerts, in arrival order (duplicates included)."""
        snapshot = list(self.sub.messages)  # a copy: the network thread keeps appending
        raw = [(t, p) for t, p, _ in snapshot if "/events/entry" in t or "/events/alert" in t]
        return [json.loads(p) for _, p in raw]

    def check(self) -> tuple[dict[str, dict[str, Any]], int, list[str]]:
        """(first delivery of each id, duplicates delivered, order violations: a new id whose seq is not
        above every earlier new id's)."""
        seen: dict[str, dict[str, Any]] = {}
        duplicates, disorder, top = 0, [], 0
        for event in self.events():
            if event["id"] in seen:
                duplicates += 1
                continue
            seen[event["id"]] = event
            if event["seq"] <= top:
                disorder.append(f"{event['id']} seq {event['seq']} after {top}")
            top = max(top, event["seq"])
        return seen, duplicates, disorder

    def availability(self) -> list[str]:
        return [p.decode() for p in self.sub.raw("/availability")]

    def responses(self) -> dict[str, dict[str, Any]]:
        return {r["transaction"]: r for r in self.sub.payloads("/response/door/open")}

    def close(self) -> None:
        self.sub.close()


class Store:
    """The gateway's SQLite files, read by connections of our own (as a backup tool would)."""

    def __init__(self, data_dir: Path) -> None:
        self.path = database_path(data_dir)

    def _query(self, sql: str) -> list[tuple[Any, ...]]:
        db = sqlite3.connect(self.path, timeout=10)
        try:
            return db.execute(sql).fetchall()
        finally:
            db.close()

    def entries(self) -> list[tuple[str, int, int | None, str, str | None]]:
        """(id, seq, card_number, method, details) of every entry, in seq order."""
        return self._query("SELECT id, seq, card_number, method, details FROM entries ORDER BY seq")  # type: ignore[return-value]

    def alerts(self) -> list[tuple[str, int, str, str]]:
        return self._query("SELECT id, seq, kind, state FROM alerts ORDER BY seq")  # type: ignore[return-value]

    def face_events(self) -> list[tuple[str, str]]:
        """(id, what) of every entry and alert a camera made, what as `face entries granted`,
        `face entries unknown_face` (denied: nobody enrolled), `stranger alerts`, …"""
        entries = self._query("SELECT id, decision, reason FROM entries WHERE camera IS NOT NULL ORDER BY seq")
        alerts = self._query("SELECT id, kind FROM alerts WHERE camera IS NOT NULL ORDER BY seq")
        return [(i, "face entries granted" if d == "granted" else f"face entries {r}") for i, d, r in entries] + [
            (i, f"{kind} alerts") for i, kind in alerts
        ]

    def entry_count(self) -> int:
        return int(self._query("SELECT count(*) FROM entries")[0][0])

    def outbox_depth(self) -> int:
        return int(self._query("SELECT count(*) FROM outbox")[0][0])

    def integrity(self) -> str:
        """PRAGMA integrity_check of every SQLite database in data_dir ("ok" when all are)."""
        results = []
        for path in sorted(self.path.parent.glob("*.sqlite3")):
            db = sqlite3.connect(path, timeout=10)
            try:
                results.append(str(db.execute("PRAGMA integrity_check").fetchone()[0]))
            finally:
                db.close()
        bad = [r for r in results if r != "ok"]
        return "ok" if results and not bad else "; ".join(bad) or "no database"


class FaultRig:
    """mosquitto, a reader and a relay board on ptys, the gateway process, the consumer, a signing key;
    with `faces`, an RTSP test camera at the door too (door mode card_or_face)."""

    def __init__(self, work: Path, *, data_dir: Path | None = None, pulse_ms: int = 100,
                 state_interval_s: int = 5, faces: bool = False) -> None:  # fmt: skip
        self.work = work
        self.pulse_ms = pulse_ms
        self.camera = RtspCamera(None, fps=10) if faces else None
        self.broker = Mosquitto(work / "broker")
        self.broker.start()
        self.peers = DoorPeers(work / "ports")
        self.key, public = new_key_pair()
        vision: dict[str, Any] = {}
        if self.camera is not None:
            vision = {"recognition": RECOGNITION,
                      "cameras": [{"id": CAMERA_ID, "rtsp_url": self.camera.url, "door": "main", "fps": 5,
                                   "role": "entry", "stranger_after_s": STRANGER_AFTER_S}]}  # fmt: skip
        config = gateway_config(
            data_dir or work / "data",
            self.broker.port,
            gateway_id=GATEWAY_ID,
            mqtt={"state_interval_s": state_interval_s},
            sync={"platform_public_key": public, "max_skew_s": 300},
            **self.peers.sections(pulse_ms, **({"mode": "card_or_face"} if faces else {})),
            **vision,
        )
        # With a camera the gateway has face workers (a process pool): its own process group, so that what a
        # SIGKILL of the daemon leaves behind can be found and ended (reap_group), as systemd ends a unit's.
        self.gw = GatewayProcess(work, config, new_session=faces)
        self.store = Store(self.gw.data_dir)
        self.consumer = Consumer(self.broker.port)
        self.swipes: list[Swipe] = []
        self.opens: dict[str, float] = {}  # user → when the request was published
        self._next_card = 0
        self._next_open = 0
        self._lock = threading.Lock()

    # --- roster -----------------------------------------------------------------------
    def enrol(self, cards: int, per_tenant: int = 10) -> None:
        """Enrol GRANTED_BASE + 0 … cards-1, `per_tenant` cards to a tenant, valid for a year."""
        engine, sessions = open_store(self.gw.data_dir)
        try:
            with sessions.begin() as s:
                valid_to = date.today() + timedelta(days=365)
                for t in range(0, cards, per_tenant):
                    tenant = f"T{t // per_tenant:05d}"
                    add_tenant(s, NewTenant(tenant, f"Tenant {tenant}", f"P-{tenant}", valid_to))
                    for n in range(t, min(t + per_tenant, cards)):
                        add_card(s, tenant, GRANTED_BASE + n)
        finally:
            engine.dispose()

    def enrol_face(self, tenant: str, photos: list[Path]) -> None:
        """A tenant (no card) whose face is enrolled from `photos` by `accessgw face add`, as an installer does."""
        engine, sessions = open_store(self.gw.data_dir)
        try:
            with sessions.begin() as s:
                add_tenant(s, NewTenant(tenant, f"Tenant {tenant}", f"P-{tenant}", date.today() + timedelta(days=365)))
        finally:
            engine.dispose()
        result = subprocess.run(
            [sys.executable, "-m", "gateway", "face", "add", "--config", str(self.gw.write_config()), "--tenant",
             tenant, *map(str, photos)],
            capture_output=True, text=True, timeout=300, cwd=ROOT,
        )  # fmt: skip
        if result.returncode != 0:
            raise AssertionError(f"face add {tenant}: {result.stdout}{result.stderr}")

    # --- traffic ------------------------------------------------------------------------
    def swipe(self, granted: bool | None = None) -> Swipe:
        """One swipe with a card number never used before (every other one enrolled, or as asked)."""
        assert self.peers.card is not None
        with self._lock:
            n = self._next_card
            if granted is not None and (n % 2 == 0) != granted:
                n += 1
            self._next_card = n + 1
        granted = n % 2 == 0
        number = GRANTED_BASE + n // 2 if granted else REFUSED_BASE + n // 2
        self.peers.card.swipe(number, 34)
        swipe = Swipe(number, time.monotonic(), granted)
        self.swipes.append(swipe)
        return swipe

    def remote_open(self) -> str:
        """A signed door/open request whose `user` names it; returns that user."""
        with self._lock:
            n = self._next_open
            self._next_open += 1
        user = f"fault-{n}"
        issued = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        message = sign({"transaction": f"tx-{user}", "issued_at": issued, "door": "main", "user": user}, self.key)
        self.opens[user] = time.monotonic()
        self.consumer.sub.client.publish(f"{BASE}/request/door/open", json.dumps(message), qos=1)
        return user

    def wait_online(self, since: int, timeout: float = 30) -> None:
        """Until the gateway said `online` after the `since`-th availability message."""
        wait_until(lambda: "online" in self.consumer.availability()[since:], timeout, 0.02, "availability online")

    def reap_group(self) -> Counter[str]:
        """After the daemon died: what is left of its process group (by kind), then SIGKILL to all of it.

        Only with `faces` (its own process group). The face workers are `spawn` children of the daemon
        with nothing that ends them when it dies; under systemd the unit's cgroup is ended on a restart."""
        if not self.gw.new_session or self.gw.proc is None:
            return Counter()
        group = self.gw.proc.pid
        left = group_members(group)
        try:
            os.killpg(group, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        wait_until(lambda: not group_members(group), 10, 0.02, f"process group {group} gone")
        return Counter(left.values())

    def close(self) -> None:
        try:
            if self.gw.running:
                self.gw.stop()
        finally:
            if self.gw.new_session and self.gw.proc is not None:
                try:
                    os.killpg(self.gw.proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            self.consumer.close()
            self.peers.close()
            self.broker.stop()
            if self.camera is not None:
                self.camera.close()


def group_members(group: int) -> dict[int, str]:
    """Live (not zombie) processes of process group `group`: pid → kind (`face worker`, `resource tracker`,
    or the program's name). The API child is not among them: it has a session of its own."""
    found: dict[int, str] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) != group or fields[0] in ("Z", "X"):
                continue
            argv = (stat.parent / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        line = b" ".join(argv).decode(errors="replace")
        if "spawn_main" in line:
            kind = "face worker"
        elif "resource_tracker" in line:
            kind = "resource tracker"
        else:
            kind = " ".join(Path(a.decode(errors="replace")).name for a in argv[:3] if a)
        found[int(stat.parent.name)] = kind
    return found


@dataclass(frozen=True)
class Shot:
    who: str  # "tenant", "stranger" or "nobody"
    photo: Path | None
    seconds: float


def lfw_people() -> list[Path]:
    lfw = faces_dir_path() / "lfw_subset"
    return sorted(p for p in lfw.iterdir() if p.is_dir())


def photos_of(person: Path) -> list[Path]:
    return sorted(person.glob("*.jpg"))


class FaceFlow:
    """Shots on the rig's camera in a loop, in a thread, whatever the gateway is doing (dead or alive).

    `timeline` holds (the camera server's monotonic time of the first frame shown, who) for every shot."""

    def __init__(self, camera: RtspCamera, shots: list[Shot]) -> None:
        self.camera, self.shots = camera, shots
        self.timeline: list[tuple[float, str]] = [(time.monotonic(), "nobody")]
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name="fault-faces", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _main(self) -> None:
        i = 0
        while not self._stop.is_set():
            shot = self.shots[i % len(self.shots)]
            i += 1
            try:
                self.timeline.append((self.camera.switch(shot.photo), shot.who))
            except RtspServerError as exc:
                self.errors.append(f"camera switch to {shot.who}: {exc}"[:500])
                self._stop.wait(1.0)
                continue
            self._stop.wait(shot.seconds)

    def showing(self, at: float) -> str:
        """Who was in front of the camera at monotonic time `at`."""
        times = [t for t, _ in self.timeline]
        return self.timeline[max(0, bisect.bisect_right(times, at) - 1)][1]

    def stop(self) -> None:
        """The shots end; the camera shows an empty scene (nobody) from the return on. Once is enough."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(15)
        self.timeline.append((self.camera.switch(None), "nobody"))


class Traffic:
    """Swipes (and remote opens) at a steady rate in a thread, paused and resumed around faults."""

    def __init__(self, rig: FaultRig, swipes_per_s: float, opens_per_s: float = 0.0) -> None:
        self.rig, self.period = rig, 1.0 / swipes_per_s
        self.open_every = int(swipes_per_s / opens_per_s) if opens_per_s else 0
        self._run = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name="fault-traffic", daemon=True)
        self._thread.start()

    def _main(self) -> None:
        i = 0
        while not self._stop.is_set():
            if not self._run.is_set():
                self._idle.set()
                self._run.wait(0.05)
                continue
            self._idle.clear()
            if not self._run.is_set():
                continue
            self.rig.swipe()
            if self.open_every and i % self.open_every == 0:
                self.rig.remote_open()
            i += 1
            time.sleep(self.period)

    def resume(self) -> None:
        self._idle.clear()
        self._run.set()

    def pause(self) -> None:
        """Stop sending; returns once the swipe in progress (if any) is written."""
        self._run.clear()
        self._idle.wait(5)

    def close(self) -> None:
        self._run.clear()
        self._stop.set()
        self._thread.join(5)


def finish(errors: list[str], work: Path) -> int:
    """A campaign's last lines: its errors, the work folder removed on a pass and kept for a look on a
    failure; the exit status."""
    print(f"  errors: {len(errors)}")
    for error in errors:
        print(f"    {error}")
    if not errors:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"work folder kept for a look: {work}")
    return 1 if errors else 0

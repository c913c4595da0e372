"""Benchmark (a) card decision latency and (c) peak RSS of the running daemon.

Latency: from the last byte of a Wiegand frame written into the reader's pty
to the Modbus coil-write request arriving at the relay board (pymodbus's own
RTU server, timestamped on arrival), with a roster of N tenants and cards.
The gateway runs as its own process (`python -m gateway run`), unchanged.

    .venv/bin/python -m bench.card_latency [--tenants 100000] [--swipes 2000]
    .venv/bin/python -m bench.card_latency --during-snapshot   # swipes while roster snapshots are applied
    .venv/bin/python -m bench.card_latency --cameras 2         # swipes while two cameras analyse faces

--cameras N: N RTSP test cameras at 10 fps (served from this machine: their H.264 encoding shares its two
cores) on the gateway's face pipeline. The idle swipes run while they show an empty scene (detection only,
the baseline of the same run); then each shows a face that stays in view (detection and encoding of
every frame the workers can take: full rate) and the swipes are repeated.

--during-snapshot: after the idle swipes (the baseline, same run), the platform publishes two signed
snapshots on the broker, as a town would (chunks paced by their answers, at most 8 unanswered): the
building's roster with a face template added to every tenant (a new gateway joining the town: every
template is new), then the same with 1% of the tenants' rooms changed and 1,000 new tenants (the usual
snapshot after a version gap). Swipes go on meanwhile and are reported apart. Then a signed remote
open, idle and halfway through a third snapshot.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import re
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from nacl.signing import SigningKey

from bench.roster import card_number, fill_roster, snapshot_messages
from sync.signing import new_key_pair, sign
from testing.faces import faces_dir_path
from testing.gateway import DoorPeers, GatewayProcess, gateway_config
from testing.media.rtsp_fixture import RtspCamera
from testing.peers import Mosquitto, Subscriber, wait_until


def rss_peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000, method="inclusive")[int(q * 10) - 1] if len(values) > 1 else values[0]


def peers_first() -> str:
    """The simulated reader, relay board and their socat links stand for hardware, which does not share the
    gateway's CPU: run them (this process's threads and its socat children) SCHED_RR 5, below the door's
    own threads (10), so that the figure is the gateway's and not the bench's scheduling. Called after the
    gateway started (it must not inherit this)."""
    param = os.sched_param(5)
    changed = 0
    for task in Path("/proc/self/task").iterdir():
        try:
            os.sched_setscheduler(int(task.name), os.SCHED_RR, param)
            changed += 1
        except OSError as exc:
            return f"peers at normal priority ({exc})"
    me = str(os.getpid())
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and (proc / "comm").read_text().strip() == "socat":
                if (proc / "stat").read_text().split(") ", 1)[1].split()[1] == me:
                    os.sched_setscheduler(int(proc.name), os.SCHED_RR, param)
                    changed += 1
        except OSError:
            continue
    return f"peers (bench threads and socat links, {changed}) at SCHED_RR 5"


def snapshot_ops(tenants: int, *, room_changed_every: int = 0, new: int = 0) -> list[dict[str, Any]]:
    """The roster bench.roster.fill_roster wrote, as the platform's snapshot, with a template per tenant."""
    today, rng = date.today(), np.random.default_rng(3)
    out: list[dict[str, Any]] = []
    for i in range(tenants + new):
        room = f"{i % 40 + 1}{i % 20:02d}"
        if i >= tenants or (room_changed_every and i % room_changed_every == 0):
            room = "B1"
        out.append({"op": "upsert", "kind": "tenant", "id": f"t{i:06d}", "name": f"Tenant {i}", "permit": f"P{i:09d}",
                    "valid_from": (today - timedelta(days=30)).isoformat(), "room": room, "status": "active",
                    "valid_to": (today + timedelta(days=365)).isoformat()})  # fmt: skip
        out.append({"op": "upsert", "kind": "card", "number": card_number(i), "tenant": f"t{i:06d}"})
        vector = base64.b64encode(rng.normal(0, 0.1, 128).astype("<f4").tobytes()).decode()
        out.append({"op": "upsert", "kind": "template", "id": f"F{i:06d}", "tenant": f"t{i:06d}", "vector": vector})
    return out


class Town:
    """The platform's side on the broker: publishes a snapshot's chunks and sees the gateway's answers.

    Chunks are paced by their answers (at most WINDOW unanswered), as a platform should: the gateway
    reads its requests in order, so a remote open sent meanwhile waits for the chunks ahead of it.
    """

    WINDOW = 8

    def __init__(self, port: int, gateway_id: str) -> None:
        self.base = f"accessgw/{gateway_id}"
        self.link = Subscriber(port, f"{self.base}/response/#", client_id="bench-town")

    def answered(self) -> int:
        return len(self.link.raw("/response/roster/snapshot"))  # no JSON parsing: the bench shares its CPU

    def send(self, messages: list[bytes], version: int, halfway: Callable[[], None] | None = None) -> threading.Event:
        done = threading.Event()
        before = self.answered()

        def publish() -> None:
            for i, m in enumerate(messages):
                if i == len(messages) // 2 and halfway is not None:
                    halfway()
                wait_until(lambda n=i: n - (self.answered() - before) < self.WINDOW, 60, 0.005, "chunk answers")
                self.link.publish(f"{self.base}/request/roster/snapshot", m)
            wait_until(lambda: self.answered() - before >= len(messages), 300, 0.02, f"snapshot {version} answered")
            last = json.loads(self.link.raw("/response/roster/snapshot")[-1])
            assert last.get("version") == version, f"snapshot {version} not applied: {last}"
            done.set()

        threading.Thread(target=publish, daemon=True).start()
        return done

    def open_door(self, key: SigningKey, n: int) -> None:
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        message = sign({"transaction": f"open-{n}", "issued_at": now, "door": "main", "user": "bench"}, key)
        self.link.publish(f"{self.base}/request/door/open", json.dumps(message))


def report(label: str, latencies: list[float]) -> None:
    values = sorted(latencies)
    print(f"(a) {label}: {len(values)} swipes, frame→relay write ms: p50 {percentile(values, 50):.2f}  "
          f"p90 {percentile(values, 90):.2f}  p99 {percentile(values, 99):.2f}  max {values[-1]:.2f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=100_000)
    parser.add_argument("--swipes", type=int, default=2000)
    parser.add_argument("--bits", type=int, choices=(26, 34), default=34)
    parser.add_argument("--during-snapshot", action="store_true", help="then swipe while snapshots are applied")
    parser.add_argument("--cameras", type=int, default=0, help="RTSP cameras on the face pipeline (faces later)")
    args = parser.parse_args()
    key, public = new_key_pair()

    work = Path(tempfile.mkdtemp(prefix="accessgw-bench-"))
    t = time.perf_counter()
    numbers = fill_roster(work / "data", args.tenants)
    print(f"roster: {args.tenants} tenants and cards written in {time.perf_counter() - t:.1f} s")

    broker = Mosquitto(work / "broker")
    broker.start()
    peers = DoorPeers(work, baudrate=115200)
    board, card = peers.board, peers.card
    assert card is not None
    pulse_ms = 50
    cameras = [RtspCamera(None, fps=10) for _ in range(args.cameras)]
    faces = sorted((faces_dir_path() / "lfw_subset").iterdir())
    cfg = gateway_config(work / "data", broker.port, gateway_id="bench-0001", sync={"platform_public_key": public},
                         cameras=[{"id": f"c{i}", "rtsp_url": c.url, "fps": 10, "role": "watch"}
                                  for i, c in enumerate(cameras)],
                         **peers.sections(pulse_ms, poll_ms=200, inputs=False))  # fmt: skip
    gateway = GatewayProcess(work, cfg)
    latencies: list[float] = []
    during: dict[str, list[float]] = {}
    rng = random.Random(7)

    def swipe() -> float:
        number = rng.choice(numbers)
        frame = card.frame(number & 0xFFFFFF if args.bits == 26 else number, args.bits)
        before = len(board.write_history())
        card.write_raw(frame)
        t0 = time.monotonic()  # the frame's last byte is now in the pty
        wait_until(lambda n=before: len(board.write_history()) > n, 5, 0.002, "coil ON write")
        t_on = board.write_history()[before][0]
        # Wait for the pulse's OFF write so that the next swipe writes ON again.
        wait_until(lambda n=before: len(board.write_history()) > n + 1, 5, 0.001, "coil OFF write")
        return (t_on - t0) * 1000

    def swipe_until(done: Callable[[], bool]) -> list[float]:
        out = []
        while not done():
            out.append(swipe())
        return out

    try:
        gateway.start(90 if cameras else 30)
        peers.wait_polled()
        assert gateway.proc is not None
        for i in range(len(cameras)):
            wait_until(lambda n=i: f"camera c{n} online" in gateway.log(), 30, 0.05, f"camera c{i} online")
        print(peers_first())
        for i in range(args.swipes + 20):
            latency = swipe()
            if i >= 20:  # the first swipes warm caches
                latencies.append(latency)
        if cameras:
            for i, cam in enumerate(cameras):
                cam.switch(sorted(faces[i].glob("*.jpg"))[0])
            time.sleep(3.0)  # tracks started, workers saturated
            label = f"{len(cameras)} cameras with a face in view (face pipeline at full rate)"
            during[label] = [swipe() for _ in range(args.swipes)]
            with gateway.client(gateway.admin_token()) as api:
                text = api.get("/metrics").text
            counts = re.findall(r"^accessgw_recognition_frames_(analysed|dropped) ([0-9.e+]+)$", text, re.M)
            print(f"face pipeline: {', '.join(f'{float(v):.0f} frames {k}' for k, v in counts) or 'n/a'}")
        if args.during_snapshot:
            town = Town(broker.port, "bench-0001")
            for version, label, ops in (
                (1, "a template for every tenant (a gateway joining the town)", snapshot_ops(args.tenants)),
                (2, "1% of rooms changed, 1,000 new tenants (after a version gap)",
                 snapshot_ops(args.tenants, room_changed_every=100, new=1000)),
            ):  # fmt: skip
                messages = snapshot_messages(key, version, ops)
                del ops
                t = time.perf_counter()
                done = town.send(messages, version)
                during[f"snapshot {version}: {len(messages)} messages, {label}"] = swipe_until(done.is_set)
                print(f"snapshot {version} applied {time.perf_counter() - t:.1f} s after its first chunk was sent")
            # A remote open (signed door/open) idle, then sent halfway through a snapshot's chunks.
            opened: dict[str, float] = {}

            def remote_open(label: str, n: int) -> None:
                before = len(board.write_history())
                t0 = time.monotonic()
                town.open_door(key, n)
                wait_until(lambda: len(board.write_history()) > before, 30, 0.002, "remote open's coil write")
                opened[label] = (board.write_history()[before][0] - t0) * 1000
                wait_until(lambda: len(board.write_history()) > before + 1, 5, 0.001, "coil OFF write")

            remote_open("idle", 1)
            ops = snapshot_ops(args.tenants, room_changed_every=50, new=2000)
            messages = snapshot_messages(key, 3, ops)
            del ops
            done = town.send(messages, 3, halfway=lambda: remote_open("halfway through snapshot 3", 2))
            wait_until(done.is_set, 300, 0.05, "snapshot 3 applied")
            for label, ms in opened.items():
                print(f"remote open ({label}): publish→relay write {ms:.0f} ms")
        rss = rss_peak_mb(gateway.proc.pid)
    finally:
        try:
            gateway.stop(30)
        finally:
            for cam in cameras:
                cam.close()
            peers.close()
            broker.stop()
    print(f"machine: {os.cpu_count()} cores; roster {args.tenants}; Wiegand {args.bits}")
    report("idle" if not cameras else f"{len(cameras)} cameras, empty scene (detection only)", latencies)
    for label, values in during.items():
        report(f"while {label}", values)
    # The gateway logs, per card, the time from the frame's completion to the relay write being handed
    # to the serial port ("in X ms"): the same span without the relay board's own receive and decode.
    logged = sorted([float(m) for m in re.findall(rb" in ([0-9.]+) ms", gateway.log_path.read_bytes())][20:])
    if logged:
        print(
            f"(a) as the gateway logs it, frame complete→write handed to the port ms: p50 {percentile(logged, 50):.2f}"
            f"  p90 {percentile(logged, 90):.2f}  p99 {percentile(logged, 99):.2f}  max {max(logged):.2f}"
        )
    print(f"(c) peak RSS of the gateway process (VmHWM): {rss:.1f} MB")


if __name__ == "__main__":
    main()

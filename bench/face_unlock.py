"""Benchmark (c): face → unlock latency, and where the milliseconds go.

From the moment the test RTSP camera pushes the first frame of an enrolled tenant's photo (its own
CLOCK_MONOTONIC stamp) to the relay coil-write request arriving at the relay board (pymodbus's RTU
server), over N approaches. Between approaches the camera shows an empty scene for longer than
track_gap_s, so each approach is a new track. The gateway runs as its own process, unchanged.

Split: the gateway logs, per face entry, the time from the frame's capture (decoded by FFmpeg) to the
relay write handed to the port ("in X ms"); the rest is the camera → decoded-frame transport. An approach
whose first frame is a clear match (recognition.accept_at) opens on that frame; a closer call waits for
a second frame (min_frames). Baseline in the same run: the recognition settings as landed before issue 10
(5-point landmarks, no mirrored templates, every match waiting for min_frames).

    .venv/bin/python -m bench.face_unlock [--approaches 20] [--fps 10]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from gateway.store.db import open_store
from gateway.store.roster import NewTenant, add_tenant
from testing.faces import faces_dir_path
from testing.gateway import ROOT, DoorPeers, GatewayProcess, gateway_config
from testing.media.rtsp_fixture import RtspCamera
from testing.peers import Mosquitto, wait_until

LANDED = {"landmarks": 5, "mirror": False, "enrol_jitters": 1, "accept_at": 0.0, "threshold": 0.48, "cohort_ratio": 1e9}


def run(label: str, recognition: dict[str, Any], approaches: int, fps: float) -> None:
    # A person whose every other photo matches their enrolled three: this measures speed, not accuracy.
    person = faces_dir_path() / "lfw_subset" / "Gloria_Macapagal_Arroyo"
    photos = sorted(person.glob("*.jpg"))
    work = Path(tempfile.mkdtemp(prefix="accessgw-bench-face-"))
    engine, sessions = open_store(work / "data")
    with sessions.begin() as s:
        add_tenant(s, NewTenant("t1", "Bench Tenant", "P-1", date.today() + timedelta(days=30)))
    engine.dispose()

    broker = Mosquitto(work / "broker")
    broker.start()
    peers = DoorPeers(work, protocol=None, baudrate=115200)
    board = peers.board
    camera = RtspCamera(None, fps=int(fps))
    cfg = gateway_config(
        work / "data", broker.port, gateway_id="bench-face",
        recognition={"track_gap_s": 1.0, "workers": 2, **recognition},
        snapshots={"enabled": True},
        io_modules=[peers.io_config(poll_ms=200)],
        cameras=[{"id": "c1", "rtsp_url": camera.url, "door": "main", "fps": fps, "role": "entry",
                  "stranger_after_s": 30}],
        doors=[{"id": "main", "mode": "face", "lock": {"io": "io1", "coil": 0, "pulse_ms": 200}}],
    )  # fmt: skip
    gateway = GatewayProcess(work, cfg)
    config_path = gateway.write_config()  # `face add` reads it before the daemon starts
    enrol = subprocess.run([sys.executable, "-m", "gateway", "face", "add", "--config", str(config_path), "--tenant",
                            "t1", *map(str, photos[:3])], capture_output=True, text=True, cwd=ROOT)  # fmt: skip
    if enrol.returncode != 0:
        raise SystemExit(enrol.stdout + enrol.stderr)
    latencies: list[float] = []
    try:
        gateway.start(60)
        wait_until(lambda: "camera c1 online" in gateway.log(), 30, 0.05, "camera online")
        time.sleep(2.0)  # workers warm, index loaded
        for i in range(approaches):
            before = len(board.write_history())
            shown = camera.switch(photos[3 + i % (len(photos) - 3)])
            wait_until(lambda n=before: len(board.write_history()) > n, 10, 0.002, f"unlock {i}")
            latencies.append((board.write_history()[before][0] - shown) * 1000)
            camera.switch(None)
            time.sleep(1.6)  # the track ends (track_gap_s 1.0) and the relay pulse is over
    finally:
        try:
            gateway.stop(30)
        finally:
            camera.close()
            peers.close()
            broker.stop()
    logged = [float(m) for m in re.findall(r"entry main face -> granted .* in ([0-9.]+) ms", gateway.log())]
    transport = [t - g for t, g in zip(latencies, logged, strict=False)]
    print(f"{label}: {len(latencies)} approaches, recognition {recognition or 'defaults'}")
    print(f"  (c) face→unlock ms: {summary(latencies)}")
    print(f"      of which frame decoded → relay write (the gateway's log): {summary(logged)}")
    print(f"      and camera push → frame decoded (RTSP, FFmpeg): {summary(transport)}")


def summary(values: list[float]) -> str:
    if len(values) < 2:
        return "n/a"
    q = statistics.quantiles(values, n=20, method="inclusive")
    return f"p50 {statistics.median(values):.0f}  p95 {q[18]:.0f}  min {min(values):.0f}  max {max(values):.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--approaches", type=int, default=20)
    parser.add_argument("--fps", type=float, default=10)
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores; camera {args.fps:g} fps H.264 640x480 over RTSP (TCP); workers 2")
    run("baseline, the settings as landed before", LANDED, args.approaches, args.fps)
    run("now, the defaults", {}, args.approaches, args.fps)


if __name__ == "__main__":
    main()

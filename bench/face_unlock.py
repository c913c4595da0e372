"""Benchmark (c): face → unlock latency.

From the moment the test RTSP camera pushes the first frame of an enrolled
tenant's photo (its own CLOCK_MONOTONIC stamp) to the relay coil-write
request arriving at the relay board (pymodbus's RTU server), over N
approaches. Between approaches the camera shows an empty scene for longer
than track_gap_s, so each approach is a new track.

    .venv/bin/python -m bench.face_unlock [--approaches 20] [--fps 10] [--min-frames 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from gateway.store.db import open_store
from gateway.store.roster import NewTenant, add_tenant
from testing.faces import faces_dir_path
from testing.gateway import ROOT, DoorPeers, GatewayProcess, gateway_config
from testing.media.rtsp_fixture import RtspCamera
from testing.peers import Mosquitto, wait_until


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--approaches", type=int, default=20)
    parser.add_argument("--fps", type=float, default=10)
    parser.add_argument("--min-frames", type=int, default=2)
    parser.add_argument("--downscale", type=float, default=0.75)
    args = parser.parse_args()

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
    camera = RtspCamera(None, fps=int(args.fps))
    cfg = gateway_config(
        work / "data", broker.port, gateway_id="bench-face",
        recognition={"min_frames": args.min_frames, "track_gap_s": 1.0, "workers": 2, "downscale": args.downscale},
        snapshots={"enabled": True},
        io_modules=[peers.io_config(poll_ms=200)],
        cameras=[{"id": "c1", "rtsp_url": camera.url, "door": "main", "fps": args.fps, "role": "entry",
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
        for i in range(args.approaches):
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
    latencies.sort()
    q = statistics.quantiles(latencies, n=20, method="inclusive")
    print(
        f"machine: {os.cpu_count()} cores; camera {args.fps:g} fps H.264 640x480 over RTSP (TCP); "
        f"min_frames {args.min_frames}; downscale {args.downscale}; workers 2; {len(latencies)} approaches"
    )
    print(
        f"(c) face→unlock ms: p50 {statistics.median(latencies):.0f}  p95 {q[18]:.0f}  "
        f"min {latencies[0]:.0f}  max {latencies[-1]:.0f}"
    )


if __name__ == "__main__":
    main()

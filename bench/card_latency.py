"""Benchmark (a) card decision latency and (c) peak RSS of the running daemon.

Latency: from the last byte of a Wiegand frame written into the reader's pty
to the Modbus coil-write request arriving at the relay board (pymodbus's own
RTU server, timestamped on arrival), with a roster of N tenants and cards.
The gateway runs as its own process (`python -m gateway run`), unchanged.

    .venv/bin/python -m bench.card_latency [--tenants 100000] [--swipes 2000]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from bench.roster import fill_roster
from drivers.simulators import SimulatedCardReader, SimulatedRelayBoard, VirtualSerialLink
from tests.peers import Mosquitto, free_port, wait_until


def rss_peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000, method="inclusive")[int(q * 10) - 1] if len(values) > 1 else values[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=100_000)
    parser.add_argument("--swipes", type=int, default=2000)
    parser.add_argument("--bits", type=int, choices=(26, 34), default=34)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="accessgw-bench-"))
    t = time.perf_counter()
    numbers = fill_roster(work / "data", args.tenants)
    print(f"roster: {args.tenants} tenants and cards written in {time.perf_counter() - t:.1f} s")

    broker = Mosquitto(work / "broker")
    broker.start()
    reader_link = VirtualSerialLink(work / "reader-sim", work / "reader-gw")
    io_link = VirtualSerialLink(work / "io-board", work / "io-gw")
    board = SimulatedRelayBoard(work / "io-board", baudrate=115200, unit=1)
    board.start()
    card = SimulatedCardReader(work / "reader-sim", "wiegand-text")
    pulse_ms = 50
    cfg = {
        "gateway_id": "bench-0001",
        "data_dir": str(work / "data"),
        "mqtt": {"host": "127.0.0.1", "port": broker.port},
        "api": {"host": "127.0.0.1", "port": free_port()},
        "readers": [{"id": "r1", "protocol": "wiegand-text", "port": str(work / "reader-gw"), "repeat_suppress_ms": 0}],
        "io_modules": [{"id": "io1", "port": str(work / "io-gw"), "baudrate": 115200, "unit": 1, "poll_ms": 200}],
        "doors": [
            {"id": "main", "mode": "card", "reader": "r1", "lock": {"io": "io1", "coil": 0, "pulse_ms": pulse_ms}}
        ],
    }
    (work / "gateway.yaml").write_text(yaml.safe_dump(cfg))
    log = (work / "gateway.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "run", "--config", str(work / "gateway.yaml")], stdout=log, stderr=log
    )
    latencies: list[float] = []
    try:
        wait_until(lambda: b"running:" in (work / "gateway.log").read_bytes(), 30, what="gateway start")
        wait_until(lambda: board.request_count > 0, 10, what="relay board polled")
        rng = random.Random(7)
        for i in range(args.swipes + 20):
            number = rng.choice(numbers)
            frame = card.frame(number & 0xFFFFFF if args.bits == 26 else number, args.bits)
            before = len(board.write_history())
            card.write_raw(frame)
            t0 = time.monotonic()  # the frame's last byte is now in the pty
            wait_until(lambda n=before: len(board.write_history()) > n, 5, 0.002, "coil ON write")
            t_on = board.write_history()[before][0]
            if i >= 20:  # the first swipes warm caches
                latencies.append((t_on - t0) * 1000)
            # Wait for the pulse's OFF write so that the next swipe writes ON again.
            wait_until(lambda n=before: len(board.write_history()) > n + 1, 5, 0.001, "coil OFF write")
        rss = rss_peak_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(30)
        board.stop()
        io_link.close()
        reader_link.close()
        broker.stop()
    latencies.sort()
    print(f"machine: {os.cpu_count()} cores; roster {args.tenants}; {len(latencies)} swipes, Wiegand {args.bits}")
    print(
        f"(a) frame→relay write latency ms: p50 {percentile(latencies, 50):.2f}  p90 {percentile(latencies, 90):.2f}"
        f"  p99 {percentile(latencies, 99):.2f}  max {latencies[-1]:.2f}"
    )
    # The gateway logs, per card, the time from the frame's completion to the relay write being handed
    # to the serial port ("in X ms"): the same span without the relay board's own receive and decode.
    logged = sorted([float(m) for m in re.findall(rb" in ([0-9.]+) ms", (work / "gateway.log").read_bytes())][20:])
    if logged:
        print(
            f"(a) as the gateway logs it, frame complete→write handed to the port ms: p50 {percentile(logged, 50):.2f}"
            f"  p90 {percentile(logged, 90):.2f}  p99 {percentile(logged, 99):.2f}  max {max(logged):.2f}"
        )
    print(f"(c) peak RSS of the gateway process (VmHWM): {rss:.1f} MB")


if __name__ == "__main__":
    main()

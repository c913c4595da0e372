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
import tempfile
import time
from pathlib import Path

from bench.roster import fill_roster
from testing.gateway import DoorPeers, GatewayProcess, gateway_config
from testing.peers import Mosquitto, wait_until


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
    peers = DoorPeers(work, baudrate=115200)
    board, card = peers.board, peers.card
    assert card is not None
    pulse_ms = 50
    cfg = gateway_config(work / "data", broker.port, gateway_id="bench-0001",
                         **peers.sections(pulse_ms, poll_ms=200, inputs=False))  # fmt: skip
    gateway = GatewayProcess(work, cfg)
    latencies: list[float] = []
    try:
        gateway.start()
        peers.wait_polled()
        assert gateway.proc is not None
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
        rss = rss_peak_mb(gateway.proc.pid)
    finally:
        try:
            gateway.stop(30)
        finally:
            peers.close()
            broker.stop()
    latencies.sort()
    print(f"machine: {os.cpu_count()} cores; roster {args.tenants}; {len(latencies)} swipes, Wiegand {args.bits}")
    print(
        f"(a) frame→relay write latency ms: p50 {percentile(latencies, 50):.2f}  p90 {percentile(latencies, 90):.2f}"
        f"  p99 {percentile(latencies, 99):.2f}  max {latencies[-1]:.2f}"
    )
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

"""Benchmark: how long an OSDP reader that was unplugged takes to be back in service.

libosdp's control panel alone asks a reader that went silent again only after 300 s (DESIGN §10);
the gateway's bus (drivers/osdp_bus.py) recreates the control panel instead. For each outage length,
a reader (libosdp's peripheral device, secure channel on, on a socat pty pair) answers, is stopped,
stays away that long, and a new one (same address and key, as a replaced reader) is started; printed:
seconds until the gateway's bus reported it offline (nan: back before that, libosdp was still probing),
from the new reader's start until it is online again, and the offline reports of a second, healthy
reader on the same bus (there should be none).

    .venv/bin/python -m bench.osdp_replug [--outages 2,5,15,40,70]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from config.models import ReaderConfig
from drivers.events import DriverEvent, ReaderStatus
from drivers.osdp_bus import OsdpBus
from drivers.simulators import VirtualSerialLink
from testing.osdp import BusLine, SimulatedOsdpReader, new_scbk
from testing.peers import wait_until


def wait_offline(bus: OsdpBus, until: float) -> float | None:
    """When r0 was reported offline, or None if not by `until` (monotonic)."""
    while time.monotonic() < until:
        if not bus.is_online("r0"):
            return time.monotonic()
        time.sleep(0.02)
    return None


def measure(folder: Path, away_s: float) -> tuple[float, float, int]:
    """(seconds to offline, seconds from replacement to online, offline reports of the healthy neighbour)."""
    link = VirtualSerialLink(folder / "pd", folder / "gw")
    line = BusLine(link.a)
    key = new_scbk()
    statuses: list[ReaderStatus] = []

    def note(event: DriverEvent) -> None:
        if isinstance(event, ReaderStatus):
            statuses.append(event)

    readers = [SimulatedOsdpReader(line, address, key) for address in (0, 1)]
    for reader in readers:
        reader.start()
    configs = [ReaderConfig(id=f"r{a}", protocol="osdp", port=str(folder / "gw"), address=a, scbk=key.hex())
               for a in (0, 1)]  # fmt: skip
    bus = OsdpBus(str(folder / "gw"), configs, note)
    bus.start()
    replacement: SimulatedOsdpReader | None = None
    try:
        wait_until(lambda: bus.is_online("r0") and bus.is_online("r1"), 15, 0.02, "both readers online")
        unplugged = time.monotonic()
        readers[0].stop()
        # A short outage ends while libosdp still probes for the old reader (offline not reported yet).
        gone = wait_offline(bus, unplugged + away_s)
        to_offline = gone - unplugged if gone is not None else float("nan")
        time.sleep(max(0.0, unplugged + away_s - time.monotonic()))
        replacement = SimulatedOsdpReader(line, 0, key)
        replaced = time.monotonic()
        replacement.start()
        # Back = the new reader has its secure channel with the bus, and the bus reports it online.
        wait_until(lambda: replacement is not None and replacement.secure and bus.is_online("r0"), 60, 0.02,
                   "r0 online again")  # fmt: skip
        back = time.monotonic() - replaced
        neighbour_down = sum(1 for s in statuses if s.reader == "r1" and not s.online)
        return to_offline, back, neighbour_down
    finally:
        bus.stop()
        for reader in [*readers, replacement]:
            if reader is not None:
                reader.stop()
        line.close()
        link.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outages", default="2,5,15,40,70", help="seconds each reader is away, comma-separated")
    args = parser.parse_args()
    print("away_s  to_offline_s  back_after_replug_s  neighbour_offline_reports")
    for away in (float(x) for x in args.outages.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            to_offline, back, neighbour = measure(Path(tmp), away)
        print(f"{away:6.0f}  {to_offline:12.1f}  {back:19.1f}  {neighbour:25d}", flush=True)


if __name__ == "__main__":
    main()

"""Fault campaign `clock`: the system clock stepped back and forward by hours (NTP) under a running gateway.

    .venv/bin/python -m bench.faults clock [--quick]
    .venv/bin/python -m bench.fault_clock [--quick]

The machine's clock is never touched. A real `accessgw run` (and its API child) runs under libfaketime
(Debian package `faketime`) with a timestamp file the campaign rewrites: each step is an offset of hours
for CLOCK_REALTIME, which is what `datetime.now`, `time.time` and SQLite's own `now` read (the gateway
does not use SQLite's). CLOCK_MONOTONIC is left alone (FAKETIME_DONT_FAKE_MONOTONIC=1), as an NTP step
leaves it: lock pulses, held-open timers, the outbox's backoff and asyncio's timers run on it. The campaign
checks from outside that the step reached the gateway: each entry's `ts` is the faked time.

Harness note: libfaketime 0.9.10 answers EINVAL to clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME) when
monotonic time is not faked, and Python 3.11's time.sleep uses exactly that; a sitecustomize.py on the
gateway's PYTHONPATH replaces time.sleep with a select() wait in the gateway's processes (harness only).

The building: door `main` (reader r1, schedule 07:00-22:00 every day) and door `lobby` (entry reader r2,
exit reader r3, anti-passback `hard`, reset at 04:00), time zone Asia/Shanghai. Tenants: T-TODAY's
permit ends on D (the real local date), T-TOMORROW's starts on D+1, T-ALWAYS's covers D-30 … D+30.
The gateway's clock goes: D 21:00 → +2 h → +6 h (past midnight and the 04:00 reset) → +4 h → -8 h → -10 h
(back across midnight) → the true time. At each step every tenant swipes and the reasons are checked
against the expected ones (permit dates, schedule windows, anti-passback); a door held open across a
backward step must raise door_held_open after held_open_s of real time; signed platform requests are
checked against the gateway's clock (`stale` beyond sync.max_skew_s: the platform and the gateway must
agree on the time). At the end: seq strictly increasing in the order the platform received them and in
the store, ids unique, `ts` going back exactly where the clock did, PRAGMA integrity_check ok.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bench.fault_rig import BASE, GATEWAY_ID, Consumer, Store, decision_times, ms
from drivers.simulators import SimulatedCardReader, VirtualSerialLink
from gateway.store.db import open_store
from gateway.store.roster import NewTenant, add_card, add_tenant
from sync.signing import new_key_pair, sign
from testing.gateway import DoorPeers, GatewayProcess, gateway_config
from testing.peers import Mosquitto, wait_until

ZONE = ZoneInfo("Asia/Shanghai")
# Debian's multiarch path (x86-64 or ARM); the MT build, for a process with threads.
LIBFAKETIME = next(iter(sorted(Path("/usr/lib").glob("*/faketime/libfaketimeMT.so.1"))),
                   Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"))  # fmt: skip
PULSE_MS = 300
HELD_OPEN_S = 2.0
MAX_SKEW_S = 300
TS_TOLERANCE_S = 10.0  # an entry's ts vs the faked clock (the swipe's round trip on a loaded machine)

CARD = {"T-TODAY": 5_000_001, "T-TOMORROW": 5_000_002, "T-ALWAYS": 5_000_003}
GRANTED, NOT_YET, EXPIRED, OUTSIDE, PASSBACK = (
    "granted", "permit_not_yet_valid", "permit_expired", "outside_schedule", "anti_passback")  # fmt: skip

SITE_SHIM = '''"""Harness only (bench/fault_clock.py): libfaketime 0.9.10 fails clock_nanosleep(CLOCK_MONOTONIC,
TIMER_ABSTIME) with EINVAL when monotonic time is not faked; Python's time.sleep uses it."""
import select
import time


def _sleep(seconds):
    if seconds < 0:
        raise ValueError("sleep length must be non-negative")
    select.select([], [], [], seconds)


time.sleep = _sleep
'''


@dataclass(frozen=True)
class Step:
    """The gateway's local clock after a step (days after D, hour), and what each read there must give:
    (door, reader, tenant, expected reason)."""

    name: str
    day: int
    hour: int
    reads: tuple[tuple[str, str, str, str], ...]


def main_door(tenants: dict[str, str]) -> tuple[tuple[str, str, str, str], ...]:
    return tuple(("main", "r1", tenant, reason) for tenant, reason in tenants.items())


STEPS = (
    Step("start, D 21:00", 0, 21,
         main_door({"T-TODAY": GRANTED, "T-TOMORROW": NOT_YET, "T-ALWAYS": GRANTED})
         + (("lobby", "r2", "T-ALWAYS", GRANTED), ("lobby", "r2", "T-ALWAYS", PASSBACK))),
    Step("+2 h, D 23:00", 0, 23,
         main_door({"T-TODAY": OUTSIDE, "T-TOMORROW": NOT_YET, "T-ALWAYS": OUTSIDE})
         + (("lobby", "r2", "T-ALWAYS", PASSBACK),)),
    # Past midnight and the 04:00 reset: T-TODAY's permit has ended, everyone counts as out.
    Step("+6 h, D+1 05:00", 1, 5,
         main_door({"T-TODAY": EXPIRED, "T-TOMORROW": OUTSIDE, "T-ALWAYS": OUTSIDE})
         + (("lobby", "r2", "T-ALWAYS", GRANTED), ("lobby", "r2", "T-ALWAYS", PASSBACK))),
    Step("+4 h, D+1 09:00", 1, 9,
         main_door({"T-TODAY": EXPIRED, "T-TOMORROW": GRANTED, "T-ALWAYS": GRANTED})),
    # Back before the 04:00 reset: another period, so nobody is kept in by the last one (never stuck inside).
    Step("-8 h, D+1 01:00", 1, 1,
         main_door({"T-TODAY": EXPIRED, "T-TOMORROW": OUTSIDE, "T-ALWAYS": OUTSIDE})
         + (("lobby", "r2", "T-ALWAYS", GRANTED), ("lobby", "r2", "T-ALWAYS", PASSBACK))),
    # Back across midnight (a clock that had run a day ahead, corrected): D's rules hold again.
    Step("-10 h, D 15:00", 0, 15,
         main_door({"T-TODAY": GRANTED, "T-TOMORROW": NOT_YET, "T-ALWAYS": GRANTED})
         + (("lobby", "r2", "T-ALWAYS", PASSBACK), ("lobby", "r3", "T-ALWAYS", GRANTED),
            ("lobby", "r2", "T-ALWAYS", GRANTED), ("lobby", "r3", "T-ALWAYS", GRANTED))),
)  # fmt: skip


class FakeClock:
    """The libfaketime timestamp file: an offset in seconds from the real clock, replaced atomically."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / "faketime"
        self.site = folder / "site"
        self.site.mkdir(exist_ok=True)
        (self.site / "sitecustomize.py").write_text(SITE_SHIM)
        self.offset = 0.0
        self.set_offset(0.0)

    def set_offset(self, seconds: float) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(f"{seconds:+.3f}\n")
        os.replace(tmp, self.path)  # never an empty file: libfaketime rereads it on every call
        self.offset = seconds

    def set_local(self, target: datetime) -> None:
        self.set_offset((target - datetime.now(UTC)).total_seconds())

    def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.offset)

    def env(self) -> dict[str, str]:
        return {
            "LD_PRELOAD": str(LIBFAKETIME),
            "FAKETIME_TIMESTAMP_FILE": str(self.path),
            "FAKETIME_NO_CACHE": "1",  # a step reaches the next clock read
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",  # an NTP step leaves CLOCK_MONOTONIC alone
            "PYTHONPATH": str(self.site),
        }


@contextlib.contextmanager
def environment(extra: dict[str, str]) -> Iterator[None]:
    """`extra` in os.environ while a child is spawned (GatewayProcess inherits it), then as it was."""
    saved = {k: os.environ.get(k) for k in extra}
    os.environ.update(extra)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@dataclass
class Figures:
    reads: int = 0
    wrong: list[str] = field(default_factory=list)
    ts_errors: list[float] = field(default_factory=list)  # |entry ts - faked clock| per read, seconds
    pulses: list[float] = field(default_factory=list)  # lock on → off at the board, seconds
    requests: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class ClockRig:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.clock = FakeClock(work / "clock")
        self.broker = Mosquitto(work / "broker")
        self.broker.start()
        self.peers = DoorPeers(work / "ports")
        self.links = [VirtualSerialLink(work / "ports" / f"{r}-sim", work / "ports" / f"{r}-gw") for r in ("r2", "r3")]
        self.cards = {"r2": SimulatedCardReader(work / "ports" / "r2-sim"),
                      "r3": SimulatedCardReader(work / "ports" / "r3-sim")}  # fmt: skip
        assert self.peers.card is not None
        self.cards["r1"] = self.peers.card
        self.key, public = new_key_pair()
        every_day = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        main = self.peers.card_door(PULSE_MS, held_open_s=HELD_OPEN_S,
                                    schedule=[{"days": every_day, "from": "07:00", "to": "22:00"}])  # fmt: skip
        lobby = {"id": "lobby", "mode": "card", "readers": {"in": "r2", "out": "r3"},
                 "lock": {"io": "io1", "coil": 1, "pulse_ms": PULSE_MS},
                 "anti_passback": {"mode": "hard", "reset_at": "04:00"}}  # fmt: skip
        readers = [self.peers.reader_config()] + [
            {"id": r, "protocol": "wiegand-text", "port": str(work / "ports" / f"{r}-gw"), "repeat_suppress_ms": 0}
            for r in ("r2", "r3")
        ]
        config = gateway_config(work / "data", self.broker.port, gateway_id=GATEWAY_ID, timezone=str(ZONE),
                                mqtt={"state_interval_s": 5},
                                sync={"platform_public_key": public, "max_skew_s": MAX_SKEW_S},
                                readers=readers, io_modules=[self.peers.io_config()], doors=[main, lobby])  # fmt: skip
        self.gw = GatewayProcess(work, config)
        self.store = Store(self.gw.data_dir)
        self.consumer = Consumer(self.broker.port)
        self.d = datetime.now(ZONE).date()
        self._tx = 0

    def enrol(self) -> None:
        d = self.d
        validity = {"T-TODAY": (d - timedelta(days=30), d), "T-TOMORROW": (d + timedelta(days=1), d + timedelta(30)),
                    "T-ALWAYS": (d - timedelta(days=30), d + timedelta(days=30))}  # fmt: skip
        engine, sessions = open_store(self.gw.data_dir)
        try:
            with sessions.begin() as s:
                for tenant, (start, end) in validity.items():
                    add_tenant(s, NewTenant(tenant, tenant, f"P-{tenant}", end, start))
                    add_card(s, tenant, CARD[tenant])
        finally:
            engine.dispose()

    def start(self) -> None:
        with environment(self.clock.env()):
            self.gw.start()
        self.peers.wait_polled()

    def local(self, day: int, hour: int) -> datetime:
        return datetime.combine(self.d + timedelta(days=day), clock_time(hour), ZONE)

    # --- traffic and what came of it ------------------------------------------------------------
    def entries(self) -> list[dict[str, Any]]:
        seen, _, _ = self.consumer.check()
        return [e for e in seen.values() if "decision" in e]

    def read(self, reader: str, tenant: str) -> dict[str, Any]:
        """One swipe; the entry the platform received for it."""
        number = CARD[tenant]
        before = len([e for e in self.entries() if e["card_number"] == number])
        self.cards[reader].swipe(number, 34)
        wait_until(lambda: len([e for e in self.entries() if e["card_number"] == number]) > before, 15, 0.02,
                   f"the entry of {tenant} at {reader}")  # fmt: skip
        return [e for e in self.entries() if e["card_number"] == number][-1]

    def signed_open(self, issued: datetime) -> dict[str, Any]:
        self._tx += 1
        tx = f"clock-{self._tx}"
        message = sign({"transaction": tx, "issued_at": issued.isoformat(timespec="seconds").replace("+00:00", "Z"),
                        "door": "lobby", "user": "clock-campaign"}, self.key)  # fmt: skip
        self.consumer.sub.client.publish(f"{BASE}/request/door/open", json.dumps(message), qos=1)
        return wait_until(lambda: self.consumer.responses().get(tx), 15, 0.02, f"the answer to {tx}")

    def pulses(self, coil: int, since: float) -> list[float]:
        """Lock on → off durations at the board for writes after `since` (monotonic, this process)."""
        out, on_at = [], None
        for at, index, value in self.peers.board.write_history():
            if index != coil or at < since:
                continue
            if value:
                on_at = at
            elif on_at is not None:
                out.append(at - on_at)
                on_at = None
        return out

    def close(self) -> None:
        try:
            if self.gw.running:
                self.gw.stop()
        finally:
            self.consumer.close()
            for card in self.cards.values():
                card.close()
            for link in self.links:
                link.close()
            self.peers.close()
            self.broker.stop()


def run_step(rig: ClockRig, step: Step, figures: Figures) -> None:
    target = rig.local(step.day, step.hour)
    rig.clock.set_local(target)
    since = time.monotonic()
    for door, reader, tenant, expected in step.reads:
        entry = rig.read(reader, tenant)
        figures.reads += 1
        ts = datetime.fromisoformat(entry["ts"].replace("Z", "+00:00"))
        figures.ts_errors.append(abs((ts - rig.clock.now()).total_seconds()))
        if entry["reason"] != expected or entry["door"] != door:
            figures.wrong.append(f"{step.name}: {tenant} at {door}/{reader}: {entry['reason']} (expected {expected})")
    time.sleep(PULSE_MS / 1000 + 0.3)  # the last pulse ends
    figures.pulses += rig.pulses(0, since) + rig.pulses(1, since)
    print(f"  step {step.name}: gateway clock {target:%Y-%m-%d %H:%M} {target.tzname()}, "
          f"{len(step.reads)} reads checked")  # fmt: skip


def held_open_across_a_step(rig: ClockRig, figures: Figures) -> None:
    """Door main opened after a grant, the clock stepped back 8 h while it stays open: door_held_open must
    come after held_open_s of real time (monotonic), and clear when it closes."""
    rig.clock.set_local(rig.local(1, 9))
    rig.read("r1", "T-ALWAYS")  # granted at 09:00: the door may open
    rig.peers.board.set_input(0, True)
    opened = time.monotonic()
    time.sleep(0.5)
    rig.clock.set_local(rig.local(1, 1))  # -8 h while the door stands open

    def alert(state: str) -> dict[str, Any] | None:
        seen, _, _ = rig.consumer.check()
        found = [e for e in seen.values() if e.get("kind") == "door_held_open" and e.get("state") == state]
        return found[-1] if found else None

    wait_until(lambda: alert("raised"), 15, 0.02, "door_held_open raised")
    raised_after = time.monotonic() - opened
    rig.peers.board.set_input(0, False)
    closed = time.monotonic()
    wait_until(lambda: alert("cleared"), 15, 0.02, "door_held_open cleared")
    cleared_after = time.monotonic() - closed
    ok = HELD_OPEN_S <= raised_after <= HELD_OPEN_S + 3
    figures.notes.append(
        f"door held open across a -8 h step: door_held_open raised {raised_after:.1f} s after opening "
        f"(held_open_s {HELD_OPEN_S:g}), cleared {cleared_after:.1f} s after closing"
    )
    if not ok:
        figures.wrong.append(f"door_held_open raised {raised_after:.1f} s after opening, not ~{HELD_OPEN_S:g} s")


def signed_requests(rig: ClockRig, figures: Figures, when: str) -> None:
    """A door/open issued on the true clock and one on the gateway's (faked) clock."""
    skew = abs(rig.clock.offset)
    for label, issued in (("platform on the true time", datetime.now(UTC)), ("platform on the gateway's time",
                                                                            rig.clock.now())):  # fmt: skip
        answer = rig.signed_open(issued)
        got = answer["status"] if answer["status"] == "ok" else answer.get("error")
        fresh = abs((issued - rig.clock.now()).total_seconds()) <= MAX_SKEW_S
        expected = "ok" if fresh else "stale"
        figures.requests.append(f"{when} (gateway {skew / 3600:+.1f} h off): {label} → {got}")
        if got != expected:
            figures.wrong.append(f"signed door/open, {when}, {label}: {got} (expected {expected})")


def check_order(rig: ClockRig, figures: Figures) -> None:
    seen, duplicates, disorder = rig.consumer.check()
    if disorder:
        figures.wrong.append(f"platform received seq out of order: {disorder[:3]}")
    db = sqlite3.connect(rig.store.path, timeout=10)
    try:
        rows = db.execute("SELECT seq, ts, id FROM entries ORDER BY seq").fetchall()
        alerts = db.execute("SELECT seq, id FROM alerts").fetchall()
    finally:
        db.close()
    ids = [r[2] for r in rows] + [a[1] for a in alerts]
    if len(set(ids)) != len(ids):
        figures.wrong.append("duplicate event ids in the store")
    back = [(a, b) for a, b in zip(rows, rows[1:], strict=False) if b[1] < a[1]]
    largest = max(((datetime.fromisoformat(a[1]) - datetime.fromisoformat(b[1])).total_seconds() for a, b in back),
                  default=0.0)  # fmt: skip
    not_in_store = [e["id"] for e in seen.values() if "decision" in e and e["id"] not in {r[2] for r in rows}]
    if not_in_store:
        figures.wrong.append(f"{len(not_in_store)} entries the platform got are not in the store")
    undelivered = {r[2] for r in rows} - set(seen)
    if undelivered:
        figures.wrong.append(f"{len(undelivered)} entries never reached the platform")
    forced = [e for e in seen.values() if e.get("kind") == "door_forced"]
    if forced:
        figures.wrong.append(f"door_forced raised {len(forced)} times, though every opening followed a grant")
    integrity = rig.store.integrity()
    if integrity != "ok":
        figures.wrong.append(f"integrity_check: {integrity}")
    figures.notes.append(
        f"order: {len(rows)} entries + {len(alerts)} alerts, seq strictly increasing as the platform received them "
        f"({'yes' if not disorder else 'NO'}), {duplicates} duplicate deliveries; ts went back {len(back)} times "
        f"between consecutive seq (largest {largest / 3600:.1f} h), at the backward steps; ids unique; "
        f"integrity_check {integrity}"
    )


def run(quick: bool) -> int:
    if not LIBFAKETIME.exists():
        print(f"libfaketime missing ({LIBFAKETIME}): apt-get install -y --no-install-recommends faketime")
        return 1
    work = Path(tempfile.mkdtemp(prefix="fault-clock-"))
    rig = ClockRig(work)
    figures = Figures()
    print(f"clock: gateway under libfaketime (monotonic untouched), zone {ZONE}, D = {rig.d}; steps "
          f"{' → '.join(s.name for s in STEPS)} → true time")  # fmt: skip
    try:
        rig.enrol()
        rig.clock.set_local(rig.local(0, 21))
        rig.start()
        signed_requests(rig, figures, "at D 21:00")
        steps = STEPS[:4] if quick else STEPS
        for step in steps:
            run_step(rig, step, figures)
        if not quick:
            held_open_across_a_step(rig, figures)
        rig.clock.set_offset(0.0)  # NTP puts the true time back
        truth = datetime.now(ZONE)
        in_hours = 7 <= truth.hour < 22
        final = Step("true time", 0, truth.hour, main_door({"T-TODAY": GRANTED if in_hours else OUTSIDE,
                                                            "T-ALWAYS": GRANTED if in_hours else OUTSIDE})
                     + (("lobby", "r2", "T-ALWAYS", GRANTED),))  # fmt: skip
        for door, reader, tenant, expected in final.reads:
            entry = rig.read(reader, tenant)
            figures.reads += 1
            if entry["reason"] != expected:
                figures.wrong.append(f"true time: {tenant} at {door}: {entry['reason']} (expected {expected})")
        signed_requests(rig, figures, "back on the true time")
        time.sleep(1.0)  # the last events leave the outbox
        check_order(rig, figures)
        times = decision_times(rig.gw.log(), set(CARD.values()))
    finally:
        rig.close()
    print(f"reads: {figures.reads} checked against the expected reason, {len(figures.wrong)} wrong")
    print(f"entry ts vs the faked clock: max {max(figures.ts_errors, default=0):.2f} s "
          f"(the step reached the gateway at its next clock read)")  # fmt: skip
    print(f"lock pulses across the steps ({len(figures.pulses)}): {ms(figures.pulses)} "
          f"(pulse_ms {PULSE_MS}: timed on the monotonic clock)")  # fmt: skip
    print(f"decision times under libfaketime (frame → relay hand-over, from the log): {ms(times)}")
    for line in figures.requests + figures.notes:
        print(f"  {line}")
    for line in figures.wrong:
        print(f"  WRONG {line}")
    shutil.rmtree(work, ignore_errors=True)
    return 1 if figures.wrong else 0


def cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the first four steps only")
    return run(parser.parse_args(argv).quick)


if __name__ == "__main__":
    sys.exit(cli())

"""The wall clock stepped by hours (NTP) under a running `accessgw run`: decisions follow the new time,
`seq` keeps increasing while `ts` goes back, and what runs on the monotonic clock (the lock pulse) is
untouched. The process's clock is stepped with libfaketime (bench/fault_clock.py), never the machine's.

The fault campaign (`python -m bench.faults clock`) goes further: six steps, schedules, a door held open
across a step, signed platform requests against a wrong clock.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from bench.fault_clock import LIBFAKETIME, PULSE_MS, ClockRig
from testing.peers import wait_until

pytestmark = pytest.mark.slow  # a gateway process and its peers: about 8 s


def entry_ts(entry: dict) -> datetime:
    return datetime.fromisoformat(entry["ts"].replace("Z", "+00:00"))


def test_decisions_follow_the_clock_across_steps_and_seq_keeps_order(tmp_path: Path) -> None:
    assert LIBFAKETIME.exists(), "libfaketime is missing: apt-get install faketime (install.sh --test does)"
    rig = ClockRig(tmp_path)
    try:
        rig.enrol()
        rig.clock.set_local(rig.local(0, 21))  # D 21:00: T-TODAY's permit ends tonight
        rig.start()
        first = rig.read("r1", "T-TODAY")
        assert first["reason"] == "granted"
        assert abs((entry_ts(first) - rig.clock.now()).total_seconds()) < 10  # the gateway reads the faked clock
        assert rig.read("r1", "T-TOMORROW")["reason"] == "permit_not_yet_valid"
        assert rig.read("r2", "T-ALWAYS")["reason"] == "granted"  # in at the lobby (anti-passback, reset 04:00)

        rig.clock.set_local(rig.local(1, 3))  # +6 h: past midnight, before the 04:00 reset
        assert rig.read("r1", "T-TODAY")["reason"] == "permit_expired"
        assert rig.read("r1", "T-TOMORROW")["reason"] == "outside_schedule"  # 03:00 is outside 07:00-22:00
        assert rig.read("r2", "T-ALWAYS")["reason"] == "anti_passback"  # still the period that began D 04:00

        rig.clock.set_local(rig.local(0, 19))  # -8 h, back across midnight
        back = rig.read("r1", "T-TODAY")
        assert back["reason"] == "granted"  # D's rules again: the decision follows the clock it is given
        assert rig.read("r2", "T-ALWAYS")["reason"] == "anti_passback"  # the same period: still inside
        assert rig.read("r3", "T-ALWAYS")["reason"] == "granted"  # out
        assert rig.read("r2", "T-ALWAYS")["reason"] == "granted"  # and in again

        seen, duplicates, disorder = rig.consumer.check()
        assert disorder == [], disorder  # the platform receives seq strictly increasing
        db = sqlite3.connect(rig.store.path)
        try:
            rows = db.execute("SELECT seq, ts FROM entries ORDER BY seq").fetchall()
        finally:
            db.close()
        assert len(rows) == 10 and all(a[0] < b[0] for a, b in zip(rows, rows[1:], strict=False))
        went_back = [(a, b) for a, b in zip(rows, rows[1:], strict=False) if b[1] < a[1]]
        assert len(went_back) == 1  # exactly at the backward step, by about 8 h
        gap = datetime.fromisoformat(went_back[0][0][1]) - datetime.fromisoformat(went_back[0][1][1])
        assert timedelta(hours=7, minutes=50) < gap < timedelta(hours=8, minutes=10)
        assert entry_ts(back) < entry_ts(first)

        wait_until(lambda: rig.peers.board.coils()[:2] == [False, False], 5, 0.02, "both locks off again")
        pulses = rig.pulses(0, 0.0) + rig.pulses(1, 0.0)
        assert len(pulses) >= 2  # five grants; grants closer than a pulse merge into one (timing-dependent)
        # Timed on the monotonic clock: a pulse that used the wall clock would have lasted 8 h, or nothing.
        assert all(PULSE_MS / 1000 - 0.05 < p < PULSE_MS / 1000 + 0.5 for p in pulses), pulses
    finally:
        rig.close()

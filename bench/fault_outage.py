"""Fault campaign `outage`: the broker down long enough for the gateway to queue ≥ 10,000 events.

    .venv/bin/python -m bench.faults outage [--quick]      # 10,500 swipes (2,000 with --quick)

mosquitto is stopped; swipes go in at the reader (real frames through the pty, each its own card,
half granted) at 250/s; the outbox holds every one. mosquitto starts
again on the same port with its persistence (the consumer's persistent session survives): every
event is delivered, new ids in `seq` order, and the outbox goes back to 0. Timed: the swipes, the
drain (broker start → consumer has every id and the outbox is empty).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from bench.fault_rig import FaultRig, decision_times, finish, ms
from testing.peers import wait_until

SWIPES = 10_500
QUICK_SWIPES = 2_000
AHEAD = 200  # swipes allowed in the pty ahead of the gateway's decisions
SWIPES_PER_S = 250.0  # a hard rate for one door, still one the decision times mean something at


def run(quick: bool) -> int:
    total = QUICK_SWIPES if quick else SWIPES
    work = Path(tempfile.mkdtemp(prefix="accessgw-fault-outage-"))
    rig = FaultRig(work, state_interval_s=60)
    errors: list[str] = []
    try:
        rig.enrol(total // 2 + 100)
        rig.gw.start(60)
        rig.wait_online(0)
        for _ in range(10):
            rig.swipe()
        wait_until(lambda: len(rig.consumer.check()[0]) >= 10, 30, 0.05, "the first 10 entries delivered")
        before = len(rig.swipes)

        rig.broker.stop()
        down = time.monotonic()
        t = time.monotonic()
        for i in range(total):
            rig.swipe()
            time.sleep(max(0.0, t + (i + 1) / SWIPES_PER_S - time.monotonic()))
            if i % AHEAD == AHEAD - 1:  # keep the pty from filling: wait for the decisions to catch up
                wait_until(lambda: rig.store.entry_count() >= len(rig.swipes) - AHEAD, 60, 0.01, "decisions")
        wait_until(lambda: rig.store.entry_count() >= len(rig.swipes), 60, 0.05, "every swipe decided")
        swipe_s = time.monotonic() - t
        queued = rig.store.outbox_depth()
        print(f"  broker down; {total} swipes decided in {swipe_s:.1f} s ({total / swipe_s:.0f}/s); "
              f"outbox depth {queued}", flush=True)  # fmt: skip
        if queued < total:
            errors.append(f"outbox holds {queued}, fewer than the {total} entries made while the broker was down")

        up = time.monotonic()
        rig.broker.start()
        stored = {entry_id for entry_id, *_ in rig.store.entries()}
        wait_until(lambda: stored <= rig.consumer.check()[0].keys(), 600, 0.1, "every entry at the consumer")
        delivered_s = time.monotonic() - up
        wait_until(lambda: rig.store.outbox_depth() == 0, 120, 0.1, "the outbox empty")
        drained_s = time.monotonic() - up
        seen, duplicates, disorder = rig.consumer.check()
        rows = rig.store.entries()
        per_card = {number for _, _, number, _, _ in rows}
        missing = [s.number for s in rig.swipes if s.number not in per_card]
        if len(rows) != len(rig.swipes) or missing:
            errors.append(f"{len(rig.swipes)} swipes, {len(rows)} entries, {len(missing)} swipes without one")
        lost = [entry_id for entry_id, *_ in rows if entry_id not in seen]
        if lost:
            errors.append(f"{len(lost)} entries never delivered")
        if disorder:
            errors.append(f"{len(disorder)} new ids out of seq order, e.g. {disorder[:3]}")
        integrity = rig.store.integrity()
        if integrity != "ok":
            errors.append(f"integrity_check: {integrity}")
        outage_numbers = {s.number for s in rig.swipes[before:]}
        times = decision_times(rig.gw.log(), outage_numbers)
        rig.gw.stop()
    finally:
        rig.close()
    print(f"outage campaign: broker down {up - down:.0f} s while {total} swipes were decided; "
          f"outbox depth at the broker's return: {queued}")  # fmt: skip
    print(f"  decision time during the outage at {SWIPES_PER_S:g} swipes/s (frame read → relay, the gateway's "
          f"log): {ms(times)}")  # fmt: skip
    print(f"  broker back → every entry at the consumer: {delivered_s:.1f} s ({queued / delivered_s:.0f} events/s); "
          f"→ outbox 0: {drained_s:.1f} s")  # fmt: skip
    print(f"  entries: {len(rows)}, delivered (unique ids): {len(seen)}, lost: {len(lost)}, duplicates delivered: "
          f"{duplicates}, new ids out of seq order: {len(disorder)}")  # fmt: skip
    print(f"  integrity_check: {integrity}")
    return finish(errors, work)

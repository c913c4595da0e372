"""Fault campaign `disk`: the gateway's data_dir on a small tmpfs, filled up while swipes flow.

    .venv/bin/python -m bench.faults disk [--quick]     # needs root (mount); 20 s full (8 s with --quick)

Phases: normal (swipes flowing) → a filler file takes every free block → full (swipes flowing, then
probes: a granted card must pulse the relay on the pymodbus board, a refused one must not) → the
filler is deleted → recovery → normal again. Checked: the doors kept deciding; no entry row was
added while full (the outbox stopped growing) and `storage_full` was raised; integrity_check ok
while full and after; after space returns every swipe is exactly one entry, all delivered in seq
order, `storage_full` cleared, the outbox back to 0.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from bench.fault_rig import FaultRig, Traffic, decision_times, finish, ms
from testing.peers import wait_until
from testing.tmpfs import can_mount, fill_up, free_bytes, small_tmpfs

SIZE = "8m"
SWIPES_PER_S = 20.0
PROBES = 5


def relay_opened(rig: FaultRig, within_s: float) -> float | None:
    """Seconds until coil 0 was switched on (history cleared just before), or None within `within_s`."""
    start = time.monotonic()
    while time.monotonic() - start < within_s:
        if any(coil == 0 and on for _, coil, on in rig.peers.board.write_history()):
            return time.monotonic() - start
        time.sleep(0.005)
    return None


def run(quick: bool) -> int:
    if not can_mount():
        print("disk campaign: needs root to mount a tmpfs")
        return 2
    full_s = 8.0 if quick else 20.0
    work = Path(tempfile.mkdtemp(prefix="accessgw-fault-disk-"))
    data = work / "data"
    errors: list[str] = []
    with small_tmpfs(data, SIZE):
        rig = FaultRig(work, data_dir=data, state_interval_s=60)
        traffic = Traffic(rig, SWIPES_PER_S)
        try:
            rig.enrol(2000)
            rig.gw.start(60)
            rig.wait_online(0)
            traffic.resume()
            time.sleep(5)
            normal = {s.number for s in rig.swipes}

            # --- full -------------------------------------------------------------------
            filler = fill_up(data)
            filled_at = time.monotonic()
            entries_at_fill, depth_at_fill = rig.store.entry_count(), rig.store.outbox_depth()
            depths, entry_counts = [], []
            while time.monotonic() - filled_at < full_s:
                depths.append(rig.store.outbox_depth())
                entry_counts.append(rig.store.entry_count())
                time.sleep(0.5)
            traffic.pause()
            opened, stayed_shut = [], 0
            for _ in range(PROBES):
                # A pulse still running would only be extended (no new ON write): start from a locked door.
                wait_until(lambda: not rig.peers.board.coil(0), 5, 0.01, "the lock relay off")
                rig.peers.board.clear_history()
                rig.swipe(granted=True)
                took = relay_opened(rig, 2.0)
                if took is None:
                    errors.append("a granted card did not open the relay while the disk was full")
                else:
                    opened.append(took)
                time.sleep(0.3)  # the pulse (100 ms) is over
                rig.peers.board.clear_history()
                rig.swipe(granted=False)
                if relay_opened(rig, 0.5) is None:
                    stayed_shut += 1
                else:
                    errors.append("a refused card opened the relay while the disk was full")
            full_numbers = {s.number for s in rig.swipes} - normal
            grew = max(entry_counts + [rig.store.entry_count()]) - entries_at_fill
            if grew:
                errors.append(f"{grew} entry rows were added while the disk was full")
            raised = [e for e in rig.consumer.check()[0].values() if e.get("kind") == "storage_full"]
            if [(e["state"]) for e in raised] != ["raised"]:
                errors.append(f"storage_full at the consumer while full: {[e['state'] for e in raised]}")
            integrity_full = rig.store.integrity()
            kept_in_log = rig.gw.log().count("storage full:")
            free_when_full = free_bytes(data)

            # --- space returns ----------------------------------------------------------------
            filler.unlink()
            freed_at = time.monotonic()
            wait_until(lambda: rig.store.entry_count() >= len(rig.swipes), 60, 0.05, "the kept entries written")
            written_s = time.monotonic() - freed_at

            def cleared() -> list[dict]:
                return [e for e in rig.consumer.check()[0].values()
                        if e.get("kind") == "storage_full" and e["state"] == "cleared"]  # fmt: skip

            wait_until(cleared, 60, 0.05, "storage_full cleared at the consumer")
            traffic.resume()
            time.sleep(3)
            traffic.pause()
            wait_until(lambda: rig.store.entry_count() >= len(rig.swipes), 30, 0.05, "every swipe decided")
            stored = {entry_id for entry_id, *_ in rig.store.entries()}
            wait_until(lambda: stored <= rig.consumer.check()[0].keys(), 120, 0.1, "every entry at the consumer")
            delivered_s = time.monotonic() - freed_at
            wait_until(lambda: rig.store.outbox_depth() == 0, 60, 0.1, "the outbox empty")

            rows = rig.store.entries()
            by_card: dict[int, int] = {}
            for _, _, number, _, _ in rows:
                by_card[number] = by_card.get(number, 0) + 1
            missing = [s.number for s in rig.swipes if by_card.get(s.number, 0) == 0]
            doubled = [n for n, c in by_card.items() if c > 1]
            if missing or doubled:
                errors.append(f"{len(missing)} swipes without an entry, {len(doubled)} with two or more")
            seen, duplicates, disorder = rig.consumer.check()
            lost = [i for i in stored if i not in seen]
            if lost:
                errors.append(f"{len(lost)} entries never delivered")
            if disorder:
                errors.append(f"{len(disorder)} new ids out of seq order, e.g. {disorder[:3]}")
            integrity_after = rig.store.integrity()
            for name, result in (("while full", integrity_full), ("after", integrity_after)):
                if result != "ok":
                    errors.append(f"integrity_check {name}: {result}")
            times_normal = decision_times(rig.gw.log(), normal)
            times_full = decision_times(rig.gw.log(), full_numbers)
            details = cleared()[0]["details"]
            rig.gw.stop()
        finally:
            traffic.close()
            rig.close()
    print(f"disk campaign: data_dir on a {SIZE} tmpfs, filled for {full_s:.0f} s while {SWIPES_PER_S:g} swipes/s "
          f"flowed (half granted), then {PROBES} granted + {PROBES} refused probes")  # fmt: skip
    print(f"  while full: {len(full_numbers)} swipes decided; relay opened for {len(opened)}/{PROBES} granted probes "
          f"({ms(opened)} from the write to the pty), stayed shut for {stayed_shut}/{PROBES} refused")  # fmt: skip
    print(f"  decision time (the gateway's log, read → relay): normal {ms(times_normal)}; full {ms(times_full)}")
    print(f"  outbox while full: depth {depth_at_fill} at the fill, max {max(depths)}; entry rows added: {grew}; "
          f"free bytes {free_when_full}; 'storage full' log lines: {kept_in_log}")  # fmt: skip
    print(f"  storage_full raised at the consumer while full: {len(raised) == 1}; cleared with {details}")
    print(f"  space back → kept entries written: {written_s:.1f} s; → all delivered: {delivered_s:.1f} s")
    print(f"  swipes: {len(rig.swipes)}, entries: {len(rows)}, events delivered (unique ids, entries and alerts): "
          f"{len(seen)}, entries lost: {len(lost)},"
          f" duplicates delivered: {duplicates}, out of seq order: {len(disorder)}")  # fmt: skip
    print(f"  integrity_check: while full {integrity_full}, after {integrity_after}")
    return finish(errors, work)

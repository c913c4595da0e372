"""Benchmark: a roster snapshot of 100,000 tenants (a card and a face template each) and a 1,000-operation
patch, through the gateway's own request path (router with signature guard → RosterRequests → SQLite).

Prints the messages a platform sends (count, sizes: each ≤ 200 KB, DESIGN §6.1), the time to take the
chunks in (parse and check) and to apply the snapshot, how long a door's commit (SQLite's write lock,
taken every 10 ms by a probe thread) waited meanwhile, the peak RSS, and the patch's time. Baseline in
the same run: the same snapshot applied as one transaction (what the gateway did before: the doors
waited for all of it). Then a second snapshot on the full store (1% of tenants changed, 1,000 new):
the usual one, after a version gap.

    .venv/bin/python -m bench.roster_apply [--tenants 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np

from bench.roster import snapshot_messages
from gateway.platform_requests import RosterRequests
from gateway.store.db import open_store, write_now, write_now_on
from gateway.store.replay import SqlReplayMemory
from gateway.store.roster_snapshot import apply_changes, apply_new_rows, drop_stage, new_row_batches, stage_snapshot
from gateway.store.roster_sync import current_version, parse_ops
from sync.commands import CommandRouter, RequestGuard
from sync.signing import new_key_pair, public_key, sign

VALID_TO = f"{date.today().year + 1}-06-30"


def rss_mb() -> tuple[float, float]:
    """(VmRSS, VmHWM) of this process in MB."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def reset_peak_rss() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS (Linux)


def ops(tenants: int, changed: int = 0) -> Iterator[dict[str, Any]]:
    """The roster: a card and a template per tenant; every `changed`-th tenant suspended (0: none)."""
    rng = np.random.default_rng(1)
    for i in range(tenants):
        status = "suspended" if changed and i % changed == 0 else "active"
        yield {"op": "upsert", "kind": "tenant", "id": f"T{i:06d}", "name": f"租户 {i}", "permit": f"4401061990{i:08d}",
               "valid_from": "2026-01-01", "valid_to": VALID_TO, "room": f"{i % 30 + 1}{i % 20:02d}",
               "status": status}  # fmt: skip
    for i in range(tenants):
        yield {"op": "upsert", "kind": "card", "number": 10_000_000 + i, "tenant": f"T{i:06d}"}
    for i in range(tenants):
        vector = rng.normal(0, 0.1, 128).astype("<f4").tobytes()
        yield {"op": "upsert", "kind": "template", "id": f"F{i:06d}", "tenant": f"T{i:06d}",
               "vector": base64.b64encode(vector).decode()}  # fmt: skip


class DoorProbe(threading.Thread):
    """Takes SQLite's write lock every 10 ms, as a door's commit does: how long did one wait at worst?"""

    def __init__(self, engine: Any) -> None:
        super().__init__(daemon=True)
        self.engine, self.stop, self.waits = engine, threading.Event(), [0.0]

    def run(self) -> None:
        while not self.stop.is_set():
            t = time.perf_counter()
            with write_now(self.engine):
                pass
            self.waits.append(time.perf_counter() - t)
            time.sleep(0.01)


def now_text() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def waited(probe: DoorProbe) -> str:
    return (f"a door's commit waited at most {max(probe.waits) * 1000:.0f} ms, p99 "
            f"{np.percentile(probe.waits, 99) * 1000:.1f} ms over {len(probe.waits) - 1} commits")  # fmt: skip


def baseline_one_transaction(tmp: Path, tenants: int) -> None:
    """The same snapshot applied the way the gateway did before: staged outside the lock, then all of it
    in one write transaction."""
    engine, _ = open_store(tmp / "baseline")
    parsed = parse_ops(list(ops(tenants)), upserts_only=True)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("BEGIN")
        staged = stage_snapshot(conn, 1, parsed)
        conn.exec_driver_sql("COMMIT")
        probe = DoorProbe(engine)
        probe.start()
        t0 = time.perf_counter()
        with write_now_on(conn):
            staged = apply_changes(conn, staged)
            for batch in new_row_batches(conn, size=tenants * 3):
                apply_new_rows(conn, staged, batch, last=batch[0] == "stage_template")
        apply_s = time.perf_counter() - t0
        probe.stop.set()
        probe.join()
        drop_stage(conn)
    print(f"  baseline, one write transaction (as before): applied in {apply_s:.2f} s; {waited(probe)}")
    engine.dispose()


async def send(router: CommandRouter, messages: list[bytes]) -> tuple[float, float]:
    """(seconds for all chunks, seconds for the last one: the apply)."""
    t0 = time.perf_counter()
    for m in messages[:-1]:
        await router.dispatch("roster/snapshot", m)
    t_last = time.perf_counter()
    await router.dispatch("roster/snapshot", messages[-1])
    return time.perf_counter() - t0, time.perf_counter() - t_last


async def run(tenants: int, patch_ops: int) -> None:
    key, public = new_key_pair()
    with tempfile.TemporaryDirectory() as tmp:
        engine, _ = open_store(Path(tmp) / "data")
        answers: list[dict[str, Any]] = []
        router = CommandRouter(lambda cmd, payload: answers.append(json.loads(payload)),
                               RequestGuard(public_key(public), SqlReplayMemory(engine)))  # fmt: skip
        roster = RosterRequests(router, engine, "bench", lambda: None)

        messages = snapshot_messages(key, 1, ops(tenants))
        sizes = np.array([len(m) for m in messages])
        print(f"snapshot of {tenants:,} tenants, {tenants:,} cards, {tenants:,} templates: {len(messages)} messages, "
              f"{sizes.sum() / 1e6:.1f} MB; sizes min {sizes.min():,} / median {int(np.median(sizes)):,} / "
              f"max {sizes.max():,} bytes")  # fmt: skip
        baseline_one_transaction(Path(tmp), tenants)

        base_rss, _ = rss_mb()
        reset_peak_rss()
        probe = DoorProbe(engine)
        probe.start()
        total_s, apply_s = await send(router, messages)
        probe.stop.set()
        probe.join()
        rss, peak = rss_mb()
        last = answers[-1]
        assert last.get("complete") and last.get("version") == 1, last
        assert all(a["status"] == "ok" for a in answers), [a for a in answers if a["status"] != "ok"][:1]
        with engine.connect() as conn:
            counts = [conn.exec_driver_sql(f"SELECT count(*) FROM {t}").scalar()
                      for t in ("tenants", "cards", "face_templates")]  # fmt: skip
        assert counts == [tenants] * 3, counts
        print(f"  into a new gateway: all chunks in and applied {total_s:.2f} s; the last chunk (sort, then the "
              f"apply in short transactions) {apply_s:.2f} s; {waited(probe)}")  # fmt: skip
        print(f"  RSS before {base_rss:.0f} MB (the messages held by the bench: {sizes.sum() / 2**20:.0f} MB), "
              f"peak {peak:.0f} MB (+{peak - base_rss:.0f} MB), after {rss:.0f} MB")  # fmt: skip
        del messages

        # The usual snapshot: after a version gap, on a full store, most of it already held.
        messages = snapshot_messages(key, 2, ops(tenants + 1000, changed=100))
        probe = DoorProbe(engine)
        probe.start()
        total_s, apply_s = await send(router, messages)
        probe.stop.set()
        probe.join()
        assert answers[-1].get("version") == 2, answers[-1]
        print(f"second snapshot, {tenants + 1000:,} tenants of which {tenants // 100:,} changed and 1,000 new: all "
              f"chunks {total_s:.2f} s, the apply {apply_s:.2f} s; {waited(probe)}")  # fmt: skip
        del messages

        patch = [{"op": "upsert", "kind": "tenant", "id": f"T{i:06d}", "name": f"租户 {i}",
                  "permit": f"4401061990{i:08d}", "valid_from": "2026-01-01", "valid_to": VALID_TO, "room": "9",
                  "status": "suspended"} for i in range(patch_ops // 2)]  # fmt: skip
        patch += [{"op": "upsert", "kind": "card", "number": 90_000_000 + i, "tenant": f"T{i:06d}"}
                  for i in range(patch_ops - len(patch))]  # fmt: skip
        message = json.dumps(sign({"transaction": "p-1", "issued_at": now_text(), "from_version": 2,
                                   "to_version": 3, "ops": patch}, key), ensure_ascii=False).encode()  # fmt: skip
        t0 = time.perf_counter()
        answer = await router.dispatch("roster/patch", message)
        patch_s = time.perf_counter() - t0
        assert answer is not None and answer.get("version") == 3, answer
        with engine.connect() as conn:
            assert current_version(conn) == 3
        print(f"patch of {patch_ops:,} operations ({len(message):,} bytes): {patch_s * 1000:.0f} ms, signature "
              f"check to answer")  # fmt: skip
        del roster
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tenants", type=int, default=100_000)
    parser.add_argument("--patch-ops", type=int, default=1_000)
    args = parser.parse_args()
    asyncio.run(run(args.tenants, args.patch_ops))


if __name__ == "__main__":
    main()

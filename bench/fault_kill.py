"""Fault campaign `kill`: SIGKILL of a real `accessgw run` at random moments while swipes and remote
opens flow, then a restart; after every restart the whole history is accounted for.

    .venv/bin/python -m bench.faults kill [--quick]        # 100 kills (10 with --quick)

After each restart (gateway ready, traffic paused):
- every swipe made (each with its own card number) is exactly one entry in the store; a swipe sent
  within AT_RISK_S of the kill (or after it) may be none (it died in the pty, the reader thread or
  before its commit: the door did not open either), never two;
- every signed door/open the gateway answered `ok` is exactly one entry (by the `user` it names);
- every entry in the store reaches the consumer (deduplicated by id; the duplicates are counted),
  with its store `seq`, and new ids arrive in increasing `seq`;
- PRAGMA integrity_check is ok;
- the lock relay is off (a kill in the middle of a pulse must not leave the door unlocked).
About 1 kill in 10 lands while the gateway is still starting (migrations, first admin, drivers).
"""

from __future__ import annotations

import json
import random
import shutil
import signal
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bench.fault_rig import FaultRig, Traffic, seconds
from testing.peers import wait_until

AT_RISK_S = 0.3  # a swipe this close to the kill may die with the process
SWIPES_PER_S = 20.0
OPENS_PER_S = 2.0
RUN_S = (0.1, 3.0)  # how long the gateway runs (traffic flowing) before the kill
START_KILL_SHARE = 0.1  # kills that land while the gateway is starting
DELIVERY_TIMEOUT_S = 60.0


@dataclass
class Figures:
    kills: int = 0
    kills_while_starting: int = 0
    restarts: int = 0
    restart_s: list[float] = field(default_factory=list)  # spawn → ready (log line + API health)
    online_s: list[float] = field(default_factory=list)  # spawn → `online` at the broker
    integrity: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    relay_left_on: int = 0
    kill_at: list[float] = field(default_factory=list)


def account(rig: FaultRig, figures: Figures) -> Counter[str]:
    """The checks of the module docstring; errors go to figures.errors. Returns the counts."""
    rows = rig.store.entries()
    by_card = Counter(number for _, _, number, method, _ in rows if method == "card")
    by_user = Counter(json.loads(details)["user"] for _, _, _, method, details in rows
                      if method == "remote" and details)  # fmt: skip
    counts = Counter[str]()
    swiped = {s.number for s in rig.swipes}
    for swipe in rig.swipes:
        n = by_card.get(swipe.number, 0)
        # Sent just before a kill, or during the pause after it (traffic stops within one period).
        at_risk = any(kill - AT_RISK_S <= swipe.sent <= kill + 0.2 for kill in figures.kill_at)
        if n > 1:
            figures.errors.append(f"card {swipe.number}: {n} entries for one swipe")
        elif n == 0 and not at_risk:
            figures.errors.append(f"card {swipe.number}: swiped {swipe.sent:.3f}, no entry")
        counts["swipes"] += 1
        counts["swipes at risk"] += at_risk
        counts["swipes at risk, not decided"] += at_risk and n == 0
    phantom = [number for number in by_card if number not in swiped]
    if phantom:
        figures.errors.append(f"{len(phantom)} entries for cards never swiped: {phantom[:5]}")
    answered = {t.removeprefix("tx-") for t, r in rig.consumer.responses().items() if r.get("status") == "ok"}
    for user in rig.opens:
        n = by_user.get(user, 0)
        if n > 1 or (user in answered and n != 1):
            figures.errors.append(f"remote open {user}: {n} entries (answered ok: {user in answered})")
        counts["remote opens"] += 1
        counts["remote opens answered"] += user in answered
        counts["remote opens unanswered, not decided"] += user not in answered and n == 0
    # Delivery: every id in the store reaches the consumer, with the store's seq.
    store_seq = {entry_id: seq for entry_id, seq, *_ in rows} | {a[0]: a[1] for a in rig.store.alerts()}

    def missing() -> list[str]:
        seen = rig.consumer.check()[0]
        return [i for i in store_seq if i not in seen]

    try:
        wait_until(lambda: not missing(), DELIVERY_TIMEOUT_S, 0.1, "every stored event at the consumer")
    except AssertionError:
        figures.errors.append(f"{len(missing())} stored events not delivered within {DELIVERY_TIMEOUT_S:.0f} s")
    seen, duplicates, disorder = rig.consumer.check()
    wrong_seq = [i for i, e in seen.items() if i in store_seq and e["seq"] != store_seq[i]]
    not_stored = [i for i in seen if i not in store_seq]
    if wrong_seq:
        figures.errors.append(f"{len(wrong_seq)} events delivered with another seq than stored")
    if not_stored:
        figures.errors.append(f"{len(not_stored)} events delivered that the store does not hold")
    if disorder:
        figures.errors.append(f"{len(disorder)} new ids out of seq order, e.g. {disorder[:3]}")
    counts["entries"] = len(rows)
    counts["events delivered (unique)"] = len(seen)
    counts["duplicates delivered"] = duplicates
    counts["lost"] = len([i for i in store_seq if i not in seen])
    result = rig.store.integrity()
    figures.integrity[result] += 1
    if result != "ok":
        figures.errors.append(f"integrity_check: {result}")
    return counts


def restart(rig: FaultRig, figures: Figures, rng: random.Random, traffic: Traffic) -> None:
    """Spawn; sometimes kill while starting; else run with traffic for a random time and kill."""
    spawned = time.monotonic()
    availability = len(rig.consumer.availability())
    rig.gw.spawn()
    if rng.random() < START_KILL_SHARE:
        time.sleep(rng.uniform(0.0, 1.5))
        if not rig.gw.api_answers():
            kill(rig, figures, traffic)
            figures.kills_while_starting += 1
            return
    rig.gw.wait_ready(60)
    figures.restart_s.append(time.monotonic() - spawned)
    figures.restarts += 1
    rig.wait_online(availability)
    figures.online_s.append(time.monotonic() - spawned)
    rig.peers.wait_polled()
    time.sleep(0.3)  # the I/O thread has written its first coils
    if rig.peers.board.coil(0):
        figures.relay_left_on += 1
        figures.errors.append(f"restart {figures.restarts}: lock relay still on after the restart")
    account(rig, figures)
    traffic.resume()
    time.sleep(rng.uniform(*RUN_S))
    kill(rig, figures, traffic)


def kill(rig: FaultRig, figures: Figures, traffic: Traffic) -> None:
    assert rig.gw.proc is not None
    figures.kill_at.append(time.monotonic())
    rig.gw.proc.send_signal(signal.SIGKILL)
    traffic.pause()  # within one swipe period
    rig.gw.kill()  # reaped, and its API child gone
    figures.kills += 1


def run(quick: bool) -> int:
    kills = 10 if quick else 100
    rng = random.Random(13)
    work = Path(tempfile.mkdtemp(prefix="accessgw-fault-kill-"))
    rig = FaultRig(work)
    figures = Figures()
    traffic = Traffic(rig, SWIPES_PER_S, OPENS_PER_S)
    started = time.monotonic()
    counts: Counter[str] = Counter()
    try:
        rig.enrol(int(kills * max(RUN_S) * SWIPES_PER_S) + 1000)
        while figures.kills < kills:
            restart(rig, figures, rng, traffic)
            if figures.kills % 10 == 0:
                print(f"  {figures.kills} kills, {len(rig.swipes)} swipes, {len(figures.errors)} error(s), "
                      f"{time.monotonic() - started:.0f} s", flush=True)  # fmt: skip
        # The last start: everything settles, the outbox empties.
        rig.gw.start(60)
        figures.restarts += 1
        counts = account(rig, figures)
        wait_until(lambda: rig.store.outbox_depth() == 0, DELIVERY_TIMEOUT_S, 0.1, "the outbox empty")
        rig.gw.stop()
    except AssertionError as exc:  # the gateway did not come back, or a wait ran out: the campaign failed
        figures.errors.append(f"after {figures.kills} kills: {exc}"[:2000])
        counts = account(rig, figures) if rig.store.path.exists() else counts
    finally:
        traffic.close()
        rig.close()
    print_figures(figures, counts, time.monotonic() - started)
    if not figures.errors:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"work folder kept for a look: {work}")
    return 1 if figures.errors else 0


def print_figures(f: Figures, counts: Counter[str], elapsed: float) -> None:
    print(f"kill campaign: {f.kills} SIGKILLs ({f.kills_while_starting} while starting), {f.restarts} restarts, "
          f"{elapsed:.0f} s")  # fmt: skip
    print(f"  traffic: {SWIPES_PER_S:g} swipes/s (half granted, each its own card) + {OPENS_PER_S:g} signed "
          f"door/open/s over MQTT; kill after {RUN_S[0]}-{RUN_S[1]} s of traffic")  # fmt: skip
    print(f"  swipes: {counts['swipes']}, of which {counts['swipes at risk']} within {AT_RISK_S} s of a kill "
          f"({counts['swipes at risk, not decided']} of those never decided)")  # fmt: skip
    print(f"  remote opens: {counts['remote opens']}, answered ok {counts['remote opens answered']}, "
          f"unanswered and not decided {counts['remote opens unanswered, not decided']}")  # fmt: skip
    print(f"  entries in the store: {counts['entries']}; events delivered (unique ids): "
          f"{counts['events delivered (unique)']}; lost: {counts['lost']}; "
          f"duplicates delivered (dedup at consumer): {counts['duplicates delivered']}")  # fmt: skip
    print(f"  restart time (spawn → ready: log + API): {seconds(f.restart_s)}")
    print(f"  spawn → ready and `online` seen at the consumer: {seconds(f.online_s)}")
    print(f"  integrity_check after each restart: {dict(f.integrity)}")
    print(f"  lock relay left on after a restart: {f.relay_left_on}")
    print(f"  errors: {len(f.errors)}")
    for error in f.errors[:20]:
        print(f"    {error}")

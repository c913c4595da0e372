"""Fault campaign `kill`: SIGKILL of a real `accessgw run` at random moments while swipes, remote opens
and face events flow, then a restart; after every restart the whole history is accounted for.

    .venv/bin/python -m bench.faults kill [--quick]        # 100 kills (10 with --quick)
    .venv/bin/python -m bench.faults kill --kills 40       # another number of kills
    .venv/bin/python -m bench.faults kill --no-faces       # no camera: swipes and remote opens only

Faces: a real RTSP test camera at the door (mode card_or_face) shows, in a loop that runs on whether the
gateway is alive or not, an enrolled tenant's photo (2 s), nobody (1.6 s, longer than track_gap_s), a
stranger's photo (3 s, longer than stranger_after_s), nobody; real dlib in the gateway's face workers.

After each restart (gateway ready, traffic paused):
- every swipe made (each with its own card number) is exactly one entry in the store; a swipe sent
  within AT_RISK_S of the kill (or after it) may be none (it died in the pty, the reader thread or
  before its commit: the door did not open either), never two;
- every signed door/open the gateway answered `ok` is exactly one entry (by the `user` it names);
- every entry and alert in the store (card, remote and face entries, stranger and other alerts) reaches
  the consumer (deduplicated by id; the duplicates are counted), with its store `seq`, and new ids arrive
  in increasing `seq`; face decisions cannot be predicted one by one, so the store is their reference;
- PRAGMA integrity_check is ok;
- the lock relay is off (a kill in the middle of a pulse must not leave the door unlocked).
About 1 kill in 10 lands while the gateway is still starting (migrations, first admin, drivers, face
workers loading their models).
With faces, the campaign also fails if no granted face entry, no unknown_face entry or no stranger alert
was made during it. The face workers a SIGKILL leaves running are counted, then ended (as systemd ends
the unit's processes before it starts it again).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bench.fault_rig import FaceFlow, FaultRig, Shot, Traffic, lfw_people, photos_of, seconds
from testing.peers import wait_until

AT_RISK_S = 0.3  # a swipe this close to the kill may die with the process
SWIPES_PER_S = 20.0
OPENS_PER_S = 2.0
RUN_S = (0.1, 3.0)  # how long the gateway runs (traffic flowing) before the kill
RUN_S_FACES = (0.1, 5.0)  # with faces: a stranger needs 1.5 s in view of a live gateway
TENANT_S, STRANGER_S, GAP_S = 2.0, 3.0, 1.6  # the face shots (GAP_S: the track ends, track_gap_s 1.0)
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
    kills_showing: Counter[str] = field(default_factory=Counter)  # who the camera showed at the kill
    face_events_per_life: list[int] = field(default_factory=list)  # face entries + alerts made in each life
    face_events_seen: int = 0
    left_by_kill: Counter[str] = field(default_factory=Counter)  # processes a SIGKILL left running


def account(rig: FaultRig, figures: Figures) -> Counter[str]:
    """The checks of the module docstring; errors go to figures.errors. Returns the counts."""
    faces = rig.store.face_events()  # read first: each face event counted is in `rows` or `alerts` below
    rows = rig.store.entries()
    alerts = rig.store.alerts()
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
    store_seq = {entry_id: seq for entry_id, seq, *_ in rows} | {a[0]: a[1] for a in alerts}

    def missing() -> list[str]:
        seen = rig.consumer.check()[0]
        return [i for i in store_seq if i not in seen]

    try:
        wait_until(lambda: not missing(), DELIVERY_TIMEOUT_S, 0.1, "every stored event at the consumer")
    except AssertionError:
        figures.errors.append(f"{len(missing())} stored events not delivered within {DELIVERY_TIMEOUT_S:.0f} s")
    seen, duplicates, disorder = rig.consumer.check()
    # Faces go on while the gateway runs: the consumer may hold events newer than `rows`. Each was committed
    # before it was published, so a read of the store made after `seen` holds every one of them.
    now_seq = {i: seq for i, seq, *_ in rig.store.entries()} | {a[0]: a[1] for a in rig.store.alerts()}
    wrong_seq = [i for i, e in seen.items() if i in now_seq and e["seq"] != now_seq[i]]
    not_stored = [i for i in seen if i not in now_seq]
    if wrong_seq:
        figures.errors.append(f"{len(wrong_seq)} events delivered with another seq than stored")
    if not_stored:
        figures.errors.append(f"{len(not_stored)} events delivered that the store does not hold")
    if disorder:
        figures.errors.append(f"{len(disorder)} new ids out of seq order, e.g. {disorder[:3]}")
    for _, what in faces:
        counts[what] += 1
    counts["face events"] = len(faces)
    counts["face events delivered"] = sum(1 for i, _ in faces if i in seen)
    counts["alerts"] = len(alerts)
    counts["entries"] = len(rows)
    counts["events delivered (unique)"] = len(seen)
    counts["duplicates delivered"] = duplicates
    counts["lost"] = len([i for i in store_seq if i not in seen])
    result = rig.store.integrity()
    figures.integrity[result] += 1
    if result != "ok":
        figures.errors.append(f"integrity_check: {result}")
    return counts


def restart(
    rig: FaultRig,
    figures: Figures,
    rng: random.Random,
    traffic: Traffic,
    flow: FaceFlow | None,
    run_s: tuple[float, float],
) -> None:
    """Spawn; sometimes kill while starting; else run with traffic for a random time and kill."""
    spawned = time.monotonic()
    availability = len(rig.consumer.availability())
    rig.gw.spawn()
    if rng.random() < START_KILL_SHARE:
        time.sleep(rng.uniform(0.0, 1.5))
        if not rig.gw.api_answers():
            kill(rig, figures, traffic, flow)
            figures.kills_while_starting += 1
            return
    rig.gw.wait_ready(60)
    figures.restart_s.append(time.monotonic() - spawned)
    figures.restarts += 1
    rig.wait_online(availability)
    figures.online_s.append(time.monotonic() - spawned)
    rig.peers.wait_polled()
    time.sleep(0.3)  # the I/O thread has written its first coils
    if rig.peers.board.coil(0):  # a face granted at once (the camera never stops) pulses it: wait that pulse out
        time.sleep(rig.pulse_ms / 1000 + 0.5)
    if rig.peers.board.coil(0):
        figures.relay_left_on += 1
        figures.errors.append(f"restart {figures.restarts}: lock relay still on after the restart")
    account(rig, figures)
    traffic.resume()
    time.sleep(rng.uniform(*run_s))
    kill(rig, figures, traffic, flow)


def kill(rig: FaultRig, figures: Figures, traffic: Traffic, flow: FaceFlow | None) -> None:
    assert rig.gw.proc is not None
    at = time.monotonic()
    figures.kill_at.append(at)
    rig.gw.proc.send_signal(signal.SIGKILL)
    traffic.pause()  # within one swipe period
    rig.gw.kill()  # reaped, and its API child gone
    figures.left_by_kill.update(rig.reap_group())  # the face workers, if any
    figures.kills += 1
    if flow is not None:
        figures.kills_showing[flow.showing(at)] += 1
        faces = len(rig.store.face_events()) if rig.store.path.exists() else 0
        figures.face_events_per_life.append(faces - figures.face_events_seen)
        figures.face_events_seen = faces


def face_shots() -> tuple[list[tuple[str, list[Path]]], list[Shot]]:
    """(tenant id, enrolment photos) of the two enrolled tenants, and the camera's loop of shots: photos the
    enrolment never saw, as tests/gateway/test_face_e2e.py shows them (tenants open, strangers never)."""
    people = lfw_people()
    alice, bob, stranger, other = people[0], people[1], people[2], people[4]
    tenants = [photos_of(alice)[6], photos_of(bob)[9], photos_of(alice)[8]]
    strangers = [photos_of(stranger)[0], photos_of(other)[0]]
    shots: list[Shot] = []
    for k in range(6):
        shots += [Shot("tenant", tenants[k % 3], TENANT_S), Shot("nobody", None, GAP_S),
                  Shot("stranger", strangers[k % 2], STRANGER_S), Shot("nobody", None, GAP_S)]  # fmt: skip
    return [("face-alice", photos_of(alice)[:3]), ("face-bob", photos_of(bob)[:3])], shots


def run(quick: bool, argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.faults kill")
    parser.add_argument("--kills", type=int, help="how many SIGKILLs (default 100, 10 with --quick)")
    parser.add_argument("--no-faces", action="store_true", help="no camera: swipes and remote opens only")
    args = parser.parse_args(argv or [])
    kills = args.kills or (10 if quick else 100)
    faces = not args.no_faces
    run_s = RUN_S_FACES if faces else RUN_S
    rng = random.Random(13)
    work = Path(tempfile.mkdtemp(prefix="accessgw-fault-kill-"))
    rig = FaultRig(work, faces=faces)
    figures = Figures()
    traffic = Traffic(rig, SWIPES_PER_S, OPENS_PER_S)
    flow: FaceFlow | None = None
    started = time.monotonic()
    counts: Counter[str] = Counter()
    try:
        rig.enrol(int(kills * max(run_s) * SWIPES_PER_S) + 1000)
        if faces:
            assert rig.camera is not None
            tenants, shots = face_shots()
            for tenant, photos in tenants:
                rig.enrol_face(tenant, photos)
            flow = FaceFlow(rig.camera, shots)
            flow.start()
        while figures.kills < kills:
            restart(rig, figures, rng, traffic, flow, run_s)
            if figures.kills % 10 == 0:
                print(f"  {figures.kills} kills, {len(rig.swipes)} swipes, {figures.face_events_seen} face events, "
                      f"{len(figures.errors)} error(s), {time.monotonic() - started:.0f} s", flush=True)  # fmt: skip
        # The last start: everything settles, the outbox empties. Nobody in front of the camera, so that no
        # face event is made after the last look at the store.
        if flow is not None:
            flow.stop()
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
        try:
            if flow is not None:
                figures.errors += flow.errors
                flow.stop()
        finally:
            rig.close()
    if faces:
        for what in ("face entries granted", "face entries unknown_face", "stranger alerts"):
            if not counts[what]:
                figures.errors.append(f"no {what} in the store: faces did not flow during the kills")
    print_figures(figures, counts, time.monotonic() - started, faces, run_s)
    if not figures.errors:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"work folder kept for a look: {work}")
    return 1 if figures.errors else 0


def print_figures(f: Figures, counts: Counter[str], elapsed: float, faces: bool, run_s: tuple[float, float]) -> None:
    print(f"kill campaign: {f.kills} SIGKILLs ({f.kills_while_starting} while starting), {f.restarts} restarts, "
          f"{elapsed:.0f} s")  # fmt: skip
    print(f"  traffic: {SWIPES_PER_S:g} swipes/s (half granted, each its own card) + {OPENS_PER_S:g} signed "
          f"door/open/s over MQTT; kill after {run_s[0]}-{run_s[1]} s of traffic")  # fmt: skip
    if faces:
        print(f"  faces: RTSP camera at the door (card_or_face, 5 fps analysed), in a loop: enrolled tenant "
              f"{TENANT_S:g} s, nobody {GAP_S:g} s, stranger {STRANGER_S:g} s, nobody {GAP_S:g} s")  # fmt: skip
        print(f"  face events in the store: {counts['face events']} (delivered {counts['face events delivered']}): "
              f"face entries granted {counts['face entries granted']}, unknown_face "
              f"{counts['face entries unknown_face']}, stranger alerts {counts['stranger alerts']}"
              + "".join(f", {k} {n}" for k, n in sorted(counts.items()) if k.startswith("face entries ")
                        and k not in ("face entries granted", "face entries unknown_face"))
              + "".join(f", {k} {n}" for k, n in sorted(counts.items()) if k.endswith(" alerts")
                        and k != "stranger alerts"))  # fmt: skip
        lives = f.face_events_per_life
        print(f"  face events made per gateway life (kill to kill): in {sum(1 for n in lives if n)} of {len(lives)} "
              f"lives, at most {max(lives, default=0)} in one")  # fmt: skip
        print(f"  who the camera showed at the kill: {dict(f.kills_showing)}")
        print(f"  left running by the SIGKILL (then ended by the rig): {dict(f.left_by_kill) or 'nothing'}")
    print(f"  swipes: {counts['swipes']}, of which {counts['swipes at risk']} within {AT_RISK_S} s of a kill "
          f"({counts['swipes at risk, not decided']} of those never decided)")  # fmt: skip
    print(f"  remote opens: {counts['remote opens']}, answered ok {counts['remote opens answered']}, "
          f"unanswered and not decided {counts['remote opens unanswered, not decided']}")  # fmt: skip
    print(f"  entries in the store: {counts['entries']}, alerts {counts['alerts']}; events delivered (unique ids): "
          f"{counts['events delivered (unique)']}; lost: {counts['lost']}; "
          f"duplicates delivered (dedup at consumer): {counts['duplicates delivered']}")  # fmt: skip
    print(f"  restart time (spawn → ready: log + API): {seconds(f.restart_s)}")
    print(f"  spawn → ready and `online` seen at the consumer: {seconds(f.online_s)}")
    print(f"  integrity_check after each restart: {dict(f.integrity)}")
    print(f"  lock relay left on after a restart: {f.relay_left_on}")
    print(f"  errors: {len(f.errors)}")
    for error in f.errors[:20]:
        print(f"    {error}")

"""Fault campaign `fuzz-mqtt`: 100,000 hostile requests on `…/request/{cmd}` to a real gateway, end to end.

    .venv/bin/python -m bench.faults fuzz-mqtt [--quick]      # 100,000 requests (5,000 with --quick)
    .venv/bin/python -m bench.fault_mqtt [--quick] [--requests N]

All of them go through a real mosquitto to a real `accessgw run` process (none in-process): the
gateway's own router, signature check, replay memory (SQLite) and handlers. The platform's key signs
what is meant to be well signed. Kinds of request (seeded, weights in KINDS):
- garbage bytes or text, JSON that is not an object, objects without a signature, signatures that do not
  hold (another key, random bytes, the message changed after signing);
- well signed but stale (`issued_at` far off or not a time) or replayed (a recent message sent again);
- well signed and fresh with garbage arguments (wrong types, unknown doors, absurd versions and chunk
  counts, unknown commands), with a `transaction` of the wrong type, huge (> 256 KB), or deeply nested;
- command names the gateway must not answer on (odd characters, too long): no answer. (Retained requests are
  not sent here: a broker hands a live message to a subscriber without its retain flag, so only a
  reconnecting gateway would see one; tests/gateway/test_signed_requests.py covers that path.)

Checks: the gateway is alive at the end; every request it should answer is answered (counted by
transaction where the request has one, by number where it has none), with a code in the set its kind
allows; no `internal` error and no traceback in the log; no request dropped by the router's flow control;
and a card swiped every SWIPE_EVERY_S during the flood is decided within the door's targets (decision p99
<= 10 ms as logged, swipe → relay p95 <= 150 ms at the board: bench/door_under_load.py's targets); the same
swipes on the idle gateway first give the machine's own figure (its disk and cores are shared).
Figures: requests per second, answers counted by code, decision and swipe → relay times, the gateway's RSS.
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import re
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from bench.fault_rig import BASE, FaultRig, Swipe, decision_times, ms, pct
from sync.commands import MAX_PAYLOAD
from sync.signing import new_key_pair, sign
from testing.peers import wait_until

REQUESTS = 100_000
QUICK_REQUESTS = 5_000
IN_FLIGHT = 400  # requests published and not yet answered; the broker holds the rest anyway
SWIPE_EVERY_S = 0.5
BASELINE_SWIPES = 40
DECISION_P99_MS = 10.0
RELAY_P95_MS = 150.0
SEED = 13
GRANTED_LINE = re.compile(r"entry \S+ card (\d+)/\d+ -> granted")
SLOW_LINE = re.compile(r"(.*entry \S+ card \d+/\d+ -> .*? in ([\d.]+) ms.*)")

SIGNED = ("door/open", "roster/patch", "roster/snapshot")
UNKNOWN = ("door/close", "reboot", "roster/delete", "x", "state/all", "a-b_c/d")
ODD = ("State", "door open", "é", "x" * 65, "door//open/..%2f", "DOOR/OPEN", "state.")
SIGNED_CODES = {"ok", "malformed", "unknown_door", "unknown_command", "version_gap"}


@dataclass
class Request:
    command: str
    payload: bytes
    kind: str
    expect: frozenset[str] | None  # codes allowed; None: no answer at all
    transaction: str | None = None  # the one the answer echoes, when the request has a usable one


def stamp(ts: datetime) -> str:
    return ts.isoformat(timespec="seconds").replace("+00:00", "Z")


def junk_value(rng: random.Random, depth: int = 0) -> Any:
    """A JSON value of any type and shape."""
    pick = rng.randrange(10 if depth < 3 else 7)
    if pick == 0:
        return None
    if pick == 1:
        return rng.choice((True, False))
    if pick == 2:
        return rng.choice((0, -1, 1, 2**31, 2**63, -(2**64), 10**40, rng.randrange(-1000, 1000)))
    if pick == 3:
        return rng.choice((0.5, -1e308, 1e-300, 3.0))
    if pick in (4, 5, 6):
        return rng.choice(("", "main", "MAIN", "main ", "../etc", "\x00", "é" * 10, "x" * rng.randrange(500),
                           "2026-13-45T99:99:99Z", "null", "{}"))  # fmt: skip
    if pick in (7, 8):
        return [junk_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {rng.choice(("op", "kind", "id", "number", "tenant", "a", "")): junk_value(rng, depth + 1)
            for _ in range(rng.randrange(4))}  # fmt: skip


def deep(rng: random.Random) -> bytes:
    depth = rng.choice((50, 500, 990, 5_000, 100_000))
    opener, closer = rng.choice((("[", "]"), ('{"a":', "}")))
    return (opener * depth + "1" + closer * depth).encode()


class Generator:
    """Requests of every kind, each with the answers it may get."""

    def __init__(self, key: Any, seed: int) -> None:
        self.key = key
        self.other_key, _ = new_key_pair()
        self.rng = random.Random(seed)
        self.n = 0
        self.recent: list[Request] = []  # well-signed fresh requests, for replays

    def tx(self) -> str:
        self.n += 1
        return f"fz-{self.n}"

    def signed(self, body: dict[str, Any], key: Any = None) -> bytes:
        return json.dumps(sign(body, key or self.key), ensure_ascii=False).encode()

    def base(self, command: str) -> dict[str, Any]:
        return {"transaction": self.tx(), "issued_at": stamp(datetime.now(UTC))}

    def args(self, command: str) -> dict[str, Any]:
        rng = self.rng
        if command == "door/open":
            return {"door": junk_value(rng) if rng.random() < 0.7 else "nope", "user": junk_value(rng)}
        if command == "roster/patch":
            ops = [junk_value(rng) for _ in range(rng.randrange(5))] if rng.random() < 0.8 else junk_value(rng)
            return {"from_version": junk_value(rng), "to_version": junk_value(rng), "ops": ops}
        if command == "roster/snapshot":
            return {"version": junk_value(rng), "snapshot_id": junk_value(rng), "chunk": junk_value(rng),
                    "chunks": rng.choice((0, 2, 10_000, 10_001, 10**12, -1)), "ops": junk_value(rng)}  # fmt: skip
        return {k: junk_value(rng) for k in ("a", "b")}

    def garbage_expect(self, command: str) -> frozenset[str]:
        # Garbage cannot carry a signature: bad_signature where one is needed; `state` says malformed.
        return frozenset({"malformed", "ok"}) if command == "state" else frozenset({"bad_signature"})

    def make(self, kind: str) -> Request:
        rng = self.rng
        command = rng.choice(SIGNED + ("state",) + UNKNOWN)
        if kind == "garbage":
            text = "".join(rng.choices('{}[]":,0123456789abcdefnulltrue \\\n', k=rng.randrange(200)))
            payload = rng.randbytes(rng.randrange(200)) if rng.random() < 0.5 else text.encode()
            return Request(command, payload, kind, self.garbage_expect(command))
        if kind == "not-object":
            payload = json.dumps(rng.choice(([], [1, 2], 17, "state", None, 1.5, True))).encode()
            return Request(command, payload, kind, self.garbage_expect(command))
        if kind == "deep":
            return Request(command, deep(rng), kind, self.garbage_expect(command))
        if kind == "huge":
            body = {"transaction": self.tx(), "pad": "x" * (MAX_PAYLOAD + rng.randrange(1, 100_000))}
            return Request(command, json.dumps(body).encode(), kind, frozenset({"malformed"}))
        if kind == "odd-topic":
            body = self.base("x") | {"door": "main"}
            return Request(rng.choice(ODD), self.signed(body), kind, None)
        if kind == "bad-transaction":
            body = self.base(command) | self.args(command)
            body["transaction"] = rng.choice(([1], {"a": 1}, 1.5, True, "t" * 129, 10**130))
            return Request(command, self.signed(body), kind, frozenset({"malformed"}))
        body = self.base(command) | self.args(command)
        tx = body["transaction"]
        if kind == "unsigned":
            return Request(command, json.dumps(body).encode(), kind, self.expect_unsigned(command), tx)
        if kind == "bad-signature":
            how = rng.randrange(3)
            if how == 0:
                payload = self.signed(body, self.other_key)
            elif how == 1:
                payload = json.dumps(body | {"sig": base64.b64encode(rng.randbytes(64)).decode()}).encode()
            else:
                changed = json.loads(self.signed(body))
                changed["issued_at"] = stamp(datetime.now(UTC) - timedelta(seconds=1))
                changed["door" if "door" in changed else "extra"] = "main"
                payload = json.dumps(changed).encode()
            return Request(command, payload, kind, self.expect_unsigned(command), tx)
        if kind == "stale":
            body["issued_at"] = rng.choice((stamp(datetime.now(UTC) - timedelta(seconds=rng.randrange(301, 10**8))),
                                            stamp(datetime.now(UTC) + timedelta(seconds=rng.randrange(301, 10**8))),
                                            "yesterday", 1732600000, None, "2026-11-26T10:00:00"))  # fmt: skip
            expect = frozenset({"ok"}) if command == "state" else frozenset({"stale"})
            return Request(command, self.signed(body), kind, expect, tx)
        if kind == "replay" and self.recent:
            old = rng.choice(self.recent[-200:])
            expect = frozenset({"ok"}) if old.command == "state" else frozenset({"replayed", "stale"})
            return Request(old.command, old.payload, kind, expect, None)  # the first answer took its transaction
        # "signed": well signed, fresh, garbage arguments
        if command == "state":
            expect = frozenset({"ok"})
        elif command in UNKNOWN:
            expect = frozenset({"unknown_command"})
        else:
            expect = frozenset(SIGNED_CODES)  # a junk `door` may name the real one: then it opens (ok)
        request = Request(command, self.signed(body), "signed", expect, tx)
        self.recent.append(request)
        del self.recent[:-400]
        return request

    @staticmethod
    def expect_unsigned(command: str) -> frozenset[str]:
        return frozenset({"ok"}) if command == "state" else frozenset({"bad_signature"})


KINDS: dict[str, float] = {
    "garbage": 12, "not-object": 4, "deep": 1, "huge": 0.1, "odd-topic": 1,
    "bad-transaction": 3, "unsigned": 14, "bad-signature": 14, "stale": 6, "replay": 5, "signed": 40,
}  # fmt: skip


@dataclass
class Answers:
    """Every `…/response/{cmd}` the gateway published, as the platform receives them."""

    by_tx: dict[str, dict[str, Any]] = field(default_factory=dict)
    untracked: Counter[str] = field(default_factory=Counter)  # answers whose transaction we did not track
    codes: Counter[str] = field(default_factory=Counter)
    total: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        answer = json.loads(msg.payload)
        code = answer.get("error") or answer.get("status")
        with self.lock:
            self.total += 1
            self.codes[str(code)] += 1
            tx = answer.get("transaction")
            if isinstance(tx, str) and tx.startswith("fz-") and tx not in self.by_tx:
                self.by_tx[tx] = answer
            else:
                self.untracked[str(code)] += 1


def client(port: int, name: str, on_message: Callable[..., None] | None = None) -> paho.Client:
    c = paho.Client(CallbackAPIVersion.VERSION2, client_id=name, clean_session=True)
    c.max_inflight_messages_set(200)
    c.max_queued_messages_set(0)
    if on_message is not None:
        c.on_message = on_message
    c.connect("127.0.0.1", port, keepalive=30)
    c.loop_start()
    wait_until(c.is_connected, 10, what=f"{name} connected")
    return c


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def baseline(rig: FaultRig, swipes: int) -> None:
    """Swipes on the idle gateway first: the same machine's figure without the flood (it is shared)."""
    for _ in range(swipes):
        rig.swipe()
        time.sleep(SWIPE_EVERY_S / 2)
    wait_until(lambda: rig.store.entry_count() >= swipes, 30, 0.05, "the baseline swipes' entries")


def run_flood(rig: FaultRig, total: int, only: list[str] | None = None) -> int:
    idle = list(rig.swipes)
    rig.swipes.clear()
    answers = Answers()
    listener = client(rig.broker.port, "fuzz-answers", answers.on_message)
    listener.subscribe(f"{BASE}/response/#", qos=1)
    time.sleep(0.3)
    sender = client(rig.broker.port, "fuzz-platform")
    gen = Generator(rig.key, SEED)
    chosen = {k: w for k, w in KINDS.items() if not only or k in only}
    kinds, weights = list(chosen), list(chosen.values())
    sent: list[Request] = []
    expected_answers = 0
    stop_swipes = threading.Event()

    def swipes() -> None:
        while not stop_swipes.wait(SWIPE_EVERY_S):
            rig.swipe()

    swiper = threading.Thread(target=swipes, name="swipes", daemon=True)
    rss_before = rss_mb(rig.gw.proc.pid)  # type: ignore[union-attr]
    started = time.monotonic()
    swiper.start()
    for _ in range(total):
        request = gen.make(gen.rng.choices(kinds, weights)[0])
        sent.append(request)
        if request.expect is not None:
            expected_answers += 1
        while expected_answers - answers.total > IN_FLIGHT and rig.gw.running:
            time.sleep(0.002)
        sender.publish(f"{BASE}/request/{request.command}", request.payload, qos=1)
    try:
        wait_until(lambda: answers.total >= expected_answers or not rig.gw.running, 120, 0.05, "every answer")
    except AssertionError:
        pass
    flood_s = time.monotonic() - started
    stop_swipes.set()
    swiper.join(5)
    time.sleep(1.0)  # late answers (none expected) and the last swipe's entry
    alive = rig.gw.running
    rss_after = rss_mb(rig.gw.proc.pid) if alive else float("nan")  # type: ignore[union-attr]
    sender.disconnect()
    listener.disconnect()
    return report(rig, sent, answers, expected_answers, flood_s, alive, rss_before, rss_after, idle)


def report(rig: FaultRig, sent: list[Request], answers: Answers, expected_answers: int, flood_s: float,
           alive: bool, rss_before: float, rss_after: float, idle: list[Swipe]) -> int:  # fmt: skip
    problems: list[str] = []
    wrong: Counter[str] = Counter()
    examples: dict[str, str] = {}
    missing = 0
    for request in sent:
        if request.transaction is None or request.expect is None:
            continue
        answer = answers.by_tx.get(request.transaction)
        if answer is None:
            missing += 1
            continue
        code = answer.get("error") or answer.get("status")
        if code not in request.expect:
            key = f"{request.kind} {request.command}: {code}"
            wrong[key] += 1
            examples.setdefault(key, f"{request.payload[:160]!r} → {json.dumps(answer)[:200]}")
    by_kind = Counter(r.kind for r in sent)
    log = rig.gw.log()
    dropped = log.count("dropped:")
    tracebacks = log.count("Traceback")
    if not alive:
        problems.append("the gateway died")
    if answers.total != expected_answers:
        problems.append(f"{answers.total:,} answers for {expected_answers:,} answerable requests")
    if missing:
        problems.append(f"{missing} requests with a transaction got no answer")
    if answers.codes.get("internal"):
        problems.append(f"{answers.codes['internal']} `internal` errors")
    if dropped:
        problems.append(f"{dropped} requests dropped by the router")
    if tracebacks:
        problems.append(f"{tracebacks} tracebacks in the gateway's log")
    problems += [f"{n} × {k} (e.g. {examples[k]})" for k, n in wrong.items()]
    granted = {int(n) for n in GRANTED_LINE.findall(log)}
    decisions = decision_times(log, {s.number for s in rig.swipes})
    relay = swipe_to_relay(rig, granted)
    if decisions and pct(decisions, 0.99) * 1000 > DECISION_P99_MS:
        problems.append(f"decision p99 {pct(decisions, 0.99) * 1000:.1f} ms > {DECISION_P99_MS} ms")
    if relay and pct(relay, 0.95) * 1000 > RELAY_P95_MS:
        problems.append(f"swipe → relay p95 {pct(relay, 0.95) * 1000:.0f} ms > {RELAY_P95_MS} ms")
    if len(decisions) < len(rig.swipes):
        problems.append(f"{len(rig.swipes) - len(decisions)} of {len(rig.swipes)} swipes not decided")
    print(f"requests: {len(sent):,} in {flood_s:.0f} s ({len(sent) / flood_s:,.0f}/s), through mosquitto to "
          f"`accessgw run`; kinds: {', '.join(f'{k} {v:,}' for k, v in sorted(by_kind.items()))}")  # fmt: skip
    print(f"answers: {answers.total:,} of {expected_answers:,} answerable ({len(sent) - expected_answers:,} on odd "
          f"topics: ignored, as they must be); by code: "
          f"{', '.join(f'{k} {v:,}' for k, v in answers.codes.most_common())}")  # fmt: skip
    idle_decisions = decision_times(log, {s.number for s in idle})
    print(f"swipes on the idle gateway first: {len(idle)}; decision (logged) {ms(idle_decisions)}, "
          f"p99 {pct(idle_decisions, 0.99) * 1000:.1f} ms")  # fmt: skip
    print(f"swipes during the flood: {len(rig.swipes)}; decision (logged) {ms(decisions)}, "
          f"p99 {pct(decisions, 0.99) * 1000:.1f} ms; swipe → relay at the board {ms(relay)}")  # fmt: skip
    print(f"gateway alive: {alive}; RSS {rss_before:.0f} → {rss_after:.0f} MB; router drops {dropped}; "
          f"tracebacks in the log {tracebacks}")  # fmt: skip
    slowest = sorted(SLOW_LINE.findall(log), key=lambda m: -float(m[1]))[:5]
    if slowest:
        print("slowest decisions (the gateway's log: where the time went):")
        for line, _ in slowest:
            print(f"  {line.strip()[:220]}")
    for p in problems:
        print(f"  PROBLEM {p}")
    return 1 if problems else 0


def swipe_to_relay(rig: FaultRig, granted: set[int]) -> list[float]:
    """For each granted swipe: from writing its frame to the first coil-0 ON write the board received after."""
    ons = [at for at, coil, value in rig.peers.board.write_history() if coil == 0 and value]
    out = []
    for swipe in rig.swipes:
        if swipe.number not in granted:
            continue
        if any(swipe.sent - 0.5 <= at < swipe.sent for at in ons):
            continue  # the lock may still be on (a fuzzed door/open that named `main`): no new ON write to time
        after = [at for at in ons if at >= swipe.sent - 0.001]
        if after and after[0] - swipe.sent < 5:
            out.append(after[0] - swipe.sent)
    return out


def run(quick: bool, requests: int | None = None, only: list[str] | None = None) -> int:
    total = requests or (QUICK_REQUESTS if quick else REQUESTS)
    work = Path(tempfile.mkdtemp(prefix="fault-mqtt-"))
    rig = FaultRig(work, pulse_ms=100)
    # The platform-side consumer needs only the events, not our hundred thousand requests echoed back.
    rig.consumer.sub.client.unsubscribe(f"{BASE}/#")
    rig.consumer.sub.client.subscribe(f"{BASE}/events/#", qos=1)
    try:
        rig.enrol(200)
        rig.gw.start()
        rig.peers.wait_polled()
        baseline(rig, BASELINE_SWIPES)
        status = run_flood(rig, total, only)
    finally:
        rig.close()
        shutil.rmtree(work, ignore_errors=True)
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--requests", type=int, default=None)
    parser.add_argument("--kinds", default="", help=f"only these kinds, comma-separated: {', '.join(KINDS)}")
    args = parser.parse_args(argv)
    return run(args.quick, args.requests, [k for k in args.kinds.split(",") if k] or None)


if __name__ == "__main__":
    sys.exit(main())

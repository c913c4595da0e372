"""Fault campaign `fuzz-frames`: reader frames for each protocol through the real framers and decoders.

    .venv/bin/python -m bench.faults fuzz-frames [--quick]     # 1,000,000 frames per protocol (50,000 quick)
    .venv/bin/python -m bench.fault_fuzz [--quick]             # the same, on its own

Protocols and the code they go through (the gateway's own, unchanged):
- `wiegand-text`: drivers.framers.WiegandTextFramer (lines of bits → drivers.wiegand.decode_wiegand), one
  framer per protocol for the whole run, as a serial line keeps one: bytes arrive split at random points.
- `rdm6300`: drivers.framers.Rdm6300Framer (STX … ETX → drivers.rdm6300.decode_payload), the same way.
- `osdp`: drivers.osdp_codec.card_of_read, the function every libosdp CardRead event goes through (raw
  Wiegand bits left-aligned with a bit count, or ASCII digits), fed event dictionaries as libosdp's
  control panel hands them over, and dictionaries no libosdp would make (wrong types, absurd lengths).

Two generators per protocol, their counts added up and stated apart:
- hypothesis, structure-aware (valid frames, frames with edits, framing characters, random chunking,
  and bytes of its own choosing straight into the line);
- a seeded random/mutation loop for volume: a third valid frames, a third one-edit mutants, a third noise.

Checks, each counted as a failure with an example:
- nothing but a Card or a FrameError comes out (any other exception is a crash: the reader thread's);
- a FrameError's kind is one of the closed set (the metric's label);
- a valid frame sent after a resynchronising byte yields exactly its card;
- a frame with one bit (wiegand, osdp) or one hex digit's value (rdm6300) changed is never a card:
  parity and the XOR checksum catch every single error, so any card out of one is a decoder bug;
- any card that comes out is one that was sent (its encoding is in the bytes fed);
- the framer's buffer stays bounded, no case takes more than CASE_BOUND_S of CPU (thread time, so that a
  loaded machine does not count), and an interval timer aborts a hang (SIGALRM after HANG_S per batch).
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from drivers import rdm6300
from drivers.framers import Rdm6300Framer, WiegandTextFramer
from drivers.frames import FRAME_ERROR_KINDS, Card, FrameError
from drivers.wiegand import encode_wiegand

VOLUME = 1_000_000  # frames per protocol, hypothesis's and the loop's together
QUICK_VOLUME = 50_000
HYPOTHESIS_CASES = 10_000
QUICK_HYPOTHESIS_CASES = 2_000
CASE_BOUND_S = 0.05  # CPU seconds (thread time: a loaded machine does not count); a frame takes well under 1 ms
HANG_S = 5.0  # a batch of BATCH cases that has not returned by then is a hang
BATCH = 1000
SEED = 13


class Hang(Exception):
    pass


def _on_alarm(signum: int, frame: Any) -> None:
    raise Hang(f"no return within {HANG_S} s")


@dataclass
class Tally:
    protocol: str
    frames: int = 0  # cases fed (each a frame, a mutant or a run of noise)
    hypothesis_frames: int = 0
    hypothesis_s: float = 0.0
    loop_frames: int = 0
    loop_s: float = 0.0
    cards: int = 0
    bad: Counter[str] = field(default_factory=Counter)
    slowest_s: float = 0.0
    failures: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)

    def fail(self, what: str, example: object) -> None:
        self.failures[what] += 1
        self.examples.setdefault(what, repr(example)[:300])

    def results(self, results: list[Card | FrameError], fed: bytes | None) -> None:
        """Count what came out; any card must be one whose encoding was fed (when the bytes are known)."""
        for r in results:
            if isinstance(r, FrameError):
                self.bad[r.kind] += 1
                if r.kind not in FRAME_ERROR_KINDS:
                    self.fail("frame error of an unknown kind", r)
            elif isinstance(r, Card):
                self.cards += 1
            else:
                self.fail("a result that is neither a card nor a frame error", r)


# --- wiegand-text ----------------------------------------------------------------------------------


def wiegand_frame(rng: random.Random) -> tuple[bytes, Card]:
    bits = rng.choice((26, 34))
    number = rng.getrandbits(bits - 2)
    line = encode_wiegand(number, bits)
    prefix = rng.choice(("", f"W{bits}:"))
    return f"{prefix}{line}".encode(), Card(number, bits)


def wiegand_bit_flip(frame: bytes, rng: random.Random) -> bytes:
    """One '0'/'1' of the bit field inverted (never the `Wnn:` prefix)."""
    start = frame.index(b":") + 1 if frame.startswith(b"W") else 0
    i = rng.randrange(start, len(frame))
    return frame[:i] + (b"1" if frame[i : i + 1] == b"0" else b"0") + frame[i + 1 :]


def wiegand_card_was_fed(card: Card, fed: bytes) -> bool:
    return encode_wiegand(card.number, card.bits).encode() in fed


NOISE_ALPHABETS = (b"01", b"01\r\n", b"01W:2346\r\n", bytes(range(256)))


def noise(rng: random.Random, alphabet: bytes, longest: int = 300) -> bytes:
    return bytes(rng.choices(alphabet, k=rng.randrange(0, longest)))


def chunks(data: bytes, rng: random.Random) -> Iterator[bytes]:
    """`data` split where a serial read might split it: anywhere, often per byte."""
    i = 0
    while i < len(data):
        n = rng.choice((1, 2, 7, 16, 64, 1024))
        yield data[i : i + n]
        i += n


def edit(data: bytes, rng: random.Random, alphabet: bytes) -> bytes:
    """One random edit: a byte replaced, inserted or deleted, the frame cut or doubled."""
    how = rng.randrange(5)
    i = rng.randrange(len(data) + 1)
    if how == 0 and data:
        i = min(i, len(data) - 1)
        return data[:i] + bytes([rng.choice(alphabet)]) + data[i + 1 :]
    if how == 1:
        return data[:i] + bytes([rng.choice(alphabet)]) + data[i:]
    if how == 2 and data:
        i = min(i, len(data) - 1)
        return data[:i] + data[i + 1 :]
    if how == 3:
        return data[:i]
    return data + data


# --- rdm6300 -----------------------------------------------------------------------------------------


def rdm_frame(rng: random.Random) -> tuple[bytes, Card]:
    tag = rng.getrandbits(32)
    frame = rdm6300.encode_rdm6300(tag, rng.randrange(256))
    if rng.random() < 0.3:  # some readers send lower-case hex
        frame = frame[:1] + frame[1:-1].lower() + frame[-1:]
    return frame, Card(tag, rdm6300.CARD_BITS)


HEX = b"0123456789ABCDEF"


def rdm_digit_change(frame: bytes, rng: random.Random) -> bytes:
    """One hex digit (data or checksum) replaced by a digit of another value."""
    i = rng.randrange(1, 1 + rdm6300.PAYLOAD_LEN)
    old = int(frame[i : i + 1], 16)
    new = rng.choice([d for d in range(16) if d != old])
    return frame[:i] + HEX[new : new + 1] + frame[i + 1 :]


def rdm_card_was_fed(card: Card, fed: bytes) -> bool:
    return card.bits == rdm6300.CARD_BITS and f"{card.number:08X}".encode() in fed.upper()


RDM_ALPHABETS = (HEX + b"abcdef\x02\x03", bytes(range(256)), b"\x02\x03")


# --- a framer as a serial line keeps it ----------------------------------------------------------------


class StreamTarget:
    """One framer for the whole run; each case is fed in random chunks and checked."""

    def __init__(
        self,
        name: str,
        make: Callable[[], WiegandTextFramer | Rdm6300Framer],
        valid: Callable[[random.Random], tuple[bytes, Card]],
        single_error: Callable[[bytes, random.Random], bytes],
        card_was_fed: Callable[[Card, bytes], bool],
        resync: bytes,
        end: bytes,
        alphabets: tuple[bytes, ...],
        buffer_len: Callable[[Any], int],
        buffer_cap: int,
    ) -> None:
        self.name, self.framer = name, make()
        self.valid, self.single_error, self.card_was_fed = valid, single_error, card_was_fed
        self.resync, self.end, self.alphabets = resync, end, alphabets
        self.buffer_len, self.buffer_cap = buffer_len, buffer_cap
        self.history = b""  # the last bytes fed: a frame may have begun in the case before

    def feed(self, data: bytes, rng: random.Random, tally: Tally, *, case: bool = True) -> list[Card | FrameError]:
        """Feed `data` in random chunks and check what comes out; `case` False: framing bytes between cases."""
        out: list[Card | FrameError] = []
        started = time.thread_time()
        for piece in chunks(data, rng):
            out += self.framer.feed(piece)
            if self.buffer_len(self.framer) > self.buffer_cap:
                tally.fail("framer buffer beyond its bound", (self.buffer_len(self.framer), data[:80]))
        took = time.thread_time() - started
        tally.slowest_s = max(tally.slowest_s, took)
        if took > CASE_BOUND_S:
            tally.fail(f"a case slower than {CASE_BOUND_S * 1000:.0f} ms", (took, data[:80]))
        tally.frames += case
        tally.results(out, data)
        seen = self.history + data
        for r in out:
            if isinstance(r, Card) and not self.card_was_fed(r, seen):
                tally.fail("a card that was never sent", (r, data[:80]))
        self.history = seen[-512:]
        return out

    def case(self, kind: int, rng: random.Random, tally: Tally) -> None:
        """kind 0: a valid frame; 1: the same with one error parity/checksum must catch; 2: one random edit;
        3: noise."""
        if kind == 3:
            self.feed(noise(rng, rng.choice(self.alphabets)), rng, tally)
            return
        frame, card = self.valid(rng)
        if kind in (0, 1) and self.resync:
            self.feed(self.resync, rng, tally, case=False)  # ends what an earlier case left (its result is that case's)
        if kind == 0:
            out = self.feed(frame + self.end, rng, tally)
            # An rdm6300 frame's STX may first report a frame it cut short; then comes the card, alone.
            if not out or out[-1] != card or any(isinstance(r, Card) for r in out[:-1]):
                tally.fail("a valid frame not read as its card", (frame, card, out))
        elif kind == 1:
            mutant = self.single_error(frame, rng)
            out = self.feed(mutant + self.end, rng, tally)
            if any(isinstance(r, Card) for r in out):
                tally.fail("a single-error frame read as a card", (frame, mutant, out))
        else:
            self.feed(edit(frame + self.end, rng, rng.choice(self.alphabets)), rng, tally)


def wiegand_target() -> StreamTarget:
    return StreamTarget("wiegand-text", WiegandTextFramer, wiegand_frame, wiegand_bit_flip, wiegand_card_was_fed,
                        b"\n", b"\r\n", NOISE_ALPHABETS, lambda f: len(f._line),
                        WiegandTextFramer.MAX_LINE)  # fmt: skip


def rdm_target() -> StreamTarget:
    return StreamTarget("rdm6300", Rdm6300Framer, rdm_frame, rdm_digit_change, rdm_card_was_fed, b"", b"",
                        RDM_ALPHABETS, lambda f: len(f._frame or b""), rdm6300.PAYLOAD_LEN)  # fmt: skip


# --- osdp: libosdp's CardRead events ------------------------------------------------------------------


class OsdpTarget:
    """drivers.osdp_codec.card_of_read over event dictionaries."""

    name = "osdp"

    def __init__(self) -> None:
        from osdp import CardFormat  # libosdp: a dependency of the gateway (DESIGN §4 (c))

        from drivers.osdp_codec import card_of_read

        self.decode, self.fmt = card_of_read, CardFormat

    @staticmethod
    def left_aligned(bits: str) -> bytes:
        padded = bits + "0" * (-len(bits) % 8)
        return int(padded, 2).to_bytes(len(padded) // 8, "big")

    def valid(self, rng: random.Random) -> tuple[dict[str, Any], Card]:
        if rng.random() < 0.25:
            number = rng.getrandbits(32)
            return {"event": 1, "format": self.fmt.ASCII, "data": str(number).encode()}, Card(number, 32)
        bits = rng.choice((26, 34))
        number = rng.getrandbits(bits - 2)
        data = self.left_aligned(encode_wiegand(number, bits))
        fmt = rng.choice((self.fmt.Wiegand, self.fmt.Wiegand, self.fmt.Unspecified))
        return {"event": 1, "format": fmt, "length": bits, "data": data}, Card(number, bits)

    def run_one(self, event: dict[str, Any], tally: Tally) -> Card | FrameError | None:
        started = time.thread_time()
        try:
            result: Card | FrameError = self.decode(event)
        except FrameError as exc:
            result = exc
        except Exception as exc:  # the crash this campaign looks for
            tally.fail(f"exception {type(exc).__name__}", (event, exc))
            result = None
        took = time.thread_time() - started
        tally.slowest_s = max(tally.slowest_s, took)
        if took > CASE_BOUND_S:
            tally.fail(f"a case slower than {CASE_BOUND_S * 1000:.0f} ms", (took, event))
        tally.frames += 1
        if result is not None:
            tally.results([result], None)
        return result

    def flip_one_bit(self, event: dict[str, Any], rng: random.Random) -> dict[str, Any]:
        if event["format"] == self.fmt.ASCII:  # a digit becomes a letter: no longer a number
            data = bytearray(event["data"])
            data[rng.randrange(len(data))] = rng.choice(b"ABCDEF:/")
            return {**event, "data": bytes(data)}
        bit = rng.randrange(event["length"])
        value = int.from_bytes(event["data"], "big") ^ (1 << (len(event["data"]) * 8 - 1 - bit))
        return {**event, "data": value.to_bytes(len(event["data"]), "big")}

    def garbage(self, rng: random.Random) -> dict[str, Any]:
        """Events no libosdp would hand over, and some it might: every key's type and size varies."""
        fmt = rng.choice((self.fmt.ASCII, self.fmt.Wiegand, self.fmt.Unspecified, 7, -1, None, "1", 1.5))
        length = rng.choice((None, -1, 0, 1, 25, 26, 27, 33, 34, 35, 64, 255, 10**6, 2**63, "26", 26.0, True))
        size = rng.choice((0, 1, 3, 4, 5, 8, 16, 64, 1024))
        data: object = rng.randbytes(size)
        if rng.random() < 0.2:
            data = rng.choice((None, "00ff", 26, [1, 2], bytearray(data)))  # type: ignore[arg-type]
        if rng.random() < 0.3 and isinstance(data, bytes):
            data = bytes(rng.choice(b"0123456789 \t\r\n-+.e") for _ in range(size))
        event: dict[str, Any] = {"event": 1, "format": fmt, "length": length, "data": data}
        for key in ("format", "length", "data"):
            if rng.random() < 0.05:
                del event[key]
        return event

    def case(self, kind: int, rng: random.Random, tally: Tally) -> None:
        if kind == 3:
            self.run_one(self.garbage(rng), tally)
            return
        event, card = self.valid(rng)
        if kind == 0:
            if self.run_one(event, tally) != card:
                tally.fail("a valid read not decoded as its card", (event, card))
        elif kind == 1:
            if isinstance(self.run_one(self.flip_one_bit(event, rng), tally), Card):
                tally.fail("a single-error read decoded as a card", event)
        else:
            data = edit(event["data"], rng, bytes(range(256)))
            length = event.get("length")
            if isinstance(length, int) and rng.random() < 0.5:
                length += rng.choice((-8, -1, 1, 8))
            result = self.run_one({**event, "data": data, "length": length}, tally)
            if isinstance(result, Card) and result.bits in (26, 34):
                expected = encode_wiegand(result.number, result.bits)
                if not format(int.from_bytes(data, "big"), f"0{len(data) * 8}b").startswith(expected):
                    tally.fail("a card that was never sent", (result, event))


# --- the two generators ---------------------------------------------------------------------------------


def run_loop(target: StreamTarget | OsdpTarget, cases: int, tally: Tally, seed: int) -> None:
    rng = random.Random(seed)
    started = time.perf_counter()
    done = 0
    while done < cases:
        n = min(BATCH, cases - done)
        gc.collect()  # here, not inside a timed case (automatic collection is off: see campaign)
        signal.setitimer(signal.ITIMER_REAL, HANG_S)
        try:
            for _ in range(n):
                target.case(rng.randrange(4), rng, tally)
        except Hang as exc:
            tally.fail("hang", exc)
            return
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        done += n
    tally.loop_frames = done
    tally.loop_s = time.perf_counter() - started


def run_hypothesis(target: StreamTarget | OsdpTarget, cases: int, tally: Tally) -> None:
    """Structure-aware cases: hypothesis picks the case kind, the values and the seed of the edits and
    chunking, so that its shrinker would bring a failure down to a small example."""
    before = tally.frames
    calls = [0]

    @settings(max_examples=cases, deadline=None, database=None, derandomize=True,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(kind=st.integers(0, 3), seed=st.integers(0, 2**32), extra=st.binary(max_size=64))
    def one(kind: int, seed: int, extra: bytes) -> None:
        calls[0] += 1
        if calls[0] % 500 == 0:
            gc.collect()
        rng = random.Random(seed)
        signal.setitimer(signal.ITIMER_REAL, HANG_S)
        try:
            target.case(kind, rng, tally)
            if isinstance(target, StreamTarget) and extra:  # bytes hypothesis chose, straight into the line
                target.feed(extra, rng, tally)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)

    started = time.perf_counter()
    try:
        one()
    except Hang as exc:
        tally.fail("hang", exc)
    except Exception as exc:  # hypothesis re-raises what a case raised (a crash)
        tally.fail(f"hypothesis: {type(exc).__name__}", exc)
    tally.hypothesis_s = time.perf_counter() - started
    tally.hypothesis_frames = tally.frames - before


def campaign(target: StreamTarget | OsdpTarget, volume: int, hypothesis_cases: int) -> Tally:
    tally = Tally(target.name)
    # A generation-2 collection in the middle of a case would be charged to the decoder (80-110 ms seen):
    # collections run between batches instead.
    gc.disable()
    try:
        run_hypothesis(target, hypothesis_cases, tally)
        run_loop(target, max(0, volume - tally.frames), tally, SEED)
    finally:
        gc.enable()
    return tally


def report(t: Tally) -> None:
    rate = t.loop_frames / t.loop_s if t.loop_s else float("nan")
    hrate = t.hypothesis_frames / t.hypothesis_s if t.hypothesis_s else float("nan")
    bad = ", ".join(f"{k} {v:,}" for k, v in sorted(t.bad.items()))
    print(f"{t.protocol}: {t.frames:,} frames = {t.hypothesis_frames:,} hypothesis ({hrate:,.0f}/s) + "
          f"{t.loop_frames:,} random/mutation ({rate:,.0f}/s); cards {t.cards:,}; bad frames "
          f"{sum(t.bad.values()):,} ({bad}); slowest case {t.slowest_s * 1000:.2f} ms; "
          f"failures {sum(t.failures.values())}")  # fmt: skip
    for what, count in t.failures.items():
        print(f"  FAIL {what}: {count} (e.g. {t.examples[what]})")


def run(quick: bool) -> int:
    volume = QUICK_VOLUME if quick else VOLUME
    cases = QUICK_HYPOTHESIS_CASES if quick else HYPOTHESIS_CASES
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    print(f"fuzz-frames: {volume:,} frames per protocol, {cases:,} of them from hypothesis; "
          f"per-case bound {CASE_BOUND_S * 1000:.0f} ms; seed {SEED}")  # fmt: skip
    failed = 0
    try:
        for make in (wiegand_target, rdm_target, OsdpTarget):
            tally = campaign(make(), volume, cases)
            report(tally)
            failed += sum(tally.failures.values())
    finally:
        signal.signal(signal.SIGALRM, previous)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    print(f"machine: {os.cpu_count()} cores, load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return run(args.quick)


if __name__ == "__main__":
    sys.exit(main())

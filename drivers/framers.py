"""Incremental stream framers: bytes in as they arrive, decoded frames out.

Serial reads split and merge frames arbitrarily, so each framer keeps only
the partial frame it is inside of, bounded in size: a noisy or hostile line
can never make it buffer without limit.
"""

from __future__ import annotations

import re
from typing import Protocol

from drivers import rdm6300
from drivers.frames import FrameError, FrameResult
from drivers.wiegand import WIEGAND_LENGTHS, decode_wiegand

_BINARY = frozenset("01")


class Framer(Protocol):
    def feed(self, data: bytes) -> list[FrameResult]: ...

    def reset(self) -> None: ...


class WiegandTextFramer:
    """One frame per line: 26 or 34 chars of '0'/'1', optionally prefixed `W26:`/`W34:`.

    CR and LF both end a line; the empty line between CR and LF is skipped.
    """

    MAX_LINE = 128
    _EOL = re.compile(rb"[\r\n]")
    _PREFIX = re.compile(r"^W(\d{1,3}):")

    def __init__(self) -> None:
        self._line = bytearray()
        self._discarding = False  # inside an overlong line already reported

    def reset(self) -> None:
        """Forget a partial line (after the port was reopened)."""
        self._line.clear()
        self._discarding = False

    def feed(self, data: bytes) -> list[FrameResult]:
        out: list[FrameResult] = []
        pos = 0
        while pos < len(data):
            match = self._EOL.search(data, pos)
            end = match.start() if match else len(data)
            if not self._discarding:
                self._line += data[pos:end]
                if len(self._line) > self.MAX_LINE:
                    out.append(FrameError("overlong", f"line longer than {self.MAX_LINE} bytes without an end"))
                    self._line.clear()
                    self._discarding = True
            if match is None:
                break
            # A line ended here: decode it unless it was the tail of an overlong one.
            if not self._discarding and self._line:
                out.append(self._decode_line(bytes(self._line)))
            self._line.clear()
            self._discarding = False
            pos = match.end()
        return out

    def _decode_line(self, raw: bytes) -> FrameResult:
        try:
            line = raw.decode("ascii")
        except UnicodeDecodeError:
            return FrameError("garbage", f"non-ASCII line {raw[:40]!r}")
        declared: int | None = None
        if prefix := self._PREFIX.match(line):
            declared = int(prefix.group(1))
            line = line[prefix.end() :]
            if declared not in WIEGAND_LENGTHS:
                return FrameError("length", f"unsupported prefix W{declared}")
            if len(line) != declared and _BINARY.issuperset(line):
                return FrameError("length", f"prefix W{declared} but {len(line)} bits")
        try:
            return decode_wiegand(line)
        except FrameError as exc:
            return exc


class Rdm6300Framer:
    """Finds STX ... ETX frames in a byte stream and resynchronises on the next STX.

    Bytes outside a frame are garbage: a contiguous run is one error, reported
    when the next STX arrives or as soon as the run is a frame long.
    """

    def __init__(self) -> None:
        self._frame: bytearray | None = None  # chars after STX, None when outside a frame
        self._skipping = False  # rest of a frame already reported too long: drop up to ETX/STX
        self._skipped = 0
        self._garbage = 0  # length of the current run of bytes outside frames
        self._garbage_reported = False

    def reset(self) -> None:
        self._frame = None
        self._skipping = False
        self._skipped = 0
        self._garbage = 0
        self._garbage_reported = False

    def _end_garbage_run(self, out: list[FrameResult]) -> None:
        if self._garbage and not self._garbage_reported:
            out.append(FrameError("garbage", f"{self._garbage} bytes outside a frame"))
        self._garbage = 0
        self._garbage_reported = False

    def feed(self, data: bytes) -> list[FrameResult]:
        out: list[FrameResult] = []
        for byte in data:
            if byte == rdm6300.STX:
                if self._frame is not None:
                    out.append(FrameError("length", f"frame cut short by STX after {len(self._frame)} chars"))
                self._end_garbage_run(out)
                self._frame = bytearray()
                self._skipping = False
            elif self._skipping and self._skipped < rdm6300.FRAME_LEN:
                # Same bad frame as the length error already reported; bounded so noise still counts.
                self._skipped += 1
                if byte == rdm6300.ETX:
                    self._skipping = False
            elif self._frame is None:
                self._skipping = False
                self._garbage += 1
                if self._garbage >= rdm6300.FRAME_LEN and not self._garbage_reported:
                    out.append(FrameError("garbage", f"{self._garbage} bytes outside a frame"))
                    self._garbage_reported = True
            elif byte == rdm6300.ETX:
                try:
                    out.append(rdm6300.decode_payload(bytes(self._frame)))
                except FrameError as exc:
                    out.append(exc)
                self._frame = None
            else:
                self._frame.append(byte)
                if len(self._frame) > rdm6300.PAYLOAD_LEN:
                    out.append(FrameError("length", f"no ETX after {rdm6300.PAYLOAD_LEN} chars"))
                    self._frame = None
                    self._skipping = True
                    self._skipped = 0
        return out


def framer_for(protocol: str) -> Framer:
    """The framer for a reader's configured protocol."""
    if protocol == "wiegand-text":
        return WiegandTextFramer()
    if protocol == "rdm6300":
        return Rdm6300Framer()
    raise ValueError(f"no framer for protocol {protocol!r}")

"""Results shared by every card-frame decoder and framer.

A decoder either returns a `Card` or raises `FrameError`; a framer returns
both kinds in stream order, so one bad frame never hides the next good one.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

FrameErrorKind = Literal["parity", "length", "checksum", "garbage", "overlong"]
FRAME_ERROR_KINDS: frozenset[str] = frozenset({"parity", "length", "checksum", "garbage", "overlong"})


class Card(NamedTuple):
    """A frame that passed every check: the number read and the frame's bit count."""

    number: int
    bits: int


class FrameError(Exception):
    """A frame that is no card. `kind` is the closed set counted in metrics."""

    def __init__(self, kind: FrameErrorKind, detail: str) -> None:
        if kind not in FRAME_ERROR_KINDS:
            raise ValueError(f"unknown frame error kind {kind!r}")
        super().__init__(f"{kind}: {detail}")
        self.kind: FrameErrorKind = kind
        self.detail = detail

    def __eq__(self, other: object) -> bool:
        # Value semantics so framer results can be compared in tests and logs.
        if not isinstance(other, FrameError):
            return NotImplemented
        return (self.kind, self.detail) == (other.kind, other.detail)

    def __hash__(self) -> int:
        return hash((self.kind, self.detail))

    def __repr__(self) -> str:
        return f"FrameError({self.kind!r}, {self.detail!r})"


FrameResult = Card | FrameError

"""Chunked snapshots are assembled in memory, bounded, and dropped when incomplete after 60 s."""

from __future__ import annotations

import pytest

from sync.snapshots import SnapshotAssembler, SnapshotError


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_chunks_in_any_order_complete_once_in_chunk_order() -> None:
    a = SnapshotAssembler()
    assert a.add("s", 7, 2, 3, ["c"]) is None
    assert a.add("s", 7, 0, 3, ["a", "a2"]) is None
    assert a.add("s", 7, 0, 3, ["ignored: a chunk twice is kept once"]) is None
    done = a.add("s", 7, 1, 3, ["b"])
    assert done is not None and (done.snapshot_id, done.version, done.items) == ("s", 7, ["a", "a2", "b", "c"])
    assert a.in_progress == []


def test_an_incomplete_snapshot_is_dropped_after_60_s() -> None:
    clock = Clock()
    a = SnapshotAssembler(clock=clock)
    a.add("s", 1, 0, 2, ["x"])
    clock.t += 59
    assert a.in_progress == ["s"]
    clock.t += 2
    assert a.in_progress == []
    assert a.add("s", 1, 1, 2, ["y"]) is None  # starts over: chunk 0 is gone


def test_bounds() -> None:
    a = SnapshotAssembler(max_items=3)
    a.add("s1", 1, 0, 2, [1])
    a.add("s2", 1, 0, 2, [1])
    a.add("s3", 1, 0, 2, [1])  # a third: the oldest goes
    assert a.in_progress == ["s2", "s3"]
    with pytest.raises(SnapshotError):
        a.add("s2", 2, 1, 2, [])  # another version midway
    assert a.in_progress == ["s3"]
    with pytest.raises(SnapshotError):
        a.add("s3", 1, 1, 2, [1, 2, 3])  # too many operations
    assert a.in_progress == []
    for chunk, chunks in ((0, 0), (0, 10_001), (2, 2), (-1, 2)):
        with pytest.raises(SnapshotError):
            a.add("s4", 1, chunk, chunks, [])

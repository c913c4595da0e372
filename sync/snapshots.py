"""Chunked roster snapshots (DESIGN §6.1): chunks kept in memory until all are in, bounded.

At most `max_in_progress` snapshots are assembled at once (a newer one drops the oldest), each of at
most `max_chunks` chunks and `max_items` operations over all; an incomplete snapshot is dropped
`ttl_s` after its first chunk. The chunks' contents are opaque here (already validated operations).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

MAX_CHUNKS = 10_000
MAX_IN_PROGRESS = 2
MAX_ITEMS = 1_000_000  # ~330,000 tenants with a card and a template each; ~180 MB held per 100,000
TTL_S = 60.0


class SnapshotError(ValueError):
    """A chunk that does not fit its snapshot (answered `malformed`); the snapshot is dropped."""


@dataclass
class _Assembly:
    version: int
    chunks: int
    started: float
    parts: dict[int, list[Any]] = field(default_factory=dict)
    items: int = 0


@dataclass(frozen=True, slots=True)
class Complete:
    snapshot_id: str
    version: int
    items: list[Any]  # every chunk's items, in chunk order


class SnapshotAssembler:
    def __init__(self, *, max_in_progress: int = MAX_IN_PROGRESS, max_chunks: int = MAX_CHUNKS,
                 max_items: int = MAX_ITEMS, ttl_s: float = TTL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.max_in_progress, self.max_chunks = max_in_progress, max_chunks
        self.max_items, self.ttl_s = max_items, ttl_s
        self.clock = clock
        self._open: OrderedDict[str, _Assembly] = OrderedDict()

    @property
    def in_progress(self) -> list[str]:
        self.expire()
        return list(self._open)

    def expire(self) -> list[str]:
        """Drop snapshots incomplete after `ttl_s`; their ids."""
        now = self.clock()
        gone = [sid for sid, a in self._open.items() if now - a.started > self.ttl_s]
        for sid in gone:
            del self._open[sid]
        return gone

    def drop(self, snapshot_id: str) -> None:
        self._open.pop(snapshot_id, None)

    def add(self, snapshot_id: str, version: int, chunk: int, chunks: int, items: list[Any]) -> Complete | None:
        """Keep one chunk; the whole snapshot once its last chunk is in (and then forget it)."""
        self.expire()
        if not 1 <= chunks <= self.max_chunks:
            raise SnapshotError(f"`chunks` must be 1 to {self.max_chunks}")
        if not 0 <= chunk < chunks:
            raise SnapshotError(f"`chunk` must be 0 to {chunks - 1}")
        assembly = self._open.get(snapshot_id)
        if assembly is None:
            assembly = self._open[snapshot_id] = _Assembly(version, chunks, self.clock())
            while len(self._open) > self.max_in_progress:
                self._open.popitem(last=False)  # the oldest goes: the newest snapshot is the one that matters
        elif (assembly.version, assembly.chunks) != (version, chunks):
            self.drop(snapshot_id)
            raise SnapshotError(f"snapshot {snapshot_id!r} changed its `version` or `chunks` midway; dropped")
        if chunk not in assembly.parts:  # the same chunk twice (at-least-once delivery) is kept once
            if assembly.items + len(items) > self.max_items:
                self.drop(snapshot_id)
                raise SnapshotError(f"snapshot {snapshot_id!r} holds more than {self.max_items} operations; dropped")
            assembly.parts[chunk] = items
            assembly.items += len(items)
        if len(assembly.parts) < assembly.chunks:
            return None
        del self._open[snapshot_id]
        return Complete(snapshot_id, assembly.version,
                        [item for i in range(assembly.chunks) for item in assembly.parts[i]])  # fmt: skip

"""Publishes the outbox in `seq` order with QoS 1; a row leaves only on PUBACK.

The store is reached through `OutboxStore` (implemented by the gateway's
SQLite store), so this package never imports the gateway.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger(__name__)


class PendingEvent(Protocol):
    seq: int
    topic: str  # suffix under the gateway's root topic
    payload: str


class OutboxStore(Protocol):
    def pending(self, after_seq: int, limit: int) -> list[PendingEvent]: ...
    def remove(self, seqs: list[int]) -> None: ...
    def depth(self) -> int: ...


class Publisher(Protocol):
    @property
    def connected(self) -> bool: ...
    def publish(self, topic: str, payload: str | bytes, qos: int = 1, retain: bool = False) -> int | None: ...


class OutboxPump:
    """Moves outbox rows to the broker and deletes them once acknowledged.

    Thread model: `run()` is an asyncio task; `on_ack`, `on_connected` and
    `on_disconnected` may be called from the MQTT thread.
    """

    def __init__(
        self,
        store: OutboxStore,
        topic_of: Callable[[str], str],
        window: int = 1000,
        batch: int = 500,
    ) -> None:
        self._store = store
        self._topic_of = topic_of
        self._window = window
        self._batch = batch
        self._link: Publisher | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self._lock = threading.Lock()
        self._in_flight: dict[int, int] = {}  # mid -> seq
        self._acked: deque[int] = deque()
        self._cursor = 0  # highest seq handed to the broker on this connection
        self.delivered = 0

    def attach(self, link: Publisher) -> None:
        self._link = link

    # --- called from any thread -------------------------------------------
    def notify(self) -> None:
        """Something was added to the outbox, or the link changed: look again."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    def on_ack(self, mid: int) -> None:
        with self._lock:
            seq = self._in_flight.pop(mid, None)
            if seq is not None:
                self._acked.append(seq)
        self.notify()

    def on_connected(self) -> None:
        # Start again from the oldest row: whatever was in flight when the
        # last connection dropped is sent again (at least once; consumers
        # deduplicate by id).
        with self._lock:
            self._in_flight.clear()
            self._cursor = 0
        self.notify()

    def on_disconnected(self) -> None:
        with self._lock:
            self._in_flight.clear()
        self.notify()

    # --- the asyncio side --------------------------------------------------
    def in_flight(self) -> int:
        with self._lock:
            return len(self._in_flight)

    def _remove_acked(self) -> int:
        with self._lock:
            seqs = list(self._acked)
            self._acked.clear()
        if seqs:
            self._store.remove(seqs)
            self.delivered += len(seqs)
        return len(seqs)

    def _send_more(self) -> int:
        link = self._link
        if link is None or not link.connected:
            return 0
        room = self._window - self.in_flight()
        if room <= 0:
            return 0
        rows = self._store.pending(self._cursor, min(room, self._batch))
        sent = 0
        for row in rows:
            with self._lock:
                mid = link.publish(self._topic_of(row.topic), row.payload, qos=1)
                if mid is None:  # link dropped under us; on_connected restarts the scan
                    break
                self._in_flight[mid] = row.seq
                self._cursor = row.seq
            sent += 1
        return sent

    def step(self) -> bool:
        """One round of removing acknowledged rows and sending more; True if it did work."""
        removed = self._remove_acked()
        sent = self._send_more()
        return bool(removed or sent)

    async def run(self, stop: asyncio.Event) -> None:
        self._loop = asyncio.get_running_loop()
        while not stop.is_set():
            self._wake.clear()
            try:
                busy = self.step()
            except Exception:  # a store hiccup must not end the uplink
                log.exception("outbox step failed; retrying")
                busy = False
            if not busy:
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=1.0)
                except TimeoutError:
                    pass
            else:
                await asyncio.sleep(0)

    async def drain(self, timeout_s: float) -> int:
        """Deliver what can be delivered within `timeout_s` (for SIGTERM); returns rows left."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while loop.time() < deadline:
            self.step()
            if self._store.depth() == 0:
                break
            link = self._link
            if link is None or not link.connected:
                break
            await asyncio.sleep(0.02)
        self._remove_acked()
        return self._store.depth()

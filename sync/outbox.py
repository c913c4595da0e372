"""Publishes the outbox in `seq` order with QoS 1; a row leaves only on PUBACK.

The store is reached through `OutboxStore` (implemented by the gateway's
SQLite store), so this package never imports the gateway.
"""

from __future__ import annotations

import asyncio
import logging
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

    Thread model: `run()` is an asyncio task and alone touches the in-flight
    table. `on_ack`, `on_connected` and `on_disconnected` come from the MQTT
    thread; they only append to a queue (no lock is held around a publish,
    so paho's callback lock and ours can never deadlock), and the queue keeps
    acks and connection changes in the order they happened.
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
        self._signals: deque[tuple[str, int]] = deque()  # ("ack", mid) / ("reset", 0)
        self._in_flight: dict[int, int] = {}  # mid -> seq
        self._cursor = 0  # highest seq handed to the broker on this connection
        self.delivered = 0

    def attach(self, link: Publisher) -> None:
        self._link = link

    # --- called from any thread -------------------------------------------
    def notify(self) -> None:
        """Something was added to the outbox, or the link changed: look again."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake.set)

    def on_ack(self, mid: int) -> None:
        self._signals.append(("ack", mid))
        self.notify()

    def on_connected(self) -> None:
        # Start again from the oldest row: whatever was in flight when the
        # last connection dropped is sent again (at least once; consumers
        # deduplicate by id).
        self._signals.append(("reset", 0))
        self.notify()

    def on_disconnected(self) -> None:
        self._signals.append(("reset", 0))
        self.notify()

    # --- the asyncio side --------------------------------------------------
    def in_flight(self) -> int:
        return len(self._in_flight)

    def _remove_acked(self) -> int:
        acked: list[int] = []
        while self._signals:
            kind, mid = self._signals.popleft()
            if kind == "reset":
                self._in_flight.clear()
                self._cursor = 0
            else:
                seq = self._in_flight.pop(mid, None)
                if seq is not None:  # acks of an older connection's mids are ignored
                    acked.append(seq)
        if acked:
            self._store.remove(acked)
            self.delivered += len(acked)
        return len(acked)

    def _send_more(self) -> int:
        link = self._link
        if link is None or not link.connected:
            return 0
        room = self._window - len(self._in_flight)
        if room <= 0:
            return 0
        rows = self._store.pending(self._cursor, min(room, self._batch))
        sent = 0
        for row in rows:
            mid = link.publish(self._topic_of(row.topic), row.payload, qos=1)
            if mid is None:  # the link dropped under us; the reset signal restarts the scan
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
                # In a thread: the store's commits (fsync, or a wait for SQLite's write lock) must not
                # hold up the loop, where the doors are decided.
                busy = await asyncio.to_thread(self.step)
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

"""Publishes the outbox in `seq` order with QoS 1; a row leaves on PUBACK, or, with receipts
(`sync.keep_until_receipt`, sync.receipts), only once the town's signed receipt names it.

The store is reached through `OutboxStore` (implemented by the gateway's
SQLite store), so this package never imports the gateway.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from nacl.signing import VerifyKey

from config.models import SyncConfig
from sync.receipts import ReceiptError, receipted_seqs
from sync.signing import public_key

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


@dataclass(frozen=True)
class ReceiptPolicy:
    """Keep rows until the town's receipt (sync.receipts); send again what gets none in `timeout_s`."""

    key: VerifyKey
    gateway_id: str
    timeout_s: float = 30.0  # doubled at each round sent again, up to max_timeout_s; back to this at a receipt
    max_timeout_s: float = 600.0
    gap_grace_s: float = 10.0  # a row passed over this long by receipts of later rows was dropped on the way
    max_skew_s: float = 300.0
    max_waiting: int = 5000  # rows sent and not yet receipted; beyond, sending waits


def receipt_policy(sync: SyncConfig, gateway_id: str) -> ReceiptPolicy | None:
    """The gateway's receipt rules from its `sync` config; None: rows leave at the broker's PUBACK."""
    if not sync.keep_until_receipt or sync.platform_public_key is None:
        return None
    return ReceiptPolicy(public_key(sync.platform_public_key), gateway_id, sync.receipt_timeout_s,
                         max_skew_s=sync.max_skew_s)  # fmt: skip


class OutboxPump:
    """Moves outbox rows to the broker and deletes them once acknowledged (PUBACK, or the town's receipt).

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
        receipts: ReceiptPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._topic_of = topic_of
        self._window = window
        self._batch = batch
        self._link: Publisher | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self._signals: deque[tuple[str, Any]] = deque()  # ("ack", mid) / ("reset", 0) / ("receipt", bytes)
        self._in_flight: dict[int, int] = {}  # mid -> seq
        self._cursor = 0  # highest seq handed to the broker on this connection
        self._receipts = receipts
        self._clock = clock
        self._waiting: dict[int, float] = {}  # seq -> when the broker took it; receipt mode only, oldest first
        self._timeout = receipts.timeout_s if receipts else 0.0
        self._last_receipt_at: float | None = None  # any receipt for us: the town is alive and storing
        self._passed_over: tuple[int, float] | None = None  # (oldest waiting seq, when a later seq was receipted)
        self.delivered = 0
        self.resent_rounds = 0  # times the rows without a receipt were sent again

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

    def on_receipt(self, payload: bytes) -> None:
        """A message on `…/receipt` (checked in step(), off the MQTT thread)."""
        if self._receipts is not None:
            self._signals.append(("receipt", payload))
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

    def waiting_for_receipt(self) -> int:
        return len(self._waiting)

    def _restart_scan(self) -> None:
        self._in_flight.clear()
        self._waiting.clear()
        self._cursor = 0

    def _remove_acked(self) -> int:
        acked: list[int] = []
        confirmed: list[int] = []
        while self._signals:
            kind, value = self._signals.popleft()
            if kind == "reset":
                self._restart_scan()
            elif kind == "receipt":
                confirmed += self._read_receipt(value)
            else:
                seq = self._in_flight.pop(value, None)
                if seq is None:  # acks of an older connection's mids are ignored
                    continue
                if self._receipts is None:
                    acked.append(seq)
                else:
                    self._waiting[seq] = self._clock()
        if confirmed:
            acked += self._confirm(confirmed)
        if acked:
            self._store.remove(acked)
            self.delivered += len(acked)
        return len(acked)

    def _read_receipt(self, payload: bytes) -> list[int]:
        assert self._receipts is not None
        policy = self._receipts
        try:
            return receipted_seqs(payload, policy.gateway_id, policy.key, datetime.now(UTC), policy.max_skew_s)
        except ReceiptError as exc:
            log.warning("receipt ignored: %s (%d bytes)", exc, len(payload))
            return []

    def _confirm(self, seqs: list[int]) -> list[int]:
        """The receipted rows to delete: those waiting, and those whose PUBACK has not come yet."""
        assert self._receipts is not None
        now = self._clock()
        self._last_receipt_at = now
        named = set(seqs)
        found = [seq for seq in named if self._waiting.pop(seq, None) is not None]
        early = [mid for mid, seq in self._in_flight.items() if seq in named]
        for mid in early:
            found.append(self._in_flight.pop(mid))
        if found:
            self._timeout = self._receipts.timeout_s
        if self._waiting:
            oldest = min(self._waiting)
            passed = self._passed_over is not None and self._passed_over[0] == oldest
            if not passed and max(named) > oldest:
                self._passed_over = (oldest, now)
        return found

    def _resend_if_unconfirmed(self) -> None:
        """Receipt mode: send every row still in the outbox again, from the oldest, when the oldest row sent
        has waited `timeout` AND either the town said nothing for us meanwhile (it is down, or never got
        them) or it receipted later rows and passed this one over for `gap_grace_s` (the broker dropped
        it). A town that is merely behind keeps receipting in order: nothing is sent twice for that."""
        policy = self._receipts
        if policy is None or not self._waiting:
            return
        now = self._clock()
        if now - next(iter(self._waiting.values())) < self._timeout:
            return
        silent = self._last_receipt_at is None or now - self._last_receipt_at >= self._timeout
        passed = self._passed_over
        gap = passed is not None and passed[0] in self._waiting and now - passed[1] >= policy.gap_grace_s
        if not (silent or gap):
            return
        log.warning("no receipt from the town for %d event(s) in %.0f s (%s); sending them again",
                    len(self._waiting), self._timeout, "passed over" if gap else "town silent")  # fmt: skip
        self._passed_over = None
        self._restart_scan()
        self.resent_rounds += 1
        self._timeout = min(self._timeout * 2, policy.max_timeout_s)

    def _send_more(self) -> int:
        link = self._link
        if link is None or not link.connected:
            return 0
        self._resend_if_unconfirmed()
        room = self._window - len(self._in_flight)
        if self._receipts is not None:
            room = min(room, self._receipts.max_waiting - len(self._waiting) - len(self._in_flight))
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

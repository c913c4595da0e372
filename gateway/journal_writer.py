"""Writing entries and alerts (each with its outbox row), and what happens when the disk is full.

A full disk must not stop the doors (issue 13): SQLite then fails the commit with SQLITE_FULL,
which used to abort the door's path before the relay pulse. Here, a transaction that fails that
way keeps what it recorded (entries and alerts, ids and timestamps already given) in a bounded
memory queue, in order, and so does every later one until the queue is written: the outbox stops
growing, `storage_full` is raised, the doors keep deciding and opening. When space returns the
queue is written in its order (so `seq` still follows the decisions) and `storage_full` cleared.

A small reserve file in `data_dir` is given back to the file system at the first SQLITE_FULL, so
that the `storage_full` alert itself can be committed at once and reach the platform, and the
outbox pump can still delete acknowledged rows. It is made again before the queue is written.

What is kept in memory is lost if the process dies before space returns (at most MAX_KEPT events;
beyond that, newer ones are counted and dropped, and the count is in the cleared alert).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import OperationalError

from gateway import metrics
from gateway.store.db import write_now
from gateway.store.journal import AlertDraft, EntryDraft, new_event_id, record_alert, record_entry

log = logging.getLogger("accessgw")

MAX_KEPT = 20_000  # events kept in memory while the disk is full (~1 KB each)
RETRY_S = 1.0  # how often space is looked for while full
CHUNK = 200  # queued events written per transaction once space is back (a door waits for at most one)
RESERVE_NAME = ".storage-reserve"
RESERVE_BYTES = 256 * 1024  # given back at SQLITE_FULL: room for the alert, the pump's deletes, a checkpoint
RESUME_FREE_BYTES = 1024 * 1024  # free space (beyond the reserve) before the queue is written again


def is_disk_full(exc: BaseException) -> bool:
    """SQLite's SQLITE_FULL (or an ENOSPC under it), wrapped by SQLAlchemy or not."""
    orig = getattr(exc, "orig", exc)
    if isinstance(orig, sqlite3.Error) and getattr(orig, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
        return True
    if isinstance(orig, OSError) and orig.errno == errno.ENOSPC:
        return True
    return "database or disk is full" in str(orig)


@dataclass(frozen=True, slots=True)
class Kept:
    """One event recorded while the disk was full: what record_entry / record_alert would have written."""

    draft: EntryDraft | AlertDraft
    id: str


@dataclass
class Transaction:
    """The connection of one write (BEGIN IMMEDIATE), and the events recorded in it."""

    db: Connection
    writer: JournalWriter
    recorded: list[Kept] = field(default_factory=list)
    deferred: bool = False  # the disk was full when it began: its events go to the queue, not the store

    def entry(self, draft: EntryDraft, entry_id: str | None = None) -> Kept:
        kept = Kept(draft, entry_id or new_event_id(draft.ts))
        if not self.deferred:
            record_entry(self.db, self.writer.gateway_id, draft, kept.id)
        self.recorded.append(kept)
        return kept

    def alert(self, draft: AlertDraft, alert_id: str | None = None) -> Kept:
        kept = Kept(draft, alert_id or new_event_id(draft.ts))
        if not self.deferred:
            record_alert(self.db, self.writer.gateway_id, draft, kept.id)
        self.recorded.append(kept)
        return kept


class JournalWriter:
    """The one way entries and alerts are written (gateway.door_path, gateway.alerts)."""

    def __init__(
        self,
        engine: Engine,
        gateway_id: str,
        data_dir: Path | None = None,
        notify_uplink: Callable[[], None] = lambda: None,
        on_state: Callable[[str | None], None] = lambda error: None,
    ) -> None:
        self.engine, self.gateway_id, self.data_dir = engine, gateway_id, data_dir
        self.notify_uplink = notify_uplink
        self.on_state = on_state  # told the error while full, None when written again (for …/state)
        self._queue: deque[Kept] = deque()
        self._lock = threading.Lock()  # the queue: appended on the loop, written from a worker thread
        self._full = asyncio.Event()
        self.full = False  # while True, new events go to the queue
        self.full_since: float | None = None
        self.kept_total = 0  # events that went through the queue during this episode
        self.dropped = 0  # events lost because the queue was at MAX_KEPT (this episode)
        self._raised = False
        self.episodes = 0
        self.make_reserve()

    # --- the reserve -----------------------------------------------------------------
    @property
    def reserve_path(self) -> Path | None:
        return None if self.data_dir is None else Path(self.data_dir) / RESERVE_NAME

    def make_reserve(self) -> bool:
        """Write the reserve file (real blocks, not a sparse file); False if there is no room."""
        path = self.reserve_path
        if path is None:
            return True
        if path.exists() and path.stat().st_size >= RESERVE_BYTES:
            return True
        try:
            with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
                f.write(b"\0" * RESERVE_BYTES)
                f.flush()
                os.fsync(f.fileno())
            return True
        except OSError as exc:
            with contextlib.suppress(OSError):
                path.unlink()
            log.warning("could not make the storage reserve %s: %s", path, exc)
            return False

    def free_bytes(self) -> int | None:
        if self.data_dir is None:
            return None
        st = os.statvfs(self.data_dir)
        return st.f_bavail * st.f_frsize

    # --- writing --------------------------------------------------------------------
    @contextlib.contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """A write transaction whose entries and alerts survive SQLITE_FULL (kept in the queue).

        The caller's own other writes in it (e.g. anti-passback presence) are lost on SQLITE_FULL."""
        deferred = self.full
        txn: Transaction | None = None
        try:
            with write_now(self.engine) as db:
                txn = Transaction(db, self, deferred=deferred)
                yield txn
        except OperationalError as exc:
            if not is_disk_full(exc):
                raise
            self._became_full(exc)
            if txn is None or not txn.recorded:
                raise  # nothing of ours was in it: the caller's write is what failed
            self._keep(txn.recorded)
            return
        if deferred and txn is not None:
            self._keep(txn.recorded)

    def _keep(self, events: list[Kept]) -> None:
        with self._lock:
            for kept in events:
                if len(self._queue) >= MAX_KEPT:
                    self.dropped += 1
                    continue
                self._queue.append(kept)
                self.kept_total += 1
        if self.dropped and self.dropped % 1000 == 1:
            log.error("disk full: %d event(s) dropped, the memory queue holds %d", self.dropped, MAX_KEPT)

    def _became_full(self, exc: BaseException) -> None:
        if self.full:
            return
        self.full, self.full_since = True, time.monotonic()
        self.kept_total = self.dropped = 0
        self.episodes += 1
        free = self.free_bytes()
        error = f"storage full: {getattr(exc, 'orig', exc)}; entries kept in memory until space returns"
        log.error("%s (free %s bytes in %s)", error, free, self.data_dir)
        self.on_state(error)
        self._full.set()
        if not self._raised:
            self._raised = True
            details = {"data_dir": str(self.data_dir), "free_bytes": free, "error": str(getattr(exc, "orig", exc))}
            self._raise_now(AlertDraft(datetime.now(UTC), "storage_full", "raised", "critical", details=details))

    def _raise_now(self, draft: AlertDraft) -> None:
        """The raised alert: committed at once with the reserve's room if that works, else queued first."""
        metrics.ALERTS.labels(draft.kind, draft.state).inc()
        path = self.reserve_path
        if path is not None:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        alert = Kept(draft, new_event_id(draft.ts))
        try:
            with write_now(self.engine) as db:
                record_alert(db, self.gateway_id, draft, alert.id)
        except OperationalError as exc:
            if not is_disk_full(exc):
                raise
            self._keep([alert])
            log.warning("alert storage_full raised id=%s (kept in memory: no room even for it)", alert.id)
            return
        log.warning("alert storage_full raised details=%s id=%s", draft.details, alert.id)
        self.notify_uplink()

    # --- recovery, on the gateway's loop -------------------------------------------------
    def depth(self) -> int:
        with self._lock:
            return len(self._queue)

    def _write_chunk(self) -> int:
        """Write the oldest CHUNK queued events in one transaction (worker thread); returns how many."""
        with self._lock:
            chunk = [self._queue[i] for i in range(min(CHUNK, len(self._queue)))]
        if not chunk:
            return 0
        with write_now(self.engine) as db:
            for kept in chunk:
                if isinstance(kept.draft, EntryDraft):
                    record_entry(db, self.gateway_id, kept.draft, kept.id)
                else:
                    record_alert(db, self.gateway_id, kept.draft, kept.id)
        with self._lock:
            for _ in chunk:
                self._queue.popleft()  # only this thread removes: the head is still `chunk`
        return len(chunk)

    def _room(self) -> bool:
        free = self.free_bytes()
        return free is None or free >= RESUME_FREE_BYTES + RESERVE_BYTES

    async def _recover(self) -> None:
        """Until the queue is written and storage_full cleared: look for space every RETRY_S."""
        while self.full:
            if not self._room() or not await asyncio.to_thread(self.make_reserve):
                await asyncio.sleep(RETRY_S)
                continue
            try:
                while await asyncio.to_thread(self._write_chunk):
                    self.notify_uplink()
            except OperationalError as exc:
                if not is_disk_full(exc):
                    log.exception("writing the kept events failed; will try again")
                await asyncio.sleep(RETRY_S)
                continue
            with self._lock:  # on the loop, where events are added: nothing slips in between
                if self._queue:
                    continue
                if self._raised:
                    self._raised = False
                    self._queue.append(self._cleared())
                    continue
                self.full = False
            log.warning("storage back: %d kept event(s) written, %d dropped", self.kept_total, self.dropped)
            self.on_state(None)
            self.notify_uplink()

    def _cleared(self) -> Kept:
        lasted = time.monotonic() - (self.full_since or time.monotonic())
        details = {"kept": self.kept_total, "dropped": self.dropped, "full_s": round(lasted, 1),
                   "free_bytes": self.free_bytes()}  # fmt: skip
        draft = AlertDraft(datetime.now(UTC), "storage_full", "cleared", "info", details=details)
        metrics.ALERTS.labels(draft.kind, draft.state).inc()
        log.warning("alert storage_full cleared details=%s", details)
        return Kept(draft, new_event_id(draft.ts))

    async def run(self, stop: asyncio.Event) -> None:
        """The gateway's task: wait for a full disk, then recover; on stop, say what is lost."""
        stopping = asyncio.create_task(stop.wait())
        try:
            while not stop.is_set():
                full = asyncio.create_task(self._full.wait())
                await asyncio.wait([full, stopping], return_when=asyncio.FIRST_COMPLETED)
                full.cancel()
                if stop.is_set():
                    break
                self._full.clear()
                recovering = asyncio.create_task(self._recover())
                await asyncio.wait([recovering, stopping], return_when=asyncio.FIRST_COMPLETED)
                if not recovering.done():
                    recovering.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await recovering
        finally:
            stopping.cancel()
            if self.depth():
                log.error("stopping with the disk full: %d kept event(s) are lost", self.depth())

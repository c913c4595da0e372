"""Requests from the town platform (`…/request/{cmd}`, DESIGN §6): the handler table behind the router."""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from gateway.door_path import DoorPath
from gateway.doors import DoorState
from gateway.inputs import check_text
from gateway.store.audit import audit
from gateway.store.db import write_now, write_now_on
from gateway.store.journal import request_snapshot
from gateway.store.roster_snapshot import (
    apply_changes,
    apply_new_rows,
    drop_stage,
    new_row_batches,
    stage_snapshot,
)
from gateway.store.roster_sync import Op, PatchOutcome, RosterSyncError, apply_patch, parse_ops, parse_version
from sync.commands import CommandError, CommandRouter
from sync.snapshots import SnapshotAssembler, SnapshotError

log = logging.getLogger(__name__)


class PlatformRequests:
    def __init__(
        self,
        router: CommandRouter,
        doors: dict[str, DoorState],
        door_path: DoorPath,
        sessions: sessionmaker[Session],
        state: Callable[[], dict[str, Any]],
        publish_state: Callable[[], None],
    ) -> None:
        self.doors, self.door_path, self.sessions = doors, door_path, sessions
        self.state, self.publish_state = state, publish_state
        router.register("state", self.state_request)
        router.register("door/open", self.door_open)

    async def state_request(self, request: dict[str, Any]) -> dict[str, Any]:
        self.publish_state()
        return {"state": self.state()}

    async def door_open(self, request: dict[str, Any]) -> dict[str, Any]:
        """A signed open (checked by the router's guard), audited under the platform user who asked."""
        user = request.get("user")
        try:
            if not isinstance(user, str) or not 1 <= len(user) <= 64:
                raise ValueError("door/open needs `user`: the platform user who asked (1-64 characters)")
            check_text(user, "user")
        except ValueError as exc:
            raise CommandError("malformed", str(exc)) from None
        door = self.doors.get(str(request.get("door")))
        if door is None:
            raise CommandError("unknown_door", f"no door {str(request.get('door'))[:64]!r}")
        with self.sessions.begin() as s:  # every remote open is audited (DESIGN §8)
            audit(s, f"platform:{user}", "door.open", {"door": door.cfg.id, "transaction": request.get("transaction")},
                  route="mqtt request/door/open")  # fmt: skip
        self.door_path.open(door.cfg, "remote", details={"user": user})
        return {"door": door.cfg.id}


class RosterRequests:
    """`roster/patch` and `roster/snapshot` from the platform (DESIGN §6.1), signed (checked by the router's guard).

    Parsing and applying run off the loop (a snapshot is many rows); one roster change at a time.
    """

    RECENT_SNAPSHOTS = 8

    def __init__(self, router: CommandRouter, engine: Engine, gateway_id: str, notify: Callable[[], None],
                 on_change: Callable[[], None] = lambda: None) -> None:  # fmt: skip
        self.engine, self.gateway_id, self.notify, self.on_change = engine, gateway_id, notify, on_change
        self.snapshots = SnapshotAssembler()
        self._done: OrderedDict[str, int] = OrderedDict()  # snapshots applied lately → their version
        self._lock = asyncio.Lock()
        router.register("roster/patch", self.patch)
        router.register("roster/snapshot", self.snapshot)

    async def patch(self, request: dict[str, Any]) -> dict[str, Any]:
        async with self._lock:
            try:
                outcome = await asyncio.to_thread(self._patch, request)
            except RosterSyncError as exc:
                raise CommandError(exc.code, str(exc)) from None
        if outcome.status == "gap":
            self.notify()
            raise CommandError("version_gap", f"this gateway holds roster version {outcome.version}, not "
                                              f"{request.get('from_version')}; a snapshot is requested")  # fmt: skip
        if outcome.status == "applied":
            log.info("roster patch %s applied: version %d", request.get("transaction"), outcome.version)
            self.on_change()
        return {"version": outcome.version}

    def _patch(self, request: dict[str, Any]) -> PatchOutcome:
        from_version = parse_version(request.get("from_version"), "from_version")
        to_version = parse_version(request.get("to_version"), "to_version")
        ops = parse_ops(request.get("ops"))
        with write_now(self.engine) as conn:
            outcome = apply_patch(conn, from_version, to_version, ops)
            if outcome.status == "gap":
                request_snapshot(conn, self.gateway_id, outcome.version, "version_gap", datetime.now(UTC))
        return outcome

    async def snapshot(self, request: dict[str, Any]) -> dict[str, Any]:
        try:
            version = parse_version(request.get("version"), "version")
            snapshot_id = request.get("snapshot_id")
            if not isinstance(snapshot_id, str) or not 1 <= len(snapshot_id) <= 64:
                raise RosterSyncError("malformed", "`snapshot_id` must be a string of 1 to 64 characters")
            check_text(snapshot_id, "snapshot_id")
            chunk, chunks = request.get("chunk"), request.get("chunks")
            if not all(isinstance(n, int) and not isinstance(n, bool) for n in (chunk, chunks)):
                raise RosterSyncError("malformed", "`chunk` and `chunks` must be integers")
        except (RosterSyncError, ValueError) as exc:
            raise CommandError("malformed", str(exc)) from None
        if snapshot_id in self._done:  # a chunk of a snapshot already applied, delivered again
            return {"snapshot_id": snapshot_id, "complete": True, "version": self._done[snapshot_id]}
        try:
            ops = await asyncio.to_thread(parse_ops, request.get("ops"), upserts_only=True)
            if snapshot_id not in self.snapshots.in_progress:  # incomplete after its TTL: dropped, memory freed
                asyncio.get_running_loop().call_later(self.snapshots.ttl_s + 1, self.snapshots.expire)
            complete = self.snapshots.add(snapshot_id, version, chunk, chunks, ops)  # type: ignore[arg-type]
        except (RosterSyncError, SnapshotError) as exc:
            self.snapshots.drop(snapshot_id)
            raise CommandError("malformed", f"snapshot {snapshot_id!r} chunk {chunk}: {exc}") from None
        if complete is None:
            return {"snapshot_id": snapshot_id, "complete": False}
        async with self._lock:
            try:
                applied = await asyncio.to_thread(self._apply_snapshot, complete.version, complete.items)
            except RosterSyncError as exc:
                raise CommandError(exc.code, f"snapshot {snapshot_id!r}: {exc}") from None
        self._done[snapshot_id] = applied
        while len(self._done) > self.RECENT_SNAPSHOTS:
            self._done.popitem(last=False)
        log.info("roster snapshot %s applied: %d operations, version %d", snapshot_id, len(complete.items), applied)
        self.on_change()
        return {"snapshot_id": snapshot_id, "complete": True, "version": applied}

    def _apply_snapshot(self, version: int, ops: list[Op]) -> int:
        """Sorted against the store first (no lock), then applied in short write transactions
        (gateway.store.roster_snapshot): the doors wait for the lock briefly, never for the whole snapshot."""
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            try:
                conn.exec_driver_sql("BEGIN")  # TEMP tables and reads only: no lock on the store
                staged = stage_snapshot(conn, version, ops)
                conn.exec_driver_sql("COMMIT")
                with write_now_on(conn):
                    staged = apply_changes(conn, staged)
                batches = new_row_batches(conn)
                for i, batch in enumerate(batches):
                    with write_now_on(conn):
                        apply_new_rows(conn, staged, batch, last=i == len(batches) - 1)
                    # A batch's few MB go into the database file now: left for the background checkpoint,
                    # a snapshot's 100 MB of WAL were one long fsync that a door's commit waited behind.
                    conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
                return version
            finally:
                drop_stage(conn)

"""Pushing each building's roster down (DESIGN §6.1): signed patches from the roster log, snapshots on demand.

One thread. For every gateway whose `roster_version` (what it says it holds) is below its `target_version`
(the newest version of its log) it sends ONE signed `request/roster/patch` from `roster_version` to
`target_version` with the log's operations of those versions in order, and sends it again every
`resend_s` until the gateway answers (`on_response`: `ok` + version → `roster_version`; `version_gap` or
`malformed` → a snapshot). At most one patch per gateway is in flight per resend period: the next one
leaves when the answer is in (the answer wakes the loop), so a gateway never gets a patch built on a
version it has not reached. A gateway reported offline is tried every `OFFLINE_FACTOR` x `resend_s` only.

A snapshot (on `…/events/roster_request`, a `version_gap`, a patch too large for one message, or a log
that no longer reaches back to the gateway's version) is the gateway's whole slice as upserts at
`target_version`, in chunks of at most `roster.chunk_bytes`, `chunk_interval_s` apart, sent by a small
pool of workers so that one big building does not hold the others up.

Wake-ups: `wake()` (the register's callers after a commit; automatic for sessions of the sessionmaker
given here: `register.ROSTER_CHANGED` in `session.info`), an answer from a gateway, and a poll every
`resend_s` (a change made by another process, e.g. the CLI while `town run` runs, reaches the gateway too).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from nacl.signing import SigningKey
from sqlalchemy import event, or_, select, update
from sqlalchemy.orm import Session, sessionmaker
from ulid import ULID

from config.town import RosterPushConfig
from sync.roster_messages import compact, patch_message, snapshot_messages
from town.register import ROSTER_CHANGED, initialize_gateways
from town.roster_ops import slice_ops
from town.store.models import Gateway, RosterLogEntry

log = logging.getLogger(__name__)

# publish(topic, payload, qos=1, retain=False) -> mid, or None when not taken: SharedConsumer.publish
Publish = Callable[..., Any]

OFFLINE_FACTOR = 12  # a gateway reported offline gets its patch every 12 x resend_s (it comes back: "online")
MAX_PATCH_VERSIONS = 1000  # farther behind than this: a snapshot, not a patch built from 1000 log rows
SNAPSHOT_TTL_S = 60.0  # the gateway drops an incomplete snapshot after 60 s (sync.snapshots.TTL_S)
SNAPSHOT_WORKERS = 4
_AFTER_COMMIT = "town.pusher.after_commit"  # session.info: what to do once the answer's transaction commits
_IN_BATCH = 500


@dataclass
class _Patch:
    from_version: int
    to_version: int
    sent_at: float
    transaction: str


@dataclass
class _Snapshot:
    snapshot_id: str
    version: int
    started: float
    chunks: int = 0
    sent_at: float | None = None  # when the last chunk left


class Pusher:
    def __init__(self, sessions: sessionmaker[Session], key: SigningKey, publish: Publish, cfg: RosterPushConfig,
                 base_topic: str, *, clock: Callable[[], float] = time.monotonic,
                 snapshot_workers: int = SNAPSHOT_WORKERS) -> None:  # fmt: skip
        self.sessions, self.key, self.publish, self.cfg = sessions, key, publish, cfg
        self.base_topic = base_topic
        self.clock = clock
        self._wakeup = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()  # guards _patches, _snapshots, _wanted
        self._patches: dict[str, _Patch] = {}
        self._snapshots: dict[str, _Snapshot] = {}
        self._wanted: set[str] = set()  # snapshots asked for, not yet started
        self._thread: threading.Thread | None = None
        self._workers = ThreadPoolExecutor(max(1, snapshot_workers), thread_name_prefix="town-snapshot")
        self.sent_patches = 0
        self.sent_snapshots = 0
        event.listen(sessions, "after_commit", self._after_commit)
        event.listen(sessions, "after_soft_rollback", self._after_rollback)

    # --- life cycle -------------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="town-pusher", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wakeup.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._workers.shutdown(wait=True, cancel_futures=True)
        for name, fn in (("after_commit", self._after_commit), ("after_soft_rollback", self._after_rollback)):
            if event.contains(self.sessions, name, fn):
                event.remove(self.sessions, name, fn)

    def wake(self) -> None:
        """A gateway's roster log grew (call after the commit): send now, not at the next poll."""
        self._wakeup.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wakeup.clear()
            try:
                self.tick()
            except Exception:  # the database away for a moment: try again at the next wake-up or poll
                log.exception("roster push failed; trying again in %.0f s", self.cfg.resend_s)
            self._wakeup.wait(self.cfg.resend_s)

    # --- hooks (town.ingest) ------------------------------------------------------------------------------
    def on_roster_request(self, gateway_id: str) -> None:
        """`…/events/roster_request` (after its commit): the gateway asks for a snapshot."""
        self.request_snapshot(gateway_id)

    def request_snapshot(self, gateway_id: str) -> None:
        with self._lock:
            current = self._snapshots.get(gateway_id)
            if current is not None and not self._snapshot_expired(current, self.clock()):
                return  # one is on its way (a version_gap answer and the roster_request come together)
            self._wanted.add(gateway_id)
        self.wake()

    def on_response(self, session: Session, gateway_id: str, command: str, payload: dict[str, Any]) -> None:
        """`…/response/roster/*` (in the ingest's transaction): record the version the gateway now holds."""
        if command not in ("roster/patch", "roster/snapshot") or not isinstance(payload, dict):
            return
        status, version = payload.get("status"), payload.get("version")
        if status == "ok":
            if command == "roster/snapshot" and payload.get("complete") is not True:
                return  # a chunk taken in; the version comes with the last one
            if not isinstance(version, int) or isinstance(version, bool) or version < 0:
                return
            session.execute(update(Gateway).where(Gateway.gateway_id == gateway_id).values(roster_version=version)
                            .execution_options(synchronize_session=False))  # fmt: skip
            session.info.setdefault(_AFTER_COMMIT, []).append(("answered", gateway_id, command, version, None))
            return
        error = payload.get("error")
        log.warning("gateway %s refused %s (transaction %s): %s %s", gateway_id, command,
                    payload.get("transaction"), error, str(payload.get("message") or "")[:200])  # fmt: skip
        transaction = payload.get("transaction")
        session.info.setdefault(_AFTER_COMMIT, []).append(("refused", gateway_id, command, error, transaction))

    def _after_commit(self, session: Session) -> None:
        actions = session.info.pop(_AFTER_COMMIT, [])
        changed = session.info.pop(ROSTER_CHANGED, False)
        if not actions and not changed:
            return
        with self._lock:
            for what, gateway_id, command, value, transaction in actions:
                sent = self._patches.get(gateway_id)
                if command == "roster/patch" and sent is not None:
                    # Answered: the next patch may leave (not for the answer to an older patch sent again).
                    if (what == "answered" and value >= sent.to_version) or transaction == sent.transaction:
                        del self._patches[gateway_id]
                if what == "answered" and command == "roster/snapshot":
                    self._snapshots.pop(gateway_id, None)
                elif what == "refused":
                    if command == "roster/snapshot":
                        self._snapshots.pop(gateway_id, None)
                    if value == "version_gap" or (value == "malformed" and command == "roster/patch"):
                        # A patch that cannot apply there (e.g. a permit number a tenant enrolled at the
                        # building holds, not yet merged): the snapshot replaces the slice, the platform wins.
                        self._wanted.add(gateway_id)
                    elif command == "roster/patch":  # malformed, stale, …: not before the next resend period
                        self._patches[gateway_id] = _Patch(-1, -1, self.clock(), "")
        self.wake()

    def _after_rollback(self, session: Session, previous: object) -> None:
        if getattr(previous, "nested", False):  # a savepoint (the ingest's hooks): the transaction goes on
            return
        session.info.pop(_AFTER_COMMIT, None)
        session.info.pop(ROSTER_CHANGED, None)

    # --- one round ----------------------------------------------------------------------------------------
    def topic(self, gateway_id: str, command: str) -> str:
        return f"{self.base_topic}/{gateway_id}/request/{command}"

    def tick(self, _first: bool = True) -> None:
        """Send what is due: new gateways get their first version, patches, snapshots."""
        now = self.clock()
        with self.sessions() as s:
            g = Gateway.__table__.c
            rows = s.execute(
                select(g.gateway_id, g.roster_version, g.target_version, g.availability).where(
                    or_(g.roster_version != g.target_version, g.target_version == 0)
                )
            ).all()
        fresh = [r.gateway_id for r in rows if not r.target_version]
        ahead = [r.gateway_id for r in rows if r.target_version and r.roster_version > r.target_version]
        if (fresh or ahead) and _first:
            self._initialize(fresh, ahead)
            return self.tick(False)  # their new versions, read again
        due: dict[str, tuple[int, int]] = {}
        with self._lock:
            for gid in ahead:
                self._wanted.add(gid)
            snapshots = [gid for gid in self._wanted]
            self._wanted.clear()
            for r in rows:
                if r.roster_version >= r.target_version or r.gateway_id in snapshots:
                    continue
                snap = self._snapshots.get(r.gateway_id)
                if snap is not None:
                    if not self._snapshot_expired(snap, now):
                        continue  # no patch while a snapshot is on its way
                    del self._snapshots[r.gateway_id]
                sent = self._patches.get(r.gateway_id)
                period = self.cfg.resend_s * (OFFLINE_FACTOR if r.availability == "offline" else 1)
                if sent is not None and sent.from_version in (r.roster_version, -1) and now - sent.sent_at < period:
                    continue
                if r.target_version - r.roster_version > MAX_PATCH_VERSIONS:
                    snapshots.append(r.gateway_id)
                else:
                    due[r.gateway_id] = (r.roster_version, r.target_version)
        if due:
            snapshots += self._send_patches(due)
        for gid in snapshots:
            self._start_snapshot(gid)

    def _initialize(self, fresh: list[str], ahead: list[str]) -> None:
        """Version 1 (the watch list) for buildings the town knows but never gave a version; and a gateway that
        holds a version the town's log never reached (the town's database restored from an older backup):
        the log moves past it, and a snapshot at that version follows."""
        if fresh:
            with self.sessions.begin() as s:
                initialize_gateways(s, fresh)
        for gid in ahead:
            with self.sessions.begin() as s:
                g = Gateway.__table__.c
                row = s.execute(select(g.roster_version, g.target_version).where(g.gateway_id == gid)
                                .with_for_update()).first()  # fmt: skip
                if row is None or row.roster_version <= row.target_version:
                    continue
                log.warning("gateway %s holds roster version %d, beyond the town's %d: it gets a snapshot",
                            gid, row.roster_version, row.target_version)  # fmt: skip
                s.add(RosterLogEntry(gateway_id=gid, version=row.roster_version + 1, ops=[]))
                s.execute(update(Gateway).where(Gateway.gateway_id == gid)
                          .values(target_version=row.roster_version + 1)
                          .execution_options(synchronize_session=False))  # fmt: skip
            with self._lock:
                self._wanted.add(gid)

    def _send_patches(self, due: dict[str, tuple[int, int]]) -> list[str]:
        """One signed patch per gateway of `due` ({gateway: (from, to)}); the gateways that need a snapshot."""
        ops: dict[str, list[tuple[int, list[dict[str, Any]]]]] = {gid: [] for gid in due}
        ids = sorted(due)
        with self.sessions() as s:
            for i in range(0, len(ids), _IN_BATCH):
                batch = ids[i : i + _IN_BATCH]
                r = RosterLogEntry.__table__.c
                g = Gateway.__table__.c
                rows = s.execute(
                    select(r.gateway_id, r.version, r.ops).join(Gateway.__table__, g.gateway_id == r.gateway_id)
                    .where(r.gateway_id.in_(batch), r.version > g.roster_version, r.version <= g.target_version)
                    .order_by(r.gateway_id, r.version)
                )  # fmt: skip
                for gid, version, version_ops in rows:
                    ops[gid].append((version, version_ops))
        snapshots = []
        for gid in ids:
            from_version, to_version = due[gid]
            versions = [v for v, _ in ops[gid] if from_version < v <= to_version]
            if versions != list(range(from_version + 1, to_version + 1)):  # the log has moved on, or lost rows
                snapshots.append(gid)
                continue
            patch = patch_message(
                self.key,
                from_version,
                to_version,
                [op for v, vops in ops[gid] if from_version < v <= to_version for op in vops],
            )
            payload = compact(patch).encode()
            if len(payload) > self.cfg.chunk_bytes:
                snapshots.append(gid)
                continue
            with self._lock:
                self._patches[gid] = _Patch(from_version, to_version, self.clock(), patch["transaction"])
            try:
                mid = self.publish(self.topic(gid, "roster/patch"), payload, qos=1)
            except Exception as exc:  # the broker away: the next resend period tries again
                mid = None
                log.warning("roster patch for %s not published: %s", gid, exc)
            if mid is None:  # not connected: kept as in flight, so it is tried at the next resend period
                continue
            self.sent_patches += 1
            log.debug("roster patch %s → %s: %d → %d", patch["transaction"], gid, from_version, to_version)
        return snapshots

    # --- snapshots ------------------------------------------------------------------------------------------
    def _snapshot_expired(self, snap: _Snapshot, now: float) -> bool:
        if snap.sent_at is None:  # still sending: give it the time its chunks take
            return now - snap.started > SNAPSHOT_TTL_S + snap.chunks * self.cfg.chunk_interval_s + 600
        return now - snap.sent_at > SNAPSHOT_TTL_S + self.cfg.resend_s

    def _start_snapshot(self, gateway_id: str) -> None:
        with self._lock:
            current = self._snapshots.get(gateway_id)
            if current is not None and not self._snapshot_expired(current, self.clock()):
                return
            snap = self._snapshots[gateway_id] = _Snapshot(f"s{ULID()}", -1, self.clock())
            self._patches.pop(gateway_id, None)
        try:
            self._workers.submit(self._send_snapshot, gateway_id, snap)
        except RuntimeError:  # shutting down
            pass

    def _send_snapshot(self, gateway_id: str, snap: _Snapshot) -> None:
        try:
            version, ops = self._read_slice(gateway_id)
            snap.version = version
            messages = snapshot_messages(self.key, version, ops, snapshot_id=snap.snapshot_id,
                                         max_bytes=self.cfg.chunk_bytes)  # fmt: skip
            snap.chunks = len(messages)
            log.info("roster snapshot %s → %s: version %d, %d operations in %d message(s)", snap.snapshot_id,
                     gateway_id, version, len(ops), len(messages))  # fmt: skip
            for i, message in enumerate(messages):
                if self._stop.is_set():
                    return
                if i and self.cfg.chunk_interval_s:
                    time.sleep(self.cfg.chunk_interval_s)
                if self.publish(self.topic(gateway_id, "roster/snapshot"), message, qos=1) is None:
                    raise ConnectionError("the broker did not take the message (not connected)")
            snap.sent_at = self.clock()
            self.sent_snapshots += 1
        except LookupError as exc:
            log.warning("roster snapshot not sent: %s", exc)
            with self._lock:
                if self._snapshots.get(gateway_id) is snap:
                    del self._snapshots[gateway_id]
        except Exception as exc:
            if isinstance(exc, ConnectionError):
                log.warning("roster snapshot for %s not sent: %s; it is tried again", gateway_id, exc)
            else:
                log.exception("roster snapshot for %s failed; it is tried again", gateway_id)
            with self._lock:
                if self._snapshots.get(gateway_id) is snap:
                    del self._snapshots[gateway_id]
                    self._wanted.add(gateway_id)  # at the next round (the poll: resend_s)

    def _read_slice(self, gateway_id: str) -> tuple[int, list[dict[str, Any]]]:
        """The gateway's slice and the version it is at, read consistently: the target version before and
        after the read must agree (every register change to this slice raises it in the same transaction)."""
        g = Gateway.__table__.c
        for _ in range(20):
            with self.sessions() as s:
                before = s.execute(select(g.target_version).where(g.gateway_id == gateway_id)).scalar()
                if before is None:
                    raise LookupError(f"no gateway {gateway_id!r} in the register")
                ops = slice_ops(s, gateway_id)
                s.rollback()  # a new read for the check, whatever the isolation level
                after = s.execute(select(g.target_version).where(g.gateway_id == gateway_id)).scalar()
            if before is not None and before == after:
                return int(before), ops
        raise RuntimeError(f"the roster of {gateway_id} kept changing while its snapshot was read")

    # --- for tests and the fleet view -------------------------------------------------------------------------
    def in_flight(self) -> dict[str, Any]:
        with self._lock:
            return {"patches": {k: (v.from_version, v.to_version) for k, v in self._patches.items()},
                    "snapshots": {k: v.version for k, v in self._snapshots.items()}}  # fmt: skip

"""The town's ingest (DESIGN §6.3): every building's events, health and answers, from the broker's
shared subscription into the store, at least once and never twice.

Messages arrive from `sync.mqtt_client.SharedConsumer` (paho's thread) into a queue. One worker
thread takes up to `batch_size` of them (or what arrived within `batch_wait_s`), writes them in ONE
transaction, commits, and only THEN acknowledges each to the broker. A failed commit acknowledges
nothing: the batch is tried again with backoff (the broker keeps every message not acknowledged, and
gives it again after a reconnect, to this instance or another of the group). Entries, alerts and
roster events are inserted or ignored on their key, so a message delivered twice is stored once.

Topics under `{base}/{gateway_id}/`:
  events/entry, events/alert    → entries, alerts (keyed by id; (id, ts) for the partitioned entries)
  events/roster                 → roster_events, and `on_roster_event(session, gateway_id, payload)` for
                                  each one new, in the same transaction
  events/roster_request         → `on_roster_request(gateway_id)` after the commit (no key: a request
                                  delivered twice is passed on twice)
  availability                  → gateways.availability (`online` / `offline`, a bare string)
  state                         → gateways.state, roster_version, outbox_depth
  response/{cmd}                → gateways.roster_version (roster answers), outbox_depth (a `state`
                                  answer), and `on_response(session, gateway_id, command, payload)`
                                  in the transaction (answers carry no key: it may see one twice)

After each commit `on_stored` gets the seqs of the events (and roster requests) the batch stored, per
gateway: the town's receipts (town.receipts), which let a gateway delete those rows from its outbox.

A payload that cannot be stored (not JSON, a field missing or of the wrong type or too long, another
gateway's id) is logged, counted as malformed and acknowledged: it would only come back. A message
the database refuses on its own (a data error, not a lost connection) is treated the same, after its
batch was split to find it. Every message of a gateway moves `last_seen` (but its `offline`).

Gaps: entries, alerts, roster events and roster requests share the gateway's one `seq`. With S the
seqs received, `last_seq` = max(S) and `missing_seqs` = max(S) - |S| (seqs start at 1): a new seq
above last_seq adds the ones it skipped, a late one below it takes one off. Only rows actually
inserted count, so a redelivered event changes nothing. A roster request has no row: it counts when
its seq is above last_seq (a late one, below, is taken for a duplicate).
"""

from __future__ import annotations

import json
import logging
import math
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON as SAJSON
from sqlalchemy import BigInteger, Date, Float, Integer, String, Table
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

from config.town import TownConfig
from sync.mqtt_client import InboundMessage, SharedConsumer
from town.store import bulk
from town.store.models import RosterEvent, TownAlert, TownEntry

log = logging.getLogger(__name__)

MAX_PAYLOAD = 1_000_000  # bytes; an event is a few hundred, a roster event with 5 templates a few KB
BIGINT = 2**63 - 1
INT32 = 2**31 - 1


def shared_filters(base_topic: str, group: str) -> list[str]:
    """The shared subscriptions of a platform instance (every gateway, one group)."""
    share = f"$share/{group}/{base_topic}/+"
    return [f"{share}/events/#", f"{share}/availability", f"{share}/state", f"{share}/response/#"]


def consumer_client_id(cfg: TownConfig) -> str:
    return f"accessgw-town-{cfg.instance or socket.gethostname()}"


def make_consumer(cfg: TownConfig, on_message: Callable[[InboundMessage], None], **kwargs: Any) -> SharedConsumer:
    """The instance's consumer: client id `accessgw-town-{instance}` (its persistent session), the group's filters."""
    return SharedConsumer(cfg.mqtt, consumer_client_id(cfg), shared_filters(cfg.mqtt.base_topic, cfg.mqtt.share_group),
                          on_message, **kwargs)  # fmt: skip


class Malformed(ValueError):
    """A payload that cannot be stored; acknowledged and counted, never retried."""


# --- payload checks, from the tables' own columns ----------------------------------------------------


def _rfc3339(value: Any, name: str) -> datetime:
    if not isinstance(value, str) or len(value) > 40:
        raise Malformed(f"`{name}` must be an RFC 3339 time")
    try:
        ts = datetime.fromisoformat(value)
    except ValueError:
        raise Malformed(f"`{name}` must be an RFC 3339 time, not {value[:40]!r}") from None
    if ts.tzinfo is None:
        raise Malformed(f"`{name}` must carry its offset (…Z)")
    return ts.astimezone(UTC)


def _check(value: Any, column: Any, name: str) -> Any:
    """`value` as the column stores it, or Malformed."""
    if value is None:
        if not column.nullable:
            raise Malformed(f"`{name}` is missing")
        return None
    kind = column.type
    if isinstance(kind, String):
        if not isinstance(value, str):
            raise Malformed(f"`{name}` must be a string")
        if kind.length is not None and len(value) > kind.length:
            raise Malformed(f"`{name}` is longer than {kind.length} characters")
        if "\x00" in value:
            raise Malformed(f"`{name}` holds a NUL character")
        return value
    if isinstance(kind, Integer | BigInteger):  # BigInteger is an Integer; bool is an int to Python, not here
        limit = BIGINT if isinstance(kind, BigInteger) else INT32
        if not isinstance(value, int) or isinstance(value, bool) or not -limit - 1 <= value <= limit:
            raise Malformed(f"`{name}` must be an integer")
        return value
    if isinstance(kind, Float):
        if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
            raise Malformed(f"`{name}` must be a number")
        return float(value)
    if isinstance(kind, SAJSON):
        if not isinstance(value, dict):
            raise Malformed(f"`{name}` must be an object")
        return value
    if isinstance(kind, Date):
        raise Malformed(f"`{name}`: dates are not taken from events")  # no such column in events
    return _rfc3339(value, name)  # UTCDateTime


def _row(table: Table, payload: dict[str, Any], gateway_id: str, now: datetime, skip: Iterable[str] = ()) -> dict:
    """The row of `table` for an event payload: every column the payload should carry, checked."""
    claimed = payload.get("gateway_id")
    if claimed is not None and claimed != gateway_id:
        raise Malformed(f"payload of gateway {str(claimed)[:64]!r} on gateway {gateway_id!r}'s topic")
    row: dict[str, Any] = {"gateway_id": gateway_id, "received_at": now}
    for column in table.columns:
        if column.name in row or column.name in skip:
            continue
        row[column.name] = _check(payload.get(column.name), column, column.name)
    if row["seq"] < 1:
        raise Malformed("`seq` must be 1 or more")
    return row


ENTRIES: Table = TownEntry.__table__  # type: ignore[assignment]
ALERTS: Table = TownAlert.__table__  # type: ignore[assignment]
ROSTER: Table = RosterEvent.__table__  # type: ignore[assignment]


# --- the parts of one batch ------------------------------------------------------------------------


@dataclass
class _GatewayNews:
    """What a batch says about one gateway."""

    seen: datetime | None = None
    availability: str | None = None
    state: dict[str, Any] | None = None
    roster_version: int | None = None
    outbox_depth: int | None = None
    request_seqs: list[int] = field(default_factory=list)


@dataclass
class _Batch:
    now: datetime
    entries: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    roster: list[tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=list)  # (row, payload)
    responses: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)  # gateway, command, payload
    roster_requests: list[str] = field(default_factory=list)
    news: dict[str, _GatewayNews] = field(default_factory=dict)
    stored_seqs: dict[str, list[int]] = field(default_factory=dict)  # gateway → seqs stored once this commits
    malformed: int = 0

    def of(self, gateway_id: str) -> _GatewayNews:
        return self.news.setdefault(gateway_id, _GatewayNews())


@dataclass
class IngestCounters:
    received: int = 0  # messages handed over by the consumer
    inserted: int = 0  # entries, alerts and roster events stored
    duplicates: int = 0  # …already there (delivered again)
    malformed: int = 0  # acknowledged without being stored (bad payload, or refused by the database)
    updates: int = 0  # availability, state, responses, roster requests taken
    acked: int = 0
    batches: int = 0  # transactions committed
    commit_failures: int = 0  # failed attempts (each retried, nothing acknowledged)
    hook_errors: int = 0  # on_roster_event / on_response raised (rolled back to before the call; logged)


def _noop(*_args: Any) -> None:
    return None


class Ingest:
    """Feed it `submit` (the consumer's callback), start it with the consumer's `ack`.

    ingest = Ingest(sessions, base_topic=cfg.mqtt.base_topic, on_roster_event=…)
    consumer = make_consumer(cfg, ingest.submit)
    ingest.start(consumer.ack)
    consumer.start()
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        base_topic: str = "accessgw",
        on_roster_event: Callable[[Session, str, dict[str, Any]], None] = _noop,
        on_roster_request: Callable[[str], None] = _noop,
        on_response: Callable[[Session, str, str, dict[str, Any]], None] = _noop,
        on_stored: Callable[[dict[str, list[int]]], None] = _noop,
        batch_size: int = 500,
        batch_wait_s: float = 0.005,
        retry_max_s: float = 5.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.sessions = sessions
        self.prefix = base_topic.rstrip("/") + "/"
        self.on_roster_event, self.on_roster_request, self.on_response = on_roster_event, on_roster_request, on_response
        self.on_stored = on_stored  # after each commit: the seqs now stored, per gateway (town.receipts)
        self.batch_size, self.batch_wait_s, self.retry_max_s = batch_size, batch_wait_s, retry_max_s
        self.clock = clock
        self.counters = IngestCounters()
        self._queue: queue.SimpleQueue[InboundMessage] = queue.SimpleQueue()
        self._ack: Callable[[InboundMessage], object] = _noop
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._idle = threading.Event()
        self._idle.set()
        self.last_error: str | None = None

    # --- life --------------------------------------------------------------------------------------
    def submit(self, msg: InboundMessage) -> None:
        """The consumer's callback (paho's thread): queue it, nothing more."""
        self._idle.clear()
        self._queue.put(msg)

    def start(self, ack: Callable[[InboundMessage], object]) -> None:
        self._ack = ack
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="town-ingest", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the batch in hand (a batch that cannot commit is left unacknowledged) and stop."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    def idle(self) -> bool:
        """Nothing queued and no batch in hand."""
        return self._idle.is_set() and self._queue.empty()

    def stats(self) -> dict[str, int]:
        return asdict(self.counters)

    # --- the worker ---------------------------------------------------------------------------------
    def _take(self) -> list[InboundMessage]:
        try:
            first = self._queue.get(timeout=0.2)
        except queue.Empty:
            if self._queue.empty():
                self._idle.set()
            return []
        self._idle.clear()
        batch = [first]
        deadline = time.monotonic() + self.batch_wait_s
        while len(batch) < self.batch_size:
            try:
                batch.append(self._queue.get_nowait())
                continue
            except queue.Empty:
                pass
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                batch.append(self._queue.get(timeout=left))
            except queue.Empty:
                break
        return batch

    def _run(self) -> None:
        while not self._stop.is_set():
            batch = self._take()
            if batch:
                self.counters.received += len(batch)
                self.process(batch)
                if self._queue.empty():
                    self._idle.set()

    def process(self, messages: list[InboundMessage]) -> bool:
        """Store `messages` in one transaction, then acknowledge them; True when done (False: stopped
        before the batch could commit, nothing acknowledged). Retries with backoff meanwhile."""
        delay = 0.05
        while True:
            try:
                done = self._write(messages)
                break
            except Exception as exc:
                self.counters.commit_failures += 1
                self.last_error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
                if not _transient(exc):
                    if len(messages) > 1:
                        log.warning("ingest batch of %d refused (%s); storing its messages one by one",
                                    len(messages), self.last_error)  # fmt: skip
                        return all(self.process([m]) for m in messages)
                    log.error("message on %s refused by the database, acknowledged without being stored: %s; "
                              "payload %r", messages[0].topic[:120], self.last_error,
                              messages[0].payload[:300])  # fmt: skip
                    self.counters.malformed += 1
                    self._acknowledge(messages)
                    return True
                log.warning("ingest commit failed (%s); %d messages not acknowledged, again in %.2f s",
                            self.last_error, len(messages), delay)  # fmt: skip
                if self._stop.wait(delay):
                    return False
                delay = min(delay * 2, self.retry_max_s)
        self.last_error = None
        self.counters.batches += 1
        self._acknowledge(messages)
        if done.stored_seqs:
            try:
                self.on_stored(done.stored_seqs)
            except Exception:
                log.exception("on_stored failed; the gateways will send those events again")
        for gateway_id in done.roster_requests:
            try:
                self.on_roster_request(gateway_id)
            except Exception:
                log.exception("on_roster_request failed for gateway %s", gateway_id)
        return True

    def _acknowledge(self, messages: list[InboundMessage]) -> None:
        for msg in messages:
            if self._ack(msg) is not False:
                self.counters.acked += 1

    # --- one transaction ----------------------------------------------------------------------------
    def _parse(self, messages: list[InboundMessage]) -> _Batch:
        batch = _Batch(now=self.clock())
        seen_ids: set[tuple[str, str]] = set()
        for msg in messages:
            try:
                self._parse_one(msg, batch, seen_ids)
            except Malformed as exc:
                batch.malformed += 1
                log.warning("malformed message on %s: %s", msg.topic[:120], exc)
        return batch

    def _parse_one(self, msg: InboundMessage, batch: _Batch, seen_ids: set[tuple[str, str]]) -> None:
        if not msg.topic.startswith(self.prefix):
            raise Malformed("not under the base topic")
        gateway_id, _, rest = msg.topic[len(self.prefix) :].partition("/")
        if not gateway_id or len(gateway_id) > 64 or "\x00" in gateway_id:
            raise Malformed("no usable gateway id in the topic")
        if len(msg.payload) > MAX_PAYLOAD:
            raise Malformed(f"payload of {len(msg.payload)} bytes")
        news = batch.of(gateway_id)
        if rest == "availability":
            text = msg.payload.decode("utf-8", "replace").strip()
            if text not in ("online", "offline"):
                raise Malformed(f"availability {text[:20]!r}")
            news.availability = text
            if text == "online":
                news.seen = batch.now
            return
        payload = _json_object(msg.payload)
        news.seen = batch.now
        if rest in ("events/entry", "events/alert", "events/roster"):
            table = {"events/entry": ENTRIES, "events/alert": ALERTS, "events/roster": ROSTER}[rest]
            skip = ("acknowledged_at", "acknowledged_by", "payload")
            row = _row(table, payload, gateway_id, batch.now, skip)
            batch.stored_seqs.setdefault(gateway_id, []).append(row["seq"])
            key = (table.name, row["id"])
            if key in seen_ids:  # the same event twice in one batch
                self.counters.duplicates += 1
                return
            seen_ids.add(key)
            if table is ENTRIES:
                batch.entries.append(row)
            elif table is ALERTS:
                batch.alerts.append(row)
            else:
                row["payload"] = payload
                batch.roster.append((row, payload))
        elif rest == "events/roster_request":
            seq = payload.get("seq")
            if isinstance(seq, int) and not isinstance(seq, bool) and 1 <= seq <= BIGINT:
                news.request_seqs.append(seq)
                batch.stored_seqs.setdefault(gateway_id, []).append(seq)  # taken: its row may leave the outbox
            batch.roster_requests.append(gateway_id)
        elif rest == "state":
            news.state = payload
            _take_health(news, payload)
        elif rest.startswith("response/") and len(rest) > len("response/"):
            command = rest[len("response/") :]
            if not isinstance(payload.get("status"), str):
                raise Malformed("a response without `status`")
            if command.startswith("roster/") and payload["status"] == "ok":
                version = payload.get("version")
                if isinstance(version, int) and not isinstance(version, bool) and 0 <= version <= BIGINT:
                    news.roster_version = version
            nested = payload.get("state")
            if command == "state" and isinstance(nested, dict):
                news.state = nested
                _take_health(news, nested)
            batch.responses.append((gateway_id, command, payload))
        else:
            raise Malformed(f"unknown topic {rest[:60]!r}")

    def _write(self, messages: list[InboundMessage]) -> _Batch:
        batch = self._parse(messages)
        inserted_seqs: dict[str, list[int]] = {}
        with self.sessions.begin() as session:
            conn = session.connection()
            new_entries = bulk.insert_new(conn, ENTRIES, batch.entries)
            new_alerts = bulk.insert_new(conn, ALERTS, batch.alerts)
            new_roster = bulk.insert_new(conn, ROSTER, [row for row, _ in batch.roster])
            for rows, new in ((batch.entries, new_entries), (batch.alerts, new_alerts),
                              ([r for r, _ in batch.roster], new_roster)):  # fmt: skip
                for row in rows:
                    if row["id"] in new:
                        inserted_seqs.setdefault(row["gateway_id"], []).append(row["seq"])
            self._update_gateways(session, batch, inserted_seqs)
            hook_errors = 0
            for row, payload in batch.roster:
                if row["id"] in new_roster:
                    hook_errors += self._hook(session, self.on_roster_event, row["gateway_id"], payload,
                                              what=f"on_roster_event({row['id']})")  # fmt: skip
            for gateway_id, command, payload in batch.responses:
                hook_errors += self._hook(session, self.on_response, gateway_id, command, payload,
                                          what=f"on_response({command})")  # fmt: skip
        inserted = len(new_entries) + len(new_alerts) + len(new_roster)
        stored = len(batch.entries) + len(batch.alerts) + len(batch.roster)
        c = self.counters
        c.inserted += inserted
        c.duplicates += stored - inserted
        c.malformed += batch.malformed
        c.hook_errors += hook_errors
        c.updates += (
            len(batch.responses)
            + len(batch.roster_requests)
            + sum((n.availability is not None) + (n.state is not None) for n in batch.news.values())
        )
        return batch

    def _hook(self, session: Session, hook: Callable[..., None], *args: Any, what: str) -> int:
        if hook is _noop:
            return 0
        try:
            with session.begin_nested():
                hook(session, *args)
        except Exception as exc:
            if _transient(exc):
                raise  # the database is gone: the batch is tried again
            log.exception("%s failed for gateway %s; its changes are rolled back, the event is kept", what, args[0])
            return 1
        return 0

    def _update_gateways(self, session: Session, batch: _Batch, inserted_seqs: dict[str, list[int]]) -> None:
        if not batch.news:
            return
        conn = session.connection()
        bulk.ensure_gateways(conn, batch.news, batch.now)
        current = bulk.lock_seq_counts(conn, batch.news)  # every row this batch changes, in one order
        rows: list[dict[str, Any]] = []
        for g, news in batch.news.items():
            row = {"gateway_id": g, "last_seen": news.seen, "availability": news.availability, "state": news.state,
                   "roster_version": news.roster_version, "outbox_depth": news.outbox_depth}  # fmt: skip
            if inserted_seqs.get(g) or news.request_seqs:
                last, missing = current[g]
                seqs = list(inserted_seqs.get(g, ()))
                seqs += sorted({s for s in news.request_seqs if s > last} - set(seqs))
                if seqs:
                    top = max(last, *seqs)
                    row["last_seq"] = top
                    row["missing_seqs"] = missing + (top - last) - len(seqs)
            rows.append(row)
        bulk.update_gateways(conn, rows)


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise Malformed("not JSON") from None
    if not isinstance(payload, dict):
        raise Malformed("not a JSON object")
    return payload


def _take_health(news: _GatewayNews, state: dict[str, Any]) -> None:
    version, depth = state.get("roster_version"), state.get("outbox_depth")
    if isinstance(version, int) and not isinstance(version, bool) and 0 <= version <= BIGINT:
        news.roster_version = version
    if isinstance(depth, int) and not isinstance(depth, bool) and 0 <= depth <= INT32:
        news.outbox_depth = depth


def _transient(exc: BaseException) -> bool:
    """A failure worth trying again as it is (the database away, busy, a deadlock), not a refusal of the data."""
    if isinstance(exc, OperationalError | InterfaceError | DisconnectionError | PoolTimeout):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated

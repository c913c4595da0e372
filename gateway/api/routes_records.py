"""Entries, alerts, snapshots, CSV export and the audit log: every read is audited."""

from __future__ import annotations

import logging
from collections.abc import Generator
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, Response, StreamingResponse
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.types import Receive, Scope, Send

from gateway.api.auth import Caller, require
from gateway.api.errors import ApiError
from gateway.api.limits import Slots, searching, slots
from gateway.inputs import D, check_time
from gateway.store.audit import audit, complete_row, start_row
from gateway.store.models import Alert, Entry
from gateway.store.queries import (
    AlertFilter,
    AuditFilter,
    EntryFilter,
    count_entries_per_hour,
    csv_lines,
    iter_entries,
    search_alerts,
    search_audit,
    search_entries,
)

log = logging.getLogger(__name__)
router = APIRouter()
READERS = require("admin", "police")
ACKERS = require("admin", "police", "operator")
AUDITOR = require("auditor")
Limit = Annotated[int, Query(ge=1, le=500)]
Cursor = Annotated[str | None, Query(max_length=200)]
Text = Annotated[str | None, Query(max_length=64)]


class Page(BaseModel):
    items: list[dict[str, Any]]
    next_cursor: str | None


class HourlyCounts(BaseModel):
    day: date
    counts: list[int]


def _session(request: Request) -> Session:
    return request.app.state.ctx.sessions()


def _aware(ts: datetime | None, what: str) -> datetime | None:
    """A query time: with a zone, and in gateway.inputs.TIME_YEARS (so no arithmetic on it overflows)."""
    if ts is not None and ts.tzinfo is None:
        raise ApiError(422, "invalid_request", "times need a zone offset, e.g. 2026-11-23T08:00:00+08:00")
    return _in_range(ts, what)


def _in_range(value: D | None, what: str) -> D | None:
    try:
        return value if value is None else check_time(value, what)
    except ValueError as exc:
        raise ApiError(422, "invalid_request", str(exc)) from None


def _shown(filters: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime | date) else v) for k, v in filters.items() if v is not None}


def _audit_read(request: Request, caller: Caller, action: str, filters: dict[str, Any], rows: int) -> None:
    with _session(request) as s, s.begin():
        audit(s, caller.name, action, {"filters": _shown(filters), "address": caller.address},
              route=request.url.path, rows=rows)  # fmt: skip


def _entry_filter(
    since: datetime | None = None,
    until: datetime | None = None,
    tenant_id: Text = None,
    card_number: Annotated[int | None, Query(ge=0, le=0xFFFFFFFF)] = None,
    door: Text = None,
    method: Literal["card", "face", "card_and_face", "remote", "exit_button"] | None = None,
    decision: Literal["granted", "denied"] | None = None,
    reason: Text = None,
) -> EntryFilter:
    if since and until and _aware(since, "since") >= _aware(until, "until"):  # type: ignore[operator]
        raise ApiError(422, "invalid_request", "since must be before until")
    return EntryFilter(since=_aware(since, "since"), until=_aware(until, "until"), tenant_id=tenant_id,
                       card_number=card_number, door=door, method=method, decision=decision,
                       reason=reason)  # fmt: skip


def _as_dict(f: object) -> dict[str, Any]:
    return {k: getattr(f, k) for k in f.__dataclass_fields__}  # type: ignore[attr-defined]


@router.get("/entries", response_model=Page, tags=["entries"])
def entries(
    request: Request,
    f: EntryFilter = Depends(_entry_filter),
    cursor: Cursor = None,
    limit: Limit = 50,
    caller: Caller = Depends(READERS),
) -> Page:
    """Search the entry log, newest first; follow `next_cursor` for more."""
    with searching(request), _session(request) as s:
        try:
            page = search_entries(s, f, cursor=cursor, limit=limit)
        except ValueError as exc:
            raise ApiError(422, "invalid_request", str(exc)) from None
    _audit_read(request, caller, "entries.search", _as_dict(f) | {"cursor": cursor, "limit": limit}, len(page.items))
    return Page(items=page.items, next_cursor=page.next_cursor)


@router.get("/entries.csv", tags=["entries"], response_class=StreamingResponse)
def entries_csv(request: Request, f: EntryFilter = Depends(_entry_filter), caller: Caller = Depends(READERS)):  # noqa: ANN201
    """Every matching entry as CSV, streamed (no size limit; the export itself is audited).

    At most `api.max_exports` run at once; another waits a few seconds, then gets 429 `busy`.
    """
    slot = slots(request, "export")
    slot.take()
    body = _export(request, caller, f, slot)
    try:
        next(body)  # up to the priming yield: filter checked, audit row written, nothing sent yet
    except ValueError as exc:
        raise ApiError(422, "invalid_request", str(exc)) from None
    name = f"entries-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.csv"
    return _ClosingStream(body, media_type="text/csv; charset=utf-8",
                          headers={"Content-Disposition": f'attachment; filename="{name}"'})  # fmt: skip


class _ClosingStream(StreamingResponse):
    """Closes its generator as soon as the response ends, however it ends.

    Starlette only abandons a sync generator when the client goes away; it is
    closed whenever the garbage collector gets to it (a cycle through the
    cancellation can keep it for minutes), and with it the export slot and
    the audit row's count.
    """

    def __init__(self, body: Generator[bytes, None, None], **kwargs: Any) -> None:
        super().__init__(body, **kwargs)
        self._source = body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):  # also when the server cancels us on shutdown
                await anyio.to_thread.run_sync(self._source.close)


def _export(request: Request, caller: Caller, f: EntryFilter, slot: Slots) -> Generator[bytes, None, None]:
    """The CSV stream. Owns the export slot and the audit row from its first step.

    The row is written before the first byte (rows null, state "started") and
    completed in `finally` with the rows sent so far and state "completed" or
    "aborted": when the stream ends, when the client goes away (_ClosingStream
    closes the generator), and when the response is never sent at all (the
    garbage collector closes it).
    """
    row_id: int | None = None
    sent, completed = 0, False
    try:
        # Its own connection: Starlette may run each step of this generator on another thread.
        with Session(request.app.state.ctx.reader_engine) as s:
            lines = csv_lines(iter_entries(s, f))  # iter_entries checks the filter now (ValueError)
            shown = _shown(_as_dict(f))
            with _session(request) as w, w.begin():
                row_id = start_row(w, caller.name, "entries.export",
                                   {"filters": shown, "address": caller.address, "state": "started"},
                                   route=request.url.path)  # fmt: skip
            yield b""  # the priming step ends here; the route never sends this
            buffer, rows = [next(lines)], 0  # the header line, then `rows` records
            for line in lines:
                buffer.append(line)
                rows += 1
                if len(buffer) >= 2000:
                    yield "".join(buffer).encode()
                    sent += rows  # counted once the server has taken the chunk
                    buffer, rows = [], 0
            if buffer:
                yield "".join(buffer).encode()
            sent += rows
        completed = True
    finally:
        try:
            if row_id is not None:
                outcome = {"state": "completed" if completed else "aborted", "completed": completed}
                with _session(request) as w, w.begin():
                    complete_row(w, row_id, sent, outcome)
        except Exception:  # the slot must come back even if the database is unhappy
            log.exception("could not complete audit row %s of a CSV export", row_id)
        finally:
            slot.release()


@router.get("/entries/per-hour", response_model=HourlyCounts, tags=["entries"])
def entries_per_hour(request: Request, day: date, caller: Caller = Depends(READERS)) -> HourlyCounts:
    """Entries per hour of one day in the gateway's time zone (for the page's chart)."""
    from gateway.clock import local_zone

    _in_range(day, "day")
    zone = local_zone(request.app.state.ctx.cfg)
    start = datetime.combine(day, time(0), tzinfo=zone)
    with _session(request) as s:
        counts = count_entries_per_hour(s, start, start + timedelta(days=1))
    _audit_read(request, caller, "entries.per_hour", {"day": day}, sum(counts))
    return HourlyCounts(day=day, counts=counts)


def _snapshot(request: Request, caller: Caller, model: type, event_id: str, kind: str) -> Response:
    with _session(request) as s:
        row = s.scalar(select(model).where(model.id == event_id))
    if row is None:
        raise ApiError(404, "not_found", f"no {kind[:-1]} {event_id!r}")
    # Only a regular file inside the snapshot folder, opened without following links (SnapshotStore.read).
    jpeg = request.app.state.ctx.snapshots.read(event_id) if row.snapshot else None
    _audit_read(request, caller, f"{kind}.snapshot", {"id": event_id}, 1 if jpeg is not None else 0)
    if jpeg is None:
        raise ApiError(404, "not_found", f"{kind[:-1]} {event_id!r} has no snapshot (none taken, or pruned)")
    return Response(jpeg, media_type="image/jpeg")


@router.get("/entries/{entry_id}/snapshot", tags=["entries"], response_class=FileResponse)
def entry_snapshot(entry_id: str, request: Request, caller: Caller = Depends(READERS)) -> Response:
    return _snapshot(request, caller, Entry, entry_id, "entries")


@router.get("/alerts", response_model=Page, tags=["alerts"])
def alerts(
    request: Request,
    since: datetime | None = None,
    until: datetime | None = None,
    kind: Text = None,
    state: Literal["raised", "cleared"] | None = None,
    door: Text = None,
    camera: Text = None,
    tenant_id: Text = None,
    acknowledged: bool | None = None,
    cursor: Cursor = None,
    limit: Limit = 50,
    caller: Caller = Depends(READERS),
) -> Page:
    f = AlertFilter(since=_aware(since, "since"), until=_aware(until, "until"), kind=kind, state=state, door=door,
                    camera=camera, tenant_id=tenant_id, acknowledged=acknowledged)  # fmt: skip
    with searching(request), _session(request) as s:
        try:
            page = search_alerts(s, f, cursor=cursor, limit=limit)
        except ValueError as exc:
            raise ApiError(422, "invalid_request", str(exc)) from None
    _audit_read(request, caller, "alerts.search", _as_dict(f) | {"cursor": cursor, "limit": limit}, len(page.items))
    return Page(items=page.items, next_cursor=page.next_cursor)


@router.post("/alerts/{alert_id}/ack", tags=["alerts"])
def acknowledge(alert_id: str, request: Request, caller: Caller = Depends(ACKERS)) -> dict[str, Any]:
    with _session(request) as s, s.begin():
        alert = s.get(Alert, alert_id)
        if alert is None:
            raise ApiError(404, "not_found", f"no alert {alert_id!r}")
        if alert.acknowledged_at is None:
            alert.acknowledged_at, alert.acknowledged_by = datetime.now(UTC), caller.name
            audit(s, caller.name, "alert.ack", {"id": alert_id}, route="POST /alerts/{id}/ack")
        return {"id": alert_id, "acknowledged_by": alert.acknowledged_by,
                "acknowledged_at": alert.acknowledged_at.isoformat()}  # fmt: skip


@router.get("/alerts/{alert_id}/snapshot", tags=["alerts"], response_class=FileResponse)
def alert_snapshot(alert_id: str, request: Request, caller: Caller = Depends(READERS)) -> Response:
    return _snapshot(request, caller, Alert, alert_id, "alerts")


@router.get("/audit", response_model=Page, tags=["audit"])
def audit_log(
    request: Request,
    since: datetime | None = None,
    until: datetime | None = None,
    actor: Text = None,
    action: Text = None,
    cursor: Cursor = None,
    limit: Limit = 50,
    caller: Caller = Depends(AUDITOR),
) -> Page:
    """The audit log, newest first. Read-only: no route changes or deletes a row."""
    f = AuditFilter(since=_aware(since, "since"), until=_aware(until, "until"), actor=actor, action=action)
    with searching(request), _session(request) as s:
        try:
            page = search_audit(s, f, cursor=cursor, limit=limit)
        except ValueError as exc:
            raise ApiError(422, "invalid_request", str(exc)) from None
    return Page(items=page.items, next_cursor=page.next_cursor)

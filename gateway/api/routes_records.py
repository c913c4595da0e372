"""Entries, alerts, snapshots, exports and the audit log: every read is audited."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, Response, StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.api.auth import Caller, require
from gateway.api.errors import ApiError
from gateway.api.exports import (
    AUDIT_COLUMNS,
    ENTRY_COLUMNS,
    XLSX_TYPE,
    Export,
    Wording,
    csv_response,
    xlsx_response,
)
from gateway.api.limits import searching
from gateway.api.schemas import AlertState, Decision, Method
from gateway.inputs import D, check_time
from gateway.messages import Lang, pick_lang
from gateway.store.audit import audit
from gateway.store.models import Alert, Entry
from gateway.store.queries import (
    MAX_OFFSET,
    AlertFilter,
    AuditFilter,
    EntryFilter,
    count_audit,
    count_entries,
    count_entries_per_hour,
    iter_audit,
    iter_entries,
    search_alerts,
    search_audit,
    search_entries,
)
from gateway.store.queries import Page as QueryPage

router = APIRouter()
READERS = require("admin", "police")
ACKERS = require("admin", "police", "operator")
# Operators answer alarms at the doors, so they read alerts (a departure from DESIGN §8, where only
# admin and police do): but not watch-list hits, a police matter, and never who an alert was about.
OPERATOR_HIDDEN_KINDS = ("watchlist_hit",)
PERSONAL_DETAILS = ("tenant_id", "watch_id", "card_number", "distance", "name")


def _for_operator(item: dict[str, Any]) -> dict[str, Any]:
    details = item.get("details")
    if isinstance(details, dict):
        details = {k: v for k, v in details.items() if k not in PERSONAL_DETAILS}
    return item | {"tenant_id": None, "details": details}


AUDITOR = require("auditor")
Limit = Annotated[int, Query(ge=1, le=500)]
Cursor = Annotated[str | None, Query(max_length=200)]
Offset = Annotated[int | None, Query(ge=0, le=MAX_OFFSET, description="Skip this many matches (page numbers); "
                                                                        "not with cursor")]  # fmt: skip
WithTotal = Annotated[bool, Query(description="Also count every match (total), stopping at 100,000 (total_capped)")]
Text = Annotated[str | None, Query(max_length=64)]
LangParam = Annotated[Lang | None, Query(description="Language of headers and words; default from Accept-Language")]


class Page(BaseModel):
    items: list[dict[str, Any]]
    next_cursor: str | None
    total: int | None = Field(None, description="with_total: how many match (at most 100,000)")
    total_capped: bool = Field(False, description="with_total: more than `total` match; the count stopped there")
    hint: str | None = Field(
        None,
        description='"no_person": the person filter names nobody (empty page); '
        '"many_people": it names more than 500, the first 500 are searched',
    )


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


def audit_read(request: Request, caller: Caller, action: str, filters: dict[str, Any], rows: int) -> None:
    with _session(request) as s, s.begin():
        audit(s, caller.name, action, {"filters": _shown(filters), "address": caller.address},
              route=request.url.path, rows=rows)  # fmt: skip


def entry_filter(
    since: datetime | None = None,
    until: datetime | None = None,
    tenant_id: Text = None,
    card_number: Annotated[int | None, Query(ge=0, le=0xFFFFFFFF)] = None,
    door: Text = None,
    method: Method | None = None,
    decision: Decision | None = None,
    reason: Text = None,
    person: Annotated[
        str | None, Query(max_length=64, description="A tenant id, part of a name, or a permit number or its beginning")
    ] = None,
) -> EntryFilter:
    if since and until and _aware(since, "since") >= _aware(until, "until"):  # type: ignore[operator]
        raise ApiError(422, "invalid_request", "since must be before until")
    return EntryFilter(since=_aware(since, "since"), until=_aware(until, "until"), tenant_id=tenant_id,
                       card_number=card_number, door=door, method=method, decision=decision,
                       reason=reason, person=person)  # fmt: skip


def as_dict(f: object) -> dict[str, Any]:
    return {k: getattr(f, k) for k in f.__dataclass_fields__}  # type: ignore[attr-defined]


def check_paging(cursor: str | None, offset: int | None) -> None:
    if cursor is not None and offset is not None:
        raise ApiError(422, "invalid_request", "give cursor or offset, not both")


def api_page(page: QueryPage) -> Page:
    return Page(items=page.items, next_cursor=page.next_cursor, total=page.total, total_capped=page.total_capped,
                hint=page.hint)  # fmt: skip


@router.get("/entries", response_model=Page, tags=["entries"])
def entries(
    request: Request,
    f: EntryFilter = Depends(entry_filter),
    cursor: Cursor = None,
    offset: Offset = None,
    limit: Limit = 50,
    with_total: WithTotal = False,
    caller: Caller = Depends(READERS),
) -> Page:
    """Search the entry log, newest first; follow `next_cursor` for more, or ask for page numbers with
    `offset`. Each item carries its tenant's `tenant_name` and `room` (null when no tenant, or deleted)."""
    check_paging(cursor, offset)
    with searching(request), _session(request) as s:
        try:
            page = search_entries(s, f, cursor=cursor, limit=limit, offset=offset, with_total=with_total)
        except ValueError as exc:
            raise ApiError(422, "invalid_request", str(exc)) from None
    shown = as_dict(f) | {"cursor": cursor, "offset": offset, "limit": limit, "with_total": with_total or None}
    audit_read(request, caller, "entries.search", shown, len(page.items))
    return api_page(page)


def export_details(caller: Caller, filters: dict[str, Any], fmt: str, lang: str) -> dict[str, Any]:
    return {"filters": _shown(filters), "address": caller.address, "format": fmt, "lang": lang}


def wording_for(request: Request, lang: str | None) -> Wording:
    return Wording.of(request, pick_lang(lang, request.headers.get("accept-language")))


def _entries_export(request: Request, caller: Caller, f: EntryFilter, fmt: str, lang: str | None) -> Export:
    wording = wording_for(request, lang)
    return Export("entries.export", export_details(caller, as_dict(f), fmt, wording.lang), "entries",
                  ENTRY_COLUMNS, wording, lambda s: (wording.entry(item) for item in iter_entries(s, f)),
                  lambda s, cap: count_entries(s, f, cap=cap))  # fmt: skip


@router.get("/entries.csv", tags=["entries"], response_class=StreamingResponse)
def entries_csv(
    request: Request, f: EntryFilter = Depends(entry_filter), lang: LangParam = None, caller: Caller = Depends(READERS)
) -> StreamingResponse:
    """Every matching entry as CSV for a spreadsheet, streamed (no size limit; the export itself is audited):
    UTF-8 with a BOM, CRLF, headers, methods, decisions and reasons in `lang` (default: Accept-Language),
    times local to the gateway (its zone in the time column's header).

    At most `api.max_exports` run at once; another waits a few seconds, then gets 429 `busy`.
    """
    return csv_response(request, caller, _entries_export(request, caller, f, "csv", lang))


@router.get("/entries.xlsx", tags=["entries"], response_class=StreamingResponse,
            responses={200: {"content": {XLSX_TYPE: {}}, "description": "an Excel workbook"}})  # fmt: skip
def entries_xlsx(
    request: Request, f: EntryFilter = Depends(entry_filter), lang: LangParam = None, caller: Caller = Depends(READERS)
) -> StreamingResponse:
    """The same as entries.csv, as an Excel workbook (times are Excel times); at most 1,000,000 rows
    (422 `too_many_rows` beyond)."""
    return xlsx_response(request, caller, _entries_export(request, caller, f, "xlsx", lang))


@router.get("/entries/per-hour", response_model=HourlyCounts, tags=["entries"])
def entries_per_hour(request: Request, day: date, caller: Caller = Depends(READERS)) -> HourlyCounts:
    """Entries per hour of one day in the gateway's time zone (for the page's chart)."""
    from gateway.clock import local_zone

    _in_range(day, "day")
    zone = local_zone(request.app.state.ctx.cfg)
    start = datetime.combine(day, time(0), tzinfo=zone)
    with _session(request) as s:
        counts = count_entries_per_hour(s, start, start + timedelta(days=1))
    audit_read(request, caller, "entries.per_hour", {"day": day}, sum(counts))
    return HourlyCounts(day=day, counts=counts)


def _snapshot(
    request: Request, caller: Caller, model: type, event_id: str, kind: str, hidden_kinds: tuple[str, ...] = ()
) -> Response:
    with _session(request) as s:
        row = s.scalar(select(model).where(model.id == event_id))
    if row is None or getattr(row, "kind", None) in hidden_kinds:
        raise ApiError(404, "not_found", f"no {kind[:-1]} {event_id!r}")
    # Only a regular file inside the snapshot folder, opened without following links (SnapshotStore.read).
    jpeg = request.app.state.ctx.snapshots.read(event_id) if row.snapshot else None
    audit_read(request, caller, f"{kind}.snapshot", {"id": event_id}, 1 if jpeg is not None else 0)
    if jpeg is None:
        raise ApiError(404, "not_found", f"{kind[:-1]} {event_id!r} has no snapshot (none taken, or pruned)")
    return Response(jpeg, media_type="image/jpeg")


@router.get("/entries/{entry_id}/snapshot", tags=["entries"], response_class=FileResponse)
def entry_snapshot(entry_id: str, request: Request, caller: Caller = Depends(READERS)) -> Response:
    return _snapshot(request, caller, Entry, entry_id, "entries")


def alert_filter(
    since: datetime | None = None,
    until: datetime | None = None,
    kind: Text = None,
    state: AlertState | None = None,
    door: Text = None,
    camera: Text = None,
    tenant_id: Text = None,
    acknowledged: bool | None = None,
    caller: Caller = Depends(ACKERS),
) -> AlertFilter:
    """The alert search's filters, with the operator rule: no watch-list hits, no search by person
    (shared by the gateway's and the town's /alerts)."""
    operator = caller.role == "operator"
    if operator and tenant_id is not None:
        raise ApiError(403, "forbidden", "operators cannot search alerts by person")
    return AlertFilter(since=_aware(since, "since"), until=_aware(until, "until"), kind=kind, state=state, door=door,
                       camera=camera, tenant_id=tenant_id, acknowledged=acknowledged,
                       hidden_kinds=OPERATOR_HIDDEN_KINDS if operator else None)  # fmt: skip


def alert_page(page: QueryPage, caller: Caller) -> Page:
    """A page of alerts as `caller` may see it (operators: without the person)."""
    shown = api_page(page)
    if caller.role == "operator":
        shown.items = [_for_operator(item) for item in shown.items]
    return shown


@router.get("/alerts", response_model=Page, tags=["alerts"])
def alerts(
    request: Request,
    f: AlertFilter = Depends(alert_filter),
    cursor: Cursor = None,
    offset: Offset = None,
    limit: Limit = 50,
    with_total: WithTotal = False,
    caller: Caller = Depends(ACKERS),
) -> Page:
    """Alerts, newest first. Operators see every kind but watch-list hits, without the person."""
    check_paging(cursor, offset)
    with searching(request), _session(request) as s:
        try:
            page = search_alerts(s, f, cursor=cursor, limit=limit, offset=offset, with_total=with_total)
        except ValueError as exc:
            raise ApiError(422, "invalid_request", str(exc)) from None
    shown = as_dict(f) | {"cursor": cursor, "offset": offset, "limit": limit, "with_total": with_total or None}
    audit_read(request, caller, "alerts.search", shown, len(page.items))
    return alert_page(page, caller)


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
def alert_snapshot(alert_id: str, request: Request, caller: Caller = Depends(ACKERS)) -> Response:
    """The alert's picture; an operator gets none of an alert they cannot list (404, as if absent)."""
    hidden = OPERATOR_HIDDEN_KINDS if caller.role == "operator" else ()
    return _snapshot(request, caller, Alert, alert_id, "alerts", hidden_kinds=hidden)


def audit_filter(
    since: datetime | None = None, until: datetime | None = None, actor: Text = None, action: Text = None
) -> AuditFilter:
    return AuditFilter(since=_aware(since, "since"), until=_aware(until, "until"), actor=actor, action=action)


@router.get("/audit", response_model=Page, tags=["audit"])
def audit_log(
    request: Request,
    f: AuditFilter = Depends(audit_filter),
    cursor: Cursor = None,
    offset: Offset = None,
    limit: Limit = 50,
    with_total: WithTotal = False,
    caller: Caller = Depends(AUDITOR),
) -> Page:
    """The audit log, newest first. Read-only: no route changes or deletes a row."""
    check_paging(cursor, offset)
    with searching(request), _session(request) as s:
        try:
            page = search_audit(s, f, cursor=cursor, limit=limit, offset=offset, with_total=with_total)
        except ValueError as exc:
            raise ApiError(422, "invalid_request", str(exc)) from None
    return api_page(page)


def _audit_export(request: Request, caller: Caller, f: AuditFilter, fmt: str, lang: str | None) -> Export:
    wording = wording_for(request, lang)
    return Export("audit.export", export_details(caller, as_dict(f), fmt, wording.lang), "audit", AUDIT_COLUMNS,
                  wording, lambda s: (wording.audit(item) for item in iter_audit(s, f)),
                  lambda s, cap: count_audit(s, f, cap=cap))  # fmt: skip


@router.get("/audit.csv", tags=["audit"], response_class=StreamingResponse)
def audit_csv(
    request: Request, f: AuditFilter = Depends(audit_filter), lang: LangParam = None, caller: Caller = Depends(AUDITOR)
) -> StreamingResponse:
    """The matching audit rows as CSV for a spreadsheet (as entries.csv: words, local times); audited."""
    return csv_response(request, caller, _audit_export(request, caller, f, "csv", lang))


@router.get("/audit.xlsx", tags=["audit"], response_class=StreamingResponse,
            responses={200: {"content": {XLSX_TYPE: {}}, "description": "an Excel workbook"}})  # fmt: skip
def audit_xlsx(
    request: Request, f: AuditFilter = Depends(audit_filter), lang: LangParam = None, caller: Caller = Depends(AUDITOR)
) -> StreamingResponse:
    """The matching audit rows as an Excel workbook; at most 1,000,000 rows; audited."""
    return xlsx_response(request, caller, _audit_export(request, caller, f, "xlsx", lang))

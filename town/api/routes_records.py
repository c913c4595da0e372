"""Entries and alerts of every gateway, the audit log, and a person's whereabouts: every read is audited.

The gateway's routes' building blocks serve here unchanged (filters and their checks, the page model,
audit of reads, exports); only the queries are the town's (town.api.queries: PostgreSQL or SQLite).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy import select

from gateway.api.auth import Caller, require
from gateway.api.errors import ApiError
from gateway.api.exports import AUDIT_COLUMNS, ENTRY_COLUMNS, XLSX_TYPE, Export, csv_response, xlsx_response
from gateway.api.limits import searching
from gateway.api.routes_records import (
    OPERATOR_HIDDEN_KINDS,
    Cursor,
    LangParam,
    Limit,
    Offset,
    Page,
    Text,
    WithTotal,
    alert_filter,
    alert_page,
    api_page,
    as_dict,
    audit_filter,
    audit_read,
    check_paging,
    entry_filter,
    export_details,
    wording_for,
)
from gateway.store.audit import audit
from gateway.store.queries import AuditFilter, EntryFilter
from town.api import queries
from town.api.queries import AlertFilter, TownEntryFilter
from town.api.schemas import TenantOut
from town.store.models import TownAlert, TownTenant

router = APIRouter()
READERS = require("admin", "police")
ACKERS = require("admin", "police", "operator")
AUDITOR = require("auditor")
# The town's exports: the entries' columns with the building after the time.
TOWN_ENTRY_COLUMNS = (ENTRY_COLUMNS[0], "building", *ENTRY_COLUMNS[1:])
MAX_PERSON_ENTRIES = 1000


def _session(request: Request) -> Any:
    return request.app.state.ctx.sessions()


def _town_filter(
    f: EntryFilter = Depends(entry_filter),
    gateway_id: Annotated[str | None, Query(max_length=64, description="One building's entries")] = None,
    permit: Annotated[
        str | None, Query(max_length=64, description="The entries of the tenant holding exactly this permit number")
    ] = None,
) -> TownEntryFilter:
    return TownEntryFilter(**as_dict(f), gateway_id=gateway_id, permit=permit)


@router.get("/entries", response_model=Page, tags=["entries"])
def entries(
    request: Request,
    f: TownEntryFilter = Depends(_town_filter),
    cursor: Cursor = None,
    offset: Offset = None,
    limit: Limit = 50,
    with_total: WithTotal = False,
    caller: Caller = Depends(READERS),
) -> Page:
    """Search the entries of every building, newest first (the gateway's filters, plus `gateway_id` and
    `permit`). Without `since`, the last 366 days. Each item carries `gateway_id`, and the register's
    `tenant_name` and `room` (null when no tenant, or one the register no longer has)."""
    check_paging(cursor, offset)
    with searching(request), _session(request) as s:
        try:
            page = queries.search_entries(s, f, cursor=cursor, limit=limit, offset=offset, with_total=with_total)
        except ValueError as exc:
            raise ApiError(422, "invalid_request", str(exc)) from None
    shown = as_dict(f) | {"cursor": cursor, "offset": offset, "limit": limit, "with_total": with_total or None}
    audit_read(request, caller, "entries.search", shown, len(page.items))
    return api_page(page)


def _entries_export(request: Request, caller: Caller, f: TownEntryFilter, fmt: str, lang: str | None) -> Export:
    wording = wording_for(request, lang)

    def row(item: dict[str, Any]) -> list[Any]:
        cells = wording.entry(item)
        return [cells[0], item["gateway_id"], *cells[1:]]

    return Export("entries.export", export_details(caller, as_dict(f), fmt, wording.lang), "entries",
                  TOWN_ENTRY_COLUMNS, wording, lambda s: (row(item) for item in queries.iter_entries(s, f)),
                  lambda s, cap: queries.count_entries(s, f, cap=cap))  # fmt: skip


@router.get("/entries.csv", tags=["entries"], response_class=StreamingResponse)
def entries_csv(
    request: Request, f: TownEntryFilter = Depends(_town_filter), lang: LangParam = None,
    caller: Caller = Depends(READERS),
) -> StreamingResponse:  # fmt: skip
    """Every matching entry as CSV (as the gateway's: UTF-8 with a BOM, words in `lang`, local times), with a
    building column; streamed and audited."""
    return csv_response(request, caller, _entries_export(request, caller, f, "csv", lang))


@router.get("/entries.xlsx", tags=["entries"], response_class=StreamingResponse,
            responses={200: {"content": {XLSX_TYPE: {}}, "description": "an Excel workbook"}})  # fmt: skip
def entries_xlsx(
    request: Request, f: TownEntryFilter = Depends(_town_filter), lang: LangParam = None,
    caller: Caller = Depends(READERS),
) -> StreamingResponse:  # fmt: skip
    """The same as entries.csv, as an Excel workbook; at most 1,000,000 rows."""
    return xlsx_response(request, caller, _entries_export(request, caller, f, "xlsx", lang))


# --- a person: where they live, where they were seen -------------------------------------------


class PersonOut(BaseModel):
    tenant: TenantOut
    since: datetime
    until: datetime
    entries: list[dict[str, Any]] = Field(description="Newest first, every building: entries naming the tenant "
                                                      "and reads of their cards")  # fmt: skip
    truncated: bool = Field(description=f"more than {MAX_PERSON_ENTRIES} entries: the newest are given")


@router.get("/people/{permit}", response_model=PersonOut, tags=["entries"])
def person(
    request: Request,
    permit: Annotated[str, Path(min_length=1, max_length=64)],
    days: Annotated[int, Query(ge=1, le=366, description="How far back to look")] = 30,
    caller: Caller = Depends(READERS),
) -> PersonOut:
    """Where the holder of this permit lives (building and room) and where they were seen in the last
    `days` days across all buildings, newest first, in one read. Audited, whoever asks."""
    from town.api.routes_register import tenants_out  # the register's tenant shape

    until = datetime.now(UTC) + queries.AHEAD
    since = datetime.now(UTC) - timedelta(days=days)
    filters = {"permit": permit, "days": days}
    with searching(request), _session(request) as s, s.begin():  # one read transaction: tenant and entries agree
        tenant = s.scalar(select(TownTenant).where(TownTenant.permit_number == permit))
        if tenant is None:
            found = None
        else:
            shown = tenants_out(s, [tenant])[0]
            items = queries.person_entries(s, tenant.id, shown.cards, since, until, MAX_PERSON_ENTRIES + 1)
            found = PersonOut(tenant=shown, since=since, until=until, entries=items[:MAX_PERSON_ENTRIES],
                              truncated=len(items) > MAX_PERSON_ENTRIES)  # fmt: skip
    audit_read(request, caller, "people.read", filters, 0 if found is None else 1 + len(found.entries))
    if found is None:
        raise ApiError(404, "not_found", "no tenant holds this permit number")
    return found


# --- alerts ---------------------------------------------------------------------------------------


@router.get("/alerts", response_model=Page, tags=["alerts"])
def alerts(
    request: Request,
    f: AlertFilter = Depends(alert_filter),
    gateway_id: Text = None,
    cursor: Cursor = None,
    offset: Offset = None,
    limit: Limit = 50,
    with_total: WithTotal = False,
    caller: Caller = Depends(ACKERS),
) -> Page:
    """Alerts of every building, newest first. Operators see every kind but watch-list hits, without the person."""
    check_paging(cursor, offset)
    with searching(request), _session(request) as s:
        try:
            page = queries.search_alerts(s, f, gateway_id=gateway_id, cursor=cursor, limit=limit, offset=offset,
                                         with_total=with_total)  # fmt: skip
        except ValueError as exc:
            raise ApiError(422, "invalid_request", str(exc)) from None
    shown = as_dict(f) | {"gateway_id": gateway_id, "cursor": cursor, "offset": offset, "limit": limit,
                           "with_total": with_total or None}  # fmt: skip
    audit_read(request, caller, "alerts.search", shown, len(page.items))
    return alert_page(page, caller)


@router.post("/alerts/{alert_id}/ack", tags=["alerts"])
def acknowledge(alert_id: str, request: Request, caller: Caller = Depends(ACKERS)) -> dict[str, Any]:
    with _session(request) as s, s.begin():
        alert = s.get(TownAlert, alert_id)
        if alert is None or (caller.role == "operator" and alert.kind in OPERATOR_HIDDEN_KINDS):
            raise ApiError(404, "not_found", f"no alert {alert_id!r}")
        if alert.acknowledged_at is None:
            alert.acknowledged_at, alert.acknowledged_by = datetime.now(UTC), caller.name
            audit(s, caller.name, "alert.ack", {"id": alert_id, "gateway_id": alert.gateway_id},
                  route="POST /alerts/{id}/ack")  # fmt: skip
        return {"id": alert_id, "acknowledged_by": alert.acknowledged_by,
                "acknowledged_at": alert.acknowledged_at.isoformat()}  # fmt: skip


# --- the audit log --------------------------------------------------------------------------------


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
    """The town's audit log, newest first. Read-only: no route changes or deletes a row."""
    check_paging(cursor, offset)
    with searching(request), _session(request) as s:
        try:
            page = queries.search_audit(s, f, cursor=cursor, limit=limit, offset=offset, with_total=with_total)
        except ValueError as exc:
            raise ApiError(422, "invalid_request", str(exc)) from None
    return api_page(page)


def _audit_export(request: Request, caller: Caller, f: AuditFilter, fmt: str, lang: str | None) -> Export:
    wording = wording_for(request, lang)
    return Export("audit.export", export_details(caller, as_dict(f), fmt, wording.lang), "audit", AUDIT_COLUMNS,
                  wording, lambda s: (wording.audit(item) for item in queries.iter_audit(s, f)),
                  lambda s, cap: queries.count_audit(s, f, cap=cap))  # fmt: skip


@router.get("/audit.csv", tags=["audit"], response_class=StreamingResponse)
def audit_csv(
    request: Request, f: AuditFilter = Depends(audit_filter), lang: LangParam = None, caller: Caller = Depends(AUDITOR)
) -> StreamingResponse:
    """The matching audit rows as CSV (words, local times); audited."""
    return csv_response(request, caller, _audit_export(request, caller, f, "csv", lang))


@router.get("/audit.xlsx", tags=["audit"], response_class=StreamingResponse,
            responses={200: {"content": {XLSX_TYPE: {}}, "description": "an Excel workbook"}})  # fmt: skip
def audit_xlsx(
    request: Request, f: AuditFilter = Depends(audit_filter), lang: LangParam = None, caller: Caller = Depends(AUDITOR)
) -> StreamingResponse:
    """The matching audit rows as an Excel workbook; at most 1,000,000 rows; audited."""
    return xlsx_response(request, caller, _audit_export(request, caller, f, "xlsx", lang))

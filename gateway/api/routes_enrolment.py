"""Enrolment in one step: a tenant, their cards and their photos are all stored, or nothing is (issue 11).

Every problem is listed at once (tenant fields, each card, each photo's verdict), so an administrator fixes
them in one go; nothing is written until all are fine, and then everything is written in one transaction.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from gateway.api.auth import Caller, require
from gateway.api.errors import ApiError
from gateway.api.routes_roster import MAX_PHOTO_BYTES, send_up, session_of, tenant_out
from gateway.api.schemas import CardIn, PhotoVerdictOut, TenantIn, TenantOut
from gateway.enrolment import MAX_PHOTOS, enrol_faces
from gateway.store.audit import audit
from gateway.store.models import Card, Tenant
from gateway.store.roster import NewTenant, RosterError, add_card, add_tenant

router = APIRouter(tags=["tenants"])
MAX_CARDS = 8


def _tenant(raw: str) -> tuple[TenantIn | None, list[dict[str, Any]]]:
    try:
        return TenantIn.model_validate_json(raw), []
    except ValidationError as exc:
        return None, [{"field": "tenant." + ".".join(map(str, e["loc"])), "code": "invalid", "message": e["msg"]}
                      for e in exc.errors()]  # fmt: skip


def parse_cards(raw: str) -> tuple[list[int], list[dict[str, Any]]]:
    """The `cards` form field (a JSON list) as card numbers, and every problem with it (also the town's)."""
    try:
        values = json.loads(raw or "[]")
    except ValueError:
        return [], [{"field": "cards", "code": "invalid", "message": "cards must be a JSON list of card numbers"}]
    if not isinstance(values, list) or len(values) > MAX_CARDS:
        return [], [{"field": "cards", "code": "invalid", "message": f"cards must be a list of at most {MAX_CARDS}"}]
    numbers, problems = [], []
    for i, value in enumerate(values):
        try:
            numbers.append(CardIn(number=value).number)
        except ValidationError:
            problems.append({"field": f"cards[{i}]", "code": "invalid", "message": "a card number is a 32-bit integer"})
    if len(set(numbers)) != len(numbers):
        problems.append({"field": "cards", "code": "invalid", "message": "a card number is given twice"})
    return numbers, problems


@router.post(
    "/enrolments",
    status_code=201,
    response_model=TenantOut,
    responses={422: {"description": "every problem listed; nothing stored"}, 409: {"description": "conflicts listed"}},
)
async def enrol(
    request: Request,
    tenant: str = Form(..., max_length=4096, description="The tenant as JSON: id, name, permit_number, valid_to, …"),
    cards: str = Form("[]", max_length=1024, description="JSON list of card numbers"),
    photos: list[UploadFile] = File(default=[]),
    caller: Caller = Depends(require("admin")),
) -> TenantOut:
    """Create a tenant with their cards and face photos in one transaction: all stored, or none."""
    new, problems = _tenant(tenant)
    numbers, card_problems = parse_cards(cards)
    problems += card_problems
    if len(photos) > MAX_PHOTOS:
        problems.append({"field": "photos", "code": "invalid", "message": f"at most {MAX_PHOTOS} photos"})
    conflicts: list[dict[str, Any]] = []
    with session_of(request) as s:
        if new is not None:
            if s.get(Tenant, new.id) is not None:
                conflicts.append({"field": "tenant.id", "code": "conflict", "message": f"tenant {new.id!r} exists"})
            clash = s.scalar(select(Tenant.id).where(Tenant.permit_number == new.permit_number))
            if clash is not None:
                conflicts.append({"field": "tenant.permit_number", "code": "conflict",
                                  "message": f"permit number belongs to tenant {clash!r}"})  # fmt: skip
        for i, number in enumerate(numbers):
            owner = s.scalar(select(Card.tenant_id).where(Card.number == number))
            if owner is not None:
                conflicts.append({"field": f"cards[{i}]", "code": "conflict",
                                  "message": f"card {number} is enrolled for tenant {owner!r}"})  # fmt: skip
    verdicts: list[PhotoVerdictOut] = []
    results = []
    if photos and not problems:
        items = [(p.filename or "photo", await p.read(MAX_PHOTO_BYTES + 1)) for p in photos]
        ctx = request.app.state.ctx
        results = await ctx.photos.assess(items, ctx.cfg.recognition)  # in a worker process
        verdicts = [PhotoVerdictOut(name=r.name, ok=r.verdict.ok, reason=r.verdict.reason, detail=r.verdict.detail)
                    for r in results]  # fmt: skip
        problems += [{"field": f"photos[{i}]", "code": v.reason, "message": v.detail}
                     for i, v in enumerate(verdicts) if not v.ok]  # fmt: skip
    if problems or conflicts:
        status, code = (409, "conflict") if conflicts and not problems else (422, "invalid_request")
        raise ApiError(status, code, "nothing was stored: every problem is listed",
                       {"problems": problems + conflicts, "verdicts": [v.model_dump() for v in verdicts]})  # fmt: skip
    assert new is not None
    with session_of(request) as s, s.begin():
        try:
            t = add_tenant(s, NewTenant(new.id, new.name, new.permit_number, new.valid_to, new.valid_from, new.room))
            for number in numbers:
                add_card(s, new.id, number)
            stored = enrol_faces(s, new.id, results, caller.name) if results else 0
        except (RosterError, IntegrityError) as exc:  # someone enrolled the same id, permit or card meanwhile
            raise ApiError(409, "conflict", f"nothing was stored: {exc}") from None
        audit(s, caller.name, "tenant.enrol", {"tenant_id": new.id, "cards": numbers, "templates": stored},
              route="POST /enrolments")  # fmt: skip
        send_up(s, request, new.id, "tenant.enrol", caller)
        return tenant_out(s, t)

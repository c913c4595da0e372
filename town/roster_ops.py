"""The register's rows as the wire operations of DESIGN §6.1, and a gateway's whole slice.

Operation shapes (what `gateway.store.roster_sync.parse_op` takes):

    {"op": "upsert", "kind": "tenant", "id", "name", "permit", "valid_from", "valid_to", "room", "status"}
    {"op": "upsert", "kind": "card", "number", "tenant"}
    {"op": "upsert", "kind": "template", "id", "tenant", "vector": base64 of 128 LE float32
                                         [, "quality", "photo_sha256"]: when the town knows them}
    {"op": "upsert", "kind": "watch", "id", "name", "note", "vectors": [base64, …]}
    {"op": "delete", "kind": "tenant" | "template" | "watch", "id"}   {"op": "delete", "kind": "card", "number"}

A template's quality and photo hash travel when known (the gateway's parser takes them): a building's own
enrolment, echoed back, keeps them instead of being overwritten with none.
"""

from __future__ import annotations

import base64
from collections import defaultdict
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from town.store.models import TownCard, TownTemplate, TownTenant, WatchEntry, WatchVector

Op = dict[str, Any]


def b64(vector: bytes) -> str:
    return base64.b64encode(bytes(vector)).decode("ascii")


def _day(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


def tenant_op(t: TownTenant) -> Op:
    return {
        "op": "upsert",
        "kind": "tenant",
        "id": t.id,
        "name": t.name,
        "permit": t.permit_number,
        "valid_from": _day(t.valid_from),
        "valid_to": _day(t.valid_to),
        "room": t.room,
        "status": t.status,
    }


def card_op(number: int, tenant_id: str) -> Op:
    return {"op": "upsert", "kind": "card", "number": int(number), "tenant": tenant_id}


def template_op(t: TownTemplate) -> Op:
    op: Op = {"op": "upsert", "kind": "template", "id": t.id, "tenant": t.tenant_id, "vector": b64(t.vector)}
    if t.quality is not None:
        op["quality"] = float(t.quality)
    if t.photo_sha256:
        op["photo_sha256"] = t.photo_sha256
    return op


def watch_op(entry: WatchEntry, vectors: list[bytes]) -> Op:
    return {"op": "upsert", "kind": "watch", "id": entry.id, "name": entry.name, "note": entry.note or "",
            "vectors": [b64(v) for v in vectors]}  # fmt: skip


def delete_op(kind: str, key: str | int) -> Op:
    if kind == "card":
        return {"op": "delete", "kind": "card", "number": int(key)}
    return {"op": "delete", "kind": kind, "id": str(key)}


def tenant_ops(session: Session, tenant: TownTenant) -> list[Op]:
    """A tenant's whole record: the tenant, then its cards, then its templates."""
    cards = session.scalars(select(TownCard.number).where(TownCard.tenant_id == tenant.id).order_by(TownCard.number))
    templates = session.scalars(select(TownTemplate).where(TownTemplate.tenant_id == tenant.id)
                                .order_by(TownTemplate.id))  # fmt: skip
    return [tenant_op(tenant), *(card_op(n, tenant.id) for n in cards), *(template_op(t) for t in templates)]


def watch_ops(session: Session) -> list[Op]:
    """The whole watch list as upserts (every gateway holds all of it)."""
    vectors: dict[str, list[bytes]] = defaultdict(list)
    for watch_id, vector in session.execute(select(WatchVector.watch_id, WatchVector.vector).order_by(WatchVector.id)):
        vectors[watch_id].append(bytes(vector))
    entries = session.scalars(select(WatchEntry).order_by(WatchEntry.id))
    return [watch_op(e, vectors.get(e.id, [])) for e in entries]


def slice_ops(session: Session, gateway_id: str) -> list[Op]:
    """A gateway's whole slice as upserts (a snapshot): its tenants, their cards, their templates, the watch list.

    Tenants come first (a snapshot's cards and templates must name tenants it holds)."""
    tenants = session.scalars(select(TownTenant).where(TownTenant.gateway_id == gateway_id).order_by(TownTenant.id))
    ops = [tenant_op(t) for t in tenants]
    cards = session.execute(
        select(TownCard.number, TownCard.tenant_id).join(TownTenant, TownTenant.id == TownCard.tenant_id)
        .where(TownTenant.gateway_id == gateway_id).order_by(TownCard.number)
    )  # fmt: skip
    ops += [card_op(n, tid) for n, tid in cards]
    templates = session.scalars(
        select(TownTemplate).join(TownTenant, TownTenant.id == TownTemplate.tenant_id)
        .where(TownTenant.gateway_id == gateway_id).order_by(TownTemplate.id)
    )  # fmt: skip
    ops += [template_op(t) for t in templates]
    return ops + watch_ops(session)

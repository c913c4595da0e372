"""The town's register of record (DESIGN §6.1, §6.3): tenants, cards, face templates and the watch list.

Every function takes the caller's Session (one transaction: the caller commits) and the actor (a town
user's name, or `gateway:<id>` for a change merged from a building). Each change, in that transaction:

- is checked with the gateway's own operation parser (`gateway.store.roster_sync.parse_op`), so the town
  never logs an operation that a gateway would refuse as `malformed`;
- appends its wire operations (`town.roster_ops`) to the roster log of every gateway concerned (the
  tenant's building; for the watch list, every known gateway) as that gateway's next version, and raises
  `Gateway.target_version` (a building new to the town gets its row; its first version also carries the
  whole watch list);
- writes an audit row (`gateway.store.audit.audit`, the town's audit_log table).

After the commit the pusher sends the new versions (`Pusher.wake()`; with the pusher's listener on the
sessionmaker that happens by itself: `session.info[ROSTER_CHANGED]`).

Errors are `RegisterError` with a `code`: `invalid`, `not_found` or `conflict`, and a message for people.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import Table, delete, insert, select, update
from sqlalchemy.orm import Session
from ulid import ULID

from gateway.store.audit import audit
from gateway.store.roster_sync import RosterSyncError, parse_op
from town.roster_ops import Op, delete_op, template_op, tenant_op, tenant_ops, watch_op, watch_ops
from town.store.models import (
    Gateway,
    RosterLogEntry,
    TownCard,
    TownTemplate,
    TownTenant,
    WatchEntry,
    WatchVector,
)

if TYPE_CHECKING:
    from config.models import RecognitionConfig
    from gateway.enrolment import PhotoResult

ROSTER_CHANGED = "town.roster_changed"  # session.info: this transaction appended roster versions
GATEWAY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")  # as config.models.GatewayConfig.gateway_id
STATUSES = ("active", "suspended", "revoked")
STATUS_ACTIONS = {"active": "tenant.activate", "suspended": "tenant.suspend", "revoked": "tenant.revoke"}
TENANT_FIELDS = ("gateway_id", "name", "permit", "valid_from", "valid_to", "room", "status")
MAX_CARD = 0xFFFFFFFF
VECTOR_BYTES = 512
MAX_ID = 32  # template and watch ids (F/W + ULID is 27)
_IN_BATCH = 500  # gateway ids per IN (…) list


class RegisterError(ValueError):
    """A register change that cannot be made; nothing was changed. `code`: invalid / not_found / conflict."""

    def __init__(self, message: str, code: str = "invalid") -> None:
        super().__init__(message)
        self.code = code


# --- checks ---------------------------------------------------------------------------------------------
def _check(op: Op, where: str) -> Op:
    try:
        parse_op(op, where)
    except RosterSyncError as exc:
        raise RegisterError(str(exc)) from None
    return op


def _gateway_id(value: Any) -> str:
    if not isinstance(value, str) or not GATEWAY_ID.fullmatch(value):
        raise RegisterError(f"gateway id {str(value)[:70]!r} must be 1-64 letters, digits, '_' or '-'")
    return value


def _as_date(value: Any, what: str) -> date | None:
    if value is None or isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise RegisterError(f"{what} {str(value)[:40]!r} is not a date YYYY-MM-DD") from None


def _card_number(number: Any) -> int:
    if not isinstance(number, int) or isinstance(number, bool) or not 0 <= number <= MAX_CARD:
        raise RegisterError(f"card number {number!r} must be an integer of at most 32 bits")
    return number


def as_vector(value: Any) -> bytes:
    """128 little-endian float32 from bytes (512), base64 text, or a sequence / array of 128 numbers."""
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
    elif isinstance(value, str):
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise RegisterError("a vector given as text must be base64") from None
    else:
        arr = np.asarray(value, dtype=np.float64)
        if arr.shape != (128,):
            raise RegisterError(f"a face vector has 128 numbers, not shape {arr.shape}")
        raw = arr.astype("<f4").tobytes()
    if len(raw) != VECTOR_BYTES:
        raise RegisterError(f"a face vector is {VECTOR_BYTES} bytes (128 float32), not {len(raw)}")
    if not np.isfinite(np.frombuffer(raw, dtype="<f4")).all():
        raise RegisterError("a face vector holds NaN or infinity")
    return raw


def new_template_id() -> str:
    return f"F{ULID()}"


def new_watch_id() -> str:
    return f"W{ULID()}"


def _now() -> datetime:
    return datetime.now(UTC)


def get_tenant(session: Session, tenant_id: str) -> TownTenant:
    tenant = session.get(TownTenant, tenant_id)
    if tenant is None:
        raise RegisterError(f"no tenant {tenant_id!r}", "not_found")
    return tenant


def _touch(tenant: TownTenant, actor: str) -> None:
    tenant.updated_at = _now()
    tenant.updated_by = actor[:64]


# --- the roster log ---------------------------------------------------------------------------------------
def _batches(items: list[str]) -> Iterable[list[str]]:
    for i in range(0, len(items), _IN_BATCH):
        yield items[i : i + _IN_BATCH]


def _insert_ignore(session: Session, table: Table, rows: list[dict[str, Any]], key: str) -> None:
    """INSERT … ON CONFLICT DO NOTHING on PostgreSQL and SQLite."""
    if not rows:
        return
    name = session.get_bind().dialect.name
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    session.execute(dialect_insert(table).on_conflict_do_nothing(index_elements=[key]), rows)


def ensure_gateways(session: Session, gateway_ids: Iterable[str]) -> None:
    """A row for each building (new ones at versions 0/0: their first version carries the watch list)."""
    ids = sorted({_gateway_id(g) for g in gateway_ids})
    for batch in _batches(ids):
        known = set(session.scalars(select(Gateway.gateway_id).where(Gateway.gateway_id.in_(batch))))
        _insert_ignore(session, Gateway.__table__, [{"gateway_id": g} for g in batch if g not in known], "gateway_id")


def known_gateways(session: Session) -> list[str]:
    return list(session.scalars(select(Gateway.gateway_id).order_by(Gateway.gateway_id)))


def append_versions(session: Session, changes: dict[str, list[Op]]) -> dict[str, int]:
    """Append each gateway's operations as its next version, in this transaction; {gateway: new version}.

    Gateway rows are locked in id order (FOR UPDATE on PostgreSQL), so concurrent changes queue rather than
    both taking the same version. A gateway still at target version 0 gets the whole watch list first."""
    if not changes:
        return {}
    session.flush()
    ids = sorted(changes)
    ensure_gateways(session, ids)
    table = Gateway.__table__
    now = _now()
    watch: list[Op] | None = None
    versions: dict[str, int] = {}
    for batch in _batches(ids):
        rows = session.execute(select(table.c.gateway_id, table.c.target_version).where(table.c.gateway_id.in_(batch))
                               .order_by(table.c.gateway_id).with_for_update()).all()  # fmt: skip
        log = []
        for gateway_id, target in rows:
            ops = changes[gateway_id]
            if not target:
                watch = watch_ops(session) if watch is None else watch
                ops = [*watch, *ops]
            versions[gateway_id] = int(target or 0) + 1
            log.append({"gateway_id": gateway_id, "version": versions[gateway_id], "ts": now, "ops": ops})
        session.execute(insert(RosterLogEntry), log)
        session.execute(update(table).where(table.c.gateway_id.in_(batch))
                        .values(target_version=table.c.target_version + 1))  # fmt: skip
    session.info[ROSTER_CHANGED] = True
    return versions


def initialize_gateways(session: Session, gateway_ids: Iterable[str]) -> dict[str, int]:
    """Buildings the town has a row for but never gave a version (target 0): version 1 = the watch list.

    Returns {gateway: 1} for those it initialized (not those another instance or a register change got first)."""
    ids = sorted(set(gateway_ids))
    ensure_gateways(session, ids)
    table = Gateway.__table__
    fresh: list[str] = []
    for batch in _batches(ids):
        query = select(table.c.gateway_id).where(table.c.gateway_id.in_(batch), table.c.target_version == 0)
        fresh += session.scalars(query.order_by(table.c.gateway_id).with_for_update())
    return append_versions(session, {g: [] for g in fresh})


def initialize_gateway(session: Session, gateway_id: str) -> int | None:
    """initialize_gateways for one: its new version, or None if it already had one."""
    return initialize_gateways(session, [gateway_id]).get(gateway_id)


# --- tenants ----------------------------------------------------------------------------------------------
def _tenant_wire(tid: str, name: Any, permit: Any, valid_from: date | None, valid_to: date | None, room: Any,
                 status: Any) -> Op:  # fmt: skip
    if valid_to is None:
        raise RegisterError("valid_to is required")
    op = {"op": "upsert", "kind": "tenant", "id": tid, "name": name, "permit": permit,
          "valid_from": valid_from.isoformat() if valid_from else None, "valid_to": valid_to.isoformat(),
          "room": room, "status": status}  # fmt: skip
    return _check(op, f"tenant {str(tid)[:64]!r}")


def _permit_holder(session: Session, permit: str, other_than: str) -> str | None:
    return session.scalar(select(TownTenant.id).where(TownTenant.permit_number == permit, TownTenant.id != other_than))


def add_tenant(
    session: Session, actor: str, *, gateway_id: str, id: str, name: str, permit: str, valid_to: date | str,
    valid_from: date | str | None = None, room: str | None = None, status: str = "active", route: str | None = None,
) -> TownTenant:  # fmt: skip
    """Enrol a tenant at a building (`gateway_id`); pushed to that building."""
    _gateway_id(gateway_id)
    if not isinstance(id, str) or len(id) > 64:
        raise RegisterError("tenant id must be 1-64 characters")
    vf, vt = _as_date(valid_from, "valid_from"), _as_date(valid_to, "valid_to")
    op = _tenant_wire(id, name, permit, vf, vt, room, status)
    if session.get(TownTenant, id) is not None:
        raise RegisterError(f"tenant {id!r} already exists", "conflict")
    if holder := _permit_holder(session, permit, id):
        raise RegisterError(f"permit number {permit!r} belongs to tenant {holder!r}", "conflict")
    tenant = TownTenant(
        id=id,
        gateway_id=gateway_id,
        name=name,
        permit_number=permit,
        valid_from=vf,
        valid_to=vt,
        room=room,
        status=status,
        created_at=_now(),
        updated_at=_now(),
        updated_by=actor[:64],
    )
    session.add(tenant)
    append_versions(session, {gateway_id: [op]})
    audit(session, actor, "tenant.create", {"tenant_id": id, "gateway_id": gateway_id}, route=route)
    return tenant


def update_tenant(session: Session, actor: str, tenant_id: str, *, route: str | None = None,
                  reason: str | None = None, **changes: Any) -> TownTenant:  # fmt: skip
    """Change any of gateway_id, name, permit, valid_from, valid_to, room, status.

    A new `gateway_id` moves the tenant: the old building gets a delete (its cards and templates go with it),
    the new one the whole record."""
    if unknown := set(changes) - set(TENANT_FIELDS):
        raise RegisterError(f"unknown field(s): {', '.join(sorted(unknown))}")
    tenant = get_tenant(session, tenant_id)
    for key in ("gateway_id", "name", "permit", "valid_to", "status"):
        if key in changes and changes[key] is None:
            raise RegisterError(f"{key} cannot be null")
    new = {
        "gateway_id": tenant.gateway_id,
        "name": tenant.name,
        "permit": tenant.permit_number,
        "valid_from": tenant.valid_from,
        "valid_to": tenant.valid_to,
        "room": tenant.room,
        "status": tenant.status,
    }
    new.update(changes)
    new["valid_from"] = _as_date(new["valid_from"], "valid_from")
    new["valid_to"] = _as_date(new["valid_to"], "valid_to")
    _gateway_id(new["gateway_id"])
    _tenant_wire(tenant_id, new["name"], new["permit"], new["valid_from"], new["valid_to"], new["room"], new["status"])
    if holder := _permit_holder(session, new["permit"], tenant_id):
        raise RegisterError(f"permit number {new['permit']!r} belongs to tenant {holder!r}", "conflict")
    old_gateway = tenant.gateway_id
    tenant.gateway_id, tenant.name, tenant.permit_number = new["gateway_id"], new["name"], new["permit"]
    tenant.valid_from, tenant.valid_to, tenant.room, tenant.status = (new["valid_from"], new["valid_to"], new["room"],
                                                                      new["status"])  # fmt: skip
    _touch(tenant, actor)
    session.flush()
    details: dict[str, Any] = {"tenant_id": tenant_id, "fields": sorted(changes)}
    if tenant.gateway_id != old_gateway:
        append_versions(session, {old_gateway: [delete_op("tenant", tenant_id)],
                                  tenant.gateway_id: tenant_ops(session, tenant)})  # fmt: skip
        details |= {"from_gateway": old_gateway, "to_gateway": tenant.gateway_id}
    else:
        append_versions(session, {tenant.gateway_id: [tenant_op(tenant)]})
    if reason:
        details["reason"] = reason
    audit(session, actor, "tenant.update", details, route=route)
    return tenant


def set_status(session: Session, actor: str, tenant_id: str, status: str, *, reason: str | None = None,
               route: str | None = None) -> TownTenant:  # fmt: skip
    """active / suspended / revoked, audited as tenant.activate / tenant.suspend / tenant.revoke."""
    if status not in STATUSES:
        raise RegisterError(f"status must be one of {', '.join(STATUSES)}")
    tenant = get_tenant(session, tenant_id)
    tenant.status = status
    _touch(tenant, actor)
    session.flush()
    append_versions(session, {tenant.gateway_id: [tenant_op(tenant)]})
    details: dict[str, Any] = {"tenant_id": tenant_id, "gateway_id": tenant.gateway_id}
    audit(session, actor, STATUS_ACTIONS[status], details | ({"reason": reason} if reason else {}), route=route)
    return tenant


def _drop_tenant_rows(session: Session, tenant_id: str) -> None:
    session.execute(delete(TownCard).where(TownCard.tenant_id == tenant_id))
    session.execute(delete(TownTemplate).where(TownTemplate.tenant_id == tenant_id))
    session.execute(delete(TownTenant).where(TownTenant.id == tenant_id))
    session.expire_all()


def delete_tenant(session: Session, actor: str, tenant_id: str, *, reason: str | None = None,
                  route: str | None = None) -> None:  # fmt: skip
    """The tenant, its cards and templates leave the register and its building; its entries stay."""
    tenant = get_tenant(session, tenant_id)
    gateway_id = tenant.gateway_id
    _drop_tenant_rows(session, tenant_id)
    append_versions(session, {gateway_id: [delete_op("tenant", tenant_id)]})
    details: dict[str, Any] = {"tenant_id": tenant_id, "gateway_id": gateway_id}
    audit(session, actor, "tenant.delete", details | ({"reason": reason} if reason else {}), route=route)


# --- cards --------------------------------------------------------------------------------------------------
def add_card(session: Session, actor: str, tenant_id: str, number: int, *, route: str | None = None) -> TownCard:
    """Bind a card; a card number belongs to one tenant town-wide."""
    _card_number(number)
    tenant = get_tenant(session, tenant_id)
    card = session.get(TownCard, number)
    if card is not None:
        if card.tenant_id != tenant_id:
            raise RegisterError(f"card {number} belongs to tenant {card.tenant_id!r}", "conflict")
        raise RegisterError(f"card {number} is already bound to tenant {tenant_id!r}", "conflict")
    card = TownCard(number=number, tenant_id=tenant_id)
    session.add(card)
    _touch(tenant, actor)
    append_versions(session, {tenant.gateway_id: [{"op": "upsert", "kind": "card", "number": number,
                                                   "tenant": tenant_id}]})  # fmt: skip
    audit(session, actor, "card.bind", {"tenant_id": tenant_id, "card": number}, route=route)
    return card


def remove_card(session: Session, actor: str, number: int, *, route: str | None = None) -> str:
    """Unbind a card; returns the tenant it belonged to."""
    _card_number(number)
    card = session.get(TownCard, number)
    if card is None:
        raise RegisterError(f"no card {number}", "not_found")
    tenant = get_tenant(session, card.tenant_id)
    session.delete(card)
    _touch(tenant, actor)
    append_versions(session, {tenant.gateway_id: [delete_op("card", number)]})
    audit(session, actor, "card.unbind", {"tenant_id": tenant.id, "card": number}, route=route)
    return tenant.id


# --- face templates ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NewTemplate:
    """A template to store: 128 float32 (bytes, base64 or numbers), with its quality and photo hash if known."""

    vector: Any
    quality: float | None = None
    photo_sha256: str | None = None
    id: str | None = None


def add_templates(session: Session, actor: str, tenant_id: str, templates: Sequence[NewTemplate | Any], *,
                  replace: bool = False, route: str | None = None) -> list[str]:  # fmt: skip
    """Store templates (a NewTemplate, or just a vector each); with `replace`, the tenant's others go.

    Returns the new template ids (F + ULID: the same id at the building)."""
    tenant = get_tenant(session, tenant_id)
    rows: list[TownTemplate] = []
    for item in templates:
        t = item if isinstance(item, NewTemplate) else NewTemplate(item)
        tid = t.id or new_template_id()
        if len(tid) > MAX_ID:
            raise RegisterError(f"template id {tid[:40]!r} is longer than {MAX_ID} characters")
        row = TownTemplate(id=tid, tenant_id=tenant_id, vector=as_vector(t.vector), quality=t.quality,
                           photo_sha256=t.photo_sha256 or None, created_at=_now())  # fmt: skip
        _check(template_op(row), f"template {tid!r}")
        if session.get(TownTemplate, tid) is not None:
            raise RegisterError(f"template {tid!r} already exists", "conflict")
        rows.append(row)
    if not rows:
        raise RegisterError("no templates given")
    ops: list[Op] = []
    removed = 0
    if replace:
        old = list(session.scalars(select(TownTemplate.id).where(TownTemplate.tenant_id == tenant_id)))
        session.execute(delete(TownTemplate).where(TownTemplate.tenant_id == tenant_id))
        ops += [delete_op("template", tid) for tid in old]
        removed = len(old)
    session.add_all(rows)
    ops += [template_op(r) for r in rows]
    _touch(tenant, actor)
    append_versions(session, {tenant.gateway_id: ops})
    ids = [r.id for r in rows]
    if replace:
        audit(session, actor, "face.replace", {"tenant_id": tenant_id, "templates": len(ids), "removed": removed},
              route=route)  # fmt: skip
    else:
        audit(session, actor, "face.enrol", {"tenant_id": tenant_id, "templates": len(ids)}, route=route)
    return ids


def delete_templates(session: Session, actor: str, tenant_id: str, ids: Sequence[str] | None = None, *,
                     route: str | None = None) -> int:  # fmt: skip
    """Delete the tenant's templates (all, or those of `ids`); returns how many went."""
    tenant = get_tenant(session, tenant_id)
    query = select(TownTemplate.id).where(TownTemplate.tenant_id == tenant_id)
    if ids is not None:
        query = query.where(TownTemplate.id.in_(list(ids)))
    gone = list(session.scalars(query))
    if ids is not None and (missing := set(ids) - set(gone)):
        raise RegisterError(f"tenant {tenant_id!r} has no template {sorted(missing)[0]!r}", "not_found")
    if gone:
        session.execute(delete(TownTemplate).where(TownTemplate.id.in_(gone)))
        _touch(tenant, actor)
        append_versions(session, {tenant.gateway_id: [delete_op("template", tid) for tid in gone]})
    audit(session, actor, "face.delete", {"tenant_id": tenant_id, "templates": len(gone)}, route=route)
    return len(gone)


def assess_photos(photos: Sequence[tuple[str, bytes]], cfg: RecognitionConfig) -> list[PhotoResult]:
    """Check and encode enrolment photos exactly as a gateway does (gateway.enrolment.assess_photos, with the
    same landmarks / jitters / mirror settings: give the town the gateways' `recognition` settings).

    Seconds of CPU per photo: call it before opening the transaction that stores the templates."""
    from gateway.enrolment import EnrolmentError
    from gateway.enrolment import assess_photos as assess

    try:
        return assess(photos, cfg)
    except EnrolmentError as exc:
        raise RegisterError(str(exc)) from None


def enrol_assessed(session: Session, actor: str, tenant_id: str, results: Sequence[PhotoResult], *,
                   replace: bool = False, route: str | None = None) -> list[str]:  # fmt: skip
    """Store the templates of assessed photos if every photo passed (all or nothing); their ids, or []."""
    get_tenant(session, tenant_id)
    if not results or not all(r.verdict.ok and r.verdict.encoding is not None for r in results):
        return []
    templates = [NewTemplate(np.asarray(r.verdict.encoding, dtype="<f4").tobytes(), r.verdict.quality,
                             r.verdict.sha256) for r in results]  # fmt: skip
    return add_templates(session, actor, tenant_id, templates, replace=replace, route=route)


@dataclass
class Enrolment:
    results: list[PhotoResult] = field(default_factory=list)
    template_ids: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.template_ids)


def enrol_photos(session: Session, actor: str, tenant_id: str, photos: Sequence[tuple[str, bytes]],
                 cfg: RecognitionConfig, *, replace: bool = False, route: str | None = None) -> Enrolment:  # fmt: skip
    """Assess 1-5 photos (name, bytes) and store their templates if all pass; the verdicts either way."""
    get_tenant(session, tenant_id)
    results = assess_photos(photos, cfg)
    return Enrolment(results, enrol_assessed(session, actor, tenant_id, results, replace=replace, route=route))


# --- the watch list ---------------------------------------------------------------------------------------
def _watch_vectors(session: Session, vectors: Sequence[Any] | None, tenant_id: str | None) -> list[bytes]:
    if vectors:
        return [as_vector(v) for v in vectors]
    if tenant_id is not None:  # a tenant put on the watch list with the faces the register holds
        return [bytes(v) for v in session.scalars(select(TownTemplate.vector).where(TownTemplate.tenant_id == tenant_id)
                                                  .order_by(TownTemplate.id))]  # fmt: skip
    return []


def _push_watch(session: Session, op: Op) -> None:
    gateways = known_gateways(session)
    if gateways:
        append_versions(session, {g: [op] for g in gateways})


def add_watch(
    session: Session,
    actor: str,
    *,
    name: str,
    note: str | None = None,
    vectors: Sequence[Any] = (),
    tenant_id: str | None = None,
    reason: str | None = None,
    route: str | None = None,
) -> WatchEntry:
    """A person of interest, pushed to every gateway. With `tenant_id` and no vectors: that tenant's templates."""
    if tenant_id is not None:
        get_tenant(session, tenant_id)
    raw = _watch_vectors(session, vectors, tenant_id)
    entry = WatchEntry(id=new_watch_id(), name=name, note=note, tenant_id=tenant_id, created_by=actor[:64],
                       created_at=_now())  # fmt: skip
    op = _check(watch_op(entry, raw), "watch entry")
    session.add(entry)
    session.flush()
    session.add_all([WatchVector(watch_id=entry.id, vector=v) for v in raw])
    _push_watch(session, op)
    details: dict[str, Any] = {"watch_id": entry.id, "name": name, "vectors": len(raw), "tenant_id": tenant_id}
    audit(session, actor, "watch.add", details | ({"reason": reason} if reason else {}), route=route)
    return entry


def update_watch(session: Session, actor: str, watch_id: str, *, name: str | None = None, note: str | None = None,
                 vectors: Sequence[Any] | None = None, reason: str | None = None,
                 route: str | None = None) -> WatchEntry:  # fmt: skip
    """Change a watch entry's name, note or vectors (given: replaced)."""
    entry = session.get(WatchEntry, watch_id)
    if entry is None:
        raise RegisterError(f"no watch-list entry {watch_id!r}", "not_found")
    if vectors is not None:
        raw = [as_vector(v) for v in vectors]
    else:
        raw = [bytes(v) for v in session.scalars(select(WatchVector.vector).where(WatchVector.watch_id == watch_id)
                                                 .order_by(WatchVector.id))]  # fmt: skip
    entry.name = name if name is not None else entry.name
    entry.note = note if note is not None else entry.note
    op = _check(watch_op(entry, raw), "watch entry")
    if vectors is not None:
        session.execute(delete(WatchVector).where(WatchVector.watch_id == watch_id))
        session.add_all([WatchVector(watch_id=watch_id, vector=v) for v in raw])
    _push_watch(session, op)
    fields = [k for k, v in (("name", name), ("note", note), ("vectors", vectors)) if v is not None]
    details: dict[str, Any] = {"watch_id": watch_id, "fields": fields}
    audit(session, actor, "watch.update", details | ({"reason": reason} if reason else {}), route=route)
    return entry


def remove_watch(session: Session, actor: str, watch_id: str, *, reason: str | None = None,
                 route: str | None = None) -> None:  # fmt: skip
    entry = session.get(WatchEntry, watch_id)
    if entry is None:
        raise RegisterError(f"no watch-list entry {watch_id!r}", "not_found")
    name = entry.name
    session.execute(delete(WatchVector).where(WatchVector.watch_id == watch_id))
    session.execute(delete(WatchEntry).where(WatchEntry.id == watch_id))
    session.expire_all()
    _push_watch(session, delete_op("watch", watch_id))
    details: dict[str, Any] = {"watch_id": watch_id, "name": name}
    audit(session, actor, "watch.remove", details | ({"reason": reason} if reason else {}), route=route)


# --- changes made at a building ---------------------------------------------------------------------------
def _event_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or len(value) > 40:
        return None
    try:
        ts = datetime.fromisoformat(value)
    except ValueError:
        return None
    return ts if ts.tzinfo is not None else None


def _town_is_later(tenant: TownTenant, event_ts: datetime | None) -> bool:
    """The platform's later version wins: a town user changed the tenant after the building did."""
    by = tenant.updated_by or ""
    if by.startswith("gateway:") or event_ts is None or tenant.updated_at is None:
        return False
    return tenant.updated_at > event_ts


def _town_view(session: Session, gateway_id: str, tenant_id: str) -> list[Op]:
    """What `gateway_id` should hold of `tenant_id` by the register: its record, or its deletion."""
    tenant = session.get(TownTenant, tenant_id)
    if tenant is not None and tenant.gateway_id == gateway_id:
        return tenant_ops(session, tenant)
    return [delete_op("tenant", tenant_id)]


@dataclass
class _Record:
    tenant: Op
    cards: list[int]
    templates: list[Op]


def _parse_record(record: Any, tenant_id: str) -> _Record:
    """The building's tenant record (gateway.store.roster_events.tenant_record), checked like a patch."""
    if not isinstance(record, dict):
        raise RegisterError("`tenant` must be an object or null")
    if record.get("id") != tenant_id:
        raise RegisterError("`tenant.id` is not the event's tenant_id")
    op = {"op": "upsert", "kind": "tenant", **{k: record.get(k) for k in
          ("id", "name", "permit", "valid_from", "valid_to", "room", "status")}}  # fmt: skip
    _check(op, f"tenant {tenant_id!r}")
    cards = record.get("cards") or []
    templates = record.get("templates") or []
    if not isinstance(cards, list) or not isinstance(templates, list) or len(cards) > 1000 or len(templates) > 1000:
        raise RegisterError("`cards` and `templates` must be lists (at most 1000)")
    numbers = [_card_number(n) for n in cards]
    tops = []
    for t in templates:
        if not isinstance(t, dict):
            raise RegisterError("a template must be an object")
        top = {"op": "upsert", "kind": "template", "id": t.get("id"), "tenant": tenant_id, "vector": t.get("vector")}
        if t.get("quality") is not None:
            top["quality"] = t["quality"]
        if t.get("photo_sha256"):
            top["photo_sha256"] = t["photo_sha256"]
        _check(top, f"template {str(t.get('id'))[:40]!r}")
        if len(top["id"]) > MAX_ID:
            raise RegisterError(f"template id {top['id'][:40]!r} is longer than {MAX_ID} characters")
        tops.append(top)
    return _Record(op, numbers, tops)


def merge_roster_event(session: Session, gateway_id: str, payload: dict[str, Any]) -> str:
    """Merge a change made at a building (`…/events/roster`, gateway.store.roster_events) into the register.

    The building's record replaces the town's for that tenant (cards and templates included), and the town's
    resulting view is appended to that gateway's log: the echo, sent back in its next patch. Where they
    disagree the platform wins: a tenant a town user changed after the event, a tenant id or permit number
    the town gives to another person, a card or template of another tenant — kept as the town has them, and
    the echo sets the building right. A tenant of the same permit number enrolled at another building moves
    here (the old building gets a delete). Never raises for the payload's content (a refusal is audited):
    returns what was done: applied / moved / deleted / kept / refused / ignored.
    """
    actor = f"gateway:{gateway_id}"[:64]
    _gateway_id(gateway_id)
    tenant_id = payload.get("tenant_id")
    details: dict[str, Any] = {"event_id": str(payload.get("id"))[:40], "change": str(payload.get("change"))[:40],
                               "tenant_id": str(tenant_id)[:64], "gateway_id": gateway_id}  # fmt: skip

    def done(result: str, echo: list[Op] | None = None, also: dict[str, list[Op]] | None = None, **more: Any) -> str:
        if echo is not None:
            append_versions(session, {**(also or {}), gateway_id: echo})  # one call: rows locked in id order
        audit(session, actor, "roster.merge", {**details, "result": result, **more}, route="mqtt events/roster")
        return result

    if not isinstance(tenant_id, str) or not 1 <= len(tenant_id) <= 64:
        return done("refused", reason="no valid tenant_id")
    event_ts = _event_time(payload.get("ts"))
    town = session.get(TownTenant, tenant_id)
    record = payload.get("tenant")
    if record is None:  # deleted at the building
        if town is None:
            return done("ignored", reason="not in the register")
        if town.gateway_id != gateway_id:
            return done("ignored", reason=f"the tenant belongs to {town.gateway_id}")
        if _town_is_later(town, event_ts):
            return done("kept", _town_view(session, gateway_id, tenant_id), reason="changed at the town later")
        _drop_tenant_rows(session, tenant_id)
        return done("deleted", [delete_op("tenant", tenant_id)])
    try:
        parsed = _parse_record(record, tenant_id)
    except RegisterError as exc:
        return done("refused", reason=str(exc)[:300])
    permit = parsed.tenant["permit"]
    if town is not None and town.gateway_id != gateway_id and town.permit_number != permit:
        return done("refused", _town_view(session, gateway_id, tenant_id),
                    reason=f"tenant id in use at {town.gateway_id} for another permit number")  # fmt: skip
    if holder := _permit_holder(session, permit, tenant_id):
        return done("refused", _town_view(session, gateway_id, tenant_id),
                    reason=f"permit number belongs to tenant {holder}")  # fmt: skip
    if town is not None and _town_is_later(town, event_ts):
        return done("kept", _town_view(session, gateway_id, tenant_id), reason="changed at the town later")

    echo: list[Op] = []
    refused: dict[str, list[Any]] = {"cards": [], "templates": []}
    moved_from = None
    vf, vt = _as_date(parsed.tenant["valid_from"], "valid_from"), _as_date(parsed.tenant["valid_to"], "valid_to")
    if town is None:
        town = TownTenant(id=tenant_id, gateway_id=gateway_id, created_at=_now())
        session.add(town)
    elif town.gateway_id != gateway_id:
        moved_from = town.gateway_id
    town.gateway_id, town.name, town.permit_number = gateway_id, parsed.tenant["name"], permit
    town.valid_from, town.valid_to, town.room, town.status = vf, vt, parsed.tenant["room"], parsed.tenant["status"]
    _touch(town, actor)
    session.flush()

    # Cards: the building's set replaces the town's; a card of another tenant stays theirs.
    held = set(session.scalars(select(TownCard.number).where(TownCard.tenant_id == tenant_id)))
    wanted = set(parsed.cards)
    for number in sorted(held - wanted):
        session.execute(delete(TownCard).where(TownCard.number == number))
        echo.append(delete_op("card", number))
    for number in sorted(wanted - held):
        other = session.get(TownCard, number)
        if other is None:
            session.add(TownCard(number=number, tenant_id=tenant_id))
            continue
        refused["cards"].append(number)
        owner = session.get(TownTenant, other.tenant_id)
        if owner is not None and owner.gateway_id == gateway_id:
            echo.append({"op": "upsert", "kind": "card", "number": number, "tenant": owner.id})
        else:
            echo.append(delete_op("card", number))
    # Templates: likewise, by their town-wide ids.
    have = {t.id: t for t in session.scalars(select(TownTemplate).where(TownTemplate.tenant_id == tenant_id))}
    given = {t["id"]: t for t in parsed.templates}
    for tid in sorted(set(have) - set(given)):
        session.delete(have[tid])
        echo.append(delete_op("template", tid))
    for tid, t in given.items():
        vector, quality, sha = base64.b64decode(t["vector"]), t.get("quality"), t.get("photo_sha256")
        if tid in have:
            row = have[tid]
            row.vector, row.quality, row.photo_sha256 = vector, quality, sha
            continue
        other_t = session.get(TownTemplate, tid)
        if other_t is not None:
            refused["templates"].append(tid)
            owner = session.get(TownTenant, other_t.tenant_id)
            echo.append(template_op(other_t) if owner is not None and owner.gateway_id == gateway_id
                        else delete_op("template", tid))  # fmt: skip
            continue
        session.add(TownTemplate(id=tid, tenant_id=tenant_id, vector=vector, quality=quality, photo_sha256=sha,
                                 created_at=_now()))  # fmt: skip
    session.flush()
    echo = [*echo, *tenant_ops(session, town)]
    more: dict[str, Any] = {k: v for k, v in refused.items() if v}
    if moved_from is None:
        return done("applied", echo, **more)
    return done("moved", echo, {moved_from: [delete_op("tenant", tenant_id)]}, from_gateway=moved_from, **more)

"""Tenants and cards: the locally cached roster (DESIGN §5)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import Connection, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.access import CardHolder, TenantRecord, lookup_for_read
from gateway.inputs import check_permit_date, check_text
from gateway.store.models import Card, FaceTemplate, RosterMeta, Tenant
from gateway.store.roster_events import new_template_id

STATUSES = ("active", "suspended", "revoked")
MAX_CARD = 0xFFFFFFFF


class RosterError(ValueError):
    """A roster change that cannot be made; the message is for the user."""


@dataclass(frozen=True, slots=True)
class NewTenant:
    id: str
    name: str
    permit_number: str
    valid_to: date
    valid_from: date | None = None
    room: str | None = None


CHANGE_COUNTER = "change_counter"


def mark_changed(session: Session | Connection) -> None:
    """Count a roster change, so that a running gateway reloads what it caches (face index)."""
    if isinstance(session, Connection):  # plain SQL (gateway.store.roster_sync, in a write_now transaction)
        session.exec_driver_sql(
            "INSERT INTO roster_meta (key, value) VALUES (?, '1')"
            " ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1",
            (CHANGE_COUNTER,),
        )
        return
    row = session.get(RosterMeta, CHANGE_COUNTER)
    if row is None:
        session.add(RosterMeta(key=CHANGE_COUNTER, value="1"))
    else:
        row.value = str(int(row.value) + 1)


def change_counter(session: Session | Connection) -> int:
    conn = session.connection() if isinstance(session, Session) else session
    value = conn.exec_driver_sql("SELECT value FROM roster_meta WHERE key = ?", (CHANGE_COUNTER,)).scalar()
    return int(value) if value is not None else 0


def tenant_record(t: Tenant) -> TenantRecord:
    return TenantRecord(t.id, t.status, t.valid_from, t.valid_to, t.watchlist)


def add_tenant(session: Session, new: NewTenant) -> Tenant:
    if not new.id.strip() or not new.name.strip() or not new.permit_number.strip():
        raise RosterError("tenant id, name and permit number must not be empty")
    try:  # the same rule as the API's schemas, for the CLI and simulation too
        for what, text in (("id", new.id), ("name", new.name), ("permit number", new.permit_number),
                           ("room", new.room or "")):  # fmt: skip
            check_text(text, what)
        for what, day in (("valid-from", new.valid_from), ("valid-to", new.valid_to)):
            if day is not None:
                check_permit_date(day, what)
    except ValueError as exc:
        raise RosterError(str(exc)) from None
    if new.valid_from is not None and new.valid_from > new.valid_to:
        raise RosterError(f"valid-from {new.valid_from} is after valid-to {new.valid_to}")
    if session.get(Tenant, new.id) is not None:
        raise RosterError(f"tenant {new.id!r} already exists")
    clash = session.scalar(select(Tenant.id).where(Tenant.permit_number == new.permit_number))
    if clash is not None:
        raise RosterError(f"permit number {new.permit_number!r} already belongs to tenant {clash!r}")
    tenant = Tenant(
        id=new.id,
        name=new.name,
        permit_number=new.permit_number,
        valid_from=new.valid_from,
        valid_to=new.valid_to,
        room=new.room,
        status="active",
        watchlist=False,
    )
    session.add(tenant)
    mark_changed(session)
    session.flush()
    return tenant


def get_tenant(session: Session, tenant_id: str) -> Tenant:
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        raise RosterError(f"unknown tenant {tenant_id!r}")
    return tenant


def set_status(session: Session, tenant_id: str, status: str) -> Tenant:
    if status not in STATUSES:
        raise RosterError(f"status must be one of {', '.join(STATUSES)}")
    tenant = get_tenant(session, tenant_id)
    tenant.status = status
    mark_changed(session)
    session.flush()
    return tenant


def set_watchlist(session: Session, tenant_id: str, on: bool) -> Tenant:
    tenant = get_tenant(session, tenant_id)
    tenant.watchlist = on
    mark_changed(session)
    session.flush()
    return tenant


def add_face_templates(session: Session, tenant_id: str, templates: list[tuple[bytes, float, str]]) -> int:
    """Store (embedding bytes, quality, photo sha256) rows; photos themselves are never stored."""
    get_tenant(session, tenant_id)
    for embedding, quality, sha in templates:
        session.add(FaceTemplate(tenant_id=tenant_id, embedding=embedding, quality=quality, photo_sha256=sha,
                                 platform_id=new_template_id()))  # fmt: skip
    mark_changed(session)
    session.flush()
    return len(templates)


def delete_face_templates(session: Session, tenant_id: str) -> int:
    get_tenant(session, tenant_id)
    rows = session.query(FaceTemplate).filter(FaceTemplate.tenant_id == tenant_id).delete()
    mark_changed(session)
    return rows


def face_templates_of_matchable_tenants(session: Session | Connection) -> list[tuple[str, bytes]]:
    """Templates the recognition index holds: every tenant but the revoked (DESIGN §5)."""
    conn = session.connection() if isinstance(session, Session) else session
    rows = conn.exec_driver_sql(
        "SELECT f.tenant_id, f.embedding FROM face_templates f JOIN tenants t ON t.id = f.tenant_id"
        " WHERE t.status != 'revoked' ORDER BY f.id"
    )
    return [(tid, bytes(emb)) for tid, emb in rows]


def watch_vectors(session: Session | Connection) -> list[tuple[str, bytes]]:
    """(watch entry id, template) of the town's watch list (DESIGN §6.1): matched, never granted."""
    conn = session.connection() if isinstance(session, Session) else session
    rows = conn.exec_driver_sql("SELECT watch_id, embedding FROM watch_vectors ORDER BY id")
    return [(wid, bytes(emb)) for wid, emb in rows]


def tenant_records(session: Session | Connection, tenant_ids: list[str]) -> dict[str, TenantRecord]:
    conn = session.connection() if isinstance(session, Session) else session
    out: dict[str, TenantRecord] = {}
    for tid in tenant_ids:
        row = conn.exec_driver_sql(
            "SELECT id, status, valid_from, valid_to, watchlist FROM tenants WHERE id = ?", (tid,)
        ).first()
        if row is not None:
            vf = date.fromisoformat(row[2]) if row[2] else None
            out[tid] = TenantRecord(row[0], row[1], vf, date.fromisoformat(row[3]), bool(row[4]))
    return out


def add_card(session: Session, tenant_id: str, number: int) -> Card:
    if not 0 <= number <= MAX_CARD:
        raise RosterError(f"card number {number} is not a 32-bit unsigned integer")
    get_tenant(session, tenant_id)
    owner = session.scalar(select(Card.tenant_id).where(Card.number == number))
    if owner is not None:
        raise RosterError(f"card {number} is already enrolled for tenant {owner!r}")
    card = Card(number=number, low24=number & 0xFFFFFF, tenant_id=tenant_id)
    session.add(card)
    mark_changed(session)
    try:
        session.flush()
    except IntegrityError as exc:  # a concurrent writer enrolled it first
        raise RosterError(f"card {number} is already enrolled") from exc
    return card


def remove_card(session: Session, number: int) -> str:
    """Unbind a card; returns the tenant it belonged to."""
    card = session.get(Card, number)
    if card is None:
        raise RosterError(f"card {number} is not enrolled")
    owner = card.tenant_id
    session.delete(card)
    mark_changed(session)
    session.flush()
    return owner


_HOLDERS_SQL = (
    "SELECT c.number, t.id, t.status, t.valid_from, t.valid_to, t.watchlist"
    " FROM cards c JOIN tenants t ON c.tenant_id = t.id WHERE c.{column} = ?"
)
_HOLDERS = {column: _HOLDERS_SQL.format(column=column) for column in ("number", "low24")}


def holders_for_read(db: Session | Connection, number: int, bits: int) -> list[CardHolder]:
    """Every enrolled card a read matches, with its tenant (one indexed query).

    Plain SQL on the door's hot path; dates come back as SQLite's ISO text.
    """
    column, value = lookup_for_read(number, bits)
    conn = db.connection() if isinstance(db, Session) else db
    rows = conn.exec_driver_sql(_HOLDERS[column], (value,))
    return [
        CardHolder(
            n, TenantRecord(tid, status, date.fromisoformat(vf) if vf else None, date.fromisoformat(vt), bool(w))
        )
        for n, tid, status, vf, vt, w in rows
    ]

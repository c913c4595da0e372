"""The roster from the town platform (DESIGN §6.1): operations validated, versioned patches applied in SQL.

No MQTT here: `gateway.platform_requests` parses requests, this module validates their operations
(`parse_ops`, raising `RosterSyncError("malformed")` before anything is written) and applies patches
in the caller's transaction (snapshots: `gateway.store.roster_snapshot`). The version lives in
`roster_meta` under "version" (0 until the first roster from the platform). Plain SQL through the
connection: a town's roster is hundreds of thousands of rows (bench/roster_apply.py).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.inputs import check_permit_date, check_text
from gateway.store.roster import MAX_CARD, STATUSES, mark_changed

VERSION = "version"
VECTOR_BYTES = 128 * 4  # 128 little-endian float32 (dlib)
MAX_VERSION = 2**63 - 1  # what SQLite's INTEGER holds
MAX_WATCH_VECTORS = 32
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
KINDS = ("tenant", "card", "template", "watch")


class RosterSyncError(Exception):
    """A roster request refused with `code` (`malformed`), nothing changed."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _malformed(where: str, message: str) -> RosterSyncError:
    return RosterSyncError("malformed", f"{where}: {message}")


# --- validated operations ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class TenantOp:
    id: str
    name: str
    permit: str
    valid_from: date | None
    valid_to: date
    room: str | None
    status: str


@dataclass(frozen=True, slots=True)
class CardOp:
    number: int
    tenant: str


@dataclass(frozen=True, slots=True)
class TemplateOp:
    id: str
    tenant: str
    vector: bytes
    quality: float
    photo_sha256: str


@dataclass(frozen=True, slots=True)
class WatchOp:
    id: str
    name: str
    note: str
    vectors: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class Delete:
    kind: str  # tenant / card / template / watch
    key: str | int  # id, or a card's number


Op = TenantOp | CardOp | TemplateOp | WatchOp | Delete

_FIELDS = {
    ("upsert", "tenant"): {"op", "kind", "id", "name", "permit", "valid_from", "valid_to", "room", "status"},
    ("upsert", "card"): {"op", "kind", "number", "tenant"},
    ("upsert", "template"): {"op", "kind", "id", "tenant", "vector", "quality", "photo_sha256"},
    ("upsert", "watch"): {"op", "kind", "id", "name", "note", "vectors"},
    ("delete", "tenant"): {"op", "kind", "id"},
    ("delete", "card"): {"op", "kind", "number"},
    ("delete", "template"): {"op", "kind", "id"},
    ("delete", "watch"): {"op", "kind", "id"},
}
_REQUIRED = {
    ("upsert", "tenant"): {"id", "name", "permit", "valid_to", "status"},
    ("upsert", "card"): {"number", "tenant"},
    ("upsert", "template"): {"id", "tenant", "vector"},
    ("upsert", "watch"): {"id", "name", "vectors"},
    ("delete", "tenant"): {"id"},
    ("delete", "card"): {"number"},
    ("delete", "template"): {"id"},
    ("delete", "watch"): {"id"},
}


def _text(op: dict[str, Any], key: str, where: str, *, max_len: int, empty: bool = False) -> str:
    value = op.get(key)
    if not isinstance(value, str):
        raise _malformed(where, f"`{key}` must be a string")
    if not (empty or value.strip()) or len(value) > max_len:
        raise _malformed(where, f"`{key}` must be {'0' if empty else '1'} to {max_len} characters")
    try:
        check_text(value, key)
    except ValueError as exc:
        raise _malformed(where, str(exc)) from None
    return value


def _optional_text(op: dict[str, Any], key: str, where: str, *, max_len: int) -> str | None:
    return None if op.get(key) is None else _text(op, key, where, max_len=max_len, empty=True)


def _day(op: dict[str, Any], key: str, where: str) -> date | None:
    value = op.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not _DAY.fullmatch(value):
        raise _malformed(where, f"`{key}` must be a date YYYY-MM-DD")
    try:
        return check_permit_date(date.fromisoformat(value), key)
    except ValueError as exc:
        raise _malformed(where, f"`{key}`: {exc}") from None


def _card_number(op: dict[str, Any], where: str) -> int:
    value = op.get("number")
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_CARD:
        raise _malformed(where, "`number` must be an integer of at most 32 bits")
    return value


def _vector(value: Any, where: str) -> bytes:
    if not isinstance(value, str) or len(value) > 2 * VECTOR_BYTES:
        raise _malformed(where, "a vector must be the base64 of 128 float32")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _malformed(where, "a vector is not base64") from None
    if len(raw) != VECTOR_BYTES:
        raise _malformed(where, f"a vector must be {VECTOR_BYTES} bytes (128 float32), not {len(raw)}")
    if not np.isfinite(np.frombuffer(raw, dtype="<f4")).all():
        raise _malformed(where, "a vector holds NaN or infinity")
    return raw


def parse_op(op: Any, where: str) -> Op:
    if not isinstance(op, dict):
        raise _malformed(where, "an operation must be an object")
    shape = (op.get("op"), op.get("kind"))
    fields = _FIELDS.get(shape) if all(isinstance(x, str) for x in shape) else None  # type: ignore[arg-type]
    if fields is None:
        raise _malformed(where, f"`op` must be upsert or delete and `kind` one of {', '.join(KINDS)}")
    if extra := set(op) - fields:
        raise _malformed(where, f"unknown field(s) {', '.join(sorted(map(str, extra)))[:200]}")
    if missing := _REQUIRED[shape] - set(op):  # type: ignore[index]
        raise _malformed(where, f"missing field(s) {', '.join(sorted(missing))}")
    verb, kind = shape
    if verb == "delete":
        key = _card_number(op, where) if kind == "card" else _text(op, "id", where, max_len=64)
        return Delete(kind, key)
    if kind == "tenant":
        status = op.get("status")
        if status not in STATUSES:
            raise _malformed(where, f"`status` must be one of {', '.join(STATUSES)}")
        valid_from, valid_to = _day(op, "valid_from", where), _day(op, "valid_to", where)
        if valid_to is None:
            raise _malformed(where, "`valid_to` is required")
        if valid_from is not None and valid_from > valid_to:
            raise _malformed(where, "`valid_from` is after `valid_to`")
        return TenantOp(_text(op, "id", where, max_len=64), _text(op, "name", where, max_len=200),
                        _text(op, "permit", where, max_len=64), valid_from, valid_to,
                        _optional_text(op, "room", where, max_len=64), status)  # fmt: skip
    if kind == "card":
        return CardOp(_card_number(op, where), _text(op, "tenant", where, max_len=64))
    if kind == "template":
        quality = op.get("quality", 0.0)
        if not isinstance(quality, int | float) or isinstance(quality, bool) or not 0.0 <= quality <= 1.0:
            raise _malformed(where, "`quality` must be a number from 0 to 1")
        sha = op.get("photo_sha256", "")
        if not isinstance(sha, str) or not re.fullmatch(r"(?:[0-9a-f]{64})?", sha):
            raise _malformed(where, "`photo_sha256` must be 64 lowercase hex digits")
        return TemplateOp(_text(op, "id", where, max_len=64), _text(op, "tenant", where, max_len=64),
                          _vector(op.get("vector"), where), float(quality), sha)  # fmt: skip
    vectors = op.get("vectors")
    if not isinstance(vectors, list) or len(vectors) > MAX_WATCH_VECTORS:
        raise _malformed(where, f"`vectors` must be a list of at most {MAX_WATCH_VECTORS} vectors")
    return WatchOp(_text(op, "id", where, max_len=64), _text(op, "name", where, max_len=200),
                   _optional_text(op, "note", where, max_len=1000) or "",
                   tuple(_vector(v, where) for v in vectors))  # fmt: skip


def parse_ops(ops: Any, *, upserts_only: bool = False, first: int = 0) -> list[Op]:
    """Every operation checked (types, lengths, control characters, 32-bit cards, 512-byte vectors)."""
    if not isinstance(ops, list):
        raise RosterSyncError("malformed", "`ops` must be a list")
    parsed = [parse_op(op, f"ops[{first + i}]") for i, op in enumerate(ops)]
    if upserts_only and any(isinstance(op, Delete) for op in parsed):
        raise RosterSyncError("malformed", "a snapshot holds upserts only")
    return parsed


def parse_version(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_VERSION:
        raise RosterSyncError("malformed", f"`{what}` must be a non-negative integer")
    return value


# --- the version ----------------------------------------------------------------------------------
def _conn(db: Session | Connection) -> Connection:
    return db.connection() if isinstance(db, Session) else db


def current_version(db: Session | Connection) -> int:
    """The platform's roster version this gateway holds; 0 if it never received one."""
    value = _conn(db).exec_driver_sql("SELECT value FROM roster_meta WHERE key = ?", (VERSION,)).scalar()
    try:
        return int(value) if value is not None else 0
    except ValueError:
        return 0


def set_version(conn: Connection, version: int) -> None:
    conn.exec_driver_sql(
        "INSERT INTO roster_meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (VERSION, str(version)),
    )


# --- applying -----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PatchOutcome:
    status: str  # applied / already / gap
    version: int  # the gateway's version afterwards


def apply_patch(session: Session | Connection, from_version: int, to_version: int, ops: list[Op]) -> PatchOutcome:
    """Apply a validated patch in the caller's transaction (the caller commits, or rolls back on error).

    `to_version` already held: nothing changes (the same patch twice). `from_version` not held: nothing
    changes, `gap` (the caller asks for a snapshot). A reference to an unknown tenant or a permit
    number another tenant holds raises `RosterSyncError("malformed")`: the caller rolls back.
    """
    if to_version <= from_version:
        raise RosterSyncError("malformed", "`to_version` must be greater than `from_version`")
    current = current_version(session)
    if to_version == current:
        return PatchOutcome("already", current)
    if from_version != current:
        return PatchOutcome("gap", current)
    conn = _conn(session)
    apply_ops(conn, ops)
    set_version(conn, to_version)
    mark_changed(session)
    return PatchOutcome("applied", to_version)


def integrity_message(exc: IntegrityError) -> str:
    problem = str(exc.orig)
    if "permit_number" in problem:
        return "a permit number already belongs to another tenant"
    if "FOREIGN KEY" in problem:
        return "a card or template of an unknown tenant"
    return problem


_UPSERT_TENANT = (
    "INSERT INTO tenants (id, name, permit_number, valid_from, valid_to, room, status, watchlist, created_at,"
    " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?) ON CONFLICT(id) DO UPDATE SET name = excluded.name,"
    " permit_number = excluded.permit_number, valid_from = excluded.valid_from, valid_to = excluded.valid_to,"
    " room = excluded.room, status = excluded.status, updated_at = excluded.updated_at"
)
_UPSERT_CARD = (
    "INSERT INTO cards (number, low24, tenant_id, created_at) VALUES (?, ?, ?, ?)"
    " ON CONFLICT(number) DO UPDATE SET tenant_id = excluded.tenant_id"
)
_UPSERT_TEMPLATE = (
    "INSERT INTO face_templates (platform_id, tenant_id, embedding, quality, photo_sha256, created_at)"
    " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(platform_id) DO UPDATE SET tenant_id = excluded.tenant_id,"
    " embedding = excluded.embedding, quality = excluded.quality, photo_sha256 = excluded.photo_sha256"
)
_UPSERT_WATCH = (
    "INSERT INTO watch_entries (id, name, note, updated_at) VALUES (?, ?, ?, ?)"
    " ON CONFLICT(id) DO UPDATE SET name = excluded.name, note = excluded.note, updated_at = excluded.updated_at"
)
_DELETES = {
    "tenant": ("DELETE FROM cards WHERE tenant_id = ?", "DELETE FROM face_templates WHERE tenant_id = ?",
               "DELETE FROM tenants WHERE id = ?"),
    "card": ("DELETE FROM cards WHERE number = ?",),
    "template": ("DELETE FROM face_templates WHERE platform_id = ?",),
    "watch": ("DELETE FROM watch_vectors WHERE watch_id = ?", "DELETE FROM watch_entries WHERE id = ?"),
}  # fmt: skip


def apply_ops(conn: Connection, ops: list[Op]) -> None:
    """Run `ops` in order; consecutive upserts of one kind go as one executemany."""
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    i = 0
    try:
        while i < len(ops):
            op = ops[i]
            j = i + 1
            while j < len(ops) and type(ops[j]) is type(op) and not isinstance(op, Delete | WatchOp):
                j += 1
            run = ops[i:j]
            if isinstance(op, TenantOp):
                check_permits(run)  # type: ignore[arg-type]
                conn.exec_driver_sql(_UPSERT_TENANT, [
                    (t.id, t.name, t.permit, t.valid_from and t.valid_from.isoformat(), t.valid_to.isoformat(),
                     t.room, t.status, now, now) for t in run])  # type: ignore[union-attr]  # fmt: skip
            elif isinstance(op, CardOp):
                conn.exec_driver_sql(_UPSERT_CARD, [(c.number, c.number & 0xFFFFFF, c.tenant, now) for c in run])  # type: ignore[union-attr]
            elif isinstance(op, TemplateOp):
                conn.exec_driver_sql(_UPSERT_TEMPLATE, [
                    (t.id, t.tenant, t.vector, t.quality, t.photo_sha256, now) for t in run])  # type: ignore[union-attr]  # fmt: skip
            elif isinstance(op, WatchOp):
                conn.exec_driver_sql(_UPSERT_WATCH, (op.id, op.name, op.note, now))
                conn.exec_driver_sql("DELETE FROM watch_vectors WHERE watch_id = ?", (op.id,))
                if op.vectors:
                    conn.exec_driver_sql("INSERT INTO watch_vectors (watch_id, embedding) VALUES (?, ?)",
                                         [(op.id, v) for v in op.vectors])  # fmt: skip
            else:
                for sql in _DELETES[op.kind]:
                    conn.exec_driver_sql(sql, (op.key,))
            i = j
    except IntegrityError as exc:
        raise RosterSyncError("malformed", f"ops[{i}..]: {integrity_message(exc)}") from None


def check_permits(tenants: list[TenantOp]) -> None:
    """One permit number, one tenant, within a run (a clash with a stored tenant is SQLite's UNIQUE)."""
    seen: dict[str, str] = {}
    for t in tenants:
        if seen.setdefault(t.permit, t.id) != t.id:
            raise RosterSyncError("malformed", f"permit number {t.permit!r} given to {seen[t.permit]!r} and {t.id!r}")

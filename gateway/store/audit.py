"""The audit log: who did what, when. Rows are only ever added (DESIGN §8).

The one exception is `complete_row`: a long read (a streamed export) writes its row
when it starts and fills in the count when it ends; no API route calls it on
any other row.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from gateway.store.models import AuditLog


def audit(
    session: Session,
    actor: str,
    action: str,
    details: dict[str, Any] | None = None,
    *,
    route: str | None = None,
    rows: int | None = None,
) -> None:
    session.add(AuditLog(actor=actor, action=action, route=route, details=details or {}, rows=rows))


def start_row(session: Session, actor: str, action: str, details: dict[str, Any], *, route: str | None = None) -> int:
    """Add a row whose count is not known yet (rows null); returns its id for `complete_row`."""
    row = AuditLog(actor=actor, action=action, route=route, details=details, rows=None)
    session.add(row)
    session.flush()
    return row.id


def complete_row(session: Session, row_id: int, rows: int, details: dict[str, Any]) -> None:
    """Set a started row's count and merge `details` into its own (for streamed exports)."""
    row = session.get(AuditLog, row_id)
    if row is None:
        raise LookupError(f"no audit row {row_id}")
    row.rows = rows
    row.details = {**(row.details or {}), **details}  # a new dict: JSON columns do not track mutation

"""The audit log: who did what, when. Rows are only ever added (DESIGN §8)."""

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

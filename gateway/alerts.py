"""Alerts: each written with its outbox row, counted, logged, and the uplink nudged (DESIGN §5, §6)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import Engine

from gateway import metrics
from gateway.journal_writer import JournalWriter
from gateway.store.journal import AlertDraft

log = logging.getLogger("accessgw")


class AlertLog:
    def __init__(
        self, engine: Engine, gateway_id: str, notify_uplink: Callable[[], None], journal: JournalWriter | None = None
    ) -> None:
        self.engine, self.gateway_id, self.notify_uplink = engine, gateway_id, notify_uplink
        # On a full disk the journal keeps the alert in memory and writes it when space returns.
        self.journal = journal or JournalWriter(engine, gateway_id, notify_uplink=notify_uplink)

    def raise_(self, draft: AlertDraft, alert_id: str | None = None) -> str:
        with self.journal.transaction() as w:
            alert = w.alert(draft, alert_id)
        metrics.ALERTS.labels(draft.kind, draft.state).inc()
        log.warning(
            "alert %s %s door=%s details=%s id=%s", draft.kind, draft.state, draft.door, draft.details, alert.id
        )
        self.notify_uplink()
        return alert.id

"""Transactions of signed platform requests, remembered 24 h across restarts (sync.commands.ReplayMemory)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Engine, delete
from sqlalchemy.dialects.sqlite import insert

from gateway.store.db import write_now
from gateway.store.models import SeenRequest

REMEMBER = timedelta(hours=24)


class SqlReplayMemory:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def first_time(self, transaction: str, now: datetime) -> bool:
        with write_now(self.engine) as db:
            db.execute(delete(SeenRequest).where(SeenRequest.seen_at < now - REMEMBER))
            added = db.execute(
                insert(SeenRequest).values(transaction=transaction, seen_at=now).on_conflict_do_nothing()
            ).rowcount
        return added == 1

"""What the API needs from the running gateway, kept behind a small interface."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from config.models import GatewayConfig
from gateway.api.auth import FailureLimiter
from gateway.api.photo_checks import PhotoChecker
from gateway.snapshots import SnapshotStore


class GatewayHooks(Protocol):
    """The door process, as the API process sees it (over gateway.control)."""

    def open_door(self, door_id: str, actor: str) -> None: ...
    def door_states(self) -> list[dict[str, Any]]: ...
    def readiness(self) -> dict[str, Any]: ...
    def metrics_text(self) -> str: ...


@dataclass
class ApiContext:
    cfg: GatewayConfig
    engine: Engine
    sessions: sessionmaker[Session]
    hooks: GatewayHooks
    snapshots: SnapshotStore
    limiter: FailureLimiter = field(default_factory=FailureLimiter)
    reader_engine: Engine | None = None  # for streamed exports; see gateway.store.db.make_reader_engine
    photos: PhotoChecker = field(default_factory=PhotoChecker)

    def __post_init__(self) -> None:
        if self.reader_engine is None:
            from gateway.store.db import make_reader_engine

            self.reader_engine = make_reader_engine(self.cfg.data_dir)

"""What the town's API needs from the running platform, kept behind a small interface (as the gateway's
gateway.api.context): the config, the store, and the roster pusher to wake after a register change."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from config.models import RecognitionConfig
from config.town import TownConfig
from gateway.api.auth import FailureLimiter
from gateway.api.photo_checks import PhotoChecker


class Waker(Protocol):
    """town.pusher.Pusher as the API sees it: told that a gateway's roster log grew."""

    def wake(self) -> None: ...


class NoPusher:
    """A register without a broker (tests, a demo): changes wait in the roster log."""

    def wake(self) -> None:
        pass


@dataclass
class TownContext:
    cfg: TownConfig
    engine: Engine
    sessions: sessionmaker[Session]
    pusher: Waker = field(default_factory=NoPusher)
    limiter: FailureLimiter | None = None  # default: api.failed_auth_limit per address and minute
    reader_engine: Engine | None = None  # streamed exports read through it; default: `engine`
    photos: PhotoChecker = field(default_factory=PhotoChecker)
    # Templates made at the town must be made as the buildings make theirs (landmarks, jitters, mirror).
    recognition: RecognitionConfig = field(default_factory=RecognitionConfig)

    def __post_init__(self) -> None:
        # XLSX exports are written to an unnamed temporary file there (on PostgreSQL nothing else may make it).
        Path(self.cfg.data_dir).mkdir(mode=0o700, parents=True, exist_ok=True)
        if self.reader_engine is None:
            self.reader_engine = self.engine
        if self.limiter is None:
            self.limiter = FailureLimiter(self.cfg.api.failed_auth_limit)

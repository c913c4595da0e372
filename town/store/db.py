"""Opening the town's store: PostgreSQL when `database_url` is set, else SQLite (a demo) at
`{data_dir}/town.db` in WAL mode; Alembic migrations and the monthly partitions at every open."""

from __future__ import annotations

import os
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import QueuePool

from config.town import TownConfig
from town.store.partitions import ensure_partitions

MIGRATIONS = Path(__file__).with_name("migrations")
DB_NAME = "town.db"
VERSION_TABLE = "town_alembic_version"
BUSY_TIMEOUT_MS = 10_000
PRIVATE_DIR, PRIVATE_FILE = 0o700, 0o600


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def sqlite_path(data_dir: Path) -> Path:
    return Path(data_dir) / DB_NAME


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # noqa: ANN001 - DB-API connection
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    # FULL: an event acknowledged to the broker after its commit survives a power cut too.
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cur.close()


def _make_private(data_dir: Path) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    data_dir.chmod(PRIVATE_DIR)
    for suffix in ("", "-wal", "-shm", "-journal"):
        path = data_dir / (DB_NAME + suffix)
        if path.exists():
            path.chmod(PRIVATE_FILE)


def make_engine(cfg: TownConfig) -> Engine:
    if cfg.database_url is not None:
        url = make_url(cfg.database_url.get_secret_value())
        if url.drivername == "postgresql":  # plain postgresql:// means psycopg2 to SQLAlchemy; we ship psycopg 3
            url = url.set(drivername="postgresql+psycopg")
        return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True, pool_recycle=3600)
    data_dir = Path(cfg.data_dir)
    _make_private(data_dir)
    path = sqlite_path(data_dir)
    if not path.exists():  # private from the start, whatever the umask
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, PRIVATE_FILE))
    engine = create_engine(f"sqlite:///{path}", poolclass=QueuePool, pool_size=8, max_overflow=16,
                           pool_timeout=30, pool_use_lifo=True)  # fmt: skip
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def alembic_config(engine: Engine) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine  # env.py migrates this engine (no URL, no password, in the config)
    return cfg


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest migration (run at every open)."""
    command.upgrade(alembic_config(engine), "head")


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def open_town_store(cfg: TownConfig) -> tuple[Engine, sessionmaker[Session]]:
    """The engine and sessions of the town's store, migrated, with this month's partitions and the next ones."""
    engine = make_engine(cfg)
    upgrade(engine)
    ensure_partitions(engine)
    if not is_postgres(engine):
        _make_private(Path(cfg.data_dir))  # the -wal and -shm files exist now
    return engine, session_factory(engine)

"""Opening the SQLite store: WAL, durable commits, and Alembic migrations."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool, SingletonThreadPool

MIGRATIONS = Path(__file__).with_name("migrations")
DB_NAME = "gateway.sqlite3"


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # noqa: ANN001 - DB-API connection
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    # FULL: a committed entry survives a power cut, not only a crash (DESIGN §7).
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()


def database_path(data_dir: Path) -> Path:
    return Path(data_dir) / DB_NAME


def make_engine(data_dir: Path) -> Engine:
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    # One connection per thread, kept open: SQLite's page cache lives in the
    # connection, and the door's path and the outbox share the loop thread.
    engine = create_engine(f"sqlite:///{database_path(data_dir)}", poolclass=SingletonThreadPool, pool_size=8)
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def make_reader_engine(data_dir: Path) -> Engine:
    """A connection per use, never shared: for long streamed reads (CSV export) that may hop threads."""
    engine = create_engine(f"sqlite:///{database_path(Path(data_dir))}", poolclass=NullPool)
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def alembic_config(engine: Engine) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest migration (run at every start)."""
    command.upgrade(alembic_config(engine), "head")


def open_store(data_dir: Path) -> tuple[Engine, sessionmaker[Session]]:
    engine = make_engine(data_dir)
    upgrade(engine)
    return engine, sessionmaker(engine, expire_on_commit=False)

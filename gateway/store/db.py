"""Opening the SQLite store: WAL, durable commits, and Alembic migrations."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool, QueuePool

MIGRATIONS = Path(__file__).with_name("migrations")
DB_NAME = "gateway.sqlite3"
BUSY_TIMEOUT_MS = 5000
LOCK_POLL_S = 0.0002


def _sqlite_pragmas(dbapi_conn, _record, synchronous: str = "FULL") -> None:  # noqa: ANN001 - DB-API connection
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    # FULL: a committed entry survives a power cut, not only a crash (DESIGN §7).
    cur.execute(f"PRAGMA synchronous={synchronous}")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    # No checkpoint inside a commit: the door's commit would wait for the database file's fsync.
    # The door process checkpoints in the background (gateway.store.checkpoint).
    cur.execute("PRAGMA wal_autocheckpoint=0")
    cur.execute(f"PRAGMA journal_size_limit={64 * 1024 * 1024}")
    cur.close()


def database_path(data_dir: Path) -> Path:
    return Path(data_dir) / DB_NAME


PRIVATE_DIR, PRIVATE_FILE = 0o700, 0o600


def make_private(data_dir: Path) -> None:
    """Entry logs and face templates are personal data: owner-only, whatever the umask was."""
    data_dir.mkdir(parents=True, exist_ok=True)
    data_dir.chmod(PRIVATE_DIR)
    for suffix in ("", "-wal", "-shm", "-journal"):
        path = data_dir / (DB_NAME + suffix)
        if path.exists():
            path.chmod(PRIVATE_FILE)


def make_engine(data_dir: Path, *, sync_each_commit: bool = True) -> Engine:
    """`sync_each_commit=False` (the API process): commits are not fsynced on their own; they become
    durable with the door process's next commit or checkpoint (both fsync the whole WAL), within
    gateway.store.checkpoint.CHECKPOINT_EVERY_S at worst. The doors' fsyncs then never queue behind the API's."""
    data_dir = Path(data_dir)
    make_private(data_dir)
    path = database_path(data_dir)
    if not path.exists():  # SQLite creates it with the umask's mode; create it private first
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, PRIVATE_FILE))
    # A pool of connections, each used by one thread at a time (SQLite's threading rule), most
    # recently used first: SQLite's page cache lives in the connection, so the door's path keeps a warm one.
    engine = create_engine(f"sqlite:///{path}", poolclass=QueuePool, pool_size=8, max_overflow=24,
                           pool_timeout=10, pool_use_lifo=True)  # fmt: skip
    synchronous = "FULL" if sync_each_commit else "NORMAL"
    event.listen(engine, "connect", lambda conn, record: _sqlite_pragmas(conn, record, synchronous))
    return engine


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def write_now(engine: Engine) -> Iterator[Connection]:
    """A transaction that holds SQLite's write lock from its first statement (BEGIN IMMEDIATE).

    For the door's read-then-write: a deferred transaction that read before another process
    wrote would fail its write at once (SQLITE_BUSY_SNAPSHOT, no retry). Waiting for the lock
    polls every 0.2 ms instead of SQLite's busy handler, which sleeps 1, 2, 5, 10 … ms.
    """
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn, write_now_on(conn):
        yield conn


@contextmanager
def write_now_on(conn: Connection) -> Iterator[Connection]:
    """`write_now` on a connection of one's own, in AUTOCOMMIT mode (e.g. one holding TEMP tables)."""
    conn.exec_driver_sql("PRAGMA busy_timeout=0")
    try:
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        while True:
            try:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
                break
            except OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(LOCK_POLL_S)
    finally:
        conn.exec_driver_sql(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    try:
        yield conn
    except BaseException:
        conn.exec_driver_sql("ROLLBACK")
        raise
    conn.exec_driver_sql("COMMIT")


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
    make_private(Path(data_dir))  # the -wal and -shm files exist now
    return engine, session_factory(engine)

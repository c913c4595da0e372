"""A throwaway PostgreSQL cluster for tests and benchmarks: initdb into a temporary folder, a free
loopback port, the socket in that folder, fsync off (unless asked), stopped and removed at the end.

Tests run as root and initdb refuses root: the cluster then belongs to the `postgres` OS user (the
Debian package's), and its folder is made under /tmp (pytest's own temporary folders are root-only).
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from testing.peers import free_port

PG_ROOT = Path("/usr/lib/postgresql")
OS_USER = "postgres"


def pg_bin_dir() -> Path:
    """The newest installed server's bin folder (/usr/lib/postgresql/<version>/bin)."""
    versions = sorted(
        (p for p in PG_ROOT.glob("*/bin") if (p / "initdb").exists() and re.fullmatch(r"\d+(\.\d+)?", p.parent.name)),
        key=lambda p: float(p.parent.name),
    )
    if versions:
        return versions[-1]
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql); ./install.sh --test installs it")


class Postgres:
    """One cluster; `url(db)` gives a SQLAlchemy URL (psycopg 3) for a database of it."""

    def __init__(self, *, durable: bool = False, settings: dict[str, str] | None = None) -> None:
        self.bin = pg_bin_dir()
        self.port = free_port()
        self.durable = durable
        self.settings = {"max_connections": "200", "shared_buffers": "128MB"} | (settings or {})
        self.dir: Path | None = None
        self._as_postgres = os.geteuid() == 0
        self._counter = 0

    # --- life ----------------------------------------------------------------
    def start(self, timeout: float = 30.0) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="accessgw-pg-"))
        if self._as_postgres:
            pw = pwd.getpwnam(OS_USER)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        data = self.dir / "data"
        self._run([str(self.bin / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                   "--encoding=UTF8", "--locale=C", "--no-instructions"], timeout)  # fmt: skip
        options = [f"-p {self.port}", f"-k {self.dir}", "-c listen_addresses=127.0.0.1"]
        if not self.durable:
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        options += [f"-c {k}={v}" for k, v in self.settings.items()]
        self._run([str(self.bin / "pg_ctl"), "-D", str(data), "-l", str(self.dir / "postgres.log"), "-w",
                   "-t", str(int(timeout)), "-o", " ".join(options), "start"], timeout + 5)  # fmt: skip
        self._wait_answers(timeout)
        self.execute("CREATE DATABASE town")

    def stop(self) -> None:
        if self.dir is None:
            return
        data = self.dir / "data"
        if (data / "postmaster.pid").exists():
            try:
                self._run([str(self.bin / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "-t", "30", "stop"], 40)
            except RuntimeError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None

    def __enter__(self) -> Postgres:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- use -----------------------------------------------------------------
    def url(self, database: str = "town") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def execute(self, sql: str, database: str = "postgres") -> None:
        """Run one statement in autocommit (CREATE/DROP DATABASE cannot run in a transaction)."""
        import psycopg  # the tests' dependency, not the helper's import-time one

        with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname=database,
                             autocommit=True, connect_timeout=5) as conn:  # fmt: skip
            conn.execute(sql)

    def create_database(self, prefix: str = "town", template: str | None = None) -> str:
        """A fresh database (empty, or a copy of `template`, which nobody may be connected to); its URL."""
        self._counter += 1
        name = f"{prefix}_{os.getpid()}_{self._counter}"
        self.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        return self.url(name)

    def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    # --- helpers -------------------------------------------------------------
    def _run(self, argv: list[str], timeout: float) -> None:
        if self._as_postgres:
            argv = ["runuser", "-u", OS_USER, "--", *argv]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd="/")
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(f"{argv[0]} timed out after {timeout:.0f} s") from exc
        if done.returncode != 0:
            log = self.dir / "postgres.log" if self.dir is not None else None
            tail = log.read_text()[-2000:] if log is not None and log.exists() else ""
            raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()}\n{tail}")

    def _wait_answers(self, timeout: float) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres",
                                     connect_timeout=2) as conn:  # fmt: skip
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    where = f"127.0.0.1:{self.port}"
                    raise RuntimeError(f"PostgreSQL did not answer on {where} within {timeout:.0f} s") from None
                time.sleep(0.05)

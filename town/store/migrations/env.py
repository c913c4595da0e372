"""Alembic environment of the town's store: migrates the engine handed over by town.store.db.

Its own version table (town_alembic_version). On PostgreSQL the upgrade holds an advisory lock, so
instances starting together migrate one after the other."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from town.store.models import TownBase
from town.store.partitions import MIGRATION_LOCK

config = context.config
target_metadata = TownBase.metadata
VERSION_TABLE = "town_alembic_version"


def run_migrations() -> None:
    engine = config.attributes.get("engine") or create_engine(config.get_main_option("sqlalchemy.url"))
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
        # render_as_batch: SQLite alters tables by copying them.
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True,
                          version_table=VERSION_TABLE)  # fmt: skip
        with context.begin_transaction():
            context.run_migrations()


run_migrations()

"""The town's store: PostgreSQL (SQLite for a demo), schema by Alembic, entries partitioned by month."""

from town.store.db import is_postgres, open_town_store, upgrade
from town.store.partitions import ensure_partitions

__all__ = ["ensure_partitions", "is_postgres", "open_town_store", "upgrade"]

"""The town's store: migrations on both back-ends, monthly partitions of `entries` on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import inspect

from config.town import TownConfig
from testing.postgres import Postgres
from town.store import ensure_partitions, is_postgres, open_town_store
from town.store.models import TownBase
from town.store.partitions import add_months, month_start, partition_name


def test_open_creates_every_table_and_opens_again(town_cfg: TownConfig) -> None:
    engine, sessions = open_town_store(town_cfg)
    tables = set(inspect(engine).get_table_names())
    assert set(TownBase.metadata.tables) <= tables
    assert "town_alembic_version" in tables and "alembic_version" not in tables
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT version_num FROM town_alembic_version").scalar() == "0001"
    indexes = {ix["name"] for ix in inspect(engine).get_indexes("entries")}
    assert {"ix_town_entries_ts", "ix_town_entries_gateway_ts", "ix_town_entries_tenant_ts",
            "ix_town_entries_card_ts"} <= indexes  # fmt: skip
    engine.dispose()
    engine, _ = open_town_store(town_cfg)  # again: nothing to do, nothing fails
    assert is_postgres(engine) == (town_cfg.database_url is not None)
    engine.dispose()


def test_sqlite_is_wal_and_private(tmp_path) -> None:
    cfg = TownConfig(data_dir=tmp_path / "town")
    engine, _ = open_town_store(cfg)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    assert (tmp_path / "town" / "town.db").stat().st_mode & 0o077 == 0
    assert ensure_partitions(engine) == []
    engine.dispose()


def _partitions(engine) -> set[str]:
    with engine.connect() as conn:
        return {n for (n,) in conn.exec_driver_sql(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'entries'::regclass")}  # fmt: skip


@pytest.fixture
def pg_cfg(postgres: Postgres, tmp_path):
    url = postgres.create_database("town")
    yield TownConfig(data_dir=tmp_path / "town", database_url=url)
    postgres.drop_database(url)


def test_postgres_entries_are_partitioned_by_month_with_a_default(pg_cfg: TownConfig) -> None:
    engine, _ = open_town_store(pg_cfg)  # an empty database: the whole migration
    assert set(TownBase.metadata.tables) | {"town_alembic_version"} <= set(inspect(engine).get_table_names())
    with engine.connect() as conn:
        kind = conn.exec_driver_sql("SELECT relkind FROM pg_class WHERE relname = 'entries'").scalar()
        assert kind == "p"  # partitioned
        key = conn.exec_driver_sql("SELECT pg_get_partkeydef('entries'::regclass)").scalar()
        assert key == "RANGE (ts)"
        parent_indexes = {n for (n,) in conn.exec_driver_sql(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'entries'")}  # fmt: skip
    assert {"ix_town_entries_ts", "ix_town_entries_gateway_ts", "ix_town_entries_tenant_ts",
            "ix_town_entries_card_ts", "entries_pkey"} <= parent_indexes  # fmt: skip
    this_month = month_start(datetime.now(UTC))
    wanted = {partition_name(add_months(this_month, n)) for n in range(-1, 3)} | {"entries_default"}
    assert _partitions(engine) == wanted
    engine.dispose()


def test_ensure_partitions_adds_future_months_and_moves_rows_out_of_the_default(pg_cfg: TownConfig) -> None:
    engine, _ = open_town_store(pg_cfg)
    with engine.begin() as conn:
        conn.exec_driver_sql(  # no partition for May 2031 yet: it lands in the default
            "INSERT INTO entries (id, ts, gateway_id, seq, door, method, decision, reason, received_at) "
            "VALUES ('E1', '2031-05-17 12:00', 'gw1', 1, 'main', 'card', 'granted', 'granted', now())")  # fmt: skip
        where = conn.exec_driver_sql("SELECT tableoid::regclass::text FROM entries WHERE id = 'E1'").scalar()
    assert where == "entries_default"
    created = ensure_partitions(engine, months_ahead=2, now=datetime(2031, 4, 2, tzinfo=UTC))
    assert created == ["entries_203103", "entries_203104", "entries_203105", "entries_203106"]
    with engine.connect() as conn:
        where = conn.exec_driver_sql("SELECT tableoid::regclass::text FROM entries WHERE id = 'E1'").scalar()
        assert where == "entries_203105"
        assert conn.exec_driver_sql("SELECT count(*) FROM entries_default").scalar() == 0
        indexes = {n for (n,) in conn.exec_driver_sql(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'entries_203105'")}  # fmt: skip
    assert len(indexes) == 5  # the key and the four police indexes, from the parent
    assert ensure_partitions(engine, months_ahead=2, now=datetime(2031, 4, 2, tzinfo=UTC)) == []
    engine.dispose()

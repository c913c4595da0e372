"""Fixtures of the town's tests: a real PostgreSQL (one cluster per session, a fresh database per
test) and `town_cfg`, run on both back-ends — the same tests must pass on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from config.town import TownConfig
from testing.postgres import Postgres
from town.store.db import open_town_store

TEMPLATE = "town_migrated"


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Postgres]:
    """The cluster, with a database migrated once (`TEMPLATE`) that each test's database copies."""
    cluster = Postgres()
    cluster.start()
    try:
        cluster.execute(f'CREATE DATABASE "{TEMPLATE}"')
        engine, _ = open_town_store(
            TownConfig(data_dir=tmp_path_factory.mktemp("town-template"), database_url=cluster.url(TEMPLATE))
        )
        engine.dispose()  # a template must have no connection when it is copied
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def town_cfg(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TownConfig]:
    """A TownConfig with its own data_dir; on PostgreSQL its own database, already migrated (its store
    opens as a running town's does), dropped afterwards."""
    if request.param == "sqlite":
        yield TownConfig(data_dir=tmp_path / "town", instance="test")
        return
    postgres: Postgres = request.getfixturevalue("postgres")
    url = postgres.create_database("town", template=TEMPLATE)
    try:
        yield TownConfig(data_dir=tmp_path / "town", instance="test", database_url=url)
    finally:
        postgres.drop_database(url)

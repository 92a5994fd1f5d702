"""Fixtures: a real CRM server process per database backend, seeded from scratch."""

from __future__ import annotations

from typing import Iterator

import pytest

from crm.tests.support import (
    CrmServer,
    create_postgres_database,
    crm_env,
    drop_postgres_database,
    run_crm,
    start_server,
    stop_server,
)


@pytest.fixture
def postgres_database() -> Iterator[str]:
    """A fresh, empty PostgreSQL database URL; dropped afterwards."""
    url = create_postgres_database()
    try:
        yield url
    finally:
        drop_postgres_database(url)


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def crm(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CrmServer]:
    """A seeded CRM server on SQLite and on PostgreSQL (skipped when PostgreSQL is unreachable)."""
    var_dir = tmp_path_factory.mktemp(f"crm-{request.param}")
    if request.param == "postgresql":
        database_url = create_postgres_database()
    else:
        database_url = f"sqlite:///{var_dir / 'crm.sqlite3'}"
    try:
        run_crm(["seed"], crm_env(database_url, var_dir))
        process, server = start_server(database_url, var_dir)
        try:
            yield server
        finally:
            stop_server(process)
    finally:
        if request.param == "postgresql":
            drop_postgres_database(database_url)

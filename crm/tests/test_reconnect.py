"""A connection the database server closed fails no request for good: the unit of work runs once more."""

from __future__ import annotations

import datetime as dt
from typing import Any, List

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from crm.db import Database
from crm.models import Customer
from crm.tests.support import _pg_admin


def _customers(session: Any, _ctx: Any) -> int:
    return int(session.execute(select(func.count()).select_from(Customer)).scalar_one())


def _backend_pid(session: Any, _ctx: Any) -> int:
    return int(session.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _terminate_connections(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    _pg_admin(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}' AND pid <> pg_backend_pid()")


def test_reads_writes_and_ping_survive_terminated_connections(postgres_database: str) -> None:
    database = Database(postgres_database, pool_size=1)
    try:
        database.create_schema()
        first = database.run_read(_backend_pid, None)
        _terminate_connections(postgres_database)
        assert database.run_read(_customers, None) == 0
        assert database.run_read(_backend_pid, None) != first  # a new connection

        _terminate_connections(postgres_database)
        database.run_write(lambda session, _ctx: session.add(
            Customer(customer_id="C000001", name="王芳", phone="13800000001", tier="V1", growth_value=0, points_balance=0,
                     created_at=dt.datetime(2026, 1, 1))), None)
        assert database.run_read(_customers, None) == 1

        _terminate_connections(postgres_database)
        assert database.ping()
    finally:
        database.dispose()


def _lost(calls: List[int]) -> Any:
    def work(session: Any, _ctx: Any) -> None:
        calls.append(1)
        raise DBAPIError("SELECT 1", {}, Exception("server closed the connection"), connection_invalidated=True)
    return work


@pytest.mark.parametrize("kind", ["read", "write"])
def test_a_lost_connection_is_retried_once_only(tmp_path: Any, kind: str) -> None:
    database = Database(f"sqlite:///{tmp_path / 'crm.sqlite3'}")
    calls: List[int] = []
    run = database.run_read if kind == "read" else database.run_write
    try:
        with pytest.raises(DBAPIError):
            run(_lost(calls), None)
    finally:
        database.dispose()
    assert len(calls) == 2


def test_other_database_errors_are_not_retried(tmp_path: Any) -> None:
    database = Database(f"sqlite:///{tmp_path / 'crm.sqlite3'}")
    calls: List[int] = []

    def work(session: Any, _ctx: Any) -> None:
        calls.append(1)
        session.execute(text("SELECT * FROM no_such_table"))

    try:
        with pytest.raises(DBAPIError):
            database.run_read(work, None)
    finally:
        database.dispose()
    assert calls == [1]

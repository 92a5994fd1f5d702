"""Engine and session handling for SQLite (default, a file under ``var/``) and PostgreSQL."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

from sqlalchemy import create_engine, event, func, select
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import QueuePool, StaticPool

from crm.models import Base, Customer

LOGGER = logging.getLogger(__name__)
T = TypeVar("T")
RECYCLE_SECONDS = 1800
"""PostgreSQL connections older than this are replaced when next checked out of the pool."""


def _stale(error: BaseException, attempt: int) -> bool:
    """Whether ``error`` of a first attempt is a connection the server had closed (the pool then drops its connections)."""
    if attempt == 0 and isinstance(error, DBAPIError) and error.connection_invalidated:
        LOGGER.warning("database connection lost (%s); retrying once on a new connection", type(error.orig).__name__)
        return True
    return False


def database_url_for(settings: Any) -> str:
    """The CRM database URL of ``settings`` (``DATABASE_URL`` or a SQLite file under ``VAR_DIR``)."""
    try:
        return str(settings.effective_database_url)
    except TypeError:  # VAR_DIR given as a plain string by older settings modules
        return f"sqlite:///{Path(settings.var_dir).expanduser().resolve() / 'crm.sqlite3'}"


def normalise_url(url: str) -> str:
    """Accept the ``postgres://`` spelling some platforms use for PostgreSQL URLs."""
    if url.startswith("postgres://"):
        return "postgresql://" + url[len("postgres://") :]
    return url


def backend_name(url: str) -> str:
    """Return ``sqlite`` or ``postgresql`` (or the dialect name of another URL)."""
    return make_url(normalise_url(url)).get_backend_name()


def make_engine(url: str, pool_size: int = 4) -> Engine:
    """Create a pooled engine.

    For a SQLite file the parent directory is created, connections may be shared between threads,
    the journal is switched to WAL, and write transactions that ask for it start with
    ``BEGIN IMMEDIATE`` (see :meth:`Database.write`).

    Args:
        url: SQLAlchemy database URL.
        pool_size: connections kept open; match the number of worker threads.
    """
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        # No ping on every checkout (a round trip per request): old connections are recycled, and a
        # unit of work that meets a connection the server closed runs once more (Database.run_read).
        return create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_recycle=RECYCLE_SECONDS, future=True)

    database = parsed.database or ""
    in_memory = database in ("", ":memory:")
    if not in_memory:
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        future=True,
        connect_args={"check_same_thread": False, "timeout": 30},
        poolclass=StaticPool if in_memory else QueuePool,
        **({} if in_memory else {"pool_size": pool_size, "max_overflow": pool_size}),
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # transactions are begun explicitly below
        cursor = dbapi_connection.cursor()
        if not in_memory:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        immediate = connection.get_execution_options().get("sqlite_immediate", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def create_schema(engine: Engine) -> None:
    """Create missing tables."""
    Base.metadata.create_all(engine)


def drop_schema(engine: Engine) -> None:
    """Drop every table of the CRM."""
    Base.metadata.drop_all(engine)


class Database:
    """Engine plus session helpers for short read and write units of work.

    Attributes:
        url: the database URL.
        engine: the pooled engine.
        backend: ``sqlite`` or ``postgresql``.
    """

    def __init__(self, url: str, pool_size: int = 4) -> None:
        self.url = normalise_url(url)
        self.engine = make_engine(self.url, pool_size=pool_size)
        self.backend = self.engine.dialect.name
        self._sessions = sessionmaker(bind=self.engine, future=True, expire_on_commit=False)
        if self.backend == "sqlite":
            write_engine = self.engine.execution_options(sqlite_immediate=True)
            self._write_sessions = sessionmaker(bind=write_engine, future=True, expire_on_commit=False)
        else:
            self._write_sessions = self._sessions

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reading; rolled back at the end."""
        session = self._sessions()
        try:
            yield session
        finally:
            session.rollback()
            session.close()

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A session for one write transaction: committed on success, rolled back on error.

        On SQLite the transaction takes the write lock at its start, so read-check-write sequences
        are serialised; on PostgreSQL callers lock the rows they check with ``FOR UPDATE``.
        """
        session = self._write_sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def run_read(self, work: Callable[..., T], *args: Any) -> T:
        """Run ``work(session, *args)`` in a read session, once more when the connection was lost."""
        for attempt in range(2):
            try:
                with self.read() as session:
                    return work(session, *args)
            except DBAPIError as error:
                if not _stale(error, attempt):
                    raise
        raise AssertionError("unreachable")

    def run_write(self, work: Callable[..., T], *args: Any) -> T:
        """Run ``work(session, *args)`` in a write transaction.

        When the connection is found lost while ``work`` runs or its changes are flushed, nothing was
        committed and the transaction runs once more on a new connection; a connection lost while committing is not
        retried (the commit may have happened).
        """
        for attempt in range(2):
            session = self._write_sessions()
            try:
                try:
                    result = work(session, *args)
                    session.flush()  # only the COMMIT is left outside the retried part
                except DBAPIError as error:
                    session.rollback()
                    if _stale(error, attempt):
                        continue
                    raise
                session.commit()
                return result
            except BaseException:
                session.rollback()
                raise
            finally:
                session.close()
        raise AssertionError("unreachable")

    def create_schema(self) -> None:
        """Create missing tables."""
        create_schema(self.engine)

    def customer_count(self) -> int:
        """Number of customers (0 for an empty database)."""
        with self.read() as session:
            return int(session.execute(select(func.count()).select_from(Customer)).scalar_one())

    def ping(self) -> bool:
        """Whether the database answers a trivial query."""
        for attempt in range(2):
            try:
                with self.engine.connect() as connection:
                    connection.exec_driver_sql("SELECT 1")
                return True
            except Exception as error:
                if not _stale(error, attempt):
                    LOGGER.exception("database ping failed")
                    return False
        return False

    def dispose(self) -> None:
        """Close pooled connections."""
        self.engine.dispose()

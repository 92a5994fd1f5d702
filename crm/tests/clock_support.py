"""A CRM server whose clock a test moves on (``CRM_CLOCK_OFFSET_FILE``), for what happens later: an
urge's answer arriving, its due time passing. Used by the CRM's tests and the bot's worker tests."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Tuple
from unittest import mock

from crm.clock import OFFSET_FILE_ENV
from crm.tests.support import (
    CrmServer,
    create_postgres_database,
    crm_env,
    drop_postgres_database,
    run_crm,
    start_server,
    stop_server,
)
from handoff.context import HandoffContext


@dataclass
class MovableClock:
    """The seconds the CRM's clock runs ahead of the real time, in the file the server reads."""

    path: Path
    offset_s: float = 0.0

    def __post_init__(self) -> None:
        self.path.write_text("0", encoding="utf-8")

    def advance(self, seconds: float) -> None:
        """Move the CRM's time on by ``seconds``."""
        self.offset_s += seconds
        self.path.write_text(repr(self.offset_s), encoding="utf-8")

    def now(self) -> dt.datetime:
        """The CRM's current time (aware UTC)."""
        return dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=self.offset_s)

    def advance_past(self, moment: dt.datetime, margin_s: float = 1.0) -> None:
        """Move the CRM's time on to just after ``moment`` (aware), if it is not there yet."""
        ahead = (moment - self.now()).total_seconds() + margin_s
        if ahead > 0:
            self.advance(ahead)


@dataclasses.dataclass(frozen=True)
class MovedContext(HandoffContext):
    """A handoff context whose clock runs as far ahead as a :class:`MovableClock` (the bot's time moved with the CRM's)."""

    clock: Optional[MovableClock] = None

    def now(self) -> float:
        return time.time() + (self.clock.offset_s if self.clock else 0.0)


@contextmanager
def crm_with_clock(backend: str, var_dir: Path) -> Iterator[Tuple[CrmServer, MovableClock]]:
    """A freshly seeded CRM server on ``backend`` (``sqlite`` or ``postgresql``) with a movable clock."""
    var_dir.mkdir(parents=True, exist_ok=True)
    clock = MovableClock(var_dir / "crm-clock-offset")
    database_url = create_postgres_database() if backend == "postgresql" else f"sqlite:///{var_dir / 'crm.sqlite3'}"
    try:
        run_crm(["seed"], crm_env(database_url, var_dir))
        with mock.patch.dict(os.environ, {OFFSET_FILE_ENV: str(clock.path)}):
            process, server = start_server(database_url, var_dir)
        try:
            yield server, clock
        finally:
            stop_server(process)
    finally:
        if backend == "postgresql":
            drop_postgres_database(database_url)

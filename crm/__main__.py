"""Command line: ``python -m crm seed|ensure-seeded|serve``."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from typing import List, Optional

from bot import logs
from bot.settings import Settings, load_settings
from crm.clock import OFFSET_FILE_ENV, Clock, offset_file_from_env


def _today(raw: Optional[str], settings: Settings) -> dt.date:
    value = raw or os.environ.get("SEED_TODAY") or ""
    if not value:
        return Clock.for_timezone(settings.shop_timezone).today()
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise SystemExit(f"invalid date {value!r}: expected YYYY-MM-DD") from None


def _seed(settings: Settings, today: dt.date, customers: int) -> None:
    from crm.db import Database, database_url_for
    from crm.seed import seed_database

    database = Database(database_url_for(settings))
    started = time.monotonic()
    counts = seed_database(database.engine, today, customers, Clock.for_timezone(settings.shop_timezone).tz)
    database.dispose()
    summary = ", ".join(f"{name} {count}" for name, count in counts.items())
    print(f"seeded {database.backend} for {today.isoformat()} in {time.monotonic() - started:.1f}s: {summary}")


def _ensure_seeded(settings: Settings, today: dt.date, customers: int) -> None:
    from crm.db import Database, database_url_for

    database = Database(database_url_for(settings))
    database.create_schema()
    count = database.customer_count()
    database.dispose()
    if count:
        print(f"database already holds {count} customers; not seeding")
        return
    _seed(settings, today, customers)


def _serve(settings: Settings, host: Optional[str], port: Optional[int]) -> None:
    from bot import production

    if offset_file_from_env() is not None and production.guarded(settings, [host or settings.crm_host]):
        raise SystemExit(f"crm: refusing to start where strangers can reach it with {OFFSET_FILE_ENV} set (a test clock)")
    production.enforce(settings, "crm", hosts=[host or settings.crm_host], check_agents=False)
    from bot import metrics
    from crm.app import create_app

    metrics.prepare("crm", settings.var_dir, port or settings.crm_port)
    app = create_app(settings)
    app.run(host=host or settings.crm_host, port=port or settings.crm_port, access_log=False, motd=False)


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of ``python -m crm``."""
    from crm.seed import DEFAULT_CUSTOMERS

    parser = argparse.ArgumentParser(prog="python -m crm", description="Reference CRM service")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("seed", "drop all CRM data and load the deterministic demo data set"),
        ("ensure-seeded", "create tables and seed only when there are no customers"),
    ):
        command = commands.add_parser(name, help=text)
        command.add_argument(
            "--customers",
            type=int,
            default=DEFAULT_CUSTOMERS,
            help=f"number of customers including the demo ones (default {DEFAULT_CUSTOMERS})",
        )
        command.add_argument(
            "--today", help="date the data is built around, YYYY-MM-DD " "(default: SEED_TODAY or today in the shop's timezone)"
        )
    serve = commands.add_parser("serve", help="run the HTTP API")
    serve.add_argument("--host", help="bind address (default CRM_HOST)")
    serve.add_argument("--port", type=int, help="port (default CRM_PORT)")
    args = parser.parse_args(argv)

    settings = load_settings()
    logs.configure_logging("crm", settings.log_format, text_format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "serve":
        _serve(settings, args.host, args.port)
    elif args.command == "seed":
        _seed(settings, _today(args.today, settings), args.customers)
    else:
        _ensure_seeded(settings, _today(args.today, settings), args.customers)
    return 0


if __name__ == "__main__":
    sys.exit(main())

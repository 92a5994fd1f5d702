"""Seed data: determinism, demo invariants for any date, consistency of ledgers and money."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
from pathlib import Path
from typing import Dict, List

import pytest

from crm.clock import Clock, last_day_of_month
from crm.db import Database, make_engine
from crm.models import Order
from crm.points import replay
from crm.policy import load_tiers
from crm.seed import DEMO_CUSTOMERS, Generator, dump_database, seed_database
from crm.service import Context, points_summary
from crm.tests.support import PYTHON, REPO, crm_env

DEMO_DOC = Path(__file__).resolve().parents[1] / "DEMO_CUSTOMERS.md"


def test_seed_is_deterministic(tmp_path: Path) -> None:
    """Two seeding processes (with different hash seeds) produce identical databases."""
    urls = [f"sqlite:///{tmp_path / f'seed{n}.sqlite3'}" for n in (1, 2)]
    processes = [
        subprocess.Popen(
            [PYTHON, "-m", "crm", "seed", "--today", "2026-03-15"],
            cwd=REPO,
            env=crm_env(url, tmp_path, PYTHONHASHSEED=str(n)),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for n, url in enumerate(urls)
    ]
    for process in processes:
        output, _ = process.communicate(timeout=120)
        assert process.returncode == 0, output.decode(errors="replace")
    dumps = []
    for url in urls:
        engine = make_engine(url, pool_size=1)
        dumps.append(dump_database(engine))
        engine.dispose()
    assert dumps[0] == dumps[1]
    assert len(dumps[0]["customers"]) == 400 and 2500 <= len(dumps[0]["orders"]) <= 3600
    assert len(dumps[0]["products"]) >= 75


def test_seed_today_from_environment(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'env.sqlite3'}"
    result = subprocess.run(
        [PYTHON, "-m", "crm", "seed", "--customers", "12"],
        cwd=REPO,
        env=crm_env(url, tmp_path, SEED_TODAY="2025-07-04"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "for 2025-07-04" in result.stdout
    again = subprocess.run(
        [PYTHON, "-m", "crm", "ensure-seeded"], cwd=REPO, env=crm_env(url, tmp_path), capture_output=True, text=True, timeout=60
    )
    assert again.returncode == 0 and "not seeding" in again.stdout


def test_ensure_seeded_fills_empty_database_under_var_dir(tmp_path: Path) -> None:
    var_dir = tmp_path / "nested" / "var"
    env = crm_env("", var_dir)
    env.pop("DATABASE_URL")
    result = subprocess.run(
        [PYTHON, "-m", "crm", "ensure-seeded", "--customers", "10", "--today", "2026-01-10"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert (var_dir / "crm.sqlite3").exists()


@pytest.mark.parametrize("today", ["2026-12-10", "2027-01-01", "2026-02-28", "2024-02-29"])
def test_demo_invariants_hold_for_any_date(tmp_path: Path, today: str) -> None:
    day = dt.date.fromisoformat(today)
    database = Database(f"sqlite:///{tmp_path / 'demo.sqlite3'}")
    seed_database(database.engine, day, customers=25)
    dump = dump_database(database.engine)
    columns = Order.__table__.columns.keys()
    orders = {row[0]: dict(zip(columns, row, strict=False)) for row in dump["orders"]}
    assert orders["880000010001"]["status"] == "in_transit"
    assert orders["880000010001"]["promised_date"] == day - dt.timedelta(days=2)
    assert orders["880000010002"]["status"] == "delivered"
    assert orders["880000020001"]["status"] == "in_transit"
    assert orders["880000020002"]["status"] == "awaiting_shipment"
    assert orders["880000030001"]["status"] == "completed"
    assert orders["880000040001"]["status"] == "delivered"
    assert orders["880000070001"]["status"] == "out_for_delivery"
    assert orders["880000080001"]["status"] == "pending_payment"

    class FixedClock(Clock):
        def today(self) -> dt.date:
            return day

    context = Context(FixedClock(dt.timezone(dt.timedelta(hours=8))), load_tiers())
    summary = database.run_write(points_summary, context, "C000001")
    expiring = {entry["expires_on"]: entry["points"] for entry in summary["expiring"]}
    assert expiring.get(last_day_of_month(day).isoformat(), 0) > 0
    assert summary["balance"] >= 5000
    customers = {row[0]: row for row in dump["customers"]}
    assert [customers[demo.customer_id][3] for demo in DEMO_CUSTOMERS] == [demo.tier for demo in DEMO_CUSTOMERS]
    database.dispose()


def test_generated_data_is_consistent() -> None:
    generator = Generator(dt.date(2026, 11, 22), customers=120)
    rows = generator.build()
    items: Dict[str, List[dict]] = {}
    for item in rows["order_items"]:
        items.setdefault(item["order_id"], []).append(item)
    for order in rows["orders"]:
        lines = items[order["order_id"]]
        assert order["subtotal_fen"] == sum(line["unit_price_fen"] * line["quantity"] for line in lines)
        assert sum(line["paid_fen"] for line in lines) == order["subtotal_fen"] - order["coupon_discount_fen"]
        assert order["paid_fen"] == order["subtotal_fen"] - order["coupon_discount_fen"] + order["shipping_fee_fen"]
        assert re.match(r"^\d{12}$", order["order_id"])
        if order["status"] in ("delivered", "completed"):
            assert order["signed_at"] is not None
        if order["status"] in ("pending_payment",):
            assert order["paid_at"] is None
    ledgers: Dict[str, list] = {}
    for entry in rows["points_ledger"]:
        ledgers.setdefault(entry["customer_id"], []).append(entry)
    for customer in rows["customers"]:
        entries = sorted(ledgers.get(customer["customer_id"], []), key=lambda e: e["created_at"])
        assert sum(e["delta"] for e in entries) == customer["points_balance"] >= 0
        lots = replay((e["delta"], e["expires_on"]) for e in entries)
        assert lots.balance == customer["points_balance"]
        assert lots.expired_before(dt.date(2026, 11, 22)) == 0
        assert re.match(r"^1[3-9]\d{9}$", customer["phone"])
    tracking = {"SF": r"^SF\d{12}$", "JD": r"^JD\d{13}$", "YT": r"^YT\d{13}$"}
    for shipment in rows["shipments"]:
        assert re.match(tracking[shipment["carrier"]], shipment["tracking_number"])
    assert len({c["phone"] for c in rows["customers"]}) == len(rows["customers"])


def test_demo_table_documents_every_demo_customer() -> None:
    document = DEMO_DOC.read_text(encoding="utf-8")
    for demo in DEMO_CUSTOMERS:
        row = next((line for line in document.splitlines() if line.startswith(f"| {demo.customer_id} ")), None)
        assert row is not None, demo.customer_id
        assert demo.name in row and demo.phone in row and demo.phone[-4:] in row and demo.tier in row

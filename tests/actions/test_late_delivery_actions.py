"""A late order on tracker fixtures against the real seeded CRM: the urge is filed with its answer
time, the compensation the policy allows is granted once, and a failing CRM hands the rest to a human.

Urges and grants change data, so they go to a CRM of this module's own.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest
from rasa_sdk.events import SlotSet

from actions import formatting
from actions.crm import CRMClient, CRMNotFound, CRMUnavailable, set_crm_client
from actions.delivery_policy import default_policy, urge_answer_due
from actions.loyalty_rules import points
from actions.order_tracking import describe_order, full_track_button
from actions.orders import ActionTrackOrder, now_in_shop, service_hours
from tests.support.crm import seeded_crm

from .conftest import fetch, load_tracker, proven_order, run_action

LATE_ORDER = "880000010001"
HUMAN = {"title": "转人工", "payload": '/human_agent{"handoff_reason":"policy_undecided"}'}  # a late order: the agent decides
FOLLOW_UP = "如需人工客服进一步跟进，请点“转人工”。"


@pytest.fixture(scope="module")
def own_crm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tuple[str, Path]]:
    """A CRM of this module's own (URL and SQLite file): urges and grants change data."""
    var_dir = tmp_path_factory.mktemp("late-crm")
    with seeded_crm(var_dir) as url:
        yield url, var_dir / "crm.sqlite3"


@pytest.fixture()
def crm_at(own_crm: Tuple[str, Path]) -> Iterator[str]:
    url, _ = own_crm
    set_crm_client(CRMClient(url, "dev-crm-key", timeout_s=2.0))
    yield url
    set_crm_client(None)


def entity(name: str, value: str) -> Dict[str, Any]:
    return {"entity": name, "value": value, "start": 0, "end": len(value), "extractor": "ShopPatternExtractor"}


def late_lines(text: str, order: Dict[str, Any]) -> List[str]:
    """The lines of a tracking answer after the order's status (what was done about the delay)."""
    status = describe_order(order, formatting.today_in_shop())
    assert text.startswith(status + "\n"), text
    return text[len(status) + 1:].splitlines()


def urge_due_is_the_policys(urge: Dict[str, Any]) -> None:
    created = formatting.parse_datetime(urge["created_at"])
    candidates = {urge_answer_due(default_policy(), created - dt.timedelta(seconds=seconds), service_hours()) for seconds in (0, 5)}
    assert formatting.parse_datetime(urge["answer_due_at"]) in candidates


def compensation_lines(url: str, customer_id: str, order_id: str) -> List[Dict[str, Any]]:
    ledger = fetch(url, f"/api/customers/{customer_id}/points/ledger?limit=50")["items"]
    return [entry for entry in ledger if entry["order_id"] == order_id and "延误补偿" in entry["reason"]]


def test_late_order_is_urged_and_compensated_once(crm_at):
    order = fetch(crm_at, f"/api/orders/{LATE_ORDER}")
    assert order["is_late"] and order["promised_date"] == (formatting.today_in_shop() - dt.timedelta(days=2)).isoformat()
    before = fetch(crm_at, "/api/customers/C000001")["points_balance"]

    events, messages = run_action(ActionTrackOrder(), load_tracker("signed_track_order"))
    assert events == [SlotSet("pending_flow", None), SlotSet("order_id", LATE_ORDER)]
    (message,) = messages
    (urge,) = fetch(crm_at, f"/api/orders/{LATE_ORDER}/urges")["items"]
    grant = fetch(crm_at, f"/api/orders/{LATE_ORDER}/late-compensation")
    assert (urge["target"], urge["carrier_name"], urge["open"]) == ("carrier", "顺丰速运", True)
    urge_due_is_the_policys(urge)
    # L4 金牌会员, 2 days late: 500 points doubled.
    assert (grant["points"], grant["days_late"], grant["balance"]) == (1000, 2, before + 1000)
    now = now_in_shop()
    assert late_lines(message["text"], order) == [
        f"我们已为您向顺丰速运催件，顺丰速运将在{formatting.when(formatting.parse_datetime(urge['answer_due_at']), now)} 前回复最新进度，"
        "回复会直接发到这个对话里告诉您。",
        f"按延误补偿规则（超出 2 天补偿 500 积分，金牌会员双倍），已为您补偿 1,000 积分，已到账，当前积分 {points(before + 1000)}。",
        FOLLOW_UP,
    ]
    assert message["buttons"] == [full_track_button(order), HUMAN]

    # Asking again (here by urging: 怎么还没到) files nothing new and grants nothing twice.
    events, messages = run_action(ActionTrackOrder(), load_tracker("signed_urge_delivery"))
    assert events == [SlotSet("pending_flow", None), SlotSet("order_id", LATE_ORDER)]
    now = now_in_shop()
    assert late_lines(messages[0]["text"], order) == [
        f"我们已于{formatting.when(formatting.parse_datetime(urge['created_at']), now)} 为您向顺丰速运催件，"
        f"顺丰速运将在{formatting.when(formatting.parse_datetime(urge['answer_due_at']), now)} 前回复最新进度，回复会直接发到这个对话里告诉您。",
        f"这个订单的延误补偿 1,000 积分已于{formatting.when(formatting.parse_datetime(grant['granted_at']), now)} "
        "发放到您的账户（每个订单补偿一次）。",
        FOLLOW_UP,
    ]
    assert messages[0]["buttons"] == [full_track_button(order), HUMAN]
    assert fetch(crm_at, "/api/customers/C000001")["points_balance"] == before + 1000
    assert fetch(crm_at, f"/api/orders/{LATE_ORDER}/urges")["total"] == 1
    assert [entry["delta"] for entry in compensation_lines(crm_at, "C000001", LATE_ORDER)] == [1000]


def late_order_of_another_customer(database: Path) -> Tuple[str, str, str, str]:
    """A non-demo late order in flight: (order id, customer id, tier, receiver phone tail)."""
    today = formatting.today_in_shop().isoformat()
    with sqlite3.connect(database) as connection:
        row = connection.execute(
            "SELECT o.order_id, o.customer_id, c.tier, o.receiver_phone FROM orders o JOIN customers c ON c.customer_id = o.customer_id "
            "WHERE o.status IN ('shipped', 'in_transit', 'out_for_delivery') AND o.promised_date < ? AND o.customer_id > 'C000009' "
            "ORDER BY o.order_id LIMIT 1",
            (today,),
        ).fetchone()
    assert row, "no late order in the seed"
    return row[0], row[1], row[2], row[3][-4:]



def test_without_the_promise_recorded_the_answer_is_not_promised_here(crm_at, monkeypatch: pytest.MonkeyPatch):
    # Redis is down: the urge's answer cannot be relayed into this conversation, so the reply does not say it will be.
    from zoneinfo import ZoneInfo

    import actions.orders
    from bot.redis_server import free_port
    from bot.settings import PROJECT_ROOT
    from handoff.context import HandoffContext, redis_client
    from handoff.policy import load_policy

    policy = load_policy(PROJECT_ROOT / "handoff" / "service.yml")
    dead = f"redis://127.0.0.1:{free_port()}/0"
    monkeypatch.setattr(actions.orders, "handoff_context", lambda: HandoffContext(redis_client(dead), policy, ZoneInfo("Asia/Shanghai")))
    _, messages = run_action(ActionTrackOrder(), load_tracker("signed_track_order"))
    lines = late_lines(messages[0]["text"], fetch(crm_at, f"/api/orders/{LATE_ORDER}"))
    assert "催件" in lines[0] and lines[0].endswith("前回复最新进度。") and "对话里" not in messages[0]["text"]
    assert lines[-1] == FOLLOW_UP

def test_anonymous_shopper_verified_by_phone_tail_is_compensated(crm_at, own_crm):
    order_id, customer_id, tier, tail = late_order_of_another_customer(own_crm[1])
    order = fetch(crm_at, f"/api/orders/{order_id}")
    late = (formatting.today_in_shop() - formatting.parse_date(order["promised_date"])).days
    expected = default_policy().steps
    base = [step.points for step in expected if step.min_days_late <= late][-1]
    factor = default_policy().tier_multiplier.get(tier, 1)
    tracker = load_tracker(
        "anonymous_track_order",
        latest_message={"intent": {"name": "inform", "confidence": 0.9}, "entities": [entity("order_id", order_id), entity("phone_last4", tail)]},
    )
    events, messages = run_action(ActionTrackOrder(), tracker)
    assert events == [
        SlotSet("verified_order_id", proven_order(tracker.sender_id, order_id)),
        SlotSet("failed_attempts", 0.0),
        SlotSet("order_id", order_id),
        SlotSet("phone_last4", None),
        SlotSet("pending_flow", None),
    ]
    grant = fetch(crm_at, f"/api/orders/{order_id}/late-compensation")
    assert grant["points"] == base * factor and grant["customer_id"] == customer_id
    lines = late_lines(messages[0]["text"], order)
    carrier = order["shipment"]["carrier_name"]
    assert lines[0].startswith(f"我们已为您向{carrier}催件，{carrier}将在") and lines[0].endswith("回复会直接发到这个对话里告诉您。")
    assert lines[1].startswith(f"按延误补偿规则（超出 {late} 天补偿 {points(base)} 积分")
    assert f"已为您补偿 {points(base * factor)} 积分，已到账" in lines[1]
    assert messages[0]["buttons"][-1] == HUMAN


class FailingLateDeliveryCRM(CRMClient):
    """The real CRM, except that urges and compensation fail the way ``error`` says."""

    def __init__(self, url: str, error: Exception) -> None:
        super().__init__(url, "dev-crm-key", timeout_s=2.0)
        self.error = error

    async def urge_order(self, order_id, answer_due_at=None):
        raise self.error

    async def grant_late_compensation(self, order_id, points, idempotency_key):
        raise self.error


@pytest.mark.parametrize(
    "error",
    [CRMUnavailable("POST /api/orders/x/urge: TimeoutError"), CRMNotFound(404, "not_found", "接口不存在")],
    ids=["crm-down", "crm-without-the-routes"],
)
def test_failing_urge_and_compensation_still_tell_the_status_and_offer_a_human(own_crm, error):
    url, _ = own_crm
    order = fetch(url, f"/api/orders/{LATE_ORDER}")
    set_crm_client(FailingLateDeliveryCRM(url, error))
    try:
        events, messages = run_action(ActionTrackOrder(), load_tracker("signed_track_order"))
    finally:
        set_crm_client(None)
    assert events == [SlotSet("pending_flow", None), SlotSet("order_id", LATE_ORDER)]
    assert late_lines(messages[0]["text"], order) == ["抱歉，催件和延误补偿这次没能在系统里办理成功，将由人工客服为您处理，请点“转人工”。"]
    assert "非常抱歉，这个订单承诺" in messages[0]["text"] and order["shipment"]["tracking_number"] in messages[0]["text"]
    assert messages[0]["buttons"] == [full_track_button(order), HUMAN]


def test_an_order_on_time_is_neither_urged_nor_compensated(crm_at):
    tracker = load_tracker("signed_track_order", signed_as="C000007")
    events, messages = run_action(ActionTrackOrder(), tracker)
    assert events == [SlotSet("pending_flow", None), SlotSet("order_id", "880000070001")]
    order = fetch(crm_at, "/api/orders/880000070001")
    assert len(messages) == 1
    assert messages[0]["text"] == describe_order(order, formatting.today_in_shop())
    assert messages[0]["buttons"] == [full_track_button(order)]
    assert fetch(crm_at, "/api/orders/880000070001/urges")["total"] == 0

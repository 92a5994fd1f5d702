"""Points and membership end to end: app channel → Rasa → action server → CRM over HTTP."""

from __future__ import annotations

import pytest

from actions import formatting
from actions import loyalty_rules as rules

from .conftest import RunningStack, buttons, new_sender, texts

pytestmark = pytest.mark.integration

CLOSING = "还有什么可以帮您的吗？"


def test_points_balance_and_expiry_match_the_crm(running_stack: RunningStack) -> None:
    summary = running_stack.crm("/api/customers/C000001/points")
    today = formatting.today_in_shop()
    sender = new_sender()
    status, replies = running_stack.say(sender, "我有多少积分", "C000001")
    assert status == 200
    reply = texts(replies)
    assert f"您当前可用积分 {rules.points(summary['balance'])}" in reply
    assert rules.expiry_phrase(rules.upcoming_expiries(summary["expiring"], today)[0], today) in reply
    assert reply.endswith(CLOSING)

    status, replies = running_stack.say(sender, "这个月有多少积分过期", "C000001")
    assert status == 200
    reply = texts(replies)
    this_month = rules.expiring_this_month(summary["expiring"], today)
    assert f"本月有 {rules.points(this_month)} 积分到期" in reply
    assert "次年的 12 月 31 日过期" in reply


def test_tier_and_the_exact_gap_to_the_next_one(running_stack: RunningStack) -> None:
    customer = running_stack.crm("/api/customers/C000002")
    status, replies = running_stack.say(new_sender(), "我的会员等级", "C000002")
    assert status == 200
    reply = texts(replies)
    assert f"{customer['tier_name']}（{customer['tier']}）" in reply
    assert f"再累计 {rules.points(customer['next_tier']['growth_missing'])} 成长值" in reply
    assert "权益" in reply


def test_redeem_with_a_faq_in_between_is_made_exactly_once(running_stack: RunningStack) -> None:
    before = running_stack.crm("/api/customers/C000006/points")["balance"]
    sender = new_sender()
    status, replies = running_stack.say(sender, "积分兑换", "C000006")
    assert status == 200
    choice = next(button for button in buttons(replies) if '"CP0005"' in button["payload"])

    status, replies = running_stack.say(sender, choice["payload"], "C000006")
    assert status == 200
    assert f"兑换后您的积分从 {rules.points(before)} 变为 {rules.points(before - 500)}" in texts(replies)

    status, replies = running_stack.say(sender, "运费怎么算", "C000006")
    assert status == 200
    assert "我们接着刚才的事情" in texts(replies)
    assert running_stack.crm("/api/customers/C000006/points")["balance"] == before

    status, replies = running_stack.say(sender, "确认", "C000006")
    assert status == 200
    after = running_stack.crm("/api/customers/C000006/points")["balance"]
    assert after == before - 500
    assert f"剩余 {rules.points(after)} 积分" in texts(replies)
    assert texts(replies).endswith(CLOSING)

    status, replies = running_stack.say(sender, "确认", "C000006")
    assert status == 200
    assert running_stack.crm("/api/customers/C000006/points")["balance"] == after


def test_stopping_a_redemption_spends_nothing(running_stack: RunningStack) -> None:
    before = running_stack.crm("/api/customers/C000003/points")["balance"]
    sender = new_sender()
    running_stack.say(sender, "我想用积分兑换", "C000003")
    running_stack.say(sender, '/points_redeem{"coupon_id":"CP0010"}', "C000003")
    status, replies = running_stack.say(sender, "算了", "C000003")
    assert status == 200
    assert "积分没有变动" in texts(replies)
    status, replies = running_stack.say(sender, "确认", "C000003")
    assert status == 200
    assert running_stack.crm("/api/customers/C000003/points")["balance"] == before


def test_not_enough_points_is_explained(running_stack: RunningStack) -> None:
    status, replies = running_stack.say(new_sender(), "积分兑换", "C000009")
    assert status == 200
    assert "还差" in texts(replies)


@pytest.mark.parametrize("question", ["我有多少积分", "我的会员等级", "积分兑换"])
def test_anonymous_shopper_learns_nothing_about_points(running_stack: RunningStack, question: str) -> None:
    summary = running_stack.crm("/api/customers/C000001/points")
    for signature in (None, "00" * 32):
        if signature is None:
            status, replies = running_stack.say(new_sender(), question)
        else:
            status, replies = running_stack.say(new_sender(), question, "C000001", signature=signature)
        assert status == 200
        reply = texts(replies)
        assert "登录" in reply
        assert rules.points(summary["balance"]) not in reply
        assert "金牌" not in reply


def test_a_verified_order_does_not_open_the_account(running_stack: RunningStack) -> None:
    order = running_stack.crm("/api/orders/880000010001")
    sender = new_sender()
    running_stack.say(sender, "我的快递到哪了")
    status, replies = running_stack.say(sender, f"{order['order_id']} 尾号{order['receiver_phone'][-4:]}")
    assert status == 200 and order["order_id"] in texts(replies)
    status, replies = running_stack.say(sender, "我有多少积分")
    assert status == 200
    assert "登录" in texts(replies)


def test_crm_down_gives_an_honest_answer_and_a_human(running_stack: RunningStack) -> None:
    with running_stack.stopped("crm"):
        status, replies = running_stack.say(new_sender(), "我有多少积分", "C000001")
        assert status == 200
        assert "暂时没有响应" in texts(replies)
        assert {"title": "转人工", "payload": "/human_agent"} in buttons(replies)

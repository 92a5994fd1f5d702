"""Cancelling orders and changing addresses end to end: app channel → Rasa → actions → CRM.

Only C000008's pending order is cancelled; C000002's awaiting-shipment order is re-addressed to
the same receiver name and phone, so the other tests' facts about both customers stay true.
"""

from __future__ import annotations

import pytest

from .conftest import RunningStack, buttons, new_sender, texts

pytestmark = pytest.mark.integration

CLOSING = "还有什么可以帮您的吗？"
HUMAN = {"title": "转人工", "payload": "/human_agent"}


def test_cancel_a_pending_order_with_confirmation(running_stack: RunningStack) -> None:
    assert running_stack.crm("/api/orders/880000080001")["status"] == "pending_payment"
    sender = new_sender()
    status, replies = running_stack.say(sender, "我要取消订单", "C000008")
    assert status == 200
    assert "请确认是否取消订单 880000080001" in texts(replies)
    assert running_stack.crm("/api/orders/880000080001")["status"] == "pending_payment"

    status, replies = running_stack.say(sender, "确认", "C000008")
    assert status == 200
    order = running_stack.crm("/api/orders/880000080001")
    assert order["status"] == "cancelled"
    reply = texts(replies)
    assert "订单 880000080001 已为您取消" in reply and "不会产生任何费用" in reply
    assert reply.endswith(CLOSING)


def test_a_shipped_order_is_refused_with_alternatives_and_a_human(running_stack: RunningStack) -> None:
    sender = new_sender()
    status, replies = running_stack.say(sender, "取消订单", "C000002")
    assert status == 200
    payloads = [button["payload"] for button in buttons(replies)]
    assert '/cancel_order{"order_id":"880000020001"}' in payloads and '/cancel_order{"order_id":"880000020002"}' in payloads
    status, replies = running_stack.say(sender, '/cancel_order{"order_id":"880000020001"}', "C000002")
    assert status == 200
    reply = texts(replies)
    assert "已经发货" in reply and "拒收" in reply and "JD0880000020001" in reply
    assert HUMAN in buttons(replies)
    assert running_stack.crm("/api/orders/880000020001")["status"] == "in_transit"


def test_correction_then_stop_changes_nothing(running_stack: RunningStack) -> None:
    sender = new_sender()
    running_stack.say(sender, "取消订单", "C000002")
    status, replies = running_stack.say(sender, '/cancel_order{"order_id":"880000020002"}', "C000002")
    assert "请确认是否取消订单 880000020002" in texts(replies)
    status, replies = running_stack.say(sender, "不是这个订单，是另一个", "C000002")
    assert status == 200
    assert [button["payload"] for button in buttons(replies)] == ['/cancel_order{"order_id":"880000020001"}']
    status, replies = running_stack.say(sender, "算了", "C000002")
    assert status == 200
    assert texts(replies).endswith(CLOSING)
    status, replies = running_stack.say(sender, "确认", "C000002")
    assert running_stack.crm("/api/orders/880000020002")["status"] == "awaiting_shipment"


def test_change_the_address_with_a_faq_in_between(running_stack: RunningStack) -> None:
    order = running_stack.crm("/api/orders/880000020002")
    new_address = "上海市浦东新区张江路100号3号楼502室"
    sender = new_sender()
    status, replies = running_stack.say(sender, "我要改收货地址", "C000002")
    assert status == 200
    status, replies = running_stack.say(sender, '/change_address{"order_id":"880000020002"}', "C000002")
    assert status == 200
    assert "139****4321" in texts(replies) and "13987654321" not in texts(replies)

    status, replies = running_stack.say(sender, "运费怎么算", "C000002")
    assert status == 200 and "我们接着刚才的事情" in texts(replies)

    status, replies = running_stack.say(sender, f"{order['receiver_name']} {order['receiver_phone']} {new_address}", "C000002")
    assert status == 200
    reply = texts(replies)
    assert "手机号：139****4321" in reply and order["receiver_phone"] not in reply and new_address in reply

    status, replies = running_stack.say(sender, "确认", "C000002")
    assert status == 200
    changed = running_stack.crm("/api/orders/880000020002")
    assert (changed["receiver_name"], changed["receiver_phone"], changed["address"]) == (
        order["receiver_name"], order["receiver_phone"], new_address)
    reply = texts(replies)
    assert "已为您修改订单 880000020002 的收货信息" in reply and order["receiver_phone"] not in reply
    assert reply.endswith(CLOSING)


def test_another_customers_order_is_refused_like_an_unknown_one(running_stack: RunningStack) -> None:
    status, refused = running_stack.say(new_sender(), "帮我把订单 880000020002 取消", "C000009")
    assert status == 200
    status, unknown = running_stack.say(new_sender(), "帮我把订单 999999999999 取消", "C000009")
    assert texts(refused).replace("880000020002", "X") == texts(unknown).replace("999999999999", "X")
    assert "平凡的世界" not in texts(refused)
    assert running_stack.crm("/api/orders/880000020002")["status"] == "awaiting_shipment"


def test_an_anonymous_shopper_is_asked_to_log_in_and_nothing_is_shown_or_changed(running_stack: RunningStack) -> None:
    sender = new_sender()
    status, replies = running_stack.say(sender, "我要改地址")
    assert status == 200 and "登录" in texts(replies) and HUMAN in buttons(replies)
    status, replies = running_stack.say(sender, "880000020002 尾号4321")
    assert status == 200
    assert "中关村" not in texts(replies) and "确认修改" not in texts(replies)
    assert running_stack.crm("/api/orders/880000020002")["status"] == "awaiting_shipment"


def test_crm_down_mid_flow_is_said_honestly(running_stack: RunningStack) -> None:
    sender = new_sender()
    running_stack.say(sender, "取消订单", "C000002")
    status, replies = running_stack.say(sender, '/cancel_order{"order_id":"880000020002"}', "C000002")
    assert "请确认是否取消订单 880000020002" in texts(replies)
    with running_stack.stopped("crm"):
        status, replies = running_stack.say(sender, "确认", "C000002")
        assert status == 200
        assert "暂时没有响应" in texts(replies)
        assert HUMAN in buttons(replies)
    status, replies = running_stack.say(sender, "算了", "C000002")
    assert status == 200
    assert running_stack.crm("/api/orders/880000020002")["status"] == "awaiting_shipment"

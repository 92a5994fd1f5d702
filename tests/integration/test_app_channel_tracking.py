"""Order tracking end to end: app channel → Rasa → action server → CRM over HTTP, on real Redis."""

from __future__ import annotations

import pytest

from actions.order_tracking import IN_FLIGHT, status_label

from .conftest import RunningStack, http_json, new_sender, texts

pytestmark = pytest.mark.integration


def in_flight_orders(stack: RunningStack, customer_id: str):
    orders = stack.crm(f"/api/customers/{customer_id}/orders?limit=50")["items"]
    return [order for order in orders if order["status"] in IN_FLIGHT]


def assert_reply_matches_order(reply_text: str, order) -> None:
    assert order["order_id"] in reply_text
    assert status_label(order) in reply_text
    shipment = order.get("shipment")
    if shipment:
        assert shipment["tracking_number"] in reply_text
        latest = max(shipment["events"], key=lambda event: event["time"])
        assert latest["description"] in reply_text
        assert latest["location"] in reply_text


@pytest.mark.parametrize("question", ["我的快递到哪了", "亲 我的订单到哪了？？", "物流信息查一下"])
def test_signed_customer_gets_the_crm_status_of_their_order(running_stack: RunningStack, question: str) -> None:
    (order,) = in_flight_orders(running_stack, "C000001")
    status, replies = running_stack.say(new_sender(), question, "C000001")
    assert status == 200
    reply = texts(replies)
    assert_reply_matches_order(reply, running_stack.crm(f"/api/orders/{order['order_id']}"))
    if order.get("is_late"):
        assert "非常抱歉" in reply


def test_wrong_signature_reveals_nothing(running_stack: RunningStack) -> None:
    (order,) = in_flight_orders(running_stack, "C000001")
    status, replies = running_stack.say(new_sender(), "我的快递到哪了", "C000001", signature="00" * 32)
    assert status == 200
    reply = texts(replies)
    assert order["order_id"] not in reply
    assert order["shipment"]["tracking_number"] not in reply
    assert "核实" in reply


def test_several_orders_in_flight_offer_buttons_that_work(running_stack: RunningStack) -> None:
    orders = in_flight_orders(running_stack, "C000002")
    assert len(orders) >= 2
    sender = new_sender()
    status, replies = running_stack.say(sender, "我买的东西到哪了", "C000002")
    assert status == 200
    buttons = [button for reply in replies for button in reply.get("buttons", [])]
    assert {order["order_id"] for order in orders} == {b["payload"].split('"')[3] for b in buttons}
    chosen = orders[1]
    status, replies = running_stack.say(sender, next(b["payload"] for b in buttons if chosen["order_id"] in b["payload"]), "C000002")
    assert status == 200
    assert_reply_matches_order(texts(replies), running_stack.crm(f"/api/orders/{chosen['order_id']}"))


def test_customer_cannot_see_another_customers_order(running_stack: RunningStack) -> None:
    (other,) = in_flight_orders(running_stack, "C000001")
    status, replies = running_stack.say(new_sender(), f"帮我查下订单 {other['order_id']} 到哪了", "C000002")
    assert status == 200
    reply = texts(replies)
    assert "没有找到" in reply
    assert other["shipment"]["tracking_number"] not in reply
    assert status_label(other) not in reply
    status, unknown = running_stack.say(new_sender(), "帮我查下订单 999999999999 到哪了", "C000002")
    assert texts(unknown).replace("999999999999", other["order_id"]) == reply


def test_anonymous_shopper_verifies_with_order_number_and_phone_tail(running_stack: RunningStack) -> None:
    (order,) = in_flight_orders(running_stack, "C000001")
    tail = order["receiver_phone"][-4:]
    wrong_tail = f"{(int(tail) + 1) % 10000:04d}"
    sender = new_sender()
    status, replies = running_stack.say(sender, "我的快递到哪了")
    assert status == 200 and "后四位" in texts(replies)
    status, replies = running_stack.say(sender, f"订单号 {order['order_id']} 尾号{wrong_tail}")
    assert status == 200
    assert "没能对上" in texts(replies)
    assert order["shipment"]["tracking_number"] not in texts(replies)
    status, replies = running_stack.say(sender, f"{order['order_id']} 尾号{tail}")
    assert status == 200
    assert_reply_matches_order(texts(replies), running_stack.crm(f"/api/orders/{order['order_id']}"))


def test_two_failed_verifications_offer_a_human(running_stack: RunningStack) -> None:
    sender = new_sender()
    for _ in range(2):
        status, replies = running_stack.say(sender, "订单号 202611159999 尾号0000")
        assert status == 200
    assert "连续 2 次" in texts(replies)
    assert any(button["payload"] == "/human_agent" for reply in replies for button in reply.get("buttons", []))


def test_conversation_of_one_customer_cannot_be_used_by_another(running_stack: RunningStack) -> None:
    sender = new_sender()
    assert running_stack.say(sender, "你好", "C000001")[0] == 200
    status, body = running_stack.say(sender, "我的快递到哪了", "C000002")
    assert status == 403
    assert body["error"]["code"]
    status, body = running_stack.say(sender, "我的快递到哪了")
    assert status == 403


def test_action_server_down_gives_an_error_status_not_an_empty_200(running_stack: RunningStack) -> None:
    with running_stack.stopped("action-server", restart_timeout_s=90):
        status, body = running_stack.say(new_sender(), "我的快递到哪了", "C000001")
        assert status == 502
        assert body["error"]["code"] == "action_server_unreachable"
        assert body["error"]["message"]
    status, replies = running_stack.say(new_sender(), "我的快递到哪了", "C000001")
    assert status == 200 and texts(replies)


def test_crm_down_gives_an_honest_answer_and_a_human(running_stack: RunningStack) -> None:
    with running_stack.stopped("crm"):
        status, replies = running_stack.say(new_sender(), "我的快递到哪了", "C000001")
        assert status == 200
        assert "暂时没有响应" in texts(replies)
        assert any(button["payload"] == "/human_agent" for reply in replies for button in reply.get("buttons", []))


def test_channel_health(running_stack: RunningStack) -> None:
    status, body = http_json("GET", f"{running_stack.app_url}/")
    assert status == 200 and body["status"] == "ok"


def test_late_order_is_urged_compensated_once_and_shows_its_full_track(running_stack: RunningStack) -> None:
    (order,) = in_flight_orders(running_stack, "C000001")
    assert order["is_late"]
    sender = new_sender()
    status, replies = running_stack.say(sender, "怎么还没到啊 都超时两天了", "C000001")
    assert status == 200
    reply = texts(replies)
    assert "非常抱歉" in reply and "催件" in reply and "前回复最新进度" in reply
    grant = running_stack.crm(f"/api/orders/{order['order_id']}/late-compensation")
    assert "延误补偿" in reply and f"{grant['points']:,} 积分" in reply
    balance = running_stack.crm("/api/customers/C000001")["points_balance"]
    status, again = running_stack.say(sender, "我的快递到哪了", "C000001")
    assert status == 200 and "每个订单补偿一次" in texts(again)
    assert running_stack.crm("/api/customers/C000001")["points_balance"] == balance
    assert running_stack.crm(f"/api/orders/{order['order_id']}/urges")["total"] == 1
    buttons = [button for reply in again for button in reply.get("buttons", [])]
    assert {"title": "转人工", "payload": '/human_agent{"handoff_reason":"policy_undecided"}'} in buttons
    full = next(button for button in buttons if button["title"] == "查看完整物流")
    status, track = running_stack.say(sender, full["payload"], "C000001")
    assert status == 200
    lines = texts(track).splitlines()
    events = sorted(order["shipment"]["events"], key=lambda event: event["time"])
    assert len([line for line in lines if line[:1].isdigit()]) == len(events)
    for number, event in enumerate(events, start=1):
        assert any(line.startswith(f"{number}. ") and event["description"] in line and event["location"] in line for line in lines)


@pytest.mark.parametrize("question", ["物流详情", "把完整物流发我看看"])
def test_full_track_asked_in_words(running_stack: RunningStack, question: str) -> None:
    order = running_stack.crm("/api/orders/880000070001")
    status, replies = running_stack.say(new_sender(), question, "C000007")
    assert status == 200
    reply = texts(replies)
    assert "完整物流" in reply and "从早到晚" in reply
    assert all(event["description"] in reply for event in order["shipment"]["events"])

"""Human handoff end to end: app channel → Rasa → action server → Redis queue → agent desk → back.

The stack of ``make run`` on free ports (with the desk), an always-open copy of the service policy
so the tests do not depend on the time of day, and the demo agents of ``desk/agents.yml``.
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest

from bot import launcher
from bot.identity import purpose_key
from bot.redis_server import RedisServer, free_port
from bot.settings import load_settings
from bot.tracker_store import TrackerCipher
from handoff import keys
from tests.support.desk import write_policy
from tests.support.handoff import sync_client
from tests.support.waiting import wait_for

from .conftest import RunningStack, http_json, texts

pytestmark = pytest.mark.integration


@dataclasses.dataclass
class HandoffStack(RunningStack):
    """The running stack plus handles on the desk and the handoff's Redis."""

    redis_url: str = ""
    tokens: Dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def desk_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.desk_port}"

    def login(self, agent: str) -> str:
        status, body = http_json("POST", f"{self.desk_url}/api/login", {"username": agent, "password": f"{agent}-pass"})
        assert status == 200, body
        self.tokens[agent] = body["token"]
        return str(body["token"])

    def logout_everyone(self) -> None:
        for agent, token in list(self.tokens.items()):
            http_json("POST", f"{self.desk_url}/api/logout", headers={"Authorization": f"Bearer {token}"})
            del self.tokens[agent]

    def desk(self, method: str, path: str, agent: str, body: Any = None) -> Tuple[int, Any]:
        return http_json(method, f"{self.desk_url}{path}", body, headers={"Authorization": f"Bearer {self.tokens[agent]}"})

    def messages(self, sender: str, customer_id: str, after: str = "") -> Tuple[List[Dict[str, Any]], str]:
        query = f"?after={after}" if after else ""
        status, body = http_json("GET", f"{self.app_url}/messages/{sender}{query}",
                                 headers={"X-Identity-Token": self.identity_token(customer_id)})
        assert status == 200, body
        return body["messages"], body["cursor"]


@pytest.fixture(scope="module")
def handoff_stack(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer, trained_model: Path) -> Iterator[HandoffStack]:
    var_dir = tmp_path_factory.mktemp("handoff-stack")
    policy = write_policy(var_dir / "service.yml")
    redis_url = f"redis://127.0.0.1:{redis_server.port}/2"
    settings = dataclasses.replace(
        load_settings({}), var_dir=var_dir, redis_url=redis_url, crm_port=free_port(), action_port=free_port(),
        rasa_port=free_port(), desk_port=free_port(), shop_port=free_port(), handoff_policy_file=policy, rasa_workers=1,
    )
    stack = launcher.Stack(settings)
    try:
        launcher.start_services(stack, trained_model)
        yield HandoffStack(stack.settings, stack, redis_url=redis_url)
    finally:
        stack.stop()


@pytest.fixture()
def agents_online(handoff_stack: HandoffStack) -> Iterator[HandoffStack]:
    handoff_stack.login("agent1")
    handoff_stack.login("agent2")
    yield handoff_stack
    handoff_stack.logout_everyone()


def new_sender() -> str:
    return f"h-{uuid.uuid4().hex[:16]}"


def queue_item(stack: HandoffStack, sender: str, agent: str = "agent1") -> Dict[str, Any]:
    """The conversation's entry in the queue once it has the bot's full summary."""
    def find() -> Any:
        _, body = stack.desk("GET", "/api/queue", agent)
        return next((item for item in body["waiting"] if item["sender"] == sender and not item["summary_pending"]), None)

    return wait_for(find, timeout_s=10)


def tracker_user_texts(stack: HandoffStack, sender: str) -> List[str]:
    raw = sync_client(stack.redis_url).get(f"tracker:tracker:{sender}")  # the tracker store with key_prefix "tracker"
    assert raw, "the tracker is in Redis"
    cipher = TrackerCipher(purpose_key(stack.settings.shop_identity_secret, "tracker"))
    assert cipher.is_sealed(raw), "trackers are encrypted at rest"
    events = json.loads(cipher.open(sender, raw))["events"]
    return [event.get("text") for event in events if event.get("event") == "user"]


def test_demo_shopper_to_agent_and_back_to_the_bot(agents_online: HandoffStack) -> None:
    stack = agents_online
    sender = new_sender()
    status, replies = stack.say(sender, "我的快递到哪了", "C000001")
    assert status == 200 and "880000010001" in texts(replies)

    started = time.monotonic()
    status, replies = stack.say(sender, "转人工", "C000001")
    assert status == 200, replies
    notice = texts(replies)
    assert "正在为您转接人工客服" in notice and "优先队列" in notice and "预计" in notice and "分钟" in notice, notice
    assert "稍后" not in notice
    item = queue_item(stack, sender)
    entered_s = time.monotonic() - started
    assert entered_s < 10
    assert item["lane"] == "priority" and item["tier"] == "L4" and item["who"]["verified"]

    status, view = stack.desk("GET", f"/api/conversations/{sender}", "agent1")
    assert status == 200 and not view["summary_pending"]
    record = sync_client(stack.redis_url).hgetall(keys.record(view["handoff"]["handoff_id"]))
    assert float(record["refined_at"]) >= float(record["queued_at"])  # the channel queued the explicit 「转人工」, the bot's turn completed it
    summary = view["summary_text"]
    assert "张*（138****5678）" in summary and "L4 金牌会员" in summary and "已验证（商城登录）" in summary
    assert "880000010001" in summary and "查询物流" in summary and "顾客要求人工" in summary and "最近对话" in summary
    assert "13812345678" not in summary

    status, body = stack.desk("POST", f"/api/conversations/{sender}/claim", "agent1")
    assert status == 200, body
    status, body = stack.desk("POST", f"/api/conversations/{sender}/claim", "agent2")
    assert status == 409 and body["error"]["code"] == "already_claimed"

    _, cursor = stack.messages(sender, "C000001")
    sent = time.monotonic()
    status, body = stack.desk("POST", f"/api/conversations/{sender}/messages", "agent1", {"text": "您好，我是客服小王，正在为您查这个包裹。"})
    assert status == 201, body
    delivered, cursor = wait_for(lambda: (lambda m: m if m[0] else None)(stack.messages(sender, "C000001", cursor)), timeout_s=1.0, interval_s=0.02)
    assert time.monotonic() - sent < 1.0
    assert delivered[-1]["text"] == "您好，我是客服小王，正在为您查这个包裹。" and delivered[-1]["from"] == "agent"

    for text in ("顺丰说明天到，靠谱吗", "我明天下午不在家", "能不能放快递柜"):
        status, body = stack.say(sender, text, "C000001")
        assert status == 202 and body["status"] == "with_agent" and body["agent"] == "小王", body
    _, view = stack.desk("GET", f"/api/conversations/{sender}", "agent1")
    shopper_lines = [e["text"] for e in view["transcript"] if e["from"] == "shopper"]
    assert shopper_lines == ["顺丰说明天到，靠谱吗", "我明天下午不在家", "能不能放快递柜"]
    assert tracker_user_texts(stack, sender) == ["我的快递到哪了", "转人工"]  # the bot never saw them

    status, body = stack.desk("POST", f"/api/conversations/{sender}/resolve", "agent1", {"code": "resolved"})
    assert status == 200, body
    pushed, cursor = stack.messages(sender, "C000001", cursor)
    prompt = pushed[-1]
    assert "打个分" in prompt["text"] and prompt["buttons"][0]["payload"] == '/rate_service{"rating":"5"}'

    status, replies = stack.say(sender, prompt["buttons"][0]["payload"], "C000001")
    assert status == 200 and "5 分" in texts(replies), replies
    record = sync_client(stack.redis_url).hgetall(keys.record(view["handoff"]["handoff_id"]))
    assert record["rating"] == "5" and record["resolution_code"] == "resolved"

    status, replies = stack.say(sender, "谢谢", "C000001")
    assert status == 200 and texts(replies), replies  # the bot answers again, its state intact
    assert tracker_user_texts(stack, sender)[:2] == ["我的快递到哪了", "转人工"]

    # the same shopper returning later is offered to agent1 first
    again = new_sender()
    status, replies = stack.say(again, "转人工", "C000001")
    assert status == 200
    item = queue_item(stack, again, "agent2")
    assert item["offered_to"] == "agent1" and not item["claimable"]
    status, body = stack.desk("POST", f"/api/conversations/{again}/claim", "agent2")
    assert status == 409 and body["error"]["code"] == "offered_to_other"
    assert stack.desk("POST", f"/api/conversations/{again}/claim", "agent1")[0] == 200
    assert stack.desk("POST", f"/api/conversations/{again}/resolve", "agent1", {"code": "info_only"})[0] == 200


def test_waiting_shopper_hears_position_and_messages_stay_in_order(agents_online: HandoffStack) -> None:
    stack = agents_online
    first, second = new_sender(), new_sender()
    assert stack.say(first, "转人工", "C000002")[0] == 200
    queue_item(stack, first)
    status, replies = stack.say(second, "人工客服", "C000003")
    assert status == 200 and "您前面还有 1 位顾客" in texts(replies), replies
    queue_item(stack, second)
    for n in range(5):
        status, body = stack.say(second, f"第{n + 1}条补充说明", "C000003")
        assert status == 202 and body["status"] == "queued" and body["position"] == 2, body
        assert body["eta_minutes"] >= 1 and "您前面还有 1 位顾客" in body["notice"]
    _, view = stack.desk("GET", f"/api/conversations/{second}", "agent2")
    assert [e["text"] for e in view["transcript"]] == [f"第{n + 1}条补充说明" for n in range(5)]

    assert stack.desk("POST", f"/api/conversations/{first}/claim", "agent1")[0] == 200
    # the leader pushes the new position to the second shopper
    update = wait_for(lambda: next((m for m in stack.messages(second, "C000003")[0] if m.get("queue_position") == 1), None), timeout_s=10)
    assert "您已排到第 1 位" in update["text"]
    status, replies = stack.say(second, "取消人工", "C000003")
    assert status == 200 and "已为您取消人工排队" in texts(replies)
    status, replies = stack.say(second, "谢谢", "C000003")
    assert status == 200
    assert stack.desk("POST", f"/api/conversations/{first}/resolve", "agent1", {"code": "resolved"})[0] == 200


def test_two_misunderstandings_in_a_row_hand_off(agents_online: HandoffStack) -> None:
    stack = agents_online
    sender = new_sender()
    status, replies = stack.say(sender, "zxcvb", "C000004")  # letters without meaning: the NLU falls back
    assert status == 200 and "没太明白" in texts(replies), replies
    status, replies = stack.say(sender, "zxcvb", "C000004")
    assert status == 200 and "正在为您转接人工客服" in texts(replies), replies
    item = queue_item(stack, sender)
    assert item["reason"] == "fallback"
    assert stack.desk("POST", f"/api/conversations/{sender}/claim", "agent2")[0] == 200
    assert stack.desk("POST", f"/api/conversations/{sender}/resolve", "agent2", {"code": "info_only"})[0] == 200


def test_complaint_with_no_agent_online_books_a_callback(handoff_stack: HandoffStack) -> None:
    stack = handoff_stack
    stack.logout_everyone()
    sender = new_sender()
    status, replies = stack.say(sender, "我要投诉快递员", "C000006")
    assert status == 200
    text = texts(replies)
    assert "现在人工客服都不在线" in text and "已为您登记人工回访" in text and "–" in text and "稍后" not in text, text
    status, replies = stack.say(sender, "谢谢", "C000006")
    assert status == 200  # the bot keeps helping meanwhile
    stack.login("agent1")
    try:
        _, body = stack.desk("GET", "/api/callbacks", "agent1")
        ticket = next(c for c in body["callbacks"] if c["sender"] == sender)
        assert ticket["reason"] in ("complaint", "angry") and ticket["after_sales"] and not ticket["overdue"]
        assert ticket["phone_masked"] == "177****9999" and "【转人工摘要】" in ticket["summary_text"]
        assert ticket["window_end"] - ticket["window_start"] == 3600
    finally:
        stack.logout_everyone()

"""The demo shop page in a real browser, over the whole stack of ``make run`` (two Rasa workers):
log in as a demo customer → ask where the parcel is → click the bot's button → 「转人工」 → an agent
claims the chat on the desk and replies → the reply appears in the widget, marked as a human's."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Dict, Iterator, Tuple

import pytest
import redis

from bot import launcher
from bot.redis_server import RedisServer, free_port
from bot.settings import load_settings
from tests.integration.conftest import RunningStack, http_json, trained_model  # noqa: F401  (trained_model: a fixture)
from tests.support.desk import write_policy
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

CUSTOMER = "C000001"
REDIS_DB = 3
"""Database of the session's Redis this module's stack uses (the others use 1 and 2)."""


@dataclasses.dataclass
class ShopStack(RunningStack):
    """The running stack with the shop page, the desk as agents use it, and its Redis."""

    redis_url: str = ""

    @property
    def shop_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.shop_port}"

    def desk(self, method: str, path: str, token: str = "", body: Any = None) -> Tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return http_json(method, f"http://127.0.0.1:{self.settings.desk_port}{path}", body, headers=headers)


@pytest.fixture(scope="module")
def shop_stack(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer, trained_model: Path) -> Iterator[ShopStack]:  # noqa: F811
    """``launcher.start_services`` on free ports as ``running_stack`` does, with an always-open copy of
    the service policy, so an agent can take the chat whatever the time of day."""
    var_dir = tmp_path_factory.mktemp("shop-stack")
    redis_url = f"redis://127.0.0.1:{redis_server.port}/{REDIS_DB}"
    settings = dataclasses.replace(
        load_settings({}), var_dir=var_dir, redis_url=redis_url, crm_port=free_port(), action_port=free_port(), rasa_port=free_port(),
        desk_port=free_port(), shop_port=free_port(), handoff_policy_file=write_policy(var_dir / "service.yml"),
    )
    stack = launcher.Stack(settings)
    try:
        launcher.start_services(stack, trained_model)
        yield ShopStack(stack.settings, stack, redis_url=redis_url)
    finally:
        stack.stop()
        client = redis.Redis.from_url(redis_url)
        client.flushdb()
        client.close()


WATCH_TYPING = """() => {
  const typing = document.getElementById("chat-typing");
  window.typingShown = false;
  new MutationObserver(() => { if (!typing.hidden) { window.typingShown = true; } }).observe(typing, {attributes: true});
}"""
"""Records whether the typing indicator was shown (it may be gone again before a check could see it)."""


def stored_session(page: Any) -> Dict[str, Any]:
    """What the widget keeps in localStorage for the logged-in customer."""
    return json.loads(page.evaluate(f"localStorage.getItem('shop-chat:{CUSTOMER}')") or "{}")


def wait_turn(page: Any) -> None:
    """Until the bot has finished answering (the typing indicator is gone)."""
    page.wait_for_selector("#chat-typing", state="hidden")


def test_shopper_asks_the_bot_then_an_agent_answers_in_the_widget(browser: Any, shop_stack: ShopStack) -> None:
    status, body = shop_stack.desk("POST", "/api/login", body={"username": "agent1", "password": "agent1-pass"})
    assert status == 200, body
    token = body["token"]  # agent1 is online: the handoff waits in the queue instead of booking a callback

    page = browser.new_page(viewport={"width": 1280, "height": 860}, locale="zh-CN")
    page.set_default_timeout(30_000)
    errors: list = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(shop_stack.shop_url + "/")
    page.select_option("#login-customer", CUSTOMER)
    page.click("#login-submit")
    page.wait_for_selector("#shopper-name:has-text('张伟')")
    page.click("#chat-launcher")
    page.wait_for_selector("#chat-status.online")
    sender = stored_session(page)["session_id"]

    page.evaluate(WATCH_TYPING)
    page.fill("#chat-input", "我的快递到哪了")
    page.press("#chat-input", "Enter")
    page.wait_for_selector(".msg.bot:has-text('SF880000010001')")
    wait_turn(page)
    assert "运输中" in page.inner_text("#chat-log") and page.evaluate("window.typingShown") is True

    # the bot's buttons: clicking one sends its payload and shows its title, once
    offered = page.locator(".msg.bot .buttons .choice:not([disabled])")
    offered.first.wait_for()
    titles = offered.all_inner_texts()
    title = next((t for t in titles if "人工" not in t), titles[0])
    offered.filter(has_text=title).first.click()
    page.wait_for_selector(f".msg.user .bubble:text-is('{title}')")
    wait_turn(page)
    assert page.locator(f".msg.bot .buttons .choice:text-is('{title}')").first.is_disabled()

    page.fill("#chat-input", "转人工")
    page.press("#chat-input", "Enter")
    page.wait_for_selector(".msg:has-text('您是下一位')")
    wait_turn(page)

    # while the chat waits for an agent, what the shopper says goes to the agent, not the bot
    page.fill("#chat-input", "麻烦快一点")
    page.press("#chat-input", "Enter")
    page.wait_for_selector(".msg.system.queue:has-text('已收到您的留言')")
    wait_turn(page)

    def waiting() -> Any:
        _, queue = shop_stack.desk("GET", "/api/queue", token)
        return next((item for item in queue["waiting"] if item["sender"] == sender), None)

    item = wait_for(waiting, timeout_s=30)
    assert item["who"]["verified"] is True and item["tier"] == "L4"
    assert shop_stack.desk("POST", f"/api/conversations/{sender}/claim", token)[0] == 200
    page.wait_for_selector(".msg.system:has-text('客服小王已接入')")
    _, conversation = shop_stack.desk("GET", f"/api/conversations/{sender}", token)
    assert [entry["text"] for entry in conversation["transcript"] if entry["from"] == "shopper"][-1:] == ["麻烦快一点"]

    status, body = shop_stack.desk("POST", f"/api/conversations/{sender}/messages", token, {"text": "您好，我是客服小王，已经在帮您催顺丰了。"})
    assert status == 201, body
    reply = page.wait_for_selector(".msg.agent:has-text('已经在帮您催顺丰了')")
    assert reply.query_selector(".who").inner_text().endswith("人工客服 小王")
    assert stored_session(page)["last_id"] == body["cursor"]

    # a reload keeps the conversation: same session, the agent's reply still there, nothing twice
    page.reload()
    page.wait_for_selector("#chat-status.online")
    assert stored_session(page)["session_id"] == sender
    assert page.locator(".msg.agent:has-text('已经在帮您催顺丰了')").count() == 1

    assert shop_stack.desk("POST", f"/api/conversations/{sender}/resolve", token, {"code": "resolved"})[0] == 200
    page.wait_for_selector(".msg.bot .buttons .choice:has-text('5分')")
    shop_stack.desk("POST", "/api/logout", token)
    assert errors == []
    page.close()

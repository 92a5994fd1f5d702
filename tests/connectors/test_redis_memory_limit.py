"""A Redis at its memory limit (maxmemory, noeviction): the app channel answers 503 and the logs name the cause."""

from __future__ import annotations

import json
import logging
import re
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterator, Tuple

import pytest
import redis
from rasa.core.channels.channel import UserMessage
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import UserUttered
from sanic import Sanic

from bot.redis_server import RedisServer, free_port, out_of_memory, redis_error_name
from bot.settings import load_settings
from bot.tracker_store import EncryptedRedisTrackerStore
from connectors.app import MESSAGES, AppInput
from tests.connectors.conftest import ServedApp

SECRET = "test-shop-secret"


@pytest.fixture()
def small_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server limited to 2 MB, as the launcher runs the embedded one (REDIS_MAXMEMORY_MB)."""
    server = RedisServer(free_port(), tmp_path, maxmemory_mb=2).start()
    yield server
    server.stop()


def fill(url: str) -> None:
    """Write until Redis refuses, down to small writes (a request's own buffer counts too)."""
    client = redis.Redis.from_url(url)
    for size in (10_000, 100):
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            for number in range(10_000):
                client.set(f"filler:{size}:{number}", b"x" * size)
    # Freed client buffers could bring the server back under its limit a moment later: keep it over.
    client.config_set("maxmemory", max(1, int(client.info("memory")["used_memory"]) // 2))
    client.close()


def post(url: str, sender: str, text: str) -> Tuple[int, Any]:
    request = urllib.request.Request(f"{url}/webhooks/app/webhook", method="POST", headers={"Content-Type": "application/json"},
                                     data=json.dumps({"sender": sender, "message": text}).encode())
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def serve(redis_url: str, handler: Any) -> ServedApp:
    channel = AppInput(redis_url=redis_url, identity_secret=SECRET, action_server_url=f"http://127.0.0.1:{free_port()}",
                       settings=load_settings({}))
    app = Sanic(f"memory_limit_{free_port()}")
    app.blueprint(channel.blueprint(handler), url_prefix="/webhooks/app")
    return ServedApp(app)


def test_full_redis_refuses_the_message_with_503_and_says_out_of_memory(small_redis: RedisServer,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    fill(small_redis.url)
    seen = []

    async def bot(message: UserMessage) -> None:
        seen.append(message)

    with serve(small_redis.url, bot) as served:
        status, body = post(served.url, "full-1", "我的手机号是13812345678")
    assert status == 503 and body["error"] == {"code": "bot_unavailable", "message": MESSAGES["bot_unavailable"]}
    assert seen == []
    # the admission is one Lua script: redis-py raises a plain ResponseError "... -OOM command not allowed ..."
    # for it, which bot.redis_server.redis_error_name names OutOfMemoryError
    assert re.search(r"app\.binding\.failed sender=full-1 error=(OutOfMemoryError|ResponseError)", caplog.text)
    assert "13812345678" not in caplog.text


def test_a_refused_script_write_is_named_out_of_memory(small_redis: RedisServer) -> None:
    fill(small_redis.url)
    client = redis.Redis.from_url(small_redis.url)
    with pytest.raises(redis.exceptions.ResponseError) as refused:
        client.eval("redis.call('set', KEYS[1], ARGV[1]); return 1", 1, "k", "x" * 1000)
    assert isinstance(refused.value, redis.exceptions.RedisError) and out_of_memory(refused.value)
    assert redis_error_name(refused.value) == "OutOfMemoryError"
    assert redis_error_name(redis.exceptions.ResponseError("WRONGTYPE")) == "ResponseError"


def test_redis_filling_up_during_the_turn_fails_the_tracker_save_with_503(small_redis: RedisServer,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    store = EncryptedRedisTrackerStore(Domain.empty(), host="127.0.0.1", port=small_redis.port, identity_secret=SECRET)

    async def bot(message: UserMessage) -> None:  # as Rasa's processor: fetch the tracker, update it, save it
        tracker = await store.get_or_create_tracker(message.sender_id)
        tracker.update(UserUttered(message.text))
        fill(small_redis.url)  # other conversations took the rest meanwhile
        await store.save(tracker)

    with serve(small_redis.url, bot) as served:
        status, body = post(served.url, "full-2", "我的快递到哪了")
    assert status == 503 and body["error"]["code"] == "bot_unavailable"
    assert "tracker.save_failed sender=full-2 error=OutOfMemoryError: Redis reached its memory limit" in caplog.text
    assert "app.message.failed sender=full-2 error=OutOfMemoryError" in caplog.text


def test_an_empty_redis_at_the_same_limit_answers(small_redis: RedisServer) -> None:
    async def bot(message: UserMessage) -> None:
        await message.output_channel.send_text_message(message.sender_id, "收到")

    with serve(small_redis.url, bot) as served:
        assert post(served.url, "ok-1", "你好") == (200, [{"recipient_id": "ok-1", "text": "收到"}])


"""Numbers a stranger sends in other digits (``²``, ``٣``, ``１``) or with thousands of digits:
``str.isdigit`` accepts them and ``int`` raises on some, which answered 500. The app channel's ``limit`` (found by the fuzz campaign),
WeChat's ``timestamp`` of a signed request and of a binding read ASCII digits only and refuse the
rest as they refuse any malformed field."""

from __future__ import annotations

import itertools
import time
from typing import Callable, Iterator
from urllib.parse import urlencode

import pytest
from sanic import Sanic

from bot.redis_server import free_port
from bot.settings import load_settings
from connectors.wechat import WeChatInput
from tests.connectors.conftest import SECRET, ChannelServer, ServedApp, StubBot, assert_error, fetch, send, signed
from tests.support.http import http

OTHER_DIGITS = ("²", "٣", "１", "1²", "𝟏")
"""``str.isdigit`` holds for each; ``int`` refuses some and reads others of another script."""

MANY_DIGITS = "9" * 5000
"""More digits than ``int`` reads (4300): found by the fuzz campaign in the app channel's ``limit``."""

_names = itertools.count()


@pytest.mark.parametrize("digits", (*OTHER_DIGITS, MANY_DIGITS), ids=lambda digits: digits[:8])
def test_the_app_channel_refuses_a_limit_in_other_digits(serve_channel: Callable[..., ChannelServer], digits: str) -> None:
    server = serve_channel(SECRET)
    assert send(server, "conv-digits", "你好", signed("C10001"))[0] == 200
    token = signed("C10001")["identity_token"]
    assert_error(*fetch(server, "conv-digits", urlencode({"limit": digits}), identity=token), 400, "invalid_limit")
    assert fetch(server, "conv-digits", "limit=2", identity=token)[0] == 200


@pytest.fixture()
def wechat_url(redis_url: str) -> Iterator[str]:
    """A WeChat channel served over the session's Redis (its API base where nothing listens); its URL."""
    channel = WeChatInput(token="digits-token", appid="wx-digits", appsecret="digits-secret", api_base=f"http://127.0.0.1:{free_port()}",
                          redis_url=redis_url, identity_secret=SECRET, settings=load_settings({}))
    app = Sanic(f"wechat_digits_{next(_names)}")
    app.blueprint(channel.blueprint(StubBot("reply").handler()), url_prefix="/webhooks/wechat")
    with ServedApp(app) as served:
        yield f"{served.url}/webhooks/wechat"


@pytest.mark.parametrize("digits", OTHER_DIGITS)
def test_wechat_refuses_a_timestamp_in_other_digits(wechat_url: str, digits: str) -> None:
    query = {"signature": "0" * 40, "timestamp": digits, "nonce": "n1", "echostr": "1"}
    assert http("GET", f"{wechat_url}/webhook?{urlencode(query)}")[0] == 403
    status, body = http("POST", f"{wechat_url}/bind", {"openid": "o" + "a" * 27, "customer_id": "C000001", "timestamp": digits,
                                                        "signature": "0" * 64})
    assert status == 400 and body["error"]["code"] == "invalid_timestamp"
    stamp = str(int(time.time()))
    status, body = http("POST", f"{wechat_url}/bind", {"openid": "o" + "a" * 27, "customer_id": "C000001", "timestamp": stamp,
                                                        "signature": "0" * 64})
    assert status == 403  # an ASCII timestamp goes on to the signature check

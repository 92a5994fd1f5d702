"""The demo shop as a real process on a free port: the page signs the chosen demo customer on the
server, never hands out the secret, refuses unknown customers, and serves the widget."""

from __future__ import annotations

import dataclasses
import json
import re
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Tuple

import pytest

from bot import launcher
from bot.identity import verify_identity_token
from bot.redis_server import free_port
from bot.settings import PROJECT_ROOT, load_settings

SECRET = "shop-test-secret-9f2c"
RASA_PORT = 5999


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def call(method: str, url: str, body: Optional[bytes] = None, headers: Optional[Dict[str, str]] = None) -> Tuple[int, Dict[str, str], bytes]:
    """One HTTP request without following redirects; returns (status, headers in lower case, body)."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with _opener.open(request, timeout=15) as answer:
            return answer.status, {k.lower(): v for k, v in answer.headers.items()}, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()


def page_config(body: bytes) -> Dict[str, Any]:
    """The JSON the page hands the widget."""
    match = re.search(rb'<script type="application/json" id="shop-config">(.*?)</script>', body, re.S)
    assert match, "the page carries the widget's configuration"
    return json.loads(match.group(1))


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``python -m shop serve`` on a free port with a secret of its own, started as the launcher starts it."""
    settings = dataclasses.replace(load_settings({}), var_dir=tmp_path_factory.mktemp("shop"), shop_port=free_port(),
                                   shop_identity_secret=SECRET, rasa_port=RASA_PORT)
    stack = launcher.Stack(settings)
    try:
        stack.start_child(launcher.Child("shop", [sys.executable, "-m", "shop", "serve", "--port", str(settings.shop_port)],
                                         f"http://127.0.0.1:{settings.shop_port}/health"),
                          launcher.base_env(settings, settings.effective_redis_url), 60)
        yield f"http://127.0.0.1:{settings.shop_port}"
    finally:
        stack.stop()


def login(shop: str, customer: str) -> Tuple[int, Dict[str, str], bytes]:
    return call("POST", f"{shop}/login", f"customer_id={customer}".encode(), {"Content-Type": "application/x-www-form-urlencoded"})


def test_health(shop: str) -> None:
    status, headers, body = call("GET", f"{shop}/health")
    assert (status, json.loads(body)) == (200, {"status": "ok"})


def test_anonymous_page_has_no_identity(shop: str) -> None:
    status, headers, body = call("GET", f"{shop}/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    config = page_config(body)
    assert (config["customer_id"], config["identity_token"], config["name"]) == (None, None, "游客")
    assert config["socket_url"] == f"http://127.0.0.1:{RASA_PORT}" and config["socket_path"] == "/socket.io"
    csp = headers["content-security-policy"]
    assert f"connect-src 'self' http://127.0.0.1:{RASA_PORT} ws://127.0.0.1:{RASA_PORT}" in csp and "script-src 'self'" in csp
    assert "C000009 吴刚" in body.decode() and 'src="/static/vendor/socket.io.min.js"' in body.decode()


def test_the_chosen_customer_is_signed_on_the_server_and_the_secret_never_leaves_it(shop: str) -> None:
    status, headers, _ = login(shop, "C000001")
    assert status == 303 and headers["location"] == "/"
    cookie = headers["set-cookie"].split(";")[0]
    assert cookie == "shop_customer=C000001" and "HttpOnly" in headers["set-cookie"]

    _, _, body = call("GET", f"{shop}/", headers={"Cookie": cookie})
    config = page_config(body)
    assert (config["customer_id"], config["name"]) == ("C000001", "张伟")
    assert verify_identity_token(SECRET, config["identity_token"]) == "C000001"
    assert verify_identity_token("dev-shop-secret", config["identity_token"]) is None
    expires = int(config["identity_token"].split(".")[1])
    assert 0 < expires - time.time() <= 2 * 3600
    served = [body] + [call("GET", f"{shop}/static/{name}")[2] for name in ("widget.js", "widget.css", "shop.css")]
    assert all(SECRET.encode() not in content for content in served)

    status, _, body = call("POST", f"{shop}/login", json.dumps({"customer_id": "C000002"}).encode(), {"Content-Type": "application/json"})
    assert (status, json.loads(body)) == (200, {"customer_id": "C000002", "name": "李娜"})
    status, headers, _ = login(shop, "anonymous")
    assert status == 303 and "Max-Age=0" in headers["set-cookie"]


@pytest.mark.parametrize(
    "body, content_type",
    [
        (b"customer_id=C999999", "application/x-www-form-urlencoded"),
        (b"customer_id=C000001%3Bx", "application/x-www-form-urlencoded"),
        (b'{"customer_id": "C999999"}', "application/json"),
        (b'{"customer_id": 1}', "application/json"),
        (b'["C000001"]', "application/json"),
        (b"{not json", "application/json"),
        (b"\xff\xfe", "application/x-www-form-urlencoded"),
    ],
)
def test_a_bad_customer_choice_is_400_json(shop: str, body: bytes, content_type: str) -> None:
    status, headers, answer = call("POST", f"{shop}/login", body, {"Content-Type": content_type})
    assert status == 400 and headers["content-type"].startswith("application/json")
    error = json.loads(answer)["error"]
    assert error["code"] in ("unknown_customer", "invalid_request") and error["message"]
    assert "set-cookie" not in headers


def test_a_forged_cookie_is_an_anonymous_shopper(shop: str) -> None:
    for cookie in ("shop_customer=C999999", "shop_customer=../../etc", "shop_customer="):
        config = page_config(call("GET", f"{shop}/", headers={"Cookie": cookie})[2])
        assert config["customer_id"] is None and config["identity_token"] is None


def test_static_files(shop: str) -> None:
    status, headers, body = call("GET", f"{shop}/static/vendor/socket.io.min.js")
    assert status == 200 and headers["content-type"].startswith("text/javascript")
    assert body.startswith(b"/*!\n * Socket.IO v4.") and b"Released under the MIT License." in body[:200]
    for name in ("widget.js", "nothing.js", "../app.py", "vendor/socket.io.min.js.map"):
        status, headers, body = call("GET", f"{shop}/static/{name}")
        assert status == (200 if name == "widget.js" else 404), name
    assert (Path(PROJECT_ROOT) / "shop" / "static" / "vendor" / "socket.io.min.js").is_file()

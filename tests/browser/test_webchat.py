"""The standard web widget rasa-webchat 1.0.1 (from npm, unmodified, default options: engine.io
long-polling first, then the websocket upgrade) in a real browser, against a Rasa server with two
Sanic workers: every page shows the bot's reply to the shopper's message.

The package is fetched once with ``npm pack`` into ``var/webchat/`` (git-ignored) and checked
against its registry shasum; without npm or the registry the test is skipped. The page embeds the
widget as a shop does (docs/channels-web.md): on its own origin, with the shop-signed identity token
in ``customData``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator, List

import pytest

from bot.redis_server import free_port
from bot.settings import PROJECT_ROOT
from connectors import worker_routing
from tests.integration.conftest import RunningStack, running_stack  # noqa: F401  (a fixture)
from tests.integration.test_web_workers import trained_model  # noqa: F401  (a fixture)

pytestmark = pytest.mark.integration

PACKAGE = "rasa-webchat@1.0.1"
TARBALL = "rasa-webchat-1.0.1.tgz"
SHASUM = "918985573aa505d81ab927c5ea5919ae29a5ecfd"
"""The registry's shasum (sha1) of the 1.0.1 tarball."""
CACHE = PROJECT_ROOT / "var" / "webchat"
PAGES = 3
WAIT_MS = 60_000
"""Longest wait for the widget (a failure guard, not a timing assertion)."""


def webchat_script() -> bytes:
    """rasa-webchat's browser bundle (``lib/index.js``), fetched with ``npm pack`` when not cached.

    Skips the test when npm is missing or cannot fetch the package.
    """
    tarball = CACHE / TARBALL
    if not tarball.is_file():
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("npm is not installed: cannot fetch rasa-webchat 1.0.1")
        CACHE.mkdir(parents=True, exist_ok=True)
        try:
            done = subprocess.run([npm, "pack", PACKAGE, "--pack-destination", str(CACHE)], capture_output=True, text=True, timeout=180)
        except subprocess.TimeoutExpired:
            pytest.skip("npm pack rasa-webchat@1.0.1 timed out: the npm registry is unreachable")
        if done.returncode != 0 or not tarball.is_file():
            pytest.skip(f"npm pack rasa-webchat@1.0.1 failed (the npm registry is unreachable?): {done.stderr.strip()[-300:]}")
    assert hashlib.sha1(tarball.read_bytes()).hexdigest() == SHASUM, f"{tarball} is not the registry's rasa-webchat 1.0.1"
    with tarfile.open(tarball) as archive:
        member = archive.extractfile("package/lib/index.js")
        assert member is not None
        return member.read()


PAGE = """<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>shop</title></head>
<body>
<script src="/webchat.js"></script>
<script>
  WebChat.default({
    socketUrl: %(socket_url)s,
    socketPath: "/socket.io/",
    customData: {identity_token: %(token)s},
    title: "在线客服",
    params: {storage: "session"}
  }, null);
</script>
</body></html>
"""


class _ShopPage(BaseHTTPRequestHandler):
    page = b""
    script = b""

    def do_GET(self) -> None:  # http.server's naming
        body, kind = (self.script, "application/javascript") if self.path == "/webchat.js" else (self.page, "text/html; charset=utf-8")
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture(scope="module")
def shop_page(running_stack: RunningStack) -> Iterator[str]:  # noqa: F811
    """A shop page on an origin of its own embedding rasa-webchat for a signed customer."""
    script = webchat_script()
    socket_url = f"http://127.0.0.1:{running_stack.settings.rasa_port}"  # rasa-webchat's defaults, nothing added
    page = PAGE % {"socket_url": json.dumps(socket_url), "token": json.dumps(running_stack.identity_token("C000001"))}
    handler = type("ShopPage", (_ShopPage,), {"page": page.encode(), "script": script})
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()


def test_rasa_webchat_shows_the_bots_reply_with_two_workers(browser: Any, running_stack: RunningStack, shop_page: str) -> None:  # noqa: F811
    assert running_stack.settings.rasa_workers == 2
    sids: List[str] = []
    for _ in range(PAGES):
        context = browser.new_context(locale="zh-CN")
        try:
            page = context.new_page()
            requests: List[str] = []
            page.on("request", lambda request, seen=requests: seen.append(request.url))
            console: List[str] = []
            page.on("console", lambda message, seen=console: seen.append(message.text))
            page.on("pageerror", lambda error, seen=console: seen.append(f"pageerror: {error}"))
            page.goto(shop_page)
            page.click(".rw-launcher", timeout=WAIT_MS)
            page.fill(".rw-new-message", "你好", timeout=WAIT_MS)
            page.keyboard.press("Enter")
            try:
                page.wait_for_selector(".rw-response .rw-message-text", timeout=WAIT_MS)
            except Exception as error:  # the widget's own log says why
                raise AssertionError(f"no bot reply in the widget: console {console[-20:]}, requests {requests[-20:]}") from error
            assert page.inner_text(".rw-client .rw-message-text") == "你好"
            assert page.inner_text(".rw-response .rw-message-text").strip()
            polled = [url for url in requests if "/socket.io/" in url and "transport=polling" in url and "sid=" in url]
            assert polled, requests  # the widget polled with its sid before (or instead of) the upgrade
            sids.append(polled[0].split("sid=", 1)[1].split("&", 1)[0])
        finally:
            context.close()
    assert all(worker_routing.parse_sid(sid) is not None for sid in sids), sids

"""Helpers for the simulator's tests and the wechat channel's tests: the simulator as a child process
on a free port, and a stand-in for an official account's server."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple
from urllib.parse import parse_qs, urlparse
from xml.etree import ElementTree

import pytest
from wechatpy.crypto import PrpCrypto, WeChatCrypto
from wechatpy.utils import WeChatSigner

from bot.launcher import wait_healthy
from bot.redis_server import free_port
from bot.settings import PROJECT_ROOT
from tests.support.desk import stop_gracefully
from tests.support.http import http

TOKEN = "sim-test-token"
APPID = "wx-sim-test-app"
APPSECRET = "sim-test-secret"
SHOP_SECRET = "sim-test-shop-secret"
ENCODING_AES_KEY = "1F37MxLklxHdCRdlVHuuhP5tL2mELSb3ye4OdxVDO70"
"""The test account's EncodingAESKey (safe mode)."""


@dataclass
class SimProcess:
    """``python -m wechat_sim serve`` run as a child process."""

    url: str
    args: List[str]
    log: Path
    env: Dict[str, str]
    process: Optional[subprocess.Popen] = None

    def start(self, timeout_s: float = 60) -> SimProcess:
        """Start the simulator and wait until it is healthy."""
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "wechat_sim", "serve", *self.args], cwd=PROJECT_ROOT,
                                            env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_healthy(f"{self.url}/health", self.process, "wechat_sim", timeout_s)
        return self

    def stop(self) -> None:
        """Stop the simulator."""
        stop_gracefully(self.process)

    def call(self, method: str, path: str, body: Any = None, raw: Optional[bytes] = None, timeout: float = 60) -> Tuple[int, Any]:
        """One request to the simulator; (status, decoded JSON or text)."""
        return http(method, f"{self.url}{path}", body, raw=raw, timeout=timeout)

    def send(self, openid: str, text: Optional[str] = None, **fields: Any) -> Dict[str, Any]:
        """A shopper sends a text (or an event / other message type with ``fields``); the outcome."""
        body: Dict[str, Any] = {"openid": openid, **fields}
        if text is not None:
            body["text"] = text
        status, outcome = self.call("POST", "/sim/send", body)
        assert status == 200, outcome
        return outcome  # type: ignore[no-any-return]

    def inbox(self, openid: str, include_sent: bool = False) -> List[Dict[str, Any]]:
        """Everything a shopper received (and sent, when asked), in order."""
        status, body = self.call("GET", f"/sim/inbox/{openid}{'?include_sent=1' if include_sent else ''}")
        assert status == 200, body
        return body["messages"]  # type: ignore[no-any-return]

    def configure(self, **changes: Any) -> Dict[str, Any]:
        """Change the simulator's configuration (webhook URL, timeout, retries, token lifetime)."""
        status, body = self.call("POST", "/sim/config", changes)
        assert status == 200, body
        return body  # type: ignore[no-any-return]

    def stats(self) -> Dict[str, int]:
        """The simulator's counters."""
        return self.call("GET", "/sim/stats")[1]  # type: ignore[no-any-return]


def sim_process(tmp: Path, webhook_url: str, *extra: str) -> SimProcess:
    """A simulator (not started) on a free port, for the test account, posting to ``webhook_url``."""
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "SHOP_IDENTITY_SECRET": SHOP_SECRET}
    args = ["--host", "127.0.0.1", "--port", str(port), "--webhook", webhook_url, "--token", TOKEN, "--appid", APPID,
            "--appsecret", APPSECRET, *extra]
    return SimProcess(f"http://127.0.0.1:{port}", args, tmp / "wechat_sim.log", env)


@pytest.fixture(scope="module", name="sim_server")
def sim_server_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimProcess]:
    """The simulator as a child process on a free port, for a test module (import it to use it)."""
    sim = sim_process(tmp_path_factory.mktemp("wechat-sim"), "http://127.0.0.1:9/unset").start()
    yield sim
    sim.stop()


def expected_signature(token: str, timestamp: str, nonce: str) -> str:
    """WeChat's signature, computed independently of both the simulator and the channel."""
    return hashlib.sha1("".join(sorted([token, timestamp, nonce])).encode()).hexdigest()


def peer(appid: str = APPID, encoding_aes_key: str = ENCODING_AES_KEY, token: str = TOKEN) -> WeChatCrypto:
    """The other end of safe mode as the ``wechatpy`` package implements it, independently of this project."""
    return WeChatCrypto(token, encoding_aes_key, appid)


def peer_encrypted(plaintext: str, appid: str = APPID, encoding_aes_key: str = ENCODING_AES_KEY) -> str:
    """``plaintext`` encrypted by ``wechatpy`` (an ``Encrypt`` or an encrypted ``echostr``)."""
    return PrpCrypto(base64.b64decode(encoding_aes_key + "=")).encrypt(plaintext, appid).decode()


def peer_decrypted(encrypt: str, appid: str = APPID, encoding_aes_key: str = ENCODING_AES_KEY) -> str:
    """A ciphertext decrypted by ``wechatpy``, which checks that it names ``appid``."""
    return str(PrpCrypto(base64.b64decode(encoding_aes_key + "=")).decrypt(encrypt, appid))


def peer_signature(*parts: str) -> str:
    """``msg_signature`` of the token, timestamp, nonce and ciphertext, as ``wechatpy`` computes it."""
    signer = WeChatSigner()
    signer.add_data(*parts)
    return str(signer.signature)


def peer_opened(envelope: str, appid: str = APPID) -> ElementTree.Element:
    """The plaintext reply in an encrypted envelope, decrypted by ``wechatpy`` (which checks its ``MsgSignature``)."""
    root = ElementTree.fromstring(envelope)
    plaintext = peer(appid).decrypt_message(envelope, root.findtext("MsgSignature"), root.findtext("TimeStamp"), root.findtext("Nonce"))
    return ElementTree.fromstring(plaintext)


@dataclass
class Received:
    """One request the stand-in server received."""

    method: str
    query: Dict[str, str]
    body: bytes


@dataclass
class FakeAccountServer:
    """A stand-in for an official account's server: records requests and answers as told.

    Attributes:
        answer: ``answer(request, attempt)`` → (delay in seconds, status, body) for each request.
        received: every request, in order.
    """

    answer: Callable[[Received, int], Tuple[float, int, bytes]]
    received: List[Received] = field(default_factory=list)
    url: str = ""
    _server: Optional[ThreadingHTTPServer] = None

    def __enter__(self) -> FakeAccountServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                parsed = urlparse(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                request = Received(self.command, {k: v[0] for k, v in parse_qs(parsed.query).items()}, self.rfile.read(length))
                owner.received.append(request)
                delay, status, body = owner.answer(request, len(owner.received))
                time.sleep(delay)
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = _handle  # http.server's naming
            do_POST = _handle

            def log_message(self, *_: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/wechat"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_: Any) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

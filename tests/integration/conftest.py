"""The whole stack on free ports: Redis (the session's server, database 1), the reference CRM on a
seeded SQLite file, the action server and the Rasa server with the trained model."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest

from bot import launcher
from bot.identity import identity_token_for
from bot.redis_server import RedisServer, free_port
from bot.settings import Settings, load_settings


@pytest.fixture(scope="session")
def trained_model() -> Path:
    """The model for the current training data (``make test`` trains it first)."""
    path = launcher.model_path()
    if not path.exists():
        pytest.fail(f"no trained model for the current data: run `make train` first ({path.name})")
    return path


@pytest.fixture(scope="session")
def rasa_patched() -> Dict[str, str]:
    """Rasa's speed patches as the Rasa server installs them (RASA_SPEEDUPS), for Rasa loaded in-process."""
    from bot import rasa_patches

    return rasa_patches.install()


@dataclasses.dataclass
class RunningStack:
    """Handles on the running stack for tests."""

    settings: Settings
    stack: launcher.Stack
    conversation_tokens: Dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def app_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.rasa_port}/webhooks/app"

    def identity_token(self, customer_id: str) -> str:
        """An identity token for ``customer_id``, as the shop's backend makes one."""
        return identity_token_for(self.settings.shop_identity_secret, customer_id)

    def say(self, sender: str, text: str, customer_id: Optional[str] = None, signature: Optional[str] = None) -> Tuple[int, Any]:
        """Send a message through the app channel; returns (status, JSON body).

        A customer's message carries an identity token, or the old static ``signature`` when one is
        given (accepted only where static signatures are switched on); an anonymous conversation's
        later messages carry the token its first answer gave.
        """
        metadata: Dict[str, str] = {}
        if customer_id and signature is not None:
            metadata.update(customer_id=customer_id, signature=signature)
        elif customer_id:
            metadata["identity_token"] = self.identity_token(customer_id)
        headers = {"X-Conversation-Token": self.conversation_tokens[sender]} if sender in self.conversation_tokens else {}
        status, body, answer_headers = http_exchange("POST", f"{self.app_url}/webhook",
                                                     {"sender": sender, "message": text, "metadata": metadata}, headers=headers)
        if answer_headers.get("X-Conversation-Token"):
            self.conversation_tokens[sender] = answer_headers["X-Conversation-Token"]
        return status, body

    def crm(self, path: str) -> Any:
        """GET a CRM resource with the API key."""
        status, body = http_json("GET", f"{self.settings.effective_crm_url}{path}", headers={"X-API-Key": self.settings.crm_api_key})
        assert status == 200, body
        return body

    def child(self, name: str) -> launcher.Child:
        return next(child for child in self.stack.children if child.name == name)

    @contextlib.contextmanager
    def stopped(self, name: str, restart_timeout_s: float = 60) -> Iterator[None]:
        """Stop one service of the stack for the ``with`` block, then start it again and wait until healthy."""
        child = self.child(name)
        assert child.process is not None
        child.process.terminate()
        child.process.wait(timeout=10)
        self.stack.children.remove(child)
        try:
            yield
        finally:
            env = launcher.base_env(self.stack.settings, self.stack.settings.redis_url)
            self.stack.start_child(launcher.Child(name, child.command, child.health_url), env, restart_timeout_s)


def http_exchange(method: str, url: str, body: Any = None, headers: Optional[Dict[str, str]] = None,
                  timeout: float = 30) -> Tuple[int, Any, Dict[str, str]]:
    """One HTTP request with a JSON body; returns (status, decoded JSON or raw text, answer headers)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw, status, answer_headers = response.read(), response.status, dict(response.headers)
    except urllib.error.HTTPError as error:
        raw, status, answer_headers = error.read(), error.code, dict(error.headers)
    try:
        return status, json.loads(raw or b"null"), answer_headers
    except json.JSONDecodeError:
        return status, raw.decode(errors="replace"), answer_headers


def http_json(method: str, url: str, body: Any = None, headers: Optional[Dict[str, str]] = None, timeout: float = 30) -> Tuple[int, Any]:
    """One HTTP request with a JSON body; returns (status, decoded JSON or raw text)."""
    status, decoded, _ = http_exchange(method, url, body, headers, timeout)
    return status, decoded


@pytest.fixture(scope="session")
def running_stack(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer, trained_model: Path) -> Iterator[RunningStack]:
    """The stack of ``make run``, on ports of its own, torn down after the session."""
    var_dir = tmp_path_factory.mktemp("stack")
    settings = dataclasses.replace(
        load_settings({}),
        var_dir=var_dir,
        redis_url=f"redis://127.0.0.1:{redis_server.port}/1",
        crm_port=free_port(),
        action_port=free_port(),
        rasa_port=free_port(),
        desk_port=free_port(), shop_port=free_port(),
    )
    stack = launcher.Stack(settings)
    try:
        launcher.start_services(stack, trained_model)
        yield RunningStack(stack.settings, stack)
    finally:
        stack.stop()


def new_sender(prefix: str = "t") -> str:
    """A fresh conversation id."""
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


def texts(replies: Any) -> str:
    """The text of the bot's replies (a JSON list), one per line."""
    assert isinstance(replies, list), replies
    return "\n".join(reply.get("text", "") for reply in replies)


def buttons(replies: List[Dict[str, Any]]) -> List[Dict[str, str]]:
    """Every button of the bot's replies, in order."""
    return [button for reply in replies for button in reply.get("buttons", [])]

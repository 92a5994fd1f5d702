"""The reference CRM as a real HTTP service on a seeded SQLite file, for action tests."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest
from rasa_sdk import Tracker

from actions.crm import CRMClient, RetryPolicy, set_crm_client
from actions.shopper import identity_secret
from actions.throttle import VerificationThrottle, set_throttle
from bot.identity import channel_identity, verified_order_slot_value
from bot.redis_server import free_port
from bot.settings import PROJECT_ROOT
from handoff.context import close_clients
from tests.support.crm import seeded_crm

FIXTURES = PROJECT_ROOT / "tests" / "fixtures" / "trackers"


@pytest.fixture(scope="session")
def crm_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of a freshly seeded reference CRM shared by the tests that only read."""
    with seeded_crm(tmp_path_factory.mktemp("crm")) as url:
        yield url


@pytest.fixture(autouse=True)
def throttle(redis_url: str) -> Iterator[VerificationThrottle]:
    """Verification attempts counted in the session's Redis (flushed after each test)."""
    counted = VerificationThrottle(redis_url)
    set_throttle(counted)
    yield counted
    set_throttle(None)


@pytest.fixture(autouse=True)
def promises_in_test_redis(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The late-order promises the order actions record (carrier-urge tickets) go to the session's Redis."""
    from zoneinfo import ZoneInfo

    import actions.orders
    from handoff.context import HandoffContext, redis_client
    from handoff.policy import load_policy

    policy = load_policy(PROJECT_ROOT / "handoff" / "service.yml")
    monkeypatch.setattr(actions.orders, "handoff_context", lambda: HandoffContext(redis_client(redis_url), policy, ZoneInfo("Asia/Shanghai")))


@pytest.fixture()
def crm(crm_url: str) -> Iterator[CRMClient]:
    """The actions' shared CRM client pointed at the test CRM."""
    yield from use_crm(crm_url)


@pytest.fixture(scope="module")
def own_crm_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A CRM of the test module's own, for tests that change data (redeem, cancel, create returns)."""
    with seeded_crm(tmp_path_factory.mktemp(f"{request.module.__name__.rsplit('.', 1)[-1]}-crm")) as url:
        yield url


@pytest.fixture()
def own_crm(own_crm_url: str) -> Iterator[CRMClient]:
    """The actions' shared CRM client pointed at the module's own CRM."""
    yield from use_crm(own_crm_url)


@pytest.fixture()
def dead_crm() -> Iterator[CRMClient]:
    """The actions' shared CRM client pointed at a port where nothing listens (fails fast)."""
    client = unreachable_crm_client()
    set_crm_client(client)
    yield client
    set_crm_client(None)


def use_crm(url: str) -> Iterator[CRMClient]:
    """Point the actions' shared CRM client at ``url`` for one test."""
    client = CRMClient(url, "dev-crm-key", timeout_s=2.0)
    set_crm_client(client)
    yield client
    set_crm_client(None)


class RecordingCRMClient(CRMClient):
    """The real CRM client, remembering every request it makes as ``(method, path)``."""

    def __init__(self, base_url: str, api_key: str = "dev-crm-key", timeout_s: float = 2.0) -> None:
        super().__init__(base_url, api_key, timeout_s=timeout_s)
        self.requests: List[Tuple[str, str]] = []

    async def _exchange(self, method: str, path: str, **kwargs: Any) -> Tuple[int, Any]:
        self.requests.append((method, path))
        return await super()._exchange(method, path, **kwargs)

    def count(self, method: str, suffix: str) -> int:
        """How many requests ``method`` made to a path ending in ``suffix``."""
        return sum(1 for made, path in self.requests if made == method and path.endswith(suffix))


def use_recording_crm(url: str) -> Iterator[RecordingCRMClient]:
    """Point the actions' shared CRM client, recording its requests, at ``url`` for one test."""
    client = RecordingCRMClient(url)
    set_crm_client(client)
    yield client
    set_crm_client(None)


@pytest.fixture()
def recording_crm(crm_url: str) -> Iterator[RecordingCRMClient]:
    """The session's test CRM through a client that records its requests."""
    yield from use_recording_crm(crm_url)


@pytest.fixture()
def recording_own_crm(own_crm_url: str) -> Iterator[RecordingCRMClient]:
    """The module's own CRM through a client that records its requests."""
    yield from use_recording_crm(own_crm_url)


def unreachable_crm_client() -> CRMClient:
    """A CRM client to a port where nothing listens, with one quick retry: a CRM that is down."""
    return CRMClient(f"http://127.0.0.1:{free_port()}", "dev-crm-key", timeout_s=0.5, retry=RetryPolicy(retries=1, backoff_s=0.01))


FIXTURE_CUSTOMER = object()
"""``load_tracker``'s default: the customer the fixture is signed for (``signed_as`` in its JSON)."""


def signed_metadata(sender_id: str, customer_id: Optional[str], channel: str = "app") -> Dict[str, Any]:
    """The metadata a channel sends with a message of ``sender_id``: its informative claims and the
    identity it signed (the only part the actions trust); ``customer_id`` None for an anonymous shopper."""
    return {"channel": channel, "verified": customer_id is not None, "customer_id": customer_id,
            "identity": channel_identity(identity_secret(), sender_id, customer_id)}


def proven_order(sender_id: str, order_id: str) -> str:
    """The ``verified_order_id`` slot value of an order the conversation ``sender_id`` proved."""
    return verified_order_slot_value(identity_secret(), sender_id, order_id)


def fixture_state(name: str) -> Dict[str, Any]:
    """The JSON of a tracker fixture."""
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


def sender_of(name: str) -> str:
    """The conversation id of a tracker fixture."""
    return str(fixture_state(name)["sender_id"])


def load_tracker(name: str, signed_as: Any = FIXTURE_CUSTOMER, proven: Optional[str] = None, **changes: Any) -> Tracker:
    """A tracker from a JSON fixture, with ``latest_message`` / ``slots`` keys overridden.

    Args:
        name: the fixture (``tests/fixtures/trackers/<name>.json``).
        signed_as: the customer the channel signs the latest message for; by default the fixture's
            ``signed_as``, unless the change gives metadata of its own (taken exactly as given, e.g.
            forged claims); None for an unsigned message.
        proven: an order the conversation proved with its phone tail (a ``verified_order_id``
            slot with its proof).
        changes: top-level keys replaced; dict values merged into the fixture's.
    """
    state = fixture_state(name)
    fixture_customer = state.pop("signed_as", None)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(state.get(key), dict):
            state[key] = {**state[key], **value}
        else:
            state[key] = value
    if signed_as is FIXTURE_CUSTOMER:
        signed_as = None if "metadata" in (changes.get("latest_message") or {}) else fixture_customer
    if signed_as is not None:
        message = state["latest_message"]
        message["metadata"] = {**(message.get("metadata") or {}), **signed_metadata(state["sender_id"], signed_as)}
    if proven is not None:
        state["slots"] = {**state.get("slots", {}), "verified_order_id": proven_order(state["sender_id"], proven)}
    return Tracker.from_dict(state)


def as_uttered(message: Dict[str, Any]) -> Dict[str, Any]:
    """An action's message the way Rasa sends it on: a ``response`` filled by the bot's NLG
    (bot/nlg.py) with the values the action passed, its buttons added."""
    if not message.get("response"):
        return message
    from bot.nlg import ShopNaturalLanguageGenerator

    values = {key: value for key, value in message.items() if key not in ("response", "buttons", "text")}
    draft = ShopNaturalLanguageGenerator().generate_from_slots(message["response"], {}, "app", **values) or {}
    return {**message, "text": draft.get("text"), "buttons": [*draft.get("buttons", []), *(message.get("buttons") or [])]}


def run_action(action: Any, tracker: Tracker):
    """Run an action the way rasa-sdk does; returns (events, messages)."""
    from rasa_sdk.executor import CollectingDispatcher

    async def go():
        dispatcher = CollectingDispatcher()
        try:
            events = await action.run(dispatcher, tracker, {})
        finally:
            from actions.crm import get_crm_client

            await get_crm_client().close()
            await close_clients()
        return events, dispatcher.messages

    return asyncio.run(go())


def fetch(client_url: str, path: str) -> Any:
    """GET a CRM resource synchronously."""
    import urllib.request

    request = urllib.request.Request(f"{client_url}{path}", headers={"X-API-Key": "dev-crm-key"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


__all__ = ["Path", "fetch", "load_tracker", "proven_order", "run_action", "sender_of", "signed_metadata"]

"""The ``web`` input channel: the shop website's chat widget over Rasa's socket.io protocol.

Registered in ``credentials.yml`` as::

    connectors.web.WebInput:
      redis_url: redis://127.0.0.1:6390/0       # optional, REDIS_URL or the embedded server
      identity_secret: dev-shop-secret          # optional, SHOP_IDENTITY_SECRET
      action_server_url: http://127.0.0.1:5055  # optional, ACTION_HOST / ACTION_PORT
      socketio_path: /socket.io                 # optional
      cors_allowed_origins: "*"                 # optional: "*", one origin or a list

The socket.io server lives on the Rasa server at ``/socket.io`` (``GET /webhooks/web/`` is the
channel's health check) and speaks the protocol of Rasa's ``socketio`` channel, so rasa-webchat
style widgets work unchanged:

- ``session_request {"session_id", "customData": {"identity_token", "conversation_token", "last_message_id"}}``
  → ``session_confirm {"session_id", "conversation_token"}`` (a new id when none was given; the
  token for an anonymous conversation, which resuming it later needs), then every pushed message
  after ``last_message_id`` (the replay of what arrived while the page was closed). An existing
  anonymous conversation asked for without its token gets a new session id; with a wrong token,
  ``error`` ``conversation_forbidden``.
- ``user_uttered {"message", "session_id", "customData"}`` → ``bot_uttered`` messages. A standard
  client (rasa-webchat with its default options, any socket.io client of Rasa's ``socketio``
  channel) gets Rasa's own format: only ``text``, ``quick_replies``, ``attachment``, ``image``,
  ``custom`` at the top, everything else (``from``, ``id``, ``agent``, ``error``, ``handoff``,
  ``buttons``) under ``metadata``; rasa-webchat 1.0 shows a text only when the message has no other
  keys (:func:`rasa_message`). The shop's own widget connects with ``?format=shop`` and gets the
  richer format: Rasa's keys with ``from`` (``bot``, ``agent`` or ``system``) at the top; pushed
  messages also carry their outbox ``id`` (the widget de-duplicates by it), ``buttons`` and the
  agent's name in ``agent``. ``turn_done`` ends each answer (typing indicator).
- ``error {"code", "message"}`` when a session is refused; a refused message is answered with a
  ``bot_uttered`` carrying ``error`` and a polite Chinese text.

Unlike Rasa's ``socketio`` channel it verifies the shop-signed customer id (metadata for the bot
is built here, never taken from the client), binds a session id to its first owner (another
customer presenting it is refused and never joins its room), keeps messages for the human agent
during a handoff, pushes agent replies and notices (:class:`bot.push.PushDelivery`) to every tab
of the session through Redis (``socketio.AsyncRedisManager``, so any Rasa worker or instance
reaches any shopper), answers bad input politely, and keeps shopper text and customer ids out of
its logs.

The engine.io session of one connection lives in the process that accepted its handshake: every
sid names its Rasa instance and worker, a request that reaches another worker of the instance is
handed to the owner (:mod:`connectors.worker_routing`), and the load balancer sends a request to
the instance its sid names (``fleet/haproxy.cfg``; docs/channels-web.md). So HTTP long-polling and
the websocket upgrade work behind several workers and instances, with no cookie.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any, Awaitable, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union
from urllib.parse import parse_qs

import socketio
from rasa.core.channels.channel import UserMessage
from rasa.core.channels.socketio import SocketBlueprint, SocketIOOutput
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse
from socketio.async_pubsub_manager import AsyncPubSubManager

from bot import metrics
from bot.outbox import InvalidCursor, validate_cursor
from bot.push import DeliveryFailed, register_conversation
from connectors.binding import ANONYMOUS_OWNER, Admission, conversation_owner
from connectors.common import MESSAGES, REDIS_FAILURES, SENDER_PATTERN, HandoffTurn, ShopperChannel, check_text
from connectors.worker_routing import RoutedEngineServer, WorkerRouter

logger = logging.getLogger(__name__)

BOT_EVENT = "bot_uttered"
USER_EVENT = "user_uttered"
ERROR_EVENT = "error"
TURN_DONE_EVENT = "turn_done"

MAX_PACKET_BYTES = 256 * 1024
"""Largest socket.io packet accepted; a bigger one closes the connection (the client reconnects)."""

MAX_REPLAY = 1000
"""Most pushed messages replayed to a (re)connecting client."""

REPLAY_PAGE = 100
"""Pushed messages read from the outbox at once when replaying."""

REDIS_CHANNEL = "socketio:web"
"""Redis pub/sub channel the socket.io servers of every Rasa process share."""

OriginSetting = Union[str, Sequence[str]]

_MALFORMED = object()
"""Stands for the payload of an event sent with more than one argument."""


def _payload(args: Sequence[Any]) -> Any:
    """The one payload of an event: None without arguments, :data:`_MALFORMED` with several."""
    if not args:
        return None
    return args[0] if len(args) == 1 else _MALFORMED


RASA_KEYS = ("text", "quick_replies", "attachment", "image", "custom", "elements")
"""The keys of a ``bot_uttered`` message in Rasa's own socket.io format."""

SHOP_FORMAT = "shop"
"""``?format=shop`` in a client's URL (the shop's own widget): the richer format; every other
client gets Rasa's own format."""


def rasa_message(payload: Mapping[str, Any]) -> Dict[str, Any]:
    """A ``bot_uttered`` payload in Rasa's own format: Rasa's keys (:data:`RASA_KEYS`) at the top,
    every other one under ``metadata`` (``buttons`` only there when ``quick_replies`` stand for them)."""
    message = {key: value for key, value in payload.items() if key in RASA_KEYS}
    metadata = dict(payload["metadata"]) if isinstance(payload.get("metadata"), dict) else {}
    metadata.update((key, value) for key, value in payload.items() if key not in RASA_KEYS and key != "metadata")
    if "quick_replies" not in message and isinstance(metadata.get("buttons"), list) and metadata["buttons"]:
        message["quick_replies"] = quick_replies(metadata["buttons"])
    if metadata:
        message["metadata"] = metadata
    return message


def rasa_room(session_id: str) -> str:
    """The room of a session's sockets that take Rasa's format (``#`` is in no session id)."""
    return f"{session_id}#rasa"


async def emit_to_session(sio: socketio.AsyncServer, event: str, payload: Dict[str, Any], session_id: str) -> None:
    """Send a message to every socket of a session, wherever it is connected, each in its format."""
    await sio.emit(event, payload, room=session_id)
    await sio.emit(event, rasa_message(payload), room=rasa_room(session_id))


class Refused(Exception):
    """A request of the client that is answered with a polite refusal instead of being handled.

    Args:
        code: the :data:`connectors.common.MESSAGES` code.
    """

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def pushed_message(entry_id: str, message: Mapping[str, Any]) -> Dict[str, Any]:
    """An outbox message as a ``bot_uttered`` payload.

    Args:
        entry_id: the message's outbox entry id.
        message: the message in Rasa's REST format with ``from``, ``sent_at`` and, for an agent's
            reply, ``agent`` (the name the shopper sees).

    Returns:
        The message with ``id`` and, when it has buttons, the same buttons as ``quick_replies``
        (what rasa-webchat renders).
    """
    payload = {key: value for key, value in message.items() if key != "cursor"}
    payload["id"] = entry_id
    buttons = payload.get("buttons")
    if isinstance(buttons, list) and buttons:
        payload["quick_replies"] = quick_replies(buttons)
    return payload


def quick_replies(buttons: List[Any]) -> List[Dict[str, Any]]:
    """Buttons in Rasa's REST format as the ``quick_replies`` rasa-webchat renders."""
    return [{"content_type": "text", "title": button.get("title", ""), "payload": button.get("payload", "")}
            for button in buttons if isinstance(button, dict)]


class WebSocketServer(socketio.AsyncServer):
    """python-socketio's server, dropping packets that are no event a client may send.

    python-socketio raises inside its own dispatch (a traceback logged for every such packet a
    stranger sends) for a packet it cannot read (JSON that does not parse or is nested deeper than
    Python's recursion, an unknown type, a type only a server sends) and for an event packet whose data is no list, an empty list or a list whose
    first item is no string; an event named ``connect`` or ``disconnect`` would reach those handlers
    while the socket stays connected. Such a packet is logged (without its content) and dropped;
    the connection goes on. The event handlers run as tasks of their own (``async_handlers``), so
    nothing they raise reaches :meth:`_handle_eio_message`.

    Its engine.io server is :class:`connectors.worker_routing.RoutedEngineServer` with ``router``.
    """

    def __init__(self, *args: Any, router: Optional[WorkerRouter] = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.router = router
        self.eio.router = router

    def _engineio_server_class(self) -> type:
        return RoutedEngineServer

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        try:
            await super()._handle_eio_message(eio_sid, data)
        except (ValueError, RecursionError) as error:  # what python-socketio raises for a packet it cannot read
            logger.info("web.packet.malformed error=%s", type(error).__name__)

    async def _handle_event(self, eio_sid: str, namespace: Optional[str], id: Optional[int], data: Any) -> None:
        if not isinstance(data, list) or not data or not isinstance(data[0], str) or data[0] in self.reserved_events:
            logger.info("web.packet.malformed error=no_event")
            return
        await super()._handle_event(eio_sid, namespace, id, data)


class WebOutput(SocketIOOutput):
    """Rasa's socket.io output, marking the bot's messages ``from: bot`` and counting them.

    Args:
        sio: the socket.io server.
        bot_message_evt: the event the messages go out as.
    """

    def __init__(self, sio: socketio.AsyncServer, bot_message_evt: str = BOT_EVENT) -> None:
        super().__init__(sio, bot_message_evt)
        self.sent = 0
        self.messages: List[Dict[str, Any]] = []

    async def _send_message(self, socket_id: str, response: Any) -> None:
        self.sent += 1
        self.messages.append(response)
        await emit_to_session(self.sio, self.bot_message_evt, {**response, "from": "bot"}, socket_id)

    async def send_custom_json(self, recipient_id: str, json_message: Dict[str, Any], **kwargs: Any) -> None:
        """Send a custom payload as ``{"custom": ...}`` (Rasa's REST format) to the session's room."""
        await self._send_message(recipient_id, {"custom": json_message})


class WebInput(ShopperChannel):
    """Input channel for the shop's website chat widget (socket.io).

    Args:
        socketio_path: where the socket.io server listens on the Rasa server.
        cors_allowed_origins: origins allowed to connect (``*`` for any).
        **channel: ``redis_url`` (also the socket.io servers' message queue), ``identity_secret``,
            ``action_server_url``, ``settings``: see :class:`connectors.common.ShopperChannel`.
    """

    CREDENTIAL_KEYS = (*ShopperChannel.CREDENTIAL_KEYS, "socketio_path", "cors_allowed_origins")

    def __init__(self, socketio_path: Optional[str] = None, cors_allowed_origins: Optional[OriginSetting] = None, **channel: Any) -> None:
        super().__init__(**channel)
        self.socketio_path: str = socketio_path or "/socket.io"
        self.cors_allowed_origins: OriginSetting = cors_allowed_origins or "*"
        self.sio: Optional[socketio.AsyncServer] = None
        self._locks: Dict[str, asyncio.Lock] = {}

    @classmethod
    def name(cls) -> str:
        """Name of the channel; also its URL prefix under ``/webhooks/``."""
        return "web"

    def get_output_channel(self) -> Optional[WebOutput]:
        """The output that reaches the widget (used by Rasa's ``/conversations/<id>/trigger_intent``)."""
        return WebOutput(self.sio) if self.sio is not None else None

    # -- sessions -------------------------------------------------------------------------------

    def identity_of(self, custom: Any) -> Tuple[bool, Optional[str]]:
        """Read the identity a client claims in ``customData``.

        Args:
            custom: the ``customData`` of an event (None when absent).

        Returns:
            Whether an identity was claimed at all, and the verified customer id (None: anonymous,
            also for a forged or unsigned claim).

        Raises:
            Refused: ``customData`` is not an object or its identity fields are not strings.
        """
        if custom is None:
            return False, None
        if not isinstance(custom, dict):
            raise Refused("invalid_metadata")
        token, claimed, signature = custom.get("identity_token"), custom.get("customer_id"), custom.get("signature")
        if any(value is not None and not isinstance(value, str) for value in (token, claimed, signature, custom.get("conversation_token"))):
            raise Refused("invalid_metadata")
        if not token and not claimed:
            return False, None
        customer_id = self.resolve_identity(token, claimed, signature)
        if token and customer_id is None:
            logger.info("web.identity.refused")
            raise Refused("invalid_identity")
        if customer_id is None:
            logger.info("web.identity.unverified")
        return True, customer_id

    async def join(self, sid: str, session_id: str, customer_id: Optional[str], proven: bool = True) -> None:
        """Bind the session to its owner, then let the socket receive the session's messages.

        Args:
            sid: the socket.
            session_id: the conversation id.
            customer_id: the verified customer id, None for an anonymous shopper.

        Raises:
            Refused: another owner has the conversation, or Redis could not answer.
        """
        await self.admitted(session_id, customer_id, proven=proven)
        await self.enter(sid, session_id, customer_id)

    async def admitted(self, session_id: str, customer_id: Optional[str], text: Optional[str] = None,
                       proven: bool = True) -> Admission:
        """Admit a message, or a session opening, for its owner (:meth:`connectors.common.ShopperChannel.admit`).

        Args:
            session_id: the conversation id.
            customer_id: the verified customer id, None for an anonymous shopper.
            text: the message the socket sent; None when the session opens.
            proven: for an anonymous shopper, whether the socket holds the conversation's token.

        Returns:
            What admitting the message did.

        Raises:
            Refused: another owner has the conversation, or Redis could not answer.
        """
        try:
            admission = await self.admit(session_id, customer_id, text, proven=proven)
        except REDIS_FAILURES as error:
            logger.error("web.binding.failed sender=%s error=%s", session_id, type(error).__name__)
            raise Refused("bot_unavailable") from error
        if not admission.binding.allowed:
            logger.warning("web.conversation.forbidden sender=%s verified=%s", session_id, customer_id is not None)
            raise Refused("conversation_forbidden")
        return admission

    async def enter(self, sid: str, session_id: str, customer_id: Optional[str]) -> None:
        """Let the socket receive the session's pushed messages (the session's owner is checked already).

        Raises:
            Refused: Redis could not answer.
        """
        assert self.sio is not None
        try:
            await register_conversation(self.redis(), session_id, self.name(), ttl_s=self.ttl_s)
        except REDIS_FAILURES as error:
            logger.error("web.binding.failed sender=%s error=%s", session_id, type(error).__name__)
            raise Refused("bot_unavailable") from error
        await self._switch(sid, session_id, customer_id, joined=True)

    async def _switch(self, sid: str, session_id: str, customer_id: Optional[str], joined: bool, holder: bool = False) -> None:
        """Record the socket's session, leaving the room of the one it had before.

        ``holder``: the socket may start the (new) anonymous conversation ``session_id``; a joined
        socket holds its conversation anyway.
        """
        assert self.sio is not None
        state = await self.sio.get_session(sid)
        previous, rasa_format = state.get("session_id"), bool(state.get("rasa_format"))
        if previous and previous != session_id:
            await self.sio.leave_room(sid, rasa_room(previous) if rasa_format else previous)
        if joined:
            await self.sio.enter_room(sid, rasa_room(session_id) if rasa_format else session_id)
        await self.sio.save_session(sid, {"session_id": session_id, "customer_id": customer_id, "joined": joined,
                                          "holder": holder or joined, "rasa_format": rasa_format})

    async def to_socket(self, sid: str, payload: Dict[str, Any]) -> None:
        """Send one socket a ``bot_uttered`` message in its format."""
        assert self.sio is not None
        rasa_format = bool((await self.sio.get_session(sid)).get("rasa_format"))
        await self.sio.emit(BOT_EVENT, rasa_message(payload) if rasa_format else payload, to=sid)

    async def replay(self, sid: str, session_id: str, after: Any) -> int:
        """Send one socket the pushed messages of its session after the last one it has seen.

        Args:
            sid: the socket.
            session_id: the conversation id.
            after: the outbox id of the last message the client has (anything else: from the start).

        Returns:
            How many messages were sent.
        """
        assert self.sio is not None
        try:
            cursor: Optional[str] = validate_cursor(after) if after else None
        except InvalidCursor:
            cursor = None
        sent = 0
        try:
            while sent < MAX_REPLAY:
                messages, cursor = await self.outbox().fetch(session_id, after=cursor, limit=REPLAY_PAGE)
                for message in messages:
                    await self.to_socket(sid, pushed_message(message["cursor"], message))
                sent += len(messages)
                if not messages:
                    break
        except REDIS_FAILURES as error:
            logger.warning("web.replay.failed sender=%s error=%s", session_id, type(error).__name__)
        return sent

    async def handle_session_request(self, sid: str, data: Any) -> None:
        """Start or resume a session: verify, bind, join its room, confirm, replay pushed messages.

        A request that claims no identity for a conversation that is new or belongs to a customer
        is confirmed without joining (rasa-webchat sends ``customData`` with messages only): the
        first message, with its identity, joins.

        Args:
            sid: the socket.
            data: the event's payload.
        """
        assert self.sio is not None
        if data is None:
            data = {}
        try:
            if not isinstance(data, dict):
                raise Refused("invalid_json")
            session_id = data.get("session_id") or uuid.uuid4().hex
            if not isinstance(session_id, str) or SENDER_PATTERN.fullmatch(session_id) is None:
                raise Refused("invalid_sender")
            custom = data.get("customData")
            claimed, customer_id = self.identity_of(custom)
            holder_token = custom.get("conversation_token") if isinstance(custom, dict) else None
            owner = None if claimed else await self._owner(session_id)
            if claimed:
                await self.join(sid, session_id, customer_id, proven=customer_id is not None or self.holds_conversation(session_id, holder_token))
            elif owner == ANONYMOUS_OWNER and self.holds_conversation(session_id, holder_token):
                await self.join(sid, session_id, None)
            elif owner == ANONYMOUS_OWNER and holder_token is None:
                # Someone else's anonymous conversation, or the client lost its token: a new one.
                session_id = uuid.uuid4().hex
                await self._switch(sid, session_id, None, joined=False, holder=True)
            elif owner == ANONYMOUS_OWNER:
                raise Refused("conversation_forbidden")
            else:
                await self._switch(sid, session_id, None, joined=False, holder=owner is None)
        except Refused as refusal:
            await self.refuse(sid, refusal.code)
            return
        state = await self.sio.get_session(sid)
        confirm: Dict[str, Any] = {"session_id": session_id}
        if state.get("customer_id") is None and (state.get("holder") or state.get("joined")):
            confirm["conversation_token"] = self.conversation_token(session_id)
        await self.sio.emit("session_confirm", confirm, to=sid)
        joined = bool(state.get("joined"))
        logger.info("web.session.confirmed sender=%s joined=%s", session_id, joined)
        if joined:
            await self.replay(sid, session_id, (custom or {}).get("last_message_id") or data.get("last_message_id"))

    async def _owner(self, session_id: str) -> Optional[str]:
        try:
            return await conversation_owner(self.redis(), session_id)
        except REDIS_FAILURES as error:
            raise Refused("bot_unavailable") from error

    async def refuse(self, sid: str, code: str) -> None:
        """Tell one socket politely that its session request was refused (``error`` event)."""
        assert self.sio is not None
        await self.sio.emit(ERROR_EVENT, {"code": code, "message": MESSAGES[code]}, to=sid)

    async def answer(self, sid: str, code: str) -> None:
        """Answer one socket's message with a polite refusal (``bot_uttered`` with ``error``)."""
        assert self.sio is not None
        await self.to_socket(sid, {"text": MESSAGES[code], "from": "system", "error": code})

    # -- messages -------------------------------------------------------------------------------

    async def handle_user_message(self, sid: str, data: Any, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> None:
        """Validate, authenticate and bind one message; route it to the agent or the bot.

        Args:
            sid: the socket.
            data: the event's payload.
            on_new_message: Rasa's handler of user messages.
        """
        assert self.sio is not None
        lock = self._locks.setdefault(sid, asyncio.Lock())
        async with lock:  # one socket's messages reach the bot in the order they were sent
            try:
                await self._handle_user_message(sid, data, on_new_message)
            except Refused as refusal:
                await self.answer(sid, refusal.code)
            finally:
                await self.sio.emit(TURN_DONE_EVENT, {}, to=sid)

    async def _handle_user_message(self, sid: str, data: Any, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> None:
        assert self.sio is not None
        if not isinstance(data, dict):
            raise Refused("invalid_json")
        text, refusal = check_text(data.get("message"))
        if refusal is not None:
            raise Refused(refusal)
        state = await self.sio.get_session(sid)
        session_id = data.get("session_id") or state.get("session_id")
        if not session_id:
            raise Refused("no_session")
        if not isinstance(session_id, str) or SENDER_PATTERN.fullmatch(session_id) is None:
            raise Refused("invalid_sender")
        custom = data.get("customData")
        claimed, customer_id = self.identity_of(custom)
        own_session = state.get("session_id") == session_id
        if not claimed and state.get("joined") and own_session:
            customer_id = state.get("customer_id")
        proven = (own_session and bool(state.get("holder"))) or (
            isinstance(custom, dict) and self.holds_conversation(session_id, custom.get("conversation_token")))
        # checks the owner again and renews the binding
        admission = await self.admitted(session_id, customer_id, text, proven=proven)

        async with self.conversation_turn(session_id, held=admission.turn_token):
            await self.enter(sid, session_id, customer_id)
            await self.take_turn(session_id, text, customer_id, admission, on_new_message)

    async def take_turn(self, session_id: str, text: str, customer_id: Optional[str], admission: Admission,
                     on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> None:
        """Route one accepted message to the agent or the bot; the answer goes to the session's room.

        Raises:
            Refused: the message could not be answered (the shopper gets a polite text).
        """
        assert self.sio is not None
        try:
            turn = await self.handoff_turn(session_id, text, customer_id, admission)
        except REDIS_FAILURES as error:
            logger.error("web.handoff.route_failed sender=%s error=%s", session_id, type(error).__name__)
            raise Refused("bot_unavailable") from error
        if turn is not None:
            await emit_to_session(self.sio, BOT_EVENT, self.handoff_message(turn), session_id)
            return

        output = WebOutput(self.sio)
        metadata = await self.message_metadata(session_id, text, customer_id, admission)
        message = UserMessage(await self.bot_text(session_id, text), output, session_id, input_channel=self.name(), metadata=metadata)
        logger.info("web.message.received sender=%s verified=%s chars=%d", session_id, customer_id is not None, len(text))
        try:
            await on_new_message(message)
        except asyncio.CancelledError:
            logger.error("web.message.cancelled sender=%s", session_id)
            raise
        except Exception as error:  # every failure reaches the shopper as a polite answer
            logger.error("web.message.failed sender=%s error=%s", session_id, type(error).__name__)
            raise Refused("bot_unavailable") from error
        await self.remember_buttons(session_id, output.messages)
        if output.sent == 0:
            code = await self.silent_turn_code(session_id)
            if code is not None:
                raise Refused(code)

    @staticmethod
    def handoff_message(turn: HandoffTurn) -> Dict[str, Any]:
        """The ``bot_uttered`` answer to a message kept for the human agent (or to leaving the queue)."""
        if turn.status == "cancelled":
            return {"text": turn.notice, "from": "bot"}
        return {"text": turn.notice, "from": "system", "handoff": turn.details()}

    # -- pushed messages ------------------------------------------------------------------------

    async def deliver(self, sender: str, registration: Dict[str, str], entries: List[Tuple[str, Dict[str, Any]]]) -> Optional[str]:
        """Push outbox messages to every socket of a session, wherever it is connected.

        Args:
            sender: the conversation id (the room).
            registration: the conversation's channel registration (unused).
            entries: ``(outbox id, message)`` pairs, oldest first.

        Returns:
            The id of the last message sent.
        """
        if self.sio is None:
            raise DeliveryFailed("socket.io server not started")
        last: Optional[str] = None
        for entry_id, message in entries:
            await emit_to_session(self.sio, BOT_EVENT, pushed_message(entry_id, message), sender)
            last = entry_id
        return last

    async def start_worker(self) -> None:
        """Start this server process's part (on server start): its own identity among the socket.io
        servers sharing Redis, and the delivery of pushed messages of ``web`` conversations.

        Sanic forks its workers after the blueprint (and the Redis manager) was built: each worker
        must take an id of its own, or every worker ignores what the others publish as its own echo.
        """
        if self.sio is not None and isinstance(self.sio.manager, AsyncPubSubManager):
            self.sio.manager.host_id = uuid.uuid4().hex
        await self.start_push(self.deliver)

    async def stop(self) -> None:
        """Stop push delivery and the socket.io background tasks (on server stop)."""
        await self.stop_push()
        if self.sio is not None:
            listener = getattr(self.sio.manager, "thread", None)
            if isinstance(listener, asyncio.Task):
                listener.cancel()
            await self.sio.shutdown()
            for task in asyncio.all_tasks():  # engine.io leaves a ping sleeper (25 s) behind every socket
                code = getattr(task.get_coro(), "cr_code", None)
                if code is not None and code.co_name == "_send_ping" and "engineio" in code.co_filename:
                    task.cancel()

    # -- wiring ---------------------------------------------------------------------------------

    def socket_server(self) -> WebSocketServer:
        """The socket.io server, sharing rooms with every other Rasa process through Redis."""
        return WebSocketServer(
            router=WorkerRouter.from_settings(self.settings),
            async_mode="sanic",
            client_manager=socketio.AsyncRedisManager(self.redis_url, channel=REDIS_CHANNEL),
            cors_allowed_origins=self.cors_allowed_origins,
            max_http_buffer_size=MAX_PACKET_BYTES,
            logger=False,
            engineio_logger=False,
        )

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        """The socket.io server at ``socketio_path`` and the health check; Rasa mounts it under ``/webhooks/web``.

        Args:
            on_new_message: Rasa's handler of user messages.

        Returns:
            The channel's blueprint.
        """
        on_new_message = metrics.timed_turns(self.name(), on_new_message)
        sio = self.socket_server()
        self.sio = sio
        web = SocketBlueprint(sio, self.socketio_path, "web_webhook", __name__)

        @web.listener("after_server_start")
        async def start(app: Any, *_: Any) -> None:
            await self.start_worker()
            if sio.router is not None:
                await sio.router.start(app)

        @web.listener("before_server_stop")
        async def stop(*_: Any) -> None:
            if sio.router is not None:
                await sio.router.stop()
            await self.stop()

        @web.listener("after_server_stop")
        async def close_redis(*_: Any) -> None:
            await self.close()

        @web.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @sio.on("connect")
        async def connect(sid: str, environ: Dict[str, Any], auth: Any = None) -> bool:
            shop_format = parse_qs(str(environ.get("QUERY_STRING", ""))).get("format") == [SHOP_FORMAT]
            await sio.save_session(sid, {"rasa_format": not shop_format})
            return True

        @sio.on("disconnect")
        async def disconnect(sid: str, *_: Any) -> None:
            self._locks.pop(sid, None)

        @sio.on("session_request")
        async def session_request(sid: str, *args: Any) -> None:
            await self._guarded(sid, "session_request", self.handle_session_request(sid, _payload(args)))

        @sio.on(USER_EVENT)
        async def user_uttered(sid: str, *args: Any) -> None:
            await self._guarded(sid, USER_EVENT, self.handle_user_message(sid, _payload(args), on_new_message))

        @sio.on("*")
        async def unknown(event: str, sid: str, *_: Any) -> None:
            async def answer_unknown() -> None:
                await self.answer(sid, "unknown_event")
                await sio.emit(TURN_DONE_EVENT, {}, to=sid)

            await self._guarded(sid, "unknown", answer_unknown())

        return web

    async def _guarded(self, sid: str, event: str, work: Awaitable[None]) -> None:
        """Run an event handler; any unexpected failure becomes a polite answer, never a crash."""
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception as error:
            logger.error("web.%s.failed error=%s", event, type(error).__name__)
            try:
                await self.answer(sid, "bot_unavailable")
            except Exception:  # the socket is gone
                logger.debug("web.%s.answer_failed", event, exc_info=True)

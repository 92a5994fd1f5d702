"""The simulated WeChat server: Tencent's API side and the shopper's phone side, state in memory.

API side (what the official account's server calls):

- ``GET /cgi-bin/token?grant_type=client_credential&appid=&secret=`` →
  ``{"access_token", "expires_in"}``; errors ``40002`` (grant_type), ``40013`` (appid),
  ``40001`` (secret). A new token retires the account's older ones after ``token_grace_s``.
- ``POST /cgi-bin/message/custom/send?access_token=`` with
  ``{"touser", "msgtype": "text", "text": {"content"}}`` → ``{"errcode": 0, "errmsg": "ok"}``;
  errors ``41001`` (no token), ``40001`` (invalid token), ``42001`` (expired token), ``44002``
  (empty body), ``47001`` (not JSON), ``40003`` (unknown OpenID), ``40008`` (message type),
  ``44004`` (empty content), ``45002`` (over 2048 bytes), ``45015`` (the shopper unsubscribed or
  has not written for 48 hours).

Phone side (what a shopper does):

- ``POST /sim/send {"openid", "text"}`` (or ``"event": "subscribe"``, or ``"msgtype": "image"``;
  optional ``msg_id``, ``create_time``): the signed XML POST to the server URL, as WeChat sends it:
  ``signature``/``timestamp``/``nonce`` query arguments, ``MsgId``, a 5 s timeout and up to
  ``retries`` further attempts of the same request when the server does not answer in time (no
  retry for an answer, even an error). ``success`` or an empty body means no reply; anything that
  is not a valid reply shows the shopper 「该公众号暂时无法提供服务，请稍后再试」. Returns the outcome and
  the passive reply parsed.
- ``GET /sim/inbox/{openid}?after=&include_sent=``: what the shopper received, in order.
- ``POST /sim/verify``: the URL verification WeChat runs when the server URL is configured.
- ``POST /sim/bind-demo {"openid", "customer_id"}``: plays the shop's account page, signing a
  binding with the ``wechat-bind`` key derived from the shop's secret (as the shop's backend does)
  and posting it to the channel's ``/bind`` (demo only).

Safe mode (安全模式): with an EncodingAESKey (``--encoding-aes-key`` or ``encoding_aes_key`` of ``POST
/sim/config``; empty: plaintext mode) the phone posts ``<xml><ToUserName/><Encrypt/></xml>`` with
``encrypt_type=aes`` and ``msg_signature``, accepts only encrypted passive replies whose
``MsgSignature`` matches, and the URL verification sends an encrypted ``echostr`` signed with
``msg_signature`` and expects its plaintext back.

Control: ``POST /sim/config`` (webhook URL, timeout, retries, token lifetime, EncodingAESKey), ``POST
/sim/expire-tokens {"mode": "expired"|"revoked"}``, ``POST /sim/reset``, ``GET /sim/stats``,
``GET /health``; the chat page at ``/``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import logging
import re
import secrets
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple
from xml.etree import ElementTree

import aiohttp
from sanic import Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.identity import purpose_key

if TYPE_CHECKING:
    from connectors.wechat_crypto import MessageCrypto

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; style-src 'self'; script-src 'self'; connect-src 'self'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
OPENID = re.compile(r"^[A-Za-z0-9_-]{6,64}$")
UNAVAILABLE = "该公众号暂时无法提供服务，请稍后再试"
"""What WeChat shows the shopper when the account's server fails or answers nonsense."""
SESSION_WINDOW_S = 48 * 3600
"""Customer-service messages may reach a shopper for 48 hours after the shopper's last message."""
MAX_CUSTOM_BYTES = 2048
MAX_SIM_TEXT = 10_000

ERRORS: Dict[int, str] = {
    40001: "invalid credential, access_token is invalid or not latest",
    40002: "invalid grant_type",
    40003: "invalid openid",
    40008: "invalid message type",
    40013: "invalid appid",
    41001: "access_token missing",
    42001: "access_token expired",
    44002: "empty post data",
    44004: "empty content",
    45002: "content size out of limit",
    45015: "response out of time limit or subscription is canceled",
    47001: "data format error",
}


@dataclass
class SimConfig:
    """What the simulated WeChat knows about the one official account it serves.

    Attributes:
        webhook_url: the account's server URL (URL 服务器地址).
        token: the account's server token (Token 令牌).
        appid: the account's app id.
        appsecret: the account's app secret.
        account: the account's original id (``ToUserName`` of every message).
        timeout_s: how long WeChat waits for the server's answer.
        retries: further attempts after a timeout (WeChat: 总共重试三次).
        token_ttl_s: ``expires_in`` of access tokens.
        token_grace_s: how long an older token stays valid after a new one is issued.
        shop_secret: the shop's identity secret, for the binding demo only.
        bind_url: the channel's binding route (default: the webhook URL with ``/bind``).
        encoding_aes_key: the account's EncodingAESKey: safe mode; empty: plaintext mode.
    """

    webhook_url: str
    token: str
    appid: str
    appsecret: str
    account: str = "gh_5f3c8a1b2d4e"
    timeout_s: float = 5.0
    retries: int = 3
    token_ttl_s: int = 7200
    token_grace_s: int = 300
    shop_secret: str = ""
    bind_url: str = ""
    encoding_aes_key: str = ""

    def public(self) -> Dict[str, Any]:
        """The configuration without secrets."""
        return {k: v for k, v in asdict(self).items() if k not in ("token", "appsecret", "shop_secret", "encoding_aes_key")} | {
            "safe_mode": bool(self.encoding_aes_key)}

    def effective_bind_url(self) -> str:
        """Where the binding demo posts."""
        return self.bind_url or re.sub(r"/webhook/?$", "/bind", self.webhook_url)


@dataclass
class AccessToken:
    appid: str
    expires_at: float


@dataclass
class Phone:
    """One shopper as WeChat sees them: subscription, last message time, everything received."""

    openid: str
    subscribed: bool = True
    last_message_at: float = 0.0
    inbox: List[Dict[str, Any]] = field(default_factory=list)


def signature(token: str, timestamp: str, nonce: str) -> str:
    """WeChat's signature of a request to the account's server."""
    return hashlib.sha1("".join(sorted((token, timestamp, nonce))).encode("utf-8")).hexdigest()


def _cdata(value: str) -> str:
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def message_xml(account: str, openid: str, create_time: int, msg_type: str, fields: Dict[str, str]) -> str:
    """The XML body of a message or event, field order as in WeChat's documentation."""
    parts = [f"<ToUserName>{_cdata(account)}</ToUserName>", f"<FromUserName>{_cdata(openid)}</FromUserName>",
             f"<CreateTime>{create_time}</CreateTime>", f"<MsgType>{_cdata(msg_type)}</MsgType>"]
    for name, value in fields.items():
        parts.append(f"<{name}>{value}</{name}>" if name in ("MsgId", "MsgDataId", "Idx") else f"<{name}>{_cdata(value)}</{name}>")
    return "<xml>" + "".join(parts) + "</xml>"


def parse_reply(body: str, openid: str, account: str) -> Optional[Dict[str, str]]:
    """A passive reply as WeChat reads it; None when it is not a valid reply to this shopper."""
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError:
        return None
    if root.tag != "xml":
        return None
    fields = {child.tag: child.text or "" for child in root}
    if fields.get("ToUserName") != openid or fields.get("FromUserName") != account or not fields.get("CreateTime", "").isdigit():
        return None
    msg_type = fields.get("MsgType", "")
    if msg_type == "text":
        return {"msg_type": "text", "content": fields.get("Content", "")}
    if msg_type in ("image", "voice", "video", "music", "news"):
        return {"msg_type": msg_type, "content": ""}
    return None


class Simulator:
    """State and behaviour of the simulated WeChat.

    Args:
        config: the account's configuration.
    """

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.tokens: Dict[str, AccessToken] = {}
        self.phones: Dict[str, Phone] = {}
        self.stats: Dict[str, int] = {}
        self._msg_ids = itertools.count(int(time.time() * 1_000_000))
        self._seq = itertools.count(1)
        self.session: Optional[aiohttp.ClientSession] = None
        self._crypto: Optional[Tuple[Tuple[str, str, str], MessageCrypto]] = None

    def reset(self) -> None:
        """Forget every token, shopper and counter."""
        self.tokens.clear()
        self.phones.clear()
        self.stats.clear()

    def count(self, name: str) -> None:
        self.stats[name] = self.stats.get(name, 0) + 1

    def phone(self, openid: str) -> Phone:
        return self.phones.setdefault(openid, Phone(openid))

    def record(self, openid: str, kind: str, text: str, **extra: Any) -> Dict[str, Any]:
        """Add a line to a shopper's inbox (``sent``, ``passive``, ``custom`` or ``notice``)."""
        entry = {"seq": next(self._seq), "kind": kind, "text": text, "at": time.time(), **extra}
        self.phone(openid).inbox.append(entry)
        return entry

    # ------------------------------------------------------------------ API side

    def issue_token(self, grant_type: str, appid: str, secret: str) -> Dict[str, Any]:
        """``GET /cgi-bin/token``."""
        if grant_type != "client_credential":
            return self.error(40002)
        if appid != self.config.appid:
            return self.error(40013)
        if not hmac.compare_digest(secret.encode(), self.config.appsecret.encode()):
            return self.error(40001)
        now = time.time()
        for token in self.tokens.values():
            if token.appid == appid:
                token.expires_at = min(token.expires_at, now + self.config.token_grace_s)
        value = secrets.token_urlsafe(96)
        self.tokens[value] = AccessToken(appid, now + self.config.token_ttl_s)
        self.count("tokens_issued")
        return {"access_token": value, "expires_in": self.config.token_ttl_s}

    def error(self, errcode: int) -> Dict[str, Any]:
        self.count(f"errcode_{errcode}")
        return {"errcode": errcode, "errmsg": ERRORS[errcode]}

    def token_error(self, value: str) -> Optional[int]:
        if not value:
            return 41001
        token = self.tokens.get(value)
        if token is None:
            return 40001
        if time.time() >= token.expires_at:
            return 42001
        return None

    def expire_tokens(self, mode: str) -> int:
        """Make every token expired (``42001``) or unknown (``40001``); returns how many."""
        count = len(self.tokens)
        if mode == "revoked":
            self.tokens.clear()
        else:
            for token in self.tokens.values():
                token.expires_at = time.time() - 1
        return count

    def custom_send(self, access_token: str, raw: bytes) -> Dict[str, Any]:
        """``POST /cgi-bin/message/custom/send``."""
        problem = self.token_error(access_token)
        if problem:
            return self.error(problem)
        if not raw.strip():
            return self.error(44002)
        try:
            body = json.loads(raw)
        except ValueError:
            return self.error(47001)
        if not isinstance(body, dict):
            return self.error(47001)
        openid = body.get("touser")
        phone = self.phones.get(openid) if isinstance(openid, str) else None
        if phone is None:
            return self.error(40003)
        if body.get("msgtype") != "text":
            return self.error(40008)
        text = body.get("text")
        content = text.get("content") if isinstance(text, dict) else None
        if not isinstance(content, str) or not content:
            return self.error(44004)
        if len(content.encode("utf-8")) > MAX_CUSTOM_BYTES:
            return self.error(45002)
        if not phone.subscribed or time.time() - phone.last_message_at > SESSION_WINDOW_S:
            return self.error(45015)
        self.record(phone.openid, "custom", content)
        self.count("custom_sent")
        return {"errcode": 0, "errmsg": "ok"}

    # ------------------------------------------------------------------ phone side

    def crypto(self) -> Optional[MessageCrypto]:
        """The account's message encryption in safe mode; None in plaintext mode.

        Raises:
            ValueError: the configured EncodingAESKey is malformed.
        """
        key = self.config.encoding_aes_key
        if not key:
            return None
        if self._crypto is None or self._crypto[0] != (self.config.token, key, self.config.appid):
            # the channel's implementation of Tencent's scheme, loaded only in safe mode (it loads the channels' package)
            from connectors.wechat_crypto import MessageCrypto

            self._crypto = ((self.config.token, key, self.config.appid), MessageCrypto.from_settings(self.config.token, key, self.config.appid))
        return self._crypto[1]

    def signed_query(self, encrypt: Optional[str] = None) -> Dict[str, str]:
        """The query of a request to the account's server; with ``encrypt``, safe mode's too."""
        timestamp = str(int(time.time()))
        nonce = str(secrets.randbelow(9 * 10**9) + 10**9)
        query = {"signature": signature(self.config.token, timestamp, nonce), "timestamp": timestamp, "nonce": nonce}
        crypto = self.crypto()
        if crypto is not None and encrypt is not None:
            query.update(encrypt_type="aes", msg_signature=crypto.signature(timestamp, nonce, encrypt))
        return query

    def seal(self, body: str) -> Tuple[str, Dict[str, str]]:
        """A message's body and query as WeChat posts them: encrypted in safe mode."""
        crypto = self.crypto()
        if crypto is None:
            return body, self.signed_query()
        encrypt = crypto.encrypt(body)
        return f"<xml><ToUserName>{_cdata(self.config.account)}</ToUserName><Encrypt>{_cdata(encrypt)}</Encrypt></xml>", self.signed_query(encrypt)

    def unseal(self, text: str) -> Optional[str]:
        """A passive reply as WeChat reads it: in safe mode the plaintext of a valid envelope, else None."""
        crypto = self.crypto()
        if crypto is None:
            return text
        try:
            fields = {child.tag: child.text or "" for child in ElementTree.fromstring(text)}
            return crypto.open(fields.get("MsgSignature", ""), fields.get("TimeStamp", ""), fields.get("Nonce", ""),
                               fields.get("Encrypt", "")).decode("utf-8")
        except (ElementTree.ParseError, ValueError):  # the crypto's errors are ValueErrors
            return None

    def build(self, openid: str, request: Dict[str, Any]) -> Tuple[str, str, str]:
        """The XML of what a shopper does, its ``MsgId`` (empty for events) and what the inbox shows.

        Raises:
            ValueError: the request is not one the phone can make.
        """
        create_time = int(request.get("create_time") or time.time())
        msg_id = str(request.get("msg_id") or next(self._msg_ids))
        if not msg_id.isdigit():
            raise ValueError("msg_id must be digits")
        if request.get("event"):
            event = str(request["event"])
            return message_xml(self.config.account, openid, create_time, "event", {"Event": event}), "", f"[{event}]"
        msg_type = str(request.get("msgtype") or "text")
        if msg_type == "text":
            text = request.get("text")
            if not isinstance(text, str) or len(text) > MAX_SIM_TEXT:
                raise ValueError(f"text must be a string of at most {MAX_SIM_TEXT} characters")
            return message_xml(self.config.account, openid, create_time, "text", {"Content": text, "MsgId": msg_id}), msg_id, text
        if msg_type not in ("image", "voice", "video", "shortvideo", "location", "link"):
            raise ValueError("unknown msgtype")
        media = {"MediaId": secrets.token_hex(16), "MsgId": msg_id}
        if msg_type == "image":
            media = {"PicUrl": "http://mmbiz.qpic.cn/sim.jpg", **media}
        return message_xml(self.config.account, openid, create_time, msg_type, media), msg_id, f"[{msg_type}]"

    async def send(self, openid: str, request: Dict[str, Any]) -> Dict[str, Any]:
        """What happens when a shopper sends something: the signed POST, WeChat's retries, the reply."""
        body, msg_id, shown = self.build(openid, request)
        phone = self.phone(openid)
        event = str(request.get("event") or "")
        if event == "unsubscribe":
            phone.subscribed = False
        else:
            phone.subscribed = True
            phone.last_message_at = time.time()
        self.record(openid, "sent", shown)
        body, query = self.seal(body)
        started = time.monotonic()
        outcome: Dict[str, Any] = {"msg_id": msg_id, "attempts": 0, "outcome": "timeout", "http_status": None, "reply": None}
        assert self.session is not None
        for _ in range(1 + max(0, self.config.retries)):
            outcome["attempts"] += 1
            self.count("webhook_requests")
            try:
                async with self.session.post(self.config.webhook_url, params=query, data=body.encode("utf-8"),
                                             headers={"Content-Type": "text/xml"},
                                             timeout=aiohttp.ClientTimeout(total=self.config.timeout_s)) as answer:
                    outcome["http_status"] = answer.status
                    text = (await answer.read()).decode("utf-8", errors="replace")
            except asyncio.TimeoutError:
                continue
            except aiohttp.ClientError as error:
                outcome["outcome"] = "unreachable"
                outcome["error"] = type(error).__name__
                break
            if answer.status != 200:
                outcome["outcome"] = "error"
            elif text.strip() in ("", "success"):
                outcome["outcome"] = "success"
            else:
                plaintext = self.unseal(text)
                reply = parse_reply(plaintext, openid, self.config.account) if plaintext is not None else None
                outcome["outcome"] = "reply" if reply else "invalid_reply"
                outcome["reply"] = reply
                if reply:
                    self.record(openid, "passive", reply["content"], msg_type=reply["msg_type"])
            break
        if outcome["outcome"] not in ("reply", "success"):
            self.record(openid, "notice", UNAVAILABLE)
        outcome["elapsed_ms"] = round((time.monotonic() - started) * 1000)
        return outcome

    async def verify(self, echostr: Optional[str] = None) -> Dict[str, Any]:
        """The URL verification WeChat runs when the server URL is saved."""
        assert self.session is not None
        echo = echostr or str(secrets.randbelow(10**18))
        crypto = self.crypto()
        sent = crypto.encrypt(echo) if crypto is not None else echo
        try:
            async with self.session.get(self.config.webhook_url, params={**self.signed_query(sent if crypto else None), "echostr": sent},
                                        timeout=aiohttp.ClientTimeout(total=self.config.timeout_s)) as answer:
                text = (await answer.read()).decode("utf-8", errors="replace")
                return {"ok": answer.status == 200 and text == echo, "http_status": answer.status}
        except (aiohttp.ClientError, asyncio.TimeoutError) as error:
            return {"ok": False, "http_status": None, "error": type(error).__name__}

    async def bind_demo(self, openid: str, customer_id: str) -> Dict[str, Any]:
        """Play the shop's account page: sign a binding and post it to the channel."""
        assert self.session is not None
        timestamp = str(int(time.time()))
        message = f"wechat-bind\n{openid}\n{customer_id}\n{timestamp}"
        sig = hmac.new(purpose_key(self.config.shop_secret, "wechat-bind"), message.encode(), hashlib.sha256).hexdigest()
        payload = {"openid": openid, "customer_id": customer_id, "timestamp": timestamp, "signature": sig}
        try:
            async with self.session.post(self.config.effective_bind_url(), json=payload,
                                         timeout=aiohttp.ClientTimeout(total=self.config.timeout_s)) as answer:
                return {"http_status": answer.status, "body": json.loads(await answer.read() or b"null")}
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as error:
            return {"http_status": None, "error": type(error).__name__}


def _json(body: Any, status: int = 200) -> HTTPResponse:
    return response.json(body, status=status, dumps=json.dumps, ensure_ascii=False, headers={"Cache-Control": "no-store"})


def _body(request: Request) -> Dict[str, Any]:
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def create_app(config: SimConfig, name: str = "wechat_sim") -> Sanic:
    """Build the simulator's Sanic app."""
    app = Sanic(name)
    app.config.ACCESS_LOG = False
    app.config.FALLBACK_ERROR_FORMAT = "json"
    sim = Simulator(config)
    app.ctx.sim = sim
    static_files = {path.name: path.read_bytes() for path in STATIC_DIR.iterdir() if path.suffix in STATIC_TYPES}

    async def open_session(app: Sanic, loop: asyncio.AbstractEventLoop) -> None:
        # A new connection per request, as WeChat's servers do: no idle keep-alive to the account's server.
        sim.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))

    async def close_session(app: Sanic, loop: asyncio.AbstractEventLoop) -> None:
        if sim.session is not None:
            await sim.session.close()

    app.register_listener(open_session, "after_server_start")
    app.register_listener(close_session, "after_server_stop")

    @app.get("/health")
    async def health(request: Request) -> HTTPResponse:
        return _json({"status": "ok"})

    @app.get("/cgi-bin/token")
    async def token(request: Request) -> HTTPResponse:
        args = {name: request.args.get(name) or "" for name in ("grant_type", "appid", "secret")}
        return _json(sim.issue_token(args["grant_type"], args["appid"], args["secret"]))

    @app.post("/cgi-bin/message/custom/send")
    async def custom_send(request: Request) -> HTTPResponse:
        return _json(sim.custom_send(request.args.get("access_token") or "", request.body or b""))

    @app.post("/sim/send")
    async def send(request: Request) -> HTTPResponse:
        body = _body(request)
        openid = body.get("openid")
        if not isinstance(openid, str) or OPENID.fullmatch(openid) is None:
            return _json({"error": "openid must be 6 to 64 letters, digits, _ or -"}, 400)
        try:
            return _json(await sim.send(openid, body))
        except ValueError as error:
            return _json({"error": str(error)}, 400)

    @app.get("/sim/inbox/<openid:str>")
    async def inbox(request: Request, openid: str) -> HTTPResponse:
        after = request.args.get("after") or "0"
        include_sent = request.args.get("include_sent") in ("1", "true")
        phone = sim.phones.get(openid)
        entries = [entry for entry in (phone.inbox if phone else [])
                   if entry["seq"] > (int(after) if after.isdigit() else 0) and (include_sent or entry["kind"] != "sent")]
        return _json({"openid": openid, "messages": entries})

    @app.post("/sim/verify")
    async def verify(request: Request) -> HTTPResponse:
        return _json(await sim.verify(_body(request).get("echostr")))

    @app.post("/sim/bind-demo")
    async def bind_demo(request: Request) -> HTTPResponse:
        body = _body(request)
        openid, customer_id = body.get("openid"), body.get("customer_id")
        if not isinstance(openid, str) or not isinstance(customer_id, str) or not config.shop_secret:
            return _json({"error": "openid and customer_id are required (and the simulator needs the shop's secret)"}, 400)
        return _json(await sim.bind_demo(openid, customer_id))

    @app.post("/sim/config")
    async def configure(request: Request) -> HTTPResponse:
        body = _body(request)
        kinds = {"webhook_url": str, "bind_url": str, "timeout_s": float, "retries": int, "token_ttl_s": int, "token_grace_s": int,
                 "encoding_aes_key": str}
        previous = config.encoding_aes_key
        for key, kind in kinds.items():
            if key in body:
                try:
                    setattr(config, key, kind(body[key]))
                except (TypeError, ValueError):
                    return _json({"error": f"{key} must be a {kind.__name__}"}, 400)
        try:
            sim.crypto()
        except ValueError:
            config.encoding_aes_key = previous
            return _json({"error": "encoding_aes_key must be empty or 43 characters of base64"}, 400)
        return _json(config.public())

    @app.post("/sim/expire-tokens")
    async def expire_tokens(request: Request) -> HTTPResponse:
        mode = _body(request).get("mode", "expired")
        if mode not in ("expired", "revoked"):
            return _json({"error": "mode is expired or revoked"}, 400)
        return _json({"tokens": sim.expire_tokens(mode), "mode": mode})

    @app.post("/sim/reset")
    async def reset(request: Request) -> HTTPResponse:
        sim.reset()
        return _json({"status": "reset"})

    @app.get("/sim/stats")
    async def stats(request: Request) -> HTTPResponse:
        return _json(sim.stats)

    @app.get("/")
    async def index(request: Request) -> HTTPResponse:
        return response.raw(static_files["index.html"], content_type=STATIC_TYPES[".html"], headers=SECURITY_HEADERS)

    @app.get("/static/<name:str>")
    async def static(request: Request, name: str) -> HTTPResponse:
        if name not in static_files:
            return _json({"error": "not found"}, 404)
        return response.raw(static_files[name], content_type=STATIC_TYPES[Path(name).suffix], headers=SECURITY_HEADERS)

    return app

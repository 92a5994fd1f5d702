"""The simulated WeChat server against WeChat's documented behaviour, with a stand-in account server."""

from __future__ import annotations

import time
from typing import Tuple
from urllib.parse import urlencode
from xml.etree import ElementTree

import pytest

from tests.support.http import http
from wechat_sim.app import UNAVAILABLE
from wechat_sim.tests.helpers import (
    APPID,
    APPSECRET,
    ENCODING_AES_KEY,
    TOKEN,
    FakeAccountServer,
    Received,
    SimProcess,
    expected_signature,
    peer,
    peer_decrypted,
    peer_signature,
)

OPENID = "oSimUser0000000000000000001"


def token(sim: SimProcess) -> str:
    status, body = sim.call("GET", "/cgi-bin/token?" + urlencode({"grant_type": "client_credential", "appid": APPID, "secret": APPSECRET}))
    assert status == 200 and body["expires_in"] > 0, body
    return str(body["access_token"])


def custom(sim: SimProcess, access_token: str, body: object = None, raw: bytes = b"") -> dict:
    query = "?" + urlencode({"access_token": access_token}) if access_token else ""
    status, answer = sim.call("POST", f"/cgi-bin/message/custom/send{query}", body, raw=raw or None)
    assert status == 200
    return answer  # type: ignore[no-any-return]


def text_to(openid: str, content: str) -> dict:
    return {"touser": openid, "msgtype": "text", "text": {"content": content}}


def talk(sim: SimProcess, *requests: dict, **config: object) -> None:
    """The shopper sends each request (fields of ``/sim/send``) to an account server that answers ``success``."""
    with FakeAccountServer(lambda request, n: (0, 200, b"success")) as account:
        sim.configure(webhook_url=account.url, **config)
        for body in requests:
            assert sim.send(OPENID, **body)["outcome"] == "success"


def passive(request: Received, content: str, body: bytes = b"") -> bytes:
    fields = ElementTree.fromstring(body or request.body)
    content = content.replace("]]>", "]]]]><![CDATA[>")
    return (f"<xml><ToUserName><![CDATA[{fields.findtext('FromUserName')}]]></ToUserName>"
            f"<FromUserName><![CDATA[{fields.findtext('ToUserName')}]]></FromUserName><CreateTime>{int(time.time())}</CreateTime>"
            f"<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{content}]]></Content></xml>").encode()


@pytest.mark.parametrize("query, errcode", [
    ({"grant_type": "password", "appid": APPID, "secret": APPSECRET}, 40002),
    ({"grant_type": "client_credential", "appid": "wx-other", "secret": APPSECRET}, 40013),
    ({"grant_type": "client_credential", "appid": APPID, "secret": "wrong"}, 40001),
])
def test_token_endpoint_checks_the_credentials(sim: SimProcess, query: dict, errcode: int) -> None:
    status, body = sim.call("GET", "/cgi-bin/token?" + urlencode(query))
    assert status == 200 and body["errcode"] == errcode and "access_token" not in body


def test_custom_messages_need_a_valid_token_and_reach_the_inbox(sim: SimProcess) -> None:
    talk(sim, {"text": "你好"})
    valid = token(sim)
    assert custom(sim, "", text_to(OPENID, "x"))["errcode"] == 41001
    assert custom(sim, "not-a-token", text_to(OPENID, "x"))["errcode"] == 40001
    assert custom(sim, valid, raw=b"{not json")["errcode"] == 47001
    assert custom(sim, valid, raw=b" ")["errcode"] == 44002
    assert custom(sim, valid, text_to("oNeverWroteToTheAccount0001", "x"))["errcode"] == 40003
    assert custom(sim, valid, {"touser": OPENID, "msgtype": "news", "news": {}})["errcode"] == 40008
    assert custom(sim, valid, text_to(OPENID, ""))["errcode"] == 44004
    assert custom(sim, valid, text_to(OPENID, "长" * 700))["errcode"] == 45002
    assert custom(sim, valid, text_to(OPENID, "您的订单已发货"))["errcode"] == 0
    assert custom(sim, valid, text_to(OPENID, "还有什么可以帮您？")) == {"errcode": 0, "errmsg": "ok"}
    assert [(m["kind"], m["text"]) for m in sim.inbox(OPENID)] == [("custom", "您的订单已发货"), ("custom", "还有什么可以帮您？")]
    assert [m["kind"] for m in sim.inbox(OPENID, include_sent=True)] == ["sent", "custom", "custom"]
    assert sim.stats()["custom_sent"] == 2


def test_expired_revoked_and_superseded_tokens(sim: SimProcess) -> None:
    talk(sim, {"text": "在吗"}, token_grace_s=0)
    first = token(sim)
    assert custom(sim, first, text_to(OPENID, "一"))["errcode"] == 0
    assert sim.call("POST", "/sim/expire-tokens", {"mode": "expired"})[1]["tokens"] == 1
    assert custom(sim, first, text_to(OPENID, "二"))["errcode"] == 42001
    second = token(sim)
    assert sim.call("POST", "/sim/expire-tokens", {"mode": "revoked"})[1]["mode"] == "revoked"
    assert custom(sim, second, text_to(OPENID, "三"))["errcode"] == 40001
    third, fourth = token(sim), token(sim)
    assert custom(sim, third, text_to(OPENID, "四"))["errcode"] == 42001  # retired by the newer token (grace 0)
    assert custom(sim, fourth, text_to(OPENID, "五"))["errcode"] == 0
    assert sim.stats()["tokens_issued"] == 4


def test_short_token_lifetime_expires_by_itself(sim: SimProcess) -> None:
    talk(sim, {"text": "hi"}, token_ttl_s=1)
    short = token(sim)
    time.sleep(1.2)
    assert custom(sim, short, text_to(OPENID, "x"))["errcode"] == 42001


def test_unsubscribed_shopper_gets_no_custom_messages(sim: SimProcess) -> None:
    talk(sim, {"event": "subscribe"}, {"event": "unsubscribe"})
    assert custom(sim, token(sim), text_to(OPENID, "x"))["errcode"] == 45015


def test_a_text_is_posted_signed_as_wechat_does_and_the_passive_reply_is_shown(sim: SimProcess) -> None:
    with FakeAccountServer(lambda request, n: (0, 200, passive(request, "您好，我是客服 ]]> 小助手"))) as account:
        sim.configure(webhook_url=account.url)
        outcome = sim.send(OPENID, "我的快递到哪了")
    assert outcome["outcome"] == "reply" and outcome["attempts"] == 1
    assert outcome["reply"] == {"msg_type": "text", "content": "您好，我是客服 ]]> 小助手"}
    (request,) = account.received
    assert request.method == "POST"
    query = request.query
    assert query["signature"] == expected_signature(TOKEN, query["timestamp"], query["nonce"])
    assert abs(int(query["timestamp"]) - time.time()) < 10 and query["nonce"].isdigit()
    root = ElementTree.fromstring(request.body)
    assert root.tag == "xml"
    assert root.findtext("FromUserName") == OPENID and root.findtext("ToUserName", "").startswith("gh_")
    assert root.findtext("MsgType") == "text" and root.findtext("Content") == "我的快递到哪了"
    assert root.findtext("MsgId") == outcome["msg_id"] and root.findtext("CreateTime", "").isdigit()
    assert b"<![CDATA[" in request.body
    assert [(m["kind"], m["text"]) for m in sim.inbox(OPENID, include_sent=True)] == [
        ("sent", "我的快递到哪了"), ("passive", "您好，我是客服 ]]> 小助手")]


def test_events_and_other_message_types_follow_the_documented_xml(sim: SimProcess) -> None:
    with FakeAccountServer(lambda request, n: (0, 200, b"success")) as account:
        sim.configure(webhook_url=account.url)
        sim.send(OPENID, event="subscribe")
        image = sim.send(OPENID, msgtype="image")
    subscribe, picture = (ElementTree.fromstring(r.body) for r in account.received)
    assert subscribe.findtext("MsgType") == "event" and subscribe.findtext("Event") == "subscribe"
    assert subscribe.find("MsgId") is None
    assert picture.findtext("MsgType") == "image" and picture.findtext("PicUrl") and picture.findtext("MsgId") == image["msg_id"]


def test_timeouts_are_retried_with_the_same_request(sim: SimProcess) -> None:
    def slow_twice(request: Received, attempt: int) -> Tuple[float, int, bytes]:
        return (1.5, 200, b"success") if attempt <= 2 else (0, 200, passive(request, "终于等到"))

    with FakeAccountServer(slow_twice) as account:
        sim.configure(webhook_url=account.url, timeout_s=0.5)
        outcome = sim.send(OPENID, "重试测试")
    assert outcome["attempts"] == 3 and outcome["outcome"] == "reply"
    assert len({(r.body, tuple(sorted(r.query.items()))) for r in account.received}) == 1  # same MsgId, signature, nonce
    assert [m["text"] for m in sim.inbox(OPENID)] == ["终于等到"]


def test_a_server_that_never_answers_in_time_shows_the_unavailable_notice(sim: SimProcess) -> None:
    with FakeAccountServer(lambda request, n: (1.0, 200, b"success")) as account:
        sim.configure(webhook_url=account.url, timeout_s=0.3, retries=3)
        outcome = sim.send(OPENID, "有人吗")
    assert outcome["outcome"] == "timeout" and outcome["attempts"] == 4 and len(account.received) == 4
    assert [m["text"] for m in sim.inbox(OPENID)] == [UNAVAILABLE]


@pytest.mark.parametrize("status, body, outcome", [
    (500, b"oops", "error"),
    (200, b"<xml><Content>no addressee</Content></xml>", "invalid_reply"),
    (200, b"plain text", "invalid_reply"),
])
def test_errors_and_invalid_replies_are_not_retried(sim: SimProcess, status: int, body: bytes, outcome: str) -> None:
    with FakeAccountServer(lambda request, n: (0, status, body)) as account:
        sim.configure(webhook_url=account.url)
        result = sim.send(OPENID, "你好")
    assert result["outcome"] == outcome and result["attempts"] == 1
    assert [m["text"] for m in sim.inbox(OPENID)] == [UNAVAILABLE]


def test_url_verification_is_signed_and_checks_the_echo(sim: SimProcess) -> None:
    def echo(request: Received, attempt: int) -> Tuple[float, int, bytes]:
        query = request.query
        valid = query["signature"] == expected_signature(TOKEN, query["timestamp"], query["nonce"])
        return 0, 200, query["echostr"].encode() if valid else b"bad"

    with FakeAccountServer(echo) as account:
        sim.configure(webhook_url=account.url)
        assert sim.call("POST", "/sim/verify", {})[1]["ok"] is True
        assert account.received[0].method == "GET"
    with FakeAccountServer(lambda request, n: (0, 200, b"something else")) as wrong:
        sim.configure(webhook_url=wrong.url)
        assert sim.call("POST", "/sim/verify", {})[1]["ok"] is False


def test_phone_requests_are_validated(sim: SimProcess) -> None:
    assert sim.call("POST", "/sim/send", {"openid": "x", "text": "hi"})[0] == 400
    assert sim.call("POST", "/sim/send", {"openid": OPENID, "text": 42})[0] == 400
    assert sim.call("POST", "/sim/send", {"openid": OPENID, "msgtype": "hologram"})[0] == 400
    assert sim.call("POST", "/sim/config", {"timeout_s": "soon"})[0] == 400
    assert sim.call("POST", "/sim/expire-tokens", {"mode": "later"})[0] == 400
    assert sim.inbox("oNobodyHere00000000000000001") == []


def test_the_chat_page_and_its_assets_are_served(sim: SimProcess) -> None:
    status, page = http("GET", f"{sim.url}/")
    assert status == 200 and "微信公众号模拟器" in page and "/static/sim.js" in page
    for asset in ("sim.js", "sim.css"):
        assert http("GET", f"{sim.url}/static/{asset}")[0] == 200
    assert http("GET", f"{sim.url}/static/../app.py")[0] == 404


def opened(request: Received) -> bytes:
    """The plaintext of a safe-mode post, after checking its signatures as an account's server does (with wechatpy)."""
    query, envelope = request.query, ElementTree.fromstring(request.body)
    encrypt = envelope.findtext("Encrypt") or ""
    assert query["encrypt_type"] == "aes" and query["signature"] == expected_signature(TOKEN, query["timestamp"], query["nonce"])
    assert query["msg_signature"] == peer_signature(TOKEN, query["timestamp"], query["nonce"], encrypt)
    assert envelope.findtext("ToUserName", "").startswith("gh_") and envelope.find("Content") is None
    return peer().decrypt_message(request.body.decode(), query["msg_signature"], query["timestamp"], query["nonce"]).encode()


def test_safe_mode_posts_are_encrypted_and_only_encrypted_replies_are_shown(sim: SimProcess) -> None:
    sim.configure(encoding_aes_key=ENCODING_AES_KEY)
    assert sim.configure()["safe_mode"] is True and "encoding_aes_key" not in sim.configure()

    def encrypted_reply(request: Received, attempt: int) -> Tuple[float, int, bytes]:
        reply = passive(request, "加密的回复", body=opened(request)).decode()
        return 0, 200, peer().encrypt_message(reply, request.query["nonce"], str(int(time.time()))).encode()

    with FakeAccountServer(encrypted_reply) as account:
        sim.configure(webhook_url=account.url)
        outcome = sim.send(OPENID, "安全模式你好")
    assert outcome["outcome"] == "reply" and outcome["reply"] == {"msg_type": "text", "content": "加密的回复"}
    inner = ElementTree.fromstring(opened(account.received[0]))
    assert inner.findtext("Content") == "安全模式你好" and inner.findtext("FromUserName") == OPENID
    assert inner.findtext("MsgId") == outcome["msg_id"]

    def plaintext_reply(request: Received, attempt: int) -> Tuple[float, int, bytes]:
        return 0, 200, passive(request, "明文回复", body=opened(request))

    def forged_reply(request: Received, attempt: int) -> Tuple[float, int, bytes]:
        envelope = peer().encrypt_message(passive(request, "伪造", body=opened(request)).decode(), "1", str(int(time.time())))
        return 0, 200, envelope.replace("<Nonce><![CDATA[1]]>", "<Nonce><![CDATA[2]]>").encode()

    for answer in (plaintext_reply, forged_reply):
        with FakeAccountServer(answer) as account:
            sim.configure(webhook_url=account.url)
            assert sim.send(OPENID, "再来")["outcome"] == "invalid_reply"
    with FakeAccountServer(lambda request, n: (0, 200, b"success")) as account:
        sim.configure(webhook_url=account.url)
        assert sim.send(OPENID, event="subscribe")["outcome"] == "success"
        assert ElementTree.fromstring(opened(account.received[0])).findtext("Event") == "subscribe"


def test_safe_mode_url_verification_sends_an_encrypted_echostr(sim: SimProcess) -> None:
    sim.configure(encoding_aes_key=ENCODING_AES_KEY)

    def decrypting(request: Received, attempt: int) -> Tuple[float, int, bytes]:
        query = request.query
        assert query["msg_signature"] == peer_signature(TOKEN, query["timestamp"], query["nonce"], query["echostr"])
        return 0, 200, peer_decrypted(query["echostr"]).encode()

    with FakeAccountServer(decrypting) as account:
        sim.configure(webhook_url=account.url)
        assert sim.call("POST", "/sim/verify", {"echostr": "5566778899"})[1]["ok"] is True
        assert account.received[0].query["echostr"] != "5566778899"
    with FakeAccountServer(lambda request, n: (0, 200, request.query["echostr"].encode())) as echoing:
        sim.configure(webhook_url=echoing.url)
        assert sim.call("POST", "/sim/verify", {})[1]["ok"] is False


def test_a_malformed_encoding_aes_key_is_refused(sim: SimProcess) -> None:
    for key in ("short", ENCODING_AES_KEY + "A", ENCODING_AES_KEY[:-1] + "!"):
        assert sim.call("POST", "/sim/config", {"encoding_aes_key": key})[0] == 400
    assert sim.configure()["safe_mode"] is False

"""The desk's NLU inbox API over HTTP against a real desk process and a real Redis: supervisors only,
masked messages, labels checked against the domain's intents, idempotent."""

from __future__ import annotations

from typing import Callable, List

import pytest

from tests.support.desk import DeskProcess
from tests.support.http import http
from tests.support.nlu_inbox import seed_inbox

StartDesk = Callable[..., DeskProcess]

MISSED = [
    ("优惠券用不了，手机13812345678", "nlu_fallback", 0.45, ("fallback",)),
    ("自提点在哪里", "out_of_scope", 0.49, ("low_confidence",)),
    ("京享值怎么查看", "out_of_scope", 0.998, ("correction",)),
]


@pytest.fixture()
def desk(start_desk: StartDesk) -> DeskProcess:
    desk = start_desk(agents=("agent1", "supervisor"))
    desk.login("agent1")
    desk.login("supervisor")
    return desk


@pytest.fixture()
def ids(desk: DeskProcess) -> List[str]:
    return seed_inbox(desk.redis_url, desk.policy_file, MISSED)


@pytest.mark.parametrize("method, path", [("GET", "/api/nlu/inbox"), ("POST", "/api/nlu/inbox/0123456789abcdef0123/label")])
def test_the_inbox_needs_a_login(desk: DeskProcess, method: str, path: str) -> None:
    for token in ("", "forged-token"):
        status, body = http(method, f"{desk.url}{path}", {"intent": "track_order"}, token=token)
        assert (status, body["error"]["code"]) == (401, "unauthorized")


def test_an_agent_may_not_read_or_label_the_inbox(desk: DeskProcess, ids: List[str]) -> None:
    status, body = desk.call("GET", "/api/nlu/inbox", "agent1")
    assert (status, body["error"]["code"]) == (403, "forbidden") and "主管" in body["error"]["message"]
    assert "items" not in body
    status, body = desk.call("POST", f"/api/nlu/inbox/{ids[0]}/label", "agent1", {"intent": "track_order"})
    assert (status, body["error"]["code"]) == (403, "forbidden")
    status, body = desk.call("GET", "/api/nlu/inbox", "supervisor")
    assert status == 200 and all(item["label"] == "" for item in body["items"])


def test_a_supervisor_lists_masked_messages_newest_first(desk: DeskProcess, ids: List[str]) -> None:
    status, body = desk.call("GET", "/api/nlu/inbox", "supervisor")
    assert status == 200
    assert [item["id"] for item in body["items"]] == ids[::-1]
    assert (body["total"], body["labelled"], body["retention_days"], body["confidence_threshold"]) == (3, 0, 30, 0.6)
    first = body["items"][-1]
    assert first["text"] == "优惠券用不了，手机138****5678" and "13812345678" not in str(body)
    assert (first["intent"], first["confidence"], first["reasons"], first["reason_labels"]) == (
        "nlu_fallback", 0.45, ["fallback"], ["机器人没能理解"])
    assert first["ranking"] == [{"name": "faq", "confidence": 0.2, "label": "常见问题"}] and first["channel"] == "app"
    assert 29 * 86400 < first["expires_in_s"] <= 30 * 86400 and first["at"] > 0
    names = {intent["name"]: intent["label"] for intent in body["intents"]}
    assert names["track_order"] == "查询物流" and names["faq/invoice"] == "常见问题：发票" and "faq" not in names
    status, body = desk.call("GET", "/api/nlu/inbox?limit=1", "supervisor")
    assert [item["id"] for item in body["items"]] == [ids[-1]] and body["total"] == 3


def test_labelling_is_checked_idempotent_and_filtered(desk: DeskProcess, ids: List[str]) -> None:
    status, body = desk.call("POST", f"/api/nlu/inbox/{ids[2]}/label", "supervisor", {"intent": "membership_tier"})
    assert (status, body["status"], body["item"]["label"], body["item"]["labelled_by"]) == (200, "labelled", "membership_tier", "supervisor")
    assert body["item"]["label_name"] == "会员等级"
    labelled_at = body["item"]["labelled_at"]
    status, again = desk.call("POST", f"/api/nlu/inbox/{ids[2]}/label", "supervisor", {"intent": "membership_tier"})
    assert (status, again["status"], again["item"]["labelled_at"]) == (200, "unchanged", labelled_at)
    status, body = desk.call("POST", f"/api/nlu/inbox/{ids[1]}/label", "supervisor", {"intent": "faq/delivery_time"})
    assert (status, body["item"]["label"]) == (200, "faq/delivery_time")
    status, body = desk.call("POST", f"/api/nlu/inbox/{ids[1]}/label", "supervisor", {"intent": " track_order "})
    assert (status, body["status"], body["item"]["label"]) == (200, "labelled", "track_order")

    status, body = desk.call("GET", "/api/nlu/inbox?status=labelled", "supervisor")
    assert [item["id"] for item in body["items"]] == [ids[2], ids[1]] and body["labelled"] == 2
    status, body = desk.call("GET", "/api/nlu/inbox?status=unlabelled", "supervisor")
    assert [item["id"] for item in body["items"]] == [ids[0]]


@pytest.mark.parametrize("body, status, code", [
    ({"intent": "not_an_intent"}, 400, "unknown_intent"),
    ({"intent": "faq"}, 400, "unknown_intent"),
    ({"intent": "nlu_fallback"}, 400, "unknown_intent"),
    ({"intent": ""}, 400, "invalid_intent"),
    ({"intent": 7}, 400, "invalid_intent"),
    ({"intent": ["track_order"]}, 400, "invalid_intent"),
    ({"intent": "x" * 5000}, 400, "invalid_intent"),
    ({}, 400, "invalid_intent"),
    ([1, 2], 400, "invalid_json"),
])
def test_bad_labels_are_refused(desk: DeskProcess, ids: List[str], body, status: int, code: str) -> None:
    got, answer = desk.call("POST", f"/api/nlu/inbox/{ids[0]}/label", "supervisor", body)
    assert (got, answer["error"]["code"]) == (status, code)
    assert desk.call("GET", "/api/nlu/inbox?status=labelled", "supervisor")[1]["items"] == []


def test_unknown_ids_hostile_bodies_and_parameters(desk: DeskProcess, ids: List[str]) -> None:
    token = desk.tokens["supervisor"]
    status, body = desk.call("POST", "/api/nlu/inbox/0123456789abcdef0123/label", "supervisor", {"intent": "track_order"})
    assert (status, body["error"]["code"]) == (404, "not_found")
    for bad in ("../../etc", "ABCDEF0123456789ABCD", "x" * 200):
        status, body = desk.call("POST", f"/api/nlu/inbox/{bad}/label", "supervisor", {"intent": "track_order"})
        assert status in (400, 404) and body["error"]["code"] in ("invalid_item", "not_found")
    status, body = http("POST", f"{desk.url}/api/nlu/inbox/{ids[0]}/label", raw=b"{not json", token=token)
    assert (status, body["error"]["code"]) == (400, "invalid_json")
    status, body = http("POST", f"{desk.url}/api/nlu/inbox/{ids[0]}/label", raw=b'{"intent": "' + b"a" * 70000 + b'"}', token=token)
    assert (status, body["error"]["code"]) == (413, "payload_too_large")
    for query, code in (("limit=0", "invalid_limit"), ("limit=501", "invalid_limit"), ("limit=x", "invalid_limit"),
                        ("status=maybe", "invalid_status")):
        status, body = desk.call("GET", f"/api/nlu/inbox?{query}", "supervisor")
        assert (status, body["error"]["code"]) == (400, code)

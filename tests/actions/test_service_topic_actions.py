"""FAQ answers from the CRM's policy data and the product-question answer, on tracker fixtures
against the real CRM: the exact messages, the policy requests, and the written answer when the CRM
is down."""

from __future__ import annotations

import re
from typing import Dict, List

import pytest
import yaml

from actions.crm import set_crm_client
from actions.service_topics import (
    PRODUCT_ANSWER,
    ActionAnswerFaq,
    ActionProductQuestion,
    coupon_answer,
    faq_key,
    installation_answer,
    invoice_answer,
    price_protection_answer,
    warranty_answer,
    working_days,
)
from bot.settings import PROJECT_ROOT
from bot.texts import fill_values
from crm.policy import load_coupons, load_service_policies, load_tiers

from .conftest import as_uttered, load_tracker, run_action, unreachable_crm_client

HUMAN = {"title": "转人工", "payload": "/human_agent"}
POLICIES = load_service_policies()
TIERS = [tier.to_json() for tier in load_tiers()]
CATALOGUE = [{"title": c.title, "valid_days": c.valid_days} for c in load_coupons()]
WRITTEN = {
    name: variations[0]["text"].format_map(fill_values())  # as the bot's NLG fills it
    for name, variations in yaml.safe_load((PROJECT_ROOT / "data" / "responses" / "faq.yml").read_text(encoding="utf-8"))["responses"].items()
}

EXPECTED = {
    "faq_invoice": ("invoices", invoice_answer(POLICIES["invoices"])),
    "faq_price_protection": ("price_protection", price_protection_answer(POLICIES["price_protection"])),
    "faq_warranty": ("after_sales", warranty_answer(POLICIES["after_sales"])),
    "faq_installation": ("after_sales", installation_answer(POLICIES["after_sales"], TIERS)),
    "faq_coupon_rules": ("coupon_rules", coupon_answer(POLICIES["coupon_rules"], CATALOGUE)),
}


@pytest.mark.parametrize("fixture", sorted(EXPECTED))
def test_policy_faqs_are_answered_from_the_crm(recording_crm, fixture: str) -> None:
    policy, text = EXPECTED[fixture]
    events, messages = run_action(ActionAnswerFaq(), load_tracker(fixture))
    assert events == []
    buttons: List[Dict[str, str]] = [] if fixture == "faq_warranty" else [HUMAN]
    assert messages == [{"text": text, "buttons": buttons, "elements": [], "custom": {}, "template": None,
                         "response": None, "image": None, "attachment": None}]
    assert recording_crm.count("GET", f"/api/policies/{policy}") == 1


def test_the_answers_state_the_shops_figures() -> None:
    invoice = EXPECTED["faq_invoice"][1]
    assert "电子普通发票" in invoice and "24 小时" in invoice and "180 天" in invoice and "3–5 个工作日内寄出" in invoice
    price = EXPECTED["faq_price_protection"][1]
    assert "7 天价保" in price and "秒杀价" in price and "银行卡 3–7 个工作日" in price and "账户余额和积分立即到账" in price
    warranty = EXPECTED["faq_warranty"][1]
    assert "15 天内" in warranty and "保修 1 年" in warranty and "7 个工作日内修好" in warranty and "100 分钟" in warranty
    installation = EXPECTED["faq_installation"][1]
    assert "每件 ¥60.00，钻石会员免费" in installation and "48 小时" in installation and "72 小时" in installation
    coupons = EXPECTED["faq_coupon_rules"][1]
    assert "有效期 30 天（满1000减100 为 60 天）" in coupons and "只能用 1 张" in coupons
    for text in (invoice, price, warranty, installation, coupons):
        assert "帮不上忙" not in text


def test_a_changed_policy_changes_the_answer() -> None:
    changed = {**POLICIES["price_protection"], "window_days": 15, "excluded": ["秒杀价"]}
    text = price_protection_answer(changed)
    assert "15 天价保" in text and "秒杀价不参与价保" in text and "拼团价" not in text


@pytest.mark.parametrize("key, file_figures", [
    ("invoice", ["24 小时", "180 天", "1 个工作日", "3–5 个工作日"]),
    ("price_protection", ["7 天", "1–3 个工作日", "3–7 个工作日", "秒杀"]),
    ("warranty", ["15 天", "1 年", "7 个工作日", "100 分钟"]),
    ("installation", ["60 元", "48 小时", "72 小时", "钻石会员"]),
    ("coupon_rules", ["30 天", "60 天", "一张优惠券"]),
])
def test_the_written_answers_agree_with_the_policy(key: str, file_figures: List[str]) -> None:
    """When the CRM is down the written answer is given: it states the same figures."""
    written = WRITTEN[f"utter_faq/{key}"]
    for figure in file_figures:
        assert figure in written, (key, figure)


def test_the_written_figures_are_the_policy_figures() -> None:
    invoices, price, after_sales = POLICIES["invoices"], POLICIES["price_protection"], POLICIES["after_sales"]
    assert invoices["issue_hours_after_signing"] == 24 and invoices["reissue_days_after_order"] == 180
    assert invoices["special_vat"]["review_working_days"] == 1 and invoices["special_vat"]["mail_working_days"] == [3, 5]
    assert price["window_days"] == 7 and list(price["refund_working_days"].values()) == [[0, 0], [1, 3], [3, 7]]
    assert after_sales["warranty"]["quality_return_days"] == 15 and after_sales["warranty"]["months"] == {"数码和家电整机": 12}
    assert after_sales["warranty"]["repair_working_days"] == 7 and after_sales["warranty"]["response_minutes"] == 100
    install = after_sales["installation"]
    assert (install["assembly_fee_fen"], install["visit_within_hours"], install["remote_visit_within_hours"]) == (6000, 48, 72)
    assert sorted({c["valid_days"] for c in CATALOGUE}) == [30, 60] and POLICIES["coupon_rules"]["coupons_per_order"] == 1


@pytest.mark.parametrize("fixture, key", [("faq_invoice", "invoice"), ("faq_installation", "installation"),
                                          ("faq_warranty", "warranty")])
def test_a_crm_that_is_down_gets_the_written_answer(fixture: str, key: str) -> None:
    set_crm_client(unreachable_crm_client())
    try:
        events, messages = run_action(ActionAnswerFaq(), load_tracker(fixture))
    finally:
        set_crm_client(None)
    assert events == []
    assert [(m["response"], m["text"], m["buttons"]) for m in messages] == [
        (f"utter_faq/{key}", None, [] if key == "warranty" else [HUMAN])
    ]


def test_other_faqs_are_their_written_answer_without_asking_the_crm(recording_crm) -> None:
    events, messages = run_action(ActionAnswerFaq(), load_tracker("faq_shipping_fee"))
    assert (events, [(m["response"], m["buttons"]) for m in messages]) == ([], [("utter_faq/shipping_fee", [])])
    assert recording_crm.requests == []


def test_a_faq_without_a_selected_answer_gets_the_default(recording_crm) -> None:
    tracker = load_tracker("faq_invoice", latest_message={"response_selector": {}})
    events, messages = run_action(ActionAnswerFaq(), tracker)
    assert [m["response"] for m in messages] == ["utter_default"]


def test_faq_key() -> None:
    assert faq_key(load_tracker("faq_coupon_rules").latest_message) == "coupon_rules"
    assert faq_key({"intent": {"name": "track_order"}}) is None
    assert faq_key(None) is None


def test_working_days() -> None:
    assert (working_days([0, 0]), working_days([1, 3]), working_days([2, 2])) == ("立即到账", "1–3 个工作日", "2 个工作日")


def test_a_product_question_offers_a_human(recording_crm) -> None:
    events, sent = run_action(ActionProductQuestion(), load_tracker("product_question"))
    assert [m["response"] for m in sent] == ["utter_product_question"]
    messages = [as_uttered(m) for m in sent]
    assert events == []
    assert [(m["text"], m["buttons"]) for m in messages] == [(PRODUCT_ANSWER, [HUMAN])]
    assert "转人工" in PRODUCT_ANSWER and "08:00–23:00" in PRODUCT_ANSWER and "帮不上忙" not in PRODUCT_ANSWER
    assert recording_crm.requests == []


def test_no_answer_is_the_bare_refusal() -> None:
    domain = yaml.safe_load((PROJECT_ROOT / "domain.yml").read_text(encoding="utf-8"))
    out_of_scope = domain["responses"]["utter_out_of_scope"][0]
    assert "帮不上忙" not in out_of_scope["text"] and "转人工" in out_of_scope["text"]
    assert {"title": "转人工", "payload": "/human_agent"} in out_of_scope["buttons"]
    for text in WRITTEN.values():
        assert not re.search("帮不上忙", text)

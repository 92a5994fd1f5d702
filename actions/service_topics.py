"""Answers to the questions beside orders, returns and points that shoppers raise in the same chat.

``action_answer_faq`` answers every FAQ the response selector picked. Invoices, price protection,
warranty and repair, installation and coupon rules are answered from the shop's policy data in
the CRM (``GET /api/policies/{name}``, files in ``crm/policy/``), so the figures the shopper reads
are the ones the shop configured; when the CRM does not answer, the FAQ's written answer is given
instead. The other FAQs (shipping fee, delivery time, payment, return, points and tier rules) are
their written answers. A question the policy cannot settle for one order (a coupon that still
does not apply, an installation that did not happen) ends with the offer of a human.

``action_product_question`` answers a question about a product (material, size, stock, use): the
assistant has no product data, so it says where the product page answers it and offers a human,
who sees the question as the topic of the handoff summary.

The rendering functions are pure: policy JSON in, the reply out; every word is a response in
``data/responses/service_topics.yml``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable, Dict, List, Mapping, Optional, Sequence

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher

from actions import formatting
from actions.crm import CRMClient, CRMError, get_crm_client
from actions.price_protection import ActionPriceProtection
from actions.replies import human_buttons
from bot.texts import render

logger = logging.getLogger(__name__)

RETRIEVAL_INTENT = "faq"
CRM_BUDGET_S = 2.0
"""Longest an answer waits for the CRM's policy before giving the written answer."""

PRODUCT_RESPONSE = "utter_product_question"
"""The answer to a product question (data/responses/service_topics.yml)."""
PRODUCT_ANSWER = render(PRODUCT_RESPONSE)


# --------------------------------------------------------------------------- wording helpers
def _join(items: Sequence[str], last: str = "utter_policy_and") -> str:
    """「A、B和C」 (``last``: the response of the word before the last item)."""
    items = [str(item) for item in items]
    if len(items) <= 1:
        return "".join(items)
    return "、".join(items[:-1]) + render(last) + items[-1]


def _span(span: Sequence[int]) -> str:
    """[1, 3] → 「1–3」, [3, 3] → 「3」."""
    low, high = int(span[0]), int(span[1])
    return str(low) if low == high else f"{low}–{high}"


def working_days(span: Sequence[int]) -> str:
    """[1, 3] → 「1–3 个工作日」, [3, 3] → 「3 个工作日」, [0, 0] → 「立即到账」."""
    if int(span[1]) == 0:
        return render("utter_policy_instant")
    return render("utter_policy_working_days", days=_span(span))


def months(value: int) -> str:
    """12 → 「1 年」, 18 → 「18 个月」."""
    if value and value % 12 == 0:
        return render("utter_policy_years", years=value // 12)
    return render("utter_policy_months", months=value)


def _lines(*parts: Optional[str]) -> str:
    return "\n".join(part for part in parts if part is not None)


# --------------------------------------------------------------------------- answers
# The words are in data/responses/service_topics.yml; the figures those texts name after
# bot/texts.py policy_values are filled here with the ones the CRM served.
def invoice_answer(policy: Mapping[str, Any]) -> str:
    """The invoice answer from ``crm/policy/invoices.yml``."""
    vat = policy["special_vat"]
    correction = render("utter_policy_invoice_free_correction") if policy["free_correction"] else ""
    return _lines(
        render("utter_policy_invoice_intro", default_kind=policy["default_kind"]),
        render("utter_policy_invoice_issue", invoice_issue_hours=policy["issue_hours_after_signing"],
               download_path=policy["download_path"], titles=_join(policy["titles"])),
        render("utter_policy_invoice_special_vat", qualification_path=vat["qualification_path"],
               invoice_vat_review_days=vat["review_working_days"], invoice_vat_mail_days=_span(vat["mail_working_days"])),
        render("utter_policy_invoice_reissue", invoice_reissue_days=policy["reissue_days_after_order"], correction=correction),
        render("utter_policy_invoice_partial_return") if policy["partial_return_reissue"] else None,
        render("utter_policy_invoice_human"),
    )


def price_protection_answer(policy: Mapping[str, Any]) -> str:
    """The price-protection answer from ``crm/policy/price_protection.yml``."""
    timing = "，".join(f"{method}{'' if int(span[1]) == 0 else ' '}{working_days(span)}"
                       for method, span in policy["refund_working_days"].items())
    other_shops = "" if policy["other_shops"] else render("utter_policy_price_protection_no_other_shops")
    return _lines(
        render("utter_policy_price_protection_intro", price_protection_days=policy["window_days"], other_shops=other_shops),
        render("utter_policy_price_protection_apply", apply_path=policy["apply_path"]),
        render("utter_policy_price_protection_timing", timing=timing),
        render("utter_policy_price_protection_excluded", excluded=_join(policy["excluded"])),
        render("utter_price_protection_faq_apply"),
    )


def warranty_answer(policy: Mapping[str, Any]) -> str:
    """The warranty and repair answer from the ``warranty`` part of ``crm/policy/after_sales.yml``."""
    warranty = policy["warranty"]
    days = warranty["quality_return_days"]
    terms = "，".join(render("utter_policy_warranty_term", kind=kind, period=months(value))
                     for kind, value in warranty["months"].items())
    return _lines(
        render("utter_policy_warranty_intro"),
        render("utter_policy_warranty_quality", quality_days=days),
        render("utter_policy_warranty_repair", quality_days=days, terms=terms,
               nationwide=render("utter_policy_warranty_nationwide") if warranty["nationwide"] else ""),
        render("utter_policy_warranty_how", repair_path=warranty["repair_path"],
               repair_modes=_join(warranty["repair_modes"], "utter_policy_or"),
               shipping=render("utter_policy_warranty_shipping") if warranty["shop_pays_repair_shipping"] else "",
               repair_working_days=warranty["repair_working_days"], proof=warranty["proof"],
               not_covered=_join(warranty["not_covered"]), after_sales_response_minutes=warranty["response_minutes"]),
    )


def installation_answer(policy: Mapping[str, Any], tiers: Sequence[Mapping[str, Any]] = ()) -> str:
    """The installation answer from the ``installation`` part of ``crm/policy/after_sales.yml``;
    ``tiers`` (the CRM's tier table) names the tiers that get assembly free."""
    install = policy["installation"]
    names = {str(tier.get("code")): str(tier.get("name")) for tier in tiers}
    return _lines(
        render("utter_policy_installation_intro"),
        render("utter_policy_installation_basic", free_basic=_join(install["free_basic"])),
        render("utter_policy_installation_assembly", paid_assembly=_join(install["paid_assembly"]),
               assembly_fee_price=formatting.money(install["assembly_fee_fen"]),
               free_for=_join([names.get(code, code) for code in install["free_assembly_tiers"]])),
        render("utter_policy_installation_visit", booking_path=install["booking_path"],
               install_visit_hours=install["visit_within_hours"],
               install_remote_visit_hours=install["remote_visit_within_hours"]),
        render("utter_policy_installation_materials", materials=install["materials"]),
        render("utter_policy_installation_self") if install["self_install_keeps_warranty"] else None,
        render("utter_policy_installation_human"),
    )


def _coupon_validity(policy: Mapping[str, Any], catalogue: Sequence[Mapping[str, Any]]) -> str:
    """How long the points coupons stay valid (the shortest validity, and the coupons that last longer)."""
    validity = sorted({int(coupon.get("valid_days") or 0) for coupon in catalogue} - {0})
    if not validity:
        return render("utter_policy_coupons_validity_unknown", where_to_see=policy["where_to_see"])
    usual = validity[0]
    longer = [render("utter_policy_coupons_longer_one", title=coupon.get("title"), days=coupon.get("valid_days"))
              for coupon in catalogue if int(coupon.get("valid_days") or 0) > usual]
    extra = render("utter_policy_coupons_longer", coupons="，".join(longer)) if longer else ""
    return render("utter_policy_coupons_validity", coupon_valid_days=usual, longer=extra,
                  where_to_see=policy["where_to_see"])


def coupon_answer(policy: Mapping[str, Any], catalogue: Sequence[Mapping[str, Any]] = ()) -> str:
    """The answer to a coupon that did not apply, from ``crm/policy/coupon_rules.yml``; ``catalogue``
    (the points coupons) gives the validity of the coupons bought with points."""
    with_points = "utter_policy_coupons_with_points" if policy["combine_with_points"] else "utter_policy_coupons_without_points"
    after = ("utter_policy_coupons_also_after_payment" if policy["apply_after_payment"]
             else "utter_policy_coupons_not_after_payment")
    on_return = "utter_policy_coupons_returned" if policy["returned_while_valid"] else "utter_policy_coupons_not_returned"
    return _lines(
        render("utter_policy_coupons_intro"),
        render("utter_policy_coupons_threshold", threshold_basis=policy["threshold_basis"],
               excluded_prices=_join(policy["excluded_prices"])),
        render("utter_policy_coupons_scope"),
        _coupon_validity(policy, catalogue),
        render("utter_policy_coupons_per_order", coupons_per_order=policy["coupons_per_order"], with_points=render(with_points)),
        render("utter_policy_coupons_payment_and_return", after_payment=render(after), on_return=render(on_return)),
        render("utter_policy_coupons_human"),
    )


# --------------------------------------------------------------------------- which answer
Renderer = Callable[[CRMClient], Awaitable[str]]


async def _invoice(crm: CRMClient) -> str:
    return invoice_answer(await crm.get_policy("invoices"))


async def _price_protection(crm: CRMClient) -> str:
    return price_protection_answer(await crm.get_policy("price_protection"))


async def _warranty(crm: CRMClient) -> str:
    return warranty_answer(await crm.get_policy("after_sales"))


async def _installation(crm: CRMClient) -> str:
    policy, tiers = await asyncio.gather(crm.get_policy("after_sales"), crm.get_tiers())
    return installation_answer(policy, tiers)


async def _coupons(crm: CRMClient) -> str:
    policy, catalogue = await asyncio.gather(crm.get_policy("coupon_rules"), crm.list_coupons())
    return coupon_answer(policy, catalogue)


POLICY_ANSWERS: Dict[str, Renderer] = {
    "invoice": _invoice,
    "price_protection": _price_protection,
    "warranty": _warranty,
    "installation": _installation,
    "coupon_rules": _coupons,
}
"""FAQ keys answered from the CRM's policy data."""

HUMAN_OFFERED = frozenset({"invoice", "price_protection", "installation", "coupon_rules"})
"""FAQ keys whose answer ends with the offer of a human (a button)."""


def faq_key(latest_message: Optional[Mapping[str, Any]]) -> Optional[str]:
    """The FAQ the response selector picked for the latest message (``invoice`` for ``faq/invoice``)."""
    message = latest_message or {}
    intent = str((message.get("intent") or {}).get("name") or "")
    if intent != RETRIEVAL_INTENT:
        return None
    for selector in (message.get("response_selector") or {}).values():
        if not isinstance(selector, Mapping):
            continue
        key = str(((selector.get("response") or {}).get("intent_response_key")) or "")
        if key.startswith(f"{RETRIEVAL_INTENT}/"):
            return key.split("/", 1)[1]
    return None


async def policy_answer(key: str, crm: CRMClient, budget_s: float = CRM_BUDGET_S) -> Optional[str]:
    """The answer to FAQ ``key`` from the CRM's policy data, or None (not a policy FAQ, or the CRM
    did not answer within ``budget_s``)."""
    renderer = POLICY_ANSWERS.get(key)
    if renderer is None:
        return None
    try:
        return await asyncio.wait_for(renderer(crm), timeout=budget_s)
    except (CRMError, asyncio.TimeoutError, KeyError, TypeError, ValueError) as error:
        logger.warning("faq.policy.unavailable key=%s error=%s", key, type(error).__name__)
        return None


class ActionAnswerFaq(Action):
    """Answers the FAQ the response selector picked: from the CRM's policy data where the shop keeps
    it there, else (or when the CRM does not answer) with the FAQ's written answer."""

    def name(self) -> str:
        """Name of the action in the domain."""
        return "action_answer_faq"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[str, Any]) -> List[EventType]:
        """Utters one answer."""
        key = faq_key(tracker.latest_message)
        if key is None:
            dispatcher.utter_message(response="utter_default")
            return []
        if key == "price_protection" and next(tracker.get_latest_entity_values("order_id"), None):
            # 「订单 … 降价了能补吗」 names an order: that order is checked (and its claim filed).
            return await ActionPriceProtection().run(dispatcher, tracker, domain)
        buttons = human_buttons() if key in HUMAN_OFFERED else []
        text = await policy_answer(key, get_crm_client())
        if text is not None:
            dispatcher.utter_message(text=text, buttons=buttons)
        else:
            dispatcher.utter_message(response=f"utter_{RETRIEVAL_INTENT}/{key}", buttons=buttons)
        return []


class ActionProductQuestion(Action):
    """A question about a product: where the product page answers it, and the offer of a human."""

    def name(self) -> str:
        """Name of the action in the domain."""
        return "action_product_question"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[str, Any]) -> List[EventType]:
        """Utters the answer with the 转人工 button."""
        dispatcher.utter_message(response=PRODUCT_RESPONSE, buttons=human_buttons())
        return []

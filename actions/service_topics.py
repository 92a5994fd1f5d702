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

The rendering functions are pure: policy JSON in, Chinese text out.
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
def _join(items: Sequence[str], last: str = "和") -> str:
    """「A、B和C」."""
    items = [str(item) for item in items]
    if len(items) <= 1:
        return "".join(items)
    return "、".join(items[:-1]) + last + items[-1]


def working_days(span: Sequence[int]) -> str:
    """[1, 3] → 「1–3 个工作日」, [3, 3] → 「3 个工作日」, [0, 0] → 「立即到账」."""
    low, high = int(span[0]), int(span[1])
    if high == 0:
        return "立即到账"
    return f"{low} 个工作日" if low == high else f"{low}–{high} 个工作日"


def months(value: int) -> str:
    """12 → 「1 年」, 18 → 「18 个月」."""
    return f"{value // 12} 年" if value and value % 12 == 0 else f"{value} 个月"


# --------------------------------------------------------------------------- answers
def invoice_answer(policy: Mapping[str, Any]) -> str:
    """The invoice answer from ``crm/policy/invoices.yml``."""
    vat = policy["special_vat"]
    lines = [
        f"您好，我们默认开具{policy['default_kind']}：",
        f"· 订单签收后 {policy['issue_hours_after_signing']} 小时内开具，可以在「{policy['download_path']}」下载 PDF，"
        f"{_join(policy['titles'])}抬头都可以开；",
        f"· 需要增值税专用发票的企业客户，请先在「{vat['qualification_path']}」提交企业信息，审核通过"
        f"（{vat['review_working_days']} 个工作日内）后申请，纸质专票开具后 {working_days(vat['mail_working_days'])}内寄出；",
        f"· 下单后 {policy['reissue_days_after_order']} 天内都可以补开" + ("，抬头或税号填错的可以免费换开；" if policy["free_correction"] else "；"),
    ]
    if policy["partial_return_reissue"]:
        lines.append("· 部分退货后，原发票会作废，按您最终实付的金额重新开具。")
    lines.append("需要补开、换开，或者到了时间还没看到发票，点“转人工”，人工客服会按您的订单处理。")
    return "\n".join(lines)


def price_protection_answer(policy: Mapping[str, Any]) -> str:
    """The price-protection answer from ``crm/policy/price_protection.yml``."""
    days = policy["window_days"]
    timing = "，".join(f"{method}{'' if working_days(span) == '立即到账' else ' '}{working_days(span)}"
                       for method, span in policy["refund_working_days"].items())
    lines = [
        f"您好，我们提供 {days} 天价保：从付款时间算起 {days} 天内，同一商品、同一规格在本店降价，可以申请退还差价"
        + ("；其他店铺的价格不在价保范围内。" if not policy["other_shops"] else "。"),
        f"· 申请入口：「{policy['apply_path']}」，提交后系统按降价前后的实付价计算差价；",
        f"· 差价原路退回：{timing}；",
        f"· {_join(policy['excluded'])}不参与价保，这类订单申请会显示失败。",
        render("utter_price_protection_faq_apply"),
    ]
    return "\n".join(lines)


def warranty_answer(policy: Mapping[str, Any]) -> str:
    """The warranty and repair answer from the ``warranty`` part of ``crm/policy/after_sales.yml``."""
    warranty = policy["warranty"]
    days = warranty["quality_return_days"]
    terms = "，".join(f"{kind}保修 {months(value)}" for kind, value in warranty["months"].items())
    shipping = "保修期内寄修的往返运费由我们承担，" if warranty["shop_pays_repair_shipping"] else ""
    lines = [
        "您好，售后保障分两段：",
        f"· 签收后 {days} 天内出现质量问题，可以直接退货或换货，来回运费由我们承担；",
        f"· 超过 {days} 天，在厂家保修期内免费维修：{terms}，具体以商品页和保修卡为准"
        + ("，全国联保。" if warranty["nationwide"] else "。"),
        f"申请方法：「{warranty['repair_path']}」，可以选{_join(warranty['repair_modes'], '或')}，{shipping}"
        f"收到商品后 {warranty['repair_working_days']} 个工作日内修好寄回。{warranty['proof']}就是保修凭证。"
        f"{_join(warranty['not_covered'])}不在免费保修范围，可以先报价再付费维修；超过保修期也可以付费维修。"
        f"售后申请提交后 {warranty['response_minutes']} 分钟内有专人处理。",
    ]
    return "\n".join(lines)


def installation_answer(policy: Mapping[str, Any], tiers: Sequence[Mapping[str, Any]] = ()) -> str:
    """The installation answer from the ``installation`` part of ``crm/policy/after_sales.yml``;
    ``tiers`` (the CRM's tier table) names the tiers that get assembly free."""
    install = policy["installation"]
    names = {str(tier.get("code")): str(tier.get("name")) for tier in tiers}
    free_for = _join([names.get(code, code) for code in install["free_assembly_tiers"]])
    lines = [
        "您好，安装服务是这样的：",
        f"· {_join(install['free_basic'])}：品牌或本店合作的师傅上门，基础安装免费；",
        f"· {_join(install['paid_assembly'])}上门组装每件 {formatting.money(install['assembly_fee_fen'])}，{free_for}免费；",
        f"· 签收后在「{install['booking_path']}」选上门时间，师傅在预约后 {install['visit_within_hours']} 小时内上门"
        f"（偏远地区 {install['remote_visit_within_hours']} 小时），上门前会先电话联系您；",
        f"· {install['materials']}；",
    ]
    if install["self_install_keeps_warranty"]:
        lines.append("· 自己安装不影响正常保修，安装不当造成的损坏不在保修范围内。")
    lines.append("约好的师傅没按时联系您，或者想改上门时间，点“转人工”，人工客服帮您协调。")
    return "\n".join(lines)


def coupon_answer(policy: Mapping[str, Any], catalogue: Sequence[Mapping[str, Any]] = ()) -> str:
    """The answer to a coupon that did not apply, from ``crm/policy/coupon_rules.yml``; ``catalogue``
    (the points coupons) gives the validity of the coupons bought with points."""
    lines = [
        "您好，优惠券用不上，通常是下面几个原因：",
        f"· 门槛按{policy['threshold_basis']}计算；{_join(policy['excluded_prices'])}的商品不参与用券；",
        "· 券限定了品类或店铺：结算页的「不可用」列表里会写明每张券不能用的原因；",
    ]
    validity = sorted({int(coupon.get("valid_days") or 0) for coupon in catalogue} - {0})
    if validity:
        usual = validity[0]
        longer = [f"{coupon.get('title')} 为 {coupon.get('valid_days')} 天" for coupon in catalogue
                  if int(coupon.get("valid_days") or 0) > usual]
        extra = f"（{'，'.join(longer)}）" if longer else ""
        lines.append(f"· 券已经过期或还没到开始时间：积分兑换的券有效期 {usual} 天{extra}，"
                     f"在「{policy['where_to_see']}」能看到每张券的有效期；")
    else:
        lines.append(f"· 券已经过期或还没到开始时间：在「{policy['where_to_see']}」能看到每张券的有效期；")
    count = policy["coupons_per_order"]
    lines.append(f"· 一个订单只能用 {count} 张优惠券" + ("，可以和积分抵扣一起用。" if policy["combine_with_points"] else "，不能和积分抵扣一起用。"))
    after = "付款后不能再补用优惠券" if not policy["apply_after_payment"] else "付款后还可以补用优惠券"
    returned = "用了券的订单退货，券在有效期内会退回您的账户，已过期的不退。" if policy["returned_while_valid"] else "用了券的订单退货，券不退回。"
    lines.append(f"{after}；{returned}")
    lines.append("如果您的券符合这些条件还是用不了，点“转人工”并告诉客服券的名称，人工客服帮您查。")
    return "\n".join(lines)


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

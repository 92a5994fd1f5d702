"""The return and exchange conversation as plain functions: what the shopper's answer means, which
question comes next, and every text the shopper reads in the flow.

The flow runs as the Rasa form ``return_form`` whose slots are :data:`REQUIRED_SLOTS`: which order
→ which items → the reason → (for personal care and underwear on a no-reason return) whether the
item is still sealed → the shopper's confirmation of a summary. :func:`advance` takes the flow's
state, the shopper's latest answer and the CRM data the shopper may see, and returns the new state
and the reply; it never talks to the CRM. :mod:`actions.returns` does the talking.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from actions import formatting
from actions import return_policy as policy_rules
from actions.order_tracking import STATUS_LABELS, items_summary
from actions.replies import human_buttons
from actions.return_policy import Decision, RefundQuote, ReturnPolicy
from bot.nlu.catalogue import default_catalogue, match_items, parse_mention
from bot.nlu.dates import DateRange, find_dates, resolve_date
from bot.nlu.normalize import normalize
from bot.nlu.numerals import NUMERAL, parse_number
from bot.nlu.quantities import find_quantities, quantity_value

FORM_NAME = "return_form"
SLOT_KIND = "return_kind"
SLOT_ORDER = "return_order_id"
SLOT_LINES = "return_lines"
SLOT_REASON = "return_reason_code"
SLOT_PACKAGE = "return_package"
SLOT_CONFIRMED = "return_confirmed"
SLOT_INVALID = "return_invalid_count"
SLOT_RETURN_ID = "return_id"
REQUIRED_SLOTS = (SLOT_ORDER, SLOT_LINES, SLOT_REASON, SLOT_PACKAGE, SLOT_CONFIRMED)
FLOW_SLOTS = (SLOT_KIND,) + REQUIRED_SLOTS + (SLOT_INVALID, SLOT_RETURN_ID)

KIND_RETURN = "return"
KIND_EXCHANGE = "exchange"
PACKAGE_SEALED = "sealed"
PACKAGE_OPENED = "opened"
PACKAGE_NOT_REQUIRED = "not_required"
MAX_CANDIDATES = 5
MAX_INVALID_ANSWERS = 2

Order = Mapping[str, Any]
Return = Mapping[str, Any]
Button = Dict[str, str]
Lines = Tuple[Tuple[int, int], ...]

NOT_UNDERSTOOD = "抱歉，我没能理解您的回答。"
UNDECIDED = "policy_undecided"
"""Handoff reason of a case the policy does not settle for the shopper (a contested refusal)."""

OFFER_HUMAN = "看来我没能理解您的回答。您可以点下面的按钮选择，也可以点“转人工”，由人工客服为您办理。"
RESUME_PREFIX = "我们接着刚才的{kind}申请："
NOT_YOUR_ORDER = "在您的账户下没有找到订单 {order_id}，请核对订单号。如果是其他账号下的订单，请登录那个账号后再来申请。"
ASK_ANONYMOUS_ORDER = (
    "为了保护您的隐私，办理{kind}前需要核实一下身份：请告诉我订单号（12 位数字）和收货手机号的后四位，"
    "例如“202611150023 尾号5678”。您在商城登录后再来找我，就不用核实了。"
)
ANONYMOUS_OTHER_ORDER = "如果要{kind}的是其他订单，请告诉我那个订单的订单号和收货手机号后四位。"


# ------------------------------------------------------------------------------- state
@dataclass(frozen=True)
class FlowState:
    """The slots of the return form.

    Attributes:
        kind: ``return`` or ``exchange``.
        order_id: the chosen order.
        lines: the chosen (line id, quantity) pairs.
        reason: the reason code.
        package: ``sealed``, ``opened`` or ``not_required``.
        confirmed: True once the return was created in the CRM.
        invalid: answers in a row the flow could not use.
        return_id: the created return's number.
    """

    kind: str = KIND_RETURN
    order_id: Optional[str] = None
    lines: Optional[Lines] = None
    reason: Optional[str] = None
    package: Optional[str] = None
    confirmed: Optional[bool] = None
    invalid: int = 0
    return_id: Optional[str] = None

    @classmethod
    def from_slots(cls, get: Callable[[str], Any]) -> FlowState:
        """Read the state from slot values (``tracker.get_slot``)."""
        raw_lines = get(SLOT_LINES)
        lines: Optional[Lines] = None
        if isinstance(raw_lines, list) and raw_lines:
            lines = tuple((int(line["line_id"]), int(line["quantity"])) for line in raw_lines if isinstance(line, dict))
        kind = get(SLOT_KIND)
        return cls(
            kind=kind if kind in (KIND_RETURN, KIND_EXCHANGE) else KIND_RETURN,
            order_id=get(SLOT_ORDER) or None,
            lines=lines or None,
            reason=get(SLOT_REASON) or None,
            package=get(SLOT_PACKAGE) or None,
            confirmed=bool(get(SLOT_CONFIRMED)) if get(SLOT_CONFIRMED) is not None else None,
            invalid=int(get(SLOT_INVALID) or 0),
            return_id=get(SLOT_RETURN_ID) or None,
        )

    def slot_values(self) -> Dict[str, Any]:
        """The state as slot values, in :data:`FLOW_SLOTS` order."""
        return {
            SLOT_KIND: self.kind,
            SLOT_ORDER: self.order_id,
            SLOT_LINES: [{"line_id": line, "quantity": quantity} for line, quantity in self.lines] if self.lines else None,
            SLOT_REASON: self.reason,
            SLOT_PACKAGE: self.package,
            SLOT_CONFIRMED: self.confirmed,
            SLOT_INVALID: float(self.invalid),
            SLOT_RETURN_ID: self.return_id,
        }

    def next_slot(self) -> Optional[str]:
        """The first required slot still empty (the form asks for it next)."""
        values = self.slot_values()
        return next((slot for slot in REQUIRED_SLOTS if values[slot] is None), None)

    def with_order(self, order_id: Optional[str]) -> FlowState:
        """Another order: everything chosen after the order is forgotten."""
        return replace(self, order_id=order_id, lines=None, reason=None, package=None, confirmed=None)

    def with_lines(self, lines: Optional[Lines]) -> FlowState:
        """Other items: the sealed question and the confirmation are asked again."""
        return replace(self, lines=lines, package=None, confirmed=None)

    def with_reason(self, reason: Optional[str]) -> FlowState:
        """Another reason: the sealed question and the confirmation are asked again."""
        return replace(self, reason=reason, package=None, confirmed=None)

    @property
    def kind_word(self) -> str:
        """退货 or 换货."""
        return "换货" if self.kind == KIND_EXCHANGE else "退货"


# ------------------------------------------------------------------------------ answers
_REASON_KEYWORDS: Tuple[Tuple[str, Tuple[str, ...]], ...] = (
    ("damaged_on_arrival", ("收到就", "收到时", "收到已", "到的时候", "碎了", "破损", "摔坏", "压坏", "漏液", "烂了",
                            "死了", "不新鲜", "损坏", "坏的")),
    ("not_as_described", ("描述", "不符", "图片", "色差", "不一样", "货不对板", "假货", "不是正品", "发错", "材质不对")),
    ("wrong_size", ("尺码", "尺寸", "码数", "偏大", "偏小", "太大", "太小", "不合身", "穿不上", "太紧", "大了", "小了",
                    "不合适")),
    ("quality_issue", ("质量", "瑕疵", "开胶", "故障", "坏了", "失灵", "不能用", "用不了", "杂音", "掉色", "开线", "起球",
                       "异味", "充不进", "开不了机", "过期")),
    ("no_longer_wanted", ("不想要", "不要了", "不喜欢", "不需要", "买多", "拍错", "用不上", "改主意", "没用了", "不合心意",
                          "七天无理由", "无理由")),
    ("other", ("其他原因", "其它原因", "别的原因")),
)
_OTHER_ORDER = re.compile(r"(不是|换|另|别的|其他|其它)[^，。,.!！?？]{0,6}(订单|单子|一单|那单|这单|个单)|另一个|另外一个|别的订单|其他订单")
_ALL_ITEMS = re.compile(r"全部|都退|全退|都要退|都换|全换|所有|一起退|都不要")
_SEALED = re.compile(r"(没|未|还没|没有|不曾)(有)?(拆|开封|打开|开过|用过|使用|穿过)|全新|包装完好|吊牌还在|原封")
_OPENED = re.compile(r"拆(了|过|封|开)|开封|打开(了|过)|用过|试用|用了|穿过|洗过|试过")
_ORDINAL = re.compile(rf"第\s*([0-9]+|{NUMERAL}+)\s*(个|单|件|项|笔|条)?")


def reason_code(value: Optional[str], policy: ReturnPolicy) -> Optional[str]:
    """A reason code from an entity value or free text (None when nothing fits)."""
    if not value:
        return None
    text = value.strip()
    if text in policy.reason_labels:
        return text
    for code, label in policy.reason_labels.items():
        if text == label or text in label.split("（")[0]:
            return code
    for code, words in _REASON_KEYWORDS:
        if code in policy.reason_labels and any(word in text for word in words):
            return code
    return None


def parse_quantity(value: Optional[str]) -> Optional[int]:
    """12 from 「十二瓶」, 2 from 「2件」, 「两双」; None when there is no number.

    The NLU's own reading of a quantity (:func:`bot.nlu.quantities.quantity_value`), after the
    NLU's normalisation (full-width digits are ASCII digits).
    """
    if not value:
        return None
    return quantity_value(normalize(value).text)


def parse_ordinal(text: str) -> Optional[int]:
    """0-based position named in 「第二个」, 「最新的那个」 (0), 「最后一个」 (-1)."""
    match = _ORDINAL.search(text)
    if match:
        raw = match.group(1)
        number = parse_number(raw) or 0
        return number - 1 if number > 0 else None
    if "最后" in text:
        return -1
    if re.search(r"最新|最近的?那", text):
        return 0
    return None


@dataclass(frozen=True)
class Answer:
    """What the shopper's latest message says, as far as the flow is concerned.

    Attributes:
        intent: the intent name.
        text: the message text.
        order_id: an order number in it.
        products: product mentions in it.
        reason: a reason code an entity names.
        text_reason: a reason code the words of the message suggest (used where a reason is expected).
        quantity: a quantity it names.
        all_items: 「全部都退」.
        ordinal: a position (「第二个」), 0-based.
        other_order: 「不是这个订单，是另一个」.
        package: ``sealed`` / ``opened`` when it says whether the item was opened.
        sign_day: the date expression naming the sign-for day (「昨天收到的」: 「昨天」), as written;
            :func:`bot.nlu.dates.resolve_date` reads it against the shop's today.
    """

    intent: str = ""
    text: str = ""
    order_id: Optional[str] = None
    products: Tuple[str, ...] = ()
    reason: Optional[str] = None
    text_reason: Optional[str] = None
    quantity: Optional[int] = None
    all_items: bool = False
    ordinal: Optional[int] = None
    other_order: bool = False
    package: Optional[str] = None
    sign_day: Optional[str] = None


def read_answer(intent: str, text: str, entities: Mapping[str, Sequence[str]], policy: ReturnPolicy) -> Answer:
    """Interpret one message.

    Args:
        intent: the intent name.
        text: the message text (a button payload's text is its title or payload).
        entities: entity name → values found in the message.
        policy: the return policy (reason codes).
    """
    is_payload = text.startswith("/")
    plain = "" if is_payload else text
    products = tuple(str(value) for value in entities.get("product", []) if value)
    reason = None
    for value in entities.get("return_reason", []):
        reason = reason_code(str(value), policy)
        if reason:
            break
    quantity = next((parse_quantity(str(value)) for value in entities.get("quantity", []) if parse_quantity(str(value))), None)
    if quantity is None and plain:
        found = find_quantities(normalize(plain).text)
        quantity = quantity_value(found[0].text) if found else None
    package = None
    if plain and _SEALED.search(plain):
        package = PACKAGE_SEALED
    elif plain and _OPENED.search(plain):
        package = PACKAGE_OPENED
    dates = [str(value) for value in entities.get("date", []) if value]
    if not dates and plain:
        dates = [mention.text for mention in find_dates(normalize(plain).text)]
    order_ids = [str(value) for value in entities.get("order_id", []) if value]
    return Answer(
        intent=intent,
        text=text,
        order_id=order_ids[0] if order_ids else None,
        products=products,
        reason=reason,
        text_reason=reason_code(plain, policy) if plain else None,
        quantity=quantity,
        all_items=bool(_ALL_ITEMS.search(plain)) or any("全部" in product for product in products),
        ordinal=parse_ordinal(plain) if plain else None,
        other_order=bool(plain and _OTHER_ORDER.search(plain)),
        package=package,
        sign_day=dates[0] if dates else None,
    )


# -------------------------------------------------------------------------------- data
@dataclass(frozen=True)
class FlowData:
    """What the shopper may see, read from the CRM for this turn.

    Attributes:
        today: today's date in the shop's timezone.
        policy: the return policy.
        orders: the orders the shopper may see (a verified customer's orders, or an anonymous
            shopper's one verified order).
        returns: the returns of those orders.
        anonymous: True for an anonymous shopper (verified by order number + phone tail).
        unknown_order_id: an order number the shopper gave that is not theirs (or does not exist).
    """

    today: date
    policy: ReturnPolicy
    orders: Tuple[Order, ...] = ()
    returns: Tuple[Return, ...] = ()
    anonymous: bool = False
    unknown_order_id: Optional[str] = None

    def order(self, order_id: Optional[str]) -> Optional[Order]:
        """One of the shopper's orders."""
        return next((order for order in self.orders if order.get("order_id") == order_id), None) if order_id else None

    def order_returns(self, order_id: str) -> List[Return]:
        """The returns of one order, newest first."""
        return [ret for ret in self.returns if ret.get("order_id") == order_id]


def _signed_at(order: Order) -> str:
    return str(order.get("signed_at") or "")


def remaining_items(order: Order) -> List[Mapping[str, Any]]:
    """The lines of an order with units not yet in a return."""
    return [item for item in order.get("items") or [] if policy_rules.remaining_quantity(item) > 0]


def candidate_orders(data: FlowData, exclude: Optional[str] = None) -> List[Order]:
    """The orders a return can be about: signed for, within the quality window, something left."""
    orders = [
        order
        for order in data.orders
        if policy_rules.signed_date(order) is not None
        and not policy_rules.order_window_closed(order, data.today, data.policy)
        and remaining_items(order)
        and order.get("order_id") != exclude
    ]
    return sorted(orders, key=_signed_at, reverse=True)[:MAX_CANDIDATES]


def _payload(intent: str, entities: Mapping[str, Any]) -> str:
    return f"/{intent}" + json.dumps(dict(entities), ensure_ascii=False, separators=(",", ":"))


def order_button(order: Order) -> Button:
    """A button choosing one order: sign-for date, first item, amount."""
    signed = policy_rules.signed_date(order)
    when = f"{signed.month}月{signed.day}日签收" if signed else formatting.parse_datetime(str(order["placed_at"])).strftime("%m月%d日下单")
    title = f"{when} {items_summary(dict(order))} {formatting.money(int(order.get('paid_fen', 0)))}"
    return {"title": title, "payload": _payload("inform", {"order_id": order["order_id"]})}


def item_button(item: Mapping[str, Any], prefix: str = "") -> Button:
    """A button choosing one order line by its product name."""
    left = policy_rules.remaining_quantity(item)
    title = f"{prefix}{item.get('product_name', '商品')}" + (f" ×{left}" if left > 1 else "")
    return {"title": title, "payload": _payload("inform", {"product": str(item.get("product_name", ""))})}


ALL_ITEMS_BUTTON: Button = {"title": "全部商品", "payload": _payload("inform", {"product": "全部商品"})}
STOP_BUTTON: Button = {"title": "不退了", "payload": "/stop"}


def reason_buttons(policy: ReturnPolicy) -> List[Button]:
    """One button per reason code, labelled in Chinese."""
    return [{"title": label, "payload": _payload("inform", {"return_reason": code})} for code, label in policy.reason_labels.items()]


# ------------------------------------------------------------------------------ replies
@dataclass(frozen=True)
class Reply:
    """One message: text and buttons."""

    text: str
    buttons: List[Button] = field(default_factory=list)

    def as_message(self) -> Dict[str, Any]:
        """The message as the dispatcher takes it."""
        return {"text": self.text, "buttons": list(self.buttons)}


@dataclass(frozen=True)
class Turn:
    """The outcome of one turn of the flow.

    Attributes:
        state: the new state.
        reply: what to say.
        end: True to close the form now (nothing more can be done in it).
        submit: True to create the return in the CRM now (the shopper confirmed).
    """

    state: FlowState
    reply: Reply
    end: bool = False
    submit: bool = False


def _lines_text(order: Order, lines: Lines) -> str:
    items = {int(item["line_id"]): item for item in order.get("items") or []}
    return "、".join(f"{items[line].get('product_name', '商品')} ×{quantity}" for line, quantity in lines if line in items)


def _order_label(order: Order, today: date) -> str:
    signed = policy_rules.signed_date(order)
    return f"{order['order_id']}（{formatting.day(signed, today)}签收）" if signed else str(order["order_id"])


def _order_heading(order: Order, today: date) -> str:
    return f"订单 {_order_label(order, today)}"


def ask_order(state: FlowState, data: FlowData, exclude: Optional[str] = None) -> Reply:
    """Which order: buttons for the candidates."""
    if data.anonymous:
        return Reply(ASK_ANONYMOUS_ORDER.format(kind=state.kind_word))
    candidates = candidate_orders(data, exclude)
    text = (f"请问您要{state.kind_word}的是哪个订单？下面是您最近 {data.policy.quality_days} 天内签收、还可以申请的订单，"
            "也可以直接告诉我订单号或商品名称：")
    return Reply(text, [order_button(order) for order in candidates])


def ask_lines(state: FlowState, order: Order, data: FlowData, named: bool = True) -> Reply:
    """Which items of the order (``named``: say which order, unless the shopper was just told)."""
    items = remaining_items(order)
    buttons = [item_button(item) for item in items] + ([ALL_ITEMS_BUTTON] if len(items) > 1 else [])
    heading = _order_heading(order, data.today) if named else "这个订单"
    text = f"{heading}里还可以申请{state.kind_word}的商品如下，请问是哪一件？"
    return Reply(text, buttons)


def ask_reason(state: FlowState, order: Order, data: FlowData) -> Reply:
    """The reason, with what each kind of reason means."""
    policy = data.policy
    text = (f"好的，订单 {order['order_id']} 的{state.kind_word}商品：{_lines_text(order, state.lines or ())}。"
            f"请问{state.kind_word}的原因是什么？"
            f"（质量问题、收到时已损坏、与描述不符：签收后 {policy.quality_days} 天内可退换，寄回运费由商家承担；"
            f"其他原因：适用 {policy.no_reason_days} 天无理由{state.kind_word}。）")
    return Reply(text, reason_buttons(policy))


def ask_package(state: FlowState, decision: Decision, data: FlowData) -> Reply:
    """Whether a sealed-only item is still sealed."""
    text = policy_rules.explain(decision, data.policy, data.today, state.kind_word) + "请问商品还没有拆封吗？"
    return Reply(text, [{"title": "未拆封，包装完好", "payload": "/affirm"}, {"title": "已经拆封了", "payload": "/deny"}])


def summary(state: FlowState, order: Order, quote: RefundQuote, decisions: Sequence[Decision], data: FlowData) -> Reply:
    """The confirmation summary: items, refund amount, return shipping, pickup window, refund date."""
    policy, today = data.policy, data.today
    assert state.lines is not None and state.reason is not None
    refund = f"退款金额：{formatting.money(quote.total_fen)}（商品实付 {formatting.money(quote.items_fen)}"
    if quote.coupon_fen:
        refund += f"，已扣除按比例分摊的优惠券 {formatting.money(quote.coupon_fen)}"
    if quote.shipping_fen:
        refund += f"，另退原运费 {formatting.money(quote.shipping_fen)}"
    refund += "）"
    if quote.capped:
        refund += "，已按订单剩余可退金额计算"
    method = policy.payment_label(quote.payment_method)
    lines = [
        f"请核对您的{state.kind_word}申请：",
        f"订单：{_order_label(order, today)}",
        f"退货商品：{_lines_text(order, state.lines)}",
        f"退货原因：{policy.reason_label(state.reason)}",
        "审核结果：" + "".join(policy_rules.explain(decision, policy, today) for decision in decisions),
        refund + "。",
        f"寄回运费：{policy_rules.payer_text(quote.payer)}。",
        f"上门取件：{formatting.day(quote.pickup_date, today)} {quote.pickup_window}，快递员上门取件，请保持商品完好、配件齐全。",
        f"退款到账：原路退回{method}，仓库收货验收后（{formatting.day(quote.refund_issued_by, today)}前）退款，"
        f"{policy_rules.refund_speed(quote.payment_method, policy)}，最晚 {formatting.day(quote.refund_expected_by, today)}前到账。",
    ]
    if any(quantity > 1 for _, quantity in state.lines):
        lines.append("如果只退其中几件，请直接告诉我数量，例如“只退1件”。")
    lines.append("确认提交吗？")
    buttons = [{"title": "确认提交", "payload": "/affirm"}, {"title": "需要修改", "payload": "/deny"}, STOP_BUTTON]
    return Reply("\n".join(lines), buttons)


def exchange_reply(state: FlowState, order: Order, quote: RefundQuote, decisions: Sequence[Decision], data: FlowData) -> Reply:
    """An exchange the policy allows: it is arranged by after-sales staff; a return is offered too."""
    assert state.lines is not None and state.reason is not None
    explanation = "".join(policy_rules.explain(decision, data.policy, data.today, "换货") for decision in decisions)
    items = {int(item["line_id"]): item for item in order.get("items") or []}
    products = [str(items[line].get("product_name", "")) for line, _ in state.lines if line in items]
    text = (
        f"{explanation}\n换货需要先为您确认新尺码或颜色的库存，由售后客服办理：请点“转人工”，并告诉客服想换的尺码或颜色，"
        "您不用重复说明订单和商品。\n"
        f"如果您想直接退货退款（退款 {formatting.money(quote.total_fen)}，最晚 {formatting.day(quote.refund_expected_by, data.today)}前"
        f"原路退回{data.policy.payment_label(quote.payment_method)}），请点“改为退货”，我马上为您办理。"
    )
    to_return = _payload("return_request", {"order_id": order["order_id"], "product": products, "return_reason": state.reason})
    return Reply(text, human_buttons() + [{"title": "改为退货", "payload": to_return}])


def refusal(state: FlowState, order: Order, refused: Sequence[Decision], data: FlowData) -> Reply:
    """Why the items cannot be returned, with the alternatives as buttons."""
    policy, today = data.policy, data.today
    texts = [policy_rules.explain(decision, policy, today, state.kind_word) for decision in refused]
    texts.append(policy_rules.explain_alternatives(refused[0], policy, today))
    alternatives = set(alt for decision in refused for alt in decision.alternatives)
    buttons: List[Button] = []
    if policy_rules.ALT_QUALITY_REASON in alternatives:
        buttons.append({"title": "商品有质量问题", "payload": _payload("inform", {"return_reason": "quality_issue"})})
    refused_lines = {decision.line_id for decision in refused}
    others = [item for item in remaining_items(order) if int(item["line_id"]) not in refused_lines]
    buttons += [item_button(item, prefix=f"改{state.kind_word[0]}") for item in others]
    if policy_rules.ALT_REPAIR in alternatives:
        buttons.append({"title": "申请维修（转人工）", "payload": "/human_agent"})
    elif policy_rules.ALT_HUMAN in alternatives:
        buttons += human_buttons(UNDECIDED)  # the shopper contests the verdict: an agent decides
    buttons.append(STOP_BUTTON)
    return Reply("\n".join(text for text in texts if text), buttons)


def order_problem(order: Order, state: FlowState, data: FlowData) -> Optional[Reply]:
    """Why a whole order cannot be the subject of a return, if it cannot."""
    today, policy = data.today, data.policy
    signed = policy_rules.signed_date(order)
    kind = state.kind_word
    if signed is None:
        label = STATUS_LABELS.get(str(order.get("status")), str(order.get("status_label", "")))
        return Reply(f"订单 {order['order_id']} 当前状态为「{label}」，签收后才能申请{kind}。")
    if policy_rules.order_window_closed(order, today, policy):
        first = dict((order.get("items") or [{}])[0], returned_quantity=0, quantity=1)
        decision = policy_rules.decide(order, first, "quality_issue", today, policy)
        text = (f"订单 {order['order_id']} " + policy_rules.explain(decision, policy, today, kind)
                + policy_rules.explain_alternatives(decision, policy, today))
        return Reply(text, [{"title": "申请维修（转人工）", "payload": "/human_agent"}])
    if not remaining_items(order):
        numbers = "、".join(str(ret["return_id"]) for ret in data.order_returns(str(order["order_id"]))
                           if ret.get("status") not in ("rejected", "cancelled"))
        suffix = f"（退货单 {numbers}）" if numbers else ""
        return Reply(f"订单 {order['order_id']} 的商品都已经申请过退货了{suffix}，您可以问我“退款到哪了”查看进度。")
    return None


IN_FLIGHT_STATUSES = ("awaiting_shipment", "shipped", "in_transit", "out_for_delivery")


def unsigned_note(state: FlowState, data: FlowData, exclude: Optional[str] = None) -> str:
    """Orders still on their way, which can be returned once signed for."""
    unsigned = [order for order in data.orders if order.get("status") in IN_FLIGHT_STATUSES and order.get("order_id") != exclude]
    if not unsigned:
        return ""
    listed = "、".join(f"{order['order_id']}（{STATUS_LABELS.get(str(order['status']), '')}）" for order in unsigned[:3])
    return f"您的订单 {listed} 还没有签收，签收后才能申请{state.kind_word}。"


def no_candidates(state: FlowState, data: FlowData) -> Reply:
    """The shopper has no order a return could be about."""
    note = unsigned_note(state, data)
    if note:
        return Reply(note + f"签收后 {data.policy.no_reason_days} 天内可以无理由{state.kind_word}，"
                     f"有质量问题 {data.policy.quality_days} 天内可以退换。")
    signed = [order for order in data.orders if policy_rules.signed_date(order) is not None]
    if signed:
        latest = max(signed, key=_signed_at)
        problem = order_problem(latest, state, data)
        if problem is not None:
            return Reply(f"您最近 {data.policy.quality_days} 天内没有可以申请{state.kind_word}的已签收订单。" + problem.text, problem.buttons)
    return Reply(f"您的账户下目前没有已签收的订单。订单签收后，{data.policy.no_reason_days} 天内可以申请无理由{state.kind_word}，"
                 f"有质量问题 {data.policy.quality_days} 天内可以退换。")


# ------------------------------------------------------------------------------ advance
def _find_lines(order: Order, mentions: Sequence[str]) -> Tuple[List[Mapping[str, Any]], List[Mapping[str, Any]]]:
    """Lines of ``order`` the mentions name: (with units left, fully returned already)."""
    items = list(order.get("items") or [])
    found: List[Mapping[str, Any]] = []
    for mention in mentions:
        if "全部" in mention:
            found += items
            continue
        exact = [item for item in items if _compact(str(item.get("product_name", ""))) == _compact(mention)]
        found += exact or list(match_items(items, mention))
    unique = {int(item["line_id"]): item for item in found}
    ordered = [unique[key] for key in sorted(unique)]
    return ([item for item in ordered if policy_rules.remaining_quantity(item) > 0],
            [item for item in ordered if policy_rules.remaining_quantity(item) <= 0])


def _compact(name: str) -> str:
    """A product name without spaces (the NLU drops spaces between Chinese characters)."""
    return re.sub(r"\s+", "", name).lower()


def _all_lines(items: Sequence[Mapping[str, Any]]) -> Lines:
    return tuple((int(item["line_id"]), policy_rules.remaining_quantity(item)) for item in items)


def _names(items: Sequence[Mapping[str, Any]]) -> str:
    return "、".join(str(item.get("product_name", "商品")) for item in items)


@dataclass
class _Work:
    """Scratch state of one turn.

    Attributes:
        state: the state being built.
        activation: True on the message that started the flow.
        notes: lines said before the question.
        used: True when the message contributed something to the flow.
        exclude: an order the shopper said is not the one.
        problem: why the order the shopper named cannot be used (said before the question).
        prompt: a question that replaces the usual one.
        end: True to close the form.
        submit: True to create the return now.
        order_told: True when the shopper was just told which order this is.
    """

    state: FlowState
    activation: bool = False
    notes: List[str] = field(default_factory=list)
    used: bool = False
    exclude: Optional[str] = None
    problem: Optional[Reply] = None
    prompt: Optional[Reply] = None
    end: bool = False
    submit: bool = False
    order_told: bool = False


_EXCHANGE_WORDS = re.compile(r"换货|换(个|一个|成|到)?(尺码|码|大|小|颜色|色|款|新的|新)")
_RETURN_WORDS = re.compile(r"退货|退款|退了|退掉|还是退|改为退")


def _apply_kind(work: _Work, answer: Answer) -> None:
    """Switch between return and exchange only when the shopper clearly asks for the other one."""
    if answer.other_order:
        return
    wanted = None
    if answer.intent == "exchange_request" and (answer.text.startswith("/") or _EXCHANGE_WORDS.search(answer.text)):
        wanted = KIND_EXCHANGE
    elif answer.intent == "return_request" and (answer.text.startswith("/") or _RETURN_WORDS.search(answer.text)):
        wanted = KIND_RETURN
    if wanted and wanted != work.state.kind:
        work.used = True
        work.state = replace(work.state, kind=wanted, confirmed=None)


def _apply_order(work: _Work, answer: Answer, data: FlowData, step: Optional[str]) -> None:
    state = work.state
    if answer.order_id and answer.order_id != state.order_id:
        order = data.order(answer.order_id)
        if order is None:
            work.notes.append(NOT_YOUR_ORDER.format(order_id=answer.order_id))
            return
        work.used = True
        problem = order_problem(order, state, data)
        if problem is not None:
            work.state = state.with_order(None)
            work.exclude = answer.order_id
            work.problem = problem
            return
        if state.order_id:
            work.notes.append(f"好的，改为订单 {answer.order_id}。")
        work.state = state.with_order(answer.order_id)
        return
    if answer.other_order or (answer.intent == "deny" and step in (SLOT_ORDER, SLOT_LINES)):
        work.used = True
        work.exclude = state.order_id
        work.state = state.with_order(None)
        if data.anonymous:
            work.prompt = Reply(ANONYMOUS_OTHER_ORDER.format(kind=state.kind_word))
        return
    if step == SLOT_ORDER and not data.anonymous:
        candidates = candidate_orders(data)
        chosen: Optional[Order] = None
        if answer.ordinal is not None and -len(candidates) <= answer.ordinal < len(candidates):
            chosen = candidates[answer.ordinal]
        elif answer.sign_day is not None:
            named = resolve_date(answer.sign_day, data.today)
            same_day = [order for order in candidates if named and _signed_within(order, named)]
            chosen = same_day[0] if len(same_day) == 1 else None
        if chosen is not None:
            work.used = True
            work.state = state.with_order(str(chosen["order_id"]))


def _signed_within(order: Order, days: DateRange) -> bool:
    signed = policy_rules.signed_date(order)
    return signed is not None and days.start <= signed <= days.end


def _apply_products(work: _Work, answer: Answer, data: FlowData) -> None:
    if not answer.products and not answer.all_items:
        return
    state = work.state
    order = data.order(state.order_id)
    if order is not None:
        found, gone = (remaining_items(order), []) if answer.all_items else _find_lines(order, answer.products)
        if found:
            work.used = True
            lines = _all_lines(found)
            if lines != state.lines:
                work.state = state.with_lines(lines)
            return
        if gone:
            work.used = True
            work.notes.append(f"「{_names(gone)}」已经全部在退货申请中了，不能重复申请。")
            return
    if not answer.products:
        return
    matches = []
    for candidate in candidate_orders(data, exclude=state.order_id):
        found, _ = _find_lines(candidate, answer.products)
        if found:
            matches.append((candidate, found))
    if len(matches) == 1:
        candidate, found = matches[0]
        work.used = True
        if order is not None:
            work.notes.append(f"「{_names(found)}」在订单 {candidate['order_id']} 里，已为您改为这个订单。")
        work.state = replace(state.with_order(str(candidate["order_id"])).with_lines(_all_lines(found)), reason=state.reason)
    elif len(matches) > 1:
        work.used = True
        work.state = state.with_order(None)
        work.prompt = Reply(
            f"您有 {len(matches)} 个订单里都有「{answer.products[0]}」，请问是哪一个订单？",
            [order_button(candidate) for candidate, _ in matches],
        )
    elif order is not None:
        work.notes.append(f"订单 {order['order_id']} 里没有找到「{answer.products[0]}」。")


def _apply_line_choice(work: _Work, answer: Answer, data: FlowData, step: Optional[str]) -> None:
    state = work.state
    order = data.order(state.order_id)
    if order is None:
        return
    items = remaining_items(order)
    if step == SLOT_LINES and answer.ordinal is not None and state.lines is None and -len(items) <= answer.ordinal < len(items):
        work.used = True
        work.state = state = state.with_lines(_all_lines([items[answer.ordinal]]))
    if answer.quantity is None or not state.lines or len(state.lines) != 1:
        return
    line_id, current = state.lines[0]
    item = next(item for item in order.get("items") or [] if int(item["line_id"]) == line_id)
    left = policy_rules.remaining_quantity(item)
    work.used = True
    if answer.quantity < 1 or answer.quantity > left:
        work.notes.append(f"「{item.get('product_name')}」最多还可以申请 {left} 件，请重新告诉我数量。")
    elif answer.quantity != current:
        work.state = replace(state, lines=((line_id, answer.quantity),), confirmed=None)


def _apply_reason_and_package(work: _Work, answer: Answer, step: Optional[str]) -> None:
    state = work.state
    reason = answer.reason
    if reason is None and (step == SLOT_REASON or work.activation or "原因" in answer.text):
        reason = answer.text_reason
    if reason:
        work.used = True
        if reason != state.reason:
            work.state = state.with_reason(reason)
        return
    if step == SLOT_PACKAGE:
        package = answer.package or {"affirm": PACKAGE_SEALED, "deny": PACKAGE_OPENED}.get(answer.intent)
        if package:
            work.used = True
            work.state = replace(state, package=package)


def _autofill(work: _Work, data: FlowData) -> None:
    state = work.state
    if state.order_id is None and work.problem is None and work.prompt is None and work.exclude is None:
        if data.anonymous and work.activation and data.orders:
            only = data.orders[0]
            problem = order_problem(only, state, data)
            if problem is not None:
                work.prompt = Reply(problem.text + "\n" + ANONYMOUS_OTHER_ORDER.format(kind=state.kind_word), problem.buttons)
            else:
                work.state = state = state.with_order(str(only["order_id"]))
        elif not data.anonymous:
            candidates = candidate_orders(data)
            if len(candidates) == 1:
                only = candidates[0]
                work.notes.append(f"您最近签收、还可以申请{state.kind_word}的订单是 {_order_label(only, data.today)}。")
                work.order_told = True
                work.state = state = state.with_order(str(only["order_id"]))
    order = data.order(state.order_id)
    if order is not None and state.lines is None:
        items = remaining_items(order)
        if len(items) == 1:
            work.state = state.with_lines(_all_lines(items))


def _decisions(state: FlowState, order: Order, data: FlowData) -> List[Decision]:
    assert state.lines is not None and state.reason is not None
    items = {int(item["line_id"]): item for item in order.get("items") or []}
    opened = {PACKAGE_OPENED: True, PACKAGE_SEALED: False}.get(state.package or "")
    return [policy_rules.decide(order, items[line], state.reason, data.today, data.policy, opened)
            for line, _ in state.lines if line in items]


def quote_for(state: FlowState, order: Order, data: FlowData) -> RefundQuote:
    """The refund quote for the state's lines and reason."""
    assert state.lines is not None and state.reason is not None
    return policy_rules.quote_refund(order, state.lines, state.reason, data.today, data.policy,
                                     data.order_returns(str(order["order_id"])))


def _ask_for_order(work: _Work, data: FlowData) -> Reply:
    state = work.state
    if work.prompt is not None:
        return work.prompt
    if data.anonymous:
        ask = Reply(ANONYMOUS_OTHER_ORDER.format(kind=state.kind_word)) if work.problem else ask_order(state, data)
        return _with_problem(work, ask)
    candidates = candidate_orders(data, work.exclude)
    if candidates:
        return _with_problem(work, ask_order(state, data, work.exclude))
    work.end = True
    if work.problem is not None:
        return work.problem
    if work.exclude is not None:
        excluded = data.order(work.exclude)
        heading = _order_heading(excluded, data.today) if excluded else f"订单 {work.exclude}"
        return Reply(
            f"您最近 {data.policy.quality_days} 天内签收、还可以申请{state.kind_word}的订单只有{heading}。"
            + unsigned_note(state, data, work.exclude)
            + f"更早签收的订单已超过 {data.policy.quality_days} 天的退换期限，商品在保修期内出现问题可以申请维修。",
            [{"title": "申请维修（转人工）", "payload": "/human_agent"}],
        )
    return no_candidates(state, data)


def _with_problem(work: _Work, ask: Reply) -> Reply:
    if work.problem is None:
        return ask
    return Reply(work.problem.text + "\n" + ask.text, list(work.problem.buttons) + list(ask.buttons))


def _question(work: _Work, data: FlowData, confirm_answer: Optional[str]) -> Reply:
    """Fill what follows from the state, judge eligibility, and ask the next question."""
    state = work.state
    order = data.order(state.order_id)
    if order is None:
        return _ask_for_order(work, data)
    if state.lines is None:
        return ask_lines(state, order, data, named=not work.order_told)
    if state.reason is None:
        return ask_reason(state, order, data)
    decisions = _decisions(state, order, data)
    unknown = [decision for decision in decisions if decision.rule == policy_rules.RULE_PACKAGE_UNKNOWN]
    if unknown and state.package is None:
        return ask_package(state, unknown[0], data)
    if state.package is None:
        work.state = state = replace(state, package=PACKAGE_NOT_REQUIRED)
    refused = [decision for decision in decisions if not decision.eligible]
    allowed = [decision for decision in decisions if decision.eligible]
    if refused and not allowed:
        work.state = replace(state, reason=None, package=None, confirmed=None)
        return refusal(state, order, refused, data)
    if refused:
        kind = state.kind_word
        work.notes.append("".join(policy_rules.explain(decision, data.policy, data.today, kind) for decision in refused)
                          + f"以下只为您申请其他商品的{kind}。")
        kept_ids = {decision.line_id for decision in allowed}
        work.state = state = replace(state, lines=tuple(line for line in state.lines or () if line[0] in kept_ids))
    quote = quote_for(state, order, data)
    if state.kind == KIND_EXCHANGE:
        work.end = True
        return exchange_reply(state, order, quote, allowed, data)
    if confirm_answer == "affirm":
        work.submit = True
        return Reply("")
    if confirm_answer == "deny":
        return Reply(
            "好的，申请还没有提交。请告诉我需要修改的地方，例如“不是这个订单，是另一个”“退另一件商品”“原因是质量问题”“只退1件”；"
            "不想退了请说“算了”。",
            [STOP_BUTTON],
        )
    return summary(state, order, quote, allowed, data)


def advance(state: FlowState, answer: Answer, data: FlowData, *, activation: bool = False) -> Turn:
    """One turn of the flow: apply the shopper's answer, then ask the next question.

    Args:
        state: the form's slots before this message (ignored on activation: a new flow starts).
        answer: the shopper's message.
        data: the CRM data the shopper may see.
        activation: True when the message started the flow.

    Returns:
        The new state, the reply, and whether to end the form or submit the return.
    """
    if activation:
        state = FlowState(kind=KIND_EXCHANGE if answer.intent == "exchange_request" else KIND_RETURN)
    step = state.next_slot()
    work = _Work(state, activation=activation)
    if not activation:
        _apply_kind(work, answer)
    _apply_order(work, answer, data, step)
    _apply_products(work, answer, data)
    _apply_line_choice(work, answer, data, step)
    _apply_reason_and_package(work, answer, step)
    confirm_answer = None
    if step == SLOT_CONFIRMED and work.state == state and answer.intent in ("affirm", "deny"):
        confirm_answer = answer.intent
        work.used = True
    _autofill(work, data)
    if confirm_answer == "affirm":
        existing = submitted_already(work.state, data)
        if existing is not None:
            return submitted(work.state, existing, None, data)
    reply = _question(work, data, confirm_answer)
    if work.submit:
        return Turn(state=replace(work.state, invalid=0), reply=reply, submit=True)
    invalid = 0 if (work.used or activation) else state.invalid + 1
    texts = ([NOT_UNDERSTOOD] if invalid else []) + work.notes + [reply.text]
    buttons = list(reply.buttons)
    if invalid >= MAX_INVALID_ANSWERS:
        texts.append(OFFER_HUMAN)
        buttons += [button for button in human_buttons() if button not in buttons]
    if activation and not work.end:
        texts.insert(0, f"好的，我来帮您办理{work.state.kind_word}。")
    return Turn(state=replace(work.state, invalid=invalid), reply=Reply("\n".join(t for t in texts if t), buttons), end=work.end)


def resume(state: FlowState, data: FlowData) -> Turn:
    """Ask the open question again after the shopper asked something else in between."""
    work = _Work(state)
    reply = _question(work, data, None)
    prefix = RESUME_PREFIX.format(kind=state.kind_word)
    return Turn(state=work.state, reply=Reply(prefix + reply.text, reply.buttons), end=work.end)


def submitted_already(state: FlowState, data: FlowData) -> Optional[Return]:
    """An active return of exactly these lines for this reason (a repeated 「确认」), if any."""
    if state.order_id is None or state.lines is None or state.reason is None:
        return None
    for ret in data.order_returns(state.order_id):
        lines = tuple(sorted((int(item["line_id"]), int(item["quantity"])) for item in ret.get("items") or []))
        if ret.get("status") not in ("rejected", "cancelled") and lines == tuple(sorted(state.lines)) and ret.get("reason") == state.reason:
            return ret
    return None


def submitted(state: FlowState, created: Return, quote: Optional[RefundQuote], data: FlowData) -> Turn:
    """The return was created: its number, the pickup, the refund amount and the date it arrives by.

    Args:
        state: the flow's state.
        created: the return as the CRM stored it (the facts told come from it).
        quote: the quote it was created from; None when the return was found already created.
        data: the CRM data of the turn.
    """
    today, policy = data.today, data.policy
    order = data.order(str(created.get("order_id")))
    created_on = formatting.parse_datetime(str(created["created_at"])).date() if created.get("created_at") else today
    pickup = quote.pickup_date if quote else created_on + timedelta(days=policy.pickup_days)
    payer = quote.payer if quote else (policy_rules.shipping_payer(order, str(created.get("reason")), policy) if order else
                                       ("shopper" if created.get("return_shipping_paid_by") == "shopper" else "shop"))
    expected = formatting.parse_date(str(created["refund_expected_by"])) if created.get("refund_expected_by") else (
        quote.refund_expected_by if quote else None)
    method = str(created.get("refund_method") or (quote.payment_method if quote else ""))
    refund = int(created.get("refund_fen", quote.total_fen if quote else 0))
    arrival = f"，最晚 {formatting.day(expected, today)}前到账。" if expected else "。"
    text = "\n".join([
        f"退货申请已提交，退货单号 {created['return_id']}。",
        f"快递员将于{formatting.day(pickup, today)} {policy.pickup_window}上门取件，寄回运费{policy_rules.payer_text(payer)}。",
        f"退款 {formatting.money(refund)} 将原路退回您的{policy.payment_label(method)}{arrival}",
        "之后您随时问我“退款到哪了”，我会告诉您最新进度。",
    ])
    return Turn(state=replace(state, confirmed=True, return_id=str(created["return_id"]), invalid=0), reply=Reply(text))


def crm_refused(state: FlowState, message: str) -> Turn:
    """The CRM refused the return (the order changed meanwhile): say so and offer a human."""
    text = f"抱歉，退货申请没有提交成功：{message}。请点“转人工”，由人工客服为您处理。" if message else \
        "抱歉，退货申请没有提交成功。请点“转人工”，由人工客服为您处理。"
    return Turn(state=state, reply=Reply(text, human_buttons()), end=True)


def crm_unavailable(state: FlowState, at_confirmation: bool) -> Turn:
    """The CRM did not answer: an honest message, what happens next, and a human."""
    if at_confirmation:
        text = ("抱歉，退货系统暂时没有响应，这次申请还没有提交成功。您可以过 1 分钟再回复“确认”重新提交（不会重复提交），"
                "也可以点“转人工”，由人工客服为您办理。")
        return Turn(state=replace(state, confirmed=None), reply=Reply(text, human_buttons()))
    text = ("抱歉，订单系统暂时没有响应，我这次没能查到您的订单，退货申请还没有开始办理。"
            "您可以 1 分钟后再对我说“我要退货”，也可以点“转人工”，由人工客服为您办理。")
    return Turn(state=state, reply=Reply(text, human_buttons()), end=True)


# ------------------------------------------------------------------------- refund status
MAX_RETURNS_SHOWN = 3
_STATUS_NEXT = {
    "requested": "已收到您的申请，正在审核，审核通过后会安排快递员上门取件。",
    "approved": "申请已通过，等待快递员上门取件。",
    "picked_up": "快递员已取件，商品正在寄回仓库，仓库收货验收后为您退款。",
    "received": "仓库已收到退货，正在为您办理退款。",
}


def _names_product(item: Mapping[str, Any], mention: str) -> bool:
    """Whether a mention (「耳机」, 「那双耐克」) names a return line, which carries only its product name."""
    name = str(item.get("product_name") or "")
    if mention and mention in name:
        return True
    parsed = parse_mention(mention)
    if parsed.is_empty:
        return False
    kind = default_catalogue().product_type(parsed.product_type) if parsed.product_type else None
    brand_ok = parsed.brand is None or parsed.brand in name
    kind_ok = kind is None or kind.name in name or any(word.lower() in name.lower() for word in kind.name_words)
    return brand_ok and kind_ok


def _return_items(ret: Return) -> str:
    return "、".join(f"{item.get('product_name') or '商品'} ×{item.get('quantity', 1)}" for item in ret.get("items") or [])


def describe_return(ret: Return, today: date, policy: ReturnPolicy) -> Tuple[str, bool]:
    """One return's status with its refund amount and dates; True when a human should follow up."""
    method = policy.payment_label(str(ret.get("refund_method") or ""))
    amount = formatting.money(int(ret.get("refund_fen", 0)))
    expected = formatting.parse_date(str(ret["refund_expected_by"])) if ret.get("refund_expected_by") else None
    status = str(ret.get("status"))
    head = f"退货单 {ret['return_id']}（订单 {ret.get('order_id')}，{_return_items(ret)}）：{ret.get('status_label', status)}。"
    note = str(ret.get("note") or "")
    if status == "refunded" and ret.get("refunded_at"):
        refunded = formatting.parse_datetime(str(ret["refunded_at"]))
        text = f"{head}已于 {formatting.moment(refunded)} 退款 {amount}，原路退回{method}"
        speed = policy_rules.refund_speed(str(ret.get("refund_method") or ""), policy)
        if expected is not None and today <= expected and "立即" not in speed:
            text += f"，{speed}，最晚 {formatting.day(expected, today)}前到账"
        elif expected is not None and today > expected:
            text += f"，按规定最晚 {formatting.day(expected, today)}前到账；如果您还没有收到，请点“转人工”，我们会帮您向{method}查询"
        return text + "。", False
    if status == "rejected":
        reason = f"：{note}" if note else ""
        return f"{head}申请未通过{reason}。如有疑问，请点“转人工”，由人工客服为您复核。", True
    if status == "cancelled":
        return f"{head}这次申请已取消，没有退款。", False
    text = head + _STATUS_NEXT.get(status, "")
    if note and status in ("approved", "requested"):
        text += f"{note}。"
    if expected is None:
        return text + f"退款 {amount} 将原路退回{method}。", False
    if today > expected:
        return (text + f"退款 {amount} 原定最晚 {formatting.day(expected, today)}前到账，现在已经超时，非常抱歉！"
                "请点“转人工”，人工客服会马上为您催办。"), True
    return text + f"退款 {amount} 将原路退回{method}，最晚 {formatting.day(expected, today)}前到账。", False


def describe_returns(
    returns: Sequence[Return], scope: str, products: Sequence[str], today: date, policy: ReturnPolicy
) -> Reply:
    """「退款到哪了」: the latest returns (those matching a product mention, if any) with their dates.

    Args:
        returns: the returns, newest first.
        scope: 您的账户 or 订单 880000010002.
        products: product mentions in the question, to pick the return they mean.
        today: today's date in the shop's timezone.
        policy: the return policy (payment labels and refund speeds).
    """
    chosen = list(returns)
    if products:
        matching = [ret for ret in chosen if any(_names_product(item, mention) for item in ret.get("items") or [] for mention in products)]
        chosen = matching or chosen
    live = [ret for ret in chosen if ret.get("status") != "cancelled"] or chosen
    if not live:
        return Reply(f"{scope}下没有退货退款记录。如需申请退货，对我说“我要退货”就可以。",
                     [{"title": "申请退货", "payload": "/return_request"}])
    texts, follow_up = [], False
    for ret in live[:MAX_RETURNS_SHOWN]:
        text, needs_human = describe_return(ret, today, policy)
        texts.append(text)
        follow_up = follow_up or needs_human
    if len(live) > MAX_RETURNS_SHOWN:
        texts.append(f"另有 {len(live) - MAX_RETURNS_SHOWN} 条较早的退货记录，需要的话请告诉我订单号。")
    return Reply("\n".join(texts), human_buttons() if follow_up else [])

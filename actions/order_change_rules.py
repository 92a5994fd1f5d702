"""Cancelling an order and changing its receiver, as plain functions: which orders can be meant,
what the policy allows in each state (and what to do instead), the wording of confirmations and
results, refund timing, and reading a new receiver from what the shopper typed.

Reference policy: an order can be cancelled, and its receiver changed, only before it ships
(待付款, 待发货). Paid amounts go back the way they were paid, as fast as the return policy's refunds
(``refund.working_days_by_payment_method`` of ``actions/policy/returns.yml``: balance and points at
once, an online wallet within 1–3 working days, a bank card within 3–7), counted in the shop's
calendar (:mod:`bot.shop_calendar`).

The functions compute the values a reply quotes; the words are responses in
``data/responses/order_changes.yml``.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, replace
from datetime import date
from typing import Any, Dict, List, Optional, Sequence

from actions import formatting
from actions.order_tracking import items_summary, status_label
from actions.return_policy import ReturnPolicy
from actions.return_policy import default_policy as default_return_policy
from bot.pii import mask_phone
from bot.shop_calendar import add_working_days
from bot.texts import render

CHANGEABLE_STATUSES = frozenset({"pending_payment", "awaiting_shipment"})
SHIPPED_STATUSES = frozenset({"shipped", "in_transit", "out_for_delivery"})
SIGNED_STATUSES = frozenset({"delivered", "completed"})
OPEN_STATUSES = CHANGEABLE_STATUSES | SHIPPED_STATUSES
MAX_CHOICES = 5
REFUND_TARGETS = {
    "balance": "utter_change_refund_target_balance",
    "points": "utter_change_refund_target_points",
    "wallet": "utter_change_refund_target_wallet",
    "bank_card": "utter_change_refund_target_bank_card",
}
"""The response naming where a cancelled order's money goes back, by payment method."""

Order = Dict[str, Any]


# ----------------------------------------------------------------------------- which order
def open_orders(orders: Sequence[Order]) -> List[Order]:
    """Orders not yet signed for or cancelled, newest first (the ones a change can be about)."""
    return [order for order in orders if order.get("status") in OPEN_STATUSES][:MAX_CHOICES]


def can_cancel(order: Order) -> bool:
    """Whether the policy allows cancelling ``order`` now."""
    if "cancellable" in order:
        return bool(order["cancellable"])
    return order.get("status") in CHANGEABLE_STATUSES


def can_change_address(order: Order) -> bool:
    """Whether the policy allows changing the receiver of ``order`` now."""
    if "address_editable" in order:
        return bool(order["address_editable"])
    return order.get("status") in CHANGEABLE_STATUSES


def order_headline(order: Order) -> str:
    """订单 880000080001（活着 等 3 件，实付 ¥92.00，待付款）."""
    return render("utter_change_order_headline", order_id=order["order_id"], items=items_summary(order),
                  amount=formatting.money(int(order.get("paid_fen", 0))), status=status_label(order))


def _short_headline(order: Order) -> str:
    return render("utter_change_order_short", order_id=order["order_id"], items=items_summary(order))


def order_choice_button(order: Order, intent: str) -> Dict[str, str]:
    """A button choosing one order for ``intent``: date, first item, amount and status."""
    placed = formatting.parse_datetime(str(order["placed_at"]))
    title = render("utter_change_button_order", month=placed.month, day=placed.day, items=items_summary(order),
                   amount=formatting.money(int(order.get("paid_fen", 0))), status=status_label(order))
    payload = f"/{intent}" + json.dumps({"order_id": order["order_id"]}, separators=(",", ":"))
    return {"title": title, "payload": payload}


def wants_another_order(text: str) -> bool:
    """Whether the shopper says they meant another order (「不是这个订单，是另一个」)."""
    return bool(re.search(r"另一个|另外一个|别的|其他|其它|换一个|不是这个|不是这单|不是这一单|不是那个", text or ""))


# ---------------------------------------------------------------------------- refund timing
def refund_promise(order: Order, today: date, policy: Optional[ReturnPolicy] = None) -> str:
    """Where the money of a cancelled order goes and by when.

    Args:
        order: the order as the CRM returns it.
        today: the day it is cancelled, in the shop's timezone.
        policy: the return policy whose refund speeds and calendar count (the shipped one when omitted).
    """
    policy = policy or default_return_policy()
    paid_fen = int(order.get("paid_fen", 0))
    if not order.get("paid_at") or paid_fen <= 0:
        return render("utter_cancel_refund_unpaid")
    method = str(order.get("payment_method", ""))
    if method == "points":
        return render("utter_cancel_refund_points", points=f"{paid_fen:,}")
    amount = formatting.money(paid_fen)
    target = (render(REFUND_TARGETS[method]) if method in REFUND_TARGETS
              else str(order.get("payment_method_label") or render("utter_change_refund_target_other")))
    earliest, latest = policy.refund_working_days.get(method, policy.default_refund_working_days)
    if latest == 0:
        return render("utter_cancel_refund_at_once", amount=amount, target=target)
    by = add_working_days(today, latest, policy.calendar)
    return render("utter_cancel_refund_by", amount=amount, target=target, earliest=earliest, latest=latest,
                  by=formatting.day(by, today))


# ----------------------------------------------------------------------------- cancellation
def _shipment_facts(order: Order) -> str:
    shipment = order.get("shipment") or {}
    if not shipment:
        return ""
    carrier = shipment.get("carrier_name") or shipment.get("carrier", "")
    return render("utter_change_shipment_facts", carrier=carrier, tracking_number=shipment.get("tracking_number", ""))


def _when(value: Optional[str]) -> str:
    return formatting.moment(formatting.parse_datetime(value)) if value else ""


def refusal_offers_human(order: Order) -> bool:
    """Whether the refusal for ``order`` sends the shopper to a human (all but signed and cancelled orders)."""
    return order.get("status") not in SIGNED_STATUSES and order.get("status") != "cancelled"


def cancel_refusal(order: Order) -> str:
    """Why ``order`` cannot be cancelled, with what the shopper can do instead."""
    headline = _short_headline(order)
    status = order.get("status")
    if status in SHIPPED_STATUSES:
        return render("utter_cancel_refused_shipped", headline=headline, status=status_label(order), shipment=_shipment_facts(order))
    if status in SIGNED_STATUSES:
        signed = _when(order.get("signed_at"))
        when = render("utter_cancel_signed_at", signed=signed) if signed else ""
        return render("utter_cancel_refused_signed", headline=headline, when=when)
    if status == "cancelled":
        cancelled = _when(order.get("cancelled_at"))
        when = render("utter_cancel_cancelled_at", cancelled=cancelled) if cancelled else render("utter_cancel_cancelled")
        return render("utter_cancel_refused_cancelled", headline=headline, when=when)
    return render("utter_cancel_refused_other", headline=headline, status=status_label(order))


def confirm_cancel_text(order: Order, today: date) -> str:
    """The confirmation question for cancelling ``order``, with what happens to the money."""
    return render("utter_cancel_confirm", headline=order_headline(order), refund=refund_promise(order, today))


def cancelled_text(order: Order, today: date) -> str:
    """The result of a cancellation, with the time and what happens to the money."""
    cancelled = _when(order.get("cancelled_at"))
    when = render("utter_cancel_done_at", cancelled=cancelled) if cancelled else ""
    return render("utter_cancel_done", order_id=order["order_id"], when=when, refund=refund_promise(order, today))


# --------------------------------------------------------------------------- address change
def address_refusal(order: Order) -> str:
    """Why the receiver of ``order`` cannot be changed, with what the shopper can do instead."""
    headline = _short_headline(order)
    status = order.get("status")
    if status in SHIPPED_STATUSES:
        return render("utter_address_refused_shipped", headline=headline, status=status_label(order), shipment=_shipment_facts(order))
    if status in SIGNED_STATUSES:
        return render("utter_address_refused_signed", headline=headline)
    if status == "cancelled":
        return render("utter_address_refused_cancelled", headline=headline)
    return render("utter_address_refused_other", headline=headline, status=status_label(order))


@dataclass(frozen=True)
class ReceiverDraft:
    """A new receiver collected over one or more turns.

    Attributes:
        name: receiver name.
        phone: 11-digit mobile number.
        address: full address.
        keep_current: the shopper said the name and phone stay as they are.
    """

    name: Optional[str] = None
    phone: Optional[str] = None
    address: Optional[str] = None
    keep_current: bool = False

    @property
    def is_empty(self) -> bool:
        """True when nothing was read."""
        return not (self.name or self.phone or self.address or self.keep_current)

    def merged_over(self, earlier: ReceiverDraft) -> ReceiverDraft:
        """This draft's fields, falling back to ``earlier``'s."""
        return ReceiverDraft(
            name=self.name or earlier.name,
            phone=self.phone or earlier.phone,
            address=self.address or earlier.address,
            keep_current=self.keep_current or earlier.keep_current,
        )

    def with_current(self, order: Order) -> ReceiverDraft:
        """Missing name and phone taken from the order when the shopper keeps them."""
        if not self.keep_current:
            return self
        return replace(
            self,
            name=self.name or order.get("receiver_name"),
            phone=self.phone or order.get("receiver_phone"),
        )

    def missing(self) -> List[str]:
        """The Chinese names of the fields still missing."""
        fields = (("utter_address_field_name", self.name), ("utter_address_field_phone", self.phone),
                  ("utter_address_field_address", self.address))
        return [render(label) for label, value in fields if not value]


_MOBILE = re.compile(r"(?<!\d)(1[3-9]\d)[ -]?(\d{4})[ -]?(\d{4})(?!\d)")
_LABELS = (
    ("name", r"收货人姓名|收件人姓名|收货人|收件人|联系人|姓名|名字"),
    ("phone", r"联系电话|手机号码|手机号|电话号码|手机|电话"),
    ("address", r"收货地址|详细地址|新地址|地址"),
)
_LABEL = re.compile("|".join(f"(?P<{field}>{pattern})" for field, pattern in _LABELS))
_LEADING_FILLER = re.compile(r"^(?:请|麻烦|帮我|帮忙|我要|我想|要|把|将|新的|新|的)+")
_TRAILING_LINK = re.compile(r"(?:改成|改为|改到|换成|换到|修改为|更改为|是|为|:|：)+$")
_LINK = re.compile(r"^(?:改成|改为|改到|换成|换到|修改为|更改为|送到|寄到|发到|是|为|:|：)+")
_KEEP = re.compile(r"不变|不用改|不改|照旧|还是原来的|和原来一样|跟原来一样|保持原样|用原来的")
ADDRESS_MARKERS = ("省", "市", "区", "县", "镇", "乡", "村", "路", "街", "道", "巷", "弄", "号", "栋", "幢", "楼", "室",
                   "单元", "小区", "大厦", "花园", "公寓", "苑", "驿站", "丰巢", "自提", "快递柜")
REGION_MARKERS = ("省", "市", "区", "县", "镇", "乡", "村", "路", "街", "道", "巷", "弄")
# Characters that make a short phrase a sentence rather than a person's name.
NOT_NAME_CHARACTERS = frozenset("是个吗了的我你他她要改不能这那吧呢啊么什怎想给帮在有没错写换收送到谢好对行可以省市区县路街号栋楼室")
# Common Chinese surnames: a short unlabelled phrase counts as a name only when it starts with one.
SURNAMES = frozenset(
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金"
    "石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤常温康施文牛樊葛邢安齐易乔伍庞颜倪庄聂章"
    "鲁岳翟殷詹申欧耿关兰焦俞左柳甘祝包宁尚符舒阮柯纪梅童凌毕单季裴霍涂成苗谷盛曲翁冉骆蓝路游辛靳管柴蒙鲍华喻祁蒲房滕屈饶解牟"
    "艾尤阳时穆农司卓古吉缪简车项连芦麦褚娄窦戚岑景党宫费卜冷晏席卫米柏宗瞿桂全佟应臧闵苟邬边卞姬师和仇栾隋商刁沙荣巫寇桑郎甄"
    "丛仲虞敖巩明佘池查麻苑迟邝封储钮鞠郁訾晋都"
)
COMPOUND_SURNAMES = ("欧阳", "司马", "上官", "诸葛", "东方", "皇甫", "慕容", "令狐", "夏侯", "司徒", "尉迟", "长孙", "宇文", "公孙")
_NAME = re.compile(r"^[\u4e00-\u9fffA-Za-z·]{2,10}$")
NOT_NAMES = frozenset(
    {"谢谢", "好的", "确认", "麻烦", "你好", "您好", "可以", "改成", "改为", "不用", "不变", "一样", "收货",
     "修改", "地址", "电话", "手机", "姓名", "帮我", "请问", "收件", "改一下", "改下", "谢了", "是的", "对的", "就这样"}
)


def _is_address(value: str) -> bool:
    return len(value) >= 5 and any(marker in value for marker in REGION_MARKERS)


def _continues_address(value: str) -> bool:
    return any(marker in value for marker in ADDRESS_MARKERS)


def _is_name(value: str) -> bool:
    if not _NAME.match(value) or value in NOT_NAMES:
        return False
    if any(marker in value for marker in ADDRESS_MARKERS if len(marker) > 1):
        return False
    chinese = [char for char in value if "\u4e00" <= char <= "\u9fff"]
    if chinese and (len(chinese) > 4 or any(char in NOT_NAME_CHARACTERS for char in chinese[1:])):
        return False
    if chinese and not (value.startswith(COMPOUND_SURNAMES) or value[0] in SURNAMES):
        return False
    return not value.startswith(("不", "我", "你", "这", "那", "是"))


def parse_receiver(text: str) -> ReceiverDraft:
    """Read a receiver name, mobile number and address from what the shopper typed.

    Accepts labelled forms (「收件人：王芳 电话：139… 地址：…」), unlabelled ones separated by
    spaces or commas (「王芳 13900001111 上海市浦东新区张江路100号」), and any subset of the three.

    Args:
        text: the shopper's message.

    Returns:
        The fields found; empty fields stay None.
    """
    folded = unicodedata.normalize("NFKC", text or "").strip()
    phone = None
    match = _MOBILE.search(folded)
    if match:
        phone = "".join(match.groups())
        folded = folded[: match.start()] + "|" + folded[match.end():]
    keep = bool(_KEEP.search(folded))
    folded = _KEEP.sub("|", folded)
    folded = _LABEL.sub(lambda found: "|" + found.group(0), folded)
    name: Optional[str] = None
    address_parts: List[str] = []
    for raw in re.split(r"[|\s,，;；。、/]+", folded):
        segment = _LINK.sub("", _LEADING_FILLER.sub("", raw))
        segment = _TRAILING_LINK.sub("", segment)
        field = None
        label = _LABEL.match(segment)
        if label:
            field = label.lastgroup
            segment = _LINK.sub("", segment[label.end():])
        segment = segment.strip()
        if not segment:
            continue
        if field == "address" or (field is None and _is_address(segment)):
            address_parts.append(segment)
        elif field == "name" and _NAME.match(segment) and segment not in NOT_NAMES:
            name = name or segment
        elif field is None and address_parts and (_continues_address(segment) or re.match(r"^[\dA-Za-z]+[\u4e00-\u9fff]*$", segment)):
            address_parts.append(segment)
        elif field is None and _is_name(segment):
            name = name or segment
    address = "".join(address_parts) or None
    if address is not None and not _is_address(address):
        address = None
    if address is not None and len(address) > 200:
        address = None
    return ReceiverDraft(name=name, phone=phone, address=address, keep_current=keep)


def describe_receiver(name: Optional[str], phone: Optional[str], address: Optional[str]) -> str:
    """收货人 王芳，手机 139****1111，地址 上海市… (the phone always masked)."""
    parts = []
    if name:
        parts.append(render("utter_address_receiver_name", name=name))
    if phone:
        parts.append(render("utter_address_receiver_phone", phone=mask_phone(phone)))
    if address:
        parts.append(render("utter_address_receiver_address", address=address))
    return "，".join(parts)


def ask_receiver_text(order: Order, draft: ReceiverDraft, first_time: bool) -> str:
    """Ask for the new receiver, showing what is already known (phone masked)."""
    lines = []
    if first_time:
        current = describe_receiver(order.get("receiver_name"), order.get("receiver_phone"), order.get("address"))
        lines.append(render("utter_address_can_change", headline=order_headline(order)))
        if current:
            lines.append(render("utter_address_current", receiver=current))
    known = describe_receiver(draft.name, draft.phone, draft.address)
    if known:
        lines.append(render("utter_address_noted", receiver=known))
    missing = draft.missing()
    if len(missing) == 3:
        lines.append(render("utter_address_ask_all"))
    else:
        lines.append(render("utter_address_ask_missing", missing="、".join(missing)))
    return "\n".join(lines)


def confirm_address_text(order: Order, draft: ReceiverDraft) -> str:
    """The confirmation question for the new receiver (phone masked)."""
    return render("utter_address_confirm", order_id=order["order_id"], items=items_summary(order), name=draft.name,
                  phone=mask_phone(draft.phone), address=draft.address)


def address_changed_text(order: Order) -> str:
    """The result of the change, read back from the CRM's order (phone masked)."""
    receiver = describe_receiver(order.get("receiver_name"), order.get("receiver_phone"), order.get("address"))
    return render("utter_address_changed", order_id=order["order_id"], receiver=receiver)

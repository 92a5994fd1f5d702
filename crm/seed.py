"""Deterministic demo data: ~400 customers, ~3000 orders in every state, returns, points ledgers.

The generator uses one ``random.Random`` with a fixed seed and derives every date from ``today``,
so the same ``today`` always yields the same database. Timelines are simulated against a cut-off
of ``today 08:00`` (shop time): each order's status, shipment scans and returns are whatever had
happened by then. Fixed demo customers (``C000001`` .. ``C000009``, see ``DEMO_CUSTOMERS.md``) cover
the cases the assistant must handle.
"""

from __future__ import annotations

import datetime as dt
import heapq
import random
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from sqlalchemy import select
from sqlalchemy.engine import Engine

from bot.shop_calendar import add_working_days
from crm.clock import last_day_of_month, points_expiry, to_utc_naive
from crm.db import create_schema, drop_schema
from crm.models import (
    Base,
    Coupon,
    Customer,
    Order,
    OrderItem,
    PointsEntry,
    Product,
    Redemption,
    Return,
    ReturnItem,
    Shipment,
    ShipmentEvent,
)
from crm.points import Lots
from crm.policy import CouponSpec, load_coupons, load_tiers, tier_by_code, tier_for_growth
from crm.seed_data import (
    CATEGORY_WEIGHTS,
    CITIES,
    COURIER_SURNAMES,
    GIVEN_NAME_CHARS,
    MOBILE_PREFIXES,
    NOT_RETURNABLE_REASONS,
    PRODUCTS,
    RESIDENCES,
    SURNAMES,
    WAREHOUSES,
)
from crm.vocab import CARRIER_NAMES, SHOP_AT_FAULT_REASONS, TRACKING_DIGITS

SEED = 20240618
DEFAULT_CUSTOMERS = 400
CUTOFF_TIME = dt.time(8, 0)
REGISTRATION_BONUS = 100
ORDER_COUPONS: Tuple[Tuple[int, int], ...] = (
    (9900, 1000),
    (19900, 2000),
    (29900, 3000),
    (50000, 5000),
    (100000, 10000),
    (300000, 20000),
)
COMMUNITY_PREFIXES = (
    "阳光",
    "金色",
    "翠湖",
    "锦绣",
    "华府",
    "世纪",
    "枫林",
    "绿城",
    "万科",
    "碧水",
    "书香",
    "海棠",
    "紫荆",
    "滨江",
    "和平",
    "幸福",
)
FAR_REGIONS = {
    frozenset({"north", "south"}),
    frozenset({"north", "west"}),
    frozenset({"east", "west"}),
    frozenset({"south", "west"}),
}
REFUND_WORKING_DAYS = {"balance": 0, "points": 0, "wallet": 3, "bank_card": 7}

Stamp = dt.datetime  # naive, shop-local time inside the generator


@dataclass(frozen=True)
class DemoCustomer:
    """A fixed customer of the demo data set."""

    customer_id: str
    name: str
    phone: str
    tier: str
    birthday: dt.date
    city: str
    district: int
    address: str
    cases: str


DEMO_CUSTOMERS: Tuple[DemoCustomer, ...] = (
    DemoCustomer(
        "C000001",
        "张伟",
        "13812345678",
        "L4",
        dt.date(1988, 5, 20),
        "上海市",
        0,
        "上海市浦东新区张江路188号阳光花园3栋2单元1201室",
        "迟到订单（运输中，承诺日期为2天前）；3天前签收的订单含耐克跑鞋（可七天无理由，钱包支付，用券）；本月底有积分到期；积分可兑换优惠券",
    ),
    DemoCustomer(
        "C000002",
        "李娜",
        "13987654321",
        "L2",
        dt.date(1992, 11, 3),
        "北京市",
        1,
        "北京市海淀区中关村大街27号书香小区5栋1单元602室",
        "两个在途订单：一个运输中（按时），一个待发货（可改地址、可取消）",
    ),
    DemoCustomer(
        "C000003",
        "王芳",
        "15011112222",
        "L3",
        dt.date(1985, 2, 14),
        "广州市",
        0,
        "广州市天河区体育西路103号锦绣家园8栋901室",
        "40天前签收的订单（已过退货期），无在途订单",
    ),
    DemoCustomer(
        "C000004",
        "刘洋",
        "15233334444",
        "L1",
        dt.date(1996, 7, 8),
        "杭州市",
        0,
        "浙江省杭州市西湖区文三路90号枫林苑2栋3单元401室",
        "昨天签收的订单：大闸蟹（生鲜，不可无理由退）+ 摇粒绒外套（可退），有运费险",
    ),
    DemoCustomer(
        "C000005",
        "陈静",
        "18655556666",
        "L2",
        dt.date(1990, 9, 30),
        "南京市",
        0,
        "江苏省南京市鼓楼区湖南路16号海棠公寓1栋705室",
        "退货进行中（已同意，待上门取件）",
    ),
    DemoCustomer(
        "C000006",
        "杨磊",
        "17788889999",
        "L3",
        dt.date(1983, 12, 1),
        "成都市",
        0,
        "四川省成都市武侯区天府大道1199号世纪大厦A座1508室",
        "退款已到账（质量问题退货，银行卡退款）",
    ),
    DemoCustomer(
        "C000007",
        "赵敏",
        "13566667777",
        "L5",
        dt.date(1979, 4, 18),
        "深圳市",
        0,
        "广东省深圳市南山区科技园南路15号滨江花园6栋2801室",
        "钻石会员（专属客服）；订单派送中",
    ),
    DemoCustomer(
        "C000008",
        "周婷",
        "18900001234",
        "L1",
        dt.date(2001, 1, 25),
        "武汉市",
        0,
        "湖北省武汉市洪山区珞喻路1037号紫荆家园4栋1203室",
        "注册会员；待付款订单（可取消）",
    ),
    DemoCustomer(
        "C000009",
        "吴刚",
        "13600009876",
        "L1",
        dt.date(1999, 6, 12),
        "西安市",
        0,
        "陕西省西安市雁塔区小寨东路126号和平小区2栋502室",
        "新注册会员，没有任何订单",
    ),
)
DEMO_TIER_TARGETS = {"L1": 0, "L2": 3500, "L3": 16000, "L4": 38000, "L5": 125000}


@dataclass
class Item:
    """An order line being generated."""

    line_id: int
    product: Tuple[str, str, str, str, int]
    quantity: int
    paid_fen: int = 0

    @property
    def total_fen(self) -> int:
        return self.product[4] * 100 * self.quantity


@dataclass
class OrderDraft:
    """An order being generated, in shop-local time."""

    order_id: str
    customer_id: str
    placed_at: Stamp
    items: List[Item]
    payment_method: str
    insurance: bool
    coupon_fen: int
    shipping_fen: int
    receiver: Tuple[str, str, str]
    city: str
    district: int
    promised_date: dt.date
    status: str = "pending_payment"
    paid_at: Optional[Stamp] = None
    signed_at: Optional[Stamp] = None
    completed_at: Optional[Stamp] = None
    cancelled_at: Optional[Stamp] = None
    carrier: Optional[str] = None
    tracking: Optional[str] = None
    shipped_at: Optional[Stamp] = None
    events: List[Tuple[Stamp, str, str]] = field(default_factory=list)

    @property
    def subtotal_fen(self) -> int:
        return sum(item.total_fen for item in self.items)

    @property
    def paid_fen(self) -> int:
        return self.subtotal_fen - self.coupon_fen + self.shipping_fen


@dataclass
class ReturnDraft:
    """A return being generated."""

    return_id: str
    order: OrderDraft
    lines: List[Tuple[int, int]]
    reason: str
    status: str
    refund_fen: int
    shipping_paid_by: str
    refund_expected_by: dt.date
    created_at: Stamp
    updated_at: Stamp
    refunded_at: Optional[Stamp] = None
    note: Optional[str] = None


@dataclass
class Timeline:
    """Planned moments of an order; what has happened by the cut-off decides its status."""

    pay_after: Optional[dt.timedelta] = dt.timedelta(minutes=3)
    cancel_at: Optional[Stamp] = None
    ship_at: Optional[Stamp] = None
    sign_at: Optional[Stamp] = None
    confirm_after: dt.timedelta = dt.timedelta(days=10)
    delayed: bool = False
    warehouse: Optional[int] = None


@dataclass
class CustomerDraft:
    """A customer being generated."""

    customer_id: str
    name: str
    phone: str
    birthday: dt.date
    created_at: Stamp
    city: str
    district: int
    address: str
    orders: List[OrderDraft] = field(default_factory=list)
    returns: List[ReturnDraft] = field(default_factory=list)
    tier: str = "L1"
    growth_value: int = 0
    points_balance: int = 0
    redeems: bool = False


class Generator:
    """Builds all rows of the demo database for one ``today``."""

    def __init__(self, today: dt.date, customers: int = DEFAULT_CUSTOMERS, tz: Optional[dt.tzinfo] = None) -> None:
        self.rng = random.Random(SEED)
        self.today = today
        self.cutoff: Stamp = dt.datetime.combine(today, CUTOFF_TIME)
        self.customer_total = max(customers, len(DEMO_CUSTOMERS))
        self.tz = tz or dt.timezone(dt.timedelta(hours=8))
        self.tiers = load_tiers()
        self.coupons: Tuple[CouponSpec, ...] = load_coupons()
        self.products = list(PRODUCTS)
        self.by_sku = {product[0]: product for product in self.products}
        self.by_category: Dict[str, List[Tuple[str, str, str, str, int]]] = {}
        for product in self.products:
            self.by_category.setdefault(product[3], []).append(product)
        self.used_ids: set = set()
        self.phones = {demo.phone for demo in DEMO_CUSTOMERS}
        self.customers: List[CustomerDraft] = []
        self.ledger: List[Dict[str, Any]] = []
        self.redemptions: List[Dict[str, Any]] = []

    # ----------------------------------------------------------------- helpers
    def _unique(self, make: Callable[[], str]) -> str:
        while True:
            value = make()
            if value not in self.used_ids:
                self.used_ids.add(value)
                return value

    def _digits(self, count: int) -> str:
        return "".join(self.rng.choice("0123456789") for _ in range(count))

    def _order_id(self) -> str:
        return self._unique(lambda: str(self.rng.randrange(10**11, 8 * 10**11)))

    def _tracking(self, carrier: str) -> str:
        return self._unique(lambda: carrier + self._digits(TRACKING_DIGITS[carrier]))

    def _at(self, day: dt.date, hour: int, minute: int = 0, second: int = 0) -> Stamp:
        return dt.datetime.combine(day, dt.time(hour, minute, second))

    def _days_ago(self, days: int, hour: int, minute: int = 0) -> Stamp:
        return self._at(self.today - dt.timedelta(days=days), hour, minute)

    def _jitter(self, stamp: Stamp, minutes: int = 20) -> Stamp:
        return stamp + dt.timedelta(seconds=self.rng.randrange(minutes * 60))

    def _name(self) -> str:
        given = "".join(self.rng.choice(GIVEN_NAME_CHARS) for _ in range(self.rng.choice((1, 2, 2))))
        return self.rng.choice(SURNAMES) + given

    def _phone(self) -> str:
        def make() -> str:
            return self.rng.choice(MOBILE_PREFIXES) + self._digits(8)

        while True:
            phone = make()
            if phone not in self.phones:
                self.phones.add(phone)
                return phone

    def _address(self) -> Tuple[str, int, str]:
        city = self.rng.choice(sorted(CITIES))
        province, _region, districts, _hub = CITIES[city]
        index = self.rng.randrange(len(districts))
        district, streets, _site = districts[index]
        community = self.rng.choice(COMMUNITY_PREFIXES) + self.rng.choice(RESIDENCES)
        text = (
            f"{province}{city}{district}{self.rng.choice(streets)}{self.rng.randint(1, 999)}号"
            f"{community}{self.rng.randint(1, 30)}栋{self.rng.randint(1, 4)}单元"
            f"{self.rng.randint(1, 33)}{self.rng.randint(1, 4):02d}室"
        )
        return city, index, text

    def _pick_product(self, rich: bool, exclude: Sequence[str] = ()) -> Tuple[str, str, str, str, int]:
        categories = sorted(CATEGORY_WEIGHTS)
        weights = [CATEGORY_WEIGHTS[c] * (4 if rich and c == "electronics" else 1) for c in categories]
        while True:
            category = self.rng.choices(categories, weights)[0]
            product = self.rng.choice(self.by_category[category])
            if product[0] not in exclude:
                return product

    # ------------------------------------------------------------ order logic
    def _draft(
        self,
        customer: CustomerDraft,
        placed_at: Stamp,
        lines: List[Tuple[Tuple[str, str, str, str, int], int]],
        *,
        order_id: Optional[str] = None,
        payment_method: str = "wallet",
        insurance: bool = False,
        coupon_fen: Optional[int] = None,
        promised_date: Optional[dt.date] = None,
        receiver: Optional[Tuple[str, str, str]] = None,
        city: Optional[str] = None,
        district: Optional[int] = None,
    ) -> OrderDraft:
        items = [Item(index + 1, product, quantity) for index, (product, quantity) in enumerate(lines)]
        subtotal = sum(item.total_fen for item in items)
        if coupon_fen is None:
            coupon_fen = 0
            if self.rng.random() < 0.35:
                eligible = [value for threshold, value in ORDER_COUPONS if threshold <= subtotal]
                if eligible:
                    coupon_fen = eligible[-1] if self.rng.random() < 0.7 else self.rng.choice(eligible)
        digital = all(item.product[3] == "digital_goods" for item in items)
        shipping = 0 if digital or subtotal - coupon_fen >= 9900 else 600
        # The coupon is shared by the lines pro rata; the last line takes the rounding remainder.
        remaining = coupon_fen
        for index, item in enumerate(items):
            share = remaining if index == len(items) - 1 else round(coupon_fen * item.total_fen / subtotal)
            share = min(share, remaining)
            remaining -= share
            item.paid_fen = item.total_fen - share
        return OrderDraft(
            order_id=order_id or self._order_id(),
            customer_id=customer.customer_id,
            placed_at=placed_at,
            items=items,
            payment_method=payment_method,
            insurance=insurance and not digital,
            coupon_fen=coupon_fen,
            shipping_fen=shipping,
            receiver=receiver or (customer.name, customer.phone, customer.address),
            city=city or customer.city,
            district=customer.district if district is None else district,
            promised_date=promised_date or placed_at.date() + dt.timedelta(days=3),
        )

    def _route(self, order: OrderDraft) -> Tuple[Tuple[str, str, str], int]:
        region = CITIES[order.city][1]
        local = [w for w in WAREHOUSES if w[2] == region]
        warehouse = local[0] if local and self.rng.random() < 0.75 else self.rng.choice(WAREHOUSES)
        if warehouse[0] == order.city:
            days = 1
        elif warehouse[2] == region:
            days = 1 if self.rng.random() < 0.6 else 2
        elif frozenset({warehouse[2], region}) in FAR_REGIONS:
            days = 3
        else:
            days = 2
        return warehouse, days

    def _events(
        self, order: OrderDraft, warehouse: Tuple[str, str, str], ship_at: Stamp, sign_at: Stamp, delayed: bool
    ) -> List[Tuple[Stamp, str, str, str]]:
        carrier_name = CARRIER_NAMES[order.carrier or "JD"]
        origin_hub = CITIES[warehouse[0]][3]
        dest_hub = CITIES[order.city][3]
        site = CITIES[order.city][2][order.district][2]
        span = sign_at - ship_at

        def before(hours: float, fraction: float) -> Stamp:
            return sign_at - min(dt.timedelta(hours=hours), span * fraction)

        def after(hours: float, fraction: float) -> Stamp:
            return ship_at + min(dt.timedelta(hours=hours), span * fraction)

        events = [(ship_at, warehouse[1], f"您的订单已出库，{carrier_name}快递员已揽收", "shipped")]
        if origin_hub != dest_hub:
            events.append((after(3, 0.1), origin_hub, f"快件已到达【{origin_hub}】", "in_transit"))
            events.append((after(5, 0.2), origin_hub, f"快件已从【{origin_hub}】发出，下一站【{dest_hub}】", "in_transit"))
        if delayed:
            events.append(
                (
                    ship_at + span * 0.4,
                    origin_hub if origin_hub != dest_hub else dest_hub,
                    "受天气及运力影响，快件运输延误，预计延迟1-2天送达，给您带来不便深表歉意",
                    "in_transit",
                )
            )
        events.append((before(14, 0.45), dest_hub, f"快件已到达【{dest_hub}】", "in_transit"))
        events.append((before(8, 0.3), dest_hub, f"快件已从【{dest_hub}】发出，下一站【{site}】", "in_transit"))
        arrived = before(5, 0.15)
        events.append((arrived, site, f"快件已到达【{site}】，正在安排派送", "in_transit"))
        courier = f"{self.rng.choice(COURIER_SURNAMES)}师傅"
        courier_phone = f"{self.rng.choice(MOBILE_PREFIXES)}****{self._digits(4)}"
        dispatch = before(self.rng.uniform(1.0, 4.0), 0.08)
        dispatch = max(dispatch, min(self._at(sign_at.date(), 7, 30), sign_at - dt.timedelta(minutes=10)))
        dispatch = max(dispatch, arrived + dt.timedelta(minutes=1))
        events.append(
            (dispatch, site, f"快递员{courier}（电话 {courier_phone}）正在为您派件，请保持电话畅通", "out_for_delivery")
        )
        signer = self.rng.choice(("本人", "本人", "本人", "家人", "公司前台", "门卫"))
        events.append((sign_at, site, f"您的快件已签收，签收人：{signer}。感谢使用{carrier_name}，期待再次为您服务", "delivered"))
        return [(stamp.replace(microsecond=0), location, text, stage) for stamp, location, text, stage in events]

    def _settle(
        self, order: OrderDraft, plan: Timeline, carrier: Optional[str] = None, tracking: Optional[str] = None
    ) -> OrderDraft:
        """Apply the plan up to the cut-off and set status, timestamps and shipment scans."""
        cutoff = self.cutoff
        paid_at = order.placed_at + plan.pay_after if plan.pay_after is not None else None
        if paid_at is None or paid_at > cutoff:
            if plan.cancel_at is not None and plan.cancel_at <= cutoff:
                order.status, order.cancelled_at = "cancelled", plan.cancel_at
            else:
                order.status = "pending_payment"
            return order
        order.paid_at = paid_at
        if plan.cancel_at is not None and plan.cancel_at <= cutoff and (plan.ship_at is None or plan.cancel_at < plan.ship_at):
            order.status, order.cancelled_at = "cancelled", plan.cancel_at
            return order
        if all(item.product[3] == "digital_goods" for item in order.items):
            order.signed_at = paid_at + dt.timedelta(minutes=1)
            order.status = "delivered"
        else:
            warehouse, days = self._route(order)
            if plan.warehouse is not None:
                warehouse = WAREHOUSES[plan.warehouse]
            ship_at = plan.ship_at or paid_at + dt.timedelta(hours=self.rng.randint(3, 30))
            if plan.sign_at is not None:
                sign_at = plan.sign_at
            else:
                extra = self.rng.randint(1, 4) if plan.delayed else 0
                sign_day = ship_at.date() + dt.timedelta(days=days + extra)
                sign_at = self._at(sign_day, self.rng.randint(9, 19), self.rng.randint(0, 59))
                if sign_at - ship_at < dt.timedelta(hours=14):
                    sign_at += dt.timedelta(days=1)
            if ship_at > cutoff:
                order.status = "awaiting_shipment"
                return order
            order.carrier = carrier or self.rng.choices(("SF", "JD", "YT"), (40, 45, 15))[0]
            order.tracking = tracking or self._tracking(order.carrier)
            order.shipped_at = ship_at
            planned = self._events(order, warehouse, ship_at, sign_at, plan.delayed)
            happened = [event for event in planned if event[0] <= cutoff]
            order.events = [(stamp, location, text) for stamp, location, text, _stage in happened]
            order.status = happened[-1][3]
            if order.status != "delivered":
                return order
            order.signed_at = sign_at
        assert order.signed_at is not None
        completed_at = order.signed_at + plan.confirm_after
        if completed_at <= cutoff:
            order.status, order.completed_at = "completed", completed_at
        return order

    def _random_plan(self, placed_at: Stamp) -> Timeline:
        plan = Timeline(pay_after=dt.timedelta(seconds=self.rng.randint(30, 40 * 60)))
        roll = self.rng.random()
        if roll < 0.06:
            plan.pay_after = None
            plan.cancel_at = placed_at + dt.timedelta(hours=24)
        elif roll < 0.10:
            assert plan.pay_after is not None
            plan.cancel_at = placed_at + plan.pay_after + dt.timedelta(minutes=self.rng.randint(10, 300))
            plan.ship_at = plan.cancel_at + dt.timedelta(hours=self.rng.randint(2, 20))
        plan.delayed = self.rng.random() < 0.12
        if self.rng.random() < 0.4:
            plan.confirm_after = dt.timedelta(hours=self.rng.randint(20, 120))
        return plan

    def _random_order(self, customer: CustomerDraft, placed_at: Stamp, rich: bool) -> OrderDraft:
        first = self._pick_product(rich)
        if first[3] == "digital_goods":
            lines = [(first, 1)]
        else:
            lines = [(first, 1)]
            count = self.rng.choices((1, 2, 3), (60, 28, 12))[0]
            while len(lines) < count:
                product = self._pick_product(rich, exclude=[line[0][0] for line in lines])
                if product[3] != "digital_goods":
                    lines.append((product, 1))
            bulk = ("books", "fresh_food", "personal_care", "underwear")
            lines = [(product, self.rng.choice((1, 1, 2, 3)) if product[3] in bulk else 1) for product, _ in lines]
        method = self.rng.choices(("wallet", "bank_card", "balance", "points"), (60, 25, 12, 3))[0]
        if self.rng.random() < 0.85:
            receiver = (customer.name, customer.phone, customer.address)
            city, district = customer.city, customer.district
        else:
            city, district, address = self._address()
            receiver = (self._name(), self._phone() if self.rng.random() < 0.6 else customer.phone, address)
        order = self._draft(
            customer,
            placed_at,
            lines,
            payment_method=method,
            insurance=self.rng.random() < 0.3,
            receiver=receiver,
            city=city,
            district=district,
        )
        _warehouse, days = self._route(order)
        order.promised_date = placed_at.date() + dt.timedelta(days=days + (1 if placed_at.hour >= 16 else 0) + 1)
        if method == "points" and order.paid_fen > 20000:
            order.payment_method = "wallet"
        return self._settle(order, self._random_plan(placed_at))

    def _random_return(self, customer: CustomerDraft, order: OrderDraft) -> Optional[ReturnDraft]:
        assert order.signed_at is not None
        reasons = ("quality_issue", "wrong_size", "not_as_described", "no_longer_wanted", "damaged_on_arrival", "other")
        reason = self.rng.choices(reasons, (20, 25, 12, 25, 8, 10))[0]
        eligible = [item for item in order.items if item.product[3] not in NOT_RETURNABLE_REASONS]
        if reason not in SHOP_AT_FAULT_REASONS and not eligible:
            reason = "quality_issue"
        candidates = order.items if reason in SHOP_AT_FAULT_REASONS else eligible
        chosen = self.rng.sample(candidates, self.rng.randint(1, len(candidates)))
        lines = sorted((item.line_id, self.rng.randint(1, item.quantity)) for item in chosen)
        window = 15 if reason in SHOP_AT_FAULT_REASONS else 7
        created = order.signed_at + dt.timedelta(minutes=self.rng.randint(60, window * 24 * 60 - 120))
        if created > self.cutoff:
            return None
        outcome = self.rng.random()
        stages: List[Tuple[str, Stamp]] = [("requested", created)]
        note = None
        method = order.payment_method
        received_plan = created + dt.timedelta(hours=self.rng.randint(40, 100))
        refund_day = add_working_days(
            received_plan.date(),
            self.rng.randint(1, 3) if method == "wallet" else self.rng.randint(3, 7) if method == "bank_card" else 0,
        )
        if outcome < 0.06:
            stages.append(("rejected", created + dt.timedelta(hours=self.rng.randint(3, 20))))
            note = "经审核，商品已使用且影响二次销售，不符合退货条件"
        elif outcome < 0.12:
            stages.append(("cancelled", created + dt.timedelta(hours=self.rng.randint(1, 30))))
            note = "用户主动撤销退货申请"
        else:
            approved = created + dt.timedelta(minutes=self.rng.randint(20, 12 * 60))
            picked = approved + dt.timedelta(hours=self.rng.randint(12, 30))
            received = max(received_plan, picked + dt.timedelta(hours=12))
            refunded = (
                received + dt.timedelta(minutes=self.rng.randint(5, 60))
                if refund_day <= received.date()
                else self._at(refund_day, self.rng.randint(9, 20), self.rng.randint(0, 59))
            )
            stages += [("approved", approved), ("picked_up", picked), ("received", received), ("refunded", refunded)]
        happened = [stage for stage in stages if stage[1] <= self.cutoff]
        status, updated = happened[-1]
        return self._return_draft(
            order,
            lines,
            reason,
            status,
            created,
            updated,
            refunded_at=updated if status == "refunded" else None,
            note=note,
            expected=add_working_days(received_plan.date(), REFUND_WORKING_DAYS[method]),
        )

    def _return_draft(
        self,
        order: OrderDraft,
        lines: List[Tuple[int, int]],
        reason: str,
        status: str,
        created: Stamp,
        updated: Stamp,
        *,
        refunded_at: Optional[Stamp] = None,
        note: Optional[str] = None,
        expected: Optional[dt.date] = None,
        return_id: Optional[str] = None,
    ) -> ReturnDraft:
        by_line = {item.line_id: item for item in order.items}
        refund = sum(round(by_line[line].paid_fen * quantity / by_line[line].quantity) for line, quantity in lines)
        at_fault = reason in SHOP_AT_FAULT_REASONS
        if at_fault:
            refund += order.shipping_fen
        draft = ReturnDraft(
            return_id=return_id or self._unique(lambda: "R" + self._digits(10)),
            order=order,
            lines=lines,
            reason=reason,
            status=status,
            refund_fen=refund,
            shipping_paid_by="shop" if at_fault or order.insurance else "shopper",
            refund_expected_by=expected
            or add_working_days(created.date() + dt.timedelta(days=3), REFUND_WORKING_DAYS[order.payment_method]),
            created_at=created,
            updated_at=updated,
            refunded_at=refunded_at,
            note=note,
        )
        return draft

    # ------------------------------------------------------------- customers
    def _random_customer(self, number: int) -> CustomerDraft:
        city, district, address = self._address()
        created = self._at(
            self.today - dt.timedelta(days=self.rng.randint(20, 2400)), self.rng.randint(7, 23), self.rng.randint(0, 59)
        )
        birthday = dt.date(self.rng.randint(1962, 2005), self.rng.randint(1, 12), self.rng.randint(1, 28))
        customer = CustomerDraft(f"C{number:06d}", self._name(), self._phone(), birthday, created, city, district, address)
        rich = self.rng.random() < 0.12
        count = min(40, int(self.rng.lognormvariate(1.75, 0.75)) + (6 if rich else 0))
        start = max(created, self.cutoff - dt.timedelta(days=730))
        span_s = max(1, int((self.cutoff - start).total_seconds()))
        recent_s = 10 * 24 * 3600
        stamps = []
        for _ in range(count):
            if self.rng.random() < 0.15 and span_s > recent_s:
                stamps.append(self.cutoff - dt.timedelta(seconds=self.rng.randrange(recent_s)))
            else:
                stamps.append(start + dt.timedelta(seconds=self.rng.randrange(span_s)))
        for stamp in sorted(stamps):
            if stamp.hour < 7 and self.rng.random() < 0.8:
                stamp += dt.timedelta(hours=8)
            if stamp > self.cutoff:
                stamp = self.cutoff - dt.timedelta(minutes=self.rng.randint(5, 300))
            order = self._random_order(customer, stamp.replace(microsecond=0), rich)
            customer.orders.append(order)
            if order.signed_at is not None:
                recent = (self.cutoff - order.signed_at) < dt.timedelta(days=12)
                if self.rng.random() < (0.25 if recent else 0.08):
                    draft = self._random_return(customer, order)
                    if draft is not None:
                        customer.returns.append(draft)
        customer.redeems = self.rng.random() < 0.35
        return customer

    def _demo_order(
        self,
        customer: CustomerDraft,
        serial: int,
        placed_at: Stamp,
        skus: Sequence[Tuple[str, int]],
        plan: Timeline,
        carrier: str = "JD",
        **options: Any,
    ) -> OrderDraft:
        order_id = f"88{int(customer.customer_id[1:]):06d}{serial:04d}"
        self.used_ids.add(order_id)
        lines = [(self.by_sku[sku], quantity) for sku, quantity in skus]
        order = self._draft(customer, placed_at, lines, order_id=order_id, coupon_fen=options.pop("coupon_fen", 0), **options)
        tracking = carrier + order_id.rjust(TRACKING_DIGITS[carrier], "0")
        self.used_ids.add(tracking)
        self._settle(order, plan, carrier=carrier, tracking=tracking)
        customer.orders.append(order)
        return order

    def _demo_customer(self, demo: DemoCustomer) -> CustomerDraft:
        customer = CustomerDraft(
            demo.customer_id,
            demo.name,
            demo.phone,
            demo.birthday,
            self._at(dt.date(2019, 3, 1) + dt.timedelta(days=int(demo.customer_id[1:]) * 97), 10, 30),
            demo.city,
            demo.district,
            demo.address,
        )
        t, d = self.today, dt.timedelta
        if demo.customer_id == "C000001":
            previous_year = self._at(dt.date(t.year - 1, 3, 12), 20, 15)
            self._demo_order(
                customer,
                40,
                previous_year,
                [("BK001", 2), ("HM002", 1)],
                Timeline(sign_at=previous_year + d(days=2, hours=16)),
                payment_method="wallet",
            )
            placed = self._days_ago(5, 10, 12)
            self._demo_order(
                customer,
                1,
                placed,
                [("EL006", 1), ("PC006", 1)],
                Timeline(ship_at=self._days_ago(4, 9, 5), sign_at=self._at(t + d(days=2), 15), delayed=True, warehouse=4),
                carrier="SF",
                promised_date=t - d(days=2),
                payment_method="wallet",
            )
            placed = self._days_ago(6, 21, 40)
            self._demo_order(
                customer,
                2,
                placed,
                [("SH001", 1), ("AP007", 1)],
                Timeline(ship_at=self._days_ago(5, 11, 20), sign_at=self._days_ago(3, 14, 32)),
                carrier="JD",
                promised_date=t - d(days=3),
                payment_method="wallet",
                coupon_fen=2000,
            )
        elif demo.customer_id == "C000002":
            self._demo_order(
                customer,
                1,
                self._days_ago(2, 20, 30),
                [("AP002", 1)],
                Timeline(ship_at=self._days_ago(1, 10, 0), sign_at=self._at(t + d(days=1), 14), warehouse=2),
                carrier="JD",
                promised_date=t + d(days=1),
                payment_method="bank_card",
            )
            self._demo_order(
                customer,
                2,
                self._days_ago(1, 21, 5),
                [("BK004", 1), ("HM007", 1)],
                Timeline(ship_at=self._at(t, 14)),
                promised_date=t + d(days=2),
                payment_method="wallet",
            )
        elif demo.customer_id == "C000003":
            self._demo_order(
                customer,
                1,
                self._days_ago(43, 9, 50),
                [("EL007", 1)],
                Timeline(ship_at=self._days_ago(42, 16), sign_at=self._days_ago(40, 11, 8)),
                carrier="SF",
                promised_date=t - d(days=40),
                payment_method="bank_card",
            )
        elif demo.customer_id == "C000004":
            self._demo_order(
                customer,
                1,
                self._days_ago(3, 19, 25),
                [("FF001", 1), ("AP001", 1)],
                Timeline(ship_at=self._days_ago(2, 8, 30), sign_at=self._days_ago(1, 17, 45)),
                carrier="SF",
                promised_date=t - d(days=1),
                payment_method="wallet",
                insurance=True,
            )
        elif demo.customer_id == "C000005":
            order = self._demo_order(
                customer,
                1,
                self._days_ago(7, 12, 0),
                [("SH002", 1)],
                Timeline(ship_at=self._days_ago(6, 15), sign_at=self._days_ago(4, 10, 20)),
                carrier="YT",
                promised_date=t - d(days=4),
                payment_method="wallet",
                insurance=True,
            )
            created = self._days_ago(2, 10, 0)
            customer.returns.append(
                self._return_draft(
                    order,
                    [(1, 1)],
                    "wrong_size",
                    "approved",
                    created,
                    self._days_ago(1, 9, 30),
                    note=f"已安排快递员于{t.month}月{t.day}日 14:00-18:00 上门取件",
                    expected=add_working_days(t + d(days=2), REFUND_WORKING_DAYS["wallet"]),
                    return_id="R8800000501",
                )
            )
        elif demo.customer_id == "C000006":
            order = self._demo_order(
                customer,
                1,
                self._days_ago(15, 9, 0),
                [("HM002", 1), ("BK001", 1)],
                Timeline(ship_at=self._days_ago(14, 13), sign_at=self._days_ago(12, 16, 40), confirm_after=d(days=1)),
                carrier="JD",
                promised_date=t - d(days=12),
                payment_method="bank_card",
            )
            customer.returns.append(
                self._return_draft(
                    order,
                    [(1, 1)],
                    "quality_issue",
                    "refunded",
                    self._days_ago(10, 9, 15),
                    self._days_ago(3, 11, 2),
                    refunded_at=self._days_ago(3, 11, 2),
                    note="质量问题（内胆涂层脱落），运费由商家承担",
                    expected=add_working_days(t - d(days=6), REFUND_WORKING_DAYS["bank_card"]),
                    return_id="R8800000601",
                )
            )
        elif demo.customer_id == "C000007":
            self._demo_order(
                customer,
                1,
                self._days_ago(2, 11, 0),
                [("EL009", 1)],
                Timeline(ship_at=self._days_ago(2, 18, 0), sign_at=self._at(t, 8, 40), warehouse=0),
                carrier="YT",
                promised_date=t,
                payment_method="bank_card",
                insurance=True,
            )
        elif demo.customer_id == "C000008":
            self._demo_order(
                customer,
                1,
                self._days_ago(0, 7, 15),
                [("BK002", 1), ("BK009", 2)],
                Timeline(pay_after=None, cancel_at=self._at(t, 7, 15) + d(hours=24)),
                promised_date=t + d(days=3),
                payment_method="wallet",
            )
        self._fill_to_tier(customer, demo.tier)
        customer.orders.sort(key=lambda order: order.placed_at)
        return customer

    def _fill_to_tier(self, customer: CustomerDraft, tier: str) -> None:
        """Add completed past orders until the growth value reaches the demo tier."""
        target = DEMO_TIER_TARGETS[tier]
        serial = 50
        pool = [p for p in self.products if p[3] in ("electronics", "home", "shoes", "apparel", "gift_card")]
        while self._growth(customer) < target:
            gap = target - self._growth(customer)
            fitting = [p for p in pool if p[4] <= max(gap, 150)] or [min(pool, key=lambda p: p[4])]
            product = self.rng.choice(fitting)
            quantity = max(1, min(3, gap // product[4]))
            placed = self._days_ago(self.rng.randint(60, 330), self.rng.randint(9, 22), self.rng.randint(0, 59))
            self._demo_order(
                customer,
                serial,
                placed,
                [(product[0], quantity)],
                Timeline(
                    ship_at=placed + dt.timedelta(hours=5),
                    sign_at=self._at(placed.date() + dt.timedelta(days=2), self.rng.randint(10, 19), self.rng.randint(0, 59)),
                ),
                carrier=self.rng.choice(("SF", "JD", "YT")),
                payment_method="wallet",
            )
            serial += 1

    def _growth(self, customer: CustomerDraft) -> int:
        """Yuan paid for orders signed in the last 365 days, minus refunds on them."""
        since = self.cutoff - dt.timedelta(days=365)
        growth = 0
        for order in customer.orders:
            if order.signed_at is not None and since < order.signed_at <= self.cutoff:
                growth += order.paid_fen // 100
        for draft in customer.returns:
            signed = draft.order.signed_at
            if draft.status == "refunded" and signed is not None and since < signed:
                growth -= draft.refund_fen // 100
        return max(0, growth)

    # ---------------------------------------------------------------- points
    def _simulate_points(self, customer: CustomerDraft) -> None:
        """Replay the customer's points history in time order and write the ledger lines."""
        queue: List[Tuple[Stamp, int, str, Any]] = []
        sequence = 0

        def push(stamp: Stamp, kind: str, payload: Any) -> None:
            nonlocal sequence
            sequence += 1
            heapq.heappush(queue, (stamp, sequence, kind, payload))

        push(customer.created_at, "earn", (REGISTRATION_BONUS, "新会员注册赠送积分", None))
        for order in customer.orders:
            if order.payment_method == "points" and order.paid_at is not None:
                push(order.paid_at, "pay", order)
            elif order.signed_at is not None and order.signed_at <= self.cutoff:
                push(order.signed_at, "earn_order", order)
        for draft in customer.returns:
            if draft.refunded_at is not None:
                push(draft.refunded_at, "refund", draft)
        if customer.redeems:
            for _ in range(self.rng.randint(1, 4)):
                span = int((self.cutoff - customer.created_at).total_seconds())
                push(
                    customer.created_at + dt.timedelta(seconds=self.rng.randrange(max(1, span))),
                    "redeem",
                    self.rng.choice(self.coupons),
                )
        if customer.customer_id == "C000001" and self.today.month != 12:
            first = self.today.replace(day=1)
            stamp = self._at(first, 10) if self._at(first, 10) <= self.cutoff else self._at(self.today, 0, 5)
            push(stamp, "earn", (800, "会员日活动赠送积分（当月底到期）", last_day_of_month(self.today)))

        lots = Lots()
        scheduled: set = set()

        def line(
            stamp: Stamp, delta: int, reason: str, expires_on: Optional[dt.date] = None, order_id: Optional[str] = None
        ) -> None:
            self.ledger.append(
                {
                    "customer_id": customer.customer_id,
                    "delta": delta,
                    "reason": reason,
                    "created_at": to_utc_naive(stamp, self.tz),
                    "expires_on": expires_on,
                    "order_id": order_id,
                }
            )

        def earn(stamp: Stamp, points: int, reason: str, expires_on: Optional[dt.date], order_id: Optional[str] = None) -> None:
            expiry = expires_on or points_expiry(stamp.date())
            lots.earn(points, expiry)
            line(stamp, points, reason, expiry, order_id)
            boundary = self._at(expiry + dt.timedelta(days=1), 0)
            if boundary <= self.cutoff and expiry not in scheduled:
                scheduled.add(expiry)
                push(boundary, "expire", expiry)

        while queue:
            stamp, _seq, kind, payload = heapq.heappop(queue)
            if kind == "earn":
                points, reason, expiry = payload
                earn(stamp, points, reason, expiry)
            elif kind == "earn_order":
                points = payload.paid_fen // 100
                if points > 0:
                    earn(stamp, points, f"购物获得积分（订单 {payload.order_id}）", None, payload.order_id)
            elif kind == "pay":
                if lots.balance >= payload.paid_fen:
                    lots.consume(payload.paid_fen)
                    line(stamp, -payload.paid_fen, f"积分支付（订单 {payload.order_id}）", order_id=payload.order_id)
                    if payload.status == "cancelled" and payload.cancelled_at is not None:
                        reason = f"订单取消退回积分（订单 {payload.order_id}）"
                        push(payload.cancelled_at, "earn", (payload.paid_fen, reason, None))
                else:
                    payload.payment_method = "balance"
                    if payload.signed_at is not None and payload.signed_at <= self.cutoff:
                        push(payload.signed_at, "earn_order", payload)
            elif kind == "refund":
                order = payload.order
                if order.payment_method == "points":
                    earn(stamp, payload.refund_fen, f"退款退回积分（退货单 {payload.return_id}）", None, order.order_id)
                else:
                    points = min(payload.refund_fen // 100, lots.balance)
                    if points > 0:
                        lots.consume(points)
                        line(stamp, -points, f"退款扣回积分（退货单 {payload.return_id}）", order_id=order.order_id)
            elif kind == "redeem":
                coupon = payload
                if lots.balance >= coupon.points_cost:
                    lots.consume(coupon.points_cost)
                    line(stamp, -coupon.points_cost, f"兑换优惠券：{coupon.title}")
                    redemption_id = self._unique(lambda: "PR" + self._digits(10))
                    self.redemptions.append(
                        {
                            "redemption_id": redemption_id,
                            "customer_id": customer.customer_id,
                            "coupon_id": coupon.coupon_id,
                            "points_spent": coupon.points_cost,
                            "balance_after": lots.balance,
                            "created_at": to_utc_naive(stamp, self.tz),
                            "valid_until": stamp.date() + dt.timedelta(days=coupon.valid_days),
                            "idempotency_key": f"seed-{redemption_id}",
                        }
                    )
            elif kind == "expire":
                expired = lots.expired_before(payload + dt.timedelta(days=1))
                if expired > 0:
                    lots.consume(expired)
                    line(stamp, -expired, f"积分到期清零（{payload.year}年{payload.month}月{payload.day}日到期）")
        customer.points_balance = lots.balance

    # ------------------------------------------------------------------ build
    def build(self) -> Dict[str, List[Dict[str, Any]]]:
        """Generate every row; returns rows per table name."""
        for demo in DEMO_CUSTOMERS:
            self.customers.append(self._demo_customer(demo))
        for number in range(len(DEMO_CUSTOMERS) + 1, self.customer_total + 1):
            self.customers.append(self._random_customer(number))
        for customer in self.customers:
            self._simulate_points(customer)
            customer.growth_value = self._growth(customer)
            customer.tier = tier_for_growth(self.tiers, customer.growth_value).code
        return self._rows()

    def _rows(self) -> Dict[str, List[Dict[str, Any]]]:
        utc = lambda stamp: to_utc_naive(stamp, self.tz) if stamp is not None else None  # noqa: E731
        rows: Dict[str, List[Dict[str, Any]]] = {table.name: [] for table in Base.metadata.sorted_tables}
        rows["coupons"] = [vars(coupon).copy() for coupon in self.coupons]
        for sku, name, brand, category, price in self.products:
            rows["products"].append(
                {
                    "sku": sku,
                    "name": name,
                    "brand": brand,
                    "category": category,
                    "price_fen": price * 100,
                    "no_reason_returnable": category not in NOT_RETURNABLE_REASONS,
                    "not_returnable_reason": NOT_RETURNABLE_REASONS.get(category),
                }
            )
        for customer in self.customers:
            rows["customers"].append(
                {
                    "customer_id": customer.customer_id,
                    "name": customer.name,
                    "phone": customer.phone,
                    "tier": customer.tier,
                    "growth_value": customer.growth_value,
                    "points_balance": customer.points_balance,
                    "birthday": customer.birthday,
                    "created_at": utc(customer.created_at),
                }
            )
            for order in customer.orders:
                rows["orders"].append(
                    {
                        "order_id": order.order_id,
                        "customer_id": customer.customer_id,
                        "status": order.status,
                        "placed_at": utc(order.placed_at),
                        "paid_at": utc(order.paid_at),
                        "promised_date": order.promised_date,
                        "signed_at": utc(order.signed_at),
                        "completed_at": utc(order.completed_at),
                        "cancelled_at": utc(order.cancelled_at),
                        "payment_method": order.payment_method,
                        "has_shipping_insurance": order.insurance,
                        "receiver_name": order.receiver[0],
                        "receiver_phone": order.receiver[1],
                        "address": order.receiver[2],
                        "subtotal_fen": order.subtotal_fen,
                        "coupon_discount_fen": order.coupon_fen,
                        "shipping_fee_fen": order.shipping_fen,
                        "paid_fen": order.paid_fen,
                    }
                )
                for item in order.items:
                    rows["order_items"].append(
                        {
                            "order_id": order.order_id,
                            "line_id": item.line_id,
                            "sku": item.product[0],
                            "product_name": item.product[1],
                            "category": item.product[3],
                            "quantity": item.quantity,
                            "unit_price_fen": item.product[4] * 100,
                            "paid_fen": item.paid_fen,
                        }
                    )
                if order.tracking is not None and order.carrier is not None and order.shipped_at is not None:
                    rows["shipments"].append(
                        {
                            "tracking_number": order.tracking,
                            "order_id": order.order_id,
                            "carrier": order.carrier,
                            "shipped_at": utc(order.shipped_at),
                        }
                    )
                    for stamp, location, text in order.events:
                        rows["shipment_events"].append(
                            {
                                "tracking_number": order.tracking,
                                "time": utc(stamp),
                                "location": location,
                                "description": text,
                            }
                        )
            for draft in customer.returns:
                rows["returns"].append(
                    {
                        "return_id": draft.return_id,
                        "order_id": draft.order.order_id,
                        "customer_id": customer.customer_id,
                        "reason": draft.reason,
                        "status": draft.status,
                        "refund_fen": draft.refund_fen,
                        "return_shipping_paid_by": draft.shipping_paid_by,
                        "refund_method": draft.order.payment_method,
                        "refund_expected_by": draft.refund_expected_by,
                        "refunded_at": utc(draft.refunded_at),
                        "note": draft.note,
                        "created_at": utc(draft.created_at),
                        "updated_at": utc(draft.updated_at),
                        "idempotency_key": None,
                    }
                )
                for line_id, quantity in draft.lines:
                    rows["return_items"].append({"return_id": draft.return_id, "line_id": line_id, "quantity": quantity})
        rows["redemptions"] = self.redemptions
        rows["points_ledger"] = self.ledger
        return rows


def seed_database(
    engine: Engine, today: dt.date, customers: int = DEFAULT_CUSTOMERS, tz: Optional[dt.tzinfo] = None
) -> Dict[str, int]:
    """Drop all CRM tables, recreate them and fill them with the demo data set.

    Args:
        engine: target database.
        today: the date the data set is built around (shop-local).
        customers: total number of customers, demo customers included.
        tz: the shop's timezone (UTC+8 when omitted).

    Returns:
        Row counts per table.
    """
    generator = Generator(today, customers, tz or dt.timezone(dt.timedelta(hours=8)))
    rows = generator.build()
    drop_schema(engine)
    create_schema(engine)
    with engine.begin() as connection:
        for table in Base.metadata.sorted_tables:
            table_rows = rows.get(table.name, [])
            for start in range(0, len(table_rows), 5000):
                connection.execute(table.insert(), table_rows[start : start + 5000])
    return {name: len(table_rows) for name, table_rows in rows.items()}


def dump_database(engine: Engine) -> Dict[str, List[Tuple[Any, ...]]]:
    """Every row of every CRM table, ordered by primary key (to compare two databases)."""
    result: Dict[str, List[Tuple[Any, ...]]] = {}
    with engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            statement = select(table).order_by(*table.primary_key.columns)
            result[table.name] = [tuple(row) for row in connection.execute(statement)]
    return result


__all__ = [
    "DEMO_CUSTOMERS",
    "Coupon",
    "Customer",
    "DemoCustomer",
    "Order",
    "OrderItem",
    "PointsEntry",
    "Product",
    "Redemption",
    "Return",
    "ReturnItem",
    "Shipment",
    "ShipmentEvent",
    "dump_database",
    "seed_database",
    "tier_by_code",
]

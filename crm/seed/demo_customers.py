"""The fixed demo customers (``C000001`` .. ``C000009``) and the tier each must reach; see ``DEMO_CUSTOMERS.md``."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Tuple


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

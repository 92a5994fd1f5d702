"""What the simulated shoppers say: short conversations, each under a fresh sender id.

Stock bot (``rasa init``): greet, tell the mood, answer "did that help?", sometimes ask whether it is
a bot, say goodbye. Ours: a logged-in customer (signed identity) greets, asks where a parcel is (one
to two tracking questions, sometimes naming one of their real order ids), asks about shipping fees
or whether it is a robot, and thanks, each in one of several phrasings shoppers use. Tracking questions are the action turns: their reply comes
from ``action_track_order`` calling the CRM.
"""

from __future__ import annotations

import itertools
import random
import re
import uuid
from dataclasses import dataclass
from typing import Dict, Iterator, List, Sequence

from bench.load import Turn

# ----------------------------------------------------------------------------------- stock bot
STOCK_GREETINGS = ("hello", "hi", "hey", "good morning", "hello there")
STOCK_HAPPY = ("I am great", "very good", "I am feeling very good", "amazing")
STOCK_SAD = ("I am sad", "not good", "I am unhappy", "very sad")
STOCK_AFFIRM = ("yes", "of course", "indeed")
STOCK_DENY = ("no", "not really", "never")
STOCK_BOT = ("are you a bot?", "am I talking to a bot?", "are you a human?")
STOCK_BYE = ("bye", "goodbye", "see you later", "have a nice day")


class StockScript:
    """A shopper of the stock ``rasa init`` bot on its REST channel."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def conversation(self, rng: random.Random) -> List[Turn]:
        sender = f"{self.prefix}-{uuid.uuid4().hex[:12]}"
        texts: List[tuple] = [("greet", rng.choice(STOCK_GREETINGS))]
        if rng.random() < 0.5:
            texts.append(("mood_great", rng.choice(STOCK_HAPPY)))
        else:
            texts.append(("mood_unhappy", rng.choice(STOCK_SAD)))
            texts.append(("affirm", rng.choice(STOCK_AFFIRM)) if rng.random() < 0.6 else ("deny", rng.choice(STOCK_DENY)))
        if rng.random() < 0.3:
            texts.append(("bot_challenge", rng.choice(STOCK_BOT)))
        texts.append(("goodbye", rng.choice(STOCK_BYE)))
        return [Turn(kind, {"sender": sender, "message": text}) for kind, text in texts]


# ----------------------------------------------------------------------------------------- ours
TRACK_GENERIC = ("我的快递到哪了", "物流信息查一下", "查一下物流", "快递呢", "包裹在哪", "看下订单状态",
                 "物流信息怎么看", "请问我的订单现在是什么进度", "发货没", "啥时候能到啊")
TRACK_BY_ORDER = "订单 {order_id} 到哪了"
SHIPPING_FEES = ("运费怎么算", "会员包邮吗", "包邮吗", "满多少包邮")
ROBOTS = ("你是机器人吗", "你是真人吗", "你是人还是机器", "你是AI吗")
GREETINGS = ("你好", "您好", "在吗", "亲，在不在", "哈喽")
THANKS = ("谢谢", "好的谢谢", "谢谢你", "多谢")

TRACKING_REPLY = re.compile(r"当前状态|正在配送中|还没有订单|没有找到订单|没有找到运单号")
"""Text found in every answer of ``action_track_order`` that comes from the CRM."""
CRM_UNAVAILABLE_REPLY = "订单系统暂时没有响应"


@dataclass(frozen=True)
class Customer:
    """A seeded CRM customer the bench impersonates (with an identity token from the shop's backend)."""

    customer_id: str
    identity_token: str
    order_ids: Sequence[str]


class CustomerRotation:
    """Hands out customers round-robin, so consecutive conversations are different customers."""

    def __init__(self, customers: Sequence[Customer], rng: random.Random) -> None:
        if not customers:
            raise ValueError("no customers to impersonate")
        shuffled = list(customers)
        rng.shuffle(shuffled)
        self._cycle: Iterator[Customer] = itertools.cycle(shuffled)
        self.count = len(shuffled)

    def next(self) -> Customer:
        return next(self._cycle)


def _tracking_text(customer: Customer, rng: random.Random) -> str:
    if customer.order_ids and rng.random() < 0.4:
        return TRACK_BY_ORDER.format(order_id=rng.choice(list(customer.order_ids)))
    return rng.choice(TRACK_GENERIC)


def _body(sender: str, text: str, customer: Customer) -> Dict[str, object]:
    return {"sender": sender, "message": text,
            "metadata": {"identity_token": customer.identity_token}}


class ShopScript:
    """A logged-in customer of our app channel; a new customer and sender id per conversation.

    Args:
        prefix: start of the sender ids (tells the runs apart in logs).
        customers: whom to impersonate next.
        actions_only: send tracking questions only (the single-shopper action-turn run).
    """

    def __init__(self, prefix: str, customers: CustomerRotation, actions_only: bool = False) -> None:
        self.prefix = prefix
        self.customers = customers
        self.actions_only = actions_only

    def conversation(self, rng: random.Random) -> List[Turn]:
        customer = self.customers.next()
        sender = f"{self.prefix}-{uuid.uuid4().hex[:12]}"
        if self.actions_only:
            return [Turn("track", _body(sender, _tracking_text(customer, rng), customer), action=True)
                    for _ in range(rng.randint(2, 4))]
        middle: List[Turn] = [Turn("track", _body(sender, _tracking_text(customer, rng), customer), action=True)]
        if rng.random() < 0.45:
            middle.append(Turn("shipping_fee", _body(sender, rng.choice(SHIPPING_FEES), customer)))
        if rng.random() < 0.25:
            middle.append(Turn("bot_challenge", _body(sender, rng.choice(ROBOTS), customer)))
        if rng.random() < 0.35:
            middle.append(Turn("track", _body(sender, _tracking_text(customer, rng), customer), action=True))
        first, rest = middle[0], middle[1:]
        rng.shuffle(rest)
        turns: List[Turn] = []
        if rng.random() < 0.75:
            turns.append(Turn("greet", _body(sender, rng.choice(GREETINGS), customer)))
        turns.append(first)
        turns.extend(rest)
        if rng.random() < 0.8:
            turns.append(Turn("thank", _body(sender, rng.choice(THANKS), customer)))
        return turns

"""Order tracking as plain functions: which order the shopper means, and how to tell its status.

Each function computes the values a reply quotes (items, amounts, dates, scans); the words are
responses in ``data/responses/orders.yml``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Dict, List, Optional, Sequence, Tuple

from actions import formatting
from actions.delivery_policy import Compensation
from actions.loyalty_rules import points as points_text
from bot.texts import render
from crm.vocab import ORDER_STATUS_LABELS
from handoff import texts as handoff_texts

STATUS_LABELS = ORDER_STATUS_LABELS
"""The CRM's own table (:data:`crm.vocab.ORDER_STATUS_LABELS`), not a copy; read a label through :func:`status_label`."""
IN_FLIGHT = ("awaiting_shipment", "shipped", "in_transit", "out_for_delivery")
UNSIGNED = ("pending_payment",) + IN_FLIGHT
MAX_CHOICES = 5

Order = Dict[str, Any]


def status_label(order: Order) -> str:
    """The order's status in Chinese: the CRM's label of its status code, else the label the CRM sent, else the code."""
    status = str(order.get("status") or "")
    return ORDER_STATUS_LABELS.get(status) or str(order.get("status_label") or status)


@dataclass(frozen=True)
class OrderChoice:
    """Which order a tracking question is about.

    Attributes:
        order: the one order to describe, when it is clear.
        candidates: the orders to choose from when several are in flight.
    """

    order: Optional[Order] = None
    candidates: List[Order] = field(default_factory=list)


def choose_order(orders: Sequence[Order], tracking_number: Optional[str] = None) -> OrderChoice:
    """Pick the order a shopper asking "where is my order" most likely means.

    Args:
        orders: the shopper's orders, newest first.
        tracking_number: a tracking number the shopper gave, if any.

    Returns:
        The order matching the tracking number; else the only order in flight; else the
        candidates when several are in flight; else the most recent order; else nothing.
    """
    if tracking_number:
        for order in orders:
            shipment = order.get("shipment") or {}
            if shipment.get("tracking_number", "").upper() == tracking_number.upper():
                return OrderChoice(order=order)
        return OrderChoice()
    in_flight = [order for order in orders if order.get("status") in IN_FLIGHT]
    if len(in_flight) == 1:
        return OrderChoice(order=in_flight[0])
    if len(in_flight) > 1:
        return OrderChoice(candidates=in_flight[:MAX_CHOICES])
    return OrderChoice(order=orders[0]) if orders else OrderChoice()


def is_late(order: Order, today: date) -> bool:
    """An order is late when it is not signed for and its promised date has passed."""
    promised = order.get("promised_date")
    if not promised or order.get("status") not in UNSIGNED or order.get("status") == "pending_payment":
        return False
    return today > formatting.parse_date(promised)


def days_overdue(order: Order, today: date) -> int:
    """Days a late order is past its promised date (0 when it is not late)."""
    if not is_late(order, today):
        return 0
    return (today - formatting.parse_date(order["promised_date"])).days


def items_summary(order: Order) -> str:
    """耐克 Air Zoom 跑鞋 等 2 件."""
    items = order.get("items") or []
    if not items:
        return render("utter_order_unnamed_product")
    count = sum(int(item.get("quantity", 1)) for item in items)
    first = items[0].get("product_name") or render("utter_order_unnamed_product")
    return first if count == 1 else render("utter_order_items_several", first=first, count=count)


def order_button(order: Order) -> Dict[str, str]:
    """A button that asks about one order: date, first item and amount."""
    placed = formatting.parse_datetime(order["placed_at"])
    title = render("utter_order_button_order", month=placed.month, day=placed.day, items=items_summary(order),
                   amount=formatting.money(order.get("paid_fen", 0)))
    payload = "/track_order" + json.dumps({"order_id": order["order_id"]}, separators=(",", ":"))
    return {"title": title, "payload": payload}


def full_track_button(order: Order) -> Dict[str, str]:
    """A button that asks for every scan of one order's parcel."""
    payload = "/track_order_full" + json.dumps({"order_id": order["order_id"]}, separators=(",", ":"))
    return {"title": render("utter_order_button_full_track"), "payload": payload}


def track_events(order: Order) -> List[Dict[str, Any]]:
    """The parcel's scans, oldest first (the CRM lists them newest first)."""
    events = list(reversed((order.get("shipment") or {}).get("events") or []))
    return sorted(events, key=lambda event: formatting.parse_datetime(event["time"]))


def describe_full_track(order: Order) -> str:
    """Every scan of an order's parcel, oldest first: time, location and description.

    Args:
        order: the order as the CRM returns it.
    """
    status = order.get("status", "")
    label = status_label(order)
    events = track_events(order)
    shipment = order.get("shipment") or {}
    if not events:
        text = render("utter_order_full_track_empty", order_id=order["order_id"], items=items_summary(order), status=label)
        if status in ("pending_payment", "awaiting_shipment"):
            text += render("utter_order_full_track_after_shipping")
        return text
    carrier = shipment.get("carrier_name") or shipment.get("carrier", "")
    lines = [render("utter_order_full_track_heading", order_id=order["order_id"], items=items_summary(order), carrier=carrier,
                    tracking_number=shipment.get("tracking_number", ""), count=len(events))]
    for number, event in enumerate(events, start=1):
        when = formatting.moment(formatting.parse_datetime(event["time"]))
        lines.append(f"{number}. {when}【{event.get('location', '')}】{event.get('description', '')}")
    lines.append(render("utter_order_full_track_status", status=label))
    return "\n".join(lines)


def latest_event_line(order: Order) -> Optional[str]:
    """最新物流：11月21日 14:32【上海浦东转运中心】快件已发出."""
    events = (order.get("shipment") or {}).get("events") or []
    if not events:
        return None
    latest = max(events, key=lambda event: event["time"])
    when = formatting.moment(formatting.parse_datetime(latest["time"]))
    return render("utter_order_latest_event", when=when, location=latest.get("location", ""), description=latest.get("description", ""))


def describe_order(order: Order, today: date) -> str:
    """The status of one order in plain Chinese, with every fact the CRM gave.

    Args:
        order: the order as the CRM returns it.
        today: today's date in the shop's timezone.
    """
    status = order.get("status", "")
    label = status_label(order)
    lines = [render("utter_order_status", order_id=order["order_id"], items=items_summary(order),
                    amount=formatting.money(order.get("paid_fen", 0)), status=label)]
    shipment = order.get("shipment")
    if shipment:
        carrier = shipment.get("carrier_name") or shipment.get("carrier", "")
        lines.append(render("utter_order_shipment", carrier=carrier, tracking_number=shipment.get("tracking_number", "")))
        event_line = latest_event_line(order)
        if event_line:
            lines.append(event_line + "。" if not event_line.endswith("。") else event_line)
    if status in ("delivered", "completed") and order.get("signed_at"):
        signed = formatting.parse_datetime(order["signed_at"])
        lines.append(render("utter_order_signed_at", when=formatting.moment(signed)))
    elif status == "cancelled":
        lines.append(render("utter_order_cancelled"))
    elif status == "pending_payment":
        lines.append(render("utter_order_pending_payment"))
    elif order.get("promised_date"):
        promised = formatting.day(formatting.parse_date(order["promised_date"]), today)
        if is_late(order, today):
            lines.append(render("utter_order_late", promised=promised, days=days_overdue(order, today)))
        else:
            lines.append(render("utter_order_expected", promised=promised))
    return "\n".join(lines)


URGE = "urge"
COMPENSATION = "compensation"
FAILURE_LABELS = {URGE: "utter_order_failed_urge", COMPENSATION: "utter_order_failed_compensation"}
"""The response naming each part of the late-order handling that can fail."""


@dataclass(frozen=True)
class LateHandling:
    """What was done in the CRM for a late order.

    Attributes:
        urge: the urge (催件) as the CRM returns it, when one was filed or is open.
        urge_created: whether this turn filed it.
        grant: the late-delivery compensation as the CRM returns it, when there is one.
        grant_created: whether this turn granted it.
        compensation: what the delivery policy allowed, when this turn granted it.
        tier_name: the shopper's membership tier, e.g. 金牌会员 (for the rule's wording).
        failed: what could not be done (:data:`URGE`, :data:`COMPENSATION`): a human takes over.
        relayed: whether the urge's answer will be relayed into this conversation (its promise is
            recorded as a carrier-urge ticket, :mod:`handoff.carrier_urges`): the shopper is told so.
    """

    urge: Optional[Order] = None
    urge_created: bool = False
    grant: Optional[Order] = None
    grant_created: bool = False
    compensation: Optional[Compensation] = None
    tier_name: str = ""
    failed: Tuple[str, ...] = ()
    relayed: bool = False


def _urge_line(urge: Order, created: bool, now: datetime, relayed: bool) -> str:
    due = formatting.when(formatting.parse_datetime(urge["answer_due_at"]), now)
    since = "" if created else render("utter_order_urge_since", when=formatting.when(formatting.parse_datetime(urge["created_at"]), now))
    relay = handoff_texts.say("urge_relay") if relayed else ""
    if urge.get("target") == "warehouse":
        return handoff_texts.say("urge_promised_warehouse", since=since, due=due, relay=relay)
    carrier = urge.get("carrier_name") or render("utter_order_unknown_carrier")
    return handoff_texts.say("urge_promised_carrier", since=since, due=due, relay=relay, carrier=carrier)


def _compensation_rule(compensation: Compensation, tier_name: str) -> str:
    rule = render("utter_order_compensation_rule", days=compensation.days_late, points=points_text(compensation.base_points))
    if compensation.multiplier > 1:
        factor = (render("utter_order_compensation_double") if compensation.multiplier == 2
                  else render("utter_order_compensation_times", multiplier=compensation.multiplier))
        rule += render("utter_order_compensation_multiplied", tier=tier_name or render("utter_order_compensation_your_tier"), factor=factor)
    return rule


def _grant_line(handling: LateHandling, now: datetime) -> str:
    grant = handling.grant or {}
    points = points_text(int(grant.get("points", 0)))
    if handling.grant_created:
        rule = (render("utter_order_compensation_granted_rule", rule=_compensation_rule(handling.compensation, handling.tier_name))
                if handling.compensation else "")
        return render("utter_order_compensation_granted", rule=rule, points=points, balance=points_text(int(grant.get("balance", 0))))
    granted = formatting.when(formatting.parse_datetime(grant["granted_at"]), now)
    return render("utter_order_compensation_earlier", points=points, granted=granted)


def describe_late_handling(handling: LateHandling, now: datetime) -> str:
    """What the shop did about a late order: the urge with its answer time, the compensation, the human.

    Args:
        handling: what the CRM did.
        now: the current time (relative days: 今天, 明天).
    """
    lines = []
    if handling.urge is not None:
        lines.append(_urge_line(handling.urge, handling.urge_created, now, handling.relayed))
    if handling.grant is not None:
        lines.append(_grant_line(handling, now))
    if handling.failed:
        what = render("utter_order_failed_and").join(render(FAILURE_LABELS[part]) for part in handling.failed)
        lines.append(render("utter_order_late_failed", what=what))
    else:
        lines.append(render("utter_order_late_human"))
    return "\n".join(lines)

"""「退款到哪了」: where each of the shopper's returns stands, with its refund amount and dates.

Plain functions over the returns the CRM listed; the words are in ``data/responses/returns.yml``.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Mapping, Sequence, Tuple

from actions import formatting
from actions import return_policy as policy_rules
from actions.replies import human_buttons
from actions.return_policy import ReturnPolicy
from actions.return_replies import Reply, product_name
from actions.return_state import Return
from bot.nlu.catalogue import default_catalogue, parse_mention
from bot.texts import render

MAX_RETURNS_SHOWN = 3
IN_PROGRESS = ("requested", "approved", "picked_up", "received")
"""Statuses of a return on its way to a refund; each has a response telling what happens next."""


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
    return "、".join(f"{product_name(item)} ×{item.get('quantity', 1)}" for item in ret.get("items") or [])


def describe_return(ret: Return, today: date, policy: ReturnPolicy) -> Tuple[str, bool]:
    """One return's status with its refund amount and dates; True when a human should follow up."""
    raw_method = str(ret.get("refund_method") or "")
    method = policy.payment_label(raw_method)
    amount = formatting.money(int(ret.get("refund_fen", 0)))
    expected = formatting.parse_date(str(ret["refund_expected_by"])) if ret.get("refund_expected_by") else None
    by = formatting.day(expected, today) if expected is not None else ""
    status = str(ret.get("status"))
    head = render("utter_refund_status_head", return_id=ret["return_id"], order_id=ret.get("order_id"), items=_return_items(ret),
                  status=ret.get("status_label", status))
    note = str(ret.get("note") or "")
    if status == "refunded" and ret.get("refunded_at"):
        arrival = ""
        if expected is not None and today <= expected and not policy_rules.refunds_instantly(raw_method, policy):
            arrival = render("utter_refund_status_refunded_arrival", speed=policy_rules.refund_speed(raw_method, policy), day=by)
        elif expected is not None and today > expected:
            arrival = render("utter_refund_status_refunded_overdue", day=by, method=method)
        moment = formatting.moment(formatting.parse_datetime(str(ret["refunded_at"])))
        return render("utter_refund_status_refunded", head=head, moment=moment, amount=amount, method=method, arrival=arrival), False
    if status == "rejected":
        if note:
            return render("utter_refund_status_rejected_with_note", head=head, note=note), True
        return render("utter_refund_status_rejected", head=head), True
    if status == "cancelled":
        return render("utter_refund_status_cancelled", head=head), False
    text = head + (render(f"utter_refund_status_{status}") if status in IN_PROGRESS else "")
    if note and status in ("approved", "requested"):
        text += render("utter_refund_status_note", note=note)
    if expected is None:
        return text + render("utter_refund_status_refund", amount=amount, method=method), False
    if today > expected:
        return text + render("utter_refund_status_refund_overdue", amount=amount, day=by), True
    return text + render("utter_refund_status_refund_by", amount=amount, method=method, day=by), False


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
        return Reply(render("utter_refund_status_none", scope=scope),
                     [{"title": render("utter_refund_status_button_return"), "payload": "/return_request"}])
    texts, follow_up = [], False
    for ret in live[:MAX_RETURNS_SHOWN]:
        text, needs_human = describe_return(ret, today, policy)
        texts.append(text)
        follow_up = follow_up or needs_human
    if len(live) > MAX_RETURNS_SHOWN:
        texts.append(render("utter_refund_status_more", count=len(live) - MAX_RETURNS_SHOWN))
    return Reply("\n".join(texts), human_buttons() if follow_up else [])

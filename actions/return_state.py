"""The return flow's state and data: the slots of ``return_form`` and what the shopper may see.

:class:`FlowState` is the form's slots as one value; :class:`FlowData` is what the CRM returned
for this turn (the shopper's orders and returns, today's date, the policy). Neither talks to the
CRM nor writes a text (the words are in ``data/responses/returns.yml``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from actions import return_policy as policy_rules
from actions.return_policy import ReturnPolicy
from bot.texts import render

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
FLOW_SLOTS = (SLOT_KIND, *REQUIRED_SLOTS, SLOT_INVALID, SLOT_RETURN_ID)

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


def kind_word(kind: Optional[str]) -> str:
    """退货 or 换货, as the shopper reads it, for a kind code (a return when unknown)."""
    return render("utter_return_kind_exchange" if kind == KIND_EXCHANGE else "utter_return_kind_return")


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
        return kind_word(self.kind)


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


def signed_at(order: Order) -> str:
    """The order's sign-for time as stored (ISO text, sorts by time), empty when not signed for."""
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
    return sorted(orders, key=signed_at, reverse=True)[:MAX_CANDIDATES]

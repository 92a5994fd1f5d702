"""Who the assistant is talking to, as far as it can prove it.

A shopper is known either by the customer id the channel verified (the shop signed it), or,
anonymously, by one order they proved is theirs with its number and the last four digits of the
order's phone. Nothing else a shopper types is ever taken as identity.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from rasa_sdk import Tracker

VERIFIED_ORDER_SLOT = "verified_order_id"


@dataclass(frozen=True)
class Shopper:
    """What the conversation has proven about the shopper.

    Attributes:
        customer_id: the customer id the channel verified from the shop's signature, if any.
        verified_order_id: an order an anonymous shopper proved with its phone tail, if any.
    """

    customer_id: Optional[str] = None
    verified_order_id: Optional[str] = None

    @property
    def is_verified_customer(self) -> bool:
        """True when the channel verified the shopper's customer id."""
        return self.customer_id is not None

    def may_see(self, order: dict) -> bool:
        """Whether this shopper may see (and act on) ``order``."""
        if self.customer_id is not None:
            return order.get("customer_id") == self.customer_id
        return self.verified_order_id is not None and order.get("order_id") == self.verified_order_id


def shopper_from_tracker(tracker: Tracker) -> Shopper:
    """The shopper of a conversation, from the channel's verified metadata and the slots."""
    metadata = (tracker.latest_message or {}).get("metadata") or {}
    customer_id = metadata.get("customer_id") if metadata.get("verified") is True else None
    verified_order = tracker.get_slot(VERIFIED_ORDER_SLOT)
    return Shopper(
        customer_id=customer_id if isinstance(customer_id, str) and customer_id else None,
        verified_order_id=verified_order if isinstance(verified_order, str) else None,
    )

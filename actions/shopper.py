"""Who the assistant is talking to, as far as it can prove it.

A shopper is known either by the customer id the channel verified (the shop signed it), or,
anonymously, by one order they proved is theirs with its number and the last four digits of the
order's phone. Nothing else a shopper types is ever taken as identity.

The action server trusts neither the tracker's ``verified`` flag nor its slots: the channel signs
who sent each message into ``metadata.identity`` (:func:`bot.identity.channel_identity`), and a
proven order is kept in its slot with a proof bound to the conversation
(:func:`bot.identity.verified_order_slot_value`). A tracker put together by anyone without the
shop's secret therefore opens no customer and no order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet

from bot.identity import verified_order_from_slot, verified_order_slot_value, verify_channel_identity
from bot.settings import get_settings

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


_secret_override: Optional[str] = None


def use_secret(secret: Optional[str]) -> None:
    """Check identities with ``secret`` from now on (tests); None goes back to the settings."""
    global _secret_override
    _secret_override = secret


def identity_secret() -> str:
    """The secret the channel's signatures are checked with (``SHOP_IDENTITY_SECRET``)."""
    return _secret_override or get_settings().shop_identity_secret


def shopper_from_tracker(tracker: Tracker) -> Shopper:
    """The shopper of a conversation, from the channel-signed identity and the proven-order slot.

    Args:
        tracker: the conversation as Rasa sent it.

    Returns:
        The customer the channel signed for this conversation (if any) and the order the
        conversation proved (if its proof is right); nothing else in the tracker counts.
    """
    metadata = (tracker.latest_message or {}).get("metadata") or {}
    secret = identity_secret()
    identity = metadata.get("identity") if isinstance(metadata, dict) else None
    customer_id = verify_channel_identity(secret, tracker.sender_id, identity)
    verified_order = verified_order_from_slot(secret, tracker.sender_id, tracker.get_slot(VERIFIED_ORDER_SLOT))
    return Shopper(customer_id=customer_id, verified_order_id=verified_order)


def proven_order_slot(tracker: Tracker, order_id: Optional[str]) -> SlotSet:
    """The event that remembers (or, with None, forgets) the order the anonymous shopper proved."""
    value = verified_order_slot_value(identity_secret(), tracker.sender_id, order_id) if order_id else None
    return SlotSet(VERIFIED_ORDER_SLOT, value)
